/**
 * Every refusal the front-end gives has a stable code and an HTTP status; the JSON body is {error: {code, message}}.
 * Declines about the card or the purchase are 422 so a terminal can tell them from malformed requests (400).
 */
import { CodedError } from "../../modules/errors/errors";
export class FrontendError extends CodedError {
  readonly statusCode: number;
  /** Headers the answer carries (Retry-After of a 429). */
  readonly headers: Readonly<Record<string, string>> | undefined;
  constructor(code: string, statusCode: number, message: string, headers?: Record<string, string>) {
    super(code, message);
    this.statusCode = statusCode;
    this.headers = headers;
  }
}

export const validation = (message: string) => new FrontendError("VALIDATION", 400, message);
export const decline = (code: string, message: string) => new FrontendError(code, 422, message);

/** The stable decline and error codes, with their HTTP status (documented in the README). */
export const ERROR_CODES = {
  VALIDATION: 400,
  CARD_DATA_INVALID: 400,
  BODY_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  CLIENT_NOT_ALLOWED: 403,
  TERMINAL_MISMATCH: 403,
  TERMINAL_REVOKED: 403,
  RATE_LIMITED: 429,
  DAILY_LIMIT: 422,
  NOT_FOUND: 404,
  PURCHASE_NOT_FOUND: 404,
  ROUTES_NOT_SERVED: 404,
  REPLAY: 409,
  ALREADY_SETTLED: 409,
  CARD_EXPIRED: 422,
  CARD_NOT_YET_VALID: 422,
  CARD_NOT_ENABLED: 422,
  CARD_HOTLISTED: 422,
  CARD_TYPE_NOT_ACCEPTED: 422,
  CITY_NOT_SERVED: 422,
  AMOUNT_OVER_LIMIT: 422,
  INSUFFICIENT_BALANCE: 422,
  KEY_NOT_FOUND: 422,
  ALGORITHM_NOT_SUPPORTED: 422,
  REFUND_NOT_FOUND: 404,
  REFUND_CARD_MISMATCH: 409,
  REFUND_NOT_ALLOWED: 409,
  ALREADY_REFUNDED: 409,
  REFUND_OVER_AMOUNT: 422,
  LOAD_KEY_NOT_GRANTED: 422,
  MAC1_INVALID: 422,
  REFUNDS_UNAVAILABLE: 503,
  TSN_EXHAUSTED: 503,
  JOURNAL_UNAVAILABLE: 503,
  KEY_SERVICE_UNAVAILABLE: 503,
} as const;
