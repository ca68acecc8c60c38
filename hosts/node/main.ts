/**
 * The terminal on a PC with a real PN532 (`npm start -- --pn532 /dev/ttyUSB0 ...`): reads its certificates, opens
 * its ports and starts. Whatever a newcomer gets wrong (a missing file, a port that is absent, busy or silent) ends
 * in one line that names the thing and what to check, and a non-zero exit, never a stack trace.
 */
import { mkdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { CodedError } from "../../modules/errors/errors";
import type { JournalStorage } from "../../modules/journal/storage";
import type { BasicDataMode } from "../../modules/terminal-config/config";
import { Pn532Error } from "../../modules/pn532/errors";
import { streamMdb, termiosMdb } from "./mdb-termios";
import { NodeSerial } from "./serial";
import { probePortPatiently } from "./serial-errors";
import { StdioSerial } from "./serial-stdio";
import { startNodeTerminal } from "./terminal";

export interface PcTerminalOptions {
  pn532: string;
  frontend: string;
  cert: string;
  key: string;
  ca: string;
  terminalId: string;
  controller?: string;
  journal?: string;
  strict?: boolean;
  esp32Tls?: boolean;
  recoveryWindowMs?: number;
  /** How often the status report goes (default 5 minutes). */
  statusEveryMs?: number;
  cityCode?: string;
  /** Where file 0x15 comes from (docs/fci-fast-path.md); the remote configuration may change it. */
  basicData?: BasicDataMode;
  dieAtWrite?: number;
  /** controller "mdb": the MDB cashless device on this UART (docs/mdb.md §8), beside the JSON-lines port. */
  mdb?: { tty: string; address?: number; level?: number; link?: "termios" | "stream" };
}

/** Where the PC host keeps its journal unless told otherwise: a git-ignored folder, not the working tree's root. */
export const DEFAULT_JOURNAL = path.join("var", "terminal.journal");

/** A failure the user can fix, said in one line; `exitCode` 2 for bad options and files, 1 for devices. */
export class StartupError extends CodedError {
  constructor(message: string, readonly exitCode: 1 | 2) {
    super("STARTUP", message);
  }
}

function readPem(file: string, what: string): string {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    const code = (error as { code?: string }).code;
    const why = code === "ENOENT" ? "no such file" : code === "EACCES" ? "permission denied" : code === "EISDIR" ? "it is a directory" : (error as Error).message;
    throw new StartupError(`cannot read ${what} ${file}: ${why}`, 2);
  }
  if (!/-----BEGIN [A-Z ]+-----/.test(text)) throw new StartupError(`${what} ${file} is not a PEM file (no -----BEGIN ... ----- line)`, 2);
  return text;
}

/** How long a busy port is tried again at start (serial-errors.ts, probePortPatiently). */
const PORT_BUSY_WAIT_MS = 3000;

export async function runPcTerminal(o: PcTerminalOptions, log: (line: string) => void): Promise<() => void> {
  const tls = {
    cert: readPem(o.cert, "the terminal certificate (--cert)"),
    key: readPem(o.key, "the terminal key (--key)"),
    ca: readPem(o.ca, "the front-ends' CA (--ca)"),
    esp32Ciphers: o.esp32Tls,
  };
  try {
    await probePortPatiently(o.pn532, 115200, "the PN532 port (--pn532)", PORT_BUSY_WAIT_MS);
    if (o.controller) await probePortPatiently(o.controller, 115200, "the controller port (--controller)", PORT_BUSY_WAIT_MS);
    if (o.mdb) await probePortPatiently(o.mdb.tty, 9600, "the MDB port (--mdb-port)", PORT_BUSY_WAIT_MS);
  } catch (error) {
    throw new StartupError((error as Error).message, 1);
  }
  const journalPath = o.journal ?? DEFAULT_JOURNAL;
  mkdirSync(path.dirname(path.resolve(journalPath)), { recursive: true });
  try {
    const node = await startNodeTerminal({
      // The driver raises the line to 921,600 after start-up (docs/pn532.md); CP210x, CH340 and FTDI adapters take it.
      pn532: { io: NodeSerial, path: o.pn532, baud: 115200, rates: [921600] },
      controller: o.controller ? { io: NodeSerial, path: o.controller, baud: 115200 } : { io: StdioSerial, baud: 115200 },
      tls,
      journalPath,
      config: { terminalId: o.terminalId, level1Url: o.frontend, strict: o.strict, recoveryWindowMs: o.recoveryWindowMs, cityCode: o.cityCode,
        ...(o.basicData ? { basicData: o.basicData } : {}), ...(o.statusEveryMs ? { statusEveryMs: o.statusEveryMs } : {}) },
      trace: log,
      mdb: o.mdb && {
        ...(o.mdb.link === "stream" ? streamMdb({ tty: o.mdb.tty, address: o.mdb.address })
          : termiosMdb({ tty: o.mdb.tty, address: o.mdb.address, onExit: (code, why) => log(`MDB helper ended (${code}): ${why}`) })),
        reader: { device: { level: o.mdb.level, serial: o.terminalId, manufacturer: "OTT", model: "TRANSIT-MDB" } },
      },
      wrapStorage: o.dieAtWrite === undefined ? undefined : (storage) => dyingStorage(storage, o.dieAtWrite!),
    });
    return () => node.close();
  } catch (error) {
    if (error instanceof Pn532Error) {
      throw new StartupError(`no PN532 answered on ${o.pn532} (${error.message}): check that it is the PN532's port, that the board ` +
        "is powered and set to HSU (UART) mode, and TX/RX are crossed; the line runs at 115200 baud", 1);
    }
    throw new StartupError(`the terminal could not start: ${(error as Error).message}`, 1);
  }
}

/**
 * A power cut as the fault-injection suite needs it: the whole process stops before write k reaches the file, with no
 * chance to send an event, an APDU or a completion after it. Everything before it was fdatasync'ed, as on a device.
 */
function dyingStorage(storage: JournalStorage, k: number): JournalStorage {
  let writes = 0;
  const cut = () => {
    if (++writes >= k) process.kill(process.pid, "SIGKILL");
  };
  return {
    size: storage.size, blockSize: storage.blockSize, read: (offset, length) => storage.read(offset, length),
    write: (offset, bytes) => { cut(); storage.write(offset, bytes); },
    eraseBlock: (block) => { cut(); storage.eraseBlock(block); },
  };
}
