/**
 * The terminal on a PC: the same src/ and modules/ as on the ESP32, given a Node `device`: serial lines over
 * serialport (or in-memory), HTTPS over node:https with the terminal's client certificate, the journal in a file.
 */
import type { SerialSpec } from "../../modules/device/types";
import { FrontendClient } from "../../modules/frontend-client/client";
import { Journal } from "../../modules/journal/journal";
import type { JournalStorage } from "../../modules/journal/storage";
import { PN532 } from "../../modules/pn532/driver";
import { ControllerPort } from "../../src/controller";
import { pn532Reader } from "../../src/reader";
import { Terminal, type TerminalConfig, type TerminalEvent } from "../../src/terminal";
import { NodeHttpsConnector, type NodeHttpsOptions } from "./https";
import { nodeTimers } from "./serial";
import { FileJournalStorage } from "./storage";

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
  trace?: (line: string) => void;
  /** Sees every event the controller port is sent. */
  onEvent?: (event: TerminalEvent) => void;
}

export interface NodeTerminal {
  terminal: Terminal;
  pn532: PN532;
  controller: ControllerPort;
  client: FrontendClient;
  journal: Journal;
  close(): void;
}

export async function startNodeTerminal(options: NodeTerminalOptions): Promise<NodeTerminal> {
  const storage = new FileJournalStorage(options.journalPath, { size: options.journalSize ?? 64 * 1024, blockSize: options.journalBlockSize });
  let journal: Journal;
  try {
    journal = new Journal({ storage: options.wrapStorage ? options.wrapStorage(storage) : storage });
  } catch (error) {
    storage.close();
    throw error;
  }
  // A PC may be busy and a USB adapter slow to deliver the first bytes: give the wake-up ACK the second libnfc allows.
  const pn532 = new PN532({ serial: options.pn532, timers: nodeTimers, wakeUpTimeout: 1000, onError: (e) => options.trace?.(`  PN532: ${e.message}`) });
  const controller = new ControllerPort({ serial: options.controller, timers: nodeTimers });
  const client = new FrontendClient({ connector: new NodeHttpsConnector(options.tls) });
  const terminal = new Terminal({
    reader: pn532Reader(pn532), client, journal, timers: nodeTimers, clock: { now: () => Date.now() }, config: options.config,
    trace: options.trace,
    onEvent: (event) => {
      controller.send(event);
      options.onEvent?.(event);
    },
  });
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    terminal.close();
    controller.close();
    pn532.close();
    client.close();
    storage.close();
  };
  try {
    await pn532.start();
    controller.attach(terminal);
    await terminal.start();
  } catch (error) {
    close();
    throw error;
  }
  return { terminal, pn532, controller, client, journal, close };
}
