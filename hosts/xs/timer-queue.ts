/**
 * Moddable's Timer.set / Timer.repeat / Timer.clear and Time.ticks on a clock that moves only when its owner says so.
 * The XS host's parent clock and the tests' virtual clock both run on it, so a timer fires in the same order in a
 * unit test as in a whole-system run inside XS: by due time, and among equal due times in the order they were armed.
 */
import type { Timers } from "../../modules/device/types";

interface Entry { at: number; seq: number; callback: () => void; every?: number }

export interface DueTimer { at: number; callback: () => void }

export class TimerQueue implements Timers {
  #now = 0;
  #seq = 0;
  readonly #entries = new Map<number, Entry>();

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

  get pending(): number {
    return this.#entries.size;
  }

  /** When the earliest timer is due, or null when none is set. */
  get nextAt(): number | null {
    let at: number | null = null;
    for (const e of this.#entries.values()) if (at === null || e.at < at) at = e.at;
    return at;
  }

  /** The timers still set, for a failing test to show: due time, and whether each repeats. */
  describe(): string {
    return [...this.#entries.values()].map((e) => `${e.at - this.#now}ms${e.every ? ` every ${e.every}` : ""}`).join(", ");
  }

  /** Time only moves forward. */
  protected moveTo(now: number): void {
    if (now > this.#now) this.#now = now;
  }

  /**
   * Takes the first timer due at or before `limit`: a one-shot one is gone, a repeating one moves to its next time
   * under the same handle (so the callback may clear it). The caller runs the callback.
   */
  protected takeDue(limit: number): DueTimer | undefined {
    let best: [number, Entry] | undefined;
    for (const [id, e] of this.#entries) {
      if (e.at > limit) continue;
      if (!best || e.at < best[1].at || (e.at === best[1].at && e.seq < best[1].seq)) best = [id, e];
    }
    if (!best) return undefined;
    const [id, entry] = best;
    const due: DueTimer = { at: entry.at, callback: entry.callback };
    if (entry.every === undefined) this.#entries.delete(id);
    else {
      entry.at += entry.every;
      entry.seq = ++this.#seq;
    }
    return due;
  }
}
