/**
 * A PN532 (IC 0x32, firmware v1.6) as a host sees it over HSU: it ACKs every good command frame, answers as the chip
 * does, takes an ACK as abort and a NACK as "send that again", sleeps after PowerDown until 0x55 wakes it, and runs
 * the ISO-DEP block protocol for the cards in its field (so the host sends bare APDUs, as with libnfc). Link and card
 * timing are modelled, and faults can be injected into any exchange.
 */
import type { SerialPort, SerialSpec } from "../../../modules/device/types";
import { Command, Param, RfItem } from "../../../modules/pn532/commands";
import { ACK_FRAME, ERROR_FRAME, FrameParser, TFI_HOST, TFI_PN532, encodeFrame, type Frame } from "../../../modules/pn532/frame";
import { CARD_PROCESSING_MS } from "../cardsim/card";
import { bytesEqual, concatBytes, toHex } from "../../../modules/bytes/bytes";

/** What the emulator needs from a card in its field; tools/sim/cardsim's VirtualCard is one. */
export interface HostedCard {
  readonly uid: Uint8Array;
  readonly atqa: Uint8Array;
  readonly sak: number;
  /** ATS without TL. */
  readonly ats: Uint8Array;
  readonly present: boolean;
  /** One APDU; throws an error with code "CARD_REMOVED" when the card is out of the field or torn. */
  process(apdu: Uint8Array): Uint8Array;
  place(): void;
  remove(): void;
}

export interface EmulatorTiming {
  /** Line speed; sets byteTime unless that is given. */
  baud: number;
  /** ms per byte on the serial line (10 bits at 8N1); 0 sends at once. */
  byteTime: number;
  /** From the end of a command frame to the start of its ACK, ms (the UM allows up to 15). */
  ackDelay: number;
  /** Firmware time for a command that does not touch RF, ms. */
  commandDelay: number;
  /** One 106A activation with anticollision and RATS/ATS, ms. */
  activationDelay: number;
  /** One activation attempt that finds nothing, ms (InListPassiveTarget takes MxRtyPassiveActivation + 1 of them). */
  pollDelay: number;
  /** ms per byte over the air at 106 kbit/s (with parity, ISO-DEP framing). */
  rfByteTime: number;
  /** Fixed RF cost of one ISO-DEP round (PCB, CRC, frame delay), ms. */
  exchangeOverhead: number;
  /** Card processing time per APDU, ms: per INS, or a function of the APDU. Default CARD_PROCESSING_MS. */
  cardProcessing: { readonly [ins: number]: number } | ((apdu: Uint8Array) => number);
  /** Card processing for an INS missing from the table, ms. */
  defaultCardProcessing: number;
  /** How long the chip waits for a card that does not answer, ms (FWT from the ATS: 77 ms for FWI 8). */
  frameWaitingTime: number;
  /** Scales InAutoPoll's 150 ms period unit (tests shorten it). */
  pollPeriodUnit: number;
}

export function byteTimeFor(baud: number): number {
  return 10_000 / baud;
}

export const DEFAULT_TIMING: EmulatorTiming = Object.freeze({
  baud: 115200,
  byteTime: byteTimeFor(115200),
  ackDelay: 0.5,
  commandDelay: 0.5,
  activationDelay: 5,
  pollDelay: 2,
  rfByteTime: 0.085,
  exchangeOverhead: 0.5,
  cardProcessing: CARD_PROCESSING_MS,
  defaultCardProcessing: 15,
  frameWaitingTime: 77.3,
  pollPeriodUnit: 150,
});

/** Timing with every delay zero: for fuzzing and functional tests that do not care about the clock. */
export const INSTANT_TIMING: Partial<EmulatorTiming> = Object.freeze({
  byteTime: 0, ackDelay: 0, commandDelay: 0, activationDelay: 0, pollDelay: 0, rfByteTime: 0, exchangeOverhead: 0,
  cardProcessing: () => 0, defaultCardProcessing: 0, frameWaitingTime: 5,
});

interface FaultBase {
  /** Only frames with this command code (default: any). */
  command?: number;
  /** How many times it fires (default 1). */
  count?: number;
}

export type Fault =
  /** The ACK is lost on the line; the chip still answers. */
  | (FaultBase & { kind: "drop-ack" })
  /** The command frame is lost (or arrives garbled): no ACK, no answer; the host has to resend. */
  | (FaultBase & { kind: "drop-command" })
  /** The DCS of the response (or the LCS of the ACK) goes out wrong; a NACK gets the good frame. */
  | (FaultBase & { kind: "corrupt-checksum"; frame?: "response" | "ack" })
  /** The response comes `ms` later than it would. */
  | (FaultBase & { kind: "late"; ms: number })
  /** ACK, then never an answer. */
  | (FaultBase & { kind: "no-response" })
  /** Junk on the line before the ACK. */
  | (FaultBase & { kind: "garbage"; bytes?: Uint8Array })
  /**
   * The card leaves the field in an InDataExchange: "before" the card sees the APDU, or "after" it has processed
   * (committed) it but before its answer is out. The chip answers `status` (default 0x01, no answer from target).
   */
  | (FaultBase & { kind: "remove-card"; when?: "before" | "after"; status?: number })
  /** InDataExchange answered with this status byte and no data. */
  | (FaultBase & { kind: "status"; status: number });

