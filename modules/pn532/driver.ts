/**
 * PN532 command driver over an ECMA-419 serial line in HSU mode. One command is on the wire at a time: frame out,
 * ACK back (resent when it does not come, UM §6.2.3), then the response (NACKed when damaged, aborted with an ACK
 * when late). Everything waits on the host's timers, nothing blocks; close() and abort() end every wait.
 */
import { concatBytes } from "../bytes/bytes";
import type { SerialOptions, SerialPort, SerialSpec, Timers } from "../device/types";
import {
  BIT_RATE_CODES, BaudModulation, Command, Param, RfItem, SERIAL_BAUD_CODES, STATUS_MI, atsBitRates, TG_MI, decodeAutoPoll, decodeFirmwareVersion, decodeListPassiveTarget,
  type FirmwareVersion, type PolledTarget, type TargetA,
} from "./commands";
import {
  Pn532AbortedError, Pn532ApplicationError, Pn532CardGoneError, Pn532ClosedError, Pn532FrameError, Pn532IoError,
  Pn532NoCardError, Pn532ParameterError, Pn532RfError, Pn532StatusError, Pn532TimeoutError, statusError,
} from "./errors";
import { ACK_FRAME, FrameParser, NACK_FRAME, TFI_HOST, TFI_PN532, WAKE_UP, encodeFrame, type Frame, type FrameFault } from "./frame";

export interface PN532Options {
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
  /** Wait for an InDataExchange answer: the card's FWT, stretched by S(WTX), which the PN532 handles itself. */
  exchangeTimeout?: number;
  /** NACKs sent for one damaged response before giving up. */
  nackRetries?: number;
  /** Largest DataOut per InDataExchange frame; longer APDUs go in pieces with the MI bit (262 is the chip's limit). */
  maxDataOut?: number;
  /** Wait for the ACK of the wake-up SAMConfiguration: the chip's oscillator starts first (libnfc allows 1000 ms). */
  wakeUpTimeout?: number;
  /** MxRtyPassiveActivation used while detecting cards: a bounded number so InListPassiveTarget answers at once. */
  passiveRetries?: number;
  /**
   * Line rates to raise the HSU to after start(), fastest first (default 921,600). Only rates the host's UART also
   * lists (`serial.rates`) are tried; a host that lists none stays at `serial.baud`.
   */
  baudRates?: readonly number[];
  /**
   * Highest ISO-DEP bit rate to move an activated card to with InPSL, kbps (106, 212 or 424; default 424). The card's
   * ATS must allow it too; a refusal, or RF errors at the raised rate, bring it back to 106.
   */
  maxBitRate?: number;
  /** Line events worth a log line: a raised rate, a fallback, a chip found reset. */
  onLine?: (event: LineEvent) => void;
  /** Sees every byte written and read, for traces and wire counts. */
  trace?: (direction: "out" | "in", bytes: Uint8Array) => void;
}

export type LineEvent =
  | { kind: "raised"; baud: number }
  | { kind: "fallback"; baud: number; tried: number; reason: string }
  | { kind: "reset"; baud: number }
  | { kind: "bit-rate"; kbps: number; reason?: string };

export interface CommandOptions {
  /** Response deadline after the ACK, ms. */
  timeout?: number;
}

