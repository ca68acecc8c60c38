import { fromHex, toHex } from "../modules/bytes/bytes";
import { chinaDateTime } from "../modules/china-time/china-time";
import {
  FrontendDeclineError, FrontendProtocolError, FrontendUnavailableError, type Authorization, type Route,
} from "../modules/frontend-client/client";
import { ApduError } from "../modules/iso7816/errors";
import { JournalFullError } from "../modules/journal/journal";
import { TRANSACTION_TYPE_PURCHASE } from "../modules/purse/commands";
import type { BasicData } from "../modules/purse/files";
import type { InitializeForPurchaseResponse } from "../modules/purse/responses";
import type { PurseCard } from "../modules/purse/session";
import { frontendRefusal } from "./declines";
import { debitInDoubt, type PurchasePhase } from "./phases";
import { writeRecord, type IntentRecord } from "./records";
import type { Recovery } from "./recovery";
import { Decline, type TerminalCore, type Unresolved } from "./terminal-core";
import type { CardReading } from "./terminal-events";

/**
 * The purchase, as the design describes it: detect a card without blocking, SELECT by the AID policy, READ 0x15,
 * check locally, route by city code, INIT, one authorize round trip, DEBIT, compare MAC2, approve, release. The
 * intent goes to the journal before DEBIT and the outcome after it, so a cut or a pulled card never loses a charge;
 * completions go to the front-end from the journal until acknowledged.
 */

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

export class Purchase {
  readonly #c: TerminalCore;
  readonly #recovery: Recovery;

  constructor(core: TerminalCore, recovery: Recovery) {
    this.#c = core;
    this.#recovery = recovery;
  }

  /**
   * Reads the card in the field without charging it (an MDB session's BEGIN SESSION carries its balance): detect,
   * SELECT, READ 0x15, GET BALANCE, after settling any torn purchase of that card. Undefined when no card came before
   * the timeout or cancel() stopped the wait; a card that went away mid-read is undefined too (nothing is at stake).
   */
  async readCard(timeoutMs: number): Promise<CardReading | undefined> {
    const c = this.#c;
    c.state = "waiting-for-card";
    c.cancelled = false;
    try {
      await c.releasing;
      if (!(await c.waitForCard(c.timers.now() + timeoutMs))) return undefined;
      c.state = "processing";
      const purse = c.purse({ apdus: 0, apduBytes: 0 });
      let basic: BasicData | undefined;
      try {
        basic = await c.readForRecovery(purse);
        await this.#recovery.resolvePending(purse, basic);
        this.#checkCard(basic);
        const balance = await purse.getBalance();
        return { kind: "card", asn: basic.asn, cityCode: basic.cityCode, application: basic.layout, balance };
      } catch (error) {
        if (error instanceof Decline) return { kind: "refused", reason: error.reason, asn: basic?.asn, detail: error.detail || undefined };
        if (error instanceof ApduError && (error.sw === 0x6a82 || error.sw === 0x6a81)) return { kind: "refused", reason: "no-application" };
        return undefined;
      } finally {
        c.releasing = c.o.reader.release();
      }
    } finally {
      if (!c.isClosed()) c.state = "idle";
    }
  }

  async run(order: string, amount: number, deadline: number, asn?: string): Promise<void> {
    const c = this.#c;
    if (!c.hasRoomForPurchase() && !c.unresolved.size) {
      // Without room to record a debit the terminal must not make one: it stops taking payments instead.
      c.emit({ event: "declined", order, reason: "journal-full", amount });
      return;
    }
    await c.releasing;
    c.emit({ event: "waiting-for-card", order, amount });
    if (!(await c.waitForCard(deadline))) {
      c.emit({ event: "declined", order, reason: c.cancelled ? "cancelled" : "timeout", amount });
      return;
    }
    c.state = "processing";
    const tap: Tap = {
      order, amount, asn, phase: "detected", startedAt: c.timers.now(), handshakesBefore: c.o.client.handshakes,
      apdus: 0, apduBytes: 0, roundTrips: 0,
    };
    c.tap = tap;
    c.o.trace?.("  phase: detected");
    let unknown: Unresolved | undefined;
    try {
      await this.#runTap(tap);
    } catch (error) {
      unknown = this.#failed(tap, error);
    } finally {
      c.enter(tap, "released");
      c.releasing = c.o.reader.release();
    }
    if (unknown && !c.isClosed()) await this.#recovery.awaitReturn(unknown, deadline);
  }

