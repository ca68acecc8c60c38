import type { SerialPort, SerialSpec, Timers } from "../modules/device/types";
import { decodeUtf8, encodeUtf8 } from "../modules/bytes/bytes";
import { TerminalError, type Terminal, type TerminalEvent } from "./terminal";

/**
 * The controller port: JSON lines over a serial line, one object per line, as a vending controller speaks it.
 * Requests: {"type":"pay","amount":350,"order":"A-1","timeoutMs":30000}, {"type":"cancel"}, {"type":"status"}.
 * Events: {"event":"waiting-for-card"|"reader-fault"|"card-read"|"approved"|"declined"|"unknown-outcome"|"resolved"|"error"|"status",...};
 * each order gets exactly one final event: approved, declined or unknown-outcome (docs/reference/controller-port.md).
 * A request that is not valid gets an error event and changes nothing.
 */

export interface ControllerPortOptions {
  serial: SerialSpec;
  timers: Timers;
  /** The longest request line accepted, bytes. */
  maxLine?: number;
}

const NEWLINE = 0x0a;
/**
 * The most one write hands the UART. ECMA-419 writes are all or nothing, and the ESP32's serial throws "output full"
 * for anything larger than the room left in its 128-byte hardware FIFO: an event line longer than that could never
 * be written whole (docs/moddable.md, "Serial writes"). Half the FIFO, so a piece fits while the previous one drains.
 */
const MAX_WRITE = 64;
const RETRY_MS = 10;

export class ControllerPort {
  readonly #serial: SerialPort;
  readonly #timers: Timers;
  readonly #maxLine: number;
  #terminal: Terminal | undefined;
  #line: number[] = [];
  #discarding = false;
  #out: Uint8Array[] = [];
  #flushTimer: unknown;
  #flushing = false;
  #closed = false;
  #sentAny = false;
  /** The terminal's pay() in flight, its order, whether its answer went out, and the one pay waiting for it. */
  #paying: Promise<void> | undefined;
  #payingOrder: string | undefined;
  #answered = false;
  #next: { amount: number; order: string; timeoutMs?: number } | undefined;

