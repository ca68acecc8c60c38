/**
 * `npm run bench:soak [-- --days N --per-day N]`: the terminal inside the XS engine (hosts/xs, src/ + modules/ as on
 * the ESP32) on a virtual clock for simulated days. Purchases run at real speed against the PN532 emulator and the
 * front-ends over mutual TLS; between them the clock jumps over idle time, so keep-warm (30 s) and the route refresh
 * (1 h) fire at their configured periods. Each day mixes approvals at both levels, declines (a poor card, an expired
 * card), card tears recovered by the next tap, and a front-end outage with its restart (purchases refused as
 * frontend-unavailable; a completion that waits for the front-end and is delivered after). One JSON line per day,
 * then the money check and a verdict; exit 1 when money is wrong or something grows after day 1.
 */
import { parseArgs } from "node:util";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { fromHex } from "../../../modules/bytes/bytes";
import { parseBasicData } from "../../../modules/purse/files";
import { XsTerminalHost } from "../../../hosts/xs/parent";
import type { VirtualCard } from "../../sim/cardsim/card";
import type { ControllerEvent } from "../../sim/simulation/controller-link";
import { INSTANT_TIMING } from "../../sim/pn532sim/index";
import { LEVEL1_CITY, LEVEL2_CITY, Simulation, TERMINAL_ID } from "../../sim/simulation/index";
import { Progress } from "../progress";

const DAY_MS = 86_400_000;

export interface SoakDay {
  day: number;
  purchases: number;
  approved: number;
  declined: number;
  unknown: number;
  resolved: number;
  /** Slots live after a collection at the end of the day (16 bytes each on the ESP32). */
  liveSlots: number;
  /**
   * The most slots in use at the end of any delivery of the day, garbage included: XS collects when its slot heap is
   * full, so this is the high-water mark of the heap XS needed.
   */
  peakSlots: number;
  /** Bytes of an XS heap snapshot after a collection: slots and chunks in use. */
  snapshotBytes: number;
  journal: { usedBlocks: number; blocks: number; liveRecords: number };
  pendingCompletions: number;
  unresolved: number;
  /** Keep-warm and route-refresh periods that passed on the virtual clock this day. */
  keepWarmPeriods: number;
  routeRefreshes: number;
  /** Routing tables the terminal actually fetched this day (GET /v1/routes at the front-end), refreshes included. */
  routeRequests: number;
  realSeconds: number;
}

export interface SoakResult {
  days: SoakDay[];
  moneyViolations: string[];
  growth: string[];
  purchases: number;
  realSeconds: number;
}

export interface SoakOptions {
  days: number;
  perDay: number;
  onDay?: (day: SoakDay) => void;
  /** The terminal's trace lines (SOAK_TRACE=1 on the command line prints them to stderr). */
  trace?: (line: string) => void;
  /**
   * Growth allowed after day 1, as a fraction: live slots and snapshot bytes at the end of each later day, and the
   * last day's peak, against day 1's.
   */
  tolerance?: number;
}

/** A card the soak reuses all along, with what it must have been charged. */
interface PoolCard {
  name: string;
  card: VirtualCard;
  asn: string;
  initialBalance: number;
  initialSerial: number;
  charged: number;
}

type Kind = "level1" | "level2" | "poor" | "expired" | "tear";

/** The day's purchase mix, by index modulo its length: mostly approvals at both levels. */
const MIX: Kind[] = ["level1", "level2", "level1", "level2", "poor", "level1", "level2", "expired", "level1", "tear"];

