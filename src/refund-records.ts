import type { CardMovement } from "./card-movement";
import type { RefundCompletion } from "../modules/frontend-client/refunds";

/**
 * The journal records of a refund onto the card (src/refund.ts), in the order they are written:
 * - refund-intent, before anything touches the card: without a later record, CREDIT was never sent (owed);
 * - refund-credit, before CREDIT FOR LOAD: the load the card may have made, settled by its online serial;
 * - refund-outcome, what goes to the front-end until it is acknowledged.
 * Each supersedes the one before, which is retired.
 */

interface RefundBase extends CardMovement {
  /** The load key CREDIT FOR LOAD is keyed with. */
  keyIndex: number;
}

export interface RefundIntentRecord extends RefundBase {
  k: "refund-intent";
}

export interface RefundCreditRecord extends RefundBase {
  k: "refund-credit";
  /** The online serial INITIALIZE FOR LOAD gave: the card's counter moves past it only if it credited. */
  onlineSerial: number;
  balance: number;
  /** The front-end's MAC2: the proof of type 02 names the one the card took. */
  mac2: string;
}

export interface RefundOutcomeRecord {
  k: "refund-outcome";
  purchaseId: string;
  url: string;
  order: string;
  amount: number;
  completion: RefundCompletion;
}

export type RefundRecord = RefundIntentRecord | RefundCreditRecord | RefundOutcomeRecord;

const REASONS = ["card-gone", "no-load-key", "card-refused", "frontend-refused", "frontend-unavailable"];

/** Checks every field the terminal acts on; anything else is not ours and is skipped (undefined). */
export function readRefundRecord(r: { [key: string]: unknown }): RefundRecord | undefined {
  const str = (k: string) => typeof r[k] === "string";
  const int = (k: string) => Number.isInteger(r[k]) && (r[k] as number) >= 0;
  const base = str("purchaseId") && str("url") && str("order") && int("amount") && (r.amount as number) > 0;
  if (!base) return undefined;
  if (r.k === "refund-outcome") {
    const c = r.completion as { outcome?: unknown; tac?: unknown; amount?: unknown; reason?: unknown; proof?: unknown } | null;
    const ok = !!c && typeof c === "object" && (c.outcome === "unknown" ||
      (c.outcome === "credited" && typeof c.tac === "string" && /^[0-9A-F]{8}$/.test(c.tac) && (c.proof === undefined || c.proof === "tac")) ||
      (c.outcome === "not-credited" && c.amount === r.amount && REASONS.includes(c.reason as string)));
    return ok ? (r as unknown as RefundOutcomeRecord) : undefined;
  }
  const card = str("asn") && (r.application === "tunion" || r.application === "cityunion") && int("keyIndex") && typeof r.at === "number" && Number.isFinite(r.at);
  if (!card) return undefined;
  if (r.k === "refund-intent") return r as unknown as RefundIntentRecord;
  if (r.k === "refund-credit") {
    return int("onlineSerial") && Number.isInteger(r.balance) && str("mac2") && /^[0-9A-F]{8}$/.test(r.mac2 as string) ? (r as unknown as RefundCreditRecord) : undefined;
  }
  return undefined;
}