export interface DetectOptions {
  /** Give up after this long, ms (0: one poll only). */
  timeout?: number;
  /** Pause between polls, ms: the event loop and other work run in between. */
  interval?: number;
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

type State = "idle" | "ack" | "response";

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

interface Job {
  run: () => Promise<unknown>;
  resolve: (value: any) => void;
  reject: (error: Error) => void;
}

const MAX_RESPONSE = 4096;
/** Restarts of one wait for host stalls before silence is believed: a host that stalls for ever still ends a command. */
const MAX_STALLS = 4;
/**
 * Commands that reach the card: run again after a lost ACK they would run again on the card (a second INITIALIZE
 * with a new random, a second DEBIT). InPSL changes the card's bit rate, also not to be repeated blindly.
 */
const CARD_COMMANDS: readonly number[] = Object.freeze([Command.InDataExchange, Command.InCommunicateThru, 0x4e]);

export class PN532 {
  readonly #timers: Timers;
  readonly #onError: ((error: Error) => void) | undefined;
  readonly #trace: ((direction: "out" | "in", bytes: Uint8Array) => void) | undefined;
  readonly #parser: FrameParser;
  readonly #spec: SerialSpec;
  readonly #portOptions: SerialOptions;
  #serial: SerialPort;
  /** The rate the chip starts at after power-up or reset; the line comes back to it whenever in doubt. */
  readonly #startBaud: number;
  #baud: number;
  readonly #baudRates: readonly number[];
  readonly #onLine: ((event: LineEvent) => void) | undefined;
  readonly #maxBitRate: number;
  /** RF errors seen at a raised bit rate since the last good exchange. */
  #rfErrors = 0;
  /** The activated card's ISO-DEP bit rate, kbps. */
  bitRate = 106;
  /** An ACK never came at a raised rate: the chip may have reset to its start rate; checked before the next command. */
  #lineSuspect = false;
  readonly #ackTimeout: number;
  readonly #ackRetries: number;
  readonly #lateSlack: number;
  readonly #responseTimeout: number;
  readonly #exchangeTimeout: number;
  readonly #nackRetries: number;
  readonly #maxDataOut: number;
  readonly #wakeUpTimeout: number;
  readonly #passiveRetries: number;
  #state: State = "idle";
  #pending: Pending | undefined;
  #queue: Job[] = [];
  #draining = false;
  #closed = false;
  /** The chip starts in LowVbat and sleeps after PowerDown: either way it needs the HSU wake-up and SAMConfiguration. */
  #asleep = true;
  #retriesBounded = false;
  #waits = new Set<{ handle: unknown; reject: (error: Error) => void }>();
  #generation = 0;
  /** Code of the last command given up on, or resent, whose (other) answer could still arrive late; -1 for none. */
  #unanswered = -1;
  target: TargetA | undefined;
  readonly stats: Pn532Stats = { stalls: 0, bytesOut: 0, bytesIn: 0, commands: 0, resends: 0, nacks: 0, aborts: 0, faults: 0 };

