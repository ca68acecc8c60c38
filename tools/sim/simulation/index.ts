/**
 * The whole system on one machine: a level-1 and a level-2 front-end on loopback with a fresh development PKI and key
 * store, the PN532 emulator with virtual cards on a pty pair (socat) or, with no pty tool, on an in-memory line,
 * and the terminal (the same src/ as the ESP32 runs) taking payments through its controller port.
 */
import type { ListenLimits } from "../../frontend/listen/limits";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import type { SerialSpec } from "../../../modules/device/types";
import { NodeSerial } from "../../../hosts/node/serial";
import { createMemorySerialPair } from "../../../hosts/node/serial-memory";
import { createPtyPair, hasSocat, type PtyPair } from "../../../hosts/node/pty";
import { startNodeTerminal, type NodeTerminal } from "../../../hosts/node/terminal";
import type { TerminalConfig, TerminalEvent } from "../../../src/terminal";
import type { ApplicationProfile, VirtualCard, VirtualCardOptions } from "../cardsim/index";
import { openDatabase, startFrontend, type FrontendConfig, type RunningFrontend } from "../../frontend/index";
import type { OperatorConfig } from "../../frontend/operator/index";
import type { JournalStorage } from "../../../modules/journal/storage";
import { ControllerLink, type ControllerEvent } from "./controller-link";
import type { DevelopmentPki } from "../../pki/index";
import { LEVEL1_CITY, LEVEL2_CITY, TERMINAL_ID, frontendConfigs, freePort, issueWorldCard, prepareWorld, type FrontendPair, type World } from "./world";
import { startEmulator, type EmulatorTiming, type Pn532Emulator } from "../pn532sim/index";

export { HOTLISTED_ASN, LEVEL1_CITY, LEVEL2_CITY, TERMINAL_ID } from "./world";

export interface SimulationOptions {
  /** Where the PKI, key store, databases and journal go (a fresh temporary folder by default, removed on close). */
  dir?: string;
  /** "pty" needs socat; "auto" uses it when present and an in-memory line otherwise. */
  link?: "auto" | "pty" | "memory";
  timing?: Partial<EmulatorTiming>;
  /** Line rates the terminal's PN532 line may be raised to (none: it stays at 115,200). */
  pn532Rates?: number[];
  /** One-way network delay added to every front-end request and answer, ms. */
  latencyMs?: number;
  terminal?: Partial<TerminalConfig>;
  esp32Ciphers?: boolean;
  trace?: (line: string) => void;
  /** Front-end log level (pino); "silent" by default. */
  frontendLog?: string;
  /** Leave the terminal's ends of the lines free for another terminal (the XS purchase runs one inside XS). */
  noTerminal?: boolean;
  /** An operator console on the level-1 front-end (tools/frontend/operator): its port and accounts. */
  operator?: OperatorConfig;
  /** The terminal's events as it emits them (the MDB cashless adapter listens here). */
  onEvent?: (event: TerminalEvent) => void;
  /** Listener limits for both front-ends (e.g. a shorter idle timeout: tools/frontend/listen/limits.ts). */
  frontendListen?: ListenLimits;
  /**
   * The front-ends' limits. The simulation pays far faster than a terminal at a vending machine (the soak, the
   * benchmarks and the fault suites tap many times a second with instant card timing), so the per-terminal
   * authorization rate is lifted unless this sets it; test/node/frontend/limits.test.ts tests the limiter.
   */
  frontendLimits?: FrontendConfig["limits"];
}

export interface CardSpec {
  name: string;
  profiles: Omit<ApplicationProfile, "masterKeys">[];
  /** How the virtual card behaves beyond its data (its load proof, its FCI, GET RESPONSE). */
  options?: VirtualCardOptions;
}

/** The scripted cards `npm start` pays with. */
export const DEFAULT_CARDS: CardSpec[] = [
  { name: "3DES T-Union card (level 1)", profiles: [{ layout: "tunion", algorithm: "3des", asn: "03101000000000000123", cityCode: LEVEL1_CITY, balance: 5000 }] },
  { name: "SM4 city card (level 2)", profiles: [{ layout: "cityunion", algorithm: "sm4", asn: "4100000089999985", cityCode: LEVEL2_CITY, balance: 1280 }] },
  { name: "card with too little money", profiles: [{ layout: "tunion", algorithm: "3des", asn: "03101000000000000456", cityCode: LEVEL1_CITY, balance: 120 }] },
  { name: "expired card", profiles: [{ layout: "tunion", algorithm: "3des", asn: "03101000000000000789", cityCode: LEVEL1_CITY, balance: 900, expiryDate: "20241231" }] },
];


