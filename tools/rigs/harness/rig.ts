/**
 * A test rig on one machine, with the terminal as a real device would be: its own process (the Node host,
 * `tools/sim/simulation/main.ts --pn532 --controller ...`) on two pty pairs, front-ends in their own processes over mutual TLS
 * (optionally behind fault proxies), a development PKI and key store, and virtual cards issued from the same master
 * keys. The rig can hold the far ends of both lines itself (emulator + controller link), or leave them to the harness.
 * Used by the harness's CI test and the fault-injection suite.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import type { SerialClass } from "../../../modules/device/types";
import { NodeSerial } from "../../../hosts/node/serial";
import { createPtyPair, type PtyPair } from "../../../hosts/node/pty";
import type { ApplicationProfile, VirtualCard, VirtualCardOptions } from "../../sim/cardsim/index";
import type { FrontendConfig } from "../../frontend/index";
import { softHsmTokenWithKeys } from "../../frontend/keys/softhsm";
import { DatabaseReader } from "../frontend/index";
import type { DevelopmentPki } from "../../pki/index";
import { startEmulator, type EmulatorTiming, type Pn532Emulator } from "../../sim/pn532sim/index";
import { ControllerLink, type ControllerEvent } from "../../sim/simulation/controller-link";
import { FaultProxy } from "./proxy";
import { LEVEL2_CITY, TERMINAL_ID, frontendConfigs, freePort, issueWorldCard, prepareWorld, type World } from "../../sim/simulation/world";

export const RIG_TERMINAL_ID = TERMINAL_ID;
export const RIG_LEVEL2_CITY = LEVEL2_CITY;
const ROOT = path.resolve(import.meta.dirname, "../../..");

export interface RigOptions {
  dir?: string;
  /** Put a FaultProxy in front of each front-end; the routing table and the terminal then use the proxies. */
  proxies?: boolean;
  /** The rig plays the PN532 and the vending controller itself (otherwise the harness opens those ends). */
  attach?: boolean;
  timing?: Partial<EmulatorTiming>;
  /** The serial class the emulator uses on its pty end (tests wrap it to watch frames). */
  pn532Io?: SerialClass;
  reconciliationTimeoutMs?: number;
  /**
   * The front-ends' databases (default: a SQLite file each in the rig's directory). A PostgreSQL URL runs that level on
   * PostgreSQL; the caller creates the database or schema it names.
   */
  databases?: { 1?: string; 2?: string };
  /** Where the front-ends' master keys are: the development file (default), or SoftHSM2 tokens through key services. */
  keyStore?: "file" | "pkcs11";
  /**
   * The front-ends' limits. A rig pays far faster than a terminal at a vending machine (fault suites tap every few
   * milliseconds), so the per-terminal authorization rate is lifted unless a test sets it: the rig tests the terminal,
   * and test/node/frontend/limits.test.ts tests the limiter.
   */
  limits?: FrontendConfig["limits"];
}

export interface RigPurchase {
  id: string;
  terminal_id?: string;
  tsn: number;
  status: string;
  outcome: string | null;
  asn: string;
  ep_serial: number;
  amount: number;
  tac: string | null;
}


interface FrontendProcess {
  configPath: string;
  config: FrontendConfig;
  child?: ChildProcess;
  url: string;
}

export class Rig {
  readonly dir: string;
  readonly options: RigOptions;
  pki!: DevelopmentPki;
  keysPath = "";
  readonly frontends: { [level: number]: FrontendProcess } = {};
  readonly proxies: { [level: number]: FaultProxy } = {};
  pn532Pair!: PtyPair;
  controllerPair!: PtyPair;
  emulator: Pn532Emulator | undefined;
  controller: ControllerLink | undefined;
  terminal: ChildProcess | undefined;
  /** The terminal process's stderr (its trace), newest last. */
  terminalLog: string[] = [];
  journalPath: string;
  /** Written with the running terminal's pid, for reset commands in scenarios. */
  readonly pidFile: string;
  readonly #ownDir: boolean;
  #cardNo = 0;
  #world!: World;
  readonly #readers = new Map<number, DatabaseReader>();

  private constructor(options: RigOptions) {
    this.options = options;
    this.#ownDir = !options.dir;
    this.dir = options.dir ?? mkdtempSync(path.join(tmpdir(), "transit-rig-"));
    this.journalPath = path.join(this.dir, "terminal.journal");
    this.pidFile = path.join(this.dir, "terminal.pid");
  }

  static async start(options: RigOptions = {}): Promise<Rig> {
    const rig = new Rig(options);
    try {
      await rig.#start();
    } catch (error) {
      await rig.close();
      throw error;
    }
    return rig;
  }

