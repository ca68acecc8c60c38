/**
 * What every fault-injection test does around its fault: pay with a card through the rig's controller link, bring the
 * card back when the outcome is open, wait until the terminal has nothing open, then check the money rule and count.
 */
import type { VirtualCard } from "../../sim/cardsim/card";
import type { ControllerEvent } from "../../sim/simulation/controller-link";
import { FINAL_EVENTS, finalEventViolations, moneyViolations, openAuthorizations } from "./consistency";
import type { Rig } from "./rig";
import { Progress } from "../progress";

/** FAULTS=exhaustive runs every point the default mode samples. */
export const EXHAUSTIVE = process.env.FAULTS === "exhaustive";

/** The event-order violations each rig has reported already (the check reads the whole stream every time). */
const reportedEventViolations = new WeakMap<Rig, Set<string>>();

export class FaultTally {
  points = 0;
  readonly violations: string[] = [];
  readonly started = performance.now();

  /** Points done / expected, elapsed and time left on a TTY's stderr; silent in CI. */
  readonly progress: Progress;

  constructor(readonly name: string, expected = 0) {
    this.progress = new Progress(name, { total: expected });
  }

  readonly tried: string[] = [];

  /** More points to come (a suite that learns its points as it probes them). */
  expect(points: number): void {
    this.progress.expect(points);
  }

  add(point: string, violations: string[]): void {
    this.points++;
    this.tried.push(point);
    this.progress.tick(1, violations.length ? `${this.violations.length + violations.length} violation(s)` : undefined);
    if (process.env.FAULTS_VERBOSE) console.log(`        ${point}: ${violations.length ? violations.join("; ") : "ok"}`);
    for (const v of violations) this.violations.push(`${point}: ${v}`);
  }

  /** The line the suite prints for each kind of fault. */
  line(): string {
    this.progress.finish();
    return `${this.name}: fault points tried: ${this.points}, violations: ${this.violations.length} (${((performance.now() - this.started) / 1000).toFixed(1)} s${EXHAUSTIVE ? ", exhaustive" : ""})`;
  }
}

let orders = 0;
export function nextOrder(prefix = "F"): string {
  return `${prefix}-${process.pid % 10000}-${++orders}`;
}

/** Sends `pay` and waits for the payment's final event; undefined when the terminal process ended first. */
export async function payAndWait(rig: Rig, amount: number, order = nextOrder(), timeoutMs = 3000): Promise<ControllerEvent | undefined> {
  const link = rig.controller!;
  link.send({ type: "pay", amount, order, timeoutMs });
  const final = link.next((e) => e.order === order && FINAL_EVENTS.has(e.event), timeoutMs + 15_000);
  final.catch(() => undefined);
  const exited = rig.terminalExited().then(() => undefined);
  return Promise.race([final, exited]);
}

/** Polls `status` until the terminal is idle with nothing unresolved and no completion waiting. */
export async function untilSettled(rig: Rig, timeoutMs = 20_000): Promise<ControllerEvent> {
  const deadline = Date.now() + timeoutMs;
  let last: ControllerEvent | undefined;
  while (Date.now() < deadline) {
    if (!rig.terminalAlive) throw new Error("the terminal process ended");
    last = await rig.status();
    if (last.state === "idle" && last.unresolved === 0 && last.pendingCompletions === 0) return last;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`the terminal did not settle: ${JSON.stringify(last)}`);
}

/**
 * Brings a card whose purchase ended unknown back to the terminal until the outcome is resolved (the terminal is
 * still looking for it), as a customer tapping again does.
 */
export async function retapUntilResolved(rig: Rig, card: VirtualCard, order: string, timeoutMs = 10_000): Promise<ControllerEvent> {
  const link = rig.controller!;
  const resolved = link.next((e) => e.event === "resolved" && e.order === order, timeoutMs);
  let done = false;
  resolved.then(() => { done = true; }, () => { done = true; });
  const deadline = Date.now() + timeoutMs;
  // Only while the terminal that tore the purchase lives: a loop outliving it would tap the card on its successor.
  const terminal = rig.terminal;
  while (!done && Date.now() < deadline && rig.terminal === terminal && rig.terminalAlive) {
    rig.emulator!.remove(card);
    rig.emulator!.place(card);
    // A tear armed on a recovery APDU pulls the card again: wait for that, then tap once more.
    for (let i = 0; i < 50 && !done && card.present; i++) await new Promise((r) => setTimeout(r, 20));
  }
  return resolved;
}

/**
 * Waits for the `resolved` event of a purchase whose outcome was unknown, without tapping anything: for a card that
 * comes back by itself (a phone moved away and back, docs/phone-wallets.md).
 */
export async function untilResolved(rig: Rig, order: string, timeoutMs = 15_000): Promise<ControllerEvent> {
  return rig.controller!.next((e) => e.event === "resolved" && e.order === order, timeoutMs);
}

/**
 * After a fault: the terminal must settle, card, terminal journal and front-end journals must agree, and every order
 * the controller paid so far has had exactly one final event (finalEventViolations). An authorization whose DEBIT
 * never happened may stay open only until the front-end's reconciliation sweep marks it.
 */
export async function checkAfterFault(rig: Rig, card: VirtualCard, initialBalance: number, options: { reconciliationWaitMs?: number } = {}): Promise<string[]> {
  const violations: string[] = [];
  try {
    const status = await untilSettled(rig);
    const live = (status.journal as { liveRecords: number }).liveRecords;
    if (live !== 1) violations.push(`the terminal's journal still holds ${live} live records (only the routing table should be)`);
  } catch (error) {
    violations.push((error as Error).message);
  }
  const purchases = async () => [{ level: 1, rows: await rig.purchases(1) }, { level: 2, rows: await rig.purchases(2) }];
  const deadline = Date.now() + (options.reconciliationWaitMs ?? 0);
  while (openAuthorizations(card, await purchases()).length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  const held = await purchases();
  for (const r of openAuthorizations(card, held)) {
    violations.push(`authorization ${r.id} (EP serial ${r.ep_serial}) was neither voided nor marked for reconciliation`);
  }
  violations.push(...moneyViolations({ card, initialBalance, purchases: held }));
  // What the controller heard, across the suite so far: exactly one final event per order, no error mid-payment.
  const seen = reportedEventViolations.get(rig) ?? new Set<string>();
  reportedEventViolations.set(rig, seen);
  for (const v of finalEventViolations(rig.controller?.events ?? [])) {
    if (seen.has(v)) continue;
    seen.add(v);
    violations.push(v);
  }
  return violations;
}

/**
 * The first event at or after index `from` of the link's events that matches. It waits while the terminal lives: a
 * dead terminal ends the wait at once, and the deadline is only a backstop for a live one that never answers, so a
 * loaded machine that is merely slow still gets its event.
 */
export async function eventSince(rig: Rig, from: number, match: (e: ControllerEvent) => boolean, timeoutMs = 60_000): Promise<ControllerEvent | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const alive = rig.terminalAlive;
    const events = rig.controller!.events;
    for (let i = from; i < events.length; i++) if (match(events[i]!)) return events[i];
    if (!alive || Date.now() > deadline) return undefined;
    await new Promise((r) => setTimeout(r, 20));
  }
}