  constructor(options: PN532Options) {
    this.#timers = options.timers;
    this.#onError = options.onError;
    this.#trace = options.trace;
    this.#spec = options.serial;
    this.#startBaud = options.serial.baud ?? 115200;
    this.#baud = this.#startBaud;
    this.#baudRates = options.baudRates ?? [921600];
    this.#onLine = options.onLine;
    this.#maxBitRate = options.maxBitRate ?? 424;
    if (BIT_RATE_CODES[this.#maxBitRate] === undefined) throw new Pn532ParameterError("maxBitRate must be 106, 212 or 424");
    this.#ackTimeout = options.ackTimeout ?? 50;
    this.#ackRetries = options.ackRetries ?? 2;
    this.#lateSlack = options.lateSlack ?? 10;
    this.#responseTimeout = options.responseTimeout ?? 1000;
    this.#exchangeTimeout = options.exchangeTimeout ?? 5000;
    this.#nackRetries = options.nackRetries ?? 2;
    this.#maxDataOut = options.maxDataOut ?? 262;
    this.#wakeUpTimeout = options.wakeUpTimeout ?? 200;
    this.#passiveRetries = options.passiveRetries ?? 0x02;
    if (this.#maxDataOut < 1 || this.#maxDataOut > 262) throw new Pn532ParameterError("maxDataOut must be 1..262");
    this.#parser = new FrameParser({ onFrame: (frame) => this.#onFrame(frame), onFault: (fault) => this.#onFault(fault) });
    const driver = this;
    const { io: _io, rates: _rates, ...spec } = options.serial;
    this.#portOptions = {
      ...spec,
      baud: this.#baud,
      format: "buffer",
      onReadable(this: SerialPort) {
        if (this === driver.#serial) driver.#readable(this);
      },
      onError(error: Error) {
        driver.#onError?.(error);
      },
    };
    this.#serial = new options.serial.io(this.#portOptions);
  }

  /** The line rate in use now. */
  get baud(): number {
    return this.#baud;
  }

  get state(): State {
    return this.#state;
  }

  /** Wire time of `bytes` at the line's baud rate (8N1: 10 bits a byte), ms. */
  wireTime(bytes: number): number {
    return (bytes * 10000) / this.#baud;
  }

  // ---- the public commands, in the manual's names ----

  /** Wake-up, SAMConfiguration (normal mode), GetFirmwareVersion, automatic RATS, bounded retries. */
  async start(): Promise<FirmwareVersion> {
    this.#asleep = true;
    await this.samConfiguration();
    const firmware = await this.getFirmwareVersion();
    await this.setParameters(Param.AutomaticATR_RES | Param.AutomaticRATS);
    await this.setMaxRetries(0xff, 0x01, this.#passiveRetries);
    await this.#enqueue(() => this.#raiseLine());
    return firmware;
  }

  command(code: number, params: Uint8Array = new Uint8Array(0), options: CommandOptions = {}): Promise<Uint8Array> {
    return this.#enqueue(() => this.#exchange(code, params, options.timeout ?? this.#responseTimeout));
  }

  async getFirmwareVersion(): Promise<FirmwareVersion> {
    return decodeFirmwareVersion(await this.command(Command.GetFirmwareVersion));
  }

  /** Line test (NumTst 0): the chip echoes the data. */
  async diagnose(test: number, data: Uint8Array = new Uint8Array(0)): Promise<Uint8Array> {
    const params = new Uint8Array(1 + data.length);
    params[0] = test;
    params.set(data, 1);
    return this.command(Command.Diagnose, params);
  }

  async samConfiguration(mode = 0x01, timeout = 0x14, irq?: number): Promise<void> {
    const params = irq === undefined ? new Uint8Array([mode, timeout]) : new Uint8Array([mode, timeout, irq]);
    await this.command(Command.SAMConfiguration, params);
  }

  async setParameters(flags: number): Promise<void> {
    await this.command(Command.SetParameters, new Uint8Array([flags]));
  }

  async rfConfiguration(item: number, data: Uint8Array): Promise<void> {
    const params = new Uint8Array(1 + data.length);
    params[0] = item;
    params.set(data, 1);
    await this.command(Command.RFConfiguration, params);
  }

  async setField(on: boolean, autoRFCA = false): Promise<void> {
    await this.rfConfiguration(RfItem.Field, new Uint8Array([(on ? 1 : 0) | (autoRFCA ? 2 : 0)]));
  }

  /** Timeout codes: 0 none, n = 100 µs × 2^(n-1) (0x0A = 51.2 ms, 0x0B = 102.4 ms). */
  async setTimings(atrResTimeout: number, nonDepTimeout: number): Promise<void> {
    await this.rfConfiguration(RfItem.VariousTimings, new Uint8Array([0x00, atrResTimeout, nonDepTimeout]));
  }

  /** 0xFF means for ever: with MxRtyPassiveActivation 0xFF InListPassiveTarget waits until a card comes. */
  async setMaxRetries(atr: number, psl: number, passiveActivation: number): Promise<void> {
    await this.rfConfiguration(RfItem.MaxRetries, new Uint8Array([atr, psl, passiveActivation]));
    this.#retriesBounded = passiveActivation !== 0xff;
  }

  async readRegister(addresses: readonly number[]): Promise<Uint8Array> {
    const params = new Uint8Array(addresses.length * 2);
    addresses.forEach((a, i) => {
      params[2 * i] = a >> 8;
      params[2 * i + 1] = a & 0xff;
    });
    return this.command(Command.ReadRegister, params);
  }

  async writeRegister(values: readonly (readonly [number, number])[]): Promise<void> {
    const params = new Uint8Array(values.length * 3);
    values.forEach(([a, v], i) => {
      params[3 * i] = a >> 8;
      params[3 * i + 1] = a & 0xff;
      params[3 * i + 2] = v;
    });
    await this.command(Command.WriteRegister, params);
  }

  /** Activates up to `maxTargets` type-A cards; with fAutomaticRATS the PN532 also gets the ATS of ISO-DEP cards. */
  async inListPassiveTarget(maxTargets = 1, initiatorData?: Uint8Array, options: CommandOptions = {}): Promise<TargetA[]> {
    if (maxTargets !== 1 && maxTargets !== 2) throw new Pn532ParameterError("MaxTg must be 1 or 2");
    const extra = initiatorData ?? new Uint8Array(0);
    const params = new Uint8Array(2 + extra.length);
    params[0] = maxTargets;
    params[1] = BaudModulation.TypeA106;
    params.set(extra, 2);
    const targets = decodeListPassiveTarget(await this.command(Command.InListPassiveTarget, params, options));
    this.target = targets[0];
    return targets;
  }

  /** Polls for the given types (PollNr 1..254 or 0xFF, Period in 150 ms units). */
  async inAutoPoll(pollNr: number, period: number, types: readonly number[], options: CommandOptions = {}): Promise<PolledTarget[]> {
    if (!types.length || types.length > 15) throw new Pn532ParameterError("InAutoPoll takes 1..15 types");
    const params = new Uint8Array([pollNr, period, ...types]);
    // Give the chip the whole polling time it was asked for, plus slack for the wire.
    const timeout = options.timeout ?? (pollNr === 0xff ? 0x7fffffff : pollNr * types.length * period * 150 + 500);
    const polled = decodeAutoPoll(await this.command(Command.InAutoPoll, params, { timeout }));
    const first = polled.find((p) => p.target);
    if (first) this.target = first.target;
    return polled;
  }

  /**
   * Exchanges one block with target `tg` (an APDU for an ISO-DEP card). DataOut longer than maxDataOut goes in
   * pieces with the MI bit; an answer with the MI status bit is fetched piece by piece with bare `40 tg`.
   */
  inDataExchange(tg: number, data: Uint8Array, options: CommandOptions = {}): Promise<Uint8Array> {
    if (tg < 1 || tg > 2) return Promise.reject(new Pn532ParameterError("target number must be 1 or 2"));
    if (data.length > MAX_RESPONSE) return Promise.reject(new Pn532ParameterError(`DataOut of ${data.length} bytes is too long`));
    const timeout = options.timeout ?? this.#exchangeTimeout;
    return this.#enqueue(async () => {
      let offset = 0;
      let reply: Uint8Array;
      do {
        const size = Math.min(this.#maxDataOut, data.length - offset);
        const more = offset + size < data.length;
        const params = new Uint8Array(1 + size);
        params[0] = tg | (more ? TG_MI : 0);
        params.set(data.subarray(offset, offset + size), 1);
        reply = this.#checkStatus(Command.InDataExchange, await this.#exchange(Command.InDataExchange, params, timeout));
        offset += size;
      } while (offset < data.length);
      const parts: Uint8Array[] = [reply.subarray(1)];
      let total = reply.length - 1;
      while (reply[0]! & STATUS_MI) {
        reply = this.#checkStatus(Command.InDataExchange, await this.#exchange(Command.InDataExchange, new Uint8Array([tg]), timeout));
        parts.push(reply.subarray(1));
        total += reply.length - 1;
        if (total > MAX_RESPONSE) throw new Pn532FrameError(`chained answer grew past ${MAX_RESPONSE} bytes`);
      }
      return concatBytes(...parts);
    });
  }

  /** Raw frame exchange with the current CIU framing (presence checks, non-ISO-DEP cards). */
  async inCommunicateThru(data: Uint8Array, options: CommandOptions = {}): Promise<Uint8Array> {
    return this.#checkStatus(Command.InCommunicateThru, await this.command(Command.InCommunicateThru, data, options)).slice(1);
  }

  async inDeselect(tg = 0): Promise<void> {
    this.#checkStatus(Command.InDeselect, await this.command(Command.InDeselect, new Uint8Array([tg])));
  }

  async inRelease(tg = 0): Promise<void> {
    this.#checkStatus(Command.InRelease, await this.command(Command.InRelease, new Uint8Array([tg])));
    if (tg === 0 || this.target?.tg === tg) this.target = undefined;
  }

  /** Puts the chip to sleep; the next command wakes it with the HSU wake-up and SAMConfiguration first. */
  async powerDown(wakeUpEnable = 0xf0): Promise<number> {
    const params = new Uint8Array([wakeUpEnable]);
    const reply = await this.#enqueue(async () => {
      const r = await this.#exchange(Command.PowerDown, params, this.#responseTimeout);
      this.#asleep = true;
      this.#retriesBounded = false;
      this.target = undefined;
      return r;
    });
    return reply[0] ?? 0;
  }

  /**
   * Looks for one type-A card without ever holding the event loop: each InListPassiveTarget has a bounded retry
   * count, so the chip answers at once, and the driver sleeps on a timer between polls. abort() ends it.
   */
  async detect(options: DetectOptions = {}): Promise<TargetA> {
    const timeout = options.timeout ?? 0;
    const interval = options.interval ?? 50;
    const deadline = this.#timers.now() + timeout;
    const generation = this.#generation;
    for (;;) {
      if (!this.#retriesBounded) await this.setMaxRetries(0xff, 0x01, this.#passiveRetries);
      const targets = await this.inListPassiveTarget(1);
      if (targets.length) {
        await this.#raiseBitRate(targets[0]!);
        return targets[0]!;
      }
      if (generation !== this.#generation) throw new Pn532AbortedError("detection aborted");
      const left = deadline - this.#timers.now();
      if (left <= 0) throw new Pn532NoCardError(`no card within ${timeout} ms`);
      await this.#sleep(Math.min(interval, left));
    }
  }

  /** InPSL: both directions of target `tg` at `kbps` (106, 212, 424). */
  async inPsl(tg: number, kbps: number): Promise<void> {
    const code = BIT_RATE_CODES[kbps];
    if (code === undefined) throw new Pn532ParameterError(`no InPSL code for ${kbps} kbps`);
    this.#checkStatus(Command.InPSL, await this.command(Command.InPSL, new Uint8Array([tg, code, code])));
    this.bitRate = kbps;
    this.#rfErrors = 0;
  }

  /** After activation: the fastest bit rate the card's ATS and maxBitRate allow; a refusal leaves it at 106. */
  async #raiseBitRate(target: TargetA): Promise<void> {
    this.bitRate = 106;
    this.#rfErrors = 0;
    if (!target.ats) return;
    const best = atsBitRates(target.ats).filter((r) => r <= this.#maxBitRate && BIT_RATE_CODES[r] !== undefined).pop()!;
    if (best === 106) return;
    try {
      await this.inPsl(target.tg, best);
      this.#onLine?.({ kind: "bit-rate", kbps: best });
    } catch (error) {
      if (!(error instanceof Pn532StatusError || error instanceof Pn532ApplicationError || error instanceof Pn532FrameError)) throw error;
      this.#onLine?.({ kind: "bit-rate", kbps: 106, reason: `InPSL to ${best} refused: ${error.message}` });
    }
  }

  /** The ISO 7816 transceiver the purse layer uses: one APDU to the activated card, its answer back. */
  async transceive(apdu: Uint8Array): Promise<Uint8Array> {
    const target = this.target;
    if (!target) throw new Pn532NoCardError("no activated card: detect() first");
    try {
      const answer = await this.inDataExchange(target.tg, apdu);
      this.#rfErrors = 0;
      return answer;
    } catch (error) {
      if (error instanceof Pn532CardGoneError && this.target === target) this.target = undefined;
      if (error instanceof Pn532RfError && this.bitRate > 106 && ++this.#rfErrors >= 2 && this.target === target) {
        // Errors rising at the raised rate: the card or the field cannot hold it; back to 106 for this card.
        await this.inPsl(target.tg, 106).catch(() => {});
        this.#onLine?.({ kind: "bit-rate", kbps: 106, reason: "RF errors at the raised rate" });
      }
      throw error;
    }
  }

  /** Cancels the command on the wire (telling the chip with an ACK), every queued command and any detect() loop. */
  abort(): void {
    this.#cancelAll(() => new Pn532AbortedError());
  }

  close(): void {
    if (this.#closed) return;
    this.#cancelAll(() => new Pn532ClosedError());
    this.#closed = true;
    try {
      this.#serial.close();
    } catch {
      // Already gone: nothing more to free.
    }
  }

  // ---- the line rate ----

  /**
   * Moves the host's side to `baud`. ECMA-419 serial takes its rate only in the constructor, so the port is closed and
   * opened again; a host port with its own `setBaud` (Node's, which keeps a pty open) changes in place.
   */
  #reopen(baud: number): void {
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

  /**
   * SetSerialBaudRate the manual's way (docs/pn532.md): the chip answers at the old rate, the host ACKs at the old
   * rate, then both move; a Diagnose echo at the new rate proves the line. Tries each rate both ends support, fastest
   * first; falls back to the start rate with a wake-up when a check fails.
   */
  async #raiseLine(): Promise<void> {
    const host = this.#spec.rates ?? [];
    const rates = this.#baudRates.filter((r) => r > this.#baud && host.includes(r) && SERIAL_BAUD_CODES[r] !== undefined);
    rates.sort((a, b) => b - a);
    for (const rate of rates) {
      const from = this.#baud;
      try {
        await this.#send(Command.SetSerialBaudRate, new Uint8Array([SERIAL_BAUD_CODES[rate]!]), this.#responseTimeout, false);
      } catch (error) {
        // Refused at the old rate (an error frame, no answer): the chip did not move; try the next rate.
        this.#onLine?.({ kind: "fallback", baud: from, tried: rate, reason: (error as Error).message });
        continue;
      }
      if (!this.#write(ACK_FRAME)) continue;
      // The ACK has to be out of the UART at the old rate before the host's side moves.
      await this.#sleep(Math.ceil(this.wireTime(ACK_FRAME.length)) + 1);
      let moved = true;
      try {
        this.#reopen(rate);
      } catch (error) {
        this.#onError?.(error as Error);
        moved = false;
      }
      if (moved && (await this.#lineWorks())) {
        this.#onLine?.({ kind: "raised", baud: rate });
        return;
      }
      this.#reopen(this.#startBaud);
      this.#asleep = true;
      const back = await this.#lineWorks();
      this.#onLine?.({ kind: "fallback", baud: this.#startBaud, tried: rate, reason: back ? "no echo at the new rate" : "no answer at either rate" });
      if (!back) throw new Pn532IoError(`line check failed at ${rate} and at ${this.#startBaud} baud`);
    }
  }

  /** Diagnose line test with a short echo: true when it comes back intact. Wakes the chip first if it sleeps. */
  async #lineWorks(): Promise<boolean> {
    const probe = new Uint8Array([0x00, 0x55, 0xaa, 0x5a, 0xa5]);
    try {
      const echo = await this.#exchange(Command.Diagnose, probe, this.#responseTimeout, true);
      return echo.length === probe.length && echo.every((b, i) => b === probe[i]);
    } catch {
      return false;
    } finally {
      // The check's own silence is not a sign of a reset: the caller decides from its answer.
      this.#lineSuspect = false;
    }
  }

  /**
   * A command found no ACK at a raised rate: a chip that reset or lost power is back at its start rate, asleep. Look
   * there with a wake-up; found, raise the line again; not found, return to the raised rate (a glitch, not a reset).
   */
  async #checkLine(): Promise<void> {
    this.#lineSuspect = false;
    const raised = this.#baud;
    this.#reopen(this.#startBaud);
    this.#asleep = true;
    if (await this.#lineWorks()) {
      this.#onLine?.({ kind: "reset", baud: this.#startBaud });
      // A reset chip lost its settings too.
      await this.#exchange(Command.SetParameters, new Uint8Array([Param.AutomaticATR_RES | Param.AutomaticRATS]), this.#responseTimeout);
      await this.#exchange(Command.RFConfiguration, new Uint8Array([RfItem.MaxRetries, 0xff, 0x01, this.#passiveRetries]), this.#responseTimeout);
      this.#retriesBounded = true;
      this.target = undefined;
      await this.#raiseLine();
      return;
    }
    this.#asleep = false;
    this.#reopen(raised);
  }

  // ---- the command layer ----

  #cancelAll(make: () => Error): void {
    this.#generation++;
    const queued = this.#queue;
    this.#queue = [];
    for (const job of queued) job.reject(make());
    for (const wait of this.#waits) {
      this.#timers.clear(wait.handle);
      wait.reject(make());
    }
    this.#waits.clear();
    const pending = this.#pending;
    if (pending) {
      this.stats.aborts++;
      if (!this.#closed) this.#write(ACK_FRAME);
      this.#finish(pending, make());
    }
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const wait = {
        handle: undefined as unknown,
        reject,
      };
      wait.handle = this.#timers.set(() => {
        this.#waits.delete(wait);
        resolve();
      }, ms);
      this.#waits.add(wait);
    });
  }

