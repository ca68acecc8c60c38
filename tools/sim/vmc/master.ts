/**
 * A VMC (MDB master) for tests and simulation, at the level of 9-bit words (docs/mdb.md §7). No Node APIs, so the
 * same master drives the device inside XS. On a synchronous line (in memory) the reader's words come back through
 * receive() before transmit() returns and silence is known at once; on a byte stream (tools/sim/vmc/stream.ts) the
 * master waits for the reply on the given timers, up to `replyTimeoutMs`, and records reply and gap times.
 *
 * It frames like a VMC (address with the mode bit, CHK), checks the reader's CHK and mode bit, ACKs, parses the
 * chained messages strictly for the negotiated level, and records reply times when given a clock. Faults to inject
 * per exchange: no ACK, RET, NAK, a corrupted CHK, a repeated command.
 *
 * Both reply forms are accepted (docs/mdb.md §2.1): data that answers a command directly is kept as unclaimed until
 * pollUntil() (or claim()) asks for it, so "send, then poll until the answer" reads the same for either form. With
 * `strictReplies` the master is a VMC that wants the direct form: an ACK to SETUP config, EXPANSION REQUEST ID,
 * SESSION COMPLETE or VEND CANCEL is refused with MdbDeferredReplyError, as such masters restart the reader then.
 */
import { MAX_BLOCK, checksum, encodeCommand, type Command } from "../../../modules/mdb/commands";
import { MdbError, MdbReplyError } from "../../../modules/mdb/errors";
import { parseReplies, type Format, type Reply } from "../../../modules/mdb/replies";
import { MODE } from "../../../modules/mdb/wire";
import { directSlot } from "../../../modules/mdb/link";
import type { Timers } from "../../../modules/device/types";

export type Fault = "none" | "no-ack" | "ret" | "nak" | "bad-chk";

export type Answer =
  | { kind: "ack" }
  | { kind: "silence" }
  | { kind: "data"; replies: Reply[]; bytes: Uint8Array };

export interface MasterOptions {
  address?: number;
  transmit(words: Uint16Array): void;
  /** Milliseconds, for reply-time figures; optional. */
  now?(): number;
  /** Given, the line is asynchronous: wait for replies on these timers. */
  timers?: Timers;
  /** How long to wait for the first reply byte on an asynchronous line (default 5 ms, the spec's limit). */
  replyTimeoutMs?: number;
  /** Columns × rows the VMC declares (0 = no display). */
  displayBytes?: number;
  /** Each command and the reader's answer, for a decoded log. */
  onExchange?(command: Command, answer: Answer): void;
  /**
   * Strict timing (docs/mdb.md §2): every reply must start within 5 ms and keep its bytes within 1 ms of each
   * other, or the exchange throws MdbTimingError. Needs `now`.
   */
  strict?: boolean;
  /**
   * Wants the direct reply form: READER CONFIG, PERIPHERAL ID, END SESSION and VEND DENIED as the answer to SETUP
   * config, REQUEST ID, SESSION COMPLETE and VEND CANCEL. An ACK instead throws MdbDeferredReplyError.
   */
  strictReplies?: boolean;
  /**
   * The reader's non-response time, ms: a reader silent for longer is offline and poll() RESETs and initialises it
   * again (docs/mdb.md §7). Default: the larger of 5 s and the Z7 it declared.
   */
  nonResponseMs?: number;
}

/** A reply later than 5 ms or with bytes more than 1 ms apart, in strict mode. */
export class MdbTimingError extends MdbError {
  constructor(readonly what: "reply" | "inter-byte", readonly ms: number, readonly limit: number) {
    super("MDB_TIMING", `reader ${what} time ${ms.toFixed(2)} ms is over the ${limit} ms limit`);
  }
}

/** Strict replies: one of the four commands that carry their answer got an ACK (the answer deferred to a POLL). */
export class MdbDeferredReplyError extends MdbError {
  constructor(readonly command: Command["kind"]) {
    super("MDB_DEFERRED_REPLY", `${command.toUpperCase().replace(/-/g, " ")} got an ACK: this VMC wants its answer as the direct reply (docs/mdb.md §2.1)`);
  }
}

export class VmcMaster {
  readonly address: number;
  readonly #o: MasterOptions;
  #rx: number[] = [];
  #rxDone = false;
  #sentAt = 0;
  #lastAt = 0;
  #wake: (() => void) | undefined;
  /** Time from the end of each command to the reader's first word, and the largest gap between its words. */
  readonly replyTimes: number[] = [];
  readonly gapTimes: number[] = [];
  format: Format = { level: 1, vmcLevel: 1, expanded: false };
  readonly log: string[] = [];
  /** RESETs poll() sent because the reader was offline. */
  resets = 0;
  #lastHeard = 0;
  #z7Ms = 0;
  #initArgs: [1 | 2 | 3, number] = [1, 0];
  /** Messages that came as the direct answer to a command and that no one has asked for yet. */
  #unclaimed: Reply[] = [];
  /** Commands answered directly, and with an ACK, of the four that may carry their answer. */
  readonly replyForms = { direct: 0, deferred: 0 };
  /** Wants the direct reply form (MasterOptions.strictReplies); a harness switches it between scenarios. */
  strictReplies: boolean;

