import { fromHex, toHex } from "../modules/bytes/bytes";
import { OwnedTimers } from "../modules/device/timers";
import type { Clock, Timers } from "../modules/device/types";
import { CodedError } from "../modules/errors/errors";
import { FrontendDeclineError, type Application, type FrontendClient, type Route } from "../modules/frontend-client/client";
import {
  authorizeRefund, completeRefund, type RefundCompletion, type RefundCompletionAnswer, type RefundReason,
} from "../modules/frontend-client/refunds";
import { ApduError } from "../modules/iso7816/errors";
import type { Journal, JournalRecord } from "../modules/journal/journal";
import { TRANSACTION_TYPE_LOAD } from "../modules/purse/commands";
import type { BasicData } from "../modules/purse/files";
import type { PurseCard } from "../modules/purse/session";
import { CompletionForwarder } from "./forwarder";
import type { CardReader } from "./reader";
import type { RefundCreditRecord, RefundIntentRecord, RefundOutcomeRecord, RefundRecord } from "./refund-records";
import { PURCHASE_RECORD_BYTES, writeRecord } from "./records";

/**
 * A refund after a failed vend, loaded back onto the card that paid (docs/purse.md §2.9, §2.11; docs/mdb.md §6.5).
 *
 * The journal comes first, as for a purchase: the intent before the card is touched, the load's details before CREDIT
 * FOR LOAD, then the outcome. The boundary that keeps money right is CREDIT: before it is sent nothing can have been
 * credited, so any failure is "owed" (recorded at the front-end for settlement); once sent, only the card's online
 * serial can say, read when the card comes back (here, within the window, or on its next tap at this terminal), and
 * GET TRANSACTION PROVE (type 02) gives the TAC of a load that happened.
 */

export type RefundResult = "refunded" | "owed" | "in-doubt";

export interface RefundRequest {
  purchaseId: string;
  order: string;
  amount: number;
  asn: string;
  application: Application;
}

export interface RefundEvent {
  event: "refund";
  order: string;
  purchaseId: string;
  amount: number;
  result: RefundResult | "settled-refunded" | "settled-owed" | "settled-unknown";
  reason?: RefundReason;
  tac?: string;
  /** "tac": recovered from a proof without the front-end's MAC2; the front-end decides by the TAC alone. */
  proof?: "tac";
}

export interface RefundsOptions {
  reader: CardReader;
  client: FrontendClient;
  journal: Journal;
  timers: Timers;
  clock: Clock;
  terminalId: string;
  /** The purse of the card in the field, counted and traced as the terminal's own. */
  purse(): PurseCard;
  /** SELECT and READ 0x15 of the card in the field. */
  read(purse: PurseCard): Promise<BasicData>;
  onEvent(event: RefundEvent): void;
  onError(code: string, message: string): void;
  trace?: (line: string) => void;
  /** How long the card may take to be (back) in the field, ms: keep it inside the VMC's non-response time. */
  cardWaitMs?: number;
  detectIntervalMs?: number;
}

class NotCredited extends CodedError {
  constructor(readonly reason: RefundReason, message: string) {
    super("REFUND_NOT_CREDITED", message);
  }
}

interface Pending {
  seq: number;
  credit: RefundCreditRecord;
}

export class Refunds {
  readonly #o: RefundsOptions;
  readonly #forwarder: CompletionForwarder<RefundOutcomeRecord, RefundCompletionAnswer>;
  /** Loads whose CREDIT was sent and whose outcome is not known yet, by purchase. */
  readonly #pending = new Map<string, Pending>();
  #closed = false;
  readonly #timers: OwnedTimers;

