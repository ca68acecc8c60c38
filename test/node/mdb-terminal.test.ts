// The terminal as an MDB cashless device: the VMC simulator (in memory, polling every 25 ms) against the
// CashlessDevice, whose vends run the terminal's real purchase (PN532 emulator, virtual cards, TLS front-ends).
import assert from "node:assert/strict";
import type { VirtualCard } from "../../tools/cardsim/card";
import { INSTANT_TIMING } from "../../tools/pn532sim/index";
import { LEVEL1_CITY, Simulation } from "../../tools/simulation/index";
import { startVending, type Vending } from "../../tools/vmc/vending";
import type { TerminalEvent } from "../../src/terminal";

describe("terminal as MDB cashless device (selection first, level 3)", function () {
  this.timeout(60_000);
  let sim: Simulation;
  let m: Vending;
  let listen: (e: TerminalEvent) => void = () => undefined;

  before(async () => {
    sim = await Simulation.start({ link: "memory", timing: INSTANT_TIMING, onEvent: (e) => listen(e) });
    m = await startVending(sim);
    listen = (e) => m.onTerminalEvent(e);
  });
  after(async () => {
    await sim?.close();
  });

  let n = 0;
  function card(balance: number): VirtualCard {
    const asn = `031010000000007${String(++n).padStart(5, "0")}`;
    return sim.addCard({ name: `mdb-${n}`, profiles: [{ layout: "tunion", algorithm: "3des", asn, cityCode: LEVEL1_CITY, balance }] });
  }

  it("approves a vend with the card's purchase and keeps the debit on VEND SUCCESS", async () => {
    const c = card(5000);
    const r = await m.vend(c, 350, 12);
    assert.equal(r.answer, "vend-approved");
    assert.equal(r.amount, 350);
    assert.equal(c.state.applications[0]!.balance, 4650);
    await m.vmc.send({ kind: "vend-success", item: 12 });
    await m.endSession();
    console.log(`      VEND REQUEST -> VEND APPROVED ${r.ms.toFixed(0)} ms (card in the field, 25 ms polling, instant PN532 timing)`);
  });

  it("denies a card without the balance, and charges nothing", async () => {
    const c = card(100);
    const r = await m.vend(c, 350, 4);
    assert.equal(r.answer, "vend-denied");
    assert.equal(c.state.applications[0]!.balance, 100);
    await m.endSession();
  });

  it("VEND FAILURE with the card gone: the refund is owed at the front-end and the VMC hears 0A C0", async () => {
    const c = card(5000);
    const r = await m.vend(c, 200, 7);
    assert.equal(r.answer, "vend-approved");
    const f = await m.vendFailure(undefined);
    assert.equal(f.answer, "refund-failed");
    assert.equal(m.owed.length, 1);
    assert.deepEqual({ ...(m.owed[0] as object), purchaseId: undefined }, { order: "MDB-3-7", amount: 200, purchaseId: undefined, reason: "vend-failure" });
    assert.equal(c.state.applications[0]!.balance, 4800);
    // Owed at the front-end, for settlement: the refund is recorded there, not only reported to the VMC.
    const id = (m.owed[0] as { purchaseId?: string }).purchaseId;
    for (let i = 0; i < 100 && !sim.refunds(1).some((x) => x.purchase_id === id); i++) await new Promise((res) => setTimeout(res, 20));
    const row = sim.refunds(1).find((x) => x.purchase_id === id);
    assert.equal(row?.status, "owed");
    assert.equal(row?.owed_reason, "card-gone");
    assert.equal(row?.amount, 200);
    await m.endSession();
  });

  it("VEND FAILURE with the card in the field: the price is loaded back onto it and the VMC hears ACK", async () => {
    const c = card(5000);
    const r = await m.vend(c, 250, 8);
    assert.equal(r.answer, "vend-approved");
    const f = await m.vendFailure(c);
    assert.equal(f.answer, "refunded");
    assert.equal(c.state.applications[0]!.balance, 5000);
    assert.equal(c.state.applications[0]!.onlineSerial, 1);
    await m.endSession();
    console.log(`      VEND FAILURE -> refund ACK ${f.ms.toFixed(0)} ms (card in the field)`);
  });

  it("VEND CANCEL while waiting for a card: VEND DENIED, nothing charged", async () => {
    assert.equal((await m.vmc.send({ kind: "vend-request", price: 150, item: 9 })).kind, "ack");
    await m.vmc.send({ kind: "poll" });
    await m.vmc.send({ kind: "vend-cancel" });
    await m.vmc.pollUntil("vend-denied");
    await m.endSession();
    // The terminal is free again for the next selection.
    const c = card(1000);
    for (let i = 0; i < 40 && sim.node.terminal.state !== "idle"; i++) await new Promise((res) => setTimeout(res, 25));
    assert.equal((await m.vend(c, 100, 1)).answer, "vend-approved");
    await m.vmc.send({ kind: "vend-success", item: 1 });
    await m.endSession();
  });
});

describe("npm start -- --mdb (the simulated vending machine)", function () {
  this.timeout(120_000);
  it("runs every flow, prints decoded MDB exchanges next to the APDUs, and ends with status 0", async () => {
    const { runMdbDemo } = await import("../../tools/vmc/demo");
    const lines: string[] = [];
    const status = await runMdbDemo({ link: "memory", log: (l) => lines.push(l) });
    assert.equal(status, 0, lines.filter((l) => l.startsWith("FAIL")).join("\n"));
    for (const want of ["  MDB -> VEND REQUEST price 3.50 item 12", "  MDB <- VEND APPROVED 3.50", "  MDB <- VEND DENIED",
      "  MDB -> VEND CANCEL"]) {
      assert.ok(lines.includes(want), `missing: ${want}`);
    }
    assert.ok(lines.some((l) => l.startsWith("    ") && /APDU|->|<-/.test(l)), "APDU trace lines");
    assert.equal(lines.filter((l) => l.startsWith("ok ")).length, 4);
    assert.ok(lines.some((l) => l.includes("CREDIT FOR LOAD")), "the refund's CREDIT FOR LOAD in the trace");
  });
});