  #enqueue<T>(run: () => Promise<T>): Promise<T> {
    if (this.#closed) return Promise.reject(new Pn532ClosedError());
    return new Promise<T>((resolve, reject) => {
      this.#queue.push({ run, resolve, reject });
      this.#drain();
    });
  }

  async #drain(): Promise<void> {
    if (this.#draining) return;
    this.#draining = true;
    try {
      for (let job = this.#queue.shift(); job; job = this.#queue.shift()) {
        try {
          job.resolve(await job.run());
        } catch (error) {
          job.reject(error as Error);
        }
      }
    } finally {
      this.#draining = false;
    }
  }

  #checkStatus(code: number, reply: Uint8Array): Uint8Array {
    if (reply.length < 1) throw new Pn532FrameError(`command 0x${code.toString(16)} answered without a status byte`);
    const error = statusError(code, reply[0]!);
    if (error) throw error;
    return reply;
  }

  /** One command frame and its answer (PD1.. of the response), waking the chip first when it sleeps. */
  async #exchange(code: number, params: Uint8Array, timeout: number, checking = false): Promise<Uint8Array> {
    if (this.#closed) throw new Pn532ClosedError();
    if (this.#lineSuspect && !checking) await this.#checkLine();
    if (this.#asleep) {
      const sam = code === Command.SAMConfiguration ? params : new Uint8Array([0x01, 0x14]);
      const reply = await this.#send(Command.SAMConfiguration, sam, this.#responseTimeout, true);
      this.#asleep = false;
      if (code === Command.SAMConfiguration) return reply;
    }
    return this.#send(code, params, timeout, false);
  }

  #send(code: number, params: Uint8Array, timeout: number, wake: boolean): Promise<Uint8Array> {
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
    if (!this.#write(bytes)) {
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
    this.#timers.clear(pending.timer);
    const arming = ++pending.arming;
    pending.due = this.#timers.now() + ms;
    pending.timer = this.#timers.set(() => {
      if (this.#pending !== pending || pending.arming !== arming) return;
      this.#readable(this.#serial);
      if (this.#pending !== pending || pending.arming !== arming) return;
      if (this.#timers.now() - pending.due > this.#lateSlack && pending.stalls < MAX_STALLS) {
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
    if (this.#baud !== this.#startBaud) this.#lineSuspect = true;
    this.#finish(pending, new Pn532TimeoutError(pending.code, "ack", Math.round(waited)));
  }

  #responseTimedOut(pending: Pending, phase: "ack" | "response" = "response"): void {
    if (this.#pending !== pending) return;
    // The chip may still be working on it; the ACK tells it to stop so its late answer cannot meet the next command.
    this.stats.aborts++;
    this.#write(ACK_FRAME);
    if (phase === "ack" && this.#baud !== this.#startBaud) this.#lineSuspect = true;
    this.#finish(pending, new Pn532TimeoutError(pending.code, phase, pending.timeout));
  }

  #finish(pending: Pending, result: Uint8Array | Error): void {
    if (this.#pending !== pending) return;
    this.#timers.clear(pending.timer);
    this.#pending = undefined;
    this.#state = "idle";
    if (result instanceof Uint8Array) {
      if (pending.sends > 1) {
        // Both copies of a resent command may have reached the chip: stop the one still running, and treat this
        // code as one whose answer can still turn up.
        this.stats.aborts++;
        this.#write(ACK_FRAME);
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

  #write(bytes: Uint8Array): boolean {
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
    this.#write(NACK_FRAME);
  }
}