  constructor(o: MasterOptions) {
    this.address = o.address ?? 0x10;
    this.#o = o;
    this.strictReplies = o.strictReplies ?? false;
  }

  /** From the line: one word from the reader. */
  receive(word: number): void {
    if (this.#rxDone) return; // anything after the end of a block is not part of this answer
    const now = this.#o.now?.() ?? 0;
    if (!this.#rx.length) this.replyTimes.push(now - this.#sentAt);
    else this.gapTimes.push(now - this.#lastAt);
    this.#lastAt = now;
    this.#rx.push(word);
    if (word & MODE) {
      this.#rxDone = true;
      this.#wake?.();
    }
  }

  /** Until the block is whole or the first word is late (or a started block stops for 10× the reply time). */
  async #collect(): Promise<void> {
    const timers = this.#o.timers;
    if (!timers || this.#rxDone) return;
    const limit = this.#o.replyTimeoutMs ?? 5;
    for (;;) {
      const before = this.#rx.length;
      await new Promise<void>((resolve) => {
        const handle = timers.set(() => { this.#wake = undefined; resolve(); }, before ? limit * 10 : limit);
        this.#wake = () => { timers.clear(handle); this.#wake = undefined; resolve(); };
      });
      if (this.#rxDone || this.#rx.length === before) return;
    }
  }

  /** Sends one command and returns the reader's answer, after answering its data per `fault`. */
  async send(c: Command, fault: Fault = "none"): Promise<Answer> {
    const block = encodeCommand(this.address, c, this.format.expanded);
    const words = new Uint16Array(block.length + 1);
    for (let i = 0; i < block.length; i++) words[i] = block[i]!;
    words[0] = MODE | block[0]!;
    words[block.length] = (checksum(block) + (fault === "bad-chk" ? 1 : 0)) & 0xff;
    const answer = await this.#exchange(words, fault);
    this.#o.onExchange?.(c, answer);
    if (answer.kind !== "silence") this.#lastHeard = this.#o.now?.() ?? 0;
    if (directSlot(block) >= 0) {
      if (answer.kind === "data") this.replyForms.direct++;
      else if (answer.kind === "ack") {
        this.replyForms.deferred++;
        if (this.strictReplies) throw new MdbDeferredReplyError(c.kind);
      }
    }
    if (c.kind !== "poll" && answer.kind === "data") this.#unclaimed.push(...answer.replies);
    return answer;
  }

  /** Unclaimed direct replies up to and including the first of this kind (removed), or undefined when none is. */
  claim(want: Reply["kind"]): Reply[] | undefined {
    const at = this.#unclaimed.findIndex((r) => r.kind === want);
    if (at < 0) return undefined;
    return this.#unclaimed.splice(0, at + 1);
  }

  /**
   * One POLL as a VMC's polling loop sends it: a reader silent for longer than its non-response time is offline, so
   * it is RESET and initialised again (at the level and options of the last init()).
   */
  async poll(): Promise<Answer> {
    const a = await this.send({ kind: "poll" });
    if (a.kind !== "silence") return a;
    const limit = this.#o.nonResponseMs ?? Math.max(5000, this.#z7Ms);
    if ((this.#o.now?.() ?? 0) - this.#lastHeard < limit) return a;
    this.resets++;
    await this.init(...this.#initArgs);
    return a;
  }

  /** Raw words (noise, a foreign device's block), for fault tests. */
  sendWords(words: Uint16Array): Promise<Answer> {
    return this.#exchange(words, "none");
  }

  async #exchange(words: Uint16Array, fault: Fault): Promise<Answer> {
    this.#rx = [];
    this.#rxDone = false;
    this.#sentAt = this.#o.now?.() ?? 0;
    this.#o.transmit(words);
    await this.#collect();
    const rx = this.#rx;
    if (rx.length && !this.#rxDone) this.#rxDone = true; // cut short: later words are not this answer
    if (this.#o.strict && rx.length) this.#checkTiming(rx.length);
    if (!rx.length) return { kind: "silence" };
    if (!(rx[rx.length - 1]! & MODE)) throw new MdbReplyError(Uint8Array.from(rx), "no mode bit on the last byte");
    if (rx.length === 1) {
      if (rx[0] === (MODE | 0x00)) return { kind: "ack" };
      throw new MdbReplyError(Uint8Array.of(rx[0]! & 0xff), "a lone byte that is not ACK");
    }
    if (rx.length > MAX_BLOCK) throw new MdbReplyError(Uint8Array.from(rx), "reply longer than 36 bytes");
    const data = Uint8Array.from(rx.slice(0, -1));
    for (const w of rx.slice(0, -1)) if (w & MODE) throw new MdbReplyError(data, "mode bit before the last byte");
    if (checksum(data) !== (rx[rx.length - 1]! & 0xff)) throw new MdbReplyError(data, "bad CHK from the reader");
    const replies = parseReplies(data, this.format, this.#o.displayBytes ?? 0);
    if (fault === "ret") {
      const again = await this.#answer(0xaa);
      if (again.kind !== "data" || again.bytes.length !== data.length || again.bytes.some((b, i) => b !== data[i])) {
        throw new MdbReplyError(data, "RET did not bring the same block back");
      }
      this.#o.transmit(Uint16Array.of(0x00));
    } else if (fault === "nak") this.#o.transmit(Uint16Array.of(0xff));
    else if (fault !== "no-ack") this.#o.transmit(Uint16Array.of(0x00));
    return { kind: "data", replies, bytes: data };
  }

  #checkTiming(words: number): void {
    const reply = this.replyTimes[this.replyTimes.length - 1]!;
    if (reply > 5) throw new MdbTimingError("reply", reply, 5);
    for (let i = this.gapTimes.length - (words - 1); i < this.gapTimes.length; i++) {
      if (i >= 0 && this.gapTimes[i]! > 1) throw new MdbTimingError("inter-byte", this.gapTimes[i]!, 1);
    }
  }

  async #answer(code: number): Promise<Answer> {
    this.#rx = [];
    this.#rxDone = false;
    this.#sentAt = this.#o.now?.() ?? 0;
    this.#o.transmit(Uint16Array.of(code));
    await this.#collect();
    if (!this.#rx.length) return { kind: "ack" };
    const data = Uint8Array.from(this.#rx.slice(0, -1));
    return { kind: "data", replies: [], bytes: data };
  }

  /** Polls until data (or `tries` POLLs got none); returns every message seen. */
  async pollUntil(want: Reply["kind"], tries = 20): Promise<Reply[]> {
    const direct = this.claim(want);
    if (direct) return direct;
    const seen: Reply[] = [];
    for (let i = 0; i < tries; i++) {
      const a = await this.send({ kind: "poll" });
      if (a.kind === "data") {
        seen.push(...a.replies);
        if (a.replies.some((r) => r.kind === want)) return seen;
      }
    }
    throw new MdbReplyError(new Uint8Array(0), `no ${want} after ${tries} POLLs (saw ${seen.map((r) => r.kind).join(", ") || "nothing"})`);
  }

  /**
   * The initialisation sequence (docs/mdb.md §7): RESET, POLL until JUST RESET, SETUP config, max/min, REQUEST ID,
   * at level 3 the optional features and (expanded) max/min again, READER ENABLE. Returns what the reader declared.
   */
  async init(level: 1 | 2 | 3, enableOptions = 0): Promise<{ config: Extract<Reply, { kind: "reader-config" }>; id: Extract<Reply, { kind: "peripheral-id" }> }> {
    this.format = { level: 1, vmcLevel: level, expanded: false };
    this.#initArgs = [level, enableOptions];
    this.#unclaimed = [];
    if ((await this.send({ kind: "reset" })).kind !== "ack") throw new MdbReplyError(new Uint8Array(0), "RESET not ACKed");
    await this.pollUntil("just-reset");
    await this.send({ kind: "setup-config", vmcLevel: level, columns: 0, rows: 0, displayType: 0 });
    const config = (await this.pollUntil("reader-config")).find((r) => r.kind === "reader-config") as Extract<Reply, { kind: "reader-config" }>;
    this.format = { level: Math.min(level, config.level), vmcLevel: level, expanded: false };
    this.#z7Ms = config.maxResponse * 1000;
    await this.send({ kind: "setup-prices", max: 0xffff, min: 0 });
    await this.send({ kind: "request-id", manufacturer: "VMC", serial: "000000000042", model: "SIMULATOR", version: 0x0100 });
    const id = (await this.pollUntil("peripheral-id")).find((r) => r.kind === "peripheral-id") as Extract<Reply, { kind: "peripheral-id" }>;
    if (this.format.level >= 3) {
      const bits = enableOptions & (id.options ?? 0);
      await this.send({ kind: "optional-features", bits });
      if (bits & 0b110) {
        this.format = { ...this.format, expanded: true };
        await this.send({ kind: "setup-prices", max: 0xffffffff, min: 0, currency: config.currency });
      }
    } else if (id.options !== undefined) throw new MdbReplyError(new Uint8Array(0), "option bits sent to a VMC below level 3");
    await this.send({ kind: "reader-enable" });
    return { config, id };
  }
}
