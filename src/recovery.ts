import { toHex } from "../modules/bytes/bytes";
import type { Completion } from "../modules/frontend-client/client";
import type { StatusReason } from "../modules/frontend-client/status";
import { TRANSACTION_TYPE_PURCHASE } from "../modules/purse/commands";
import type { BasicData } from "../modules/purse/files";
import type { PurseCard } from "../modules/purse/session";
import type { PurchasePhase } from "./phases";
import { writeRecord, type IntentRecord, type OutcomeRecord } from "./records";
import type { TerminalCore, Unresolved } from "./terminal-core";

/**
 * Tears: purchases whose DEBIT was sent and whose outcome is not in the journal. The card's own counter settles each
 * one when it comes back (within the payment's recovery window, or at any later tap here); one still unresolved
 * after `reportUnresolvedAfterMs` is reported to the front-end as unknown, for reconciliation.
 */
export class Recovery {
  readonly #c: TerminalCore;
  readonly #report: (reason: StatusReason) => void;
  /** The report timer of each unresolved purchase, by purchase ID. */
  readonly #reports = new Map<string, unknown>();

  constructor(core: TerminalCore, report: (reason: StatusReason) => void) {
    this.#c = core;
    this.#report = report;
  }

  /** Keeps an unknown outcome (from the journal at start, or a tap torn now) and schedules its report. */
  keep(seq: number, intent: IntentRecord, schedule: boolean): Unresolved {
    const pending: Unresolved = { seq, intent, reported: false };
    this.#c.unresolved.set(intent.purchaseId, pending);
    if (schedule) this.scheduleReport(pending);
    return pending;
  }

  /** An outcome record at start: the intent it settles is no longer unresolved. */
  settled(purchaseId: string): void {
    const open = this.#c.unresolved.get(purchaseId);
    if (!open) return;
    this.#c.retire(open.seq);
    this.#c.unresolved.delete(purchaseId);
  }

  /**
   * Writes the outcome, retires the intent, and hands the completion to the forwarder. Throws only if the outcome
   * record cannot be written, and then changes nothing: the intent stays, unresolved, for the card to settle.
   */
  finishIntent(intentSeq: number, intent: IntentRecord, completion: Completion, tap?: { phase: PurchasePhase }): Promise<boolean> {
    const c = this.#c;
    const record: OutcomeRecord = { k: "outcome", purchaseId: intent.purchaseId, url: intent.url, order: intent.order, completion };
    const seq = writeRecord(c.o.journal, record);
    if (tap) c.enter(tap, "outcome-journaled");
    // The outcome supersedes the intent: an intent that cannot be retired now is retired by the next start.
    c.retire(intentSeq);
    c.unresolved.delete(intent.purchaseId);
    this.#clearReport(intent.purchaseId);
    return c.forwarder.enqueue(seq, record).then((answer) => answer !== undefined);
  }

  /** Keeps looking for the torn card until the payment's recovery window closes. */
  async awaitReturn(pending: Unresolved, deadline: number): Promise<void> {
    const c = this.#c;
    c.state = "recovering";
    const until = Math.max(deadline, c.timers.now() + c.config.recoveryWindowMs);
    while (c.unresolved.has(pending.intent.purchaseId) && !c.isClosed()) {
      await c.releasing;
      if (!(await c.waitForCard(until))) return;
      try {
        const purse = c.purse({ apdus: 0, apduBytes: 0 });
        const basic = await c.readForRecovery(purse);
        await this.resolvePending(purse, basic);
      } catch {
        // Pulled again, or another card: keep looking.
      } finally {
        // Let go of the card as a purchase does, in the background: once `resolved` is out, the controller may send
        // the next `pay` at once, and the next purchase waits for the release before it uses the reader.
        c.releasing = c.o.reader.release();
      }
    }
  }

  /** Settles every unknown outcome of this card: its counter says whether the torn DEBIT happened. */
  async resolvePending(purse: PurseCard, basic: BasicData): Promise<void> {
    const c = this.#c;
    for (const pending of [...c.unresolved.values()]) {
      const intent = pending.intent;
      if (intent.asn !== basic.asn || intent.application !== basic.layout) continue;
      const serial = await c.currentSerial(purse, c.routes.lookup(basic.cityCode, basic.layout));
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
      c.o.trace?.(`  recovery of ${intent.purchaseId}: serial ${intent.epSerial} -> ${serial}: ${result}`);
      try {
        void this.finishIntent(pending.seq, intent, completion);
      } catch (error) {
        // Without its outcome in the journal the purchase stays unresolved: the card can be asked again.
        c.emit({ event: "error", code: "JOURNAL_WRITE", message: `${intent.purchaseId}: outcome not recorded: ${(error as Error).message}`, order: intent.order });
        continue;
      }
      c.emit({ event: "resolved", order: intent.order, purchaseId: intent.purchaseId, result,
        ...(completion.outcome === "debited" ? { tac: completion.tac } : {}) });
    }
  }

  scheduleReport(pending: Unresolved): void {
    const c = this.#c;
    const id = pending.intent.purchaseId;
    this.#clearReport(id);
    // A closed terminal sets no timer: the intent is in the journal, and the next start schedules its report.
    if (c.isClosed()) return;
    const wait = Math.max(0, pending.intent.at + c.config.reportUnresolvedAfterMs - c.o.clock.now());
    this.#reports.set(id, c.timers.set(() => {
      this.#reports.delete(id);
      if (!c.unresolved.has(id) || pending.reported) return;
      pending.reported = true;
      c.deliver({ k: "outcome", purchaseId: id, url: pending.intent.url, order: pending.intent.order, completion: { outcome: "unknown" } });
      this.#report("unresolved-reported");
    }, wait));
  }

  #clearReport(purchaseId: string): void {
    const timer = this.#reports.get(purchaseId);
    if (timer === undefined) return;
    this.#c.timers.clear(timer);
    this.#reports.delete(purchaseId);
  }
}