  constructor(o: RefundsOptions) {
    this.#o = o;
    this.#timers = new OwnedTimers(o.timers);
    this.#forwarder = new CompletionForwarder<RefundOutcomeRecord, RefundCompletionAnswer>({
      client: o.client, timers: o.timers,
      deliver: (record) => completeRefund(o.client, record.url, record.purchaseId, record.completion),
      onDone: (seq, record, _answer, error) => {
        if (seq > 0) this.#retire(seq);
        if (error) o.onError("REFUND_COMPLETION_REFUSED", `${record.purchaseId}: ${error.message}`);
      },
    });
  }

  get pending(): number {
    return this.#pending.size;
  }

  get pendingCompletions(): number {
    return this.#forwarder.pending;
  }

  /** The forwarder's backoff, and the pause between looks for the card while a load is in doubt. */
  get timersHeld(): number {
    return this.#forwarder.timersHeld + this.#timers.held;
  }

  /**
   * Takes a recovered journal record (the terminal's start hands over every refund record, in journal order). An
   * intent with nothing after it never reached CREDIT: the refund is owed. A credit record waits for the card.
   */
  recover(raw: JournalRecord, record: RefundRecord): void {
    if (record.k === "refund-outcome") {
      const open = this.#pending.get(record.purchaseId);
      if (open) {
        this.#retire(open.seq);
        this.#pending.delete(record.purchaseId);
      }
      this.#outcomes.add(record.purchaseId);
      void this.#forwarder.enqueue(raw.seq, record);
      return;
    }
    if (record.k === "refund-credit") {
      this.#pending.set(record.purchaseId, { seq: raw.seq, credit: record });
      return;
    }
    this.#intents.set(record.purchaseId, { seq: raw.seq, intent: record });
  }

  readonly #intents = new Map<string, { seq: number; intent: RefundIntentRecord }>();
  readonly #outcomes = new Set<string>();

  /** After recovery: intents superseded by a later record are retired, the others become owed refunds. */
  finishRecovery(): void {
    for (const [id, { seq, intent }] of this.#intents) {
      if (this.#pending.has(id) || this.#outcomes.has(id)) {
        this.#retire(seq);
        continue;
      }
      this.#finish(seq, intent, { outcome: "not-credited", amount: intent.amount, reason: "card-gone" });
    }
    this.#intents.clear();
    this.#outcomes.clear();
  }

  /** Room for a refund's three records, with an outcome kept back for every load in doubt. */
  hasRoom(): boolean {
    const sizes: number[] = [];
    for (let i = 0; i < 3 + this.#pending.size; i++) sizes.push(PURCHASE_RECORD_BYTES);
    return this.#o.journal.hasRoomFor(...sizes);
  }

  /** One refund, with the card expected in the field. Resolves with what became of it; never throws. */
  async run(request: RefundRequest, route: Route | undefined): Promise<RefundResult> {
    const { purchaseId, order, amount } = request;
    const emit = (result: RefundResult, extra: Partial<RefundEvent> = {}) => this.#o.onEvent({ event: "refund", order, purchaseId, amount, result, ...extra });
    if (!route) {
      // Without a front-end for the card no MAC2 can be had; the owed record still goes to level 1 when the route comes.
      this.#o.onError("REFUND_NO_ROUTE", `${purchaseId}: no front-end route for the card`);
      emit("owed", { reason: "frontend-unavailable" });
      return "owed";
    }
    const intent: RefundIntentRecord = {
      k: "refund-intent", purchaseId, url: route.url, order, amount, asn: request.asn, application: request.application, keyIndex: route.keyIndex,
      at: this.#o.clock.now(),
    };
    let intentSeq: number;
    try {
      if (!this.hasRoom()) throw new Error("journal full");
      intentSeq = writeRecord(this.#o.journal, intent);
    } catch (error) {
      // Nothing recorded, nothing touched: the front-end hears it is owed straight away (no journal record behind it).
      void this.#forwarder.enqueue(-1, { k: "refund-outcome", purchaseId, url: route.url, order, amount, completion: { outcome: "not-credited", amount, reason: "card-gone" } });
      this.#o.onError("JOURNAL_WRITE", `${purchaseId}: refund intent not recorded: ${(error as Error).message}`);
      emit("owed", { reason: "card-gone" });
      return "owed";
    }
    let credit: RefundCreditRecord | undefined;
    let creditSeq = -1;
    try {
      for (let attempt = 1; ; attempt++) {
        const { purse, basic } = await this.#cardOf(request);
        const init = await this.#initializeLoad(purse, intent, amount);
        const auth = await this.#authorize(intent, basic, init.raw);
        credit = { ...intent, k: "refund-credit", onlineSerial: init.onlineSerial, balance: init.balance, mac2: auth.mac2.toUpperCase(), at: this.#o.clock.now() };
        try {
          creditSeq = writeRecord(this.#o.journal, credit);
        } catch (error) {
          credit = undefined;
          throw new NotCredited("card-gone", `journal: ${(error as Error).message}`);
        }
        this.#retire(intentSeq);
        intentSeq = -1;
        this.#pending.set(purchaseId, { seq: creditSeq, credit });
        if (this.#closed) throw new NotCredited("card-gone", "terminal closed before CREDIT");
        try {
          const { tac } = await purse.creditForLoad({ date: auth.date, time: auth.time, mac2: fromHex(auth.mac2) });
          this.#finish(creditSeq, credit, { outcome: "credited", tac: toHex(tac) });
          emit("refunded", { tac: toHex(tac) });
          return "refunded";
        } catch (error) {
          this.#o.trace?.(`  refund ${purchaseId}: CREDIT FOR LOAD failed: ${(error as Error).message}`);
        }
        // CREDIT was sent: only the card's online serial can say whether it credited.
        const settled = await this.#settleWithCard(request, this.#o.cardWaitMs ?? 3000);
        if (settled === "credited") {
          emit("refunded");
          return "refunded";
        }
        if (settled === "unknown" || settled === "absent") {
          emit("in-doubt");
          return "in-doubt";
        }
        // The card is back and was not credited: try once more with a fresh INIT, then give up (owed).
        credit = undefined;
        if (attempt >= 2) throw new NotCredited("card-refused", "the card did not take the load");
        intentSeq = writeRecord(this.#o.journal, { ...intent, at: this.#o.clock.now() });
      }
    } catch (error) {
      const reason = error instanceof NotCredited ? error.reason : "card-gone";
      this.#o.trace?.(`  refund ${purchaseId}: not credited (${reason}): ${(error as Error).message}`);
      const pending = this.#pending.get(purchaseId);
      if (pending && credit) {
        // A credit record was written but CREDIT not sent (closed, say): still nothing on the card.
        this.#pending.delete(purchaseId);
      }
      try {
        this.#finish(pending && credit ? pending.seq : intentSeq, intent, { outcome: "not-credited", amount, reason });
      } catch (e) {
        this.#o.onError("JOURNAL_WRITE", `${purchaseId}: refund outcome not recorded: ${(e as Error).message}`);
      }
      emit("owed", { reason });
      return "owed";
    } finally {
      this.#o.reader.release().catch(() => undefined);
    }
  }

  /** The card in the field, if it is the one that paid. */
  async #cardOf(request: { asn: string; application: Application }, timeout = this.#o.cardWaitMs ?? 3000): Promise<{ purse: PurseCard; basic: BasicData }> {
    try {
      await this.#o.reader.detect({ timeout: Math.max(1, timeout), interval: this.#o.detectIntervalMs ?? 50 });
    } catch (error) {
      throw new NotCredited("card-gone", (error as Error).message);
    }
    const purse = this.#o.purse();
    let basic: BasicData;
    try {
      basic = await this.#o.read(purse);
    } catch (error) {
      throw new NotCredited("card-gone", (error as Error).message);
    }
    if (basic.asn !== request.asn || basic.layout !== request.application) throw new NotCredited("card-gone", "another card is in the field");
    return { purse, basic };
  }

  async #initializeLoad(purse: PurseCard, intent: RefundIntentRecord, amount: number) {
    try {
      return await purse.initializeForLoad({ keyIndex: intent.keyIndex, amount, terminalId: fromHex(this.#o.terminalId) });
    } catch (error) {
      if (error instanceof ApduError && error.sw === 0x9403) throw new NotCredited("no-load-key", error.message);
      if (error instanceof ApduError) throw new NotCredited("card-refused", error.message);
      throw new NotCredited("card-gone", (error as Error).message);
    }
  }

  async #authorize(intent: RefundIntentRecord, basic: BasicData, initRaw: Uint8Array) {
    this.#o.trace?.("  front-end: POST /v1/refunds");
    try {
      const auth = await authorizeRefund(this.#o.client, intent.url, {
        terminalId: this.#o.terminalId, purchaseId: intent.purchaseId, amount: intent.amount, keyIndex: intent.keyIndex, application: intent.application,
        basicData: toHex(basic.raw), initResponse: toHex(initRaw),
      });
      this.#o.trace?.(`  front-end: refund MAC2 ${auth.mac2}, online serial ${auth.onlineSerial}`);
      return auth;
    } catch (error) {
      if (error instanceof FrontendDeclineError) throw new NotCredited(error.reason === "LOAD_KEY_NOT_GRANTED" ? "no-load-key" : "frontend-refused", error.message);
      throw new NotCredited("frontend-unavailable", (error as Error).message);
    }
  }

  /**
   * Settles the load in doubt of the card in the field (from a tap at this terminal, or the wait after a tear):
   * "credited" and "not-credited" are final and recorded; "unknown" = the card moved on past it; "absent" = no card.
   */
  async #settleWithCard(request: RefundRequest, waitMs: number): Promise<"credited" | "not-credited" | "unknown" | "absent"> {
    const deadline = this.#o.timers.now() + waitMs;
    while (this.#o.timers.now() < deadline && !this.#closed) {
      try {
        await this.#o.reader.release();
        const { purse, basic } = await this.#cardOf(request, deadline - this.#o.timers.now());
        const result = await this.settle(purse, basic, request.purchaseId);
        if (result) return result;
      } catch {
        // Not there, pulled again, or another card: keep looking until the window closes.
        await this.#timers.sleep(50);
      }
    }
    return "absent";
  }

  /**
   * The loads in doubt of this card (all of them, or one purchase's), settled by its online serial: unchanged = not
   * credited; one on = credited if GET TRANSACTION PROVE (type 02) shows the MAC2 the front-end made, or, when its
   * MAC2 field is something else (zeros on card OSes that keep no MAC2 for a load), credited on the TAC it carries,
   * which the front-end checks and decides by (docs/purse.md §9.1); a proof without either is unknown.
   * Called from every tap at this terminal. Returns the last result, or undefined when this card had none.
   */
  async settle(purse: PurseCard, basic: BasicData, only?: string): Promise<"credited" | "not-credited" | "unknown" | undefined> {
    let last: "credited" | "not-credited" | "unknown" | undefined;
    for (const [id, p] of [...this.#pending]) {
      const c = p.credit;
      if ((only && id !== only) || c.asn !== basic.asn || c.application !== basic.layout) continue;
      // INITIALIZE FOR LOAD of nothing reads the online serial and changes nothing on the card.
      const probe = await purse.initializeForLoad({ keyIndex: c.keyIndex, amount: 0, terminalId: fromHex(this.#o.terminalId) });
      let completion: RefundCompletion;
      if (probe.onlineSerial === c.onlineSerial) {
        completion = { outcome: "not-credited", amount: c.amount, reason: "card-gone" };
        last = "not-credited";
      } else {
        const proof = probe.onlineSerial === c.onlineSerial + 1 ? await purse.getTransactionProve(TRANSACTION_TYPE_LOAD, probe.onlineSerial) : undefined;
        if (proof && toHex(proof.mac2) === c.mac2) {
          completion = { outcome: "credited", tac: toHex(proof.tac) };
          last = "credited";
        } else if (proof && proof.hasTac) {
          // The front-end holds the load's fields and the TAC key: a valid TAC completes it, a bad one is flagged.
          completion = { outcome: "credited", tac: toHex(proof.tac), proof: "tac" };
          last = "credited";
        } else {
          completion = { outcome: "unknown" };
          last = "unknown";
        }
      }
      this.#o.trace?.(`  refund recovery of ${id}: online serial ${c.onlineSerial} -> ${probe.onlineSerial}: ${completion.outcome}` +
        `${completion.outcome === "credited" && completion.proof === "tac" ? " (the proof's MAC2 field is not the front-end's: settled by its TAC)" : ""}`);
      if (only && last === "not-credited") {
        // The caller (the refund in progress) tries the load again: the credit record is retired, not turned owed.
        this.#retire(p.seq);
        this.#pending.delete(id);
        return last;
      }
      try {
        this.#finish(p.seq, c, completion);
      } catch (error) {
        this.#o.onError("JOURNAL_WRITE", `${id}: refund outcome not recorded: ${(error as Error).message}`);
        continue;
      }
      this.#o.onEvent({ event: "refund", order: c.order, purchaseId: id, amount: c.amount,
        result: last === "credited" ? "settled-refunded" : last === "not-credited" ? "settled-owed" : "settled-unknown",
        ...(completion.outcome === "credited" ? { tac: completion.tac, ...(completion.proof ? { proof: completion.proof } : {}) } : {}) });
    }
    return last;
  }

  /** Whether this card has a load in doubt here (the terminal asks before it spends APDUs on it). */
  hasPendingFor(asn: string): boolean {
    for (const p of this.#pending.values()) if (p.credit.asn === asn) return true;
    return false;
  }

  /** Writes the outcome, retires what it supersedes and hands it to the forwarder. Throws only if nothing was written. */
  #finish(seq: number, from: RefundIntentRecord | RefundCreditRecord, completion: RefundCompletion): void {
    const record: RefundOutcomeRecord = { k: "refund-outcome", purchaseId: from.purchaseId, url: from.url, order: from.order, amount: from.amount, completion };
    const outSeq = writeRecord(this.#o.journal, record);
    if (seq > 0) this.#retire(seq);
    this.#pending.delete(from.purchaseId);
    void this.#forwarder.enqueue(outSeq, record);
  }

  #retire(seq: number): void {
    if (seq < 0) return;
    try {
      this.#o.journal.retire(seq);
    } catch (error) {
      this.#o.onError("JOURNAL_RETIRE", `record ${seq} stays until the next start: ${(error as Error).message}`);
    }
  }

  close(): void {
    this.#closed = true;
    this.#timers.close();
    this.#forwarder.close();
  }
}
