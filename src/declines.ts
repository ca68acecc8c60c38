/**
 * Why a payment was declined: a closed set, so a controller can branch on every value. A decline always means that
 * nothing was charged to the card (see the phases in ./phases).
 */
export type DeclineReason =
  // the controller or the clock
  | "timeout" | "cancelled" | "journal-full"
  // what the terminal reads on the card itself
  | "no-application" | "card-not-enabled" | "card-expired" | "card-not-yet-valid" | "insufficient-balance"
  | "card-error" | "card-refused" | "mac2-mismatch"
  // the routing table
  | "no-route"
  // the front-end: unreachable, or a refusal with one of its codes
  | "frontend-unavailable" | "card-hotlisted" | "card-type-not-accepted" | "card-data-invalid" | "amount-over-limit"
  | "replay" | "terminal-mismatch" | "key-not-found" | "algorithm-not-supported" | "tsn-exhausted" | "frontend-refused"
  // the front-end's limits on this terminal, and a revoked terminal certificate
  | "rate-limited" | "daily-limit" | "terminal-revoked";

/** Every decline reason, once: the status report's counters have one fixed slot each. */
export const DECLINE_REASONS: readonly DeclineReason[] = Object.freeze([
  "timeout", "cancelled", "journal-full", "no-application", "card-not-enabled", "card-expired", "card-not-yet-valid",
  "insufficient-balance", "card-error", "card-refused", "mac2-mismatch", "no-route", "frontend-unavailable", "card-hotlisted",
  "card-type-not-accepted", "card-data-invalid", "amount-over-limit", "replay", "terminal-mismatch", "key-not-found",
  "algorithm-not-supported", "tsn-exhausted", "frontend-refused", "rate-limited", "daily-limit", "terminal-revoked",
] as DeclineReason[]);

/**
 * The front-end's refusal codes (its 4xx `error.code`) and what the terminal tells the controller. A code not in this
 * table is a refusal all the same: "frontend-refused", with the code in the detail.
 */
const FRONTEND_REFUSALS: { readonly [code: string]: DeclineReason } = Object.freeze({
  CARD_EXPIRED: "card-expired",
  CARD_NOT_YET_VALID: "card-not-yet-valid",
  CARD_NOT_ENABLED: "card-not-enabled",
  CARD_HOTLISTED: "card-hotlisted",
  CARD_TYPE_NOT_ACCEPTED: "card-type-not-accepted",
  CARD_DATA_INVALID: "card-data-invalid",
  INSUFFICIENT_BALANCE: "insufficient-balance",
  AMOUNT_OVER_LIMIT: "amount-over-limit",
  CITY_NOT_SERVED: "no-route",
  REPLAY: "replay",
  TERMINAL_MISMATCH: "terminal-mismatch",
  CLIENT_NOT_ALLOWED: "terminal-mismatch",
  KEY_NOT_FOUND: "key-not-found",
  ALGORITHM_NOT_SUPPORTED: "algorithm-not-supported",
  TSN_EXHAUSTED: "tsn-exhausted",
  // A 429 on authorization comes before the terminal's DEBIT: a decline, never an unknown outcome.
  RATE_LIMITED: "rate-limited",
  DAILY_LIMIT: "daily-limit",
  TERMINAL_REVOKED: "terminal-revoked",
});

export function frontendRefusal(code: string): DeclineReason {
  return Object.prototype.hasOwnProperty.call(FRONTEND_REFUSALS, code) ? FRONTEND_REFUSALS[code]! : "frontend-refused";
}
