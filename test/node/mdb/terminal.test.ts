// The terminal as an MDB cashless device: the VMC simulator (in memory, polling every 25 ms) against the
// CashlessDevice, whose vends run the terminal's real purchase (PN532 emulator, virtual cards, TLS front-ends).
import assert from "node:assert/strict";
import { INSTANT_TIMING } from "../../../tools/sim/pn532sim/index";
import { LEVEL1_CITY, Simulation } from "../../../tools/sim/simulation/index";
import { startVending, type Vending } from "../../../tools/sim/simulation/mdb-vending";
import { balanceOf, useVending } from "./support";
import { until } from "../until";

describe("terminal as MDB cashless device (selection first, level 3)", function () {
  this.timeout(60_000);
  const w = useVending("7");
  const card = (balance: number) => w.card(balance);

  it("approves a vend with the card's purchase and keeps the debit on VEND SUCCESS", async () => {
    const c = card(5000);
    const r = await w.m.vend(c, 350, 12);
    assert.equal(r.answer, "vend-approved");
    assert.equal(r.amount, 350);
    assert.equal(c.state.applications[0]!.balance, 4650);
    await w.m.vmc.send({ kind: "vend-success", item: 12 });
    await w.m.endSession();
    console.log(`      VEND REQUEST -> VEND APPROVED ${r.ms.toFixed(0)} ms (card in the field, 25 ms polling, instant PN532 timing)`);
  });

  it("denies a card without the balance, and charges nothing", async () => {
    const c = card(100);
    const r = await w.m.vend(c, 350, 4);
    assert.equal(r.answer, "vend-denied");
    assert.equal(c.state.applications[0]!.balance, 100);
    await w.m.endSession();
  });

  it("VEND FAILURE with the card gone: the refund is owed at the front-end and the VMC hears 0A C0", async () => {
    const c = card(5000);
    const r = await w.m.vend(c, 200, 7);
    assert.equal(r.answer, "vend-approved");
    const f = await w.m.vendFailure(undefined);
    assert.equal(f.answer, "refund-failed");
    assert.equal(w.m.owed.length, 1);
    assert.deepEqual({ ...(w.m.owed[0] as object), purchaseId: undefined }, { order: "MDB-3-7", amount: 200, purchaseId: undefined, reason: "vend-failure" });
    assert.equal(c.state.applications[0]!.balance, 4800);
    // Owed at the front-end, for settlement: the refund is recorded there, not only reported to the VMC.
    const id = (w.m.owed[0] as { purchaseId?: string }).purchaseId;
    await until("the owed refund at the front-end", () => w.sim.refunds(1).some((x) => x.purchase_id === id));
    const row = w.sim.refunds(1).find((x) => x.purchase_id === id);
    assert.equal(row?.status, "owed");
    assert.equal(row?.owed_reason, "card-gone");
    assert.equal(row?.amount, 200);
    await w.m.endSession();
  });

  it("VEND FAILURE with the card in the field: the price is loaded back onto it and the VMC hears ACK", async () => {
    const c = card(5000);
    const r = await w.m.vend(c, 250, 8);
    assert.equal(r.answer, "vend-approved");
    const f = await w.m.vendFailure(c);
    assert.equal(f.answer, "refunded");
    assert.equal(c.state.applications[0]!.balance, 5000);
    assert.equal(c.state.applications[0]!.onlineSerial, 1);
    await w.m.endSession();
    console.log(`      VEND FAILURE -> refund ACK ${f.ms.toFixed(0)} ms (card in the field)`);
  });

  it("VEND FAILURE, CREDIT torn on a card whose load proof has zeros for MAC2: settled by its TAC, the VMC hears ACK", async () => {
    const c = w.sim.addCard({ name: "mdb-7-zeros", options: { loadProof: "zeros" },
      profiles: [{ layout: "tunion", algorithm: "3des", asn: "03101000000007999001", cityCode: LEVEL1_CITY, balance: 5000 }] });
    const r = await w.m.vend(c, 300, 6);
    assert.equal(r.answer, "vend-approved");
    c.armTear({ command: "credit", when: "after" });
    const back = setTimeout(() => w.sim.emulator.place(c), 300);
    const f = await w.m.vendFailure(c);
    clearTimeout(back);
    // The card has its money back: the VMC is told so (ACK), not 0A C0 (refund failed).
    assert.equal(f.answer, "refunded");
    assert.equal(c.state.applications[0]!.balance, 5000);
    const id = w.sim.purchases(1).find((p) => p.asn === "03101000000007999001")?.id;
    assert.ok(id);
    assert.equal(w.m.owed.filter((o) => o.purchaseId === id).length, 0, "nothing owed");
    for (let i = 0; i < 100 && w.sim.refunds(1).find((x) => x.purchase_id === id)?.status !== "completed"; i++) await new Promise((res) => setTimeout(res, 20));
    const row = w.sim.refunds(1).find((x) => x.purchase_id === id);
    assert.deepEqual([row?.status, row?.tac_valid], ["completed", 1]);
    await w.m.endSession();
  });

  it("VEND CANCEL while waiting for a card: VEND DENIED, nothing charged", async () => {
    assert.equal((await w.m.vmc.send({ kind: "vend-request", price: 150, item: 9 })).kind, "ack");
    await w.m.vmc.send({ kind: "poll" });
    await w.m.vmc.send({ kind: "vend-cancel" });
    await w.m.vmc.pollUntil("vend-denied");
    await w.m.endSession();
    // The terminal is free again for the next selection. It may already be waiting for a card again (seen here:
    // "waiting-for-card", not "idle"), so the approved vend itself is the proof, not a state read between two looks.
    const c = card(1000);
    assert.equal((await w.m.vend(c, 100, 1)).answer, "vend-approved");
    await w.m.vmc.send({ kind: "vend-success", item: 1 });
    await w.m.endSession();
  });
});

