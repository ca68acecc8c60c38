/**
 * The PN532's HSU link: frames on the serial line, one command on the wire at a time. Frame out, ACK back (resent
 * when it does not come, UM §6.2.3), then the response (NACKed when damaged, aborted with an ACK when late). Every
 * wait is on the host's timers; cancelAll() and close() end them all. The chip's commands live in chip.ts.
 */
import { concatBytes } from "../bytes/bytes";
import type { SerialOptions, SerialPort, SerialSpec, Timers } from "../device/types";
import { CARD_COMMANDS } from "./commands";
import { Pn532ApplicationError, Pn532ClosedError, Pn532FrameError, Pn532IoError, Pn532TimeoutError } from "./errors";
import { CommandQueue } from "./queue";
import { ACK_FRAME, FrameParser, NACK_FRAME, TFI_HOST, TFI_PN532, WAKE_UP, encodeFrame, type Frame, type FrameFault } from "./frame";

export interface LinkOptions {
  /** The serial line: `{io: device.io.Serial, port, receive, transmit, baud}` on the ESP32, `{io: NodeSerial, path}` on Node. */
  serial: SerialSpec;
  timers: Timers;
  /** Problems no caller is waiting for: serial errors, damaged frames while idle. */
  onError?: (error: Error) => void;
  /** Wait for the ACK after the frame has left, ms. UM says 15 ms; USB-serial adapters add up to 16 ms latency. */
  ackTimeout?: number;
  /** Resends of a command whose ACK did not come. Card commands (InDataExchange, InCommunicateThru) are never resent. */
  ackRetries?: number;
  /**
   * A timer firing more than this many ms after it was due means the host stalled (a TLS handshake, GC): the wait
   * starts again instead of counting the stall as the chip's silence.
   */
  lateSlack?: number;
  /** Default wait for a response after the ACK, ms. */
  responseTimeout?: number;
  /** NACKs sent for one damaged response before giving up. */
  nackRetries?: number;
  /** Wait for the ACK of the wake-up SAMConfiguration: the chip's oscillator starts first (libnfc allows 1000 ms). */
  wakeUpTimeout?: number;
  /** Sees every byte written and read, for traces and wire counts. */
  trace?: (direction: "out" | "in", bytes: Uint8Array) => void;
}

export interface Pn532Stats {
  /** Waits restarted because their timer fired late (the host stalled). */
  stalls: number;
  bytesOut: number;
  bytesIn: number;
  commands: number;
  resends: number;
  nacks: number;
  aborts: number;
  faults: number;
}

export type LinkState = "idle" | "ack" | "response";

interface Pending {
  code: number;
  frame: Uint8Array;
  wake: boolean;
  timeout: number;
  sends: number;
  nacks: number;
  acked: boolean;
  /** False for card commands: the chip may have run one whose ACK was lost, so a resend could run it twice on the card. */
  repeatable: boolean;
  timer: unknown;
  /** When the running timer is due, and which arming it is (a wait re-armed from a callback must not fire twice). */
  due: number;
  arming: number;
  stalls: number;
  resolve: (data: Uint8Array) => void;
  reject: (error: Error) => void;
}

/** Restarts of one wait for host stalls before silence is believed: a host that stalls for ever still ends a command. */
const MAX_STALLS = 4;

export class Link {
  readonly timers: Timers;
  readonly #onError: ((error: Error) => void) | undefined;
  readonly #trace: ((direction: "out" | "in", bytes: Uint8Array) => void) | undefined;
  readonly #parser: FrameParser;
  readonly #spec: SerialSpec;
  readonly #portOptions: SerialOptions;
  #serial: SerialPort;
  /** The rate the chip starts at after power-up or reset; the line comes back to it whenever in doubt. */
  readonly startBaud: number;
  #baud: number;
  /** Rates the host's UART can run at (`serial.rates`); none means it stays at the start rate. */
  readonly hostRates: readonly number[];
  /** An ACK never came at a raised rate: the chip may have reset to its start rate; checked before the next command. */
  lineSuspect = false;
  /** The chip starts in LowVbat and sleeps after PowerDown: either way it needs the HSU wake-up and SAMConfiguration. */
  asleep = true;
  readonly #ackTimeout: number;
  readonly #ackRetries: number;
  readonly #lateSlack: number;
  readonly responseTimeout: number;
  readonly #nackRetries: number;
  readonly #wakeUpTimeout: number;
  #state: LinkState = "idle";
  #pending: Pending | undefined;
  readonly #queue: CommandQueue;
  #closed = false;
  /** Code of the last command given up on, or resent, whose (other) answer could still arrive late; -1 for none. */
  #unanswered = -1;
  readonly stats: Pn532Stats = { stalls: 0, bytesOut: 0, bytesIn: 0, commands: 0, resends: 0, nacks: 0, aborts: 0, faults: 0 };

