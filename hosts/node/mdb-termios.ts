/**
 * The PC's MDB link: modules/mdb/native/linux's `mdb-termios` helper drives a real UART with mark/space parity and speaks
 * the docs/mdb.md §5 byte encoding on its stdin/stdout, which a StreamLink reads (docs/mdb.md §8). The helper is
 * built from source with the host's C compiler on first use.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, statSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { CodedError } from "../../modules/errors/errors";
import { StreamLink } from "../../modules/mdb/stream";
import type { TerminalMdb } from "../../src/assemble";
import { hasCommand } from "./pty";
import { NodeSerial } from "./serial";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const MDB_HELPER_SOURCES = ["modules/mdb/native/linux/mdb_termios.c", "modules/mdb/native/linux/mdb_termios_main.c"].map((f) => path.join(root, f));
export const CC_INSTALL_HINT = "apt-get install -y gcc";

export class MdbHelperError extends CodedError {
  constructor(message: string) {
    super("MDB_HELPER", message);
  }
}

/** Builds the helper into `dir` (default var/) unless an up-to-date one is there; returns its path. */
export function buildMdbHelper(dir = path.join(root, "var")): string {
  const exe = path.join(dir, "mdb-termios");
  const newest = Math.max(...MDB_HELPER_SOURCES.map((f) => statSync(f).mtimeMs));
  if (existsSync(exe) && statSync(exe).mtimeMs >= newest) return exe;
  const cc = ["cc", "gcc"].find(hasCommand);
  if (!cc) throw new MdbHelperError(`the MDB termios helper needs a C compiler (${CC_INSTALL_HINT})`);
  mkdirSync(dir, { recursive: true });
  const build = spawnSync(cc, ["-std=c99", "-O2", "-Wall", "-o", exe, ...MDB_HELPER_SOURCES], { encoding: "utf8" });
  if (build.status !== 0) throw new MdbHelperError(`building the MDB termios helper failed:\n${build.stderr}`);
  return exe;
}

export interface MdbTermiosOptions {
  /** The UART wired to the bus through the opto-isolated interface (README "In a vending machine (MDB)"). */
  tty: string;
  /** 0x10 (cashless #1, default) or 0x60 (#2). */
  address?: number;
  helper?: string;
  onExit?(code: number | null, stderr: string): void;
}

/** The terminal's MDB link over the helper: give it to assembleTerminal as `device.mdb`. */
export function termiosMdb(o: MdbTermiosOptions): TerminalMdb & { child(): ChildProcess | undefined } {
  let child: ChildProcess | undefined;
  let closing = false;
  return {
    child: () => child,
    link(handlers) {
      const exe = o.helper ?? buildMdbHelper();
      child = spawn(exe, [o.tty], { stdio: ["pipe", "pipe", "pipe"] });
      let stderr = "";
      child.stderr!.on("data", (d: Buffer) => { stderr += d.toString(); });
      child.once("exit", (code) => { if (!closing) o.onExit?.(code, stderr.trim()); });
      const stdin = child.stdin!;
      stdin.on("error", () => undefined); // the exit handler reports a helper that died
      const stream = new StreamLink({ address: o.address ?? 0x10, write: (bytes) => stdin.write(Buffer.from(bytes)), ...handlers });
      child.stdout!.on("data", (d: Buffer) => stream.push(new Uint8Array(d.buffer, d.byteOffset, d.length)));
      return stream.link;
    },
    close() {
      closing = true;
      child?.stdin?.end();
      child?.kill();
    },
  };
}

/**
 * The terminal's MDB link straight on a tty carrying the docs/mdb.md §5 encoding: a pty pair to the VMC simulator or
 * the harness (which plays the VMC), not a real bus.
 */
export function streamMdb(o: { tty: string; address?: number }): TerminalMdb {
  let serial: NodeSerial | undefined;
  return {
    link(handlers) {
      let stream!: StreamLink;
      const port: NodeSerial = new NodeSerial({ path: o.tty, baud: 9600, format: "buffer", onReadable() {
        const d = port.read();
        if (d) stream.push(new Uint8Array(d));
      } });
      serial = port;
      stream = new StreamLink({ address: o.address ?? 0x10, write: (bytes) => port.write(bytes), ...handlers });
      return stream.link;
    },
    close: () => serial?.close(),
  };
}
