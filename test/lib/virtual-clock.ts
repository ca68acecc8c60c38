// A virtual clock implementing the device `Timers` shape, for driver tests that run the same under mocha and inside XS
// (which has no setTimeout): time moves only when a test says so, and every promise job runs between timer callbacks.
import { TimerQueue } from "../../hosts/xs/timer-queue";

export async function settle(turns = 64): Promise<void> {
  for (let i = 0; i < turns; i++) await Promise.resolve();
}

export class VirtualClock extends TimerQueue {
  /**
   * The host stalls for `ms`: time moves on but no timer fires. The next advance() fires everything overdue, in due
   * order and late, as a host's event loop does once it runs again.
   */
  stall(ms: number): void {
    this.moveTo(this.now() + ms);
  }

  /** Moves time forward by `ms`, firing due timers in order and letting promise jobs settle after each. */
  async advance(ms: number): Promise<void> {
    const end = this.now() + ms;
    await settle();
    for (let due = this.takeDue(end); due; due = this.takeDue(end)) {
      this.moveTo(due.at);
      due.callback();
      await settle();
    }
    this.moveTo(end);
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
    const start = this.now();
    await settle();
    while (!done) {
      const at = this.nextAt;
      if (at === null) throw new Error("hang: the promise is pending and no timer is left to settle it");
      if (at - start > limit) throw new Error(`hang: still pending after ${limit} ms of virtual time`);
      await this.advance(Math.max(0, at - this.now()));
    }
    return watched;
  }
}