/** How the chip takes SetSerialBaudRate: as the manual says, with an error frame, or answering but staying put. */
export type BaudSwitch = "obey" | "refuse" | "ignore";

export interface EmulatorOptions {
  /** Highest ISO-DEP bit rate InPSL accepts, kbps (default 424, the PN532's highest for ISO 14443-4 type A). */
  maxBitRate?: number;
  /** SetSerialBaudRate behaviour (default "obey"): the others model firmware or wiring that cannot go faster. */
  baudSwitch?: BaudSwitch;
  /** The serial line: `{io: NodeSerial, path}` for a pty or a real port, or one end of a memory pair. */
  serial: SerialSpec;
  cards?: HostedCard[];
  timing?: Partial<EmulatorTiming>;
  /** GetFirmwareVersion answer: IC, Ver, Rev, Support. */
  firmware?: Uint8Array;
  /** Largest DataIn per InDataExchange answer; longer card answers go in pieces with the MI status bit. */
  maxDataIn?: number;
  log?: (line: string) => void;
}

export interface EmulatorStats {
  frames: number;
  faults: number;
  acksSent: number;
  nacksReceived: number;
  aborts: number;
  responses: number;
  wakeUps: number;
  bytesIn: number;
  bytesOut: number;
}

export interface ReceivedCommand {
  code: number;
  params: Uint8Array;
  at: number;
}

class Cancelled extends Error {
  constructor() {
    super("command cancelled");
  }
}

interface Target {
  tg: number;
  card: HostedCard;
  /** ISO-DEP bit rate both ways, kbps (InPSL moves it). */
  kbps: number;
  /** The card's side of ISO-DEP when the host runs it itself through InCommunicateThru (after its own RATS). */
  thru?: ThruSession;
}

/** ISO 14443-4 state of a card driven block by block (docs/pn532.md). */
interface ThruSession {
  /** Largest frame the reader takes (FSD from RATS), with PCB and CRC. */
  fsd: number;
  chainIn: Uint8Array[];
  /** The rest of an answer still to go in chained I-blocks. */
  out?: Uint8Array;
  /** An answer held back behind S(WTX): card time still to run when the reader grants the extension. */
  held?: { answer: Uint8Array; left: number; nr: number };
}

/** CIU TxMode and RxMode: bit 7 CRC on, bits 6..4 speed (0 106, 1 212, 2 424 kbps), bits 1..0 framing. */
const CIU_TX_MODE = 0x6302;
const CIU_RX_MODE = 0x6303;

/** FSDI 0..8 of RATS to FSD in bytes (ISO 14443-4). */
const FSD: readonly number[] = Object.freeze([16, 24, 32, 40, 48, 64, 96, 128, 256]);

const MAX_LOG = 10_000;
/** SetSerialBaudRate BR 0..8 (docs/pn532.md). */
const BAUD_RATES: readonly number[] = Object.freeze([9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600, 1288000]);


function isRemoved(error: unknown): boolean {
  return !!error && typeof error === "object" && (error as { code?: unknown }).code === "CARD_REMOVED";
}

export class Pn532Emulator {
  readonly cards: HostedCard[] = [];
  readonly stats: EmulatorStats = { frames: 0, faults: 0, acksSent: 0, nacksReceived: 0, aborts: 0, responses: 0, wakeUps: 0, bytesIn: 0, bytesOut: 0 };
  /** Every command frame received, oldest first (capped). */
  readonly received: ReceivedCommand[] = [];
  timing: EmulatorTiming;
  #serial: SerialPort;
  readonly #serialOptions: SerialSpec & { baud: number };
  readonly #parser: FrameParser;
  baudSwitch: BaudSwitch;
  maxBitRate: number;
  /** Rate asked for by SetSerialBaudRate; taken when the host's ACK comes (0: none). */
  #pendingBaud = 0;
  #baud: number;
  readonly #firmware: Uint8Array;
  readonly #maxDataIn: number;
  readonly #log: ((line: string) => void) | undefined;
  #faults: (Fault & { left: number })[] = [];
  #generation = 0;
  #busy = false;
  #asleep = false;
  #closed = false;
  #lastResponse: Uint8Array | undefined;
  #lineFree = 0;
  #outbox: { bytes: Uint8Array; due: number; check: (() => boolean) | undefined }[] = [];
  #rxLine = 0;
  #timers = new Set<ReturnType<typeof setTimeout>>();
  #waiters = new Set<() => void>();
  #registers = new Map<number, number>();
  #flags = Param.AutomaticATR_RES | Param.AutomaticRATS;
  #field = false;
  #passiveRetries = 0xff;
  #nonDepTimeoutCode = 0x0a;
  #lastError = 0;
  #targets = new Map<number, Target>();
  #chainIn: Uint8Array[] = [];
  #chainOut: Uint8Array | undefined;

