// Fault runs of the refund onto the card (src/refund.ts), in process: the terminal of the simulation (PN532 emulator,
// virtual cards, TLS front-ends with real SQLite files) pays, then refunds the purchase as after a VEND FAILURE.
// - a tear (card pulled) before and after every APDU of the refund, the card coming back in the refund's window or
//   only at its next tap;
// - a power cut at every journal write of the refund: the terminal stops at once (nothing after the write reaches the
//   card, the journal or the front-end), is started again on the same journal, and the card is tapped again.
// After each run the money check (tools/rigs/harness/consistency.ts): the card, the terminal's journal and the front-end
// agree, nothing is refunded twice, no refund is lost.
import assert from "node:assert/strict";
import type { JournalStorage } from "../../../modules/journal/storage";
import type { TerminalEvent } from "../../../src/terminal";
import { readRefundRecord } from "../../../src/refund-records";
import type { TearWhen, VirtualCard, VirtualCardOptions } from "../../../tools/sim/cardsim/card";
import { cardAsn, moneyViolations, refundViolations } from "../../../tools/rigs/harness/consistency";
import { FaultTally } from "../../../tools/rigs/harness/faults";
import { INSTANT_TIMING } from "../../../tools/sim/pn532sim/index";
import { LEVEL1_CITY, Simulation } from "../../../tools/sim/simulation/index";
import { until } from "../until";

type Approved = Extract<TerminalEvent, { event: "approved" }>;

