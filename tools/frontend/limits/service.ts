/**
 * Per-terminal limits on authorizations (docs/limits.md): a token bucket (429 RATE_LIMITED with Retry-After, before
 * anything is reserved or written) and a daily amount ceiling kept by the database (422 DAILY_LIMIT). Both come
 * before the terminal's DEBIT, so the terminal declines the payment and the card is never charged.
 */
import type { FrontendConfig } from "../config";
import { decline, FrontendError } from "../errors";
import type { PurchaseInsert, Store } from "../storage/store";
import { TokenBuckets } from "./bucket";

export const DEFAULT_AUTHORIZATIONS_PER_SECOND = 5;
export const DEFAULT_AUTHORIZATION_BURST = 10;

export class TerminalLimits {
  readonly #store: Store;
  readonly #buckets: TokenBuckets;
  readonly #dailyAmount: number | undefined;

  constructor(config: FrontendConfig, store: Store) {
    this.#store = store;
    this.#buckets = new TokenBuckets(config.limits?.authorizationsPerSecond ?? DEFAULT_AUTHORIZATIONS_PER_SECOND,
      config.limits?.authorizationBurst ?? DEFAULT_AUTHORIZATION_BURST);
    this.#dailyAmount = config.limits?.dailyAmount;
  }

  /** Takes a token of the terminal's bucket, or refuses with 429 and how long to wait. */
  admit(terminalId: string, now: number): void {
    const waitMs = this.#buckets.take(terminalId, now);
    if (!waitMs) return;
    const seconds = Math.max(1, Math.ceil(waitMs / 1000));
    throw new FrontendError("RATE_LIMITED", 429, `terminal ${terminalId} is over its authorization rate; retry in ${seconds} s`, { "retry-after": String(seconds) });
  }

  /** Refuses at once an amount that alone is over the daily ceiling (no database call). */
  checkAmount(amount: number): void {
    if (this.#dailyAmount !== undefined && amount > this.#dailyAmount) throw this.#over(amount);
  }

  /** Records the authorization: within the terminal's daily ceiling when there is one, in the same transaction. */
  async record(values: PurchaseInsert): Promise<void> {
    if (this.#dailyAmount === undefined) return this.#store.insert(values);
    if (!(await this.#store.limits.insertWithinDailyLimit(values, this.#dailyAmount))) throw this.#over(values[6]);
  }

  /** A voided purchase gives its amount back to the day's ceiling. */
  async release(terminalId: string, businessDay: string, amount: number): Promise<void> {
    if (this.#dailyAmount !== undefined) await this.#store.limits.releaseDaily(terminalId, businessDay, amount);
  }

  #over(amount: number): FrontendError {
    return decline("DAILY_LIMIT", `an authorization of ${amount} fen would pass this terminal's daily ceiling of ${this.#dailyAmount} fen`);
  }
}