  constructor(options: LinkOptions) {
    this.timers = options.timers;
    this.#onError = options.onError;
    this.#trace = options.trace;
    this.#spec = options.serial;
    this.startBaud = options.serial.baud ?? 115200;
    this.#baud = this.startBaud;
    this.hostRates = options.serial.rates ?? [];
    this.#ackTimeout = options.ackTimeout ?? 50;
    this.#ackRetries = options.ackRetries ?? 2;
    this.#lateSlack = options.lateSlack ?? 10;
    this.responseTimeout = options.responseTimeout ?? 1000;
    this.#nackRetries = options.nackRetries ?? 2;
    this.#wakeUpTimeout = options.wakeUpTimeout ?? 200;
    this.#queue = new CommandQueue(options.timers);
    this.#parser = new FrameParser({ onFrame: (frame) => this.#onFrame(frame), onFault: (fault) => this.#onFault(fault) });
    const link = this;
    const { io: _io, rates: _rates, ...spec } = options.serial;
    this.#portOptions = {
      ...spec,
      baud: this.#baud,
      format: "buffer",
      onReadable(this: SerialPort) {
        if (this === link.#serial) link.#readable(this);
      },
      onError(error: Error) {
        link.#onError?.(error);
      },
    };
    this.#serial = new options.serial.io(this.#portOptions);
  }

  /** The line rate in use now. */
  get baud(): number {
    return this.#baud;
  }

