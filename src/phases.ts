/**
 * The phases of one purchase, in the order a tap goes through them. They are what `status` and the trace report.
 *
 * The rule that keeps money right hangs on one boundary: once DEBIT FOR PURCHASE has been sent ("debit-sent"), the
 * card may have moved its purse whatever the host saw, so any failure from then on is an unknown outcome, settled
 * by the card's own counter when it comes back (or reported to the front-end), and never a decline. Before it, a
 * failure is a decline: nothing was charged.
 */
export const PURCHASE_PHASES = Object.freeze([
  "detected", "selected", "basic-data-read", "initialized", "authorized", "intent-journaled", "debit-sent", "outcome-journaled", "released",
] as const);

export type PurchasePhase = (typeof PURCHASE_PHASES)[number];

/** True from the moment DEBIT was sent until its outcome is in the journal: the window of the unknown outcome. */
export function debitInDoubt(phase: PurchasePhase): boolean {
  return phase === "debit-sent";
}
