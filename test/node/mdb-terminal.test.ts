// The terminal as an MDB cashless device: the VMC simulator (in memory, polling every 25 ms) against the
// CashlessDevice, whose vends run the terminal's real purchase (PN532 emulator, virtual cards, TLS front-ends).
import assert from "node:assert/strict";
import { performance } from "node:perf_hooks";
import { CashlessDevice, PeripheralLink } from "../../modules/mdb/index";
import type { VirtualCard } from "../../tools/cardsim/card";
import { INSTANT_TIMING } from "../../tools/pn532sim/index";
import { LEVEL1_CITY, Simulation } from "../../tools/simulation/index";
import { VmcMaster } from "../../tools/vmc/master";
import { MdbCashless } from "../../src/mdb-cashless";
import type { TerminalEvent } from "../../src/terminal";

describe("terminal as MDB cashless device (selection first, level 3)", function () {
  this.timeout(60_000);
  let sim: Simulation;
  let vmc: VmcMaster;
  let device: CashlessDevice;
  let adapter: MdbCashless;
  const owed: unknown[] = [];
  let listen: (e: TerminalEvent) => void = () => undefined;

  before(async () => {
    sim = await Simulation.start({ link: "memory", timing: INSTANT_TIMING, onEvent: (e) => listen(e) });
    let link!: PeripheralLink;
    vmc = new VmcMaster({ transmit: (words) => { for (const w of words) link.receive(w); } });
    link = new PeripheralLink({
      address: 0x10, send: (words) => { for (const w of words) vmc.receive(w); },
      onCommand: (b) => device.command(b), onDelivered: (n) => device.delivered(n), onBusReset: () => device.busReset(),
    });
    device = new CashlessDevice({
      port: link, maxResponseSeconds: 30, events: {
        onVendRequest: (v) => adapter.vendRequest(v),
        onVendCancel: () => adapter.vendCancel(),
        onVendResult: (_v, ok) => adapter.vendResult(ok),
      },
    });
    adapter = new MdbCashless({ device, terminal: sim.node.terminal, tapTimeoutMs: 3000, onRefundOwed: (o) => owed.push(o) });
    listen = (e) => adapter.event(e);
    await vmc.init(3, 0x20);
  });
  after(async () => {
    await sim?.close();
  });

  let n = 0;
  function card(balance: number): VirtualCard {
    const asn = `031010000000007${String(++n).padStart(5, "0")}`;
    return sim.addCard({ name: `mdb-${n}`, profiles: [{ layout: "tunion", algorithm: "3des", asn, cityCode: LEVEL1_CITY, balance }] });
  }

  /** VEND REQUEST, then POLL every 25 ms until the answer; the card is in the field from the start. */
  async function vend(c: VirtualCard | undefined, price: number, item: number): Promise<{ answer: string; ms: number; amount?: number }> {
    if (c) sim.emulator.place(c);
    const start = performance.now();
    try {
      assert.equal((await vmc.send({ kind: "vend-request", price, item })).kind, "ack");
      for (let i = 0; i < 400; i++) {
        const a = await vmc.send({ kind: "poll" });
        assert.notEqual(a.kind, "silence");
        if (a.kind === "data") {
          const r = a.replies.find((x) => x.kind === "vend-approved" || x.kind === "vend-denied");
          if (r) return { answer: r.kind, ms: performance.now() - start, amount: r.kind === "vend-approved" ? r.amount : undefined };
        }
        await new Promise((res) => setTimeout(res, 25));
      }
      throw new Error("no vend answer");
    } finally {
      if (c) sim.emulator.remove(c);
    }
  }

  async function endSession(): Promise<void> {
    await vmc.send({ kind: "session-complete" });
    await vmc.pollUntil("end-session");
  }

  it("approves a vend with the card's purchase and keeps the debit on VEND SUCCESS", async () => {
    const c = card(5000);
    const r = await vend(c, 350, 12);
    assert.equal(r.answer, "vend-approved");
    assert.equal(r.amount, 350);
    assert.equal(c.state.applications[0]!.balance, 4650);
    await vmc.send({ kind: "vend-success", item: 12 });
    await endSession();
    console.log(`      VEND REQUEST -> VEND APPROVED ${r.ms.toFixed(0)} ms (card in the field, 25 ms polling, instant PN532 timing)`);
  });

  it("denies a card without the balance, and charges nothing", async () => {
    const c = card(100);
    const r = await vend(c, 350, 4);
    assert.equal(r.answer, "vend-denied");
    assert.equal(c.state.applications[0]!.balance, 100);
    await endSession();
  });

  it("VEND FAILURE after approval: the debit is reported as owed and the VMC hears 0A C0", async () => {
    const c = card(5000);
    const r = await vend(c, 200, 7);
    assert.equal(r.answer, "vend-approved");
    await vmc.send({ kind: "vend-failure" });
    const a = await vmc.send({ kind: "poll" });
    assert.deepEqual(a.kind === "data" && a.replies, [{ kind: "malfunction", code: 0xc0 }]);
    assert.equal(owed.length, 1);
    assert.deepEqual({ ...(owed[0] as object), purchaseId: undefined }, { order: "MDB-3-7", amount: 200, purchaseId: undefined, reason: "vend-failure" });
    await endSession();
  });

  it("VEND CANCEL while waiting for a card: VEND DENIED, nothing charged", async () => {
    assert.equal((await vmc.send({ kind: "vend-request", price: 150, item: 9 })).kind, "ack");
    await vmc.send({ kind: "poll" });
    await vmc.send({ kind: "vend-cancel" });
    await vmc.pollUntil("vend-denied");
    await endSession();
    // The terminal is free again for the next selection.
    const c = card(1000);
    for (let i = 0; i < 40 && sim.node.terminal.state !== "idle"; i++) await new Promise((res) => setTimeout(res, 25));
    assert.equal((await vend(c, 100, 1)).answer, "vend-approved");
    await vmc.send({ kind: "vend-success", item: 1 });
    await endSession();
  });
});
