/**
 * Issue 23, finding 8: a healthy terminal raised an alert, and a tap after a long idle opened TLS on a "cold route".
 *
 * - The alert: the front-end answered a status report with an empty 204, and the terminal's client, for which every
 *   answer of the protocol is a JSON object, counted it as a failed front-end call: from the second report on, every
 *   one carried frontendErrors: 1. The answer is now a JSON object ({configVersion}).
 * - The cold route: keep-warm only re-opened connections that were closed, and sent nothing on an open one; the
 *   server closes a connection idle for its keep-alive timeout (75 s), so a tap between that close and the next
 *   keep-warm tick paid for a handshake. Keep-warm now sends a request on an open connection, which restarts that timer.
 *
 * A real run (a virtual clock does not move a real server's idle timer): the terminal at its default keep-warm
 * period (30 s), the servers' idle timeout shortened to 40 s so the run crosses it in under a minute (still longer
 * than one keep-warm period, as 75 s is), and reports every 10 s (as in the run that found it) so that several of
 * them cross it too.
 */
import assert from "node:assert/strict";
import { INSTANT_TIMING } from "../../../tools/sim/pn532sim/index";
import { LEVEL1_CITY, Simulation, TERMINAL_ID } from "../../../tools/sim/simulation/index";

const SERVER_IDLE_MS = 40_000;

describe("keep-warm and status reports across the front-end's idle timeout", function () {
  this.timeout(180_000);
  let sim: Simulation;

  before(async () => {
    sim = await Simulation.start({ link: "memory", timing: INSTANT_TIMING, terminal: { statusEveryMs: 10_000 }, frontendListen: { idleTimeoutMs: SERVER_IDLE_MS } });
  });
  after(async () => {
    await sim?.close();
  });

  it("a tap after idling past the server's idle timeout needs no handshake, and no report counts a front-end error", async () => {
    sim.addCard({ name: "idle", profiles: [{ layout: "tunion", algorithm: "3des", asn: "03101000000000088001", cityCode: LEVEL1_CITY, balance: 5000 }] });
    const first = (await sim.pay("idle", 100, "IDLE-1")).at(-1);
    assert.equal(first?.event, "approved");
    const idleFrom = Date.now();
    // The scenario is the idle time itself: nothing to wait for but the clock, past the server's idle timeout.
    await new Promise((r) => setTimeout(r, SERVER_IDLE_MS + 12_000));
    const second = (await sim.pay("idle", 100, "IDLE-2")).at(-1) as { event: string; timings?: { handshakes: number } } | undefined;
    assert.equal(second?.event, "approved");
    assert.ok(Date.now() - idleFrom > SERVER_IDLE_MS, "the run crossed the server's idle timeout");
    assert.equal(second?.timings?.handshakes, 0, "the tap after the idle time opened TLS (a cold route)");

    const reports = (await sim.level1.store.fleet.statusHistory(TERMINAL_ID, 100)).map((h) => h.report);
    assert.ok(reports.length >= 4, `reports received: ${reports.length}`);
    assert.deepEqual(reports.filter((r) => r.counts.frontendErrors > 0).map((r) => `#${r.sequence} ${r.reason}: ${r.counts.frontendErrors}`), []);
  });
});
