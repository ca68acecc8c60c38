import { fromHex, toHex } from "../modules/bytes/bytes";
import { chinaDateTime } from "../modules/china-time/china-time";
import type { Clock, Timers } from "../modules/device/types";
import { CodedError } from "../modules/errors/errors";
import {
  FrontendDeclineError, FrontendProtocolError, FrontendUnavailableError, type Application, type Authorization,
  type Completion, type FrontendClient, type Route, type RoutingTable,
} from "../modules/frontend-client/client";
import { ApduError } from "../modules/iso7816/errors";
import { JournalFullError, type Journal } from "../modules/journal/journal";
import { TRANSACTION_TYPE_PURCHASE } from "../modules/purse/commands";
import type { BasicData } from "../modules/purse/files";
import type { InitializeForPurchaseResponse } from "../modules/purse/responses";
import { CITY_UNION_APPLICATION, PurseCard, TUNION_APPLICATION, type PurseApplication } from "../modules/purse/session";
import { describeCommand, describeResponse, tracingTransceiver } from "../modules/purse/trace";
import { frontendRefusal, type DeclineReason } from "./declines";
import { CompletionForwarder } from "./forwarder";
import { debitInDoubt, type PurchasePhase } from "./phases";
import type { CardReader } from "./reader";
import { PURCHASE_RECORD_BYTES, readRecord, writeRecord, type ConfigRecord, type IntentRecord, type OutcomeRecord, type RoutesRecord } from "./records";
import { Routes } from "./routing";
import { Telemetry, type HeapInfo } from "./telemetry";
import { checkSettings, settingErrors, type SettingError, type TerminalSettings } from "../modules/terminal-config/config";
import type { StatusReason } from "../modules/frontend-client/status";
import { Refunds, type RefundEvent, type RefundRequest, type RefundResult } from "./refund";

export type { DeclineReason } from "./declines";
export type { RefundEvent, RefundRequest, RefundResult } from "./refund";
export { PURCHASE_PHASES, type PurchasePhase } from "./phases";

/**
 * The purchase, as the design describes it: detect a card without blocking, SELECT by the AID policy, READ 0x15,
 * check locally, route by city code, INIT, one authorize round trip, DEBIT, compare MAC2, approve, release. The
 * intent goes to the journal before DEBIT and the outcome after it, so a cut or a pulled card never loses a charge;
 * completions go to the front-end from the journal until acknowledged.
 */

/**
 * How a terminal is set up. The settings an operator may change remotely (limits, timings, the message) are
 * TerminalSettings, declared once with their validator; the rest is fixed at build or start.
 */
export interface TerminalConfig extends TerminalSettings {
  /** 12 hex digits: the 6-byte terminal ID sent in INIT, equal to the client certificate's CN. */
  terminalId: string;
  /** The level-1 front-end: it serves the routing table. */
  level1Url: string;
  /**
   * The terminal's own city code (4 digits): its level-2 routes are kept warm from the start, with level 1, so the
   * first local card of the day does not wait for a TLS handshake.
   */
  cityCode?: string;
  /** More city codes whose routes are kept warm from the start (a terminal near a city boundary, say). */
  warmCityCodes?: string[];
  detectIntervalMs?: number;
  /** The firmware version the status reports name (package.json's, or the manifest's). */
  firmware?: string;
  /** How long a refund waits for the card to be (back) in the field, ms (src/refund.ts). */
  refundCardWaitMs?: number;
}

export interface PayRequest {
  amount: number;
  order: string;
  timeoutMs?: number;
  /** Only this card may pay (an MDB session begun by its tap): another card is refused before INIT. */
  asn?: string;
}

/** What readCard() found: a card's balance without charging it, or why the card cannot pay. */
export type CardReading =
  | { kind: "card"; asn: string; cityCode: string; application: Application; balance: number }
  | { kind: "refused"; reason: DeclineReason; asn?: string; detail?: string };

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
  | { event: "unknown-outcome"; order: string; purchaseId: string; asn: string; detail?: string }
  | { event: "resolved"; order: string; purchaseId: string; result: "approved" | "declined" | "unresolvable"; tac?: string }
  | { event: "error"; code: string; message: string; order?: string }
  | { event: "message"; text: string }
  | { event: "config"; version: number; applied: boolean; refused?: string[] }
  | RefundEvent
  | { event: "status"; state: TerminalState; phase?: PurchasePhase; order?: string; unresolved: number; pendingCompletions: number;
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
  /** The XS heap and slots for the status report, where the host can tell (Moddable's Instrumentation). */
  heap?: () => HeapInfo | undefined;
}

type ResolvedConfig = Required<Omit<TerminalConfig, "applicationOrder" | "cityCode" | "warmCityCodes" | "refundCardWaitMs">> &
  { applicationOrder: Application[]; warmCityCodes: string[] };

const APPLICATIONS: { readonly [name: string]: PurseApplication } = Object.freeze({ tunion: TUNION_APPLICATION, cityunion: CITY_UNION_APPLICATION });

/** A payment refused before anything was at stake: the controller hears `declined`. */
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

/** One tap of one payment, as it moves through the phases. */
interface Tap {
  order: string;
  amount: number;
  asn?: string;
  phase: PurchasePhase;
  startedAt: number;
  handshakesBefore: number;
  apdus: number;
  apduBytes: number;
  roundTrips: number;
  basic?: BasicData;
  route?: Route;
  init?: InitializeForPurchaseResponse;
  auth?: Authorization;
  authorizeMs?: number;
  intent?: IntentRecord;
  intentSeq?: number;
}