  constructor(options: EmulatorOptions) {
    this.timing = { ...DEFAULT_TIMING };
    this.setTiming(options.timing ?? {});
    this.#firmware = options.firmware ?? new Uint8Array([0x32, 0x01, 0x06, 0x07]);
    this.#maxDataIn = options.maxDataIn ?? 262;
    this.#log = options.log;
    for (const card of options.cards ?? []) this.cards.push(card);
    this.#parser = new FrameParser({
      onFrame: (frame) => this.#onFrame(frame),
      onFault: (fault) => {
        this.stats.faults++;
        this.#log?.(`damaged frame from host (${fault})`);
      },
    });
    const emulator = this;
    this.baudSwitch = options.baudSwitch ?? "obey";
    this.maxBitRate = options.maxBitRate ?? 424;
    this.#baud = options.serial.baud ?? this.timing.baud;
    this.#serialOptions = {
      ...options.serial,
      baud: this.#baud,
      format: "buffer",
      onReadable(this: SerialPort) {
        if (this === emulator.#serial) emulator.#readable(this);
      },
      onError(error: Error) {
        emulator.#log?.(`serial error: ${error.message}`);
      },
    };
    this.#serial = new options.serial.io(this.#serialOptions);
  }

  /** The HSU rate the chip runs at now. */
  get baud(): number {
    return this.#baud;
  }

  /**
   * Moves the chip's UART to `baud`. A pty carries bytes at any rate, so only the timing model changes there; an
   * in-memory line is reopened at the new rate, and frames sent at the other rate arrive as garbage.
   */
  #switchBaud(baud: number): void {
    if (baud === this.#baud) return;
    this.#baud = baud;
    this.setTiming({ baud });
    this.#parser.resync();
    if (this.#serialOptions.path) return;
    try {
      this.#serial.close();
    } catch {
      // Gone already.
    }
    this.#serial = new this.#serialOptions.io({ ...this.#serialOptions, baud });
  }

  /** Power loss or a reset pin pulse: the chip comes back at 115,200 baud in LowVbat, every setting at its default. */
  reset(): void {
    this.#cancel();
    this.#outbox = [];
    this.#pendingBaud = 0;
    this.#asleep = true;
    this.#targets.clear();
    this.#chainIn = [];
    this.#chainOut = undefined;
    this.#flags = Param.AutomaticATR_RES | Param.AutomaticRATS;
    this.#passiveRetries = 0xff;
    this.#registers.clear();
    this.#lastResponse = undefined;
    this.#switchBaud(115200);
    this.#log?.("reset");
  }

  get asleep(): boolean {
    return this.#asleep;
  }

  get serial(): SerialPort {
    return this.#serial;
  }

  /** Changes timing while running; a new baud rate without a byteTime recomputes the byte time. */
  setTiming(timing: Partial<EmulatorTiming>): void {
    const next = { ...this.timing, ...timing };
    if (timing.baud !== undefined && timing.byteTime === undefined) next.byteTime = byteTimeFor(timing.baud);
    this.timing = next;
  }

  injectFault(fault: Fault): void {
    this.#faults.push({ ...fault, left: fault.count ?? 1 });
  }

  clearFaults(): void {
    this.#faults = [];
  }

  get pendingFaults(): number {
    return this.#faults.length;
  }

  /** Adds a card to the emulator's list; `inField` puts it in the field now. Returns its index. */
  addCard(card: HostedCard, inField = true): number {
    this.cards.push(card);
    if (inField) card.place();
    else if (card.present) card.remove();
    this.#notify();
    return this.cards.length - 1;
  }

  #card(which: HostedCard | number): HostedCard {
    const card = typeof which === "number" ? this.cards[which] : which;
    if (!card) throw new RangeError(`no card ${String(which)}`);
    return card;
  }

  /** Puts a card (back) into the field: a fresh card for the next activation. */
  place(which: HostedCard | number): void {
    this.#card(which).place();
    this.#log?.(`card ${this.cards.indexOf(this.#card(which))} placed`);
    this.#notify();
  }

  /** Takes a card out of the field, even in the middle of an exchange. */
  remove(which: HostedCard | number): void {
    const card = this.#card(which);
    card.remove();
    for (const [tg, t] of this.#targets) if (t.card === card) this.#targets.delete(tg);
    this.#log?.(`card ${this.cards.indexOf(card)} removed`);
    this.#notify();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#cancel();
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    try {
      this.#serial.close();
    } catch {
      // Closing twice or a port already gone: nothing left to free.
    }
  }

  /** Feeds host bytes as if they came from the line (fuzzing, tests that bypass the serial port). */
  receive(bytes: Uint8Array): void {
    if (this.#closed) return;
    this.stats.bytesIn += bytes.length;
    const now = performance.now();
    this.#rxLine = Math.max(this.#rxLine, now) + bytes.length * this.timing.byteTime;
    let start = 0;
    if (this.#asleep) {
      // Asleep, the chip hears nothing but the 0x55 that wakes it; the zeros after it cover its start-up.
      const at = bytes.indexOf(0x55);
      if (at < 0) return;
      this.#asleep = false;
      this.stats.wakeUps++;
      this.#parser.resync();
      start = at;
      this.#log?.("woken by 0x55");
    }
    this.#parser.push(start ? bytes.subarray(start) : bytes);
  }

  // ---- the line ----

  #readable(port: SerialPort): void {
    for (let chunk = port.read(); chunk !== undefined; chunk = port.read()) {
      const any = chunk as unknown as ArrayBuffer | Uint8Array;
      const bytes = any instanceof Uint8Array ? any : new Uint8Array(any);
      if (!bytes.length) break;
      this.receive(bytes);
    }
  }

  /**
   * Runs `fn` no earlier than `ms` from now, always asynchronously. Node's timers count from the start of the current
   * loop turn and drop fractions of a millisecond, so they can fire early: the last stretch is finished with
   * setImmediate, which keeps modelled wire and card times a true lower bound.
   */
  #later(fn: () => void, ms: number): void {
    if (this.#closed) return;
    const due = performance.now() + Math.max(0, ms);
    const tick = () => {
      if (this.#closed) return;
      const left = due - performance.now();
      if (left <= 0) fn();
      else if (left > 2) {
        const t = setTimeout(() => {
          this.#timers.delete(t);
          tick();
        }, Math.floor(left - 1));
        this.#timers.add(t);
      } else setImmediate(tick);
    };
    setImmediate(tick);
  }

  /**
   * Puts bytes on the modelled line: they start no earlier than `earliest` nor before the line is free, and are
   * written when their last byte would have left, which is when a host would have them all.
   */
  #transmit(bytes: Uint8Array, earliest: number, check?: () => boolean): void {
    const now = performance.now();
    const start = Math.max(now, earliest, this.#lineFree);
    this.#lineFree = start + bytes.length * this.timing.byteTime;
    // One queue for the line: separate timers could fire out of order under load and put an answer before its ACK.
    this.#outbox.push({ bytes, due: this.#lineFree, check });
    if (this.#outbox.length === 1) this.#later(() => this.#pump(), this.#lineFree - now);
  }

  #pump(): void {
    const now = performance.now();
    while (this.#outbox.length && this.#outbox[0]!.due <= now) {
      const { bytes, check } = this.#outbox.shift()!;
      if (check && !check()) continue;
      try {
        this.#serial.write(bytes);
        this.stats.bytesOut += bytes.length;
      } catch (error) {
        this.#log?.(`write failed: ${(error as Error).message}`);
      }
    }
    const head = this.#outbox[0];
    if (head) this.#later(() => this.#pump(), head.due - now);
  }

  #takeFault<K extends Fault["kind"]>(kind: K, code: number): Extract<Fault, { kind: K }> | undefined {
    const i = this.#faults.findIndex((f) => f.kind === kind && (f.command === undefined || f.command === code));
    if (i < 0) return undefined;
    const fault = this.#faults[i]!;
    if (--fault.left <= 0) this.#faults.splice(i, 1);
    this.#log?.(`fault ${kind} on command 0x${code.toString(16)}`);
    return fault as unknown as Extract<Fault, { kind: K }>;
  }

  // ---- frames ----

  #onFrame(frame: Frame): void {
    this.stats.frames++;
    if (frame.kind === "ack" && this.#pendingBaud && !this.#busy) {
      // The host's ACK after the SetSerialBaudRate answer: both sides switch now (docs/pn532.md).
      const baud = this.#pendingBaud;
      this.#pendingBaud = 0;
      this.#switchBaud(baud);
      return;
    }
    if (frame.kind === "ack") {
      // Abort: whatever runs stops, and its answer is never sent.
      if (this.#busy) {
        this.stats.aborts++;
        this.#log?.("aborted by host ACK");
      }
      this.#cancel();
      return;
    }
    if (frame.kind === "nack") {
      this.stats.nacksReceived++;
      if (!this.#busy && this.#lastResponse) this.#transmit(this.#lastResponse, 0);
      return;
    }
    if (frame.kind !== "information" || frame.tfi !== TFI_HOST || frame.data.length < 1) return;
    const code = frame.data[0]!;
    if (this.#takeFault("drop-command", code)) return;
    const params = frame.data.slice(1);
    this.#pendingBaud = 0;
    this.received.push({ code, params, at: performance.now() });
    if (this.received.length > MAX_LOG) this.received.splice(0, this.received.length - MAX_LOG);
    // A new command frame ends the one in progress (UM p.38), as an ACK would.
    this.#cancel();
    const generation = this.#generation;
    this.#busy = true;
    this.#lastResponse = undefined;
    const frameEnd = this.#rxLine;
    const garbage = this.#takeFault("garbage", code);
    if (garbage) this.#transmit(garbage.bytes ?? new Uint8Array([0x30, 0x61, 0x72, 0x00, 0xff, 0x12, 0x55]), frameEnd);
    const ackAt = frameEnd + this.timing.ackDelay;
    const corruptAck = this.#faults.some((f) => f.kind === "corrupt-checksum" && f.frame === "ack" && (f.command === undefined || f.command === code));
    if (this.#takeFault("drop-ack", code)) {
      // The ACK slot passes on the line with nothing in it.
      this.#lineFree = Math.max(this.#lineFree, ackAt) + ACK_FRAME.length * this.timing.byteTime;
    } else if (corruptAck) {
      this.#takeFault("corrupt-checksum", code);
      this.#transmit(new Uint8Array([0x00, 0x00, 0xff, 0x00, 0xfe, 0x00]), ackAt);
    } else {
      this.stats.acksSent++;
      this.#transmit(ACK_FRAME, ackAt);
    }
    this.#log?.(`<- ${toHex(frame.data)}`);
    this.#execute(generation, code, params, ackAt);
  }

  #cancel(): void {
    this.#generation++;
    this.#busy = false;
    this.#notify();
  }

  #notify(): void {
    const waiters = [...this.#waiters];
    this.#waiters.clear();
    for (const w of waiters) w();
  }

  #check(generation: number): void {
    if (generation !== this.#generation || this.#closed) throw new Cancelled();
  }

  /** Sleeps `ms`, then throws Cancelled if the command was aborted meanwhile. */
  async #sleep(generation: number, ms: number): Promise<void> {
    if (ms > 0) await new Promise<void>((resolve) => this.#later(resolve, ms));
    this.#check(generation);
  }

  /** Waits until cards move or the command is cancelled, at most `ms`. */
  async #waitForChange(generation: number, ms = 2 ** 31 - 1): Promise<void> {
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#timers.delete(timer);
        this.#waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, Math.min(ms, 2 ** 31 - 1));
      this.#timers.add(timer);
      this.#waiters.add(done);
    });
    this.#check(generation);
  }

  async #execute(generation: number, code: number, params: Uint8Array, ackAt: number): Promise<void> {
    let reply: Uint8Array | "error";
    try {
      reply = await this.#handle(generation, code, params);
      this.#check(generation);
      if (this.#takeFault("no-response", code)) return;
      const late = this.#takeFault("late", code);
      if (late) await this.#sleep(generation, late.ms);
    } catch (error) {
      if (error instanceof Cancelled) return;
      this.#log?.(`internal error on 0x${code.toString(16)}: ${(error as Error).stack ?? String(error)}`);
      reply = "error";
    }
    let frame: Uint8Array;
    if (reply === "error") frame = ERROR_FRAME;
    else {
      const body = new Uint8Array(1 + reply.length);
      body[0] = code + 1;
      body.set(reply, 1);
      frame = encodeFrame(TFI_PN532, body);
    }
    this.#lastResponse = frame;
    this.#busy = false;
    let out = frame;
    if (this.#faults.some((f) => f.kind === "corrupt-checksum" && f.frame !== "ack" && (f.command === undefined || f.command === code))) {
      this.#takeFault("corrupt-checksum", code);
      out = frame.slice();
      out[out.length - 2] ^= 0x5a;
    }
    this.stats.responses++;
    this.#log?.(`-> ${reply === "error" ? "error frame" : toHex(reply)}`);
    this.#transmit(out, ackAt + ACK_FRAME.length * this.timing.byteTime, () => !this.#closed);
    if (code === Command.PowerDown && reply !== "error") {
      // Asleep once the answer is out; bytes before a 0x55 are lost from then on.
      this.#asleep = true;
      this.#targets.clear();
      this.#parser.resync();
    }
  }

  // ---- commands ----

  async #handle(g: number, code: number, p: Uint8Array): Promise<Uint8Array | "error"> {
    const t = this.timing;
    switch (code) {
      case Command.Diagnose: {
        if (p.length < 1) return "error";
        await this.#sleep(g, t.commandDelay);
        if (p[0] === 0x00) return p.slice();
        if (p[0] === 0x01 || p[0] === 0x02) return new Uint8Array([0x00]);
        return "error";
      }
      case Command.GetFirmwareVersion:
        await this.#sleep(g, t.commandDelay);
        return this.#firmware.slice();
      case Command.GetGeneralStatus: {
        await this.#sleep(g, t.commandDelay);
        const out = [this.#lastError, 0, this.#targets.size];
        for (const target of this.#targets.values()) out.push(target.tg, 0, 0, 0x00);
        out.push(0x00);
        return new Uint8Array(out);
      }
      case Command.ReadRegister: {
        if (p.length < 2 || p.length % 2) return "error";
        await this.#sleep(g, t.commandDelay);
        const out = new Uint8Array(p.length / 2);
        for (let i = 0; i < out.length; i++) out[i] = this.#registers.get((p[2 * i]! << 8) | p[2 * i + 1]!) ?? 0;
        return out;
      }
      case Command.WriteRegister: {
        if (p.length < 3 || p.length % 3) return "error";
        for (let i = 0; i < p.length; i += 3) this.#registers.set((p[i]! << 8) | p[i + 1]!, p[i + 2]!);
        await this.#sleep(g, t.commandDelay);
        return new Uint8Array(0);
      }
      case Command.SetSerialBaudRate: {
        if (p.length !== 1 || p[0]! > 8 || this.baudSwitch === "refuse") return "error";
        await this.#sleep(g, t.commandDelay);
        if (this.baudSwitch === "obey") this.#pendingBaud = BAUD_RATES[p[0]!]!;
        return new Uint8Array(0);
      }
      case Command.SetParameters:
        if (p.length !== 1 || p[0]! & 0x88) return "error";
        this.#flags = p[0]!;
        await this.#sleep(g, t.commandDelay);
        return new Uint8Array(0);
      case Command.SAMConfiguration:
        if (p.length < 1 || p[0]! < 1 || p[0]! > 4) return "error";
        await this.#sleep(g, t.commandDelay);
        return new Uint8Array(0);
      case Command.PowerDown:
        if (p.length < 1) return "error";
        await this.#sleep(g, t.commandDelay);
        return new Uint8Array([0x00]);
      case Command.RFConfiguration:
        return this.#rfConfiguration(g, p);
      case Command.InListPassiveTarget:
        return this.#inListPassiveTarget(g, p);
      case Command.InDataExchange:
        return this.#inDataExchange(g, p);
      case Command.InCommunicateThru:
        return this.#inCommunicateThru(g, p);
      case Command.InDeselect:
      case Command.InRelease: {
        if (p.length !== 1) return "error";
        await this.#sleep(g, t.commandDelay);
        const tg = p[0]!;
        if (tg !== 0 && !this.#targets.has(tg)) return new Uint8Array([0x27]);
        this.#chainIn = [];
        this.#chainOut = undefined;
        if (code === Command.InRelease) {
          if (tg === 0) this.#targets.clear();
          else this.#targets.delete(tg);
        }
        return new Uint8Array([0x00]);
      }
      case Command.InAutoPoll:
        return this.#inAutoPoll(g, p);
      case Command.InPSL:
        return this.#inPsl(g, p);
      default:
        return "error";
    }
  }

  async #rfConfiguration(g: number, p: Uint8Array): Promise<Uint8Array | "error"> {
    const sizes: { [item: number]: number } = { 0x01: 1, 0x02: 3, 0x04: 1, 0x05: 3, 0x0a: 11, 0x0b: 8, 0x0c: 3, 0x0d: 9 };
    if (p.length < 1 || sizes[p[0]!] === undefined || p.length !== 1 + sizes[p[0]!]!) return "error";
    if (p[0] === RfItem.Field) {
      this.#field = (p[1]! & 1) === 1;
      if (!this.#field) this.#targets.clear();
    }
    if (p[0] === RfItem.VariousTimings) this.#nonDepTimeoutCode = p[3]!;
    if (p[0] === RfItem.MaxRetries) this.#passiveRetries = p[3]!;
    await this.#sleep(g, this.timing.commandDelay);
    return new Uint8Array(0);
  }

  #targetData(tg: number, card: HostedCard, withAts: boolean): number[] {
    const out = [tg, ...card.atqa, card.sak, card.uid.length, ...card.uid];
    if (withAts && card.sak & 0x20 && this.#flags & Param.AutomaticRATS) out.push(card.ats.length + 1, ...card.ats);
    return out;
  }

  #available(initiatorData?: Uint8Array): HostedCard[] {
    return this.cards.filter((c) => {
      if (!c.present) return false;
      if (!initiatorData || !initiatorData.length) return true;
      // A UID given with its cascade tags (88 ..) selects the card whose plain UID matches.
      const plain: number[] = [];
      for (let i = 0; i < initiatorData.length; i++) {
        if (initiatorData[i] === 0x88 && (i === 0 || i === 4) && initiatorData.length > 4) continue;
        plain.push(initiatorData[i]!);
      }
      return bytesEqual(new Uint8Array(plain), c.uid);
    });
  }

  #activate(cards: HostedCard[]): void {
    this.#targets.clear();
    this.#chainIn = [];
    this.#chainOut = undefined;
    cards.forEach((card, i) => {
      // A fresh activation: the card starts its ISO-DEP session from scratch, nothing selected.
      card.place();
      this.#targets.set(i + 1, { tg: i + 1, card, kbps: 106 });
    });
    this.#field = true;
    // As a real chip leaves its CIU after a 106A activation: CRC on both ways at 106 kbps, ISO 14443-A framing.
    this.#registers.set(CIU_TX_MODE, 0x80);
    this.#registers.set(CIU_RX_MODE, 0x80);
  }

  async #inListPassiveTarget(g: number, p: Uint8Array): Promise<Uint8Array | "error"> {
    if (p.length < 2 || p[0]! < 1 || p[0]! > 2 || p[1]! > 4) return "error";
    const t = this.timing;
    const maxTg = p[0]!;
    const attempts = this.#passiveRetries === 0xff ? Infinity : this.#passiveRetries + 1;
    if (p[1] !== 0x00) {
      // Only type-A cards live here; other modulations find nothing.
      if (attempts === Infinity) {
        for (;;) await this.#waitForChange(g);
      }
      await this.#sleep(g, t.pollDelay * attempts);
      return new Uint8Array([0x00]);
    }
    const initiatorData = p.subarray(2);
    let tried = 0;
    for (;;) {
      const found = this.#available(initiatorData).slice(0, maxTg);
      if (found.length) {
        await this.#sleep(g, t.activationDelay * found.length);
        const still = found.filter((c) => c.present);
        if (still.length) {
          this.#activate(still);
          const out = [still.length];
          still.forEach((card, i) => out.push(...this.#targetData(i + 1, card, true)));
          return new Uint8Array(out);
        }
      }
      if (attempts === Infinity) {
        // MxRtyPassiveActivation = FF: only the ACK until a card comes (or the host aborts).
        await this.#waitForChange(g);
        continue;
      }
      const left = attempts - tried;
      await this.#sleep(g, t.pollDelay * left);
      tried = attempts;
      if (!this.#available(initiatorData).length) return new Uint8Array([0x00]);
    }
  }

  /**
   * InPSL: the chip sends the card PPS (ISO 14443-4) and both move to the new bit rate. Refused (status 0x27) above
   * maxBitRate or above what the card's ATS TA(1) offers both ways.
   */
  async #inPsl(g: number, p: Uint8Array): Promise<Uint8Array | "error"> {
    if (p.length !== 3 || p[1]! > 2 || p[2]! > 2) return "error";
    const target = this.#targets.get(p[0]!);
    await this.#sleep(g, this.timing.exchangeOverhead + 5 * this.timing.rfByteTime);
    if (!target || !target.card.present) return new Uint8Array([target ? 0x01 : 0x27]);
    const kbps = [106, 212, 424][Math.max(p[1]!, p[2]!)]!;
    const ats = target.card.ats;
    const ta = ats.length >= 2 && ats[0]! & 0x10 ? ats[1]! : 0;
    const bits = ((ta >> 4) & ta) & 0x07;
    const offered = kbps === 106 || (kbps === 212 && bits & 1) || (kbps === 424 && bits & 2);
    if (kbps > this.maxBitRate || !offered) return new Uint8Array([0x27]);
    target.kbps = kbps;
    // TxSpeed and RxSpeed (bits 6..4) follow the new bit rate.
    const speed = [106, 212, 424].indexOf(kbps) << 4;
    this.#registers.set(CIU_TX_MODE, ((this.#registers.get(CIU_TX_MODE) ?? 0x80) & 0x8f) | speed);
    this.#registers.set(CIU_RX_MODE, ((this.#registers.get(CIU_RX_MODE) ?? 0x80) & 0x8f) | speed);
    return new Uint8Array([0x00]);
  }

  /** ms per byte over the air for `target`: the 106 kbps figure scaled by its bit rate. */
  #rfByte(target: Target | undefined): number {
    return this.timing.rfByteTime * (106 / (target?.kbps ?? 106));
  }

  #cardTime(apdu: Uint8Array): number {
    const c = this.timing.cardProcessing;
    if (typeof c === "function") return c(apdu);
    return c[apdu.length > 1 ? apdu[1]! : -1] ?? this.timing.defaultCardProcessing;
  }

  async #noAnswer(g: number, status = 0x01): Promise<Uint8Array> {
    await this.#sleep(g, this.timing.frameWaitingTime);
    this.#lastError = status;
    return new Uint8Array([status]);
  }

  #nextPiece(): Uint8Array {
    const rest = this.#chainOut!;
    const size = Math.min(this.#maxDataIn, rest.length);
    const more = size < rest.length;
    this.#chainOut = more ? rest.slice(size) : undefined;
    const out = new Uint8Array(1 + size);
    out[0] = more ? 0x40 : 0x00;
    out.set(rest.subarray(0, size), 1);
    return out;
  }

  async #inDataExchange(g: number, p: Uint8Array): Promise<Uint8Array | "error"> {
    if (p.length < 1) return "error";
    const t = this.timing;
    const tg = p[0]! & 0x3f;
    const more = (p[0]! & 0x40) !== 0;
    const data = p.subarray(1);
    const target = this.#targets.get(tg);
    const rf = this.#rfByte(target);
    if (!target) {
      await this.#sleep(g, t.commandDelay);
      this.#lastError = 0x27;
      return new Uint8Array([0x27]);
    }
    if (!data.length && !more && this.#chainOut) {
      // The host asks for the next piece of a chained answer.
      await this.#sleep(g, t.exchangeOverhead + Math.min(this.#maxDataIn, this.#chainOut.length) * rf);
      return this.#nextPiece();
    }
    this.#chainOut = undefined;
    const status = this.#takeFault("status", Command.InDataExchange);
    if (status) {
      await this.#sleep(g, t.exchangeOverhead);
      return new Uint8Array([status.status]);
    }
    const card = target.card;
    if (!card.present) return this.#noAnswer(g);
    if (more) {
      this.#chainIn.push(data.slice());
      await this.#sleep(g, t.exchangeOverhead + data.length * rf);
      return new Uint8Array([0x00]);
    }
    let length = data.length;
    for (const piece of this.#chainIn) length += piece.length;
    const apdu = new Uint8Array(length);
    let at = 0;
    for (const piece of this.#chainIn) {
      apdu.set(piece, at);
      at += piece.length;
    }
    apdu.set(data, at);
    this.#chainIn = [];
    const tear = this.#takeFault("remove-card", Command.InDataExchange);
    if (tear && (tear.when ?? "before") === "before") this.remove(card);
    await this.#sleep(g, t.exchangeOverhead + apdu.length * rf);
    let answer: Uint8Array;
    try {
      answer = card.process(apdu);
    } catch (error) {
      if (isRemoved(error)) {
        this.remove(card);
        return this.#noAnswer(g, tear?.status);
      }
      throw error;
    }
    if (tear) {
      this.remove(card);
      return this.#noAnswer(g, tear.status);
    }
    await this.#sleep(g, this.#cardTime(apdu) + answer.length * rf);
    // Taken out while it was working: the answer never reaches the reader.
    if (!card.present) return this.#noAnswer(g);
    this.#lastError = 0;
    this.#chainOut = answer;
    return this.#nextPiece();
  }

  async #inCommunicateThru(g: number, p: Uint8Array): Promise<Uint8Array> {
    const target = [...this.#targets.values()][0];
    const card = target?.card;
    if (target && card?.present && this.#field && p.length >= 1) {
      const rf = this.#rfByte(target);
      const air = async (bytes: number) => this.#sleep(g, this.timing.exchangeOverhead + bytes * rf);
      const pcb = p[0]!;
      const crcOn = ((this.#registers.get(CIU_TX_MODE) ?? 0) & 0x80) !== 0;
      if (pcb === 0xe0 && p.length === 2 && card.sak & 0x20 && crcOn) {
        // RATS from a reader doing ISO-DEP itself: the ATS (with TL) back, and a fresh block-level session.
        await air(2 + card.ats.length + 1);
        target.thru = { fsd: FSD[Math.min(8, p[1]! >> 4)]!, chainIn: [] };
        return new Uint8Array([0x00, card.ats.length + 1, ...card.ats]);
      }
      if ((pcb & 0xfe) === 0xb2) {
        // Presence check: an ISO-DEP card answers R(NAK) with R(ACK) of its current block number.
        await air(2);
        return new Uint8Array([0x00, 0xa2 | (pcb & 1)]);
      }
      const thru = target.thru;
      // Raw blocks reach the card whole only with the CIU adding and checking the CRC; without it the card ignores them.
      const crc = ((this.#registers.get(CIU_TX_MODE) ?? 0) & 0x80) !== 0 && ((this.#registers.get(CIU_RX_MODE) ?? 0) & 0x80) !== 0;
      if (thru && crc) {
        const reply = await this.#thruBlock(g, target, thru, p, air);
        if (reply) return reply;
      }
    }
    const code = this.#nonDepTimeoutCode;
    const timeout = code === 0 ? this.timing.frameWaitingTime : Math.min(0.1 * 2 ** (code - 1), this.timing.frameWaitingTime);
    await this.#sleep(g, timeout);
    this.#lastError = 0x01;
    return new Uint8Array([0x01]);
  }

  /** One ISO 14443-4 block from the reader (CRC handled by the chip): I, R(ACK) or S(WTX/DESELECT). */
  async #thruBlock(g: number, target: Target, thru: ThruSession, p: Uint8Array, air: (bytes: number) => Promise<void>): Promise<Uint8Array | undefined> {
    const pcb = p[0]!;
    const nr = pcb & 0x01;
    if ((pcb & 0xe2) === 0x02) {
      // I-block; CID and NAD (bits 4 and 3) are not used by this card.
      if (pcb & 0x0c) return undefined;
      thru.out = undefined;
      thru.chainIn.push(p.slice(1));
      if (pcb & 0x10) {
        await air(p.length + 1);
        return new Uint8Array([0x00, 0xa2 | nr]);
      }
      const apdu = concatBytes(...thru.chainIn);
      thru.chainIn = [];
      await air(p.length);
      let answer: Uint8Array;
      try {
        answer = target.card.process(apdu);
      } catch (error) {
        if (isRemoved(error)) {
          this.remove(target.card);
          return undefined;
        }
        throw error;
      }
      const work = this.#cardTime(apdu);
      // A card that needs longer than its frame waiting time asks for more with S(WTX) first.
      const fwt = this.timing.frameWaitingTime;
      if (work >= fwt * 0.9) {
        await this.#sleep(g, fwt * 0.8);
        thru.held = { answer, left: work - fwt * 0.8, nr };
        return new Uint8Array([0x00, 0xf2, 0x01]);
      }
      await this.#sleep(g, work);
      return this.#thruAnswer(thru, answer, nr, air);
    }
    if ((pcb & 0xf7) === 0xf2 && thru.held && p.length === 2) {
      // The reader grants the extension: the card finishes and answers.
      const held = thru.held;
      thru.held = undefined;
      await air(2);
      await this.#sleep(g, held.left);
      return this.#thruAnswer(thru, held.answer, held.nr, air);
    }
    if ((pcb & 0xf6) === 0xa2 && thru.out) {
      // R(ACK) for the next piece of a chained answer.
      return this.#thruAnswer(thru, thru.out, nr, air);
    }
    if ((pcb & 0xf7) === 0xc2) {
      // DESELECT: the card answers and goes to HALT; it needs a new activation.
      await air(2);
      this.#targets.delete(target.tg);
      return new Uint8Array([0x00, 0xc2]);
    }
    return undefined;
  }

  /** The next I-block of `answer`, chained when it does not fit the reader's FSD. */
  async #thruAnswer(thru: ThruSession, answer: Uint8Array, nr: number, air: (bytes: number) => Promise<void>): Promise<Uint8Array> {
    const room = thru.fsd - 3;
    const more = answer.length > room;
    const piece = answer.subarray(0, more ? room : answer.length);
    thru.out = more ? answer.slice(room) : undefined;
    await air(piece.length + 3);
    const out = new Uint8Array(2 + piece.length);
    out[0] = 0x00;
    out[1] = 0x02 | (more ? 0x10 : 0) | nr;
    out.set(piece, 2);
    return out;
  }

  async #inAutoPoll(g: number, p: Uint8Array): Promise<Uint8Array | "error"> {
    if (p.length < 3 || p[0] === 0 || p[1]! < 1 || p[1]! > 0x0f || p.length > 17) return "error";
    const pollNr = p[0]!;
    const period = p[1]! * this.timing.pollPeriodUnit;
    const types = [...p.subarray(2)];
    const pickType = (card: HostedCard): number | undefined => {
      if (card.sak & 0x20 && types.includes(0x20)) return 0x20;
      if (types.includes(0x10)) return 0x10;
      if (types.includes(0x00)) return 0x00;
      return undefined;
    };
    for (let poll = 0; pollNr === 0xff || poll < pollNr; poll++) {
      const card = this.#available().find((c) => pickType(c) !== undefined);
      if (card) {
        await this.#sleep(g, this.timing.activationDelay);
        if (card.present) {
          const type = pickType(card)!;
          this.#activate([card]);
          const data = this.#targetData(1, card, type !== 0x10);
          return new Uint8Array([0x01, type, data.length, ...data]);
        }
      }
      // One period per type, woken early when a card arrives.
      await this.#waitForChange(g, period * types.length);
    }
    return new Uint8Array([0x00]);
  }
}
