/**
 * Pseudo-terminal pairs made with socat, so the PN532 driver (or libnfc) and the emulator talk over a real tty: the
 * same kernel line discipline and termios calls as a USB serial adapter, minus the wire.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

export const PTY_INSTALL_HINT = "apt-get install -y socat libnfc-bin libnfc-examples libnfc-pn53x-examples";

export interface PtyPair {
  /** The end a client opens: the driver, or libnfc as `pn532_uart:<host>`. */
  host: string;
  /** The end the emulator opens. */
  device: string;
  close(): Promise<void>;
}

export function hasCommand(name: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${name}`], { stdio: "ignore" }).status === 0;
}

export function hasSocat(): boolean {
  return hasCommand("socat");
}

/** Starts `socat pty,raw,echo=0,link=A pty,raw,echo=0,link=B` and resolves once both links exist. */
export async function createPtyPair(options: { dir?: string; timeoutMs?: number } = {}): Promise<PtyPair> {
  if (!hasSocat()) throw new Error(`socat not found (${PTY_INSTALL_HINT})`);
  const dir = options.dir ?? mkdtempSync(path.join(tmpdir(), "pn532-pty-"));
  const host = path.join(dir, "host");
  const device = path.join(dir, "device");
  const child: ChildProcess = spawn("socat", ["-d", "-d", `pty,raw,echo=0,link=${host}`, `pty,raw,echo=0,link=${device}`], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let log = "";
  child.stderr!.on("data", (d: Buffer) => { log += d.toString(); });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const deadline = Date.now() + (options.timeoutMs ?? 5000);
  while (!(log.includes("starting data transfer loop") && existsSync(host) && existsSync(device))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`socat did not make a pty pair: ${log.trim()}`);
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  let closed = false;
  return {
    host,
    device,
    async close() {
      if (closed) return;
      closed = true;
      if (child.exitCode === null) child.kill("SIGTERM");
      // At most 2 s for socat to go; the wait's timer is cleared as soon as it has, so it holds nothing up after.
      let grace: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([exited, new Promise((r) => { grace = setTimeout(r, 2000); })]);
      clearTimeout(grace);
      if (child.exitCode === null) child.kill("SIGKILL");
      if (!options.dir) rmSync(dir, { recursive: true, force: true });
    },
  };
}