describe("fault injection: refunds onto the card (tears and power cuts)", function () {
  this.timeout(300_000);
  let sim: Simulation;
  let events: TerminalEvent[] = [];

  before(async () => {
    sim = await Simulation.start({ link: "memory", timing: INSTANT_TIMING, terminal: { refundCardWaitMs: 1000, recoveryWindowMs: 1000 }, onEvent: (e) => events.push(e) });
  });
  after(async () => {
    await sim?.close();
  });

  let n = 0;
  function newCard(balance = 1000, options?: VirtualCardOptions): VirtualCard {
    const asn = `031010000000009${String(++n).padStart(5, "0")}`;
    return sim.addCard({ name: `refund-${n}`, profiles: [{ layout: "tunion", algorithm: "3des", asn, cityCode: LEVEL1_CITY, balance }], options });
  }

  /** A purchase with the card in the field; it stays there. */
  async function pay(card: VirtualCard, amount: number): Promise<Approved> {
    await until("an idle terminal", () => sim.node.terminal.state === "idle");
    const order = `R-${++n}`;
    sim.emulator.place(card);
    await sim.node.terminal.pay({ amount, order, timeoutMs: 3000 });
    const approved = events.find((e): e is Approved => e.event === "approved" && e.order === order);
    assert.ok(approved, `purchase ${order}: ${JSON.stringify(events.filter((e) => "order" in e && e.order === order))}`);
    return approved;
  }

  function refund(a: Approved) {
    return sim.node.terminal.refund({ purchaseId: a.purchaseId, order: a.order, amount: a.amount, asn: a.asn, cityCode: a.cityCode, application: a.application });
  }

  /** Everything delivered and nothing in doubt, then the three records checked against each other. */
  async function check(card: VirtualCard, initial: number, expected: string[]): Promise<string[]> {
    const t = sim.node.terminal;
    await until("the terminal to settle", () => t.state === "idle" && t.pendingCompletions === 0 && t.refundsInDoubt === 0 && t.unresolved === 0)
      .catch((e: Error) => {
        throw new Error(`${e.message}: ${t.state}, completions ${t.pendingCompletions}, in doubt ${t.refundsInDoubt}, unresolved ${t.unresolved}; ` +
          JSON.stringify(events.filter((x) => x.event === "error" || x.event === "refund").slice(-5)));
      });
    const purchases = sim.purchases(1);
    return [...moneyViolations({ card, initialBalance: initial, purchases: [{ level: 1, rows: purchases }] }),
      ...refundViolations(card, sim.refunds(1), purchases, expected)];
  }

  it("with no fault: refunded onto the card, completed at the front-end with a valid TAC", async () => {
    const card = newCard();
    const a = await pay(card, 200);
    assert.equal(await refund(a), "refunded");
    sim.emulator.remove(card);
    assert.equal(card.state.applications[0]!.balance, 1000);
    assert.deepEqual(await check(card, 1000, [a.purchaseId]), []);
    const row = sim.refunds(1).find((r) => r.purchase_id === a.purchaseId)!;
    assert.equal(row.status, "completed");
    // A second refund of the same purchase: refused by the front-end, nothing loaded, still one refund.
    sim.emulator.place(card);
    assert.equal(await refund(a), "owed");
    sim.emulator.remove(card);
    assert.equal(card.state.applications[0]!.balance, 1000);
    assert.deepEqual(await check(card, 1000, [a.purchaseId]), []);
    assert.equal(sim.refunds(1).find((r) => r.purchase_id === a.purchaseId)!.status, "completed");
  });

  it("a torn CREDIT on a card whose load proof has zeros for MAC2: settled by its TAC, completed, no reconciliation", async () => {
    for (const back of ["in the window", "at the next tap"] as const) {
      const card = newCard(1000, { loadProof: "zeros" });
      const a = await pay(card, 200);
      card.armTear({ command: "credit", when: "after" });
      const returning = back === "in the window" ? setTimeout(() => sim.emulator.place(card), 300) : undefined;
      const result = await refund(a);
      clearTimeout(returning);
      if (back === "at the next tap") {
        assert.equal(result, "in-doubt");
        sim.emulator.remove(card);
        await pay(card, 1);
      } else assert.equal(result, "refunded", "the card has the money back: the refund is a success");
      sim.emulator.remove(card);
      assert.equal(card.state.applications[0]!.balance, back === "at the next tap" ? 999 : 1000);
      const settled = events.find((e) => e.event === "refund" && e.purchaseId === a.purchaseId && e.result === "settled-refunded");
      assert.ok(settled && settled.event === "refund" && settled.proof === "tac", `card back ${back}: ${JSON.stringify(settled)}`);
      assert.deepEqual(await check(card, 1000, [a.purchaseId]), []);
      const row = sim.refunds(1).find((r) => r.purchase_id === a.purchaseId)!;
      assert.deepEqual([row.status, row.tac_valid], ["completed", 1], `card back ${back}`);
    }
  });

  it("an outcome settled by its TAC reads back from the journal after a restart (and a malformed proof field does not)", () => {
    const base = { k: "refund-outcome", purchaseId: "P1", url: "https://x", order: "R-1", amount: 200 };
    const byTac = { ...base, completion: { outcome: "credited", tac: "A1B2C3D4", proof: "tac" } };
    assert.deepEqual(readRefundRecord(byTac), byTac);
    assert.equal(readRefundRecord({ ...base, completion: { outcome: "credited", tac: "A1B2C3D4", proof: "mac2" } }), undefined);
  });

  it("a tear before and after every APDU of the refund: 0 violations", async () => {
    const tally = new FaultTally("tear at every APDU of a refund");
    const commands = ["select", "read", "init", "credit"] as const;
    for (const command of commands) {
      for (const when of ["before", "after"] as TearWhen[]) {
        for (const back of ["in the window", "at the next tap"] as const) {
          const card = newCard();
          const a = await pay(card, 200);
          card.armTear({ command, when });
          const returning = back === "in the window" ? setTimeout(() => sim.emulator.place(card), 300) : undefined;
          const result = await refund(a);
          clearTimeout(returning);
          if (back === "at the next tap" || result !== "refunded") {
            // The customer taps again (a purchase of 1 fen): a load in doubt is settled by the card's online serial.
            sim.emulator.remove(card);
            await pay(card, 1);
          }
          sim.emulator.remove(card);
          const v = await check(card, 1000, [a.purchaseId]);
          tally.add(`${when} ${command}, card back ${back}: ${result}`, v);
        }
      }
    }
    console.log(`      ${tally.line()}`);
    assert.deepEqual(tally.violations, []);
    assert.equal(tally.points, 16);
  });

  it("a power cut at every journal write of the refund: 0 violations", async () => {
    const tally = new FaultTally("power cut at every journal write of a refund");
    let finished = false;
    for (let k = 1; k <= 40 && !finished; k++) {
      let armed = false;
      let writes = 0;
      let dead = false;
      let intentLanded = false;
      const cut = () => {
        if (dead) throw new Error("power is off");
        if (armed && ++writes >= k) {
          dead = true;
          // The power goes: nothing after this write reaches the journal, the card or the front-end.
          sim.stopTerminal();
          throw new Error("power cut");
        }
      };
      const wrap = (s: JournalStorage): JournalStorage => ({
        size: s.size, blockSize: s.blockSize, read: (o, l) => s.read(o, l),
        write: (o, b) => {
          cut();
          if (armed && new TextDecoder().decode(b).includes("refund-intent")) intentLanded = true;
          s.write(o, b);
        },
        eraseBlock: (b) => { cut(); s.eraseBlock(b); },
      });
      sim.stopTerminal();
      await sim.startTerminal({}, wrap);
      await until("ready", () => sim.node.terminal.state === "idle");
      const card = newCard();
      const a = await pay(card, 200);
      armed = true;
      const result = await refund(a).catch((e: Error) => `threw ${e.message}`);
      // The outcome's delivery and the retiring of its record write on after refund() returns.
      const t = sim.node.terminal;
      await until("settled or cut", () => dead || (t.pendingCompletions === 0 && t.refundsInDoubt === 0));
      await new Promise((r) => setTimeout(r, 100));
      if (!dead) {
        finished = true;
        sim.emulator.remove(card);
        tally.add(`no cut (k=${k}): ${result}`, await check(card, 1000, [a.purchaseId]));
        break;
      }
      sim.stopTerminal();
      sim.emulator.remove(card);
      await sim.startTerminal();
      await until("ready after the cut", () => sim.node.terminal.state === "idle");
      await pay(card, 1);
      sim.emulator.remove(card);
      // A cut before the intent reached the journal: the refund never began, so it is neither loaded nor owed.
      const v = await check(card, 1000, intentLanded ? [a.purchaseId] : []);
      if (!intentLanded && sim.refunds(1).some((r) => r.purchase_id === a.purchaseId)) v.push("a refund that never reached the journal is at the front-end");
      const row = sim.refunds(1).find((r) => r.purchase_id === a.purchaseId);
      tally.add(`cut at write ${k}: ${row ? row.status : "not begun"}, card ${card.state.applications[0]!.balance}`, v);
    }
    console.log(`      ${tally.line()}`);
    assert.ok(finished, "a run without a cut ends the sweep");
    assert.ok(tally.points >= 4, `fault points: ${tally.tried.join(", ")}`);
    assert.deepEqual(tally.violations, []);
    void cardAsn;
  });
});