export class Terminal {
  readonly #o: TerminalOptions;
  /** The settings in force: the local ones (#base) with the accepted remote ones over them. */
  #config: ResolvedConfig;
  readonly #base: ResolvedConfig;
  readonly #telemetry: Telemetry;
  /** The remote configuration in force (0: none), one accepted but waiting for the end of a purchase, and refusals. */
  #configVersion = 0;
  #configSeq: number | undefined;
  #pendingConfig: { version: number; settings: TerminalSettings } | undefined;
  #refused: { version: number; errors: SettingError[] } | undefined;
  /** A report in flight, and the reason of the next one to send (a trigger while busy or during a purchase). */
  #reporting = false;
  #reportDue: StatusReason | undefined;
  readonly #routes = new Routes();
  readonly #forwarder: CompletionForwarder;
  readonly #refunds: Refunds;
  readonly #unresolved = new Map<string, Unresolved>();
  /** One handle per periodic job, one per report of an unresolved purchase, one per sleep: all cleared by close(). */
  readonly #periodic: unknown[] = [];
  readonly #reports = new Map<string, unknown>();
  readonly #sleeps = new Map<unknown, () => void>();
  #routesSeq: number | undefined;
  #state: TerminalState = "starting";
  #tap: Tap | undefined;
  #order: string | undefined;
  #cancelled = false;
  /** The card is let go after the final event, so the controller can ask for the next payment at once. */
  #releasing: Promise<void> = Promise.resolve();

