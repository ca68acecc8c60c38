/**
 * The terminal on a PC: the same src/ and modules/ as on the ESP32, given a Node `device`: serial lines over
 * serialport (or in-memory), HTTPS over node:https with the terminal's client certificate, the journal in a file.
 */
import type { SerialSpec } from "../../modules/device/types";
import type { JournalStorage } from "../../modules/journal/storage";
import { assembleTerminal, type RunningTerminal, type TerminalMdb } from "../../src/assemble";
import type { TerminalConfig, TerminalEvent } from "../../src/terminal";
import { NodeHttpsConnector, type NodeHttpsOptions } from "./https";
import { nodeTimers } from "./serial";
import { FileJournalStorage } from "./storage";
import { readFileSync } from "node:fs";

/** The firmware version the status reports name: package.json's. */
export const FIRMWARE_VERSION = (JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string }).version;

export interface NodeTerminalOptions {
  /** The PN532's serial line: `{io: NodeSerial, path: "/dev/ttyUSB0", baud: 115200}`, a pty, or an in-memory end. */
  pn532: SerialSpec;
  /** The controller port's serial line. */
  controller: SerialSpec;
  tls: NodeHttpsOptions;
  journalPath: string;
  journalSize?: number;
  journalBlockSize?: number;
  /** Wraps the journal's file storage (the fault-injection tests cut the power at a chosen write). */
  wrapStorage?: (storage: JournalStorage) => JournalStorage;
  config: TerminalConfig;
  /** controller "mdb": the MDB link (hosts/node/mdb-termios.ts on a real UART, or a StreamLink on a pty). */
  mdb?: TerminalMdb;
  trace?: (line: string) => void;
  /** Sees every event the controller port is sent. */
  onEvent?: (event: TerminalEvent) => void;
}

export type NodeTerminal = RunningTerminal;

export async function startNodeTerminal(options: NodeTerminalOptions): Promise<NodeTerminal> {
  const storage = new FileJournalStorage(options.journalPath, { size: options.journalSize ?? 64 * 1024, blockSize: options.journalBlockSize });
  let running: RunningTerminal;
  try {
    running = await assembleTerminal({
      pn532: options.pn532, controller: options.controller, mdb: options.mdb, connector: new NodeHttpsConnector(options.tls),
      storage: options.wrapStorage ? options.wrapStorage(storage) : storage, timers: nodeTimers, clock: { now: () => Date.now() },
      trace: options.trace,
      // A PC may be busy and a USB adapter slow to deliver the first bytes: give the wake-up ACK the second libnfc allows.
      wakeUpTimeout: 1000,
      // The same busy PC can deliver any ACK late; a resend costs nothing but a lost frame is rare, so wait longer than
      // the chip's 15 ms (docs/pn532.md) before resending.
      ackTimeout: 250,
      // V8's heap stands in for the XS heap a device reports.
      heap: () => ({ usedBytes: process.memoryUsage().heapUsed }),
    }, { firmware: FIRMWARE_VERSION, ...options.config }, options.onEvent);
  } catch (error) {
    storage.close();
    throw error;
  }
  return {
    ...running,
    close() {
      running.close();
      storage.close();
    },
  };
}
