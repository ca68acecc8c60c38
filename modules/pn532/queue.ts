/**
 * The driver's command queue and its timer sleeps: one job on the wire at a time, in the order asked. abort() and
 * close() cancel both at once, and bump the generation so a loop between jobs (detect) sees it was cancelled.
 */
import type { Timers } from "../device/types";

interface Job {
  run: () => Promise<unknown>;
  resolve: (value: any) => void;
  reject: (error: Error) => void;
}

export class CommandQueue {
  readonly #timers: Timers;
  #jobs: Job[] = [];
  #draining = false;
  #waits = new Set<{ handle: unknown; reject: (error: Error) => void }>();
  #generation = 0;

  constructor(timers: Timers) {
    this.#timers = timers;
  }

  /** Counts cancellations: a loop that saw it change knows it was aborted. */
  get generation(): number {
    return this.#generation;
  }

  /** Rejects every queued job and every sleep with an error from `make`. */
  cancel(make: () => Error): void {
    this.#generation++;
    const queued = this.#jobs;
    this.#jobs = [];
    for (const job of queued) job.reject(make());
    for (const wait of this.#waits) {
      this.#timers.clear(wait.handle);
      wait.reject(make());
    }
    this.#waits.clear();
  }

  sleep(ms: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const wait = {
        handle: undefined as unknown,
        reject,
      };
      wait.handle = this.#timers.set(() => {
        this.#waits.delete(wait);
        resolve();
      }, ms);
      this.#waits.add(wait);
    });
  }

  /** Runs `run` after every job queued before it. */
  enqueue<T>(run: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#jobs.push({ run, resolve, reject });
      this.#drain();
    });
  }

  async #drain(): Promise<void> {
    if (this.#draining) return;
    this.#draining = true;
    try {
      for (let job = this.#jobs.shift(); job; job = this.#jobs.shift()) {
        try {
          job.resolve(await job.run());
        } catch (error) {
          job.reject(error as Error);
        }
      }
    } finally {
      this.#draining = false;
    }
  }
}
