/**
 * The ECMA-419 serial shape (`embedded:io/serial` with `format: "buffer"`) over the `serialport` package, so device
 * code such as modules/pn532 runs on Node against a real PN532 on /dev/ttyUSB0 or the emulator on a pty.
 */
import { SerialPort as NodeSerialPort } from "serialport";
import type { SerialOptions, SerialPort, Timers } from "../../modules/device/types";
import { ByteQueue } from "./byte-queue";

/** Bytes queued in Node beyond this make write() throw, as a full UART FIFO does on the device. */
const OUTPUT_LIMIT = 64 * 1024;

export class NodeSerial implements SerialPort {
  readonly path: string;
  readonly #port: NodeSerialPort;
  readonly #options: SerialOptions;
  readonly #received = new ByteQueue();
  #closed = false;
  /** Settles when the port is open (or failed to open); device code never needs it, tests and tools may. */
  readonly opened: Promise<void>;

  constructor(options: SerialOptions) {
    if (!options.path) throw new TypeError("NodeSerial needs options.path (e.g. /dev/ttyUSB0)");
    if (options.format && options.format !== "buffer") throw new TypeError("NodeSerial supports format \"buffer\" only");
    this.path = options.path;
    this.#options = options;
    this.#port = new NodeSerialPort({ path: options.path, baudRate: options.baud, autoOpen: false });
    this.#port.on("data", (data: Buffer) => {
      if (this.#closed) return;
      this.#received.push(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      this.#options.onReadable?.call(this, this.#received.available);
    });
    this.#port.on("error", (error: Error) => {
      if (!this.#closed) this.#options.onError?.call(this, error);
    });
    this.opened = new Promise((resolve, reject) => {
      this.#port.open((error) => {
        if (error) {
          if (!this.#closed) this.#options.onError?.call(this, error);
          reject(error);
          return;
        }
        resolve();
        if (!this.#closed) this.#options.onWritable?.call(this, OUTPUT_LIMIT);
      });
    });
    this.opened.catch(() => {});
  }

  read(): ArrayBuffer | undefined {
    return this.#received.take();
  }

  write(data: ArrayBuffer | Uint8Array): void {
    if (this.#closed) throw new Error("serial port is closed");
    const bytes = data instanceof Uint8Array ? data : new Uint8Array(data);
    if (this.#port.writableLength + bytes.length > OUTPUT_LIMIT) throw new Error("serial output buffer full");
    // Copy: the caller may reuse its buffer before Node has sent it.
    this.#port.write(Buffer.from(bytes));
  }

  /**
   * Changes the line rate without closing (a pty stays open; a USB adapter retunes). The caller lets its last bytes
   * at the old rate leave first (the PN532 driver waits out its ACK's wire time).
   */
  setBaud(baud: number): void {
    if (this.#closed) throw new Error("serial port is closed");
    if (this.#port.isOpen) this.#port.update({ baudRate: baud }, () => {});
    else this.opened.then(() => this.#port.update({ baudRate: baud }, () => {}), () => {});
  }

  /** Discards unread input (libnfc does this before every command; so may tools). */
  flushInput(): void {
    this.#received.clear();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#received.clear();
    if (this.#port.isOpen) this.#port.close(() => {});
    else this.opened.then(() => this.#port.close(() => {}), () => {});
  }
}

/** Moddable's `Timer` and `Time.ticks`, from Node's timers, for device code running under Node. */
export const nodeTimers: Timers = {
  set(callback: () => void, ms: number): unknown {
    return setTimeout(callback, Math.max(0, ms));
  },
  repeat(callback: () => void, ms: number): unknown {
    return setInterval(callback, Math.max(1, ms));
  },
  clear(handle: unknown): void {
    // clearTimeout and clearInterval take each other's handles in Node.
    if (handle !== undefined) clearTimeout(handle as NodeJS.Timeout);
  },
  now(): number {
    return performance.now();
  },
};
