import { FrontendProtocolError, type Application, type FrontendClient } from "./client";

/**
 * The refund part of the front-end protocol: a refund after a failed vend is loaded back onto the card that paid
 * (INITIALIZE FOR LOAD, then CREDIT FOR LOAD with the front-end's MAC2), or recorded as owed when it cannot be.
 */

export interface RefundAuthorizeRequest {
  terminalId: string;
  /** The purchase the refund belongs to: at most its amount, at most once, onto the same card. */
  purchaseId: string;
  amount: number;
  /** The load key index on the card (the route's key index). */
  keyIndex: number;
  application: Application;
  /** Hex of the raw 30-byte file 0x15. */
  basicData: string;
  /** Hex of the raw 16-byte INITIALIZE FOR LOAD answer (with the card's MAC1). */
  initResponse: string;
}

export interface RefundAuthorization {
  purchaseId: string;
  onlineSerial: number;
  date: string;
  time: string;
  /** MAC2 for CREDIT FOR LOAD, made with the load key. */
  mac2: string;
}

export type RefundReason = "card-gone" | "no-load-key" | "card-refused" | "frontend-refused" | "frontend-unavailable";

/**
 * The refund's outcome as the terminal reports it. "credited" carries the card's TAC; with `proof: "tac"` the load was
 * recovered from a proof whose MAC2 field is not the front-end's MAC2 (a card OS that keeps zeros there, docs/purse.md
 * §9.1), so only the TAC vouches for it and the front-end decides by the TAC alone.
 */
export type RefundCompletion =
  | { outcome: "credited"; tac: string; proof?: "tac" }
  | { outcome: "not-credited"; amount: number; reason: RefundReason }
  | { outcome: "unknown" };

export interface RefundCompletionAnswer {
  purchaseId: string;
  status: "authorized" | "completed" | "flagged" | "owed" | "reconciliation";
  outcome: RefundCompletion["outcome"];
  amount: number;
  tacValid?: boolean;
}

const HEX8 = /^[0-9A-Fa-f]{8}$/;
const STATUSES = ["completed", "flagged", "owed", "reconciliation"];

export async function authorizeRefund(client: FrontendClient, url: string, request: RefundAuthorizeRequest): Promise<RefundAuthorization> {
  const a = (await client.request(url, "POST", "/v1/refunds", request, client.authorizeTimeout)) as Partial<RefundAuthorization>;
  if (a.purchaseId !== request.purchaseId || !Number.isInteger(a.onlineSerial) || typeof a.date !== "string" || !/^[0-9]{8}$/.test(a.date) ||
      typeof a.time !== "string" || !/^[0-9]{6}$/.test(a.time) || typeof a.mac2 !== "string" || !HEX8.test(a.mac2)) {
    throw new FrontendProtocolError("refund authorization answer is missing fields");
  }
  return a as RefundAuthorization;
}

export async function completeRefund(client: FrontendClient, url: string, purchaseId: string, completion: RefundCompletion): Promise<RefundCompletionAnswer> {
  const c = (await client.request(url, "POST", `/v1/refunds/${encodeURIComponent(purchaseId)}/completion`, completion)) as Partial<RefundCompletionAnswer>;
  if (typeof c.status !== "string" || !STATUSES.includes(c.status)) throw new FrontendProtocolError("refund completion answer has no status");
  return c as RefundCompletionAnswer;
}
