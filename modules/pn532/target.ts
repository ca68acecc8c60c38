/**
 * The card in the field, with the PN532 as initiator: activation (InListPassiveTarget, InAutoPoll), the ISO-DEP bit
 * rate (InPSL), blocks to and from the card (InDataExchange, InCommunicateThru) and its release. The PN532 runs the
 * ISO-DEP block protocol itself, so the host sends bare APDUs.
 */
import { concatBytes } from "../bytes/bytes";
import {
  BIT_RATE_CODES, BaudModulation, Command, STATUS_MI, TG_MI, atsBitRates, decodeAutoPoll, decodeListPassiveTarget,
  type PolledTarget, type TargetA,
} from "./commands";
import type { Chip, CommandOptions } from "./chip";
import {
  Pn532AbortedError, Pn532ApplicationError, Pn532CardGoneError, Pn532FrameError, Pn532NoCardError, Pn532ParameterError,
  Pn532RfError, Pn532StatusError,
} from "./errors";
import type { LineEvent } from "./line-rate";
import type { Link } from "./link";

export interface InitiatorOptions {
  /** Wait for an InDataExchange answer: the card's FWT, stretched by S(WTX), which the PN532 handles itself. */
  exchangeTimeout?: number;
  /** Largest DataOut per InDataExchange frame; longer APDUs go in pieces with the MI bit (262 is the chip's limit). */
  maxDataOut?: number;
  /**
   * Highest ISO-DEP bit rate to move an activated card to with InPSL, kbps (106, 212 or 424; default 424). The card's
   * ATS must allow it too; a refusal, or RF errors at the raised rate, bring it back to 106.
   */
  maxBitRate?: number;
  /** Line events worth a log line; here the ISO-DEP bit rate chosen for a card. */
  onLine?: (event: LineEvent) => void;
}

export interface DetectOptions {
  /** Give up after this long, ms (0: one poll only). */
  timeout?: number;
  /** Pause between polls, ms: the event loop and other work run in between. */
  interval?: number;
}

interface InitiatorSettings {
  exchangeTimeout: number;
  maxDataOut: number;
  maxBitRate: number;
  onLine: ((event: LineEvent) => void) | undefined;
}

const MAX_RESPONSE = 4096;

/** Checks and completes the options before anything opens the serial line: a bad value throws first. */
export function initiatorSettings(options: InitiatorOptions): InitiatorSettings {
  const maxBitRate = options.maxBitRate ?? 424;
  if (BIT_RATE_CODES[maxBitRate] === undefined) throw new Pn532ParameterError("maxBitRate must be 106, 212 or 424");
  const maxDataOut = options.maxDataOut ?? 262;
  if (maxDataOut < 1 || maxDataOut > 262) throw new Pn532ParameterError("maxDataOut must be 1..262");
  return { exchangeTimeout: options.exchangeTimeout ?? 5000, maxDataOut, maxBitRate, onLine: options.onLine };
}

export class Initiator {
  readonly #link: Link;
  readonly #chip: Chip;
  readonly #settings: InitiatorSettings;
  /** RF errors seen at a raised bit rate since the last good exchange. */
  #rfErrors = 0;
  /** The activated card's ISO-DEP bit rate, kbps. */
  bitRate = 106;
  target: TargetA | undefined;

  constructor(link: Link, chip: Chip, settings: InitiatorSettings) {
    this.#link = link;
    this.#chip = chip;
    this.#settings = settings;
  }

  /** The chip no longer holds an activated card. */
  forget(): void {
    this.target = undefined;
  }

