/**
 * The chip's side of the HSU line: the serial port, its rate, and the modelled wire. Bytes out start no earlier than
 * the line is free and reach the host when their last byte would have left; bytes in are timed the same way.
 */
import type { SerialPort, SerialSpec } from "../../../modules/device/types";
import type { EmulatorContext } from "./context";

interface Outgoing {
  bytes: Uint8Array;
  due: number;
  check: (() => boolean) | undefined;
}

export class EmulatorLine {
  readonly #ctx: EmulatorContext;
  readonly #options: SerialSpec & { baud: number };
  #serial!: SerialPort;
  #baud: number;
  /** When the last byte queued on the line will have left. */
  #lineFree = 0;
  #outbox: Outgoing[] = [];
  /** When the last byte received would have finished arriving. */
  #rxLine = 0;

  /** `receive` gets every chunk the host sends; the port opens with open(). */
  constructor(ctx: EmulatorContext, serial: SerialSpec, receive: (bytes: Uint8Array) => void) {
    this.#ctx = ctx;
    this.#baud = serial.baud ?? ctx.timing.baud;
    const line = this;
    this.#options = {
      ...serial,
      baud: this.#baud,
      format: "buffer",
      onReadable(this: SerialPort) {
        if (this === line.#serial) line.#readable(this, receive);
      },
      onError(error: Error) {
        ctx.log?.(`serial error: ${error.message}`);
      },
    };
  }

  open(): void {
    this.#serial = new this.#options.io(this.#options);
  }

  /** The HSU rate the chip runs at now. */
  get baud(): number {
    return this.#baud;
  }

  get serial(): SerialPort {
    return this.#serial;
  }

  /** When the last byte received so far ends on the wire. */
  get receivedUntil(): number {
    return this.#rxLine;
  }

  /**
   * Moves the chip's UART to `baud`; false when it is there already. A pty carries bytes at any rate, so only the
   * timing model changes there; an in-memory line is reopened at the new rate, and frames sent at the other rate
   * arrive as garbage.
   */
  switchBaud(baud: number): boolean {
    if (baud === this.#baud) return false;
    this.#baud = baud;
    return true;
  }

  /** The port follows switchBaud(), after the timing model has. */
  reopen(): void {
    if (this.#options.path) return;
    try {
      this.#serial.close();
    } catch {
      // Gone already.
    }
    this.#serial = new this.#options.io({ ...this.#options, baud: this.#baud });
  }

  /** `count` bytes arrived from the host now. */
  received(count: number): void {
    this.#rxLine = Math.max(this.#rxLine, this.#ctx.now()) + count * this.#ctx.timing.byteTime;
  }

  /**
   * Puts bytes on the modelled line: they start no earlier than `earliest` nor before the line is free, and are
   * written when their last byte would have left, which is when a host would have them all.
   */
  transmit(bytes: Uint8Array, earliest: number, check?: () => boolean): void {
    const now = this.#ctx.now();
    const start = Math.max(now, earliest, this.#lineFree);
    this.#lineFree = start + bytes.length * this.#ctx.timing.byteTime;
    // One queue for the line: separate timers could fire out of order under load and put an answer before its ACK.
    this.#outbox.push({ bytes, due: this.#lineFree, check });
    if (this.#outbox.length === 1) this.#ctx.later(() => this.#pump(), this.#lineFree - now);
  }

  /** A slot of `count` bytes from `at` passes on the line with nothing in it (a lost frame). */
  skip(count: number, at: number): void {
    this.#lineFree = Math.max(this.#lineFree, at) + count * this.#ctx.timing.byteTime;
  }

  /** Drops everything not yet sent (the chip reset). */
  clear(): void {
    this.#outbox = [];
  }

  close(): void {
    try {
      this.#serial.close();
    } catch {
      // Closing twice or a port already gone: nothing left to free.
    }
  }

  #pump(): void {
    const now = this.#ctx.now();
    while (this.#outbox.length && this.#outbox[0]!.due <= now) {
      const { bytes, check } = this.#outbox.shift()!;
      if (check && !check()) continue;
      try {
        this.#serial.write(bytes);
        this.#ctx.stats.bytesOut += bytes.length;
      } catch (error) {
        this.#ctx.log?.(`write failed: ${(error as Error).message}`);
      }
    }
    const head = this.#outbox[0];
    if (head) this.#ctx.later(() => this.#pump(), head.due - now);
  }

  #readable(port: SerialPort, receive: (bytes: Uint8Array) => void): void {
    for (let chunk = port.read(); chunk !== undefined; chunk = port.read()) {
      const any = chunk as unknown as ArrayBuffer | Uint8Array;
      const bytes = any instanceof Uint8Array ? any : new Uint8Array(any);
      if (!bytes.length) break;
      receive(bytes);
    }
  }
}