describe("npm start -- --mdb (the simulated vending machine)", function () {
  this.timeout(120_000);
  it("runs every flow, prints decoded MDB exchanges next to the APDUs, and ends with status 0", async () => {
    const { runMdbDemo } = await import("../../../tools/sim/simulation/mdb-demo");
    const lines: string[] = [];
    const status = await runMdbDemo({ link: "memory", log: (l) => lines.push(l) });
    assert.equal(status, 0, lines.filter((l) => l.startsWith("FAIL")).join("\n"));
    for (const want of ["  MDB -> VEND REQUEST price 3.50 item 12", "  MDB <- VEND APPROVED 3.50", "  MDB <- VEND DENIED",
      "  MDB -> VEND CANCEL"]) {
      assert.ok(lines.includes(want), `missing: ${want}`);
    }
    assert.ok(lines.some((l) => l.startsWith("    ") && /APDU|->|<-/.test(l)), "APDU trace lines");
    assert.ok(lines.some((l) => l.includes("CREDIT FOR LOAD")), "the refund's CREDIT FOR LOAD in the trace");
    // The refund's result in words: "refund refunded" said nothing twice.
    assert.ok(lines.some((l) => /MDB vend MDB-\d+-7: refund loaded back onto the card$/.test(l)), "the refund's result in the trace");
    assert.ok(!lines.some((l) => /refund (refunded|owed|in-doubt|failed)\b/.test(l)), "no bare result names after \"refund\"");
    assert.ok(lines.some((l) => l.startsWith("  MDB <- BEGIN SESSION funds 30.00")), "card first: BEGIN SESSION with the balance");
    assert.equal(lines.filter((l) => l.startsWith("ok ")).length, 6);
    // The VMC is strict: every answer that may be direct was (a deferred one would have thrown MDB_DEFERRED_REPLY).
    assert.ok(lines.some((l) => /^ok +\d+ direct replies, 0 deferred/.test(l)), "strict VMC, direct replies only");
  });
});

