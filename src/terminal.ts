import type { Clock, Timers } from "../modules/device/types";
import {
  FrontendDeclineError, FrontendProtocolError, FrontendUnavailableError, type Application, type Authorization,
  type Completion, type FrontendClient, type RoutingTable,
} from "../modules/frontend-client/client";
import { ApduError } from "../modules/iso7816/errors";
import { fromHex, toHex } from "../modules/bytes/bytes";
import { JournalFullError, type Journal } from "../modules/journal/journal";
import { TRANSACTION_TYPE_PURCHASE } from "../modules/purse/commands";
import type { BasicData } from "../modules/purse/files";
import { CITY_UNION_APPLICATION, PurseCard, TUNION_APPLICATION, type PurseApplication } from "../modules/purse/session";
import { describeCommand, describeResponse, tracingTransceiver } from "../modules/purse/trace";
import { CompletionForwarder } from "./forwarder";
import type { CardReader } from "./reader";
import { PURCHASE_RECORD_BYTES, readRecord, writeRecord, type IntentRecord, type OutcomeRecord, type RoutesRecord } from "./records";
import { Routes } from "./routing";
import { CodedError } from "../modules/errors/errors";
import { chinaDateTime } from "../modules/china-time/china-time";

/**
 * The purchase, as the design describes it: detect a card without blocking, SELECT by the AID policy, READ 0x15,
 * check locally, route by city code, INIT, one authorize round trip, DEBIT, compare MAC2, approve, release. The
 * intent goes to the journal before DEBIT and the outcome after it, so a cut or a pulled card never loses a charge;
 * completions go to the front-end from the journal until acknowledged.
 */

export interface TerminalConfig {
  /** 12 hex digits: the 6-byte terminal ID sent in INIT, equal to the client certificate's CN. */
  terminalId: string;
  /** The level-1 front-end: it serves the routing table. */
  level1Url: string;
  /** Which application to use on a card that carries both. */
  applicationOrder?: Application[];
  /** Wait for the front-end's completion acknowledgement before approving (the seed's literal flow). */
  strict?: boolean;
  /** In strict mode, how long to wait for that acknowledgement before approving anyway (it is still delivered). */
  strictTimeoutMs?: number;
  /** After an unknown outcome, how long to keep looking for the same card within the same payment. */
  recoveryWindowMs?: number;
  /** An unknown outcome still unresolved after this long is reported to the front-end for reconciliation. */
  reportUnresolvedAfterMs?: number;
  /** How often the routing table is fetched again. */
  routesRefreshMs?: number;
  /** How often idle front-end connections are checked and re-opened, so taps never wait for a handshake. */
  keepWarmMs?: number;
  detectIntervalMs?: number;
  /** The largest amount a controller may ask for, fen. */
  maxAmount?: number;
}

export interface PayRequest {
  amount: number;
  order: string;
  timeoutMs?: number;
}

export type DeclineReason =
  | "timeout" | "cancelled" | "insufficient-balance" | "card-expired" | "card-not-yet-valid" | "card-not-enabled"
  | "no-application" | "no-route" | "frontend-unavailable" | "card-refused" | "card-error" | "mac2-mismatch"
  | "journal-full" | string;

export interface PurchaseTimings {
  /** From the card answering detection to the approval, ms. */
  tapMs: number;
  authorizeMs: number;
  apdus: number;
  /** Bytes of every command and response APDU of the tap (the PN532 frames around them come on top). */
  apduBytes: number;
  roundTrips: number;
  handshakes: number;
}

