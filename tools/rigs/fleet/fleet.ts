/**
 * A fleet of terminals over a real lossy network: terminals in their own network namespaces (several per process,
 * each with its own TLS connection), the level-1 and level-2 front-ends as their own processes in another
 * namespace, and delay, jitter, loss or a partition on the packets between them (tools/rigs/fleet/netns.ts). Each case
 * runs the whole fleet paying back to back for a while, then stops it, waits until every completion is delivered,
 * and checks the money on card, terminal journal and front-end database (tools/rigs/harness/consistency.ts).
 * Used by `npm run bench:fleet` and test/node/fleet/net.test.ts.
 */
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { CodedError } from "../../../modules/errors/errors";
import { VirtualCard } from "../../sim/cardsim/index";
import { openDatabase, writeDevelopmentKeyStore } from "../../frontend/index";
import { cardAsn, moneyViolations, recordKind, scanJournalFile } from "../harness/consistency";
import type { RigPurchase } from "../harness/rig";
import { generateDevelopmentPki } from "../../pki/index";
import { frontendConfigs } from "../../sim/simulation/world";
import { percentiles } from "../../sim/vmc/stream";
import { FRONTEND_ADDRESS, FleetNetwork, type Impairment } from "./netns";
import type { FleetProcessConfig, FleetReport } from "./terminals";

export class FleetError extends CodedError {}

const ROOT = path.resolve(import.meta.dirname, "../../..");

export interface FleetCase {
  name: string;
  impairment: Impairment;
  /** How long the fleet pays, ms (a partition's time included). */
  loadMs: number;
  /** Cut the link `afterMs` into the load and heal it `forMs` later. */
  partition?: { afterMs: number; forMs: number };
}

/** The issue's three cases; the partition's length and the load time are the caller's (the test compresses them). */
export function fleetCases(o: { loadMs: number; partitionMs: number; baseline?: boolean }): FleetCase[] {
  return [
    // The same fleet, relay and processes with nothing impaired: what the machine itself allows.
    ...(o.baseline ? [{ name: "no impairment (reference)", impairment: { delayMs: 0, jitterMs: 0, lossPercent: 0 }, loadMs: o.loadMs }] : []),
    { name: "40 ms ± 10 ms, 1 % loss", impairment: { delayMs: 40, jitterMs: 10, lossPercent: 1 }, loadMs: o.loadMs },
    { name: "150 ms, 5 % loss", impairment: { delayMs: 150, jitterMs: 0, lossPercent: 5 }, loadMs: o.loadMs },
    {
      name: `partition healed after ${o.partitionMs / 1000} s`, impairment: { delayMs: 40, jitterMs: 10, lossPercent: 1 },
      loadMs: o.partitionMs + 2 * o.loadMs, partition: { afterMs: o.loadMs, forMs: o.partitionMs },
    },
  ];
}

export interface FleetOptions {
  terminals: number;
  /** Terminals per namespace (one Node process each). */
  perNamespace: number;
  cases: FleetCase[];
  amount?: number;
  /**
   * How long a case may take to deliver its completions after it stops, and the fleet to start; scaled by
   * FLEET_TIME_SCALE on a slow machine. The run waits for the condition, this only ends a stuck one.
   */
  patienceMs?: number;
  /** A first, unmeasured stretch with nothing impaired (JIT, connections, caches), ms; 0 for none. Default 2000. */
  warmupMs?: number;
  log?: (line: string) => void;
}

export interface CaseFigures {
  case: string;
  impairment: Impairment & { partitionMs?: number };
  terminals: number;
  loadSeconds: number;
  payments: number;
  approvals: number;
  declines: { [reason: string]: number };
  approvalsPerSecond: number;
  tapToApprovedMs: { p50: number; p99: number; max: number };
  /** The authorization round trip inside those taps. */
  authorizeMs: { p50: number; p99: number };
  completions: {
    approved: number;
    delivered: number;
    completedInDatabase: number;
    /** ms from the end of the load (partition: from the heal) until the last completion the case owed was acknowledged. */
    lastDeliveredAfterMs: number;
    after: "end of load" | "heal";
  };
  /** A partition case: payments declined while cut, and how long after the heal the first new payment was approved. */
  partition?: { declined: number; firstApprovalAfterHealMs: number };
  money: { cards: number; violations: number; details: string[] };
  tcp: { segmentsSent: number; retransmitted: number };
  frames?: unknown;
}

