/**
 * The terminal as an MDB cashless device (docs/mdb.md): VEND REQUEST runs the terminal's purchase for the price,
 * its outcome becomes VEND APPROVED / DENIED on a later POLL. The purchase, journal and recovery are the terminal's
 * own; this only maps between the two. The host feeds it the terminal's events (event()).
 *
 * - Selection first (level 3, Always Idle): the VMC asks, then the customer taps within the terminal's pay timeout.
 * - A torn purchase ("unknown-outcome") answers nothing until the terminal settles it: "resolved approved" is VEND
 *   APPROVED, "resolved declined" VEND DENIED; an unresolvable one is never approved (the VMC's timeout and RESET
 *   then cancel the vend).
 * - VEND CANCEL stops the card wait; a purchase already past INIT finishes, and if it is approved the money is owed
 *   back (onRefundOwed), as it is after a VEND FAILURE: refunds onto the card are not done yet, so the VMC is told
 *   the credit could not be restored (0A C0) and the amount is reported as owed.
 */
import type { CashlessDevice, VendRequest } from "../modules/mdb/cashless";
import type { PayRequest, RefundRequest, RefundResult, TerminalEvent } from "./terminal";

export interface MdbCashlessOptions {
  device: CashlessDevice;
  terminal: { pay(request: PayRequest): Promise<void>; cancel(): boolean };
  /** How long the customer has to tap after a selection, ms; keep it inside the declared Z7. */
  tapTimeoutMs?: number;
  /** A debit the VMC did not take (failed or cancelled vend): for settlement by the front-end. */
  onRefundOwed?(owed: { order: string; amount: number; purchaseId?: string; reason: "vend-failure" | "vend-cancel" }): void;
  trace?(line: string): void;
  /**
   * Refunds onto the card after VEND FAILURE (the terminal's refund(), src/refund.ts): the VMC hears nothing while it
   * runs (refund in progress), then an ACK if the card was credited, `0A C_` otherwise (owed at the front-end).
   */
  refunds?: { refund(request: RefundRequest & { cityCode: string }): Promise<RefundResult> };
}

/** What the trace says of a refund's result: the result names, read after "refund", would stutter ("refund refunded"). */
const REFUND_SAID: { readonly [r in RefundResult | "failed"]: string } = Object.freeze({
  refunded: "loaded back onto the card",
  owed: "not loaded: owed at the front-end",
  "in-doubt": "in doubt: settled at the card's next tap",
  failed: "failed: owed at the front-end",
});

export class MdbCashless {
  readonly #o: MdbCashlessOptions;
  #seq = 0;
  #order: string | undefined;
  #vend: VendRequest | undefined;
  #cancelled = false;
  /** The approved purchase of the current vend, until VEND SUCCESS or FAILURE. */
  #approved: { order: string; amount: number; purchaseId: string; card?: { asn: string; cityCode: string; application: "tunion" | "cityunion" } } | undefined;

  constructor(o: MdbCashlessOptions) {
    this.#o = o;
  }

  /** From the device's onVendRequest; `asn`: the card that began the session (card first), the only one that may pay. */
  vendRequest(vend: VendRequest, asn?: string): void {
    const order = `MDB-${++this.#seq}-${vend.item}`;
    this.#order = order;
    this.#vend = vend;
    this.#cancelled = false;
    this.#o.trace?.(`MDB vend ${order}: ${vend.price} fen item ${vend.item}${vend.selectionFirst ? " (selection first)" : ""}`);
    try {
      this.#o.terminal.pay({ amount: vend.price, order, timeoutMs: this.#o.tapTimeoutMs ?? 20_000, ...(asn ? { asn } : {}) }).catch(() => undefined);
    } catch (error) {
      // BUSY, BAD_AMOUNT...: nothing was charged.
      this.#o.trace?.(`MDB vend ${order}: ${(error as Error).message}`);
      this.#order = undefined;
      this.#o.device.deny();
    }
  }

  /** From the device's onVendCancel. */
  vendCancel(): void {
    this.#cancelled = true;
    this.#o.terminal.cancel();
  }

  /** From the device's onVendResult. */
  vendResult(success: boolean, byReset = false): void {
    const approved = this.#approved;
    this.#approved = undefined;
    if (success) return;
    const refunds = this.#o.refunds;
    if (approved?.card && refunds && !byReset) {
      const { card, ...vend } = approved;
      const settled = (result: RefundResult | "failed") => {
        this.#o.trace?.(`MDB vend ${vend.order}: refund ${REFUND_SAID[result]}`);
        if (result === "owed" || result === "failed") this.#o.onRefundOwed?.({ ...vend, reason: "vend-failure" });
        this.#o.device.refunded(result === "refunded");
      };
      try {
        refunds.refund({ purchaseId: vend.purchaseId, order: vend.order, amount: vend.amount, ...card }).then(settled, () => settled("failed"));
      } catch {
        settled("failed");
      }
      return;
    }
    if (approved) this.#o.onRefundOwed?.({ order: approved.order, amount: approved.amount, purchaseId: approved.purchaseId, reason: byReset ? "vend-cancel" : "vend-failure" });
    // Without a card refund the VMC is told the credit could not be restored (0A C0).
    if (!byReset) this.#o.device.refunded(false);
  }

  /** The terminal's events (its onEvent). */
  event(e: TerminalEvent): void {
    if (!("order" in e) || e.order !== this.#order) return;
    const device = this.#o.device;
    switch (e.event) {
      case "approved":
        this.#order = undefined;
        if (this.#cancelled || !device.approve(e.amount)) {
          this.#o.onRefundOwed?.({ order: e.order, amount: e.amount, purchaseId: e.purchaseId, reason: "vend-cancel" });
          return;
        }
        this.#approved = { order: e.order, amount: e.amount, purchaseId: e.purchaseId, card: { asn: e.asn, cityCode: e.cityCode, application: e.application } };
        return;
      case "declined":
        this.#order = undefined;
        device.deny();
        return;
      case "resolved":
        this.#order = undefined;
        if (e.result === "approved" && this.#vend) {
          if (this.#cancelled || !device.approve(this.#vend.price)) {
            this.#o.onRefundOwed?.({ order: e.order, amount: this.#vend.price, purchaseId: e.purchaseId, reason: "vend-cancel" });
          } else this.#approved = { order: e.order, amount: this.#vend.price, purchaseId: e.purchaseId };
        } else if (e.result === "declined") device.deny();
        return;
      default:
    }
  }
}