export async function runSoak(options: SoakOptions): Promise<SoakResult> {
  const tolerance = options.tolerance ?? 0.01;
  const started = performance.now();
  const sim = await Simulation.start({ timing: INSTANT_TIMING, noTerminal: true });
  let xs: XsTerminalHost | undefined;
  const pool: { [k in Kind]: PoolCard[] } = { level1: [], level2: [], poor: [], expired: [], tear: [] };
  let cardNo = 0;
  const add = (kind: Kind, profile: { layout: "tunion" | "cityunion"; balance: number; expiryDate?: string }): void => {
    const n = String(++cardNo).padStart(6, "0");
    const name = `soak-${kind}-${n}`;
    const card = sim.addCard({
      name, profiles: [profile.layout === "tunion"
        ? { layout: "tunion", algorithm: "3des", asn: `03101000000066${n}`, cityCode: LEVEL1_CITY, balance: profile.balance, expiryDate: profile.expiryDate }
        : { layout: "cityunion", algorithm: "sm4", asn: `41000000${n.padStart(8, "0")}`, cityCode: LEVEL2_CITY, balance: profile.balance }],
    });
    const app = card.state.applications[0]!;
    pool[kind].push({ name, card, asn: parseBasicData(fromHex(app.basicData), app.layout).asn, initialBalance: app.balance, initialSerial: app.epSerial, charged: 0 });
  };
  for (let i = 0; i < 4; i++) {
    add("level1", { layout: "tunion", balance: 5_000_000 });
    add("level2", { layout: "cityunion", balance: 5_000_000 });
    add("tear", { layout: "tunion", balance: 5_000_000 });
  }
  add("poor", { layout: "tunion", balance: 5 });
  add("expired", { layout: "tunion", balance: 90_000, expiryDate: "20241231" });
  const all = Object.values(pool).flat();

  const days: SoakDay[] = [];
  let total = 0;
  let order = 0;
  try {
    xs = await XsTerminalHost.start({
      lines: sim.terminalLines(), tls: sim.terminalTls(), virtualTime: true, trace: options.trace,
      config: { terminalId: TERMINAL_ID, level1Url: sim.level1.url, recoveryWindowMs: 5000 },
    });
    await sim.controller.next((e) => e.event === "ready", 30_000);
    // SOAK_GC_EACH_TICK=1 collects at the end of every tick, so the peak is the live peak rather than the heap's
    // high-water mark; it makes the run slower, which is why it is off by default.
    xs.collectEachTick = process.env.SOAK_GC_EACH_TICK === "1";
    const host = xs;
    const status = async (): Promise<ControllerEvent> => {
      await host.settle();
      sim.controller.send({ type: "status" });
      return sim.controller.next((e) => e.event === "status", 10_000);
    };
    /** One payment; a torn one is brought back until the terminal settles it. Returns the final event. */
    const pay = async (c: PoolCard, amount: number, tally: SoakDay, tear = false): Promise<ControllerEvent> => {
      const o = `SOAK-${++order}`;
      if (tear) c.card.armTear({ command: "debit", when: "after" });
      const events = await sim.pay(c.name, amount, o, { keepCard: tear });
      const final = events.at(-1)!;
      tally.purchases++;
      total++;
      if (final.event === "approved") {
        tally.approved++;
        c.charged += amount;
      } else if (final.event === "declined") tally.declined++;
      else if (final.event === "unknown-outcome") {
        tally.unknown++;
        if (!c.card.present) sim.emulator.place(c.card);
        else {
          sim.emulator.remove(c.card);
          sim.emulator.place(c.card);
        }
        const resolved = await sim.controller.next((e) => e.event === "resolved" && e.order === o, 30_000);
        sim.emulator.remove(c.card);
        tally.resolved++;
        if (resolved.result === "approved") c.charged += amount;
      }
      if (c.card.present) sim.emulator.remove(c.card);
      c.card.clearTears();
      return final;
    };

    const progress = new Progress("soak purchases", { total: options.days * options.perDay });
    for (let d = 1; d <= options.days; d++) {
      const dayStart = performance.now();
      const tally: SoakDay = {
        day: d, purchases: 0, approved: 0, declined: 0, unknown: 0, resolved: 0, liveSlots: 0, peakSlots: 0, snapshotBytes: 0,
        journal: { usedBlocks: 0, blocks: 0, liveRecords: 0 }, pendingCompletions: 0, unresolved: 0, keepWarmPeriods: 0, routeRefreshes: 0, routeRequests: 0, realSeconds: 0,
      };
      const dayEnd = d * DAY_MS;
      const virtualAtStart = xs.now();
      const routesAtStart = xs.exchanges.get("GET /v1/routes") ?? 0;
      xs.resetMeter();
      // The outage comes half-way through the day, at the level that alternates day by day.
      const outageAt = Math.floor(options.perDay / 2);
      const outageLevel: 1 | 2 = d % 2 === 1 ? 2 : 1;
      for (let i = 0; i < options.perDay; i++) {
        const gap = Math.max(0, (dayEnd - xs.now()) / (options.perDay - i + 1));
        await xs.advanceIdle(gap);
        const amount = 1 + ((order * 37) % 99);
        if (i === outageAt) {
          // A debit torn while the front-end is up, recovered by a tap while it is down: the completion waits.
          const down = outageLevel === 1 ? pool.level1[0]! : pool.level2[0]!;
          const torn = down;
          const tornOrder = `SOAK-${order + 1}`;
          torn.card.armTear({ command: "debit", when: "after" });
          const first = await sim.pay(torn.name, amount, tornOrder, { keepCard: true });
          tally.purchases++;
          total++;
          order++;
          if (first.at(-1)!.event !== "unknown-outcome") throw new Error(`the torn purchase ended ${JSON.stringify(first.at(-1))}`);
          tally.unknown++;
          // Within the terminal's recovery window: the front-end goes down before the card comes back.
          await sim.stopFrontend(outageLevel);
          sim.emulator.remove(torn.card);
          sim.emulator.place(torn.card);
          const resolved = await sim.controller.next((e) => e.event === "resolved" && e.order === tornOrder, 30_000);
          sim.emulator.remove(torn.card);
          torn.card.clearTears();
          tally.resolved++;
          if (resolved.result === "approved") torn.charged += amount;
          // A purchase at the level that is down is refused, and nothing is charged.
          const refused = await pay(down, amount, tally);
          if (refused.event !== "declined" || refused.reason !== "frontend-unavailable") {
            throw new Error(`a purchase during the outage ended ${JSON.stringify(refused)}`);
          }
          const during = await status();
          if ((during.pendingCompletions as number) < 1) throw new Error("the completion did not wait for the front-end");
          // Ten minutes of outage: the forwarder's retries and keep-warm meet a closed port.
          await xs.advanceIdle(10 * 60_000);
          await sim.startFrontendAgain(outageLevel);
          progress.tick(1, `day ${d}/${options.days}, outage`);
          continue;
        }
        const kind = MIX[i % MIX.length]!;
        const list = pool[kind];
        const c = list[order % list.length]!;
        await pay(c, amount, tally, kind === "tear");
        progress.tick(1, `day ${d}/${options.days}`);
      }
      await xs.advanceIdle(Math.max(0, dayEnd - xs.now()));
      const s = await status();
      const live = await xs.collect();
      tally.peakSlots = xs.meter.maxHeapCount;
      tally.liveSlots = live.currentHeapCount;
      tally.snapshotBytes = await xs.snapshotBytes();
      const j = s.journal as { usedBlocks: number; blocks: number; liveRecords: number };
      tally.journal = { usedBlocks: j.usedBlocks, blocks: j.blocks, liveRecords: j.liveRecords };
      tally.pendingCompletions = s.pendingCompletions as number;
      tally.unresolved = s.unresolved as number;
      const virtualSpan = xs.now() - virtualAtStart;
      tally.keepWarmPeriods = Math.floor(virtualSpan / 30_000);
      tally.routeRefreshes = Math.floor(virtualSpan / 3_600_000);
      tally.routeRequests = (xs.exchanges.get("GET /v1/routes") ?? 0) - routesAtStart;
      tally.realSeconds = Math.round((performance.now() - dayStart) / 100) / 10;
      days.push(tally);
      progress.around(() => options.onDay?.(tally));
    }
    progress.finish();

    // ---- the money check: every card against both front-ends' journals, and the terminal has nothing open ----
    const violations: string[] = [];
    const rows = [...sim.purchases(1), ...sim.purchases(2)];
    for (const level of [1, 2] as const) {
      const tsns = sim.purchases(level).map((r) => r.tsn);
      if (new Set(tsns).size !== tsns.length) violations.push(`level ${level}: a TSN was handed out twice`);
    }
    for (const c of all) {
      const app = c.card.state.applications[0]!;
      const mine = rows.filter((r) => r.asn === c.asn);
      const completed = mine.filter((r) => r.status === "completed");
      const moved = c.initialBalance - app.balance;
      const settled = completed.reduce((n, r) => n + r.amount, 0);
      // One EP serial per debit: the card's serial moved once for each debit, and each serial is one completed purchase.
      const debits = app.epSerial - c.initialSerial;
      const serials = completed.map((r) => r.ep_serial).sort((a, b) => a - b);
      const expected = Array.from({ length: debits }, (_, k) => c.initialSerial + k);
      if (moved !== settled) violations.push(`card ${c.asn}: ${moved} fen left the card, ${settled} fen completed at the front-ends`);
      if (moved !== c.charged) violations.push(`card ${c.asn}: ${moved} fen left the card, the controller was told ${c.charged}`);
      if (JSON.stringify(serials) !== JSON.stringify(expected)) violations.push(`card ${c.asn}: ${debits} debits but completed EP serials [${serials.slice(0, 8)}...] (${serials.length})`);
      for (const r of mine) if (r.status === "flagged") violations.push(`card ${c.asn}: purchase ${r.id} flagged`);
    }
    const last = days.at(-1);
    if (last && (last.pendingCompletions !== 0 || last.unresolved !== 0)) {
      violations.push(`the terminal still holds ${last.pendingCompletions} completions and ${last.unresolved} unresolved purchases`);
    }
    return { days, moneyViolations: violations, growth: growthOf(days, tolerance), purchases: total, realSeconds: Math.round((performance.now() - started) / 1000) };
  } finally {
    await xs?.close();
    await sim.close();
  }
}

