// Status reports and remote configuration on the terminal, on the device interfaces (mocha and XS), virtual clock:
// reports at start, on the interval and at once on triggers; a configuration change reaches a running terminal and
// changes what it does; a bad one is refused and reported; the accepted one survives a restart without network; none
// is applied in the middle of a purchase.
import * as assert from "../lib/assert";
import type { ConfigAnswer, StatusReport } from "../../modules/frontend-client/status";
import { Journal } from "../../modules/journal/journal";
import { MemoryStorage } from "../../modules/journal/storage";
import { Indicator } from "../../src/indicator";
import { READER_FAULTS_IN_A_ROW, Telemetry } from "../../src/telemetry";
import type { TerminalConfig, TerminalEvent } from "../../src/terminal";
import { ScriptedFrontend, type SeenRequest } from "../lib/scripted-frontend";
import { ControllerLine, MAC2, start, type System } from "../lib/terminal-rig";
import { VirtualClock } from "../lib/virtual-clock";

const ID = "310001029313";
const WALL = Date.UTC(2026, 11, 1, 4);

/** A level-1 front-end: routes, purchases, completions, a configuration the test sets, and status reports kept. */
function frontend(clock: VirtualClock) {
  const fe = new ScriptedFrontend(clock);
  const state = { config: { terminalId: ID, version: 0, settings: {} } as ConfigAnswer, completion: 200, down: false, tsn: 0 };
  fe.script = (r: SeenRequest) => {
    if (state.down) return "refuse";
    if (r.path === "/v1/routes") return { status: 200, body: { version: 1, routes: [{ cityCode: "*", application: "tunion", level: 1, url: "https://fe.test", keyIndex: 1 }] } };
    if (r.path === `/v1/terminals/${ID}/config`) return { status: 200, body: state.config };
    if (r.path === `/v1/terminals/${ID}/status`) return { status: 204, body: "" };
    if (r.path === "/v1/purchases") {
      state.tsn++;
      return { status: 201, body: { purchaseId: `P-${state.tsn}`, tsn: state.tsn, date: "20261201", time: "120000", mac1: "01020304", mac2: MAC2 } };
    }
    return state.completion === 200 ? { status: 200, body: { status: "completed" } } : { status: state.completion, body: { error: { code: "ALREADY_SETTLED", message: "no" } } };
  };
  const reports = () => fe.requests.filter((r) => r.path.endsWith("/status")).map((r) => r.body as StatusReport);
  return { fe, state, reports };
}

async function boot(config: Partial<TerminalConfig> = {}, reuse?: { fe: ScriptedFrontend; storage: MemoryStorage; clock: VirtualClock }): Promise<System> {
  return start(true, { config: { statusEveryMs: 60_000, routesRefreshMs: 30_000, firmware: "9.9.9", ...config }, wall: () => WALL, ...reuse });
}

const final = (events: TerminalEvent[]) => events.filter((e) => e.event === "approved" || e.event === "declined").at(-1);