  constructor(options: TerminalOptions) {
    this.#o = options;
    const c = options.config;
    if (!/^[0-9A-Fa-f]{12}$/.test(c.terminalId)) throw new TerminalError("BAD_CONFIG", "terminalId must be 12 hex digits");
    const warm = [...(c.cityCode ? [c.cityCode] : []), ...(c.warmCityCodes ?? [])];
    if (warm.some((city) => !/^[0-9]{4}$/.test(city))) throw new TerminalError("BAD_CONFIG", "cityCode and warmCityCodes take 4-digit city codes");
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
      statusEveryMs: c.statusEveryMs ?? 5 * 60_000,
      message: c.message ?? "",
      firmware: c.firmware ?? "unknown",
      warmCityCodes: warm,
    };
    this.#base = this.#config;
    this.#telemetry = new Telemetry({ terminalId: this.#config.terminalId, firmware: this.#config.firmware, journal: options.journal,
      now: () => options.clock.now(), heap: options.heap });
    this.#forwarder = new CompletionForwarder({
      client: options.client,
      timers: options.timers,
      onDone: (seq, record, _answer, error) => {
        if (seq > 0) this.#retire(seq);
        if (error) this.#emit({ event: "error", code: "COMPLETION_REFUSED", message: `${record.purchaseId}: ${error.message}`, order: record.order });
      },
    });
    this.#refunds = new Refunds({
      reader: options.reader, client: options.client, journal: options.journal, timers: options.timers, clock: options.clock,
      terminalId: this.#config.terminalId, purse: () => this.#purse({ apdus: 0, apduBytes: 0 }), read: (purse) => this.#readForRecovery(purse),
      onEvent: (e) => this.#emit(e), onError: (code, message) => this.#emit({ event: "error", code, message }), trace: options.trace,
      cardWaitMs: c.refundCardWaitMs, detectIntervalMs: this.#config.detectIntervalMs,
    });
  }

  get state(): TerminalState {
    return this.#state;
  }

  /** The phase of the purchase in progress, if one is. */
  get phase(): PurchasePhase | undefined {
    return this.#tap?.phase;
  }

  get pendingCompletions(): number {
    return this.#forwarder.pending + this.#refunds.pendingCompletions;
  }

  /** Refunds whose CREDIT FOR LOAD was sent and whose outcome waits for the card. */
  get refundsInDoubt(): number {
    return this.#refunds.pending;
  }

  get unresolved(): number {
    return this.#unresolved.size;
  }

  get routes(): RoutingTable | undefined {
    return this.#routes.table;
  }

  /** Timers the terminal holds now: its periodic jobs, reports waiting to go out, and sleeps in progress. */
  get timersHeld(): number {
    return this.#periodic.length + this.#reports.size + this.#sleeps.size + this.#forwarder.timersHeld + this.#refunds.timersHeld;
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
        if (this.#routesSeq !== undefined) this.#retire(this.#routesSeq);
        this.#routesSeq = raw.seq;
        this.#routes.table = record.table;
      } else if (record.k === "config") {
        if (this.#configSeq !== undefined) this.#retire(this.#configSeq);
        this.#configSeq = raw.seq;
        // Checked again: a record written by another firmware version may hold what this one refuses.
        if (settingErrors(record.settings).length === 0) this.#pendingConfig = { version: record.version, settings: checkSettings(record.settings) };
      } else if (record.k === "refund-intent" || record.k === "refund-credit" || record.k === "refund-outcome") {
        this.#refunds.recover(raw, record);
      } else if (record.k === "intent") {
        // An intent without an outcome: DEBIT may have been sent. Only the card can say what happened.
        this.#unresolved.set(record.purchaseId, { seq: raw.seq, intent: record, reported: false });
      } else {
        const open = this.#unresolved.get(record.purchaseId);
        if (open) {
          this.#retire(open.seq);
          this.#unresolved.delete(record.purchaseId);
        }
        void this.#forwarder.enqueue(raw.seq, record);
      }
    }
    this.#refunds.finishRecovery();
    if (skipped) this.#emit({ event: "error", code: "JOURNAL_UNREADABLE", message: `${skipped} journal records could not be read` });
    for (const u of this.#unresolved.values()) this.#scheduleReport(u);
    // The journaled configuration holds from the first purchase on, with or without a network.
    this.#applyPending();
    try {
      await this.refreshRoutes();
    } catch (error) {
      // A terminal with a stored table keeps serving with it; the refresh timer tries again.
      if (!this.#routes.table) this.#emit({ event: "error", code: "NO_ROUTES", message: `routing table unavailable: ${(error as Error).message}` });
    }
    if (this.#isClosed()) return;
    await this.#warmAll();
    if (this.#isClosed()) return;
    this.#startPeriodic();
    this.#state = "idle";
    this.#emit({ event: "ready", terminalId: this.#config.terminalId, routes: this.#routes.table?.routes.length ?? 0,
      unresolved: this.#unresolved.size, pendingCompletions: this.#forwarder.pending });
    if (this.#config.message) this.#emit({ event: "message", text: this.#config.message });
    this.#applyPending();
    this.#report("start");
  }

  /** The periodic jobs, each one repeating timer; started again when a new configuration changes an interval. */
  #startPeriodic(): void {
    for (const t of this.#periodic) this.#o.timers.clear(t);
    this.#periodic.length = 0;
    this.#every(this.#config.routesRefreshMs, () => this.refreshRoutes().catch(() => undefined));
    this.#every(this.#config.keepWarmMs, () => void this.#warmAll());
    this.#every(this.#config.statusEveryMs, () => this.#report("interval"));
  }

  /** The configuration version in force (0: the local settings only). */
  get configVersion(): number {
    return this.#configVersion;
  }

  /** The settings in force now. */
  get settings(): Readonly<ResolvedConfig> {
    return this.#config;
  }

  /** Fetches the routing table and, at the same moment, the terminal's configuration (which may fail on its own). */
  async refreshRoutes(): Promise<void> {
    const client = this.#o.client;
    const [routes, config] = await Promise.allSettled([client.routes(this.#config.level1Url), client.config(this.#config.level1Url, this.#config.terminalId)]);
    if (config.status === "fulfilled") this.#receiveConfig(config.value.version, config.value.settings);
    else this.#telemetry.frontendError();
    this.#checkClock();
    if (routes.status === "rejected") {
      this.#telemetry.frontendError();
      throw routes.reason;
    }
    const table = routes.value;
    if (JSON.stringify(table) === JSON.stringify(this.#routes.table)) return;
    const record: RoutesRecord = { k: "routes", table };
    const seq = writeRecord(this.#o.journal, record);
    if (this.#routesSeq !== undefined) this.#retire(this.#routesSeq);
    this.#routesSeq = seq;
    this.#routes.table = table;
    // The routes this terminal expects may have moved: open them now, not on the next tap.
    if (this.#state !== "starting" && this.#state !== "closed") void this.#warmAll();
  }

  // ---- remote configuration and status reports ----

  /** A configuration from the front-end: refused whole if any field is bad, else journaled and applied between purchases. */
  #receiveConfig(version: number, settings: TerminalSettings): void {
    if (version === (this.#pendingConfig?.version ?? this.#configVersion)) return;
    const errors = settingErrors(settings);
    if (errors.length) {
      if (this.#refused?.version === version) return;
      this.#refused = { version, errors };
      this.#emit({ event: "config", version, applied: false, refused: errors.map((e) => e.message) });
      this.#report("config-refused");
      return;
    }
    const record: ConfigRecord = { k: "config", version, settings: checkSettings(settings) };
    try {
      const seq = writeRecord(this.#o.journal, record);
      if (this.#configSeq !== undefined) this.#retire(this.#configSeq);
      this.#configSeq = seq;
    } catch (error) {
      // Applied all the same; without its record a restart without network runs the previous one until the next fetch.
      this.#emit({ event: "error", code: "JOURNAL_WRITE", message: `configuration ${version} not journaled: ${(error as Error).message}` });
    }
    this.#pendingConfig = { version, settings: record.settings };
    if (this.#state === "idle") this.#applyPending();
  }

  /** Puts a waiting configuration in force; called only when no purchase runs. */
  #applyPending(): void {
    const pending = this.#pendingConfig;
    if (!pending || this.#isClosed()) return;
    this.#pendingConfig = undefined;
    const before = this.#config;
    const next: ResolvedConfig = { ...this.#base };
    const s = pending.settings;
    if (s.maxAmount !== undefined) next.maxAmount = s.maxAmount;
    if (s.applicationOrder !== undefined) next.applicationOrder = s.applicationOrder.slice();
    if (s.strict !== undefined) next.strict = s.strict;
    if (s.strictTimeoutMs !== undefined) next.strictTimeoutMs = s.strictTimeoutMs;
    if (s.recoveryWindowMs !== undefined) next.recoveryWindowMs = s.recoveryWindowMs;
    if (s.reportUnresolvedAfterMs !== undefined) next.reportUnresolvedAfterMs = s.reportUnresolvedAfterMs;
    if (s.routesRefreshMs !== undefined) next.routesRefreshMs = s.routesRefreshMs;
    if (s.keepWarmMs !== undefined) next.keepWarmMs = s.keepWarmMs;
    if (s.statusEveryMs !== undefined) next.statusEveryMs = s.statusEveryMs;
    if (s.message !== undefined) next.message = s.message;
    this.#config = next;
    this.#configVersion = pending.version;
    if (this.#refused && this.#refused.version <= pending.version) this.#refused = undefined;
    if (this.#state !== "starting" && (next.routesRefreshMs !== before.routesRefreshMs || next.keepWarmMs !== before.keepWarmMs ||
        next.statusEveryMs !== before.statusEveryMs)) this.#startPeriodic();
    this.#emit({ event: "config", version: pending.version, applied: true });
    if (next.message !== before.message && this.#state !== "starting") this.#emit({ event: "message", text: next.message });
  }

  /**
   * Sends a status report, or keeps its reason for later: while a purchase runs (a report never takes time from
   * one) or while another report is in flight. A report that fails is counted and not retried; the next one carries on.
   */
  #report(reason: StatusReason): void {
    if (this.#isClosed()) return;
    if (this.#reporting || this.#state !== "idle") {
      this.#reportDue ??= reason;
      return;
    }
    this.#reporting = true;
    this.#reportDue = undefined;
    const report = this.#telemetry.report(reason, {
      pendingCompletions: this.#forwarder.pending, unresolved: this.#unresolved.size,
      // Bounded, so a report stays well inside the front-end's body limit (4 KB by default).
      config: { version: this.#configVersion, refused: (this.#refused?.errors ?? []).slice(0, 8).map((e) => ({ field: e.field.slice(0, 64), code: e.code, message: e.message.slice(0, 120) })) },
    });
    this.#o.client.status(this.#config.level1Url, report).then(() => this.#checkClock(), () => this.#telemetry.frontendError()).then(() => {
      this.#reporting = false;
      const due = this.#reportDue;
      if (due) {
        this.#reportDue = undefined;
        this.#report(due);
      }
    });
  }

  #checkClock(): void {
    const alert = this.#telemetry.checkClock(this.#o.client.serverDate, this.#o.clock.now());
    if (alert) this.#report(alert);
  }

  status(): TerminalEvent {
    return {
      event: "status", state: this.#state, phase: this.#tap?.phase, order: this.#order, unresolved: this.#unresolved.size,
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
    if (!Number.isInteger(amount) || amount <= 0) throw new TerminalError("BAD_AMOUNT", "amount must be whole fen, 1 or more");
    if (typeof order !== "string" || !/^[\x21-\x7e]{1,32}$/.test(order)) throw new TerminalError("BAD_ORDER", "order must be 1..32 printable characters");
    if (amount > this.#config.maxAmount) {
      // A well-formed request over this terminal's limit (which an operator may change): declined, nothing at stake.
      this.#emit({ event: "declined", order, reason: "amount-over-limit", amount, detail: `the limit is ${this.#config.maxAmount} fen` });
      return Promise.resolve();
    }
    const timeout = request.timeoutMs ?? 30_000;
    if (!Number.isInteger(timeout) || timeout < 100 || timeout > 600_000) throw new TerminalError("BAD_TIMEOUT", "timeoutMs must be 100..600000");
    this.#state = "waiting-for-card";
    this.#order = order;
    this.#cancelled = false;
    if (request.asn !== undefined && !/^[0-9A-Fa-f]{1,20}$/.test(request.asn)) throw new TerminalError("BAD_ASN", "asn must be hex digits");
    return this.#purchase(order, amount, this.#o.timers.now() + timeout, request.asn).finally(() => {
      if (this.#state !== "closed") this.#state = "idle";
      this.#order = undefined;
      this.#tap = undefined;
      // Between purchases: a configuration that arrived meanwhile, then any report that waited for the end.
      this.#applyPending();
      const due = this.#reportDue;
      if (due && !this.#reporting) {
        this.#reportDue = undefined;
        this.#report(due);
      }
    });
  }

  /**
   * Loads a refund of one of this terminal's purchases back onto the card (after a failed vend): the card is
   * expected in the field. Resolves with "refunded", "owed" (recorded at the front-end) or "in-doubt" (CREDIT was
   * torn; settled when the card comes back).
   */
  async refund(request: RefundRequest & { cityCode: string }): Promise<RefundResult> {
    // VEND FAILURE may come while the purchase it follows is still letting go of the card: wait for it, bounded.
    for (let waited = 0; this.#state === "processing" && waited < 5000; waited += 20) await this.#sleep(20);
    if (this.#state !== "idle") {
      throw new TerminalError(this.#state === "starting" ? "NOT_READY" : this.#state === "closed" ? "CLOSED" : "BUSY", `cannot refund while ${this.#state}`);
    }
    if (!Number.isInteger(request.amount) || request.amount <= 0 || request.amount > this.#config.maxAmount) {
      throw new TerminalError("BAD_AMOUNT", `amount must be whole fen in 1..${this.#config.maxAmount}`);
    }
    this.#state = "processing";
    this.#order = request.order;
    try {
      await this.#releasing;
      return await this.#refunds.run(request, this.#routes.lookup(request.cityCode, request.application));
    } finally {
      if (!this.#isClosed()) this.#state = "idle";
      this.#order = undefined;
    }
  }

  /** Stops waiting for a card. A purchase already past INIT finishes: a debit cannot be half-cancelled. */
  cancel(): boolean {
    if (this.#state !== "waiting-for-card" && this.#state !== "recovering") return false;
    this.#cancelled = true;
    this.#o.reader.abort();
    return true;
  }

  /**
   * Stops for good: every timer is cleared, every sleep ends, the reader's exchange is aborted and the forwarder lets
   * go of its waiters. A purchase in flight ends as it would on a pulled card: past DEBIT, its intent stays in the
   * journal for the next start to settle.
   */
  close(): void {
    if (this.#state === "closed") return;
    this.#state = "closed";
    this.#cancelled = true;
    for (const t of this.#periodic) this.#o.timers.clear(t);
    this.#periodic.length = 0;
    for (const t of this.#reports.values()) this.#o.timers.clear(t);
    this.#reports.clear();
    for (const [t, wake] of this.#sleeps) {
      this.#o.timers.clear(t);
      wake();
    }
    this.#sleeps.clear();
    this.#forwarder.close();
    this.#refunds.close();
    this.#o.reader.abort();
  }

  // ---- the purchase, phase by phase ----

  /**
   * Reads the card in the field without charging it (an MDB session's BEGIN SESSION carries its balance): detect,
   * SELECT, READ 0x15, GET BALANCE, after settling any torn purchase of that card. Undefined when no card came before
   * the timeout or cancel() stopped the wait; a card that went away mid-read is undefined too (nothing is at stake).
   */
  async readCard(request: { timeoutMs: number }): Promise<CardReading | undefined> {
    if (this.#state !== "idle") throw new TerminalError(this.#state === "closed" ? "CLOSED" : "BUSY", `cannot read a card while ${this.#state}`);
    this.#state = "waiting-for-card";
    this.#cancelled = false;
    try {
      await this.#releasing;
      if (!(await this.#waitForCard(this.#o.timers.now() + request.timeoutMs))) return undefined;
      this.#state = "processing";
      const purse = this.#purse({ apdus: 0, apduBytes: 0 });
      let basic: BasicData | undefined;
      try {
        basic = await this.#readForRecovery(purse);
        await this.#resolvePending(purse, basic);
        this.#checkCard(basic);
        const balance = await purse.getBalance();
        return { kind: "card", asn: basic.asn, cityCode: basic.cityCode, application: basic.layout, balance };
      } catch (error) {
        if (error instanceof Decline) return { kind: "refused", reason: error.reason, asn: basic?.asn, detail: error.detail || undefined };
        if (error instanceof ApduError && (error.sw === 0x6a82 || error.sw === 0x6a81)) return { kind: "refused", reason: "no-application" };
        return undefined;
      } finally {
        this.#releasing = this.#o.reader.release();
      }
    } finally {
      if (!this.#isClosed()) this.#state = "idle";
    }
  }

  async #purchase(order: string, amount: number, deadline: number, asn?: string): Promise<void> {
    if (!this.#hasRoomForPurchase() && !this.#unresolved.size) {
      // Without room to record a debit the terminal must not make one: it stops taking payments instead.
      this.#emit({ event: "declined", order, reason: "journal-full", amount });
      return;
    }
    await this.#releasing;
    this.#emit({ event: "waiting-for-card", order, amount });
    if (!(await this.#waitForCard(deadline))) {
      this.#emit({ event: "declined", order, reason: this.#cancelled ? "cancelled" : "timeout", amount });
      return;
    }
    this.#state = "processing";
    const tap: Tap = {
      order, amount, asn, phase: "detected", startedAt: this.#o.timers.now(), handshakesBefore: this.#o.client.handshakes,
      apdus: 0, apduBytes: 0, roundTrips: 0,
    };
    this.#tap = tap;
    this.#o.trace?.("  phase: detected");
    let unknown: Unresolved | undefined;
    try {
      await this.#runTap(tap);
    } catch (error) {
      unknown = this.#failed(tap, error);
    } finally {
      this.#enter(tap, "released");
      this.#releasing = this.#o.reader.release();
    }
    if (unknown && !this.#isClosed()) await this.#awaitReturn(unknown, deadline);
  }

  async #runTap(tap: Tap): Promise<void> {
    const purse = this.#purse(tap);
    const basic = await this.#selectAndRead(purse, tap);
    // Settling a torn purchase always has room (it is reserved below), and may be what frees the journal.
    await this.#resolvePending(purse, basic);
    // A refund torn during CREDIT FOR LOAD is settled by this card's next tap here.
    if (this.#refunds.hasPendingFor(basic.asn)) await this.#refunds.settle(purse, basic);
    if (!this.#hasRoomForPurchase()) throw new Decline("journal-full");
    this.#emit({ event: "card-read", order: tap.order, asn: basic.asn, cityCode: basic.cityCode, application: basic.layout });
    if (tap.asn !== undefined && basic.asn.toUpperCase() !== tap.asn.toUpperCase()) throw new Decline("card-refused", "not the card that began the session");
    this.#checkCard(basic);
    const route = this.#routes.lookup(basic.cityCode, basic.layout);
    if (!route) throw new Decline("no-route", `no front-end for city ${basic.cityCode} (${basic.layout})`);
    tap.route = route;
    // A cold route opens its TLS connection while the card works, not after.
    const cold = !this.#o.client.connection(route.url).connected;
    const warming = cold ? this.#o.client.warm(route.url) : undefined;
    warming?.catch(() => undefined);
    if (cold) this.#o.trace?.(`  front-end (level ${route.level}): cold route, opening TLS while the card works`);
    await this.#initialize(purse, tap, route);
    this.#stopIfClosed();
    await this.#authorize(tap, route, basic, warming);
    this.#stopIfClosed();
    this.#journalIntent(tap);
    if (this.#isClosed()) {
      // Closed with the intent down but DEBIT not sent: say so in the journal, for the next start to deliver.
      this.#finishIntent(tap.intentSeq!, tap.intent!, { outcome: "not-debited" }, tap);
      throw new Decline("cancelled", "terminal closed before DEBIT");
    }
    await this.#debit(purse, tap);
  }

  /** A terminal closed mid-purchase goes no further than the phase it is in, and never on to DEBIT. */
  #stopIfClosed(): void {
    if (this.#isClosed()) throw new Decline("cancelled", "terminal closed");
  }

  /**
   * What a failure means depends only on the phase it came in. Before DEBIT: a decline, nothing was charged. With
   * DEBIT sent and no outcome journaled: an unknown outcome, kept until the card or the front-end settles it.
   */
  #failed(tap: Tap, error: unknown): Unresolved | undefined {
    if (debitInDoubt(tap.phase) && tap.intent && tap.intentSeq !== undefined) {
      const pending: Unresolved = { seq: tap.intentSeq, intent: tap.intent, reported: false };
      this.#unresolved.set(tap.intent.purchaseId, pending);
      this.#scheduleReport(pending);
      this.#emit({ event: "unknown-outcome", order: tap.order, purchaseId: tap.intent.purchaseId, asn: tap.intent.asn,
        detail: (error as Error)?.message });
      return pending;
    }
    if (error instanceof Decline) {
      this.#emit({ event: "declined", order: tap.order, reason: error.reason, amount: tap.amount, detail: error.detail || undefined, ...error.extra });
    } else {
      // The card went away or answered garbage before anything was at stake: nothing was charged.
      this.#emit({ event: "declined", order: tap.order, reason: "card-error", amount: tap.amount, detail: (error as Error)?.message });
    }
    return undefined;
  }

  #enter(tap: Tap, phase: PurchasePhase): void {
    tap.phase = phase;
    this.#o.trace?.(`  phase: ${phase}`);
  }

  async #selectAndRead(purse: PurseCard, tap: Tap): Promise<BasicData> {
    const order = this.#config.applicationOrder.map((name) => APPLICATIONS[name]!);
    try {
      const { application } = await purse.selectApplication(order);
      this.#enter(tap, "selected");
      const basic = await purse.readBasicData(application.layout);
      tap.basic = basic;
      this.#enter(tap, "basic-data-read");
      return basic;
    } catch (error) {
      if (error instanceof ApduError && (error.sw === 0x6a82 || error.sw === 0x6a81)) throw new Decline("no-application");
      throw error;
    }
  }

  #checkCard(basic: BasicData): void {
    const today = chinaDateTime(this.#o.clock.now()).date;
    if (!basic.enabled) throw new Decline("card-not-enabled");
    if (basic.expiryDate < today) throw new Decline("card-expired");
    if (basic.startDate > today) throw new Decline("card-not-yet-valid");
  }

  async #initialize(purse: PurseCard, tap: Tap, route: Route): Promise<void> {
    let init: InitializeForPurchaseResponse;
    try {
      init = await purse.initializeForPurchase({ keyIndex: route.keyIndex, amount: tap.amount, terminalId: fromHex(this.#config.terminalId) });
    } catch (error) {
      if (error instanceof ApduError && (error.sw === 0x9401 || error.sw === 0x9301)) throw new Decline("insufficient-balance");
      if (error instanceof ApduError) throw new Decline("card-refused", error.message);
      throw error;
    }
    tap.init = init;
    this.#enter(tap, "initialized");
    if (init.balance + init.overdraftLimit < tap.amount) throw new Decline("insufficient-balance", "", { balance: init.balance });
  }

  async #authorize(tap: Tap, route: Route, basic: BasicData, warming: Promise<void> | undefined): Promise<void> {
    const init = tap.init!;
    const started = this.#o.timers.now();
    try {
      if (warming) await warming;
      tap.roundTrips++;
      this.#o.trace?.(`  front-end (level ${route.level}): POST /v1/purchases`);
      tap.auth = await this.#o.client.authorize(route.url, {
        terminalId: this.#config.terminalId, order: tap.order, amount: tap.amount, keyIndex: route.keyIndex, transactionType: TRANSACTION_TYPE_PURCHASE,
        application: basic.layout, basicData: toHex(basic.raw), initResponse: toHex(init.raw),
      });
    } catch (error) {
      if (error instanceof FrontendDeclineError) throw new Decline(frontendRefusal(error.reason), error.message);
      if (error instanceof FrontendUnavailableError || error instanceof FrontendProtocolError) throw new Decline("frontend-unavailable", error.message);
      throw error;
    }
    tap.authorizeMs = this.#o.timers.now() - started;
    this.#enter(tap, "authorized");
    const auth = tap.auth;
    this.#o.trace?.(`  front-end: TSN ${auth.tsn}, ${auth.date} ${auth.time}, MAC1 ${auth.mac1} (${tap.authorizeMs.toFixed(1)} ms)`);
  }

  #journalIntent(tap: Tap): void {
    const { auth, basic, init, route } = tap as Required<Tap>;
    const intent: IntentRecord = {
      k: "intent", purchaseId: auth.purchaseId, url: route.url, order: tap.order, amount: tap.amount, asn: basic.asn, application: basic.layout,
      epSerial: init.epSerial, balance: init.balance, tsn: auth.tsn, mac2: auth.mac2.toUpperCase(), at: this.#o.clock.now(),
    };
    try {
      tap.intentSeq = writeRecord(this.#o.journal, intent);
    } catch (error) {
      // Nothing has touched the card yet: tell the front-end so it does not wait for this purchase.
      this.#deliver({ k: "outcome", purchaseId: auth.purchaseId, url: route.url, order: tap.order, completion: { outcome: "not-debited" } });
      if (error instanceof JournalFullError) throw new Decline("journal-full");
      throw new Decline("card-error", `journal: ${(error as Error).message}`);
    }
    tap.intent = intent;
    this.#enter(tap, "intent-journaled");
  }

  async #debit(purse: PurseCard, tap: Tap): Promise<void> {
    const { auth, intent, intentSeq, init, route, basic } = tap as Required<Tap>;
    this.#enter(tap, "debit-sent");
    let debit;
    try {
      debit = await purse.debitForPurchase({ tsn: auth.tsn, date: auth.date, time: auth.time, mac1: fromHex(auth.mac1) });
    } catch (error) {
      if (error instanceof ApduError) {
        // A status word says the card refused, but it may answer a second copy of a DEBIT whose first copy it ran:
        // only its counter, read now, says whether the purse moved. Unchanged, it is a decline; otherwise unknown.
        const now = await this.#currentSerial(purse, route);
        if (now === intent.epSerial) {
          this.#finishIntent(intentSeq, intent, { outcome: "not-debited" }, tap);
          throw new Decline("card-refused", error.message);
        }
      }
      throw error;
    }
    const mac2 = toHex(debit.mac2);
    const tac = toHex(debit.tac);
    const acknowledged = this.#finishIntent(intentSeq, intent, { outcome: "debited", mac2, tac }, tap);
    let acked: boolean | undefined;
    if (this.#config.strict) acked = await this.#within(acknowledged, this.#config.strictTimeoutMs);
    // The card says it paid, but not with the MAC2 the key system expects: the one refusal after DEBIT. The
    // completion (with the card's MAC2) still goes to the front-end, which flags the purchase for reconciliation.
    if (mac2 !== intent.mac2) throw new Decline("mac2-mismatch", `card MAC2 ${mac2}, front-end expected ${intent.mac2}`);
    this.#emit({
      event: "approved", order: tap.order, amount: tap.amount, purchaseId: auth.purchaseId, tsn: auth.tsn, tac, asn: basic.asn, cityCode: basic.cityCode,
      application: basic.layout, level: route.level, balanceBefore: init.balance, balanceAfter: init.balance - tap.amount,
      ...(this.#config.strict ? { acknowledged: acked } : {}),
      timings: {
        tapMs: this.#o.timers.now() - tap.startedAt, authorizeMs: tap.authorizeMs ?? 0, apdus: tap.apdus, apduBytes: tap.apduBytes,
        roundTrips: tap.roundTrips + (this.#config.strict ? 1 : 0), handshakes: this.#o.client.handshakes - tap.handshakesBefore,
      },
    });
  }

  /** The card's EP serial now, from an INITIALIZE FOR PURCHASE of nothing (it changes nothing on the card). */
  async #currentSerial(purse: PurseCard, route: Route | undefined): Promise<number> {
    const init = await purse.initializeForPurchase({ keyIndex: route?.keyIndex ?? 1, amount: 0, terminalId: fromHex(this.#config.terminalId) });
    return init.epSerial;
  }

  /**
   * Writes the outcome, retires the intent, and hands the completion to the forwarder. Throws only if the outcome
   * record cannot be written, and then changes nothing: the intent stays, unresolved, for the card to settle.
   */
  #finishIntent(intentSeq: number, intent: IntentRecord, completion: Completion, tap?: Tap): Promise<boolean> {
    const record: OutcomeRecord = { k: "outcome", purchaseId: intent.purchaseId, url: intent.url, order: intent.order, completion };
    const seq = writeRecord(this.#o.journal, record);
    if (tap) this.#enter(tap, "outcome-journaled");
    // The outcome supersedes the intent: an intent that cannot be retired now is retired by the next start.
    this.#retire(intentSeq);
    this.#unresolved.delete(intent.purchaseId);
    this.#clearReport(intent.purchaseId);
    return this.#forwarder.enqueue(seq, record).then((answer) => answer !== undefined);
  }

  #retire(seq: number): void {
    try {
      this.#o.journal.retire(seq);
    } catch (error) {
      this.#emit({ event: "error", code: "JOURNAL_RETIRE", message: `record ${seq} stays until the next start: ${(error as Error).message}` });
    }
  }

  /** A completion that has no journal record behind it (nothing to retire when it is acknowledged). */
  #deliver(record: OutcomeRecord): void {
    void this.#forwarder.enqueue(-1, record);
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
        const code = error instanceof CodedError ? error.code : undefined;
        if (code === "PN532_NO_CARD" || code === "PN532_ABORTED" || this.#cancelled) return false;
        // A reader fault while polling: report it and keep polling until the deadline, at a gentler pace.
        this.#emit({ event: "error", code: code ?? "READER", message: (error as Error).message, order: this.#order });
        await this.#sleep(200);
      }
    }
  }

  /** The card's purse over the reader, counting the tap's APDUs and tracing them. */
  #purse(tap: { apdus: number; apduBytes: number }): PurseCard {
    const trace = this.#o.trace;
    const reader = this.#o.reader;
    const counting = {
      transceive: async (apdu: Uint8Array) => {
        tap.apdus++;
        tap.apduBytes += apdu.length;
        const response = await reader.transceive(apdu);
        tap.apduBytes += response.length;
        return response;
      },
    };
    if (!trace) return new PurseCard(counting);
    return new PurseCard(tracingTransceiver(counting, (line) => {
      trace(`  -> ${describeCommand(line.command)}`);
      trace(line.response ? `  <- ${describeResponse(line.command, line.response)} (${line.ms.toFixed(1)} ms)` : `  <- no answer: ${(line.error as Error)?.message}`);
    }, () => this.#o.timers.now()));
  }

  // ---- tears ----

  /** Keeps looking for the torn card until the payment's recovery window closes. */
  async #awaitReturn(pending: Unresolved, deadline: number): Promise<void> {
    this.#state = "recovering";
    const until = Math.max(deadline, this.#o.timers.now() + this.#config.recoveryWindowMs);
    while (this.#unresolved.has(pending.intent.purchaseId) && !this.#isClosed()) {
      await this.#releasing;
      if (!(await this.#waitForCard(until))) return;
      try {
        const purse = this.#purse({ apdus: 0, apduBytes: 0 });
        const basic = await this.#readForRecovery(purse);
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

  async #readForRecovery(purse: PurseCard): Promise<BasicData> {
    const { application } = await purse.selectApplication(this.#config.applicationOrder.map((name) => APPLICATIONS[name]!));
    return purse.readBasicData(application.layout);
  }

  /** Settles every unknown outcome of this card: its counter says whether the torn DEBIT happened. */
  async #resolvePending(purse: PurseCard, basic: BasicData): Promise<void> {
    for (const pending of [...this.#unresolved.values()]) {
      const intent = pending.intent;
      if (intent.asn !== basic.asn || intent.application !== basic.layout) continue;
      const serial = await this.#currentSerial(purse, this.#routes.lookup(basic.cityCode, basic.layout));
      let completion: Completion;
      let result: "approved" | "declined" | "unresolvable";
      if (serial === intent.epSerial) {
        completion = { outcome: "not-debited" };
        result = "declined";
      } else {
        const proof = serial === intent.epSerial + 1 ? await purse.getTransactionProve(TRANSACTION_TYPE_PURCHASE, serial) : undefined;
        if (proof && toHex(proof.mac2) === intent.mac2) {
          completion = { outcome: "debited", mac2: toHex(proof.mac2), tac: toHex(proof.tac) };
          result = "approved";
        } else {
          // The card moved on further (used elsewhere since): only reconciliation can settle this one.
          completion = { outcome: "unknown" };
          result = "unresolvable";
        }
      }
      this.#o.trace?.(`  recovery of ${intent.purchaseId}: serial ${intent.epSerial} -> ${serial}: ${result}`);
      try {
        void this.#finishIntent(pending.seq, intent, completion);
      } catch (error) {
        // Without its outcome in the journal the purchase stays unresolved: the card can be asked again.
        this.#emit({ event: "error", code: "JOURNAL_WRITE", message: `${intent.purchaseId}: outcome not recorded: ${(error as Error).message}`, order: intent.order });
        continue;
      }
      this.#emit({ event: "resolved", order: intent.order, purchaseId: intent.purchaseId, result,
        ...(completion.outcome === "debited" ? { tac: completion.tac } : {}) });
    }
  }

  #scheduleReport(pending: Unresolved): void {
    const id = pending.intent.purchaseId;
    this.#clearReport(id);
    // A closed terminal sets no timer: the intent is in the journal, and the next start schedules its report.
    if (this.#isClosed()) return;
    const wait = Math.max(0, pending.intent.at + this.#config.reportUnresolvedAfterMs - this.#o.clock.now());
    this.#reports.set(id, this.#o.timers.set(() => {
      this.#reports.delete(id);
      if (!this.#unresolved.has(id) || pending.reported) return;
      pending.reported = true;
      this.#deliver({ k: "outcome", purchaseId: id, url: pending.intent.url, order: pending.intent.order, completion: { outcome: "unknown" } });
      this.#report("unresolved-reported");
    }, wait));
  }

  #clearReport(purchaseId: string): void {
    const timer = this.#reports.get(purchaseId);
    if (timer === undefined) return;
    this.#o.timers.clear(timer);
    this.#reports.delete(purchaseId);
  }

  // ---- housekeeping ----

  /** Level 1, the routes of the terminal's own (and configured) cities, and every route a tap has opened since. */
  async #warmAll(): Promise<void> {
    const urls = new Set([this.#config.level1Url]);
    for (const route of this.#routes.table?.routes ?? []) {
      if (this.#config.warmCityCodes.includes(route.cityCode) || this.#o.client.connection(route.url).handshakes > 0) urls.add(route.url);
    }
    await Promise.all([...urls].map((url) => this.#o.client.warm(url).catch(() => undefined)));
  }

  /** A periodic job with one handle for its whole life: the host's repeating timer where it has one. */
  #every(ms: number, fn: () => void): void {
    const timers = this.#o.timers;
    if (timers.repeat) {
      this.#periodic.push(timers.repeat(fn, ms));
      return;
    }
    const slot = this.#periodic.length;
    const tick = () => {
      if (this.#state === "closed") return;
      this.#periodic[slot] = timers.set(tick, ms);
      fn();
    };
    this.#periodic.push(timers.set(tick, ms));
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = this.#o.timers.set(() => {
        this.#sleeps.delete(timer);
        resolve();
      }, ms);
      this.#sleeps.set(timer, resolve);
    });
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

  /** Read through a method so that TypeScript does not narrow the state across awaits. */
  #isClosed(): boolean {
    return this.#state === "closed";
  }

  #emit(event: TerminalEvent): void {
    const alert = this.#telemetry.observe(event);
    if (alert) this.#report(alert);
    try {
      this.#o.onEvent(event);
    } catch {
      // A controller that throws must not break a purchase in progress.
    }
  }
}