export class Simulation {
  readonly dir: string;
  readonly linkKind: "pty" | "memory";
  pki!: DevelopmentPki;
  level1!: RunningFrontend;
  level2!: RunningFrontend;
  emulator!: Pn532Emulator;
  node!: NodeTerminal;
  controller!: ControllerLink;
  readonly cards = new Map<string, VirtualCard>();
  readonly #options: SimulationOptions;
  readonly #ownDir: boolean;
  #ptys: PtyPair[] = [];
  #pn532Spec!: SerialSpec;
  #controllerSpec!: SerialSpec;
  #world!: World;
  #frontendConfigs!: FrontendPair;

  private constructor(options: SimulationOptions) {
    this.#options = options;
    this.#ownDir = !options.dir;
    this.dir = options.dir ?? mkdtempSync(path.join(tmpdir(), "transit-sim-"));
    const wantPty = options.link === "pty" || (options.link !== "memory" && hasSocat());
    this.linkKind = wantPty ? "pty" : "memory";
  }

  static async start(options: SimulationOptions = {}): Promise<Simulation> {
    const sim = new Simulation(options);
    try {
      await sim.#start();
    } catch (error) {
      await sim.close();
      throw error;
    }
    return sim;
  }

  async #start(): Promise<void> {
    const o = this.#options;
    this.#world = await prepareWorld(this.dir, { terminalIds: [TERMINAL_ID], rsaBits: 2048 });
    this.pki = this.#world.pki;
    // The level-1 routing table names both servers, so their ports are chosen before either starts.
    const ports = { 1: await freePort(), 2: await freePort() };
    const urls = { 1: `https://127.0.0.1:${ports[1]}`, 2: `https://127.0.0.1:${ports[2]}` };
    this.#frontendConfigs = frontendConfigs(this.#world, { dir: this.dir, ports, urls, tls: "pem", log: { level: o.frontendLog ?? "silent" } });
    if (o.operator) this.#frontendConfigs[1] = { ...this.#frontendConfigs[1], operator: o.operator };
    for (const level of [1, 2] as const) {
      this.#frontendConfigs[level] = { ...this.#frontendConfigs[level], limits: { authorizationsPerSecond: 10_000, authorizationBurst: 10_000, ...o.frontendLimits } };
    }
    if (o.frontendListen) {
      for (const level of [1, 2] as const) this.#frontendConfigs[level] = { ...this.#frontendConfigs[level], listen: { ...this.#frontendConfigs[level].listen, ...o.frontendListen } };
    }
    this.level2 = await startFrontend(this.#frontendConfigs[2]);
    this.level1 = await startFrontend(this.#frontendConfigs[1]);
    if (this.linkKind === "pty") {
      this.#ptys = [await createPtyPair(), await createPtyPair()];
      this.#pn532Spec = { io: NodeSerial, path: this.#ptys[0]!.host, baud: 115200, rates: o.pn532Rates };
      this.#controllerSpec = { io: NodeSerial, path: this.#ptys[1]!.host, baud: 115200 };
      this.emulator = await startEmulator({ path: this.#ptys[0]!.device, timing: o.timing });
      this.controller = new ControllerLink({ io: NodeSerial, path: this.#ptys[1]!.device, baud: 115200 });
      await (this.controller.port as NodeSerial).opened;
    } else {
      const pn532Line = createMemorySerialPair({ byteTime: o.timing?.byteTime ?? 10_000 / 115200 });
      const controllerLine = createMemorySerialPair();
      this.#pn532Spec = { io: pn532Line.host, baud: 115200, rates: o.pn532Rates };
      this.#controllerSpec = { io: controllerLine.host, baud: 115200 };
      this.emulator = await startEmulator({ serial: { io: pn532Line.device, baud: 115200 }, timing: o.timing });
      this.controller = new ControllerLink({ io: controllerLine.device, baud: 115200 });
    }
    if (!o.noTerminal) await this.startTerminal();
  }

  /** The terminal's ends of the PN532 line and the controller port, for a terminal the simulation does not start. */
  terminalLines(): { pn532: SerialSpec; controller: SerialSpec } {
    return { pn532: this.#pn532Spec, controller: this.#controllerSpec };
  }

  /** What the terminal needs to reach the front-ends: its client certificate and key, and the CA (PEM). */
  terminalTls(): { cert: string; key: string; ca: string } {
    const terminalCert = this.pki.terminals[TERMINAL_ID]!;
    return { cert: terminalCert.certPem, key: terminalCert.keyPem, ca: this.pki.ca.certPem };
  }

  /** Stops a front-end (its port refuses connections) until startFrontendAgain brings it back on the same port. */
  async stopFrontend(level: 1 | 2): Promise<void> {
    await (level === 1 ? this.level1 : this.level2).close();
  }

  async startFrontendAgain(level: 1 | 2): Promise<void> {
    const running = await startFrontend(this.#frontendConfigs[level]!);
    if (level === 1) this.level1 = running;
    else this.level2 = running;
  }

  /** The front-end's purchases as its SQLite journal holds them. */
  purchases(level: 1 | 2): { id: string; tsn: number; status: string; outcome: string | null; asn: string; ep_serial: number; amount: number; tac: string | null }[] {
    const db = openDatabase(this.#frontendConfigs[level]!.database, "full", true);
    try {
      return db.prepare("SELECT id, tsn, status, outcome, asn, ep_serial, amount, tac FROM purchases ORDER BY tsn").all() as never;
    } finally {
      db.close();
    }
  }

  /** The front-end's refunds as its SQLite journal holds them. */
  refunds(level: 1 | 2): { purchase_id: string; status: string; amount: number; purchase_amount: number; online_serial: number | null; tac: string | null;
    tac_valid: number | null; owed_reason: string | null }[] {
    const db = openDatabase(this.#frontendConfigs[level]!.database, "full", true);
    try {
      return db.prepare("SELECT * FROM refunds ORDER BY purchase_id").all() as never;
    } finally {
      db.close();
    }
  }

  /** Starts (or, after stopTerminal, restarts) the terminal on the same journal, lines and front-ends. */
  async startTerminal(config: Partial<TerminalConfig> = {}, wrapStorage?: (storage: JournalStorage) => JournalStorage,
    journal: { file?: string; size?: number; blockSize?: number } = {}): Promise<void> {
    const o = this.#options;
    const terminalCert = this.pki.terminals[TERMINAL_ID]!;
    this.node = await startNodeTerminal({
      pn532: this.#pn532Spec,
      controller: this.#controllerSpec,
      tls: { cert: terminalCert.certPem, key: terminalCert.keyPem, ca: this.pki.ca.certPem, esp32Ciphers: o.esp32Ciphers, latencyMs: o.latencyMs },
      journalPath: path.join(this.dir, journal.file ?? "terminal.journal"),
      journalSize: journal.size,
      journalBlockSize: journal.blockSize,
      config: { terminalId: TERMINAL_ID, level1Url: this.level1.url, recoveryWindowMs: 3000, ...o.terminal, ...config },
      trace: o.trace,
      wrapStorage,
      onEvent: o.onEvent,
    });
  }

  stopTerminal(): void {
    this.node?.close();
  }

  /** Issues a virtual card from the simulation's master keys and puts it in the emulator, out of the field. */
  addCard(spec: CardSpec): VirtualCard {
    const card = issueWorldCard(this.#world, spec.profiles, spec.options);
    this.emulator.addCard(card, false);
    this.cards.set(spec.name, card);
    return card;
  }


  /**
   * One payment as a vending machine makes it: the card is tapped, `pay` goes down the controller port, and the
   * events come back until the final one (approved, declined, or unknown-outcome). The card is taken away after.
   */
  async pay(cardName: string | undefined, amount: number, order: string, options: { timeoutMs?: number; keepCard?: boolean } = {}): Promise<ControllerEvent[]> {
    const card = cardName === undefined ? undefined : this.cards.get(cardName);
    if (cardName !== undefined && !card) throw new Error(`no card named ${cardName}`);
    const first = this.controller.events.length;
    if (card) this.emulator.place(card);
    this.controller.send({ type: "pay", amount, order, timeoutMs: options.timeoutMs ?? 5000 });
    try {
      await this.controller.next((e) => e.order === order && (e.event === "approved" || e.event === "declined" || e.event === "unknown-outcome"),
        (options.timeoutMs ?? 5000) + 10_000);
    } finally {
      if (card && !options.keepCard) this.emulator.remove(card);
    }
    return this.controller.events.slice(first).filter((e) => e.order === order);
  }

  async close(): Promise<void> {
    this.node?.close();
    this.controller?.close();
    this.emulator?.close();
    await this.level1?.close();
    await this.level2?.close();
    for (const p of this.#ptys) await p.close();
    if (this.#ownDir) rmSync(this.dir, { recursive: true, force: true });
  }
}
