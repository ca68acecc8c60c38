// A virtual clock implementing the device `Timers` shape, for driver tests that run the same under mocha and inside XS
// (which has no setTimeout): time moves only when a test says so, and every promise job runs between timer callbacks.
import type { Timers } from "../../modules/device/types";

interface Entry { at: number; seq: number; callback: () => void; every?: number }

export async function settle(turns = 64): Promise<void> {
  for (let i = 0; i < turns; i++) await Promise.resolve();
}

export class VirtualClock implements Timers {
  #now = 0;
  #seq = 0;
  #entries = new Map<number, Entry>();

  set(callback: () => void, ms: number): unknown {
    const id = ++this.#seq;
    this.#entries.set(id, { at: this.#now + Math.max(0, ms || 0), seq: id, callback });
    return id;
  }

  /** Timer.repeat: one handle that fires every `ms` until cleared. */
  repeat(callback: () => void, ms: number): unknown {
    const id = ++this.#seq;
    const every = Math.max(1, ms || 0);
    this.#entries.set(id, { at: this.#now + every, seq: id, callback, every });
    return id;
  }

  clear(handle: unknown): void {
    if (typeof handle === "number") this.#entries.delete(handle);
  }

  now(): number {
    return this.#now;
  }

  /** The timers still set, for a failing test to show: due time, and whether each repeats. */
  describe(): string {
    return [...this.#entries.values()].map((e) => `${e.at - this.#now}ms${e.every ? ` every ${e.every}` : ""}`).join(", ");
  }

  get pending(): number {
    return this.#entries.size;
  }

  /** A one-shot timer is gone once it fires; a repeating one moves to its next time under the same handle. */
  #rearm(id: number, entry: Entry): void {
    if (entry.every === undefined) this.#entries.delete(id);
    else {
      entry.at += entry.every;
      entry.seq = ++this.#seq;
    }
  }

  #next(limit: number): [number, Entry] | undefined {
    let best: [number, Entry] | undefined;
    for (const [id, e] of this.#entries) {
      if (e.at > limit) continue;
      if (!best || e.at < best[1].at || (e.at === best[1].at && e.seq < best[1].seq)) best = [id, e];
    }
    return best;
  }

  /**
   * The host stalls for `ms`: time moves on but no timer fires. The next advance() fires everything overdue, in due
   * order and late, as a host's event loop does once it runs again.
   */
  stall(ms: number): void {
    this.#now += ms;
  }

  /** Moves time forward by `ms`, firing due timers in order and letting promise jobs settle after each. */
  async advance(ms: number): Promise<void> {
    const end = this.#now + ms;
    await settle();
    for (let next = this.#next(end); next; next = this.#next(end)) {
      this.#now = Math.max(this.#now, next[1].at);
      this.#rearm(next[0], next[1]);
      next[1].callback();
      await settle();
    }
    this.#now = Math.max(this.#now, end);
    await settle();
  }

  /**
   * Runs the clock until `promise` settles, jumping from timer to timer; fails if it would need more than `limit` ms
   * of virtual time or if nothing is left that could settle it (a hang).
   */
  async run<T>(promise: Promise<T>, limit = 60_000): Promise<T> {
    let done = false;
    const watched = promise.then(
      (value) => { done = true; return value; },
      (error: unknown) => { done = true; throw error; },
    );
    watched.catch(() => {});
    const start = this.#now;
    await settle();
    while (!done) {
      const next = this.#next(Infinity);
      if (!next) throw new Error("hang: the promise is pending and no timer is left to settle it");
      if (next[1].at - start > limit) throw new Error(`hang: still pending after ${limit} ms of virtual time`);
      await this.advance(Math.max(0, next[1].at - this.#now));
    }
    return watched;
  }
}
