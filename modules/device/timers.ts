import type { Timers } from "./types";

/**
 * The timers one device object owns, over the host's `Timers` (Moddable's Timer, Node's timers, or a test's virtual
 * clock: XS has no global setTimeout, so the host hands its timers in). Every one-shot, repeating timer and sleep goes
 * through here, so `held` counts them and `close()` clears them all and ends every sleep: an owner that closes leaves
 * nothing on the host's clock. After close() nothing new is set; a sleep ends at once.
 */
export class OwnedTimers {
  readonly #timers: Timers;
  /** One-shot host handles, each until it fires or is cleared. */
  readonly #once = new Set<unknown>();
  /** Repeating timers by the handle given out, each with the host handle that runs it now (hosts without repeat re-arm). */
  readonly #repeating = new Map<unknown, unknown>();
  /** Sleeps in progress, by host handle, with the function that ends each early. */
  readonly #sleeps = new Map<unknown, () => void>();
  #closed = false;

  constructor(timers: Timers) {
    this.#timers = timers;
  }

  /** The host's millisecond clock. */
  now(): number {
    return this.#timers.now();
  }

  /** Timers held now: one-shots waiting, repeating timers, sleeps in progress. */
  get held(): number {
    return this.#once.size + this.#repeating.size + this.#sleeps.size;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Calls `fn` once after `ms`; the handle clears it. Undefined once closed (nothing is set). */
  set(fn: () => void, ms: number): unknown {
    if (this.#closed) return undefined;
    const handle = this.#timers.set(() => {
      this.#once.delete(handle);
      fn();
    }, ms);
    this.#once.add(handle);
    return handle;
  }

  /** Calls `fn` every `ms` with one handle for its whole life: the host's repeating timer where it has one. */
  repeat(fn: () => void, ms: number): unknown {
    if (this.#closed) return undefined;
    const timers = this.#timers;
    if (timers.repeat) {
      const handle = timers.repeat(fn, ms);
      this.#repeating.set(handle, handle);
      return handle;
    }
    // One token for the repeat's life; each tick re-arms the host timer under it (no handle kept per tick).
    const token = {};
    const tick = () => {
      if (!this.#repeating.has(token)) return;
      this.#repeating.set(token, timers.set(tick, ms));
      fn();
    };
    this.#repeating.set(token, timers.set(tick, ms));
    return token;
  }

  /** Clears a handle from set() or repeat(); an unknown, fired or undefined handle is ignored. */
  clear(handle: unknown): void {
    if (handle === undefined) return;
    if (this.#once.delete(handle)) {
      this.#timers.clear(handle);
      return;
    }
    const running = this.#repeating.get(handle);
    if (running === undefined) return;
    this.#repeating.delete(handle);
    this.#timers.clear(running);
  }

  /** Resolves after `ms`, or at once when close() comes first (or came already). */
  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      if (this.#closed) {
        resolve();
        return;
      }
      const handle = this.#timers.set(() => {
        this.#sleeps.delete(handle);
        resolve();
      }, ms);
      this.#sleeps.set(handle, resolve);
    });
  }

  /** The promise's value, or `otherwise` when it has not settled within `ms` (or close() comes first). */
  within<T>(promise: Promise<T>, ms: number, otherwise: T): Promise<T> {
    return new Promise((resolve, reject) => {
      if (this.#closed) {
        resolve(otherwise);
        return;
      }
      const handle = this.#timers.set(() => {
        this.#sleeps.delete(handle);
        resolve(otherwise);
      }, ms);
      this.#sleeps.set(handle, () => resolve(otherwise));
      promise.then((value) => {
        this.#end(handle);
        resolve(value);
      }, (error: unknown) => {
        this.#end(handle);
        reject(error);
      });
    });
  }

  /** Clears every timer and ends every sleep (and wait of within()); nothing new is set afterwards. */
  close(): void {
    this.#closed = true;
    for (const handle of this.#once) this.#timers.clear(handle);
    this.#once.clear();
    for (const running of this.#repeating.values()) this.#timers.clear(running);
    this.#repeating.clear();
    const wakes = [...this.#sleeps];
    this.#sleeps.clear();
    for (const [handle, wake] of wakes) {
      this.#timers.clear(handle);
      wake();
    }
  }

  #end(handle: unknown): void {
    if (!this.#sleeps.delete(handle)) return;
    this.#timers.clear(handle);
  }
}
