import assert from "node:assert/strict";
import { createServer } from "node:net";
import { PowerCut, type JournalStorage } from "../../../modules/journal/storage";
import { fromHex } from "../../../modules/bytes/bytes";
import { parseBasicData } from "../../../modules/purse/files";
import { hasSocat } from "../../../hosts/node/pty";
import type { VirtualCard } from "../../../tools/sim/cardsim/card";
import { INSTANT_TIMING } from "../../../tools/sim/pn532sim/index";
import { HOTLISTED_ASN, LEVEL1_CITY, LEVEL2_CITY, Simulation, type CardSpec } from "../../../tools/sim/simulation/index";
import { until } from "../until";

// Controller port -> terminal -> PN532 emulator over a pty (socat) -> front-ends over mutual TLS -> SQLite.

const link = hasSocat() ? "pty" : "memory";
if (link === "memory") console.log("      (socat missing: these run over in-memory lines; apt-get install -y socat for ptys)");

const T_UNION: CardSpec = { name: "tunion", profiles: [{ layout: "tunion", algorithm: "3des", asn: "03101000000000000123", cityCode: LEVEL1_CITY, balance: 5000 }] };
const CITY: CardSpec = { name: "city", profiles: [{ layout: "cityunion", algorithm: "sm4", asn: "4100000089999985", cityCode: LEVEL2_CITY, balance: 1280 }] };

function balance(card: VirtualCard): number {
  return card.state.applications[0]!.balance;
}