export type TerminalEvent =
  | { event: "ready"; terminalId: string; routes: number; unresolved: number; pendingCompletions: number }
  | { event: "waiting-for-card"; order: string; amount: number }
  | { event: "card-read"; order: string; asn: string; cityCode: string; application: Application }
  | { event: "approved"; order: string; amount: number; purchaseId: string; tsn: number; tac: string; asn: string; cityCode: string;
      application: Application; level: number; balanceBefore: number; balanceAfter: number; acknowledged?: boolean; timings: PurchaseTimings }
  | { event: "declined"; order: string; reason: DeclineReason; amount?: number; asn?: string; cityCode?: string; balance?: number; detail?: string }
  | { event: "unknown-outcome"; order: string; purchaseId: string; asn: string }
  | { event: "resolved"; order: string; purchaseId: string; result: "approved" | "declined" | "unresolvable"; tac?: string }
  | { event: "error"; code: string; message: string; order?: string }
  | { event: "status"; state: TerminalState; order?: string; unresolved: number; pendingCompletions: number;
      journal: ReturnType<Journal["stats"]>; routesVersion?: number | string };

export type TerminalState = "starting" | "idle" | "waiting-for-card" | "processing" | "recovering" | "closed";

export class TerminalError extends CodedError {
  constructor(code: string, message: string) {
    super(code, message);
  }
}

export interface TerminalOptions {
  reader: CardReader;
  client: FrontendClient;
  journal: Journal;
  timers: Timers;
  clock: Clock;
  config: TerminalConfig;
  onEvent: (event: TerminalEvent) => void;
  /** A readable line per APDU and front-end call (the simulation's trace). */
  trace?: (line: string) => void;
}

const APPLICATIONS: { readonly [name: string]: PurseApplication } = Object.freeze({ tunion: TUNION_APPLICATION, cityunion: CITY_UNION_APPLICATION });

class Decline extends CodedError {
  constructor(readonly reason: DeclineReason, readonly detail = "", readonly extra: { balance?: number } = {}) {
    super("DECLINED", reason);
  }
}

interface Unresolved {
  seq: number;
  intent: IntentRecord;
  reported: boolean;
}

export class Terminal {
  readonly #o: TerminalOptions;
  readonly #config: Required<Omit<TerminalConfig, "applicationOrder">> & { applicationOrder: Application[] };
  readonly #routes = new Routes();
  readonly #forwarder: CompletionForwarder;
  readonly #unresolved = new Map<string, Unresolved>();
  #routesSeq: number | undefined;
  #state: TerminalState = "starting";
  #order: string | undefined;
  #cancelled = false;
  #timers: unknown[] = [];
  #apdus = 0;
  #apduBytes = 0;
  #roundTrips = 0;
  /** The card is let go after the final event, so the controller can ask for the next payment at once. */
  #releasing: Promise<void> = Promise.resolve();

