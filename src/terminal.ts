import type { RoutingTable } from "../modules/frontend-client/client";
import type { StatusReason } from "../modules/frontend-client/status";
import { IdleSettle } from "./idle-settle";
import type { PurchasePhase } from "./phases";
import { Purchase } from "./purchase";
import { readRecord, writeRecord, type RoutesRecord } from "./records";
import { Recovery } from "./recovery";
import type { RefundRequest, RefundResult } from "./refund";
import { StatusReports } from "./reports";
import { RemoteSettings, resolveConfig, type ResolvedConfig } from "./settings";
import { Telemetry } from "./telemetry";
import { TerminalCore, type TerminalOptions } from "./terminal-core";
import { busyError, eventSink, TerminalError, type CardReading, type PayRequest, type TerminalEvent, type TerminalState } from "./terminal-events";

export type { DeclineReason } from "./declines";
export type { RefundEvent, RefundRequest, RefundResult } from "./refund";
export { PURCHASE_PHASES, type PurchasePhase } from "./phases";
export type { ResolvedConfig, TerminalConfig } from "./settings";
export type { TerminalOptions } from "./terminal-core";
export { TerminalError, type CardReading, type PayRequest, type PurchaseTimings, type TerminalEvent, type TerminalState } from "./terminal-events";

/**
 * The terminal as its hosts and controllers see it: start, pay, readCard, refund, cancel, status, close. The work
 * is done by its parts, over the state they share (src/terminal-core.ts): the purchase phase by phase
 * (src/purchase.ts), torn purchases (src/recovery.ts), the remote configuration (src/settings.ts), status reports
 * (src/reports.ts) and the events (src/terminal-events.ts).
 */
/**
 * How often an idle terminal checks level 1 for a new configuration: half the keep-warm period, at most 15 s, so a
 * saved change is in force within 30 s (the goal the console's "pending" counts on) even at a long keep-warm.
 */
export function configCheckMs(keepWarmMs: number): number {
  return Math.max(500, Math.min(keepWarmMs, 30_000) / 2);
}

export class Terminal {
  readonly #o: TerminalOptions;
  readonly #c: TerminalCore;
  readonly #telemetry: Telemetry;
  readonly #settings: RemoteSettings;
  readonly #reports: StatusReports;
  /** A configuration fetch in flight; one wanted as soon as the terminal is idle (a status answer named a new version). */
  #configFetching = false;
  #configWanted = false;
  readonly #recovery: Recovery;
  readonly #purchase: Purchase;
  readonly #idle: IdleSettle;
  /** The repeating timer of each periodic job (routes, keep-warm, status), started again when an interval changes. */
  readonly #periodic: unknown[] = [];
  #routesSeq: number | undefined;