  async #start(): Promise<void> {
    const o = this.options;
    const world = await prepareWorld(this.dir, { terminalIds: [RIG_TERMINAL_ID, "001122334455"], rogueTerminalIds: [RIG_TERMINAL_ID] });
    this.#world = world;
    this.pki = world.pki;
    this.keysPath = world.keyStore;
    const ports = { 1: await freePort(), 2: await freePort() };
    const direct = (level: 1 | 2) => `https://127.0.0.1:${ports[level]}`;
    if (o.proxies) {
      for (const level of [1, 2] as const) {
        this.proxies[level] = await FaultProxy.start({
          upstream: direct(level), serverCert: this.pki.server.certPem, serverKey: this.pki.server.keyPem, ca: this.pki.ca.certPem,
          clients: Object.fromEntries(Object.entries(this.pki.terminals).map(([cn, b]) => [cn, { cert: b.certPem, key: b.keyPem }])),
        });
      }
    }
    const seen = (level: 1 | 2) => (o.proxies ? this.proxies[level]!.url : direct(level));
    const configs = frontendConfigs(world, {
      dir: this.dir, ports, urls: { 1: seen(1), 2: seen(2) }, tls: "paths", log: { level: "warn" }, names: { 1: "rig level 1", 2: "rig level 2" },
      reconciliationTimeoutMs: o.reconciliationTimeoutMs ?? 60_000, reconciliationSweepMs: 200,
    });
    for (const level of [2, 1] as const) {
      configs[level]!.limits = { authorizationsPerSecond: 10_000, authorizationBurst: 10_000, ...configs[level]!.limits, ...o.limits };
      if (o.keyStore === "pkcs11") configs[level]!.keyStore = { pkcs11: softHsmTokenWithKeys(path.join(this.dir, "hsm"), `rig-level${level}`, world.keyStore) };
      const database = o.databases?.[level];
      if (database) configs[level]!.database = database;
      const configPath = path.join(this.dir, `level${level}.json`);
      writeFileSync(configPath, JSON.stringify(configs[level]));
      this.frontends[level] = { configPath, config: configs[level]!, url: seen(level) };
      await this.startFrontend(level);
    }
    mkdirSync(path.join(this.dir, "pty-pn532"), { recursive: true });
    mkdirSync(path.join(this.dir, "pty-controller"), { recursive: true });
    this.pn532Pair = await createPtyPair({ dir: path.join(this.dir, "pty-pn532") });
    this.controllerPair = await createPtyPair({ dir: path.join(this.dir, "pty-controller") });
    if (o.attach) {
      this.emulator = await startEmulator({ serial: { io: o.pn532Io ?? NodeSerial, path: this.pn532Pair.device, baud: 115200 }, timing: o.timing });
      if (o.pn532Io && o.pn532Io !== NodeSerial) await new Promise((r) => setTimeout(r, 100));
      this.controller = new ControllerLink({ io: NodeSerial, path: this.controllerPair.device, baud: 115200 });
      await (this.controller.port as NodeSerial).opened;
    }
  }

  /** The URL the terminal is configured with for level 1 (the proxy's, when there is one). */
  get level1Url(): string {
    return this.frontends[1]!.url;
  }

  /** Starts (or restarts, after killFrontend) a front-end process on its port and database. */
  async startFrontend(level: 1 | 2): Promise<void> {
    const fe = this.frontends[level]!;
    const child = spawn(process.execPath, ["--import", "tsx", path.join(ROOT, "tools/frontend/main.ts"), "--config", fe.configPath],
      { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
    fe.child = child;
    await new Promise<void>((resolve, reject) => {
      let out = "";
      let err = "";
      const timer = setTimeout(() => reject(new Error(`front-end ${level} did not start: ${err}`)), 20_000);
      child.stderr!.on("data", (d: Buffer) => { err += d.toString(); });
      child.stdout!.on("data", (d: Buffer) => {
        out += d.toString();
        if (out.includes("\"event\":\"listening\"")) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`front-end ${level} exited with ${code}: ${err}`));
      });
    });
  }

  /** SIGKILLs a front-end process: what it acknowledged is in its journal, the rest is gone. */
  async killFrontend(level: 1 | 2): Promise<void> {
    const child = this.frontends[level]!.child;
    if (child) await killed(child);
  }

  terminalArgs(extra: string[] = []): string[] {
    const t = this.pki.terminals[RIG_TERMINAL_ID]!;
    return ["--pn532", this.pn532Pair.host, "--controller", this.controllerPair.host, "--frontend", this.level1Url, "--cert", t.certPath,
      "--key", t.keyPath, "--ca", this.pki.ca.certPath, "--terminal-id", RIG_TERMINAL_ID, "--journal", this.journalPath, ...extra];
  }

  /**
   * Starts the terminal process. Resolves once it is ready, or once it died (a power cut during start-up is a fault
   * point too): the result says which.
   */
  async startTerminal(options: { dieAtWrite?: number; recoveryWindowMs?: number; args?: string[] } = {}): Promise<"ready" | "died"> {
    const extra: string[] = [...(options.args ?? [])];
    if (options.dieAtWrite !== undefined) extra.push("--die-at-write", String(options.dieAtWrite));
    if (options.recoveryWindowMs !== undefined) extra.push("--recovery-window", String(options.recoveryWindowMs));
    const child = spawn(process.execPath, ["--import", "tsx", path.join(ROOT, "tools/sim/simulation/main.ts"), ...this.terminalArgs(extra)],
      { cwd: ROOT, stdio: ["ignore", "ignore", "pipe"] });
    this.terminal = child;
    // Every wait on a payment races the process's exit; a long fault run adds many of those listeners.
    child.setMaxListeners(0);
    writeFileSync(this.pidFile, `${child.pid}\n`);
    return new Promise((resolve, reject) => {
      let text = "";
      const timer = setTimeout(() => reject(new Error(`terminal did not start: ${this.terminalLog.slice(-10).join("\n")}`)), 20_000);
      child.stderr!.on("data", (d: Buffer) => {
        text += d.toString();
        const lines = text.split("\n");
        text = lines.pop()!;
        for (const line of lines) {
          this.terminalLog.push(line);
          if (this.terminalLog.length > 2000) this.terminalLog.splice(0, 1000);
          if (/^terminal \S+ ready on /.test(line)) {
            clearTimeout(timer);
            resolve("ready");
          }
        }
      });
      child.once("exit", () => {
        clearTimeout(timer);
        resolve("died");
      });
    });
  }

  get terminalAlive(): boolean {
    return !!this.terminal && this.terminal.exitCode === null && this.terminal.signalCode === null;
  }

  /** Resolves when the terminal process has ended (or at once if it has). */
  terminalExited(): Promise<void> {
    const child = this.terminal;
    if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
    return new Promise((resolve) => child.once("exit", () => resolve()));
  }

  async killTerminal(signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
    if (this.terminal) await killed(this.terminal, signal);
  }

  /** Makes the controller's pty pair again under the same names: what a USB adapter does when the device resets. */
  async recreateControllerPty(): Promise<void> {
    await this.controllerPair.close();
    this.controllerPair = await createPtyPair({ dir: path.join(this.dir, "pty-controller") });
  }

  /** A virtual card issued from the rig's master keys, with a unique ASN; in the emulator (out of the field) when attached. */
  addCard(profile: Partial<Omit<ApplicationProfile, "masterKeys">> = {}, options: { inEmulator?: boolean; card?: VirtualCardOptions } = {}): VirtualCard {
    const n = String(++this.#cardNo).padStart(6, "0");
    const layout = profile.layout ?? "tunion";
    const algorithm = profile.algorithm ?? (layout === "tunion" ? "3des" : "sm4");
    const cityCode = profile.cityCode ?? (layout === "tunion" ? "1000" : RIG_LEVEL2_CITY);
    const asn = profile.asn ?? (layout === "tunion" ? `0310${String(process.pid % 1e6).padStart(6, "0")}0000${n}` : `${cityCode}${String(process.pid % 1e6).padStart(6, "0")}${n}`);
    const card = issueWorldCard(this.#world, [{ balance: 5000, ...profile, layout, algorithm, cityCode, asn }], options.card);
    if (options.inEmulator !== false) this.emulator?.addCard(card, false);
    return card;
  }

  /** Takes every card out of the emulated field, so the next tap activates only the card it places. */
  clearField(): void {
    for (const card of this.emulator?.cards ?? []) if (card.present) this.emulator!.remove(card);
  }

  /** The storage engine a front-end runs on. */
  engine(level: 1 | 2): "sqlite" | "postgres" {
    return /^postgres(ql)?:\/\//i.test(this.frontends[level]!.config.database) ? "postgres" : "sqlite";
  }

  /** The front-end's purchases, read from its database with a connection of the rig's own (safe while it runs). */
  async purchases(level: 1 | 2): Promise<RigPurchase[]> {
    const database = this.frontends[level]!.config.database;
    let reader = this.#readers.get(level);
    if (!reader) this.#readers.set(level, reader = new DatabaseReader(database));
    return reader.rows<RigPurchase>("SELECT id, terminal_id, tsn, status, outcome, asn, ep_serial, amount, tac FROM purchases ORDER BY tsn");
  }

  /** Asks the attached controller link for the terminal's status. */
  async status(timeoutMs = 5000): Promise<ControllerEvent> {
    // Looks at the events from now on without taking them from the link's cursor: an abandoned wait elsewhere
    // must not steal this answer.
    const link = this.controller!;
    const from = link.events.length;
    link.send({ type: "status" });
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      for (let i = from; i < link.events.length; i++) if (link.events[i]!.event === "status") return link.events[i]!;
      if (Date.now() > deadline) throw new Error(`no status answer in ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  async close(): Promise<void> {
    if (this.terminal) await killed(this.terminal, "SIGKILL");
    for (const fe of Object.values(this.frontends)) if (fe.child) await killed(fe.child, "SIGTERM");
    for (const p of Object.values(this.proxies)) await p.close();
    for (const r of this.#readers.values()) await r.close();
    this.#readers.clear();
    this.controller?.close();
    this.emulator?.close();
    await this.pn532Pair?.close();
    await this.controllerPair?.close();
    if (this.#ownDir) rmSync(this.dir, { recursive: true, force: true });
  }
}

function killed(child: ChildProcess, signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once("exit", () => resolve());
    child.kill(signal);
  });
}
