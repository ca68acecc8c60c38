/**
 * A token bucket per terminal: `rate` authorizations a second on average, at most `burst` at once. Each process keeps
 * its own buckets (with --workers N a terminal whose connections land on different workers gets up to N times the
 * rate; a keep-alive connection stays on one worker). Buckets that refilled are dropped, so memory follows the
 * terminals active in the last few seconds, not the whole fleet.
 */
export class TokenBuckets {
  readonly #rate: number;
  readonly #burst: number;
  readonly #buckets = new Map<string, { tokens: number; at: number }>();

  constructor(ratePerSecond: number, burst: number) {
    this.#rate = ratePerSecond;
    this.#burst = burst;
  }

  /** Takes one token; 0 = granted, else the milliseconds until one is there. */
  take(key: string, now: number): number {
    let bucket = this.#buckets.get(key);
    if (!bucket) {
      if (this.#buckets.size >= 10_000) this.#prune(now);
      bucket = { tokens: this.#burst, at: now };
      this.#buckets.set(key, bucket);
    }
    const elapsed = Math.max(0, now - bucket.at);
    bucket.tokens = Math.min(this.#burst, bucket.tokens + (elapsed * this.#rate) / 1000);
    bucket.at = now;
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return 0;
    }
    return Math.ceil(((1 - bucket.tokens) * 1000) / this.#rate);
  }

  #prune(now: number): void {
    for (const [key, b] of this.#buckets) {
      if (b.tokens + ((now - b.at) * this.#rate) / 1000 >= this.#burst) this.#buckets.delete(key);
    }
  }
}
