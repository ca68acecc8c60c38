/**
 * The harness's serial ports: the ECMA-419 serial shape (so ControllerLink and the PN532 emulator use them unchanged)
 * over `serialport`, with what a test rig needs on top: a clear error for a port that is missing or held by another
 * program, and reconnection when the port goes away and comes back (a USB adapter re-enumerating after the device
 * resets, or a pty pair made again).
 */
import { SerialPort as NodeSerialPort } from "serialport";
import type { SerialOptions, SerialPort } from "../../../modules/device/types";
import { ByteQueue } from "../../../hosts/node/byte-queue";

import { describeOpenError } from "../../../hosts/node/serial-errors";

export { HarnessPortError, describeOpenError, probePort, type HarnessPortErrorCode } from "../../../hosts/node/serial-errors";

export interface ReconnectingOptions extends SerialOptions {
  /** Called with each (re)connection and loss, for the run log. */
  onStatus?: (status: "open" | "lost" | "reopened", detail?: string) => void;
  /** How often to try the path again after it went away, ms. */
  retryMs?: number;
}

/** Bytes written while the port is gone are kept, up to this much, and sent once it is back. */
const PENDING_LIMIT = 64 * 1024;

export class ReconnectingSerial implements SerialPort {
  readonly path: string;
  readonly #options: ReconnectingOptions;
  #port: NodeSerialPort | undefined;
  readonly #received = new ByteQueue();
  #pending: Uint8Array[] = [];
  #closed = false;
  #retry: ReturnType<typeof setTimeout> | undefined;
  #everOpened = false;
  /** How many times the port came back after it was lost. */
  reconnects = 0;
  /** Settles when the port first opens, or fails with a HarnessPortError. */
  readonly opened: Promise<void>;

  constructor(options: ReconnectingOptions) {
    if (!options.path) throw new TypeError("ReconnectingSerial needs options.path");
    this.path = options.path;
    this.#options = options;
    this.opened = new Promise((resolve, reject) => this.#open(resolve, reject));
    this.opened.catch(() => {});
  }

  get connected(): boolean {
    return !!this.#port?.isOpen;
  }

  #open(resolve?: () => void, reject?: (e: Error) => void): void {
    const port = new NodeSerialPort({ path: this.path, baudRate: this.#options.baud ?? 115200, autoOpen: false });
    port.open((error) => {
      if (this.#closed) {
        if (!error) port.close(() => {});
        return;
      }
      if (error) {
        if (reject) {
          reject(describeOpenError(this.path, error));
          return;
        }
        this.#scheduleRetry();
        return;
      }
      this.#port = port;
      port.on("data", (data: Buffer) => {
        if (this.#closed) return;
        this.#received.push(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
        this.#options.onReadable?.call(this, this.#received.available);
      });
      // A pty whose other side vanished, or a USB adapter unplugged, ends in "close" (often after an "error").
      port.on("error", () => {});
      port.on("close", () => this.#lost("closed"));
      const first = !this.#everOpened;
      this.#everOpened = true;
      if (!first) this.reconnects++;
      this.#options.onStatus?.(first ? "open" : "reopened");
      for (const bytes of this.#pending.splice(0)) port.write(Buffer.from(bytes));
      resolve?.();
      this.#options.onWritable?.call(this, PENDING_LIMIT);
    });
  }

  #lost(detail: string): void {
    if (this.#closed || !this.#port) return;
    this.#port.removeAllListeners();
    this.#port = undefined;
    this.#options.onStatus?.("lost", detail);
    this.#scheduleRetry();
  }

  #scheduleRetry(): void {
    if (this.#closed || this.#retry) return;
    this.#retry = setTimeout(() => {
      this.#retry = undefined;
      if (!this.#closed) this.#open();
    }, this.#options.retryMs ?? 200);
  }

  /**
   * Reopens the port now, as after a reset: a pty made again under the same name is a new device, and a handle on
   * the old one would never see a byte again.
   */
  reopen(): void {
    if (this.#closed) return;
    const old = this.#port;
    if (old) {
      old.removeAllListeners();
      this.#port = undefined;
      old.on("error", () => {});
      if (old.isOpen) old.close(() => {});
    }
    this.#options.onStatus?.("lost", "reopen requested");
    this.#scheduleRetry();
  }

  read(): ArrayBuffer | undefined {
    return this.#received.take();
  }

  write(data: ArrayBuffer | Uint8Array): void {
    if (this.#closed) throw new Error("serial port is closed");
    const bytes = new Uint8Array(data instanceof Uint8Array ? data : new Uint8Array(data));
    if (this.#port?.isOpen) {
      this.#port.write(Buffer.from(bytes));
      return;
    }
    const queued = this.#pending.reduce((n, b) => n + b.length, 0);
    if (queued + bytes.length > PENDING_LIMIT) throw new Error("serial output buffer full while the port is away");
    this.#pending.push(bytes);
  }

  /** Pulses DTR and RTS: on ESP32 boards with the usual auto-reset circuit this resets the chip. */
  async pulseReset(ms = 100): Promise<boolean> {
    const port = this.#port;
    if (!port?.isOpen) return false;
    const set = (flags: { dtr: boolean; rts: boolean }) => new Promise<boolean>((resolve) => port.set(flags, (e) => resolve(!e)));
    if (!(await set({ dtr: false, rts: true }))) return false;
    await new Promise((r) => setTimeout(r, ms));
    return set({ dtr: true, rts: false });
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#retry) clearTimeout(this.#retry);
    const port = this.#port;
    this.#port = undefined;
    if (port) {
      port.removeAllListeners();
      port.on("error", () => {});
      if (port.isOpen) port.close(() => {});
    }
  }
}