describe("terminal status reports", () => {
  it("reports at start and on every interval, with counts since the last report", async () => {
    const clock = new VirtualClock();
    const { fe, reports } = frontend(clock);
    const s = await boot({}, { fe, storage: new MemoryStorage(16 * 1024, 1024), clock });
    await s.clock.advance(10);
    assert.deepEqual(reports().map((r) => r.reason), ["start"]);
    const first = reports()[0]!;
    assert.deepEqual([first.terminalId, first.firmware, first.sequence, first.counts.approvals, first.config.version], [ID, "9.9.9", 1, 0, 0]);
    assert.equal(first.journal.blocks, 16);
    await s.clock.run(s.running.terminal.pay({ amount: 300, order: "R-1" }));
    await s.clock.run(s.running.terminal.pay({ amount: 1_000_000, order: "R-2" }));
    await s.clock.advance(60_000);
    const second = reports()[1]!;
    assert.equal(second.reason, "interval");
    assert.equal(second.counts.approvals, 1);
    assert.deepEqual(second.counts.declines, { "amount-over-limit": 1 });
    assert.equal(second.tapToApprovedMs?.samples, 1);
    assert.ok(second.uptimeMs >= 0 && second.sequence === 2);
    await s.clock.advance(60_000);
    assert.deepEqual([reports().length, reports()[2]!.counts.approvals, reports()[2]!.tapToApprovedMs], [3, 0, undefined]);
    s.running.close();
  });

  it("reports at once a refused completion (after the purchase, never during it) and a clock off by more than 2 s", async () => {
    const clock = new VirtualClock();
    const { fe, state, reports } = frontend(clock);
    const s = await boot({}, { fe, storage: new MemoryStorage(16 * 1024, 1024), clock });
    await s.clock.advance(10);
    state.completion = 409;
    await s.clock.run(s.running.terminal.pay({ amount: 300, order: "C-1" }));
    await s.clock.advance(1000);
    assert.ok(reports().some((r) => r.reason === "completion-refused"), reports().map((r) => r.reason).join());
    const purchaseAt = fe.requests.find((r) => r.path === "/v1/purchases")!.at;
    const approvedAt = fe.requests.find((r) => r.path.endsWith("/completion"))!.at;
    assert.ok(fe.requests.filter((r) => r.path.endsWith("/status") && r.at > purchaseAt && r.at < approvedAt).length === 0, "no report inside the purchase");

    fe.serverTime = () => WALL - 5000;
    await s.clock.run(s.running.terminal.refreshRoutes());
    await s.clock.advance(10);
    const skew = reports().filter((r) => r.reason === "clock-skew");
    assert.equal(skew.length, 1);
    assert.ok(skew[0]!.clockOffsetMs! > 3000, `offset ${skew[0]!.clockOffsetMs}`);
    // Still off: not reported again until it has been back in bounds.
    await s.clock.run(s.running.terminal.refreshRoutes());
    await s.clock.advance(10);
    assert.equal(reports().filter((r) => r.reason === "clock-skew").length, 1);
    s.running.close();
  });

  it("counts reader faults and calls for a report at the fifth in a row", () => {
    const telemetry = new Telemetry({ terminalId: ID, firmware: "x", journal: new Journal({ storage: new MemoryStorage(4096, 1024) }), now: () => 0 });
    const fault: TerminalEvent = { event: "reader-fault", code: "PN532_TIMEOUT", message: "no ACK" };
    const reasons = [];
    for (let i = 0; i < READER_FAULTS_IN_A_ROW + 2; i++) reasons.push(telemetry.observe(fault));
    assert.deepEqual(reasons.map((r) => r ?? "-"), ["-", "-", "-", "-", "reader-faults", "-", "-"]);
    telemetry.observe({ event: "card-read", order: "x", asn: "1", cityCode: "1000", application: "tunion" });
    assert.equal(telemetry.report("interval", { pendingCompletions: 0, unresolved: 0, config: { version: 0, refused: [] } }).counts.readerFaults, 7);
    for (const reason of ["timeout", "card-expired", "card-expired", "not-a-reason", "other-stranger"]) {
      telemetry.observe({ event: "declined", order: "x", reason: reason as "timeout" });
    }
    const declines = telemetry.report("interval", { pendingCompletions: 0, unresolved: 0, config: { version: 0, refused: [] } }).counts.declines;
    assert.deepEqual(declines, { "timeout": 1, "card-expired": 2, "other": 2 }, "one fixed slot per known reason, the rest as other");
  });
});

