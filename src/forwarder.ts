import type { Timers } from "../modules/device/types";
import { FrontendDeclineError, type CompletionAnswer, type FrontendClient } from "../modules/frontend-client/client";
import type { OutcomeRecord } from "./records";

/**
 * Store-and-forward of completions: outcomes already in the journal go to their front-end one at a time, oldest
 * first, retried with backoff until acknowledged, across restarts (the owner requeues what the journal recovered).
 */

export interface ForwarderOptions<R extends { url: string; purchaseId: string } = OutcomeRecord, A = CompletionAnswer> {
  client: FrontendClient;
  /** How one record is delivered (default: a purchase completion); a refund's outcome has its own call. */
  deliver?: (record: R) => Promise<A>;
  timers: Timers;
  /** Called once a completion is acknowledged (or finally refused); the owner retires the record then. */
  onDone: (seq: number, record: R, answer: A | undefined, error?: Error) => void;
  firstRetryMs?: number;
  maxRetryMs?: number;
}

interface Item<R, A> {
  seq: number;
  record: R;
  waiters: ((answer: A | undefined) => void)[];
}

export class CompletionForwarder<R extends { url: string; purchaseId: string } = OutcomeRecord, A = CompletionAnswer> {
  readonly #options: ForwarderOptions<R, A>;
  readonly #queue: Item<R, A>[] = [];
  #busy = false;
  #timer: unknown;
  #delay: number;
  #closed = false;
  /** Delivery attempts that failed and were retried. */
  retries = 0;

  constructor(options: ForwarderOptions<R, A>) {
    this.#options = options;
    this.#delay = options.firstRetryMs ?? 200;
  }

  get pending(): number {
    return this.#queue.length;
  }

  /** Queues a journaled outcome; the promise settles when the front-end has acknowledged it (strict mode waits). */
  enqueue(seq: number, record: R): Promise<A | undefined> {
    if (this.#closed) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      const known = this.#queue.find((i) => i.seq === seq);
      if (known) known.waiters.push(resolve);
      else this.#queue.push({ seq, record, waiters: [resolve] });
      this.#pump();
    });
  }

  /** Tries now instead of waiting out the backoff (the network came back, say). */
  kick(): void {
    if (this.#timer !== undefined) {
      this.#options.timers.clear(this.#timer);
      this.#timer = undefined;
    }
    this.#delay = this.#options.firstRetryMs ?? 200;
    this.#pump();
  }

  /** Timers held now: the backoff before the next attempt, if one is waiting. */
  get timersHeld(): number {
    return this.#timer === undefined ? 0 : 1;
  }

  /**
   * Stops delivering. Waiters are told "not acknowledged" (undefined) at once, so nothing is left pending; the
   * records stay in the journal and the next start delivers them.
   */
  close(): void {
    this.#closed = true;
    if (this.#timer !== undefined) this.#options.timers.clear(this.#timer);
    this.#timer = undefined;
    for (const item of this.#queue) for (const w of item.waiters.splice(0)) w(undefined);
  }

  #pump(): void {
    if (this.#busy || this.#closed || this.#timer !== undefined || !this.#queue.length) return;
    const item = this.#queue[0]!;
    this.#busy = true;
    const sent = this.#options.deliver ? this.#options.deliver(item.record)
      : (this.#options.client.complete(item.record.url, item.record.purchaseId, (item.record as unknown as OutcomeRecord).completion) as Promise<unknown> as Promise<A>);
    sent.then(
      (answer) => this.#finish(item, answer),
      (error: Error) => {
        if (error instanceof FrontendDeclineError) {
          // The front-end will never take this completion (unknown purchase, conflicting outcome): retrying
          // cannot help, so it goes to the owner as an error to report instead of blocking the queue for ever.
          this.#finish(item, undefined, error);
          return;
        }
        this.#busy = false;
        if (this.#closed) return;
        this.retries++;
        const max = this.#options.maxRetryMs ?? 30_000;
        this.#timer = this.#options.timers.set(() => {
          this.#timer = undefined;
          this.#pump();
        }, this.#delay);
        this.#delay = Math.min(this.#delay * 2, max);
      },
    );
  }

  #finish(item: Item<R, A>, answer: A | undefined, error?: Error): void {
    if (this.#closed) return;
    this.#queue.shift();
    this.#busy = false;
    this.#delay = this.#options.firstRetryMs ?? 200;
    this.#options.onDone(item.seq, item.record, answer, error);
    for (const w of item.waiters) w(answer);
    this.#pump();
  }
}