  async #runTap(tap: Tap): Promise<void> {
    const c = this.#c;
    const purse = c.purse(tap);
    const basic = await this.#selectAndRead(purse, tap);
    // Settling a torn purchase always has room (it is reserved below), and may be what frees the journal.
    await this.#recovery.resolvePending(purse, basic);
    // A refund torn during CREDIT FOR LOAD is settled by this card's next tap here.
    if (c.refunds.hasPendingFor(basic.asn)) await c.refunds.settle(purse, basic);
    if (!c.hasRoomForPurchase()) throw new Decline("journal-full");
    c.emit({ event: "card-read", order: tap.order, asn: basic.asn, cityCode: basic.cityCode, application: basic.layout });
    if (tap.asn !== undefined && basic.asn.toUpperCase() !== tap.asn.toUpperCase()) throw new Decline("card-refused", "not the card that began the session");
    this.#checkCard(basic);
    const route = c.routes.lookup(basic.cityCode, basic.layout);
    if (!route) throw new Decline("no-route", `no front-end for city ${basic.cityCode} (${basic.layout})`);
    tap.route = route;
    // A cold route opens its TLS connection while the card works, not after.
    const cold = !c.o.client.connection(route.url).connected;
    const warming = cold ? c.o.client.warm(route.url) : undefined;
    warming?.catch(() => undefined);
    if (cold) c.o.trace?.(`  front-end (level ${route.level}): cold route, opening TLS while the card works`);
    await this.#initialize(purse, tap, route);
    this.#stopIfClosed();
    await this.#authorize(tap, route, basic, warming);
    this.#stopIfClosed();
    this.#journalIntent(tap);
    if (c.isClosed()) {
      // Closed with the intent down but DEBIT not sent: say so in the journal, for the next start to deliver.
      this.#recovery.finishIntent(tap.intentSeq!, tap.intent!, { outcome: "not-debited" }, tap);
      throw new Decline("cancelled", "terminal closed before DEBIT");
    }
    await this.#debit(purse, tap);
  }

  /** A terminal closed mid-purchase goes no further than the phase it is in, and never on to DEBIT. */
  #stopIfClosed(): void {
    if (this.#c.isClosed()) throw new Decline("cancelled", "terminal closed");
  }

  /**
   * What a failure means depends only on the phase it came in. Before DEBIT: a decline, nothing was charged. With
   * DEBIT sent and no outcome journaled: an unknown outcome, kept until the card or the front-end settles it.
   */
  #failed(tap: Tap, error: unknown): Unresolved | undefined {
    const c = this.#c;
    if (debitInDoubt(tap.phase) && tap.intent && tap.intentSeq !== undefined) {
      const pending = this.#recovery.keep(tap.intentSeq, tap.intent, true);
      c.emit({ event: "unknown-outcome", order: tap.order, purchaseId: tap.intent.purchaseId, asn: tap.intent.asn,
        detail: (error as Error)?.message });
      return pending;
    }
    if (error instanceof Decline) {
      c.emit({ event: "declined", order: tap.order, reason: error.reason, amount: tap.amount, detail: error.detail || undefined, ...error.extra });
    } else {
      // The card went away or answered garbage before anything was at stake: nothing was charged.
      c.emit({ event: "declined", order: tap.order, reason: "card-error", amount: tap.amount, detail: (error as Error)?.message });
    }
    return undefined;
  }

  async #selectAndRead(purse: PurseCard, tap: Tap): Promise<BasicData> {
    try {
      const { application } = await purse.selectApplication(this.#c.applications());
      this.#c.enter(tap, "selected");
      const basic = await purse.readBasicData(application.layout);
      tap.basic = basic;
      this.#c.enter(tap, "basic-data-read");
      return basic;
    } catch (error) {
      if (error instanceof ApduError && (error.sw === 0x6a82 || error.sw === 0x6a81)) throw new Decline("no-application");
      throw error;
    }
  }

  #checkCard(basic: BasicData): void {
    const today = chinaDateTime(this.#c.o.clock.now()).date;
    if (!basic.enabled) throw new Decline("card-not-enabled");
    if (basic.expiryDate < today) throw new Decline("card-expired");
    if (basic.startDate > today) throw new Decline("card-not-yet-valid");
  }

  async #initialize(purse: PurseCard, tap: Tap, route: Route): Promise<void> {
    let init: InitializeForPurchaseResponse;
    try {
      init = await purse.initializeForPurchase({ keyIndex: route.keyIndex, amount: tap.amount, terminalId: fromHex(this.#c.config.terminalId) });
    } catch (error) {
      if (error instanceof ApduError && (error.sw === 0x9401 || error.sw === 0x9301)) throw new Decline("insufficient-balance");
      if (error instanceof ApduError) throw new Decline("card-refused", error.message);
      throw error;
    }
    tap.init = init;
    this.#c.enter(tap, "initialized");
    if (init.balance + init.overdraftLimit < tap.amount) throw new Decline("insufficient-balance", "", { balance: init.balance });
  }

  async #authorize(tap: Tap, route: Route, basic: BasicData, warming: Promise<void> | undefined): Promise<void> {
    const c = this.#c;
    const init = tap.init!;
    const started = c.timers.now();
    try {
      if (warming) await warming;
      tap.roundTrips++;
      c.o.trace?.(`  front-end (level ${route.level}): POST /v1/purchases`);
      tap.auth = await c.o.client.authorize(route.url, {
        terminalId: c.config.terminalId, order: tap.order, amount: tap.amount, keyIndex: route.keyIndex, transactionType: TRANSACTION_TYPE_PURCHASE,
        application: basic.layout, basicData: toHex(basic.raw), initResponse: toHex(init.raw),
      });
    } catch (error) {
      if (error instanceof FrontendDeclineError) throw new Decline(frontendRefusal(error.reason), error.message);
      if (error instanceof FrontendUnavailableError || error instanceof FrontendProtocolError) throw new Decline("frontend-unavailable", error.message);
      throw error;
    }
    tap.authorizeMs = c.timers.now() - started;
    c.enter(tap, "authorized");
    const auth = tap.auth;
    c.o.trace?.(`  front-end: TSN ${auth.tsn}, ${auth.date} ${auth.time}, MAC1 ${auth.mac1} (${tap.authorizeMs.toFixed(1)} ms)`);
  }

  #journalIntent(tap: Tap): void {
    const c = this.#c;
    const { auth, basic, init, route } = tap as Required<Tap>;
    const intent: IntentRecord = {
      k: "intent", purchaseId: auth.purchaseId, url: route.url, order: tap.order, amount: tap.amount, asn: basic.asn, application: basic.layout,
      epSerial: init.epSerial, balance: init.balance, tsn: auth.tsn, mac2: auth.mac2.toUpperCase(), at: c.o.clock.now(),
    };
    try {
      tap.intentSeq = writeRecord(c.o.journal, intent);
    } catch (error) {
      // Nothing has touched the card yet: tell the front-end so it does not wait for this purchase.
      c.deliver({ k: "outcome", purchaseId: auth.purchaseId, url: route.url, order: tap.order, completion: { outcome: "not-debited" } });
      if (error instanceof JournalFullError) throw new Decline("journal-full");
      throw new Decline("card-error", `journal: ${(error as Error).message}`);
    }
    tap.intent = intent;
    c.enter(tap, "intent-journaled");
  }

  async #debit(purse: PurseCard, tap: Tap): Promise<void> {
    const c = this.#c;
    const { auth, intent, intentSeq, init, route, basic } = tap as Required<Tap>;
    c.enter(tap, "debit-sent");
    let debit;
    try {
      debit = await purse.debitForPurchase({ tsn: auth.tsn, date: auth.date, time: auth.time, mac1: fromHex(auth.mac1) });
    } catch (error) {
      if (error instanceof ApduError) {
        // A status word says the card refused, but it may answer a second copy of a DEBIT whose first copy it ran:
        // only its counter, read now, says whether the purse moved. Unchanged, it is a decline; otherwise unknown.
        const now = await c.currentSerial(purse, route);
        if (now === intent.epSerial) {
          this.#recovery.finishIntent(intentSeq, intent, { outcome: "not-debited" }, tap);
          throw new Decline("card-refused", error.message);
        }
      }
      throw error;
    }
    const mac2 = toHex(debit.mac2);
    const tac = toHex(debit.tac);
    const acknowledged = this.#recovery.finishIntent(intentSeq, intent, { outcome: "debited", mac2, tac }, tap);
    let acked: boolean | undefined;
    if (c.config.strict) acked = await c.timers.within(acknowledged, c.config.strictTimeoutMs, false);
    // The card says it paid, but not with the MAC2 the key system expects: the one refusal after DEBIT. The
    // completion (with the card's MAC2) still goes to the front-end, which flags the purchase for reconciliation.
    if (mac2 !== intent.mac2) throw new Decline("mac2-mismatch", `card MAC2 ${mac2}, front-end expected ${intent.mac2}`);
    c.emit({
      event: "approved", order: tap.order, amount: tap.amount, purchaseId: auth.purchaseId, tsn: auth.tsn, tac, asn: basic.asn, cityCode: basic.cityCode,
      application: basic.layout, level: route.level, balanceBefore: init.balance, balanceAfter: init.balance - tap.amount,
      ...(c.config.strict ? { acknowledged: acked } : {}),
      timings: {
        tapMs: c.timers.now() - tap.startedAt, authorizeMs: tap.authorizeMs ?? 0, apdus: tap.apdus, apduBytes: tap.apduBytes,
        roundTrips: tap.roundTrips + (c.config.strict ? 1 : 0), handshakes: c.o.client.handshakes - tap.handshakesBefore,
      },
    });
  }
}
