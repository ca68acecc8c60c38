/**
 * What the emulator's layers (line, chip, field, ISO-DEP) share: the time model and the clock that runs it, the chip's
 * settings and registers, the injected faults, and the generation of the command in progress with its cancellable
 * sleeps. A new command frame or an ACK from the host cancels the running command by moving the generation on.
 */
import type { Timers } from "../../../modules/device/types";
import { Param } from "../../../modules/pn532/commands";
import { DEFAULT_TIMING, byteTimeFor, type EmulatorTiming, type Fault } from "./timing";

export interface EmulatorStats {
  frames: number;
  faults: number;
  acksSent: number;
  nacksReceived: number;
  aborts: number;
  responses: number;
  wakeUps: number;
  bytesIn: number;
  bytesOut: number;
}

/** Thrown out of a command's sleeps once the host has aborted it; the command then sends nothing. */
export class Cancelled extends Error {
  constructor() {
    super("command cancelled");
  }
}

export const DEFAULT_FLAGS = Param.AutomaticATR_RES | Param.AutomaticRATS;

export class EmulatorContext {
  timing: EmulatorTiming = { ...DEFAULT_TIMING };
  readonly stats: EmulatorStats = { frames: 0, faults: 0, acksSent: 0, nacksReceived: 0, aborts: 0, responses: 0, wakeUps: 0, bytesIn: 0, bytesOut: 0 };
  readonly log: ((line: string) => void) | undefined;
  /** CIU registers written by the host or set by activation and InPSL. */
  readonly registers = new Map<number, number>();
  /** SetParameters flags. */
  flags = DEFAULT_FLAGS;
  /** RFConfiguration MxRtyPassiveActivation; 0xFF waits for ever. */
  passiveRetries = 0xff;
  /** RFConfiguration VariousTimings TimeOut for non-DEP exchanges (InCommunicateThru). */
  nonDepTimeoutCode = 0x0a;
  /** Error code for GetGeneralStatus. */
  lastError = 0;
  /** A command is running: its answer has not been queued yet. */
  busy = false;
  #closed = false;
  #faults: (Fault & { left: number })[] = [];
  #generation = 0;
  /** A clock of the tests' (test/lib/virtual-clock.ts) instead of Node's timers and performance.now(). */
  readonly #clock: Timers | undefined;
  #timers = new Set<unknown>();
  #waiters = new Set<() => void>();

  constructor(timing: Partial<EmulatorTiming>, log: ((line: string) => void) | undefined, clock?: Timers) {
    this.setTiming(timing);
    this.log = log;
    this.#clock = clock;
  }

  get closed(): boolean {
    return this.#closed;
  }

  get generation(): number {
    return this.#generation;
  }

  /** Changes timing while running; a new baud rate without a byteTime recomputes the byte time. */
  setTiming(timing: Partial<EmulatorTiming>): void {
    const next = { ...this.timing, ...timing };
    if (timing.baud !== undefined && timing.byteTime === undefined) next.byteTime = byteTimeFor(timing.baud);
    this.timing = next;
  }

  // ---- faults ----

  injectFault(fault: Fault): void {
    this.#faults.push({ ...fault, left: fault.count ?? 1 });
  }

  clearFaults(): void {
    this.#faults = [];
  }

  get pendingFaults(): number {
    return this.#faults.length;
  }

  /** A fault of `kind` waits for command `code` and passes `test`, without using it up. */
  hasFault<K extends Fault["kind"]>(kind: K, code: number, test: (fault: Extract<Fault, { kind: K }>) => boolean): boolean {
    return this.#faults.some((f) => f.kind === kind && (f.command === undefined || f.command === code) && test(f as unknown as Extract<Fault, { kind: K }>));
  }

  takeFault<K extends Fault["kind"]>(kind: K, code: number): Extract<Fault, { kind: K }> | undefined {
    const i = this.#faults.findIndex((f) => f.kind === kind && (f.command === undefined || f.command === code));
    if (i < 0) return undefined;
    const fault = this.#faults[i]!;
    if (--fault.left <= 0) this.#faults.splice(i, 1);
    this.log?.(`fault ${kind} on command 0x${code.toString(16)}`);
    return fault as unknown as Extract<Fault, { kind: K }>;
  }

  // ---- the running command ----

  /** Ends the running command: its sleeps throw Cancelled, its answer is never sent. */
  cancel(): void {
    this.#generation++;
    this.busy = false;
    this.notify();
  }

  /** Cards moved or the command was cancelled: wakes every waitForChange(). */
  notify(): void {
    const waiters = [...this.#waiters];
    this.#waiters.clear();
    for (const w of waiters) w();
  }

  check(generation: number): void {
    if (generation !== this.#generation || this.#closed) throw new Cancelled();
  }

  /** Sleeps `ms`, then throws Cancelled if the command was aborted meanwhile. */
  async sleep(generation: number, ms: number): Promise<void> {
    if (ms > 0) await new Promise<void>((resolve) => this.later(resolve, ms));
    this.check(generation);
  }

  /** Waits until cards move or the command is cancelled, at most `ms`. */
  async waitForChange(generation: number, ms = 2 ** 31 - 1): Promise<void> {
    await new Promise<void>((resolve) => {
      const done = () => {
        this.#clear(timer);
        this.#waiters.delete(done);
        resolve();
      };
      const timer = this.#set(done, Math.min(ms, 2 ** 31 - 1));
      this.#waiters.add(done);
    });
    this.check(generation);
  }

  // ---- the clock ----

  now(): number {
    return this.#clock ? this.#clock.now() : performance.now();
  }

  /** A timer kept until it fires or close() clears it. */
  #set(fn: () => void, ms: number): unknown {
    const timer: unknown = this.#clock
      ? this.#clock.set(() => {
        this.#timers.delete(timer);
        fn();
      }, ms)
      : setTimeout(() => {
        this.#timers.delete(timer);
        fn();
      }, ms);
    this.#timers.add(timer);
    return timer;
  }

  #clear(timer: unknown): void {
    if (this.#clock) this.#clock.clear(timer);
    else clearTimeout(timer as ReturnType<typeof setTimeout>);
    this.#timers.delete(timer);
  }

  /**
   * Runs `fn` no earlier than `ms` from now, always asynchronously. Node's timers count from the start of the current
   * loop turn and drop fractions of a millisecond, so they can fire early: the last stretch is finished with
   * setImmediate, which keeps modelled wire and card times a true lower bound. A virtual clock fires on time exactly.
   */
  later(fn: () => void, ms: number): void {
    if (this.#closed) return;
    if (this.#clock) {
      this.#set(() => {
        if (!this.#closed) fn();
      }, Math.max(0, ms));
      return;
    }
    const due = performance.now() + Math.max(0, ms);
    const tick = () => {
      if (this.#closed) return;
      const left = due - performance.now();
      if (left <= 0) fn();
      else if (left > 2) {
        this.#set(tick, Math.floor(left - 1));
      } else setImmediate(tick);
    };
    setImmediate(tick);
  }

  /** Cancels the running command and every timer; nothing runs after this. */
  close(): void {
    this.#closed = true;
    this.cancel();
    for (const t of [...this.#timers]) this.#clear(t);
  }
}
