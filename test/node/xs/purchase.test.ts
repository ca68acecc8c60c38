import assert from "node:assert/strict";
import { fromHex } from "../../../modules/bytes/bytes";
import { parseBasicData } from "../../../modules/purse/files";
import type { VirtualCard } from "../../../tools/sim/cardsim/card";
import { INSTANT_TIMING } from "../../../tools/sim/pn532sim/index";
import { LEVEL1_CITY, Simulation, TERMINAL_ID } from "../../../tools/sim/simulation/index";
import { XsTerminalHost } from "../../../hosts/xs/parent";
import { until } from "../until";

// The terminal (src/ + modules/, assembled as on the ESP32) inside the XS engine, on a device that forwards its
// serial lines and HTTPS to this process: the real PN532 emulator, the real front-ends over mutual TLS.

const PINS = { red: 25, green: 26, blue: 27, buzzer: 14 };

describe("the terminal inside XS", function () {
  this.timeout(60_000);
  let sim: Simulation;
  let xs: XsTerminalHost;
  let cards = 0;

  before(async () => {
    sim = await Simulation.start({ timing: INSTANT_TIMING, noTerminal: true });
    xs = await XsTerminalHost.start({
      lines: sim.terminalLines(), tls: sim.terminalTls(), indicator: PINS,
      config: { terminalId: TERMINAL_ID, level1Url: sim.level1.url, recoveryWindowMs: 5000 },
    });
  });
  after(async () => {
    await xs?.close();
    await sim?.close();
  });

  function card(): VirtualCard {
    const n = String(++cards).padStart(6, "0");
    return sim.addCard({ name: `xs-${n}`, profiles: [{ layout: "tunion", algorithm: "3des", asn: `03101000000077${n}`, cityCode: LEVEL1_CITY, balance: 5000 }] });
  }
  const nameOf = (c: VirtualCard) => [...sim.cards].find(([, v]) => v === c)![0];
  const balance = (c: VirtualCard) => c.state.applications[0]!.balance;
  const asnOf = (c: VirtualCard) => parseBasicData(fromHex(c.state.applications[0]!.basicData), "tunion").asn;

  it("started: the routing table came from the level-1 front-end over TLS", async () => {
    const ready = await sim.controller.next((e) => e.event === "ready");
    assert.equal(ready.terminalId, TERMINAL_ID);
    assert.equal(ready.routes, 2);
    assert.equal(xs.failure, undefined);
  });

  it("approves a purchase: the card is debited, the front-end completes it, the indicator says remove the card", async () => {
    const c = card();
    const pinsBefore = xs.pins.length;
    const events = await sim.pay(nameOf(c), 350, "XS-1");
    assert.deepEqual(events.map((e) => e.event), ["waiting-for-card", "card-read", "approved"]);
    const approved = events[2]!;
    assert.equal(approved.balanceBefore, 5000);
    assert.equal(approved.balanceAfter, 4650);
    assert.equal(approved.level, 1);
    assert.equal(balance(c), 4650);
    await until("the completion at the front-end", () => sim.purchases(1).some((p) => p.id === approved.purchaseId && p.status === "completed"));
    const row = sim.purchases(1).find((p) => p.id === approved.purchaseId)!;
    assert.equal(row.tac, approved.tac);
    assert.equal(row.asn, asnOf(c));
    // Blue for "tap the card", then green with a beep for "remove the card".
    const writes = xs.pins.slice(pinsBefore);
    const blue = writes.findIndex(([, pin, v]) => pin === PINS.blue && v === 1);
    const green = writes.findIndex(([, pin, v]) => pin === PINS.green && v === 1);
    assert.ok(blue >= 0 && green > blue, JSON.stringify(writes));
    assert.ok(writes.slice(green).some(([, pin, v]) => pin === PINS.buzzer && v === 1));
  });

  it("recovers a tear: the card pulled after DEBIT commits, then placed again, is resolved approved and completed", async () => {
    const c = card();
    c.armTear({ command: "debit", when: "after" });
    const events = await sim.pay(nameOf(c), 300, "XS-2", { keepCard: true });
    const unknown = events.at(-1)!;
    assert.equal(unknown.event, "unknown-outcome");
    assert.equal(balance(c), 4700, "the card committed the debit before it was pulled");
    sim.emulator.remove(c);
    sim.emulator.place(c);
    const resolved = await sim.controller.next((e) => e.event === "resolved" && e.order === "XS-2");
    sim.emulator.remove(c);
    assert.equal(resolved.result, "approved");
    await until("the completion of the torn purchase", () => sim.purchases(1).some((p) => p.id === unknown.purchaseId && p.status === "completed"));
    assert.equal(sim.purchases(1).find((p) => p.id === unknown.purchaseId)!.tac, resolved.tac);
    assert.equal(xs.failure, undefined);
  });
});
