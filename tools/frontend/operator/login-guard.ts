/**
 * Limits on console logins, per source address and per account: after `freeFailures` wrong passwords in a row, a key
 * is locked out, for `baseLockMs` and twice as long after each further failure (up to `maxLockMs`). While locked, a
 * login is refused before any password check, the right password included, so a flood costs no scrypt at all. An
 * address may also have only `perAddressInFlight` checks waiting or running at once (its queue).
 *
 * A refusal (locked out, or the address's queue full) is answered after a pause (up to a second, "tarpit"): a client that waits for its
 * answers, as scripts do, then sends a handful of attempts a second at most, each of them cheap. An address has at most
 * `perAddressHeld` answers held at once; beyond that it is answered at once and its connection closed.
 *
 * The counts live in the process: with --workers N each worker keeps its own, so an address gets up to N times the
 * free failures before every worker has locked it (the lockout then holds in each).
 */

export interface LoginLimits {
  /** Wrong passwords allowed before the first lockout. Default 5. */
  freeFailures?: number;
  /** The first lockout; each further failure doubles it. Default 1 s. */
  baseLockMs?: number;
  /** The longest lockout. Default 15 min. */
  maxLockMs?: number;
  /** Password checks one address may have waiting or running. Default 2. */
  perAddressInFlight?: number;
  /** How long a key's failures are remembered after its last one. Default 1 h. */
  forgetAfterMs?: number;
  /** The longest pause before a refusal during a lockout. Default 1 s. */
  tarpitMs?: number;
  /** Refusals of one address held at once. Default 16. */
  perAddressHeld?: number;
}

interface Entry {
  failures: number;
  lockedUntil: number;
  lastFailure: number;
  /** Attempts refused during the current lockout. */
  refused: number;
}

/** `first`: the first refusal of this lockout (the audit logs that one). */
export type Refusal = { reason: "locked" | "busy"; key: string; retryAfterMs: number; first: boolean };

const MAX_ENTRIES = 100_000;

export class LoginGuard {
  readonly #entries = new Map<string, Entry>();
  readonly #inFlight = new Map<string, number>();
  readonly #held = new Map<string, number>();
  readonly #tarpit: number;
  readonly #perAddressHeld: number;
  readonly #free: number;
  readonly #base: number;
  readonly #max: number;
  readonly #perAddress: number;
  readonly #forget: number;
  readonly #now: () => number;

  constructor(limits: LoginLimits = {}, now: () => number = Date.now) {
    this.#free = limits.freeFailures ?? 5;
    this.#base = limits.baseLockMs ?? 1000;
    this.#max = limits.maxLockMs ?? 15 * 60_000;
    this.#perAddress = limits.perAddressInFlight ?? 2;
    this.#forget = limits.forgetAfterMs ?? 3600_000;
    this.#tarpit = limits.tarpitMs ?? 1000;
    this.#perAddressHeld = limits.perAddressHeld ?? 16;
    this.#now = now;
  }

  static keys(address: string, user: string): string[] {
    return [`address:${address}`, `account:${user}`];
  }

  /** A refusal before any password check, or null: then call begin() and, after the check, end(). */
  check(address: string, user: string): Refusal | null {
    const now = this.#now();
    for (const key of LoginGuard.keys(address, user)) {
      const e = this.#entries.get(key);
      if (e && e.lockedUntil > now) return { reason: "locked", key, retryAfterMs: e.lockedUntil - now, first: e.refused++ === 0 };
    }
    if ((this.#inFlight.get(address) ?? 0) >= this.#perAddress) return { reason: "busy", key: `address:${address}`, retryAfterMs: 1000, first: true };
    return null;
  }

  begin(address: string): void {
    this.#inFlight.set(address, (this.#inFlight.get(address) ?? 0) + 1);
  }

  end(address: string): void {
    const n = (this.#inFlight.get(address) ?? 1) - 1;
    if (n > 0) this.#inFlight.set(address, n);
    else this.#inFlight.delete(address);
  }

  /** Counts a wrong password against the address and the account; the lockout it starts (0: none yet). */
  failed(address: string, user: string): number {
    const now = this.#now();
    let longest = 0;
    this.#prune(now);
    for (const key of LoginGuard.keys(address, user)) {
      const e = this.#entries.get(key) ?? { failures: 0, lockedUntil: 0, lastFailure: 0, refused: 0 };
      if (now - e.lastFailure > this.#forget) e.failures = 0;
      e.failures++;
      e.lastFailure = now;
      if (e.failures >= this.#free) {
        const lock = Math.min(this.#max, this.#base * 2 ** Math.min(30, e.failures - this.#free));
        e.lockedUntil = now + lock;
        e.refused = 0;
        longest = Math.max(longest, lock);
      }
      this.#entries.set(key, e);
    }
    return longest;
  }

  /**
   * Holds a refused attempt's answer: resolves with true after the pause, or at once with false when the address
   * already has its share held (then close its connection).
   */
  async tarpit(address: string, refusal: Refusal): Promise<boolean> {
    const held = this.#held.get(address) ?? 0;
    if (held >= this.#perAddressHeld) return false;
    this.#held.set(address, held + 1);
    try {
      await new Promise((resolve) => setTimeout(resolve, Math.min(this.#tarpit, refusal.retryAfterMs)));
    } finally {
      const n = (this.#held.get(address) ?? 1) - 1;
      if (n > 0) this.#held.set(address, n);
      else this.#held.delete(address);
    }
    return true;
  }

  /** A right password clears both counts. */
  succeeded(address: string, user: string): void {
    for (const key of LoginGuard.keys(address, user)) this.#entries.delete(key);
  }

  #prune(now: number): void {
    if (this.#entries.size < MAX_ENTRIES) return;
    for (const [key, e] of this.#entries) if (e.lockedUntil <= now && now - e.lastFailure > this.#forget) this.#entries.delete(key);
    // Still full (a flood from very many addresses): the oldest go first; Map keeps insertion order.
    for (const key of this.#entries.keys()) {
      if (this.#entries.size < MAX_ENTRIES) break;
      this.#entries.delete(key);
    }
  }
}
