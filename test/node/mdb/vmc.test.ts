// The VMC simulator's strict cases against the terminal as cashless device: at VMC levels 1, 2 and 3 every reply
// must start within 5 ms and keep its bytes within 1 ms (the reader answers from the link, while purchases run
// between POLLs); faults (lost ACK, RET, corrupted CHK, repeated command, noise, bus reset); a VMC reset at every
// step of a session with the money checked after each; and the VMC's RESET of a reader silent past its
// non-response time.
import assert from "node:assert/strict";
import { performance } from "node:perf_hooks";
import { BREAK, CashlessDevice, MODE, PeripheralLink } from "../../../modules/mdb/index";

import { LEVEL1_CITY } from "../../../tools/sim/simulation/index";
import { VmcMaster } from "../../../tools/sim/vmc/master";
import { balanceOf, useVending } from "./support";
import { until } from "../until";

const balance = balanceOf;
const sleep = (ms: number) => new Promise((res) => setTimeout(res, ms));

for (const level of [1, 2, 3] as const) {
  describe(`VMC simulator, strict timing, level ${level}`, function () {
    this.timeout(60_000);
    const w = useVending(`${level}1`, { level, strict: true, multivend: true });
    const card = (b: number) => w.card(b);

    it("initialises with the level's formats and runs a card-first session", async () => {
      assert.equal(w.m.device.vmcLevel, level);
      assert.equal(w.m.device.expanded, false);
      const c = card(2000);
      assert.equal(await w.m.tap(c), 2000);
      const r = await w.m.vendInSession(150, 2);
      assert.deepEqual([r.answer, r.amount], ["vend-approved", 150]);
      await w.m.vmc.send({ kind: "vend-success", item: 2 });
      await w.m.endSession();
      assert.equal(balance(c), 1850);
      w.sim.emulator.remove(c);
    });

    it("faults: noise, a corrupted CHK, a lost ACK, RET, a repeated VEND REQUEST that runs once, a bus reset", async () => {
      const vmc = w.m.vmc;
      await vmc.sendWords(Uint16Array.of(0x13, 0x55, MODE | 0x08, 0x42)); // stray data and another device's address
      assert.equal((await vmc.send({ kind: "poll" })).kind, "ack");
      assert.equal((await vmc.send({ kind: "poll" }, "bad-chk")).kind, "silence");
      const c = card(3000);
      w.sim.emulator.place(c);
      let a = await vmc.send({ kind: "poll" }, "no-ack");
      for (let i = 0; a.kind !== "data" && i < 400; i++) {
        await sleep(25);
        a = await vmc.send({ kind: "poll" }, "no-ack");
      }
      assert.ok(a.kind === "data" && a.replies[0]!.kind === "begin-session");
      const again = await vmc.send({ kind: "poll" }, "ret");
      assert.ok(again.kind === "data" && again.replies[0]!.kind === "begin-session", "unacknowledged data is repeated, then resent on RET");
      assert.equal((await vmc.send({ kind: "poll" })).kind, "ack");
      // The VMC missed the ACK of its VEND REQUEST and sends it again: one purchase only.
      assert.equal((await vmc.send({ kind: "vend-request", price: 100, item: 1 })).kind, "ack");
      assert.equal((await vmc.send({ kind: "vend-request", price: 100, item: 1 })).kind, "ack");
      await w.m.pollFor("vend-approved");
      await vmc.send({ kind: "vend-success", item: 1 });
      await w.m.endSession();
      assert.equal(balance(c), 2900);
      w.sim.emulator.remove(c);
      await vmc.sendWords(Uint16Array.of(BREAK));
      assert.equal(w.m.device.state, "inactive");
      await vmc.init(level, 0x20);
      assert.equal(w.m.device.state, "enabled");
    });

    if (level === 3) {
      it("selection first (Always Idle), strict", async () => {
        const c = card(1000);
        const r = await w.m.vend(c, 400, 9);
        assert.equal(r.answer, "vend-approved");
        await w.m.vmc.send({ kind: "vend-success", item: 9 });
        await w.m.endSession();
        assert.equal(balance(c), 600);
      });
    }

    it("every reply was within 5 ms and 1 ms between bytes", () => {
      const worst = Math.max(...w.m.vmc.replyTimes);
      assert.ok(w.m.vmc.replyTimes.length > 20);
      assert.ok(worst <= 5, `worst reply ${worst} ms`);
    });
  });
}