  constructor(options: TerminalOptions) {
    this.#o = options;
    const c = options.config;
    if (!/^[0-9A-Fa-f]{12}$/.test(c.terminalId)) throw new TerminalError("BAD_CONFIG", "terminalId must be 12 hex digits");
    this.#config = {
      terminalId: c.terminalId.toUpperCase(),
      level1Url: c.level1Url,
      applicationOrder: c.applicationOrder ?? ["tunion", "cityunion"],
      strict: c.strict ?? false,
      strictTimeoutMs: c.strictTimeoutMs ?? 5000,
      recoveryWindowMs: c.recoveryWindowMs ?? 20_000,
      reportUnresolvedAfterMs: c.reportUnresolvedAfterMs ?? 10 * 60_000,
      routesRefreshMs: c.routesRefreshMs ?? 60 * 60_000,
      keepWarmMs: c.keepWarmMs ?? 30_000,
      detectIntervalMs: c.detectIntervalMs ?? 50,
      maxAmount: c.maxAmount ?? 100_000,
    };
    this.#forwarder = new CompletionForwarder({
      client: options.client,
      timers: options.timers,
      onDone: (seq, record, _answer, error) => {
        if (seq > 0) this.#o.journal.retire(seq);
        if (error) this.#emit({ event: "error", code: "COMPLETION_REFUSED", message: `${record.purchaseId}: ${error.message}`, order: record.order });
      },
    });
  }

  get state(): TerminalState {
    return this.#state;
  }

  get pendingCompletions(): number {
    return this.#forwarder.pending;
  }

  get unresolved(): number {
    return this.#unresolved.size;
  }

  get routes(): RoutingTable | undefined {
    return this.#routes.table;
  }

  /** Rebuilds what the journal holds (routes, unfinished purchases, undelivered completions), then gets ready. */
  async start(): Promise<void> {
    let skipped = 0;
    for (const raw of this.#o.journal.recovered) {
      const record = readRecord(raw);
      if (!record) {
        skipped++;
        continue;
      }
      if (record.k === "routes") {
        if (this.#routesSeq !== undefined) this.#o.journal.retire(this.#routesSeq);
        this.#routesSeq = raw.seq;
        this.#routes.table = record.table;
      } else if (record.k === "intent") {
        // An intent without an outcome: DEBIT may have been sent. Only the card can say what happened.
        this.#unresolved.set(record.purchaseId, { seq: raw.seq, intent: record, reported: false });
      } else {
        const open = this.#unresolved.get(record.purchaseId);
        if (open) {
          this.#o.journal.retire(open.seq);
          this.#unresolved.delete(record.purchaseId);
        }
        void this.#forwarder.enqueue(raw.seq, record);
      }
    }
    if (skipped) this.#emit({ event: "error", code: "JOURNAL_UNREADABLE", message: `${skipped} journal records could not be read` });
    for (const u of this.#unresolved.values()) this.#scheduleReport(u);
    try {
      await this.refreshRoutes();
    } catch (error) {
      // A terminal with a stored table keeps serving with it; the refresh timer tries again.
      if (!this.#routes.table) this.#emit({ event: "error", code: "NO_ROUTES", message: `routing table unavailable: ${(error as Error).message}` });
    }
    await this.#warmAll();
    this.#every(this.#config.routesRefreshMs, () => this.refreshRoutes().catch(() => undefined));
    this.#every(this.#config.keepWarmMs, () => void this.#warmAll());
    this.#state = "idle";
    this.#emit({ event: "ready", terminalId: this.#config.terminalId, routes: this.#routes.table?.routes.length ?? 0,
      unresolved: this.#unresolved.size, pendingCompletions: this.#forwarder.pending });
  }

  async refreshRoutes(): Promise<void> {
    const table = await this.#o.client.routes(this.#config.level1Url);
    if (JSON.stringify(table) === JSON.stringify(this.#routes.table)) return;
    const record: RoutesRecord = { k: "routes", table };
    const seq = writeRecord(this.#o.journal, record);
    if (this.#routesSeq !== undefined) this.#o.journal.retire(this.#routesSeq);
    this.#routesSeq = seq;
    this.#routes.table = table;
  }

  status(): TerminalEvent {
    return {
      event: "status", state: this.#state, order: this.#order, unresolved: this.#unresolved.size,
      pendingCompletions: this.#forwarder.pending, journal: this.#o.journal.stats(), routesVersion: this.#routes.table?.version,
    };
  }

  /** Takes one payment; events report its progress, and the promise settles when the terminal is free again. */
  pay(request: PayRequest): Promise<void> {
    if (this.#state !== "idle") {
      throw new TerminalError(this.#state === "starting" ? "NOT_READY" : this.#state === "closed" ? "CLOSED" : "BUSY",
        `cannot take a payment while ${this.#state}`);
    }
    const { amount, order } = request;
    if (!Number.isInteger(amount) || amount <= 0 || amount > this.#config.maxAmount) {
      throw new TerminalError("BAD_AMOUNT", `amount must be whole fen in 1..${this.#config.maxAmount}`);
    }
    if (typeof order !== "string" || !/^[\x21-\x7e]{1,32}$/.test(order)) throw new TerminalError("BAD_ORDER", "order must be 1..32 printable characters");
    const timeout = request.timeoutMs ?? 30_000;
    if (!Number.isInteger(timeout) || timeout < 100 || timeout > 600_000) throw new TerminalError("BAD_TIMEOUT", "timeoutMs must be 100..600000");
    this.#state = "waiting-for-card";
    this.#order = order;
    this.#cancelled = false;
    return this.#purchase(order, amount, this.#o.timers.now() + timeout).finally(() => {
      if (this.#state !== "closed") this.#state = "idle";
      this.#order = undefined;
    });
  }

  /** Stops waiting for a card. A purchase already past INIT finishes: a debit cannot be half-cancelled. */
  cancel(): boolean {
    if (this.#state !== "waiting-for-card" && this.#state !== "recovering") return false;
    this.#cancelled = true;
    this.#o.reader.abort();
    return true;
  }

  close(): void {
    this.#state = "closed";
    for (const t of this.#timers) this.#o.timers.clear(t);
    this.#timers = [];
    this.#forwarder.close();
    this.#o.reader.abort();
  }

  // ---- the purchase ----

  async #purchase(order: string, amount: number, deadline: number): Promise<void> {
    if (!this.#hasRoomForPurchase() && !this.#unresolved.size) {
      // Without room to record a debit the terminal must not make one: it stops taking payments instead.
      this.#emit({ event: "declined", order, reason: "journal-full", amount });
      return;
    }
    await this.#releasing;
    this.#emit({ event: "waiting-for-card", order, amount });
    for (;;) {
      const card = await this.#waitForCard(deadline);
      if (!card) {
        this.#emit({ event: "declined", order, reason: this.#cancelled ? "cancelled" : "timeout", amount });
        return;
      }
      this.#state = "processing";
      const tapStart = this.#o.timers.now();
      const handshakesBefore = this.#o.client.handshakes;
      this.#apdus = 0;
      this.#apduBytes = 0;
      this.#roundTrips = 0;
      let unknown: Unresolved | undefined;
      try {
        const purse = this.#purse();
        const basic = await this.#readCard(purse);
        // Settling a torn purchase always has room (it is reserved below), and may be what frees the journal.
        await this.#resolvePending(purse, basic);
        if (!this.#hasRoomForPurchase()) throw new Decline("journal-full");
        this.#emit({ event: "card-read", order, asn: basic.asn, cityCode: basic.cityCode, application: basic.layout });
        const result = await this.#pay(purse, basic, order, amount, tapStart, handshakesBefore);
        if (result) unknown = result;
      } catch (error) {
        if (error instanceof Decline) {
          this.#emit({ event: "declined", order, reason: error.reason, amount, detail: error.detail || undefined, ...error.extra });
        } else {
          // The card went away or answered garbage before anything was at stake: nothing was charged.
          this.#emit({ event: "declined", order, reason: "card-error", amount, detail: (error as Error).message });
        }
      } finally {
        this.#releasing = this.#o.reader.release();
      }
      if (unknown) await this.#awaitReturn(unknown, deadline);
      return;
    }
  }

  /** Room for this purchase's intent and outcome, with an outcome's worth kept back for every torn purchase. */
  #hasRoomForPurchase(): boolean {
    const records = 2 + this.#unresolved.size;
    const sizes: number[] = [];
    for (let i = 0; i < records; i++) sizes.push(PURCHASE_RECORD_BYTES);
    return this.#o.journal.hasRoomFor(...sizes);
  }

  async #waitForCard(deadline: number): Promise<boolean> {
    for (;;) {
      if (this.#cancelled) return false;
      const left = deadline - this.#o.timers.now();
      if (left <= 0) return false;
      try {
        await this.#o.reader.detect({ timeout: left, interval: this.#config.detectIntervalMs });
        return !this.#cancelled;
      } catch (error) {
        const code = (error as { code?: string }).code;
        if (code === "PN532_NO_CARD" || code === "PN532_ABORTED" || this.#cancelled) return false;
        // A reader fault while polling: report it and keep polling until the deadline, at a gentler pace.
        this.#emit({ event: "error", code: code ?? "READER", message: (error as Error).message, order: this.#order });
        await new Promise<void>((resolve) => this.#o.timers.set(resolve, 200));
      }
    }
  }

  #purse(): PurseCard {
    const trace = this.#o.trace;
    const reader = this.#o.reader;
    const counting = {
      transceive: async (apdu: Uint8Array) => {
        this.#apdus++;
        this.#apduBytes += apdu.length;
        const response = await reader.transceive(apdu);
        this.#apduBytes += response.length;
        return response;
      },
    };
    if (!trace) return new PurseCard(counting);
    return new PurseCard(tracingTransceiver(counting, (line) => {
      trace(`  -> ${describeCommand(line.command)}`);
      trace(line.response ? `  <- ${describeResponse(line.command, line.response)} (${line.ms.toFixed(1)} ms)` : `  <- no answer: ${(line.error as Error)?.message}`);
    }, () => this.#o.timers.now()));
  }

  async #readCard(purse: PurseCard): Promise<BasicData> {
    const order = this.#config.applicationOrder.map((name) => APPLICATIONS[name]!);
    try {
      const { application } = await purse.selectApplication(order);
      return await purse.readBasicData(application.layout);
    } catch (error) {
      if (error instanceof ApduError && (error.sw === 0x6a82 || error.sw === 0x6a81)) throw new Decline("no-application");
      throw error;
    }
  }

  async #pay(purse: PurseCard, basic: BasicData, order: string, amount: number, tapStart: number, handshakesBefore: number): Promise<Unresolved | undefined> {
    const today = chinaDateTime(this.#o.clock.now()).date;
    if (!basic.enabled) throw new Decline("card-not-enabled");
    if (basic.expiryDate < today) throw new Decline("card-expired");
    if (basic.startDate > today) throw new Decline("card-not-yet-valid");
    const route = this.#routes.lookup(basic.cityCode, basic.layout);
    if (!route) throw new Decline("no-route", `no front-end for city ${basic.cityCode} (${basic.layout})`);
    // A new level-2 route opens its TLS connection while the card works, not after.
    const connection = this.#o.client.connection(route.url);
    const warming = connection.connected ? undefined : this.#o.client.warm(route.url);
    warming?.catch(() => undefined);
    let init;
    try {
      init = await purse.initializeForPurchase({ keyIndex: route.keyIndex, amount, terminalId: fromHex(this.#config.terminalId) });
    } catch (error) {
      if (error instanceof ApduError && (error.sw === 0x9401 || error.sw === 0x9301)) throw new Decline("insufficient-balance");
      if (error instanceof ApduError) throw new Decline("card-refused", error.message);
      throw error;
    }
    if (init.balance + init.overdraftLimit < amount) throw new Decline("insufficient-balance", "", { balance: init.balance });
    let auth: Authorization;
    const authStart = this.#o.timers.now();
    try {
      if (warming) await warming;
      this.#roundTrips++;
      this.#o.trace?.(`  front-end (level ${route.level}): POST /v1/purchases`);
      auth = await this.#o.client.authorize(route.url, {
        terminalId: this.#config.terminalId, order, amount, keyIndex: route.keyIndex, transactionType: TRANSACTION_TYPE_PURCHASE,
        application: basic.layout, basicData: toHex(basic.raw), initResponse: toHex(init.raw),
      });
    } catch (error) {
      if (error instanceof FrontendDeclineError) throw new Decline(error.reason.toLowerCase().replace(/_/g, "-"), error.message);
      if (error instanceof FrontendUnavailableError || error instanceof FrontendProtocolError) throw new Decline("frontend-unavailable", error.message);
      throw error;
    }
    const authorizeMs = this.#o.timers.now() - authStart;
    this.#o.trace?.(`  front-end: TSN ${auth.tsn}, ${auth.date} ${auth.time}, MAC1 ${auth.mac1} (${authorizeMs.toFixed(1)} ms)`);
    const intent: IntentRecord = {
      k: "intent", purchaseId: auth.purchaseId, url: route.url, order, amount, asn: basic.asn, application: basic.layout,
      epSerial: init.epSerial, balance: init.balance, tsn: auth.tsn, mac2: auth.mac2.toUpperCase(), at: this.#o.clock.now(),
    };
    let intentSeq: number;
    try {
      intentSeq = writeRecord(this.#o.journal, intent);
    } catch (error) {
      // Nothing has touched the card yet: tell the front-end so it does not wait for this purchase.
      this.#deliver({ k: "outcome", purchaseId: auth.purchaseId, url: route.url, order, completion: { outcome: "not-debited" } });
      if (error instanceof JournalFullError) throw new Decline("journal-full");
      throw error;
    }
    let debit;
    try {
      debit = await purse.debitForPurchase({ tsn: auth.tsn, date: auth.date, time: auth.time, mac1: fromHex(auth.mac1) });
    } catch (error) {
      if (error instanceof ApduError) {
        // The card answered with a status word: it refused, and its purse did not move.
        this.#finishIntent(intentSeq, intent, { outcome: "not-debited" });
        throw new Decline("card-refused", error.message);
      }
      const pending: Unresolved = { seq: intentSeq, intent, reported: false };
      this.#unresolved.set(intent.purchaseId, pending);
      this.#scheduleReport(pending);
      this.#emit({ event: "unknown-outcome", order, purchaseId: intent.purchaseId, asn: basic.asn });
      return pending;
    }
    const mac2 = toHex(debit.mac2);
    const tac = toHex(debit.tac);
    const acknowledged = this.#finishIntent(intentSeq, intent, { outcome: "debited", mac2, tac });
    let acked: boolean | undefined;
    if (this.#config.strict) acked = await this.#within(acknowledged, this.#config.strictTimeoutMs);
    if (mac2 !== intent.mac2) throw new Decline("mac2-mismatch", `card MAC2 ${mac2}, front-end expected ${intent.mac2}`);
    this.#emit({
      event: "approved", order, amount, purchaseId: auth.purchaseId, tsn: auth.tsn, tac, asn: basic.asn, cityCode: basic.cityCode,
      application: basic.layout, level: route.level, balanceBefore: init.balance, balanceAfter: init.balance - amount,
      ...(this.#config.strict ? { acknowledged: acked } : {}),
      timings: {
        tapMs: this.#o.timers.now() - tapStart, authorizeMs, apdus: this.#apdus, apduBytes: this.#apduBytes, roundTrips: this.#roundTrips + (this.#config.strict ? 1 : 0),
        handshakes: this.#o.client.handshakes - handshakesBefore,
      },
    });
    return undefined;
  }

  /** Writes the outcome, retires the intent, and hands the completion to the forwarder. */
  #finishIntent(intentSeq: number, intent: IntentRecord, completion: Completion): Promise<boolean> {
    const record: OutcomeRecord = { k: "outcome", purchaseId: intent.purchaseId, url: intent.url, order: intent.order, completion };
    const seq = writeRecord(this.#o.journal, record);
    this.#o.journal.retire(intentSeq);
    this.#unresolved.delete(intent.purchaseId);
    return this.#forwarder.enqueue(seq, record).then((answer) => answer !== undefined);
  }

  /** A completion that has no journal record behind it (nothing to retire when it is acknowledged). */
  #deliver(record: OutcomeRecord): void {
    void this.#forwarder.enqueue(-1, record);
  }

  // ---- tears ----

  /** Keeps looking for the torn card until the payment's recovery window closes. */
  async #awaitReturn(pending: Unresolved, deadline: number): Promise<void> {
    this.#state = "recovering";
    const until = Math.max(deadline, this.#o.timers.now() + this.#config.recoveryWindowMs);
    while (this.#unresolved.has(pending.intent.purchaseId)) {
      await this.#releasing;
      if (!(await this.#waitForCard(until))) return;
      try {
        const purse = this.#purse();
        const basic = await this.#readCard(purse);
        await this.#resolvePending(purse, basic);
      } catch {
        // Pulled again, or another card: keep looking.
      } finally {
        // Let go of the card as a purchase does, in the background: once `resolved` is out, the controller may send
        // the next `pay` at once, and the next purchase waits for the release before it uses the reader.
        this.#releasing = this.#o.reader.release();
      }
    }
  }

  /** Settles every unknown outcome of this card: its counter says whether the torn DEBIT happened. */
  async #resolvePending(purse: PurseCard, basic: BasicData): Promise<void> {
    for (const pending of [...this.#unresolved.values()]) {
      const intent = pending.intent;
      if (intent.asn !== basic.asn || intent.application !== basic.layout) continue;
      const route = this.#routes.lookup(basic.cityCode, basic.layout);
      const init = await purse.initializeForPurchase({ keyIndex: route?.keyIndex ?? 1, amount: 0, terminalId: fromHex(this.#config.terminalId) });
      let completion: Completion;
      let result: "approved" | "declined" | "unresolvable";
      if (init.epSerial === intent.epSerial) {
        completion = { outcome: "not-debited" };
        result = "declined";
      } else {
        const proof = init.epSerial === intent.epSerial + 1 ? await purse.getTransactionProve(TRANSACTION_TYPE_PURCHASE, init.epSerial) : undefined;
        if (proof && toHex(proof.mac2) === intent.mac2) {
          completion = { outcome: "debited", mac2: toHex(proof.mac2), tac: toHex(proof.tac) };
          result = "approved";
        } else {
          // The card moved on further (used elsewhere since): only reconciliation can settle this one.
          completion = { outcome: "unknown" };
          result = "unresolvable";
        }
      }
      this.#o.trace?.(`  recovery of ${intent.purchaseId}: serial ${intent.epSerial} -> ${init.epSerial}: ${result}`);
      void this.#finishIntent(pending.seq, intent, completion);
      this.#emit({ event: "resolved", order: intent.order, purchaseId: intent.purchaseId, result,
        ...(completion.outcome === "debited" ? { tac: completion.tac } : {}) });
    }
  }

  #scheduleReport(pending: Unresolved): void {
    const wait = Math.max(0, pending.intent.at + this.#config.reportUnresolvedAfterMs - this.#o.clock.now());
    const timer = this.#o.timers.set(() => {
      if (!this.#unresolved.has(pending.intent.purchaseId) || pending.reported) return;
      pending.reported = true;
      this.#deliver({ k: "outcome", purchaseId: pending.intent.purchaseId, url: pending.intent.url, order: pending.intent.order, completion: { outcome: "unknown" } });
    }, wait);
    this.#timers.push(timer);
  }

  // ---- housekeeping ----

  async #warmAll(): Promise<void> {
    const urls = new Set([this.#config.level1Url]);
    // Level-2 front-ends are opened on demand; once opened they are kept warm.
    for (const url of this.#routes.urls()) if (this.#o.client.connection(url).handshakes > 0) urls.add(url);
    await Promise.all([...urls].map((url) => this.#o.client.warm(url).catch(() => undefined)));
  }

  #every(ms: number, fn: () => void): void {
    const tick = () => {
      if (this.#state === "closed") return;
      fn();
      this.#timers.push(this.#o.timers.set(tick, ms));
    };
    this.#timers.push(this.#o.timers.set(tick, ms));
  }

  #within(promise: Promise<boolean>, ms: number): Promise<boolean> {
    return new Promise((resolve) => {
      const timer = this.#o.timers.set(() => resolve(false), ms);
      promise.then((ok) => {
        this.#o.timers.clear(timer);
        resolve(ok);
      });
    });
  }

  #emit(event: TerminalEvent): void {
    try {
      this.#o.onEvent(event);
    } catch {
      // A controller that throws must not break a purchase in progress.
    }
  }
}