describe("terminal remote configuration", () => {
  it("a change reaches the running terminal: a larger amount is declined amount-over-limit, the message goes out", async () => {
    const clock = new VirtualClock();
    const { fe, state } = frontend(clock);
    const storage = new MemoryStorage(16 * 1024, 1024);
    const s = await boot({}, { fe, storage, clock });
    state.config = { terminalId: ID, version: 7, settings: { maxAmount: 200, message: "Coins only today" } };
    await s.clock.advance(30_100);
    assert.equal(s.running.terminal.configVersion, 7);
    await s.clock.run(s.running.terminal.pay({ amount: 300, order: "L-1" }));
    const d = final(s.events);
    assert.equal(d?.event === "declined" ? d.reason : d?.event, "amount-over-limit");
    assert.equal(s.card.debits, 0);
    assert.ok(ControllerLine.last!.lines.some((l) => l.includes('"event":"message"') && l.includes("Coins only today")));
    await s.clock.run(s.running.terminal.pay({ amount: 150, order: "L-2" }));
    assert.equal(final(s.events)?.event, "approved");

    // A bad value: refused whole, reported at once, never applied.
    state.config = { terminalId: ID, version: 8, settings: { maxAmount: 0, message: "fine" } };
    await s.clock.advance(30_100);
    assert.equal(s.running.terminal.configVersion, 7);
    assert.equal(s.running.terminal.settings.maxAmount, 200);
    assert.equal(s.running.terminal.settings.message, "Coins only today");
    const refused = fe.requests.filter((r) => r.path.endsWith("/status")).map((r) => r.body as StatusReport).find((r) => r.reason === "config-refused");
    assert.ok(refused, "a config-refused report");
    assert.deepEqual(refused.config.version, 7);
    assert.deepEqual(refused.config.refused.map((e) => [e.field, e.code]), [["maxAmount", "CONFIG_RANGE"]]);

    // A restart without network keeps the accepted configuration from the journal.
    s.running.close();
    state.down = true;
    const again = await boot({}, { fe, storage, clock });
    assert.equal(again.running.terminal.configVersion, 7);
    assert.equal(again.running.terminal.settings.maxAmount, 200);
    await again.clock.run(again.running.terminal.pay({ amount: 300, order: "L-3" }));
    const d2 = final(again.events);
    assert.equal(d2?.event === "declined" ? d2.reason : d2?.event, "amount-over-limit");
    again.running.close();
  });

  it("a configuration with many bad fields is reported within the front-end's 4 KB body limit", async () => {
    const clock = new VirtualClock();
    const { fe, state, reports } = frontend(clock);
    const s = await boot({}, { fe, storage: new MemoryStorage(16 * 1024, 1024), clock });
    const bad: { [key: string]: unknown } = {};
    for (let i = 0; i < 30; i++) bad[`unknownSetting${i}${"x".repeat(60)}`] = i;
    state.config = { terminalId: ID, version: 4, settings: bad };
    await s.clock.advance(30_100);
    const refused = reports().find((r) => r.reason === "config-refused");
    assert.ok(refused, "a config-refused report");
    assert.equal(refused.config.refused.length, 8);
    assert.ok(JSON.stringify(refused).length < 3000, `${JSON.stringify(refused).length} bytes`);
    assert.equal(s.running.terminal.configVersion, 0);
    s.running.close();
  });

  it("a configuration arriving mid-purchase waits for the purchase to end", async () => {
    const clock = new VirtualClock();
    const { fe, state } = frontend(clock);
    const s = await boot({}, { fe, storage: new MemoryStorage(16 * 1024, 1024), clock });
    let during: number | undefined;
    s.onPhase = (phase) => {
      if (phase !== "authorized") return;
      state.config = { terminalId: ID, version: 3, settings: { maxAmount: 250, applicationOrder: ["cityunion", "tunion"] } };
      void s.running.terminal.refreshRoutes().then(() => { during = s.running.terminal.settings.maxAmount; });
    };
    await s.clock.run(s.running.terminal.pay({ amount: 300, order: "M-1" }));
    assert.equal(final(s.events)?.event, "approved");
    assert.equal(during, 100_000, "not applied while the purchase ran");
    assert.equal(s.running.terminal.settings.maxAmount, 250);
    assert.deepEqual(s.running.terminal.settings.applicationOrder, ["cityunion", "tunion"]);
    assert.equal(s.running.terminal.configVersion, 3);
    s.running.close();
  });

  it("the indicator hands the operator's message to the host's display hook", () => {
    const shown: string[] = [];
    class Pin {
      write(): void {}
      close(): void {}
    }
    const indicator = new Indicator({ io: Pin, mode: 0, pins: { led: 2 }, timers: new VirtualClock(), display: (text) => shown.push(text) });
    indicator.onEvent({ event: "message", text: "Exact change only" });
    indicator.onEvent({ event: "message", text: "" });
    assert.deepEqual(shown, ["Exact change only", ""]);
    assert.equal(indicator.message, "");
    assert.equal(indicator.state, "off", "a message is not a prompt");
    indicator.close();
  });
});