describe("terminal as MDB cashless device (card first, multivend, level 3)", function () {
  this.timeout(60_000);
  const w = useVending("8", { multivend: true });
  const card = (balance: number) => w.card(balance);
  const balance = balanceOf;

  it("a tap begins the session with the balance; two vends in it, each its own purchase of that card", async () => {
    const c = card(5000);
    assert.equal(await w.m.tap(c), 5000);
    assert.equal(w.m.device.state, "idle");
    const r1 = await w.m.vendInSession(350, 12);
    assert.deepEqual([r1.answer, r1.amount], ["vend-approved", 350]);
    await w.m.vmc.send({ kind: "vend-success", item: 12 });
    const r2 = await w.m.vendInSession(200, 3);
    assert.deepEqual([r2.answer, r2.amount], ["vend-approved", 200]);
    await w.m.vmc.send({ kind: "vend-success", item: 3 });
    await w.m.endSession();
    assert.equal(balance(c), 4450);
    // Left in the field, the same card does not begin another session by itself: the reader reads it again (a SELECT
    // each time), twice, and the device stays enabled.
    const selects = () => c.exchanges.filter((e) => e.command[1] === 0xa4).length;
    const selected = selects();
    await until("the reader to read the card left in the field twice more", () => selects() >= selected + 2);
    assert.equal(w.m.device.state, "enabled");
    w.sim.emulator.remove(c);
  });

  it("a vend above the balance is denied and charges nothing; the session goes on", async () => {
    const c = card(300);
    assert.equal(await w.m.tap(c), 300);
    assert.equal((await w.m.vendInSession(350, 4)).answer, "vend-denied");
    assert.equal(balance(c), 300);
    assert.equal(w.m.device.state, "idle");
    await w.m.endSession();
    w.sim.emulator.remove(c);
  });

  it("only the card that began the session pays: another card in the field is refused", async () => {
    const a = card(5000);
    await w.m.tap(a);
    w.sim.emulator.remove(a);
    const b = card(5000);
    w.sim.emulator.place(b);
    assert.equal((await w.m.vendInSession(100, 1)).answer, "vend-denied");
    assert.equal(balance(b), 5000);
    w.sim.emulator.remove(b);
    await w.m.endSession();
  });

  it("a tear after DEBIT: no answer until the card comes back, then VEND APPROVED, charged once", async () => {
    const c = card(5000);
    await w.m.tap(c);
    c.armTear({ command: "debit", when: "after" });
    const ack = await w.m.vmc.send({ kind: "vend-request", price: 250, item: 5 });
    assert.equal(ack.kind, "ack");
    for (let i = 0; i < 20; i++) {
      const a = await w.m.vmc.send({ kind: "poll" });
      assert.notEqual(a.kind, "silence");
      assert.ok(a.kind === "ack", "no answer while the outcome is unknown");
      await new Promise((res) => setTimeout(res, 25));
    }
    w.sim.emulator.place(c);
    const seen = await w.m.pollFor("vend-approved");
    assert.ok(seen.some((r) => r.kind === "vend-approved" && r.amount === 250));
    assert.equal(balance(c), 4750);
    await w.m.vmc.send({ kind: "vend-success", item: 5 });
    await w.m.endSession();
    w.sim.emulator.remove(c);
  });

  it("a tear before DEBIT reached the card: VEND DENIED once the card shows nothing was charged", async () => {
    const c = card(5000);
    await w.m.tap(c);
    c.armTear({ command: "debit", when: "before" });
    await w.m.vmc.send({ kind: "vend-request", price: 250, item: 6 });
    await until("the tear to take the card out of the field", () => !c.present);
    w.sim.emulator.place(c);
    const seen = await w.m.pollFor("vend-denied");
    assert.ok(!seen.some((r) => r.kind === "vend-approved"));
    assert.equal(balance(c), 5000);
    await w.m.endSession();
    w.sim.emulator.remove(c);
  });

  it("RESET after VEND APPROVED counts as success: the debit stays, nothing is owed", async () => {
    const c = card(5000);
    await w.m.tap(c);
    const owedBefore = w.m.owed.length;
    assert.equal((await w.m.vendInSession(300, 8)).answer, "vend-approved");
    await w.m.vmc.init(3, 0x20);
    assert.equal(balance(c), 4700);
    assert.equal(w.m.owed.length, owedBefore);
    w.sim.emulator.remove(c);
  });

  it("READER CANCEL while looking for a card answers CANCELLED; READER DISABLE in a session lets it finish", async () => {
    await w.m.vmc.send({ kind: "reader-cancel" });
    await w.m.pollFor("cancelled");
    const c = card(1000);
    await w.m.tap(c);
    await w.m.vmc.send({ kind: "reader-disable" });
    assert.equal(w.m.device.state, "idle");
    await w.m.endSession();
    assert.equal(w.m.device.state, "disabled");
    w.sim.emulator.remove(c);
    await w.m.vmc.send({ kind: "reader-enable" });
    assert.equal(w.m.device.state, "enabled");
  });
});

describe("terminal as MDB cashless device: the reader's own session timeout", function () {
  this.timeout(30_000);
  it("a session with no selection ends with SESSION CANCEL REQUEST", async () => {
    let m: Vending | undefined;
    const sim = await Simulation.start({ link: "memory", timing: INSTANT_TIMING, onEvent: (e) => m?.onTerminalEvent(e) });
    try {
      m = await startVending(sim, { level: 2, sessionTimeoutMs: 400 });
      const c = sim.addCard({ name: "mdb-idle", profiles: [{ layout: "tunion", algorithm: "3des", asn: "03101000000000900001", cityCode: LEVEL1_CITY, balance: 800 }] });
      assert.equal(await m.tap(c), 800);
      await m.pollFor("session-cancel-request");
      await m.endSession();
      assert.equal(m.device.state, "enabled");
    } finally {
      m?.close();
      await sim.close();
    }
  });
});