/** What grew after day 1 beyond the tolerance: live slots or snapshot bytes on any later day, or the last day's peak. */
export function growthOf(days: SoakDay[], tolerance: number): string[] {
  const out: string[] = [];
  const first = days[0];
  if (!first) return out;
  const over = (value: number, base: number) => value > base * (1 + tolerance);
  for (const d of days.slice(1)) {
    if (over(d.liveSlots, first.liveSlots)) out.push(`day ${d.day}: ${d.liveSlots} live slots, day 1 ${first.liveSlots}`);
    if (over(d.snapshotBytes, first.snapshotBytes)) out.push(`day ${d.day}: snapshot ${d.snapshotBytes} bytes, day 1 ${first.snapshotBytes}`);
    if (d.journal.liveRecords > first.journal.liveRecords + 1) out.push(`day ${d.day}: ${d.journal.liveRecords} live journal records, day 1 ${first.journal.liveRecords}`);
  }
  const last = days.at(-1)!;
  if (days.length > 1 && over(last.peakSlots, first.peakSlots)) out.push(`day ${last.day}: peak ${last.peakSlots} slots, day 1 ${first.peakSlots}`);
  return out;
}

function argument(values: { [name: string]: string | undefined }, name: string, fallback: number): number {
  const text = values[name];
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1) {
    console.error(`--${name} wants a whole number of at least 1`);
    process.exit(2);
  }
  return value;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const { values } = parseArgs({ strict: true, options: { days: { type: "string" }, "per-day": { type: "string" } } });
  const days = argument(values, "days", 30);
  const perDay = argument(values, "per-day", 700);
  const trace = process.env.SOAK_TRACE ? (line: string) => console.error(line) : undefined;
  const result = await runSoak({ days, perDay, trace, onDay: (d) => console.log(JSON.stringify(d)) });
  const first = result.days[0]!;
  const last = result.days.at(-1)!;
  const verdict = {
    verdict: result.moneyViolations.length === 0 && result.growth.length === 0 ? "pass" : "fail",
    days: result.days.length, purchases: result.purchases, realSeconds: result.realSeconds,
    purchasesPerRealSecond: Math.round((result.purchases / result.realSeconds) * 10) / 10,
    peakDay1: first.peakSlots, peakLastDay: last.peakSlots, peakChange: `${(((last.peakSlots - first.peakSlots) / first.peakSlots) * 100).toFixed(2)} %`,
    liveSlotsDay1: first.liveSlots, liveSlotsLastDay: last.liveSlots, snapshotBytesDay1: first.snapshotBytes, snapshotBytesLastDay: last.snapshotBytes,
    moneyViolations: result.moneyViolations, growth: result.growth,
  };
  console.log(JSON.stringify(verdict));
  process.exitCode = verdict.verdict === "pass" ? 0 : 1;
}
