/**
 * The Node side of the XS purchase: bundles hosts/xs/entry.ts (the terminal, src/ + modules/, with a device
 * that forwards to its parent) for XS, runs it in an xsnap worker (through hosts/xs/worker.mjs, the SES
 * process xsnap needs), and connects what it forwards to the real things: its PN532 line and controller port to
 * the simulation's lines (the PN532 emulator and the vending controller's link), its HTTPS exchanges to the
 * front-ends over mutual TLS with the terminal's client certificate. Time inside XS is this process's clock: the
 * worker is ticked when bytes or answers arrive and when its next timer is due.
 */
import { build } from "esbuild";
import { fork, type ChildProcess } from "node:child_process";
import { mkdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { NetworkError, type HttpResponse, type HttpsConnection, type SerialPort, type SerialSpec } from "../../modules/device/types";
import { fromHex, toHex } from "../../modules/bytes/bytes";
import type { TerminalConfig } from "../../src/terminal";
import { NodeHttpsConnector, type NodeHttpsOptions } from "../node/https";
import { NodeSerial } from "../node/serial";
import type { Incoming, Outgoing } from "./device";

/** Real ms a serial line must have been still before the system counts as idle (INSTANT_TIMING answers in < 1 ms). */
const QUIET_MS = 20;
/** A worker timer due within this many ms (a card poll, a line timeout) belongs to work under way, not to idleness. */
const DUE_SOON_MS = 200;

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

export interface XsMeter {
  /** XS's deterministic count of work (bytecode steps and the like) for one delivery, summed over deliveries. */
  compute: number;
  /** Slots in use at the end of a delivery (before any collection): 16 bytes each on the ESP32's 32-bit XS. */
  currentHeapCount: number;
  /** Bytes XS has taken from the system for its chunk and slot heaps (64-bit host). */
  allocate: number;
}

interface WorkerAnswer {
  id: number;
  ok: boolean;
  error?: string;
  meter?: XsMeter;
  outputs?: Outgoing[];
  /** The snapshot command's answer: the heap snapshot's size. */
  bytes?: number;
}

export interface XsTerminalHostOptions {
  lines: { pn532: SerialSpec; controller: SerialSpec };
  tls: NodeHttpsOptions;
  config: TerminalConfig;
  journalSize?: number;
  /** The journal's flash to start from (`journal` of a host that lost power): a restart on the same device. */
  journal?: Uint8Array;
  /** Indicator pins (an RGB LED and a buzzer) whose writes are recorded in `pins`. */
  indicator?: { red: number; green: number; blue: number; buzzer: number };
  trace?: (line: string) => void;
  /**
   * Virtual time: the worker's clock (and the wall clock it is given) runs at real speed while something happens,
   * and advanceIdle() jumps it over idle stretches, so timers with periods of seconds to hours fire at those periods
   * over simulated days in seconds of real time.
   */
  virtualTime?: boolean;
}

/** Bundles the XS side once per process: esbuild, iife, platform neutral, so a Node import fails the build. */
let bundled: Promise<string> | undefined;
export function bundleXsTerminal(): Promise<string> {
  bundled ??= (async () => {
    const out = path.join(root, "build", "xs-purchase");
    mkdirSync(out, { recursive: true });
    const outfile = path.join(out, "terminal.js");
    await build({
      entryPoints: [path.join(root, "hosts/xs/entry.ts")], outfile, bundle: true, format: "iife", platform: "neutral",
      target: "es2022", logLevel: "silent", mainFields: ["module", "main"],
    });
    return outfile;
  })();
  return bundled;
}

export class XsTerminalHost {
  /**
   * Run XS's collector at the end of every tick, so `meter.maxHeapCount` is the most slots ever live between turns
   * rather than live + garbage not yet collected.
   */
  collectEachTick = false;
  /** HTTPS exchanges the worker started, by "METHOD path" (and "warm" for a connection opened ahead of a tap). */
  readonly exchanges = new Map<string, number>();
  /** Slots live once the bundle's modules are loaded, before the terminal starts. */
  loadedSlots = 0;
  /** Totals since the last resetMeter(). */
  readonly meter = { compute: 0, deliveries: 0, maxHeapCount: 0, allocate: 0 };
  /** Writes to the indicator's pins, in order: [ms since start, pin, value]. */
  readonly pins: [number, number, number][] = [];
  readonly #options: XsTerminalHostOptions;
  readonly #child: ChildProcess;
  readonly #answers = new Map<number, { resolve: (a: WorkerAnswer) => void; reject: (e: Error) => void }>();
  readonly #connections = new Map<string, HttpsConnection>();
  readonly #connector: NodeHttpsConnector;
  readonly #t0 = performance.now();
  /** Virtual ms added to real elapsed time by advanceIdle(). */
  #skipped = 0;
  /** HTTPS exchanges (requests and warm-ups) started by the worker and not yet answered to it. */
  #inFlight = 0;
  /** When a serial byte last went either way (real ms): a line that moved lately may still have an answer coming. */
  #serialAt = 0;
  #ports: { [name: string]: SerialPort } = {};
  #lastId = 0;
  #inputs: Incoming[] = [];
  #nextAt: number | null = null;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #busy = false;
  #closed = false;
  #ready: { resolve: () => void; reject: (e: Error) => void } | undefined;
  #failure: Error | undefined;
  /** The worker's journal flash as its writes landed; it outlives the worker. */
  readonly #flash: Uint8Array;
  #poweredOff = false;
  #powerCut: (() => void) | undefined;
  /** Resolves when a power cut armed by cutPowerAtWrite() has happened (the worker is gone). */
  readonly poweredOff: Promise<void>;

  private constructor(options: XsTerminalHostOptions) {
    this.#options = options;
    const size = options.journalSize ?? 64 * 1024;
    this.#flash = options.journal ? options.journal.slice() : new Uint8Array(size).fill(0xff);
    this.poweredOff = new Promise<void>((resolve) => (this.#powerCut = resolve));
    this.#connector = new NodeHttpsConnector(options.tls);
    this.#child = fork(path.join(root, "hosts/xs/worker.mjs"), [], { stdio: ["ignore", "inherit", "inherit", "ipc"], execArgv: [] });
    this.#child.on("message", (answer: WorkerAnswer) => {
      const waiter = this.#answers.get(answer.id);
      this.#answers.delete(answer.id);
      if (answer.ok) waiter?.resolve(answer);
      else waiter?.reject(new Error(`XS worker: ${answer.error}`));
    });
    this.#child.on("exit", (code) => {
      const error = new Error(`XS worker exited (${code})`);
      for (const w of this.#answers.values()) w.reject(error);
      this.#answers.clear();
      if (!this.#closed) this.#fail(error);
    });
  }

  /** Loads the terminal into a fresh XS worker and starts it; resolves when it has reported `ready`. */
  static async start(options: XsTerminalHostOptions): Promise<XsTerminalHost> {
    const bundle = await bundleXsTerminal();
    const host = new XsTerminalHost(options);
    try {
      await host.#start(bundle);
    } catch (error) {
      await host.close();
      throw error;
    }
    return host;
  }

  async #start(bundle: string): Promise<void> {
    for (const name of ["pn532", "controller"] as const) {
      const spec = this.#options.lines[name];
      const host = this;
      const port = new spec.io({
        baud: 115200, ...spec, format: "buffer",
        onReadable(this: SerialPort) {
          for (let chunk = this.read(); chunk; chunk = this.read()) host.#input({ k: "serial", port: name, hex: toHex(new Uint8Array(chunk)) });
        },
      });
      this.#ports[name] = port;
      if (port instanceof NodeSerial) await port.opened;
    }
    this.#handle(await this.#rpc({ t: "load", bundle }));
    // What the loaded modules alone keep live: on the ESP32 these are preloaded into flash and cost no RAM.
    this.loadedSlots = (await this.collect()).currentHeapCount;
    const ready = new Promise<void>((resolve, reject) => (this.#ready = { resolve, reject }));
    this.#handle(await this.#rpc({
      t: "cmd", body: {
        t: "start", now: this.now(), wall: this.wall(), config: this.#options.config, journalSize: this.#flash.length,
        journal: this.#options.journal ? toHex(this.#flash) : undefined, trace: !!this.#options.trace, indicator: this.#options.indicator,
      },
    }));
    this.#schedule();
    await ready;
  }

  /** Milliseconds on the clock the worker's timers run on. */
  now(): number {
    return performance.now() - this.#t0 + this.#skipped;
  }

  /** The wall clock the worker is given (ms since 1970): real, plus what advanceIdle() skipped. */
  wall(): number {
    return Date.now() + this.#skipped;
  }

  /** True when nothing is under way: no input queued, no tick running, no HTTPS exchange open, no recent serial byte. */
  get idle(): boolean {
    return !this.#busy && this.#inputs.length === 0 && this.#inFlight === 0 && performance.now() - this.#serialAt >= QUIET_MS;
  }

  /**
   * Virtual time only: moves the clock `ms` ahead, firing every worker timer due in that span at its own time. Before
   * each jump it waits until the system is idle, so what a timer starts (an HTTPS exchange, a purchase's retry)
   * finishes at real speed before time jumps on. Bounded: throws if the system does not go idle in `settleMs`.
   */
  async advanceIdle(ms: number, settleMs = 30_000): Promise<void> {
    if (!this.#options.virtualTime) throw new Error("advanceIdle needs virtualTime");
    const target = this.now() + ms;
    for (;;) {
      await this.settle(settleMs);
      const next = this.#nextAt;
      if (next === null || next > target) break;
      // Jump to the timer and let it run (settle waits for its tick and whatever that starts).
      this.#jump(next - this.now());
    }
    this.#jump(target - this.now());
    await this.settle(settleMs);
    // Tell the worker the new time even if no timer is due, so its clock reads what the parent's does.
    await this.#tickNow();
  }

  /** Moves the virtual clock ahead and re-arms the tick for the worker's next timer on the new time. */
  #jump(ms: number): void {
    if (ms > 0) this.#skipped += ms;
    this.#schedule();
  }

  /** A tick now, in place of the one #schedule() set for later. */
  #tickNow(): Promise<void> {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    return this.#tick();
  }

  /** Resolves once the system is idle (see `idle`); rejects after `ms` of real time. */
  async settle(ms = 30_000): Promise<void> {
    if (this.#failure) throw this.#failure;
    if (this.idle && !this.#dueSoon()) return;
    const deadline = performance.now() + ms;
    while (!this.idle || this.#dueSoon()) {
      if (this.#failure) throw this.#failure;
      if (this.#closed) throw new Error("XS host closed");
      if (performance.now() > deadline) throw new Error(`XS host not idle after ${ms} ms (inputs ${this.#inputs.length}, exchanges ${this.#inFlight}, `
        + `busy ${this.#busy}, serial ${Math.round(performance.now() - this.#serialAt)} ms ago, next timer in ${this.#nextAt === null ? "-" : Math.round(this.#nextAt - this.now())} ms)`);
      await new Promise((r) => setTimeout(r, 1));
    }
  }

  /** A worker timer due within the quiet period belongs to what is under way (a poll, a retry): let it run first. */
  #dueSoon(): boolean {
    return this.#nextAt !== null && this.#nextAt - this.now() < DUE_SOON_MS;
  }

  /**
   * Bytes of an XS heap snapshot taken after a collection: slots and chunks (array and string storage, which the
   * slot count does not see) in use, plus the snapshot's fixed overhead. What grows in it is what the terminal keeps.
   */
  async snapshotBytes(): Promise<number> {
    await this.collect();
    const answer = await this.#rpc({ t: "snapshot" });
    return answer.bytes ?? 0;
  }

  /**
   * Arms a power cut just before the terminal's n-th journal write (or erase) from now: that write lands nothing, the
   * worker is killed, and nothing it does after it reaches the lines or the network. `journal` is then what a
   * restarted device finds in its flash.
   */
  async cutPowerAtWrite(n: number): Promise<void> {
    await this.#rpc({ t: "cmd", body: { t: "cut-power", atWrite: n } });
  }

  /** The journal's flash now (a copy). */
  get journal(): Uint8Array {
    return this.#flash.slice();
  }

  resetMeter(): void {
    Object.assign(this.meter, { compute: 0, deliveries: 0, maxHeapCount: 0, allocate: 0 });
  }

  /** Runs XS's garbage collector and answers the slots still in use: the terminal's live heap. */
  async collect(): Promise<XsMeter> {
    const answer = await this.#rpc({ t: "cmd", body: { t: "gc" } });
    return answer.meter!;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    for (const p of Object.values(this.#ports)) p.close();
    for (const c of this.#connections.values()) c.close();
    if (this.#child.connected) {
      await Promise.race([this.#rpc({ t: "close" }).catch(() => undefined), new Promise((r) => setTimeout(r, 2000))]);
    }
    this.#child.kill();
  }

  #rpc(message: object): Promise<WorkerAnswer> {
    const id = ++this.#lastId;
    return new Promise((resolve, reject) => {
      this.#answers.set(id, { resolve, reject });
      this.#child.send({ ...message, id });
    });
  }

  #fail(error: Error): void {
    this.#failure ??= error;
    this.#ready?.reject(error);
    this.#options.trace?.(`XS host: ${error.message}`);
  }

  /** The first fault of the worker, if any (a crash inside XS, a bundle that would not run). */
  get failure(): Error | undefined {
    return this.#failure;
  }

  #input(message: Incoming): void {
    if (this.#closed) return;
    if (message.k === "serial") this.#serialAt = performance.now();
    this.#inputs.push(message);
    this.#schedule();
  }

  #schedule(): void {
    if (this.#closed || this.#busy) return;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#inputs.length) {
      this.#timer = setTimeout(() => void this.#tick(), 0);
    } else if (this.#nextAt !== null) {
      this.#timer = setTimeout(() => void this.#tick(), Math.max(0, Math.ceil(this.#nextAt - this.now())));
    }
  }

  async #tick(): Promise<void> {
    this.#timer = undefined;
    if (this.#closed || this.#busy) return;
    this.#busy = true;
    const inputs = this.#inputs.splice(0);
    try {
      this.#handle(await this.#rpc({ t: "cmd", body: { t: "tick", now: this.now(), wall: this.wall(), inputs, gc: this.collectEachTick } }));
    } catch (error) {
      this.#fail(error as Error);
      return;
    } finally {
      this.#busy = false;
    }
    this.#schedule();
  }

  #handle(answer: WorkerAnswer): void {
    const m = answer.meter;
    if (m) {
      this.meter.compute += m.compute ?? 0;
      this.meter.deliveries++;
      this.meter.maxHeapCount = Math.max(this.meter.maxHeapCount, m.currentHeapCount ?? 0);
      this.meter.allocate = Math.max(this.meter.allocate, m.allocate ?? 0);
    }
    for (const out of answer.outputs ?? []) {
      // After a power cut the worker is dead to the world: whatever it did after the cut went nowhere.
      if (this.#poweredOff) return;
      this.#output(out);
    }
  }

  #output(out: Outgoing): void {
    switch (out.k) {
      case "serial":
        this.#serialAt = performance.now();
        try {
          this.#ports[out.port]?.write(fromHex(out.hex));
        } catch (error) {
          this.#options.trace?.(`XS host: ${out.port} write failed: ${(error as Error).message}`);
        }
        return;
      case "http":
      case "warm": {
        const key = out.k === "warm" ? "warm" : `${out.method} ${out.path}`;
        this.exchanges.set(key, (this.exchanges.get(key) ?? 0) + 1);
        const connection = this.#connection(out.origin);
        const exchange = out.k === "warm"
          ? connection.warm(out.timeout).then((): HttpResponse => ({ status: 200, body: new Uint8Array(0) }))
          : connection.request({ method: out.method as "GET" | "POST", path: out.path, body: out.hex ? fromHex(out.hex) : undefined, timeout: out.timeout });
        this.#inFlight++;
        void exchange.finally(() => this.#inFlight--).catch(() => undefined);
        exchange.then(
          (r) => this.#input({ k: "http", id: out.id, status: r.status, hex: toHex(r.body), ...(r.date ? { date: r.date } : {}), handshakes: connection.handshakes, connected: connection.connected }),
          (e: Error) => this.#input({ k: "http", id: out.id, error: e instanceof NetworkError ? e.message : `${e.name}: ${e.message}`,
            handshakes: connection.handshakes, connected: connection.connected }),
        );
        return;
      }
      case "close":
        this.#connections.get(out.origin)?.close();
        this.#connections.delete(out.origin);
        return;
      case "next":
        this.#nextAt = out.at;
        return;
      case "digital":
        this.pins.push([Math.round(this.now()), out.pin, out.value]);
        return;
      case "trace":
        this.#options.trace?.(out.line);
        return;
      case "ready":
        this.#ready?.resolve();
        return;
      case "fatal":
        this.#fail(new Error(`terminal inside XS failed to start: ${out.message}`));
        return;
      case "flash":
        this.#flash.set(fromHex(out.hex).map((b, i) => b & this.#flash[out.offset + i]!), out.offset);
        return;
      case "flash-erase":
        this.#flash.fill(0xff, out.offset, out.offset + out.length);
        return;
      case "power-cut":
        this.#poweredOff = true;
        void this.close().then(() => this.#powerCut?.());
        return;
    }
  }

  #connection(origin: string): HttpsConnection {
    let c = this.#connections.get(origin);
    if (!c) {
      c = this.#connector.connect(origin);
      this.#connections.set(origin, c);
    }
    return c;
  }
}