  constructor(options: TerminalOptions) {
    this.#o = options;
    const base = resolveConfig(options.config);
    const telemetry = new Telemetry({ terminalId: base.terminalId, firmware: base.firmware, journal: options.journal,
      now: () => options.clock.now(), heap: options.heap });
    this.#telemetry = telemetry;
    const report = (reason: StatusReason) => this.#reports.report(reason);
    const emit = eventSink((e) => telemetry.observe(e), report, options.onEvent);
    this.#settings = new RemoteSettings({
      journal: options.journal, base, emit, report, retire: (seq) => this.#c.retire(seq),
      idle: () => this.#c.state === "idle", starting: () => this.#c.state === "starting", closed: () => this.#c.isClosed(),
      onIntervals: () => this.#startPeriodic(),
    });
    const c = new TerminalCore(options, this.#settings, emit);
    this.#c = c;
    this.#reports = new StatusReports({
      telemetry, client: options.client, clock: options.clock, level1Url: () => c.config.level1Url,
      idle: () => c.state === "idle", closed: () => c.isClosed(),
      counts: () => ({ pendingCompletions: c.forwarder.pending, unresolved: c.unresolved.size }),
      config: () => ({ version: this.#settings.version, refused: this.#settings.refused }),
      configVersion: (version) => { if (this.#settings.isNew(version)) this.#fetchConfig(true); },
    });
    this.#recovery = new Recovery(c, report);
    this.#purchase = new Purchase(c, this.#recovery);
    this.#idle = new IdleSettle(c, this.#recovery);
  }

  get state(): TerminalState {
    return this.#c.state;
  }

  /** The phase of the purchase in progress, if one is. */
  get phase(): PurchasePhase | undefined {
    return this.#c.tap?.phase;
  }

  get pendingCompletions(): number {
    return this.#c.forwarder.pending + this.#c.refunds.pendingCompletions;
  }

  /** Refunds whose CREDIT FOR LOAD was sent and whose outcome waits for the card. */
  get refundsInDoubt(): number {
    return this.#c.refunds.pending;
  }

  get unresolved(): number {
    return this.#c.unresolved.size;
  }

  get routes(): RoutingTable | undefined {
    return this.#c.routes.table;
  }

  /** Timers the terminal holds now: its periodic jobs, reports waiting to go out, sleeps and waits in progress. */
  get timersHeld(): number {
    return this.#c.timers.held + this.#c.forwarder.timersHeld + this.#c.refunds.timersHeld;
  }

  /** The configuration version in force (0: the local settings only). */
  get configVersion(): number {
    return this.#settings.version;
  }

  /** The settings in force now. */
  get settings(): Readonly<ResolvedConfig> {
    return this.#c.config;
  }

  /** Rebuilds what the journal holds (routes, unfinished purchases, undelivered completions), then gets ready. */
  async start(): Promise<void> {
    const c = this.#c;
    let skipped = 0;
    for (const raw of this.#o.journal.recovered) {
      const record = readRecord(raw);
      if (!record) {
        skipped++;
        continue;
      }
      if (record.k === "routes") {
        if (this.#routesSeq !== undefined) c.retire(this.#routesSeq);
        this.#routesSeq = raw.seq;
        c.routes.table = record.table;
      } else if (record.k === "config") {
        this.#settings.recover(raw, record);
      } else if (record.k === "refund-intent" || record.k === "refund-credit" || record.k === "refund-outcome") {
        c.refunds.recover(raw, record);
      } else if (record.k === "intent") {
        // An intent without an outcome: DEBIT may have been sent. Only the card can say what happened.
        this.#recovery.keep(raw.seq, record, false);
      } else {
        this.#recovery.settled(record.purchaseId);
        void c.forwarder.enqueue(raw.seq, record);
      }
    }
    c.refunds.finishRecovery();
    if (skipped) c.emit({ event: "error", code: "JOURNAL_UNREADABLE", message: `${skipped} journal records could not be read` });
    for (const u of c.unresolved.values()) this.#recovery.scheduleReport(u);
    // The journaled configuration holds from the first purchase on, with or without a network.
    this.#settings.applyPending();
    try {
      await this.refreshRoutes();
    } catch (error) {
      // A terminal with a stored table keeps serving with it; the refresh timer tries again.
      if (!c.routes.table) c.emit({ event: "error", code: "NO_ROUTES", message: `routing table unavailable: ${(error as Error).message}` });
    }
    if (c.isClosed()) return;
    await this.#warmAll();
    if (c.isClosed()) return;
    this.#startPeriodic();
    c.state = "idle";
    c.emit({ event: "ready", terminalId: c.config.terminalId, routes: c.routes.table?.routes.length ?? 0,
      unresolved: c.unresolved.size, pendingCompletions: c.forwarder.pending });
    if (c.config.message) c.emit({ event: "message", text: c.config.message });
    this.#settings.applyPending();
    this.#reports.report("start");
    this.#idle.start();
  }

  /** The periodic jobs, each one repeating timer; started again when a new configuration changes an interval. */
  #startPeriodic(): void {
    const timers = this.#c.timers;
    for (const t of this.#periodic) timers.clear(t);
    this.#periodic.length = 0;
    const config = this.#c.config;
    this.#periodic.push(
      timers.repeat(() => this.refreshRoutes().catch(() => undefined), config.routesRefreshMs),
      timers.repeat(() => void this.#warmAll(), config.keepWarmMs),
      timers.repeat(() => this.#reports.report("interval"), config.statusEveryMs),
      timers.repeat(() => this.#fetchConfig(false), configCheckMs(config.keepWarmMs)),
    );
  }

  /**
   * Fetches the terminal's configuration from level 1 at an idle moment, never during a purchase: when a status
   * answer names a version this terminal does not run (`deferred`: if busy now, right after the purchase), and on
   * its own every configCheckMs, so an idle terminal runs a saved change within 30 s at the default periods. The
   * request goes on the level-1 connection that purchases use, so it keeps that connection warm as well.
   */
  #fetchConfig(deferred: boolean): void {
    const c = this.#c;
    if (c.state === "starting" || c.isClosed()) return;
    if (c.state !== "idle" || this.#configFetching) {
      if (deferred) this.#configWanted = true;
      return;
    }
    this.#configWanted = false;
    this.#configFetching = true;
    this.#o.client.config(c.config.level1Url, c.config.terminalId).then(
      (answer) => this.#settings.receive(answer.version, answer.settings),
      // Offline: the keep-warm and the status reports count that; the next check tries again.
      () => undefined,
    ).then(() => {
      this.#configFetching = false;
      if (this.#configWanted) this.#fetchConfig(true);
    });
  }

  /** Fetches the routing table and, at the same moment, the terminal's configuration (which may fail on its own). */
  async refreshRoutes(): Promise<void> {
    const c = this.#c;
    const client = this.#o.client;
    const [routes, config] = await Promise.allSettled([client.routes(c.config.level1Url), client.config(c.config.level1Url, c.config.terminalId)]);
    if (config.status === "fulfilled") this.#settings.receive(config.value.version, config.value.settings);
    else this.#telemetry.frontendError();
    this.#reports.checkClock();
    if (routes.status === "rejected") {
      this.#telemetry.frontendError();
      throw routes.reason;
    }
    const table = routes.value;
    if (JSON.stringify(table) === JSON.stringify(c.routes.table)) return;
    const record: RoutesRecord = { k: "routes", table };
    const seq = writeRecord(this.#o.journal, record);
    if (this.#routesSeq !== undefined) c.retire(this.#routesSeq);
    this.#routesSeq = seq;
    c.routes.table = table;
    // The routes this terminal expects may have moved: open them now, not on the next tap.
    if (c.state !== "starting" && c.state !== "closed") void this.#warmAll();
  }

  /** Level 1, the routes of the terminal's own (and configured) cities, and every route a tap has opened since. */
  async #warmAll(): Promise<void> {
    const c = this.#c;
    const urls = new Set([c.config.level1Url]);
    for (const route of c.routes.table?.routes ?? []) {
      if (c.config.warmCityCodes.includes(route.cityCode) || this.#o.client.connection(route.url).handshakes > 0) urls.add(route.url);
    }
    await Promise.all([...urls].map((url) => this.#o.client.warm(url).catch(() => undefined)));
  }

  status(): TerminalEvent {
    const c = this.#c;
    return {
      event: "status", state: c.state, phase: c.tap?.phase, order: c.order, unresolved: c.unresolved.size,
      pendingCompletions: c.forwarder.pending, journal: this.#o.journal.stats(), routesVersion: c.routes.table?.version,
    };
  }

  /** Takes one payment; events report its progress, and the promise settles when the terminal is free again. */
  pay(request: PayRequest): Promise<void> {
    const c = this.#c;
    if (c.state !== "idle") throw busyError(c.state, "take a payment");
    const { amount, order } = request;
    if (!Number.isInteger(amount) || amount <= 0) throw new TerminalError("BAD_AMOUNT", "amount must be whole fen, 1 or more");
    if (typeof order !== "string" || !/^[\x21-\x7e]{1,32}$/.test(order)) throw new TerminalError("BAD_ORDER", "order must be 1..32 printable characters");
    const timeout = request.timeoutMs ?? 30_000;
    if (!Number.isInteger(timeout) || timeout < 100 || timeout > 600_000) throw new TerminalError("BAD_TIMEOUT", "timeoutMs must be 100..600000");
    if (request.asn !== undefined && !/^[0-9A-Fa-f]{1,20}$/.test(request.asn)) throw new TerminalError("BAD_ASN", "asn must be 1..20 hex digits");
    // Every check that refuses the request is above: a refused pay never started, so it changes nothing and its order
    // gets nothing else (docs/reference/controller-port.md). From here on the order ends in exactly one final event.
    if (amount > c.config.maxAmount) {
      // A well-formed request over this terminal's limit (which an operator may change): declined, nothing at stake.
      c.emit({ event: "declined", order, reason: "amount-over-limit", amount, detail: `the limit is ${c.config.maxAmount} fen` });
      return Promise.resolve();
    }
    c.state = "waiting-for-card";
    c.order = order;
    c.cancelled = false;
    this.#takeReader();
    return this.#purchase.run(order, amount, c.timers.now() + timeout, request.asn).finally(() => {
      if (c.state !== "closed") c.state = "idle";
      c.order = undefined;
      c.tap = undefined;
      // Between purchases: a configuration that arrived meanwhile, then any report that waited for the end.
      this.#settings.applyPending();
      this.#reports.sendDue();
      this.#idle.start();
      if (this.#configWanted) this.#fetchConfig(true);
    });
  }

  /** The reader is wanted (a payment, a card read, a refund): the idle look for cards gives it up first. */
  #takeReader(): void {
    const c = this.#c;
    if (!this.#idle.running) return;
    const before = c.releasing;
    c.releasing = this.#idle.stop().then(() => before);
  }

  /**
   * Reads the card in the field without charging it (an MDB session's BEGIN SESSION carries its balance); see
   * Purchase.readCard. Undefined when no card came before the timeout or cancel() stopped the wait.
   */
  async readCard(request: { timeoutMs: number }): Promise<CardReading | undefined> {
    const state = this.#c.state;
    if (state !== "idle") throw new TerminalError(state === "closed" ? "CLOSED" : "BUSY", `cannot read a card while ${state}`);
    this.#takeReader();
    try {
      return await this.#purchase.readCard(request.timeoutMs);
    } finally {
      this.#idle.start();
    }
  }

  /**
   * Loads a refund of one of this terminal's purchases back onto the card (after a failed vend): the card is
   * expected in the field. Resolves with "refunded", "owed" (recorded at the front-end) or "in-doubt" (CREDIT was
   * torn; settled when the card comes back).
   */
  async refund(request: RefundRequest & { cityCode: string }): Promise<RefundResult> {
    const c = this.#c;
    // VEND FAILURE may come while the purchase it follows is still letting go of the card: wait for it, bounded.
    for (let waited = 0; c.state === "processing" && waited < 5000; waited += 20) await c.timers.sleep(20);
    if (c.state !== "idle") throw busyError(c.state, "refund");
    if (!Number.isInteger(request.amount) || request.amount <= 0 || request.amount > c.config.maxAmount) {
      throw new TerminalError("BAD_AMOUNT", `amount must be whole fen in 1..${c.config.maxAmount}`);
    }
    c.state = "processing";
    c.order = request.order;
    this.#takeReader();
    try {
      await c.releasing;
      return await c.refunds.run(request, c.routes.lookup(request.cityCode, request.application));
    } finally {
      if (!c.isClosed()) c.state = "idle";
      c.order = undefined;
      this.#idle.start();
    }
  }

  /** Stops waiting for a card. A purchase already past INIT finishes: a debit cannot be half-cancelled. */
  cancel(): boolean {
    const c = this.#c;
    if (c.state !== "waiting-for-card" && c.state !== "recovering") return false;
    c.cancelled = true;
    this.#o.reader.abort();
    return true;
  }

  /**
   * Stops for good: every timer is cleared, every sleep ends, the reader's exchange is aborted and the forwarder lets
   * go of its waiters. A purchase in flight ends as it would on a pulled card: past DEBIT, its intent stays in the
   * journal for the next start to settle.
   */
  close(): void {
    const c = this.#c;
    if (c.state === "closed") return;
    c.state = "closed";
    c.cancelled = true;
    c.timers.close();
    this.#periodic.length = 0;
    c.forwarder.close();
    c.refunds.close();
    this.#o.reader.abort();
  }
}