  get state(): LinkState {
    return this.#state;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Counts cancellations: a loop that saw it change knows it was aborted. */
  get generation(): number {
    return this.#queue.generation;
  }

  /** Wire time of `bytes` at the line's baud rate (8N1: 10 bits a byte), ms. */
  wireTime(bytes: number): number {
    return (bytes * 10000) / this.#baud;
  }

  reportError(error: Error): void {
    this.#onError?.(error);
  }

  close(): void {
    if (this.#closed) return;
    this.cancelAll(() => new Pn532ClosedError());
    this.#closed = true;
    try {
      this.#serial.close();
    } catch {
      // Already gone: nothing more to free.
    }
  }

  /**
   * Moves the host's side to `baud`. ECMA-419 serial takes its rate only in the constructor, so the port is closed and
   * opened again; a host port with its own `setBaud` (Node's, which keeps a pty open) changes in place.
   */
  reopen(baud: number): void {
    this.#parser.resync();
    const port = this.#serial as SerialPort & { setBaud?: (baud: number) => void };
    if (typeof port.setBaud === "function") {
      port.setBaud(baud);
      this.#baud = baud;
      return;
    }
    try {
      this.#serial.close();
    } catch {
      // A port already gone is as closed as it gets.
    }
    this.#parser.resync();
    const before = this.#baud;
    try {
      this.#serial = new this.#spec.io({ ...this.#portOptions, baud });
      this.#baud = baud;
    } catch (error) {
      // The host cannot open the port at that rate after all: keep the line where it was.
      this.#serial = new this.#spec.io({ ...this.#portOptions, baud: before });
      throw new Pn532IoError(`serial line cannot be opened at ${baud} baud: ${(error as Error).message}`);
    }
  }

  /** Ends the command on the wire (telling the chip with an ACK), every queued job and every sleep. */
  cancelAll(make: () => Error): void {
    this.#queue.cancel(make);
    const pending = this.#pending;
    if (pending) {
      this.stats.aborts++;
      if (!this.#closed) this.write(ACK_FRAME);
      this.#finish(pending, make());
    }
  }

  sleep(ms: number): Promise<void> {
    return this.#queue.sleep(ms);
  }

  /** Runs `run` after every job queued before it: one command sequence on the wire at a time. */
  enqueue<T>(run: () => Promise<T>): Promise<T> {
    if (this.#closed) return Promise.reject(new Pn532ClosedError());
    return this.#queue.enqueue(run);
  }

  /** One command frame out (after the HSU wake-up when `wake`); resolves with PD1.. of its answer. */
  send(code: number, params: Uint8Array, timeout: number, wake: boolean): Promise<Uint8Array> {
    const body = new Uint8Array(1 + params.length);
    body[0] = code;
    body.set(params, 1);
    const frame = encodeFrame(TFI_HOST, body);
    return new Promise<Uint8Array>((resolve, reject) => {
      const pending: Pending = {
        code, frame, wake, timeout, sends: 0, nacks: 0, acked: false, repeatable: !CARD_COMMANDS.includes(code),
        timer: undefined, due: 0, arming: 0, stalls: 0, resolve, reject,
      };
      this.#pending = pending;
      this.stats.commands++;
      this.#transmit(pending);
    });
  }

  #transmit(pending: Pending): void {
    pending.sends++;
    if (pending.sends > 1) this.stats.resends++;
    // A half-received frame from before cannot belong to this command; let the parser rescan it now.
    this.#parser.resync();
    this.#state = "ack";
    const bytes = pending.wake ? concatBytes(WAKE_UP, pending.frame) : pending.frame;
    if (!this.write(bytes)) {
      this.#finish(pending, new Pn532IoError("serial line refused the command frame"));
      return;
    }
    const wait = this.wireTime(bytes.length) + (pending.wake ? this.#wakeUpTimeout : this.#ackTimeout);
    this.#arm(pending, Math.ceil(wait), () => this.#ackTimedOut(pending, wait));
  }

  /**
   * Sets the one timer of `pending`. When it fires, the bytes the host already holds are read first: a host that
   * stalled runs its timers before its read callbacks, and the ACK or answer may be waiting there. A timer that fires
   * long after it was due means the stall ate the wait, so the wait starts again rather than taking it for silence.
   */
  #arm(pending: Pending, ms: number, expired: () => void): void {
    this.timers.clear(pending.timer);
    const arming = ++pending.arming;
    pending.due = this.timers.now() + ms;
    pending.timer = this.timers.set(() => {
      if (this.#pending !== pending || pending.arming !== arming) return;
      this.#readable(this.#serial);
      if (this.#pending !== pending || pending.arming !== arming) return;
      if (this.timers.now() - pending.due > this.#lateSlack && pending.stalls < MAX_STALLS) {
        pending.stalls++;
        this.stats.stalls++;
        this.#arm(pending, ms, expired);
        return;
      }
      expired();
    }, ms);
  }

  #ackTimedOut(pending: Pending, waited: number): void {
    if (this.#pending !== pending || this.#state !== "ack") return;
    if (!pending.repeatable) {
      // The frame may have reached the chip with only the ACK lost: wait for the answer instead of running the card
      // command again. No answer by the deadline ends it like a late response (ACK abort, typed error).
      this.#arm(pending, pending.timeout, () => this.#responseTimedOut(pending, "ack"));
      return;
    }
    if (pending.sends <= this.#ackRetries) {
      this.#transmit(pending);
      return;
    }
    if (this.#baud !== this.startBaud) this.lineSuspect = true;
    this.#finish(pending, new Pn532TimeoutError(pending.code, "ack", Math.round(waited)));
  }

  #responseTimedOut(pending: Pending, phase: "ack" | "response" = "response"): void {
    if (this.#pending !== pending) return;
    // The chip may still be working on it; the ACK tells it to stop so its late answer cannot meet the next command.
    this.stats.aborts++;
    this.write(ACK_FRAME);
    if (phase === "ack" && this.#baud !== this.startBaud) this.lineSuspect = true;
    this.#finish(pending, new Pn532TimeoutError(pending.code, phase, pending.timeout));
  }

  #finish(pending: Pending, result: Uint8Array | Error): void {
    if (this.#pending !== pending) return;
    this.timers.clear(pending.timer);
    this.#pending = undefined;
    this.#state = "idle";
    if (result instanceof Uint8Array) {
      if (pending.sends > 1) {
        // Both copies of a resent command may have reached the chip: stop the one still running, and treat this
        // code as one whose answer can still turn up.
        this.stats.aborts++;
        this.write(ACK_FRAME);
        this.#unanswered = pending.code;
      } else if (pending.acked) {
        // A clean ACK-and-answer round: the chip has dropped anything older, so no stale answer can follow.
        this.#unanswered = -1;
      }
      pending.resolve(result);
    } else {
      // Whatever the chip still sends for this command must not pass for the answer to the next one.
      this.#unanswered = pending.code;
      pending.reject(result);
    }
  }

  write(bytes: Uint8Array): boolean {
    try {
      this.#serial.write(bytes);
    } catch (error) {
      this.#onError?.(error as Error);
      return false;
    }
    this.stats.bytesOut += bytes.length;
    this.#trace?.("out", bytes);
    return true;
  }

  #readable(port: SerialPort): void {
    if (this.#closed) return;
    for (let chunk = port.read(); chunk !== undefined; chunk = port.read()) {
      // Typed as ArrayBuffer; some hosts hand back a view, which must not be read past its own window.
      const any = chunk as unknown as ArrayBuffer | Uint8Array;
      const bytes = any instanceof Uint8Array ? any : new Uint8Array(any);
      if (!bytes.length) break;
      this.stats.bytesIn += bytes.length;
      this.#trace?.("in", bytes);
      this.#parser.push(bytes);
    }
  }

  #onFrame(frame: Frame): void {
    const pending = this.#pending;
    // Late answers to aborted commands, stray ACKs: nobody is waiting for them.
    if (!pending) return;
    if (frame.kind === "ack") {
      if (this.#state !== "ack") return;
      this.#state = "response";
      pending.acked = true;
      pending.stalls = 0;
      this.#arm(pending, pending.timeout, () => this.#responseTimedOut(pending));
      return;
    }
    if (this.#state !== "response") {
      // The ACK was lost or damaged but the answer came. Take it when no earlier command with this code can still be
      // answering: resending instead would run the command twice on the card (a second INITIALIZE, say, with a new
      // random behind the answer we already hold).
      // After a resend, an answer before the resend's ACK is an earlier copy's: the chip runs the resent copy next, so
      // only the answer after that ACK tells the current state.
      const answer = frame.kind === "information" && frame.tfi === TFI_PN532 && frame.data[0] === pending.code + 1;
      if (!answer || this.#unanswered === pending.code || pending.sends > 1) return;
    }
    if (frame.kind === "error") {
      this.#finish(pending, new Pn532ApplicationError(pending.code));
    } else if (frame.kind === "information" && frame.tfi === TFI_PN532 && frame.data[0] === pending.code + 1) {
      this.#finish(pending, frame.data.subarray(1));
    }
  }

  #onFault(fault: FrameFault): void {
    this.stats.faults++;
    const pending = this.#pending;
    // Only a frame whose header checked out but whose data did not is worth a NACK: it is the answer, damaged. While
    // the ACK is still awaited it is that answer too when the ACK was lost (as the undamaged answer would be taken).
    const answering = this.#state === "response" || (this.#state === "ack" && !!pending && pending.sends === 1 && this.#unanswered !== pending.code);
    if (!pending || !answering || fault !== "dcs") {
      if (!pending) this.#onError?.(new Pn532FrameError(`damaged frame on the line (${fault}) while idle`));
      return;
    }
    if (pending.nacks >= this.#nackRetries) {
      this.#finish(pending, new Pn532FrameError(`response to 0x${pending.code.toString(16)} still damaged after ${pending.nacks} NACKs`));
      return;
    }
    pending.nacks++;
    this.stats.nacks++;
    this.write(NACK_FRAME);
  }
}
