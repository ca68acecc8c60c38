/**
 * The PN532 emulator's programmatic API: start it on a serial path (a pty end or a real port) or on one end of an
 * in-memory line, host cards, place and remove them, change timing, inject faults.
 */
import type { SerialSpec } from "../../../modules/device/types";
import { createMemorySerialPair, type MemorySerialOptions } from "../../../hosts/node/serial-memory";
import { NodeSerial } from "../../../hosts/node/serial";
import { Pn532Emulator, type EmulatorOptions, type HostedCard } from "./emulator";

export * from "./emulator";
export { createMemorySerialPair } from "../../../hosts/node/serial-memory";
export { createPtyPair, hasSocat, PTY_INSTALL_HINT, type PtyPair } from "../../../hosts/node/pty";

export interface StartOptions extends Omit<EmulatorOptions, "serial"> {
  /** A serial path: one end of a pty pair, or a real port (/dev/ttyUSB0) to play the PN532 to a terminal. */
  path?: string;
  baud?: number;
  /** Or any ECMA-419 serial spec (one end of createMemorySerialPair()). */
  serial?: SerialSpec;
}

/** Opens the line and starts answering; resolves once a path-based port is open. */
export async function startEmulator(options: StartOptions): Promise<Pn532Emulator> {
  const baud = options.baud ?? options.timing?.baud ?? 115200;
  let serial = options.serial;
  if (!serial) {
    if (!options.path) throw new TypeError("startEmulator needs a path or a serial spec");
    serial = { io: NodeSerial, path: options.path, baud };
  }
  const emulator = new Pn532Emulator({ ...options, serial: { baud, ...serial } });
  const port = emulator.serial;
  if (port instanceof NodeSerial) await port.opened;
  return emulator;
}

/**
 * Driver and emulator in one process with no pty tool: returns the emulator and the serial spec for the driver
 * (`new PN532({serial: link.serial, timers})`). A byte time in `line` makes the wire as slow as a UART.
 */
export function startInMemory(options: Omit<StartOptions, "path" | "serial"> & { line?: MemorySerialOptions } = {}): {
  emulator: Pn532Emulator;
  serial: SerialSpec;
  counts: { hostToDevice: number; deviceToHost: number };
} {
  const pair = createMemorySerialPair(options.line);
  const baud = options.baud ?? 115200;
  const emulator = new Pn532Emulator({ ...options, serial: { io: pair.device, baud } });
  return { emulator, serial: { io: pair.host, baud }, counts: pair.counts };
}

/** One step of a card script: at `at` ms from the start, place or remove card number `card`. */
export interface ScriptStep {
  at: number;
  action: "place" | "remove";
  card: number;
}

/** Plays a script of card movements against a running emulator; cancel() stops what has not happened yet. */
export function runScript(emulator: Pn532Emulator, steps: readonly ScriptStep[]): { done: Promise<void>; cancel(): void } {
  const timers: ReturnType<typeof setTimeout>[] = [];
  let finish!: () => void;
  const done = new Promise<void>((resolve) => { finish = resolve; });
  let left = steps.length;
  if (!left) finish();
  for (const step of steps) {
    timers.push(setTimeout(() => {
      if (step.action === "place") emulator.place(step.card);
      else emulator.remove(step.card);
      if (--left === 0) finish();
    }, step.at));
  }
  return {
    done,
    cancel() {
      for (const t of timers) clearTimeout(t);
      finish();
    },
  };
}

export function isHostedCard(value: unknown): value is HostedCard {
  return !!value && typeof (value as HostedCard).process === "function" && (value as HostedCard).uid instanceof Uint8Array;
}
