/**
 * The whole system (terminal, PN532 emulator, real front-ends over mutual TLS, SQLite): the terminal's start report
 * reaches the level-1 front-end, and a configuration change made there reaches the running terminal and changes
 * what it does: a larger amount is then declined with amount-over-limit and nothing is charged.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { INSTANT_TIMING } from "../../../tools/sim/pn532sim/index";
import { LEVEL1_CITY, Simulation, TERMINAL_ID } from "../../../tools/sim/simulation/index";
import { until } from "../until";

describe("fleet end to end: reports and remote configuration", function () {
  this.timeout(90_000);
  let sim: Simulation;
  const messages: string[] = [];

  before(async () => {
    sim = await Simulation.start({ link: "memory", timing: INSTANT_TIMING, onEvent: (e) => { if (e.event === "message") messages.push(e.text); } });
  });
  after(async () => {
    await sim?.close();
  });

  it("the start report arrives; a new maxAmount reaches the running terminal and declines a larger amount", async () => {
    await until("the start report", async () => (await sim.level1.store.fleet.latestStatus()).some((r) => r.terminalId === TERMINAL_ID));
    const [first] = await sim.level1.store.fleet.latestStatus();
    assert.deepEqual([first!.report.reason, first!.report.firmware, first!.report.config.version], ["start", "0.1.0", 0]);

    sim.addCard({ name: "fleet", profiles: [{ layout: "tunion", algorithm: "3des", asn: "03101000000000077001", cityCode: LEVEL1_CITY, balance: 5000 }] });
    assert.equal((await sim.pay("fleet", 300, "FLEET-1")).at(-1)?.event, "approved");

    const saved = await sim.level1.store.fleet.putConfigScope(`terminal:${TERMINAL_ID}`, { maxAmount: 200, message: "Exact change only" }, "operator-test", 0);
    await sim.node.terminal.refreshRoutes();
    await until("the new configuration in force", () => sim.node.terminal.configVersion > 0);
    assert.equal(sim.node.terminal.configVersion, (await sim.level1.store.fleet.effectiveConfig(TERMINAL_ID)).version);
    assert.ok(saved.revision > 0);
    assert.equal(sim.node.terminal.settings.maxAmount, 200);
    assert.deepEqual(messages, ["Exact change only"]);

    const card = sim.cards.get("fleet")!;
    const before = card.state.applications[0]!.balance;
    const events = await sim.pay("fleet", 300, "FLEET-2");
    const final = events.find((e) => e.event === "declined" || e.event === "approved");
    assert.deepEqual([final?.event, final?.reason], ["declined", "amount-over-limit"]);
    assert.equal(card.state.applications[0]!.balance, before, "nothing charged");
    assert.equal((await sim.pay("fleet", 150, "FLEET-3")).at(-1)?.event, "approved");
  });

  it("the ESP32 manifest names the same firmware version as package.json (the reports carry it)", () => {
    const read = (file: string) => JSON.parse(readFileSync(new URL(`../../../${file}`, import.meta.url), "utf8"));
    assert.equal(read("manifest.json").config.firmware, read("package.json").version);
  });
});