  /** Activates up to `maxTargets` type-A cards; with fAutomaticRATS the PN532 also gets the ATS of ISO-DEP cards. */
  async inListPassiveTarget(maxTargets = 1, initiatorData?: Uint8Array, options: CommandOptions = {}): Promise<TargetA[]> {
    if (maxTargets !== 1 && maxTargets !== 2) throw new Pn532ParameterError("MaxTg must be 1 or 2");
    const extra = initiatorData ?? new Uint8Array(0);
    const params = new Uint8Array(2 + extra.length);
    params[0] = maxTargets;
    params[1] = BaudModulation.TypeA106;
    params.set(extra, 2);
    const targets = decodeListPassiveTarget(await this.#chip.command(Command.InListPassiveTarget, params, options));
    this.target = targets[0];
    return targets;
  }

  /** Polls for the given types (PollNr 1..254 or 0xFF, Period in 150 ms units). */
  async inAutoPoll(pollNr: number, period: number, types: readonly number[], options: CommandOptions = {}): Promise<PolledTarget[]> {
    if (!types.length || types.length > 15) throw new Pn532ParameterError("InAutoPoll takes 1..15 types");
    const params = new Uint8Array([pollNr, period, ...types]);
    // Give the chip the whole polling time it was asked for, plus slack for the wire.
    const timeout = options.timeout ?? (pollNr === 0xff ? 0x7fffffff : pollNr * types.length * period * 150 + 500);
    const polled = decodeAutoPoll(await this.#chip.command(Command.InAutoPoll, params, { timeout }));
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
    const timeout = options.timeout ?? this.#settings.exchangeTimeout;
    const chip = this.#chip;
    return this.#link.enqueue(async () => {
      let offset = 0;
      let reply: Uint8Array;
      do {
        const size = Math.min(this.#settings.maxDataOut, data.length - offset);
        const more = offset + size < data.length;
        const params = new Uint8Array(1 + size);
        params[0] = tg | (more ? TG_MI : 0);
        params.set(data.subarray(offset, offset + size), 1);
        reply = chip.checkStatus(Command.InDataExchange, await chip.exchange(Command.InDataExchange, params, timeout));
        offset += size;
      } while (offset < data.length);
      const parts: Uint8Array[] = [reply.subarray(1)];
      let total = reply.length - 1;
      while (reply[0]! & STATUS_MI) {
        reply = chip.checkStatus(Command.InDataExchange, await chip.exchange(Command.InDataExchange, new Uint8Array([tg]), timeout));
        parts.push(reply.subarray(1));
        total += reply.length - 1;
        if (total > MAX_RESPONSE) throw new Pn532FrameError(`chained answer grew past ${MAX_RESPONSE} bytes`);
      }
      return concatBytes(...parts);
    });
  }

  /** Raw frame exchange with the current CIU framing (presence checks, non-ISO-DEP cards). */
  async inCommunicateThru(data: Uint8Array, options: CommandOptions = {}): Promise<Uint8Array> {
    return this.#chip.checkStatus(Command.InCommunicateThru, await this.#chip.command(Command.InCommunicateThru, data, options)).slice(1);
  }

  async inDeselect(tg = 0): Promise<void> {
    this.#chip.checkStatus(Command.InDeselect, await this.#chip.command(Command.InDeselect, new Uint8Array([tg])));
  }

  async inRelease(tg = 0): Promise<void> {
    this.#chip.checkStatus(Command.InRelease, await this.#chip.command(Command.InRelease, new Uint8Array([tg])));
    if (tg === 0 || this.target?.tg === tg) this.target = undefined;
  }

  /**
   * Looks for one type-A card without ever holding the event loop: each InListPassiveTarget has a bounded retry
   * count, so the chip answers at once, and the driver sleeps on a timer between polls. abort() ends it.
   */
  async detect(options: DetectOptions = {}): Promise<TargetA> {
    const link = this.#link;
    const chip = this.#chip;
    const timeout = options.timeout ?? 0;
    const interval = options.interval ?? 50;
    const deadline = link.timers.now() + timeout;
    const generation = link.generation;
    for (;;) {
      if (!chip.retriesBounded) await chip.setMaxRetries(0xff, 0x01, chip.passiveRetries);
      const targets = await this.inListPassiveTarget(1);
      if (targets.length) {
        await this.#raiseBitRate(targets[0]!);
        return targets[0]!;
      }
      if (generation !== link.generation) throw new Pn532AbortedError("detection aborted");
      const left = deadline - link.timers.now();
      if (left <= 0) throw new Pn532NoCardError(`no card within ${timeout} ms`);
      await link.sleep(Math.min(interval, left));
    }
  }

  /** InPSL: both directions of target `tg` at `kbps` (106, 212, 424). */
  async inPsl(tg: number, kbps: number): Promise<void> {
    const code = BIT_RATE_CODES[kbps];
    if (code === undefined) throw new Pn532ParameterError(`no InPSL code for ${kbps} kbps`);
    this.#chip.checkStatus(Command.InPSL, await this.#chip.command(Command.InPSL, new Uint8Array([tg, code, code])));
    this.bitRate = kbps;
    this.#rfErrors = 0;
  }

  /** After activation: the fastest bit rate the card's ATS and maxBitRate allow; a refusal leaves it at 106. */
  async #raiseBitRate(target: TargetA): Promise<void> {
    this.bitRate = 106;
    this.#rfErrors = 0;
    if (!target.ats) return;
    const best = atsBitRates(target.ats).filter((r) => r <= this.#settings.maxBitRate && BIT_RATE_CODES[r] !== undefined).pop()!;
    if (best === 106) return;
    try {
      await this.inPsl(target.tg, best);
      this.#settings.onLine?.({ kind: "bit-rate", kbps: best });
    } catch (error) {
      if (!(error instanceof Pn532StatusError || error instanceof Pn532ApplicationError || error instanceof Pn532FrameError)) throw error;
      this.#settings.onLine?.({ kind: "bit-rate", kbps: 106, reason: `InPSL to ${best} refused: ${error.message}` });
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
        this.#settings.onLine?.({ kind: "bit-rate", kbps: 106, reason: "RF errors at the raised rate" });
      }
      throw error;
    }
  }
}
