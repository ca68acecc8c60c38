/**
 * Several terminals in one process, run inside one network namespace by tools/rigs/fleet/fleet.ts: each terminal is the
 * Node host's terminal (src/ as on the ESP32) with its own PN532 emulator holding instant cards, its own controller
 * line, its own journal file and its own mutual-TLS connection to the front-ends, opened from this namespace.
 *
 *   node --import tsx tools/rigs/fleet/terminals.ts <config.json>
 *
 * Commands, one JSON line each on stdin: {"cmd":"run","label":..,"amount":..}, {"cmd":"stop"}, {"cmd":"close"}.
 * Events on stdout: {"event":"ready"}, {"event":"report",...} after a stop once every completion is delivered.
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import type { HttpRequest, HttpResponse, HttpsConnection, HttpsConnector } from "../../../modules/device/types";
import { NodeHttpsConnector } from "../../../hosts/node/https";
import { createMemorySerialPair } from "../../../hosts/node/serial-memory";
import { assembleTerminal, type RunningTerminal } from "../../../src/assemble";
import { nodeTimers } from "../../../hosts/node/serial";
import { FileJournalStorage } from "../../../hosts/node/storage";
import { VirtualCard, issueCard, type CardState } from "../../sim/cardsim/index";
import { readDevelopmentMasterKeys } from "../../frontend/index";
import { ControllerLink, type ControllerEvent } from "../../sim/simulation/controller-link";
import { INSTANT_TIMING, startEmulator, type Pn532Emulator } from "../../sim/pn532sim/index";

export interface FleetTerminalSpec {
  id: string;
  /** Index in the whole fleet: it makes the cards' ASNs unique. */
  index: number;
  cert: string;
  key: string;
  journal: string;
}

export interface FleetProcessConfig {
  keyStore: string;
  ca: string;
  level1Url: string;
  terminals: FleetTerminalSpec[];
}

/** One payment as the controller saw it. Times are epoch ms (all processes share the machine's clock). */
export interface FleetPayment {
  terminal: string;
  order: string;
  asn: string;
  start: number;
  end: number;
  event: string;
  reason?: string;
  purchaseId?: string;
  tapMs?: number;
  /** The authorization round trip inside the tap. */
  authorizeMs?: number;
}

export interface FleetReport {
  event: "report";
  label: string;
  payments: FleetPayment[];
  /** Completions the front-ends acknowledged (HTTP 200 to POST .../completion), with when. */
  deliveries: { purchaseId: string; at: number }[];
  cards: { state: CardState; initialBalance: number }[];
  /** When the last terminal had nothing pending after the stop. */
  drainedAt: number;
}

/** Debits a card's log keeps (its file 0x18 has ten records): a card is retired before the money check loses one. */
const PAYMENTS_PER_CARD = 10;
const CARD_BALANCE = 100_000;
const FINAL = new Set(["approved", "declined", "unknown-outcome"]);

/** A connector that notes each acknowledged completion: the delivery times the fleet's figures need. */
class WatchingConnector implements HttpsConnector {
  constructor(readonly inner: HttpsConnector, readonly delivered: (purchaseId: string) => void) {}
  connect(origin: string): HttpsConnection {
    const c = this.inner.connect(origin);
    const delivered = this.delivered;
    return {
      origin: c.origin,
      get handshakes() { return c.handshakes; },
      get connected() { return c.connected; },
      warm: (timeout) => c.warm(timeout),
      async request(request: HttpRequest): Promise<HttpResponse> {
        const response = await c.request(request);
        const m = /^\/v1\/purchases\/([^/]+)\/completion$/.exec(request.path);
        if (m && request.method === "POST" && response.status === 200) delivered(decodeURIComponent(m[1]!));
        return response;
      },
      close: () => c.close(),
    };
  }
}

class FleetTerminal {
  running!: RunningTerminal;
  emulator!: Pn532Emulator;
  controller!: ControllerLink;
  storage!: FileJournalStorage;
  #cardNo = 0;
  #card: VirtualCard | undefined;
  #uses = 0;
  #loop: Promise<void> | undefined;
  #stop = false;

  constructor(readonly spec: FleetTerminalSpec, readonly config: FleetProcessConfig, readonly sink: Sink) {}

  async start(): Promise<void> {
    const pn532 = createMemorySerialPair({ byteTime: 0 });
    const line = createMemorySerialPair();
    this.emulator = await startEmulator({ serial: { io: pn532.device, baud: 115200 }, timing: INSTANT_TIMING });
    this.controller = new ControllerLink({ io: line.device, baud: 115200 });
    this.storage = new FileJournalStorage(this.spec.journal, { size: 64 * 1024 });
    const connector = new WatchingConnector(new NodeHttpsConnector({ cert: this.spec.cert, key: this.spec.key, ca: this.config.ca }),
      (purchaseId) => this.sink.deliveries.push({ purchaseId, at: Date.now() }));
    this.running = await assembleTerminal({
      pn532: { io: pn532.host, baud: 115200 }, controller: { io: line.host, baud: 115200 }, connector, storage: this.storage,
      timers: nodeTimers, clock: { now: () => Date.now() }, wakeUpTimeout: 1000,
    }, { terminalId: this.spec.id, level1Url: this.config.level1Url, recoveryWindowMs: 3000 });
  }

