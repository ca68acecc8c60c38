import type { Recovery } from "./recovery";
import type { TerminalCore } from "./terminal-core";

/**
 * Settlement on any tap. A purchase torn after DEBIT (or a terminal that lost power there) and a refund torn during
 * CREDIT FOR LOAD are settled by the card's counters, so the card has to come back. A customer who comes back to
 * complain taps it at an idle machine: while the journal holds anything only a card can settle, the idle terminal
 * looks for a card now and then, and a card it finds settles what it owes here (the controller hears `resolved`, or
 * `refund` with a `settled-*` result).
 *
 * The look is cheap: one InListPassiveTarget of bounded retries every `idlePollMs` (the same bounded poll a payment's
 * wait makes every `detectIntervalMs`, at a far lower rate), nothing kept per look, and no look at all while nothing
 * is owed. A card that stays in the field after it was settled is not read again until it has been seen gone. A
 * payment, a card read or a refund takes the reader from it: stop() ends the pause at once and waits for a settle
 * under way, which is a few APDUs.
 */
export class IdleSettle {
  readonly #c: TerminalCore;
  readonly #recovery: Recovery;
  /** The poll loop while it runs. */
  #running: Promise<void> | undefined;
  /** Resolved by stop(): ends the pause between looks. */
  #stopped: Promise<void> | undefined;
  #stop: (() => void) | undefined;
  /** The card settled last is still in the field (a look found a card each time since). */
  #settledInField = false;

  constructor(core: TerminalCore, recovery: Recovery) {
    this.#c = core;
    this.#recovery = recovery;
  }

  /** Whether the poll runs now. */
  get running(): boolean {
    return this.#running !== undefined;
  }

  /** Starts looking for cards, if the terminal is idle and the journal holds something a card can settle. */
  start(): void {
    if (this.#running || !this.#wanted()) return;
    this.#stopped = new Promise<void>((resolve) => (this.#stop = resolve));
    const run = this.#loop();
    this.#running = run;
    void run.then(() => {
      if (this.#running === run) this.#running = undefined;
    });
  }

  /** Stops looking; resolves once the reader is free of the poll (a settle under way finishes first). */
  stop(): Promise<void> {
    const running = this.#running;
    if (!running) return Promise.resolve();
    this.#stop?.();
    return running;
  }

  #wanted(): boolean {
    const c = this.#c;
    return c.state === "idle" && (c.unresolved.size > 0 || c.refunds.pending > 0);
  }

  async #loop(): Promise<void> {
    const c = this.#c;
    const stopped = this.#stopped!;
    let stopping = false;
    void stopped.then(() => (stopping = true));
    while (!stopping && this.#wanted()) {
      // The pause first: a controller that asks again right after an answer never meets a look in progress.
      await c.timers.within(stopped, c.config.idlePollMs, undefined);
      if (stopping || !this.#wanted()) break;
      await c.releasing;
      if (stopping) break;
      let found = false;
      try {
        await c.o.reader.detect({ timeout: 0 });
        found = true;
      } catch {
        // No card (the usual answer), or a reader fault: a payment reports those; the next look tries again.
      }
      if (!found) {
        this.#settledInField = false;
        continue;
      }
      try {
        if (stopping || this.#settledInField) continue;
        const purse = c.purse({ apdus: 0, apduBytes: 0 });
        await this.#recovery.settleCard(purse, await c.readForRecovery(purse));
        this.#settledInField = true;
      } catch {
        // Pulled mid-read, or a card with no purse: what it owes waits for its next tap.
      } finally {
        await c.o.reader.release();
      }
    }
  }
}
