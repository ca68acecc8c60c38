/**
 * The shape of the host a device module runs on: the parts of Moddable's ECMA-419 `device` provider that the
 * terminal uses, written down once so that hosts/esp32 (Moddable's own classes) and hosts/node (serialport, node:https,
 * files) can supply the same thing. Types only: every layer may import it.
 */

/** Timers as Moddable's `Timer.set` / `Timer.clear`, plus a millisecond clock (`Time.ticks`). */
export interface Timers {
  set(callback: () => void, ms: number): unknown;
  clear(handle: unknown): void;
  now(): number;
}

/** An open serial line in the ECMA-419 IO class pattern with `format: "buffer"`. */
export interface SerialPort {
  /** Every byte available now, or undefined when there are none. */
  read(): ArrayBuffer | undefined;
  /** Queues bytes; throws when the output buffer cannot take all of them. */
  write(data: ArrayBuffer | Uint8Array): void;
  close(): void;
}

export interface SerialOptions {
  baud: number;
  port?: number;
  receive?: number;
  transmit?: number;
  /** Hosts that name serial lines by path (Node, Moddable's lin/mac) take it here. */
  path?: string;
  format?: "buffer";
  onReadable?: (this: SerialPort, count: number) => void;
  onWritable?: (this: SerialPort, count: number) => void;
  onError?: (this: SerialPort, error: Error) => void;
}

export type SerialClass = new (options: SerialOptions) => SerialPort;

/** How device code is handed a serial line: the class and its options, as `device.Serial.default` is. */
export interface SerialSpec extends Partial<SerialOptions> {
  io: SerialClass;
}
