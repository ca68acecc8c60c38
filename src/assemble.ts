/**
 * The terminal assembled from whatever `device` a host gives: PN532 + controller port + journal + front-end client +
 * terminal + indicator. hosts/esp32 gives it Moddable's classes, hosts/node serialport, node:https and a file, and
 * hosts/xs classes that forward to a Node parent: one assembly, so every host runs the same terminal.
 */
import type { Clock, HttpsConnector, SerialSpec, Timers } from "../modules/device/types";
import { FrontendClient } from "../modules/frontend-client/client";
import { Journal } from "../modules/journal/journal";
import type { JournalStorage } from "../modules/journal/storage";
import { PN532 } from "../modules/pn532/driver";
import { ControllerPort } from "./controller";
import { Indicator, type IndicatorOptions } from "./indicator";
import { MdbReader, type MdbReaderOptions } from "./mdb-reader";
import { pn532Reader } from "./reader";
import type { HeapInfo } from "./telemetry";
import { Terminal, type TerminalConfig, type TerminalEvent } from "./terminal";

export interface TerminalDevice {
  pn532: SerialSpec;
  /**
   * The PN532's line rates (the driver's defaults without it: raise the UART to 921,600 when the host lists it, cards to
   * 424 kbps): the UART rates to try after start-up, fastest first, and the highest radio bit rate (docs/pn532.md).
   */
  pn532Line?: { baudRates?: readonly number[]; maxBitRate?: number };
  /** The JSON-lines controller port; optional when the VMC asks for payments over MDB. */
  controller?: SerialSpec;
  /** controller "mdb": the terminal is the vending machine's MDB cashless device on this link (docs/mdb.md §9). */
  mdb?: TerminalMdb;
  connector: HttpsConnector;
  storage: JournalStorage;
  timers: Timers;
  clock: Clock;
  /** LED and buzzer, or RGB LED; none on a terminal whose controller has a screen. */
  indicator?: Omit<IndicatorOptions, "timers">;
  trace?: (line: string) => void;
  /** How long the PN532's first ACK may take after the wake-up (a busy PC with a USB adapter needs longer). */
  wakeUpTimeout?: number;
  /** How long to wait for an ACK before resending a repeatable command (a loaded PC answers later than a chip). */
  ackTimeout?: number;
  /** The XS heap for the status reports (the ESP32 reads Moddable's Instrumentation); none where the host cannot tell. */
  heap?: () => HeapInfo | undefined;
}

/** The MDB link a host opens (a byte stream in the docs/mdb.md §5 encoding, or the ESP32's native core). */
export interface TerminalMdb {
  link: MdbReaderOptions["link"];
  close?(): void;
  reader?: Omit<MdbReaderOptions, "link" | "terminal" | "timers">;
}

export interface RunningTerminal {
  terminal: Terminal;
  pn532: PN532;
  controller: ControllerPort | undefined;
  mdb: MdbReader | undefined;
  client: FrontendClient;
  journal: Journal;
  indicator: Indicator | undefined;
  close(): void;
}

export async function assembleTerminal(device: TerminalDevice, config: TerminalConfig, onEvent?: (event: TerminalEvent) => void): Promise<RunningTerminal> {
  const journal = new Journal({ storage: device.storage });
  const trace = device.trace;
  const pn532 = new PN532({ serial: device.pn532, timers: device.timers, wakeUpTimeout: device.wakeUpTimeout, ackTimeout: device.ackTimeout,
    ...device.pn532Line, onError: (e) => trace?.(`PN532: ${e.message}`),
    // Which rate the line runs at, and why it fell back, is the first thing to look at when a reader is slow.
    onLine: (e) => trace?.(`PN532 line: ${e.kind}${"baud" in e ? ` ${e.baud} baud` : ` ${e.kbps} kbps`}${"tried" in e ? ` (tried ${e.tried})` : ""}${"reason" in e && e.reason ? `: ${e.reason}` : ""}`),
  });
  const controller = device.controller ? new ControllerPort({ serial: device.controller, timers: device.timers }) : undefined;
  let mdb: MdbReader | undefined;
  const client = new FrontendClient({ connector: device.connector });
  let indicator: Indicator | undefined;
  try {
    indicator = device.indicator ? new Indicator({ ...device.indicator, timers: device.timers }) : undefined;
  } catch (error) {
    // A terminal whose prompt pins cannot be opened still takes payments: the controller port is what vends.
    trace?.(`indicator: ${(error as Error).message}`);
  }
  const terminal = new Terminal({
    reader: pn532Reader(pn532), client, journal, timers: device.timers, clock: device.clock, config, trace, heap: device.heap,
    onEvent: (event) => {
      controller?.send(event);
      mdb?.event(event);
      indicator?.onEvent(event);
      onEvent?.(event);
    },
  });
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    mdb?.close();
    device.mdb?.close?.();
    terminal.close();
    controller?.close();
    pn532.close();
    client.close();
    indicator?.close();
  };
  try {
    await pn532.start();
    controller?.attach(terminal);
    await terminal.start();
    // The VMC's initialisation may come at any time; vends wait for a started terminal.
    if (device.mdb) mdb = new MdbReader({ ...device.mdb.reader, link: device.mdb.link, terminal, refunds: terminal, timers: device.timers, trace: device.mdb.reader?.trace ?? trace });
  } catch (error) {
    close();
    throw error;
  }
  return { terminal, pn532, controller, mdb, client, journal, indicator, close };
}
