/**
 * Password checks on threads of their own (worker_threads), never on libuv's thread pool: that pool runs the TLS and
 * crypto work of terminal requests and the journal's fsyncs, and a flood of scrypt calls there queued every terminal
 * request behind it (issue 23: purchase p50 went from 109 ms to 671 ms). Here a flood waits in a bounded queue of its
 * own, and the thread runs at a lower scheduling priority (PASSWORD_NICE), so it gets the CPU the terminals leave.
 */
import { Worker } from "node:worker_threads";
import { CodedError } from "../../../modules/errors/errors";

export class PasswordPoolBusyError extends CodedError {
  constructor(message: string) {
    super("LOGIN_BUSY", message);
  }
}

interface Job {
  password: string;
  salt: Buffer;
  hash: Buffer;
  n: number;
  r: number;
  p: number;
  maxmem: number;
  resolve: (ok: boolean) => void;
  reject: (e: Error) => void;
}

// The worker's whole program: scryptSync on its own thread, a constant-time compare, one answer per job.
const WORKER = `
const { parentPort, workerData } = require("node:worker_threads");
const { scryptSync, timingSafeEqual } = require("node:crypto");
// Linux schedules threads on their own: this one gives way to the terminals' threads when the CPU is short
// (setpriority on a thread ID renices that thread only). Elsewhere, or without /proc, it keeps the process's priority.
try {
  const tid = Number(require("node:fs").readlinkSync("/proc/thread-self").split("/").pop());
  require("node:os").setPriority(tid, workerData.nice);
} catch {}
parentPort.on("message", (j) => {
  try {
    const candidate = scryptSync(j.password, Buffer.from(j.salt), j.hash.length, { N: j.n, r: j.r, p: j.p, maxmem: j.maxmem });
    parentPort.postMessage({ ok: timingSafeEqual(candidate, Buffer.from(j.hash)) });
  } catch (e) {
    parentPort.postMessage({ error: String(e && e.message || e) });
  }
});`;

/**
 * The password threads' nice value: a login then takes longer on a busy machine (scrypt gets about a tenth of what a
 * terminal's thread gets while both want the CPU), and the terminals keep their share.
 */
export const PASSWORD_NICE = 10;

interface Slot {
  worker: Worker;
  job: Job | null;
}

export class PasswordPool {
  readonly #slots: Slot[] = [];
  readonly #queue: Job[] = [];
  readonly #maxQueue: number;
  #closed = false;

  /** `threads` checks run at once; at most `maxQueue` more wait (the rest are refused as busy). */
  constructor(threads = 1, maxQueue = 32) {
    this.#maxQueue = maxQueue;
    for (let i = 0; i < threads; i++) this.#slots.push(this.#spawn());
  }

  #spawn(): Slot {
    const worker = new Worker(WORKER, { eval: true, name: "operator-password-check", workerData: { nice: PASSWORD_NICE } });
    const slot: Slot = { worker, job: null };
    worker.on("message", (m: { ok?: boolean; error?: string }) => {
      const job = slot.job;
      slot.job = null;
      if (job) {
        if (m.error !== undefined) job.reject(new Error(m.error));
        else job.resolve(m.ok === true);
      }
      this.#next(slot);
    });
    worker.on("error", (e) => {
      // A thread that died takes its job with it; a new one takes its place.
      slot.job?.reject(e);
      slot.job = null;
      const i = this.#slots.indexOf(slot);
      if (i >= 0 && !this.#closed) {
        this.#slots[i] = this.#spawn();
        this.#next(this.#slots[i]!);
      }
    });
    // An idle pool does not keep the process alive.
    worker.unref();
    return slot;
  }

  #next(slot: Slot): void {
    const job = this.#queue.shift();
    if (!job) {
      slot.worker.unref();
      return;
    }
    slot.job = job;
    slot.worker.ref();
    slot.worker.postMessage({ password: job.password, salt: job.salt, hash: job.hash, n: job.n, r: job.r, p: job.p, maxmem: job.maxmem });
  }

  get waiting(): number {
    return this.#queue.length;
  }

  verify(password: string, h: { n: number; r: number; p: number; salt: Buffer; hash: Buffer }, maxmem: number): Promise<boolean> {
    if (this.#closed) return Promise.reject(new PasswordPoolBusyError("the password checker is closed"));
    if (this.#queue.length >= this.#maxQueue) return Promise.reject(new PasswordPoolBusyError("too many password checks waiting"));
    return new Promise((resolve, reject) => {
      this.#queue.push({ password, salt: h.salt, hash: h.hash, n: h.n, r: h.r, p: h.p, maxmem, resolve, reject });
      const idle = this.#slots.find((s) => s.job === null);
      if (idle) this.#next(idle);
    });
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const job of this.#queue.splice(0)) job.reject(new PasswordPoolBusyError("the password checker is closed"));
    await Promise.all(this.#slots.map((s) => s.worker.terminate()));
  }
}