  constructor(options: ControllerPortOptions) {
    this.#timers = options.timers;
    this.#maxLine = options.maxLine ?? 1024;
    const port = this;
    this.#serial = new options.serial.io({
      baud: 115200,
      ...options.serial,
      format: "buffer",
      onReadable(this: SerialPort) {
        port.#readable(this);
      },
    });
  }

  /** The terminal whose events this port reports and to which it passes requests. */
  attach(terminal: Terminal): void {
    this.#terminal = terminal;
  }

  send(event: TerminalEvent | { event: string; [key: string]: unknown }): void {
    if (this.#closed) return;
    if ((event.event === "approved" || event.event === "declined") && "order" in event && event.order === this.#payingOrder) this.#answered = true;
    // The first line starts with a line break: a run that died mid-line (a power cut between two pieces) left a
    // fragment on the line, and the break ends it there instead of gluing it to this line.
    this.#out.push(encodeUtf8((this.#sentAny ? "" : "\n") + JSON.stringify(event) + "\n"));
    this.#sentAny = true;
    // A flush already waiting for room sends this line after the ones before it.
    // (And one already writing, e.g. a request answered from inside a write, picks it up in its loop.)
    if (this.#flushTimer === undefined && !this.#flushing) this.#flush();
  }

  close(): void {
    this.#closed = true;
    if (this.#flushTimer !== undefined) this.#timers.clear(this.#flushTimer);
    try {
      this.#serial.close();
    } catch {
      // Already closed.
    }
  }

  #flush(): void {
    this.#flushTimer = undefined;
    this.#flushing = true;
    try {
      this.#drain();
    } finally {
      this.#flushing = false;
    }
  }

  #drain(): void {
    while (this.#out.length) {
      const line = this.#out[0]!;
      const piece = line.length > MAX_WRITE ? line.subarray(0, MAX_WRITE) : line;
      try {
        this.#serial.write(piece);
      } catch {
        // The UART's buffer is full: try the same piece again shortly rather than drop an event.
        this.#flushTimer = this.#timers.set(() => this.#flush(), RETRY_MS);
        return;
      }
      if (piece === line) this.#out.shift();
      else this.#out[0] = line.subarray(MAX_WRITE);
    }
  }

  /**
   * Starts a payment. The terminal emits its answer (approved, declined) a few promise turns before it is idle. On
   * Moddable those turns are not all run before the next serial callback (the SDK queues promise jobs as an event
   * among the IO events: docs/moddable.md, "Promise jobs"), so a controller that pays again as soon as it reads the
   * answer would be refused BUSY: that request waits here for the terminal instead.
   */
  #pay(terminal: Terminal, request: { amount: number; order: string; timeoutMs?: number }): void {
    // pay() throws (BUSY, BAD_AMOUNT...) before anything starts: then the payment in flight keeps its bookkeeping.
    const started = terminal.pay(request);
    this.#answered = false;
    this.#payingOrder = request.order;
    const paying: Promise<void> = started.catch((error: Error) => {
      this.send({ event: "error", code: "INTERNAL", message: error.message, order: request.order });
    }).finally(() => {
      if (this.#paying !== paying) return;
      this.#paying = undefined;
      const next = this.#next;
      this.#next = undefined;
      if (!next || this.#closed) return;
      try {
        this.#pay(terminal, next);
      } catch (error) {
        this.send({ event: "error", code: error instanceof TerminalError ? error.code : "BAD_REQUEST", message: (error as Error).message, order: next.order });
      }
    });
    this.#paying = paying;
  }

  #readable(port: SerialPort): void {
    for (;;) {
      const chunk = port.read();
      if (!chunk) return;
      const bytes = new Uint8Array(chunk);
      for (const b of bytes) {
        if (b === NEWLINE) {
          const line = this.#line;
          this.#line = [];
          if (this.#discarding) {
            this.#discarding = false;
            this.send({ event: "error", code: "LINE_TOO_LONG", message: `request longer than ${this.#maxLine} bytes` });
          } else {
            this.#request(new Uint8Array(line));
          }
        } else if (!this.#discarding) {
          this.#line.push(b);
          if (this.#line.length > this.#maxLine) {
            this.#discarding = true;
            this.#line = [];
          }
        }
      }
    }
  }

  #request(bytes: Uint8Array): void {
    const text = decodeUtf8(bytes).trim();
    if (!text) return;
    let request: { type?: unknown; amount?: unknown; order?: unknown; timeoutMs?: unknown };
    try {
      request = JSON.parse(text);
    } catch {
      this.send({ event: "error", code: "BAD_REQUEST", message: "request is not JSON" });
      return;
    }
    if (!request || typeof request !== "object" || Array.isArray(request)) {
      this.send({ event: "error", code: "BAD_REQUEST", message: "request must be a JSON object" });
      return;
    }
    const terminal = this.#terminal;
    if (!terminal) {
      this.send({ event: "error", code: "NOT_READY", message: "terminal is starting" });
      return;
    }
    try {
      switch (request.type) {
        case "pay": {
          const { amount, order, timeoutMs } = request;
          if (typeof amount !== "number" || typeof order !== "string" || (timeoutMs !== undefined && typeof timeoutMs !== "number")) {
            this.send({ event: "error", code: "BAD_REQUEST", message: "pay needs amount (fen), order, and optionally timeoutMs" });
            return;
          }
          if (this.#paying && this.#answered) {
            // The payment in flight has given its answer and is only letting go of the card: the controller may
            // go on. One request waits for it; a second one is refused as any pay while busy.
            if (this.#next) throw new TerminalError("BUSY", "cannot take a payment while processing");
            this.#next = { amount, order, timeoutMs };
            return;
          }
          this.#pay(terminal, { amount, order, timeoutMs });
          return;
        }
        case "cancel":
          if (!terminal.cancel()) this.send({ event: "error", code: "NOT_CANCELLABLE", message: `nothing to cancel while ${terminal.state}` });
          return;
        case "status": {
          // A payment that has answered is over for the controller (its next pay is taken, see #pay): the promise
          // turns the terminal still has to run must not show as "processing".
          const status = terminal.status();
          this.send(this.#paying && this.#answered && "state" in status && status.state === "processing" ? { ...status, state: "idle", phase: undefined, order: undefined } : status);
          return;
        }
        default:
          this.send({ event: "error", code: "BAD_REQUEST", message: `unknown request type ${JSON.stringify(request.type)}` });
      }
    } catch (error) {
      const code = error instanceof TerminalError ? error.code : "BAD_REQUEST";
      // A refused pay names its order: that request never started and its order gets nothing else. Not when it
      // repeats the order of the payment under way, whose final event is still to come (controller-port.md).
      const order = request.type === "pay" && typeof request.order === "string" && !(this.#paying && request.order === this.#payingOrder)
        ? request.order : undefined;
      this.send({ event: "error", code, message: (error as Error).message, ...(order !== undefined ? { order } : {}) });
    }
  }
}