  /** Alternates national (level 1) and city (level 2) cards; each card takes at most PAYMENTS_PER_CARD payments. */
  #nextCard(): VirtualCard {
    if (this.#card && this.#uses < PAYMENTS_PER_CARD) return this.#card;
    const n = ++this.#cardNo;
    const serial = `${String(this.spec.index).padStart(4, "0")}${String(n).padStart(8, "0")}`;
    const tunion = n % 2 === 1;
    const profile = tunion
      ? { layout: "tunion" as const, algorithm: "3des" as const, asn: `03101000${serial}`, cityCode: "1000" }
      : { layout: "cityunion" as const, algorithm: "sm4" as const, asn: `4100${serial}`, cityCode: "4100" };
    const masterKeys = readDevelopmentMasterKeys(this.config.keyStore, { keyIndex: 1, keyVersion: 1, algorithm: profile.algorithm });
    const card = new VirtualCard(issueCard([{ ...profile, masterKeys, balance: CARD_BALANCE }]));
    this.emulator.addCard(card, false);
    this.sink.cards.push({ card, initialBalance: CARD_BALANCE });
    this.#card = card;
    this.#uses = 0;
    return card;
  }

  run(amount: number): void {
    this.#stop = false;
    this.#card = undefined;
    this.#loop = this.#payments(amount);
  }

  async stop(): Promise<void> {
    this.#stop = true;
    await this.#loop;
  }

  async #payments(amount: number): Promise<void> {
    let n = 0;
    while (!this.#stop) {
      const card = this.#nextCard();
      this.#uses++;
      const order = `${this.spec.id}-${this.sink.label}-${++n}`;
      const start = Date.now();
      this.emulator.place(card);
      this.controller.send({ type: "pay", amount, order, timeoutMs: 5000 });
      let final: ControllerEvent;
      try {
        // The terminal bounds every wait of its own (card, authorization, recovery); this only catches a stuck one.
        final = await this.controller.next((e) => e.order === order && FINAL.has(e.event), 120_000);
        if (final.event === "unknown-outcome") {
          // The card stays in the field: the terminal finds it again and settles the outcome.
          await this.controller.next((e) => e.order === order && e.event === "resolved", 120_000).catch(() => undefined);
        }
      } catch (error) {
        final = { event: "stuck", order, reason: (error as Error).message };
      }
      this.emulator.remove(card);
      const timings = final.timings as { tapMs?: number; authorizeMs?: number } | undefined;
      this.sink.payments.push({
        terminal: this.spec.id, order, asn: String(final.asn ?? ""), start, end: Date.now(), event: final.event,
        reason: final.reason === undefined ? undefined : String(final.reason), purchaseId: final.purchaseId === undefined ? undefined : String(final.purchaseId),
        tapMs: timings?.tapMs, authorizeMs: timings?.authorizeMs,
      });
    }
  }

  get settled(): boolean {
    const t = this.running.terminal;
    return t.state === "idle" && t.pendingCompletions === 0 && t.unresolved === 0;
  }

  close(): void {
    this.running?.close();
    this.storage?.close();
    this.controller?.close();
    this.emulator?.close();
  }
}

interface Sink {
  label: string;
  payments: FleetPayment[];
  deliveries: { purchaseId: string; at: number }[];
  cards: { card: VirtualCard; initialBalance: number }[];
}

function say(event: object): void {
  process.stdout.write(`${JSON.stringify(event)}\n`);
}

async function main(): Promise<void> {
  // One argument: the JSON file the fleet rig (fleet.ts) wrote for this process.
  const [configPath] = parseArgs({ strict: true, allowPositionals: true, options: {} }).positionals;
  if (!configPath) throw new Error("usage: terminals.ts <fleet process config.json>");
  const config = JSON.parse(readFileSync(configPath, "utf8")) as FleetProcessConfig;
  const sink: Sink = { label: "", payments: [], deliveries: [], cards: [] };
  const terminals = config.terminals.map((spec) => new FleetTerminal(spec, config, sink));
  const closeAll = () => {
    for (const t of terminals) t.close();
  };
  process.on("SIGTERM", () => {
    closeAll();
    process.exit(0);
  });
  await Promise.all(terminals.map((t) => t.start()));
  say({ event: "ready", terminals: terminals.length });
  let text = "";
  process.stdin.on("data", (d: Buffer) => {
    text += d.toString();
    const lines = text.split("\n");
    text = lines.pop()!;
    for (const line of lines) void command(JSON.parse(line) as { cmd: string; label?: string; amount?: number });
  });
  process.stdin.on("end", () => {
    closeAll();
    process.exit(0);
  });

  async function command(c: { cmd: string; label?: string; amount?: number }): Promise<void> {
    if (c.cmd === "run") {
      sink.label = c.label ?? "run";
      sink.payments = [];
      sink.deliveries = [];
      sink.cards = [];
      for (const t of terminals) t.run(c.amount ?? 100);
    } else if (c.cmd === "stop") {
      await Promise.all(terminals.map((t) => t.stop()));
      // Every completion delivered and every outcome settled: the parent's deadline bounds this wait.
      while (!terminals.every((t) => t.settled)) await new Promise((r) => setTimeout(r, 20));
      const report: FleetReport = {
        event: "report", label: sink.label, payments: sink.payments, deliveries: sink.deliveries,
        cards: sink.cards.map((c) => ({ state: c.card.state, initialBalance: c.initialBalance })), drainedAt: Date.now(),
      };
      say(report);
    } else if (c.cmd === "close") {
      closeAll();
      process.exit(0);
    }
  }
}

main().catch((error: unknown) => {
  say({ event: "error", message: (error as Error).stack ?? String(error) });
  process.exit(1);
});