describe("VMC simulator: a VMC reset at every step of a card-first session", function () {
  this.timeout(120_000);
  const w = useVending("9", { level: 3 });

  const steps = ["begin-session", "vend-request", "vend-approved", "vend-success", "session-complete", "end-session"] as const;
  for (const [i, step] of steps.entries()) {
    it(`RESET right after ${step}: charged = approved-and-seen + owed, and the next session works`, async () => {
      const c = w.sim.addCard({ name: `reset-${i}`, profiles: [{ layout: "tunion", algorithm: "3des", asn: `03101000000009${String(i).padStart(6, "0")}`, cityCode: LEVEL1_CITY, balance: 5000 }] });
      const owedBefore = w.m.owed.length;
      let seen = false;
      run: {
        await w.m.tap(c);
        if (step === "begin-session") break run;
        await w.m.vmc.send({ kind: "vend-request", price: 300, item: 4 });
        if (step === "vend-request") break run;
        await w.m.pollFor("vend-approved");
        seen = true;
        if (step === "vend-approved") break run;
        await w.m.vmc.send({ kind: "vend-success", item: 4 });
        if (step === "vend-success") break run;
        await w.m.vmc.send({ kind: "session-complete" });
        if (step === "session-complete") break run;
        await w.m.pollFor("end-session");
      }
      await w.m.vmc.init(3, 0x20);
      // A purchase the RESET overtook finishes; its debit, if any, is owed back.
      const t = w.sim.node.terminal;
      await until("the overtaken purchase to finish", () => t.state !== "processing" && t.state !== "recovering" && t.pendingCompletions === 0);
      const charged = 5000 - balance(c);
      const owed = w.m.owed.slice(owedBefore).reduce((sum, o) => sum + o.amount, 0);
      assert.equal(charged, (seen ? 300 : 0) + owed, `charged ${charged}, owed ${owed}`);
      assert.ok(charged === 0 || charged === 300, "charged at most once");
      w.sim.emulator.remove(c);
      assert.equal(w.m.device.state, "enabled");
      // The reader still works: a fresh card, a whole session.
      const next = w.sim.addCard({ name: `reset-next-${i}`, profiles: [{ layout: "tunion", algorithm: "3des", asn: `03101000000008${String(i).padStart(6, "0")}`, cityCode: LEVEL1_CITY, balance: 1000 }] });
      await w.m.tap(next);
      assert.equal((await w.m.vendInSession(100, 1)).answer, "vend-approved");
      await w.m.vmc.send({ kind: "vend-success", item: 1 });
      await w.m.endSession();
      w.sim.emulator.remove(next);
      assert.equal(balance(next), 900);
    });
  }
});

describe("VMC simulator: RESET after the reader's non-response time", function () {
  it("a reader silent on POLL past the non-response time is RESET and initialised again", async () => {
    let link!: PeripheralLink;
    let device!: CashlessDevice;
    const vmc = new VmcMaster({ transmit: (w) => { for (const x of w) link.receive(x); }, now: () => performance.now(), nonResponseMs: 150 });
    link = new PeripheralLink({
      address: 0x10, send: (w) => { for (const x of w) vmc.receive(x); },
      onCommand: (b, direct) => device.command(b, direct), onDelivered: (k) => device.delivered(k), onBusReset: () => device.busReset(),
    });
    // A device whose refund never settles: it stays silent on POLL, as a reader that hung would.
    device = new CashlessDevice({ port: link, events: { onVendRequest: () => undefined, onVendCancel: () => undefined, onVendResult: () => undefined } });
    await vmc.init(2);
    device.beginSession(1000);
    await vmc.pollUntil("begin-session");
    await vmc.send({ kind: "vend-request", price: 100, item: 1 });
    device.approve(100);
    await vmc.pollUntil("vend-approved");
    await vmc.send({ kind: "vend-failure" });
    assert.equal((await vmc.poll()).kind, "silence");
    assert.equal(vmc.resets, 0, "not before the non-response time");
    // A VMC keeps polling; once the non-response time has passed, its next POLL resets the silent device.
    await until("the VMC to reset the silent device", async () => { await vmc.poll(); return vmc.resets > 0; });
    assert.equal(vmc.resets, 1);
    assert.equal(device.state, "enabled");
    assert.equal((await vmc.poll()).kind, "ack");
  });
});