export interface FleetResult {
  impairment: "netem" | "relay";
  terminals: number;
  namespaces: number;
  setupSeconds: number;
  /** The warm-up's figures: not a measurement, but its money is checked like any case's. */
  warmup?: CaseFigures;
  cases: CaseFigures[];
}

const round1 = (n: number) => Math.round(n * 10) / 10;
const scale = () => Math.max(1, Number(process.env.FLEET_TIME_SCALE ?? 1));

/** Reads JSON lines from a child's stdout; `next` resolves with the first matching line or rejects on exit/deadline. */
class Lines {
  readonly #seen: object[] = [];
  readonly #waiters: { match: (l: Record<string, unknown>) => boolean; resolve: (l: Record<string, unknown>) => void; reject: (e: Error) => void }[] = [];
  #text = "";
  #err = "";
  #exited: Error | undefined;

  constructor(readonly name: string, readonly child: ChildProcess) {
    child.stdout!.on("data", (d: Buffer) => {
      this.#text += d.toString();
      const lines = this.#text.split("\n");
      this.#text = lines.pop()!;
      for (const line of lines) {
        let value: Record<string, unknown>;
        try {
          value = JSON.parse(line) as Record<string, unknown>;
        } catch {
          continue;
        }
        const w = this.#waiters.findIndex((x) => x.match(value));
        if (w >= 0) this.#waiters.splice(w, 1)[0]!.resolve(value);
        else if (this.#seen.push(value) > 1000) this.#seen.shift(); // a front-end's log lines are not waited for
      }
    });
    child.stderr!.on("data", (d: Buffer) => {
      this.#err = (this.#err + d.toString()).slice(-4000);
    });
    child.once("exit", (code, signal) => {
      this.#exited = new FleetError("PROCESS_EXITED", `${name} exited (${code ?? signal}): ${this.#err.trim().slice(-2000)}`);
      for (const w of this.#waiters.splice(0)) w.reject(this.#exited);
    });
  }

  next(match: (l: Record<string, unknown>) => boolean, timeoutMs: number, what: string): Promise<Record<string, unknown>> {
    const i = this.#seen.findIndex((l) => match(l as Record<string, unknown>));
    if (i >= 0) return Promise.resolve(this.#seen.splice(i, 1)[0] as Record<string, unknown>);
    if (this.#exited) return Promise.reject(this.#exited);
    return new Promise((resolve, reject) => {
      const waiter = {
        match,
        resolve: (l: Record<string, unknown>) => {
          clearTimeout(timer);
          resolve(l);
        },
        reject: (e: Error) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      const timer = setTimeout(() => {
        this.#waiters.splice(this.#waiters.indexOf(waiter), 1);
        reject(new FleetError("TIMEOUT", `${this.name}: no ${what} in ${timeoutMs} ms; stderr: ${this.#err.trim().slice(-1000)}`));
      }, timeoutMs);
      this.#waiters.push(waiter);
    });
  }
}

function stopChild(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
    child.once("exit", () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill("SIGTERM");
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Row extends RigPurchase {
  terminal_id: string;
}

function rows(database: string): Row[] {
  const db = openDatabase(database, "full", true);
  try {
    return db.prepare("SELECT id, tsn, status, outcome, asn, ep_serial, amount, tac, terminal_id FROM purchases").all() as Row[];
  } finally {
    db.close();
  }
}

/** Builds the network and the fleet, runs each case in turn, and takes everything down again (also on failure). */
export async function runFleet(options: FleetOptions): Promise<FleetResult> {
  const log = options.log ?? (() => undefined);
  const patience = (options.patienceMs ?? 180_000) * scale();
  const started = performance.now();
  const dir = mkdtempSync(path.join(tmpdir(), "transit-fleet-"));
  const namespaces = Math.ceil(options.terminals / options.perNamespace);
  let network: FleetNetwork | undefined;
  const frontends: ChildProcess[] = [];
  const fleets: { lines: Lines; child: ChildProcess; journals: string[] }[] = [];
  try {
    network = await FleetNetwork.create({ terminalNamespaces: namespaces, dir });
    log(`network: ${namespaces} terminal namespaces, a front-end namespace and a router (${network.mode})`);
    const terminalIds = Array.from({ length: options.terminals }, (_, i) => `3100${String(i + 1).padStart(8, "0")}`);
    const pki = await generateDevelopmentPki({
      dir: path.join(dir, "pki"), terminalIds, rogueTerminalIds: [], serverHosts: ["127.0.0.1", FRONTEND_ADDRESS],
    });
    const keyStore = path.join(dir, "keys.json");
    writeDevelopmentKeyStore(keyStore);
    const url = (port: number) => `https://${FRONTEND_ADDRESS}:${port}`;
    // Each namespace has its own ports: the front-ends take the well-known ones.
    const configs = frontendConfigs({ pki, keyStore }, {
      dir, ports: { 1: 8443, 2: 8444 }, urls: { 1: url(8443), 2: url(8444) }, tls: "paths", log: { level: "warn" },
      names: { 1: "fleet level 1", 2: "fleet level 2" }, reconciliationTimeoutMs: 5000, reconciliationSweepMs: 500,
    });
    for (const level of [2, 1] as const) {
      const config = { ...configs[level], listen: { host: FRONTEND_ADDRESS, port: level === 1 ? 8443 : 8444 } };
      const file = path.join(dir, `level${level}.json`);
      writeFileSync(file, JSON.stringify(config));
      const child = network.spawnIn(network.frontend, process.execPath, ["--import", "tsx", path.join(ROOT, "tools/frontend/main.ts"), "--config", file],
        { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
      frontends.push(child);
      await new Lines(`front-end level ${level}`, child).next((l) => l.event === "listening", patience, "listening line");
    }
    for (let n = 0; n < namespaces; n++) {
      const specs = terminalIds.slice(n * options.perNamespace, (n + 1) * options.perNamespace).map((id) => ({
        id, index: terminalIds.indexOf(id), cert: pki.terminals[id]!.certPem, key: pki.terminals[id]!.keyPem, journal: path.join(dir, `${id}.journal`),
      }));
      const config: FleetProcessConfig = { keyStore, ca: pki.ca.certPem, level1Url: url(8443), terminals: specs };
      const file = path.join(dir, `fleet-${n}.json`);
      writeFileSync(file, JSON.stringify(config));
      const child = network.spawnIn(network.terminals[n]!, process.execPath, ["--import", "tsx", path.join(ROOT, "tools/rigs/fleet/terminals.ts"), file],
        { cwd: ROOT, stdio: ["pipe", "pipe", "pipe"] });
      fleets.push({ lines: new Lines(`terminals in ${network.terminals[n]}`, child), child, journals: specs.map((s) => s.journal) });
    }
    await Promise.all(fleets.map((f) => f.lines.next((l) => l.event === "ready", patience, "ready line")));
    const setupSeconds = round1((performance.now() - started) / 1000);
    log(`fleet of ${options.terminals} terminals ready in ${setupSeconds} s`);

    const warmupMs = options.warmupMs ?? 2000;
    const warmup = warmupMs > 0 ? await runCase({ name: "warm-up", impairment: { delayMs: 0, jitterMs: 0, lossPercent: 0 }, loadMs: warmupMs }, "w") : undefined;
    if (warmup?.money.violations) throw new FleetError("WARMUP", `the warm-up broke the money rule: ${warmup.money.details.join("; ")}`);
    const results: CaseFigures[] = [];
    for (const [k, c] of options.cases.entries()) {
      results.push(await runCase(c, `c${k + 1}`));
      log(JSON.stringify(results.at(-1)));
    }
    return { impairment: network.mode, terminals: options.terminals, namespaces, setupSeconds, warmup, cases: results };

    async function runCase(c: FleetCase, label: string): Promise<CaseFigures> {
      const net = network!;
      await net.impair(c.impairment);
      const tcpBefore = tcpTotals(net);
      const framesBefore = await net.stats();
      const send = (cmd: object) => {
        for (const f of fleets) f.child.stdin!.write(`${JSON.stringify(cmd)}\n`);
      };
      const runStart = Date.now();
      send({ cmd: "run", label, amount: options.amount ?? 100 });
      let healAt: number | undefined;
      if (c.partition) {
        await sleep(c.partition.afterMs);
        await net.partition(true);
        log(`${c.name}: partition on`);
        await sleep(c.partition.forMs);
        await net.partition(false);
        healAt = Date.now();
        log(`${c.name}: healed`);
        await sleep(Math.max(0, c.loadMs - c.partition.afterMs - c.partition.forMs));
      } else {
        await sleep(c.loadMs);
      }
      const stopAt = Date.now();
      send({ cmd: "stop" });
      const reports = (await Promise.all(fleets.map((f) => f.lines.next((l) => l.event === "report" && l.label === label, patience,
        "report (every completion delivered)")))) as unknown as FleetReport[];
      const frames = framesDelta(framesBefore, await net.stats());
      const tcpAfter = tcpTotals(net);
      const payments = reports.flatMap((r) => r.payments);
      const deliveries = new Map<string, number>();
      for (const r of reports) for (const d of r.deliveries) if (!deliveries.has(d.purchaseId)) deliveries.set(d.purchaseId, d.at);
      const approved = payments.filter((p) => p.event === "approved");
      const declines: { [reason: string]: number } = {};
      for (const p of payments) if (p.event !== "approved") declines[`${p.event}${p.reason ? ` (${p.reason})` : ""}`] = (declines[`${p.event}${p.reason ? ` (${p.reason})` : ""}`] ?? 0) + 1;
      // The completions the case owed at its reference moment: all of them at the end of the load; those of purchases
      // approved before the heal for a partition (a later one never waited for the network).
      const reference = healAt ?? stopAt;
      const owed = approved.filter((p) => healAt === undefined || p.end <= healAt);
      const lastDelivered = Math.max(reference, ...owed.map((p) => deliveries.get(p.purchaseId!) ?? Number.POSITIVE_INFINITY));

      const money = await checkMoney(reports, approved.map((p) => p.purchaseId!), deliveries);
      const seconds = (stopAt - runStart) / 1000;
      const tap = percentiles(approved.map((p) => p.tapMs ?? 0));
      const authorize = percentiles(approved.map((p) => p.authorizeMs ?? 0));
      return {
        case: c.name, impairment: { ...c.impairment, ...(c.partition ? { partitionMs: c.partition.forMs } : {}) }, terminals: options.terminals,
        loadSeconds: round1(seconds), payments: payments.length, approvals: approved.length, declines,
        approvalsPerSecond: round1(approved.length / seconds),
        tapToApprovedMs: { p50: round1(tap.p50), p99: round1(tap.p99), max: round1(tap.max) },
        authorizeMs: { p50: round1(authorize.p50), p99: round1(authorize.p99) },
        completions: {
          approved: approved.length, delivered: approved.filter((p) => deliveries.has(p.purchaseId!)).length, completedInDatabase: money.completed,
          lastDeliveredAfterMs: Number.isFinite(lastDelivered) ? Math.round(lastDelivered - reference) : -1, after: healAt === undefined ? "end of load" : "heal",
        },
        ...(healAt !== undefined ? {
          partition: {
            declined: payments.filter((p) => p.event !== "approved").length,
            firstApprovalAfterHealMs: Math.round(Math.min(...approved.filter((p) => p.start >= healAt!).map((p) => p.end)) - healAt),
          },
        } : {}),
        money: { cards: money.cards, violations: money.violations.length, details: money.violations.slice(0, 20) },
        tcp: { segmentsSent: tcpAfter.outSegs - tcpBefore.outSegs, retransmitted: tcpAfter.retransSegs - tcpBefore.retransSegs },
        frames,
      };
    }

    /**
     * The money rule on every card the case used, with the terminal journals and both front-end databases; an
     * authorization whose answer the network lost (so no debit) may stay open only until the sweep marks it.
     */
    async function checkMoney(reports: FleetReport[], approvedIds: string[], deliveries: Map<string, number>):
      Promise<{ cards: number; violations: string[]; completed: number }> {
      const cards = reports.flatMap((r) => r.cards).map((c) => ({ card: new VirtualCard(c.state), initialBalance: c.initialBalance }));
      const asns = new Set(cards.map((c) => cardAsn(c.card)));
      const read = () => ({ 1: rows(configs[1].database), 2: rows(configs[2].database) });
      let all = read();
      const deadline = Date.now() + patience;
      const open = () => [...all[1], ...all[2]].filter((r) => asns.has(r.asn) && r.status === "authorized");
      while (open().length && Date.now() < deadline) {
        await sleep(200);
        all = read();
      }
      const violations: string[] = [];
      for (const r of open()) violations.push(`authorization ${r.id} was neither completed, voided nor marked for reconciliation`);
      const byAsn = (level: 1 | 2) => {
        const m = new Map<string, Row[]>();
        for (const r of all[level]) if (asns.has(r.asn)) m.set(r.asn, [...(m.get(r.asn) ?? []), r]);
        return m;
      };
      const one = byAsn(1);
      const two = byAsn(2);
      for (const { card, initialBalance } of cards) {
        const asn = cardAsn(card);
        violations.push(...moneyViolations({ card, initialBalance, purchases: [{ level: 1, rows: one.get(asn) ?? [] }, { level: 2, rows: two.get(asn) ?? [] }] }));
      }
      for (const level of [1, 2] as const) {
        const seen = new Set<string>();
        for (const r of all[level]) {
          const key = `${r.terminal_id}/${r.tsn}`;
          if (seen.has(key)) violations.push(`level ${level}: terminal ${r.terminal_id} was given TSN ${r.tsn} twice`);
          seen.add(key);
        }
      }
      const completedIds = new Set([...all[1], ...all[2]].filter((r) => r.status === "completed").map((r) => r.id));
      for (const id of approvedIds) {
        if (!deliveries.has(id)) violations.push(`purchase ${id} was approved but its completion never acknowledged`);
        if (!completedIds.has(id)) violations.push(`purchase ${id} was approved but is not completed in the front-end's database`);
      }
      for (const f of fleets) {
        for (const journal of f.journals) {
          const live = scanJournalFile(journal).filter((r) => r.live && recordKind(r) !== "routes");
          if (live.length) violations.push(`${path.basename(journal)} still holds ${live.length} open records`);
        }
      }
      return { cards: cards.length, violations, completed: approvedIds.filter((id) => completedIds.has(id)).length };
    }
  } finally {
    for (const f of fleets) f.child.stdin?.end();
    await Promise.all(fleets.map((f) => stopChild(f.child)));
    await Promise.all(frontends.map((c) => stopChild(c)));
    await network?.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The relay's per-direction frame counters over one case (netem: tc's statistics text as it is). */
function framesDelta(before: unknown, after: unknown): unknown {
  if (typeof after !== "object" || !after || typeof before !== "object" || !before) return after;
  const b = before as Record<string, Record<string, number>>;
  const a = after as Record<string, Record<string, number>>;
  const out: Record<string, unknown> = { relayRealtime: (after as { realtime?: boolean }).realtime };
  for (const dir of ["aToB", "bToA"]) {
    out[dir === "aToB" ? "towardFrontends" : "towardTerminals"] = Object.fromEntries(
      Object.entries(a[dir] ?? {}).filter(([k]) => k !== "queued").map(([k, v]) => [k, v - (b[dir]?.[k] ?? 0)]));
  }
  return out;
}

function tcpTotals(net: FleetNetwork): { outSegs: number; retransSegs: number } {
  let outSegs = 0;
  let retransSegs = 0;
  for (const ns of [...net.terminals, net.frontend]) {
    const c = net.tcpCounters(ns);
    outSegs += c.outSegs;
    retransSegs += c.retransSegs;
  }
  return { outSegs, retransSegs };
}