describe("terminal end to end", function () {
  this.timeout(60_000);
  let sim: Simulation;
  let order = 0;
  const next = () => `E2E-${++order}`;
  const trace: string[] = [];
  let onTrace: ((line: string) => void) | undefined;

  before(async () => {
    sim = await Simulation.start({ link, timing: INSTANT_TIMING, trace: (line) => { trace.push(line); onTrace?.(line); } });
  });
  after(async () => {
    await sim?.close();
  });
  afterEach(() => {
    onTrace = undefined;
  });

  let serialNo = 0;
  /** Each card gets its own ASN: the front-end tells cards apart by it (and refuses a replayed EP serial). */
  function add(spec: CardSpec, asn?: string): VirtualCard {
    const n = String(++serialNo).padStart(6, "0");
    const profiles = spec.profiles.map((p) => ({ ...p, asn: asn ?? (p.layout === "tunion" ? `03101000000000${n}` : `${p.cityCode}000000${n}`) }));
    return sim.addCard({ name: `${spec.name}-${n}`, profiles });
  }
  /**
   * The money rule, for one card: what left the card is exactly what the front-end completed for it, every debit in
   * the card's log is a completed purchase, nothing the card did not debit is completed, and no TSN was given twice.
   */
  function assertConsistent(card: VirtualCard, what: string): void {
    const app = card.state.applications[0]!;
    const asn = parseBasicData(fromHex(app.basicData), app.layout).asn;
    const rows = [...sim.purchases(1), ...sim.purchases(2)].filter((r) => r.asn === asn);
    assert.ok(rows.length > 0 || app.log.length === 0, `${what}: the front-ends know nothing of card ${asn}`);
    const debitedSerials = app.log.map((l) => parseInt(l.slice(0, 4), 16)).sort();
    const completed = rows.filter((r) => r.status === "completed");
    assert.deepEqual(completed.map((r) => r.ep_serial).sort(), debitedSerials, `${what}: completed purchases match the card's debits`);
    const initial = 5000;
    assert.equal(initial - app.balance, completed.reduce((n, r) => n + r.amount, 0), `${what}: money moved equals money completed`);
    for (const r of rows) {
      if (r.status === "authorized") assert.ok(!debitedSerials.includes(r.ep_serial), `${what}: a debit was left only authorized`);
    }
    for (const level of [1, 2] as const) {
      const tsns = sim.purchases(level).map((r) => r.tsn);
      assert.equal(new Set(tsns).size, tsns.length, `${what}: a TSN was given twice at level ${level}`);
    }
  }

  function nameOf(card: VirtualCard): string {
    for (const [name, c] of sim.cards) if (c === card) return name;
    throw new Error("card not in the simulation");
  }

  it("approves a 3DES T-Union card at level 1: card, terminal journal and front-end journal agree", async () => {
    const card = add(T_UNION);
    const o = next();
    const events = await sim.pay(nameOf(card), 350, o);
    assert.deepEqual(events.map((e) => e.event), ["waiting-for-card", "card-read", "approved"]);
    const approved = events[2]!;
    assert.equal(approved.level, 1);
    assert.equal(approved.balanceBefore, 5000);
    assert.equal(approved.balanceAfter, 4650);
    assert.equal(balance(card), 4650);
    assert.equal((approved.timings as { roundTrips: number }).roundTrips, 1);
    await until("the completion", () => sim.node.terminal.pendingCompletions === 0);
    const row = sim.purchases(1).find((p) => p.id === approved.purchaseId)!;
    assert.equal(row.status, "completed");
    assert.equal(row.outcome, "debited");
    assert.equal(row.tac, approved.tac);
    assert.equal(row.amount, 350);
    // Nothing of the purchase is left live in the terminal's journal: only the routing table.
    assert.equal(sim.node.journal.liveCount, 1);
  });

  it("approves an SM4 city card at level 2, opening the level-2 connection during the card exchange", async () => {
    const card = add(CITY);
    const events = await sim.pay(nameOf(card), 280, next());
    const approved = events.find((e) => e.event === "approved")!;
    assert.ok(approved, JSON.stringify(events));
    assert.equal(approved.level, 2);
    assert.equal(balance(card), 1000);
    await until("the completion", () => sim.node.terminal.pendingCompletions === 0);
    assert.equal(sim.purchases(2).find((p) => p.id === approved.purchaseId)?.status, "completed");
    assert.ok(!sim.purchases(1).some((p) => p.id === approved.purchaseId));
    // A second tap at level 2 finds the connection warm.
    const again = (await sim.pay(nameOf(card), 10, next())).find((e) => e.event === "approved")!;
    assert.equal((again.timings as { handshakes: number }).handshakes, 0);
  });

  it("declines locally, without a front-end call, when the card cannot pay or is out of date", async () => {
    const before1 = sim.purchases(1).length;
    const poor = add({ name: "poor", profiles: [{ ...T_UNION.profiles[0]!, balance: 120 }] });
    const expired = add({ name: "expired", profiles: [{ ...T_UNION.profiles[0]!, expiryDate: "20241231" }] });
    const future = add({ name: "future", profiles: [{ ...T_UNION.profiles[0]!, startDate: "20990101" }] });
    const disabled = add({ name: "disabled", profiles: [{ ...CITY.profiles[0]!, enabled: false }] });
    const elsewhere = add({ name: "elsewhere", profiles: [{ ...CITY.profiles[0]!, cityCode: "9999" }] });
    const cases: [VirtualCard, string][] = [
      [poor, "insufficient-balance"], [expired, "card-expired"], [future, "card-not-yet-valid"], [disabled, "card-not-enabled"], [elsewhere, "no-route"],
    ];
    for (const [card, reason] of cases) {
      const final = (await sim.pay(nameOf(card), 500, next())).at(-1)!;
      assert.equal(final.event, "declined");
      assert.equal(final.reason, reason);
    }
    assert.equal(sim.purchases(1).length, before1, "no authorization was asked for");
    assert.equal(balance(poor), 120);
  });

  it("relays the front-end's refusal of a hotlisted card; the card is untouched", async () => {
    const card = add(T_UNION, HOTLISTED_ASN);
    const final = (await sim.pay(nameOf(card), 100, next())).at(-1)!;
    assert.equal(final.event, "declined");
    assert.equal(final.reason, "card-hotlisted");
    assert.equal(balance(card), 5000);
  });

  it("times out without a card, and a cancel ends the wait", async () => {
    const timeout = (await sim.pay(undefined, 100, next(), { timeoutMs: 300 })).at(-1)!;
    assert.equal(timeout.reason, "timeout");
    const o = next();
    sim.controller.send({ type: "pay", amount: 100, order: o, timeoutMs: 10_000 });
    await sim.controller.next((e) => e.order === o && e.event === "waiting-for-card");
    sim.controller.send({ type: "cancel" });
    const cancelled = await sim.controller.next((e) => e.order === o && e.event === "declined");
    assert.equal(cancelled.reason, "cancelled");
  });

  it("answers bad controller requests with an error event and changes nothing", async () => {
    const bad = ["not json", "[1,2]", JSON.stringify({ type: "refund" }), JSON.stringify({ type: "pay", amount: -5, order: "X" }),
      JSON.stringify({ type: "pay", amount: 1.5, order: "X" }), JSON.stringify({ type: "pay", amount: "100", order: "X" }),
      JSON.stringify({ type: "pay", amount: 100, order: "" }), JSON.stringify({ type: "pay", amount: 100, order: "X", timeoutMs: 5 }),
      "x".repeat(5000)];
    for (const line of bad) {
      const before = sim.controller.events.length;
      sim.controller.send(line);
      const error = await sim.controller.next((e) => e.event === "error");
      assert.ok(typeof error.code === "string" && typeof error.message === "string", JSON.stringify(error));
      assert.equal(sim.controller.events.length, before + 1, `only an error for ${line.slice(0, 40)}`);
    }
    sim.controller.send({ type: "status" });
    const status = await sim.controller.next((e) => e.event === "status");
    assert.equal(status.state, "idle");
    assert.deepEqual(sim.controller.garbage, []);
  });

  it("declines with frontend-unavailable when the front-end is down before authorization; the card is untouched", async () => {
    const card = add(T_UNION);
    const serial = card.state.applications[0]!.epSerial;
    await sim.stopFrontend(1);
    try {
      const final = (await sim.pay(nameOf(card), 100, next())).at(-1)!;
      assert.equal(final.event, "declined");
      assert.equal(final.reason, "frontend-unavailable");
      assert.equal(balance(card), 5000);
      assert.equal(card.state.applications[0]!.epSerial, serial);
    } finally {
      await sim.startFrontendAgain(1);
    }
  });

  it("approves when the front-end goes down after DEBIT, and delivers the completion once it is back", async () => {
    const card = add(T_UNION);
    let stopping: Promise<void> | undefined;
    onTrace = (line) => {
      if (!stopping && line.includes("front-end: TSN")) stopping = sim.stopFrontend(1);
    };
    const approved = (await sim.pay(nameOf(card), 240, next())).at(-1)!;
    assert.equal(approved.event, "approved");
    await stopping;
    assert.equal(balance(card), 4760);
    // In the front-end's place, a listener that only counts connections and drops them: a delivery attempt reaching it
    // is the terminal retrying while the front-end is down, with its completion still queued.
    let attempts = 0;
    const standIn = createServer((socket) => { attempts++; socket.destroy(); });
    await new Promise<void>((ok) => standIn.listen(Number(new URL(sim.level1.url).port), "127.0.0.1", ok));
    try {
      await until("the terminal to retry the completion while the front-end is down", () => attempts > 0);
    } finally {
      await new Promise((ok) => standIn.close(ok));
    }
    assert.equal(sim.node.terminal.pendingCompletions, 1, "the completion waits for the front-end");
    await sim.startFrontendAgain(1);
    await until("the completion after the front-end returned", () => sim.node.terminal.pendingCompletions === 0, 20_000);
    const row = sim.purchases(1).find((p) => p.id === approved.purchaseId)!;
    assert.equal(row.status, "completed");
    assert.equal(row.tac, approved.tac);
  });

  for (const when of ["before", "after"] as const) {
    it(`recovers a card pulled ${when} it commits the DEBIT when it is tapped again`, async () => {
      const card = add(T_UNION);
      card.armTear({ command: "debit", when });
      const o = next();
      const events = await sim.pay(nameOf(card), 300, o, { keepCard: true });
      const unknown = events.at(-1)!;
      assert.equal(unknown.event, "unknown-outcome");
      // The customer taps the card again while the terminal is still looking for it.
      sim.emulator.remove(card);
      sim.emulator.place(card);
      const resolved = await sim.controller.next((e) => e.event === "resolved" && e.order === o);
      sim.emulator.remove(card);
      assert.equal(resolved.result, when === "before" ? "declined" : "approved");
      assert.equal(balance(card), when === "before" ? 5000 : 4700);
      await until("the completion", () => sim.node.terminal.pendingCompletions === 0);
      const row = sim.purchases(1).find((p) => p.id === unknown.purchaseId)!;
      assert.equal(row.status, when === "before" ? "voided" : "completed");
      if (when === "after") assert.equal(row.tac, resolved.tac);
      assert.equal(sim.node.terminal.unresolved, 0);
    });
  }

  it("resolves a torn purchase on a later payment with the same card, then takes the new payment", async () => {
    sim.stopTerminal();
    await sim.startTerminal({ recoveryWindowMs: 200 });
    try {
      const card = add(T_UNION);
      card.armTear({ command: "debit", when: "after" });
      const torn = next();
      const first = await sim.pay(nameOf(card), 150, torn, { timeoutMs: 300 });
      assert.equal(first.at(-1)!.event, "unknown-outcome");
      await sim.controller.next((e) => e.event === "status" || true, 10).catch(() => undefined);
      await until("the recovery window to close", () => sim.node.terminal.state === "idle", 5000);
      const o = next();
      const events = await sim.pay(nameOf(card), 50, o);
      const resolved = sim.controller.events.find((e) => e.event === "resolved" && e.order === torn)!;
      assert.equal(resolved.result, "approved");
      assert.equal(events.at(-1)!.event, "approved");
      assert.equal(balance(card), 5000 - 150 - 50);
    } finally {
      sim.stopTerminal();
      await sim.startTerminal();
    }
  });

  it("strict mode approves only after the front-end acknowledged the completion", async () => {
    sim.stopTerminal();
    await sim.startTerminal({ strict: true });
    try {
      const card = add(T_UNION);
      const o = next();
      let statusAtApproval: string | undefined;
      sim.controller.onEvent = (e) => {
        if (e.event === "approved" && e.order === o) statusAtApproval = sim.purchases(1).find((p) => p.id === e.purchaseId)?.status;
      };
      const approved = (await sim.pay(nameOf(card), 99, o)).at(-1)!;
      assert.equal(approved.event, "approved");
      assert.equal(approved.acknowledged, true);
      assert.equal(statusAtApproval, "completed");
      assert.equal((approved.timings as { roundTrips: number }).roundTrips, 2);
    } finally {
      sim.controller.onEvent = undefined;
      sim.stopTerminal();
      await sim.startTerminal();
    }
  });

  it("stops taking payments when its journal is full, loses no record, and takes them again once records are settled", async () => {
    sim.stopTerminal();
    // A small journal: 4 blocks of 2 KiB. Torn purchases keep their intents live until their cards come back.
    await sim.startTerminal({ recoveryWindowMs: 50 }, undefined, { file: "small.journal", size: 4 * 2048, blockSize: 2048 });
    const torn: VirtualCard[] = [];
    try {
      let final;
      for (let i = 0; i < 30; i++) {
        const card = add(T_UNION);
        card.armTear({ command: "debit", when: "before" });
        final = (await sim.pay(nameOf(card), 100, next(), { timeoutMs: 200 })).at(-1)!;
        if (final.event === "declined" && final.reason === "journal-full") break;
        assert.equal(final.event, "unknown-outcome", JSON.stringify(final));
        torn.push(card);
        await until("the recovery window to close", () => sim.node.terminal.state === "idle", 5000);
      }
      assert.equal(final!.reason, "journal-full", "the journal never filled up");
      assert.ok(torn.length >= 2, `only ${torn.length} purchases fitted`);
      // Full, not forgetful: every torn purchase is still in the journal after a restart.
      sim.stopTerminal();
      await sim.startTerminal({ recoveryWindowMs: 2000 }, undefined, { file: "small.journal", size: 4 * 2048, blockSize: 2048 });
      assert.equal(sim.node.terminal.unresolved, torn.length);
      // The customers come back: each tap settles its torn purchase (not debited) even while the journal is full,
      // and space returns as the completions are acknowledged.
      for (const [index, card] of torn.entries()) {
        const events = await sim.pay(nameOf(card), 1, next(), { timeoutMs: 3000 });
        const final = events.at(-1)!;
        assert.ok(final.event === "approved" || final.reason === "journal-full", JSON.stringify(final));
        assert.equal(sim.node.terminal.unresolved, torn.length - index - 1, "the tap settled its torn purchase");
      }
      await until("every completion", () => sim.node.terminal.pendingCompletions === 0 && sim.node.terminal.unresolved === 0);
      const fresh = add(T_UNION);
      assert.equal((await sim.pay(nameOf(fresh), 100, next())).at(-1)!.event, "approved");
      for (const card of torn) assertConsistent(card, "after the journal was full");
    } finally {
      sim.stopTerminal();
      await sim.startTerminal();
    }
  });

  it("a terminal killed at any journal write and restarted loses nothing and reuses no TSN", async () => {
    // Probe: how many journal writes one approved purchase makes.
    let writes = 0;
    const counting = (storage: JournalStorage): JournalStorage => ({
      size: storage.size, blockSize: storage.blockSize, read: (o, l) => storage.read(o, l),
      write: (o, b) => { writes++; storage.write(o, b); }, eraseBlock: (b) => { writes++; storage.eraseBlock(b); },
    });
    sim.stopTerminal();
    await sim.startTerminal({}, counting);
    const probe = add(T_UNION);
    writes = 0;
    await sim.pay(nameOf(probe), 10, next());
    await until("the completion", () => sim.node.terminal.pendingCompletions === 0);
    const total = writes;
    assert.ok(total >= 4, `a purchase made only ${total} journal writes`);

    let deaths = 0;
    let recoveries = 0;
    for (let cut = 1; cut <= total; cut++) {
      const card = add(T_UNION);
      let count = 0;
      let dead = false;
      const dying = (storage: JournalStorage): JournalStorage => ({
        size: storage.size, blockSize: storage.blockSize, read: (o, l) => storage.read(o, l),
        write: (o, b) => {
          if (dead || ++count === cut) { die(); throw new PowerCut(); }
          storage.write(o, b);
        },
        eraseBlock: (b) => {
          if (dead || ++count === cut) { die(); throw new PowerCut(); }
          storage.eraseBlock(b);
        },
      });
      // Dying means the whole terminal stops at once: no event, no completion, no APDU after the cut.
      const die = () => {
        if (dead) return;
        dead = true;
        sim.stopTerminal();
      };
      sim.stopTerminal();
      await sim.startTerminal({}, dying);
      const o = next();
      sim.emulator.place(card);
      let finished = false;
      sim.controller.send({ type: "pay", amount: 200, order: o, timeoutMs: 3000 });
      sim.controller.next((e) => e.order === o && (e.event === "approved" || e.event === "declined"), 10_000).then(() => { finished = true; }, () => undefined);
      await until(`cut ${cut}: the terminal to finish or die`, () => dead || (finished && sim.node.terminal.pendingCompletions === 0), 10_000);
      sim.emulator.remove(card);
      // Power back: a new terminal on the same journal file; the customer taps again if the outcome is open.
      sim.stopTerminal();
      await sim.startTerminal();
      if (dead) deaths++;
      if (sim.node.terminal.unresolved > 0) {
        recoveries++;
        sim.emulator.place(card);
        const again = next();
        sim.controller.send({ type: "pay", amount: 1, order: again, timeoutMs: 3000 });
        await sim.controller.next((e) => e.order === again && (e.event === "approved" || e.event === "declined"));
        sim.emulator.remove(card);
      }
      await until(`cut ${cut}: completions delivered`, () => sim.node.terminal.pendingCompletions === 0 && sim.node.terminal.unresolved === 0, 10_000);
      assertConsistent(card, `cut at write ${cut} of ${total}`);
    }
    assert.equal(deaths, total, "every cut point was reached");
    assert.ok(recoveries >= 1, "some cut left an outcome for the card to settle");
    {    }
  });
});
