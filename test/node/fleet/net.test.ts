// A fleet of 50 terminals over a real lossy network (tools/rigs/fleet): terminals in five network namespaces (ten per
// process, each with its own TLS connection), both front-ends as processes in another namespace, and delay,
// jitter, loss and a partition on the packets between them (netem, or tools/rigs/fleet/netimpair/relay.c on a kernel
// without it). Each case must lose and double nothing (card, terminal journal and front-end database agree) and
// deliver every completion. The partition is compressed to 5 s here; `npm run bench:fleet` runs the real 30 s.
import assert from "node:assert/strict";
import { fleetCases, runFleet, type FleetResult } from "../../../tools/rigs/fleet/fleet";
import { netnsUnavailable, ownNamespaces } from "../../../tools/rigs/fleet/netns";

describe("a fleet over a real network (network namespaces)", function () {
  // Waits are for conditions; this bounds a stuck run on a slow, loaded machine.
  this.timeout(600_000);
  let result: FleetResult;

  before(async function () {
    const why = netnsUnavailable();
    if (why) {
      console.log(`      (skipped: ${why})`);
      this.skip();
    }
    result = await runFleet({ terminals: 50, perNamespace: 10, cases: fleetCases({ loadMs: 4000, partitionMs: 5000 }) });
    for (const c of result.cases) {
      console.log(`      ${c.case}: ${c.approvals} approvals, ${c.approvalsPerSecond}/s, tap-to-approved p50 ${c.tapToApprovedMs.p50} ms p99 ${c.tapToApprovedMs.p99} ms, ` +
        `completions ${c.completions.delivered}/${c.completions.approved} (last ${c.completions.lastDeliveredAfterMs} ms after the ${c.completions.after}), ` +
        `TCP retransmits ${c.tcp.retransmitted}, money violations ${c.money.violations} (${result.impairment})`);
    }
  });

  after(() => {
    // Nothing of this run stays behind (its namespaces carry this process's pid).
    if (result) assert.deepEqual(ownNamespaces(), []);
  });

  for (const [i, name] of ["40 ms ± 10 ms and 1 % loss", "150 ms and 5 % loss", "a partition healed after 5 s"].entries()) {
    it(`${name}: every completion delivered, no money lost or doubled`, () => {
      const c = result.cases[i]!;
      assert.deepEqual(c.money.details, []);
      assert.equal(c.money.violations, 0);
      assert.ok(c.approvals > 0, "the fleet approved nothing");
      assert.equal(c.completions.delivered, c.approvals);
      assert.equal(c.completions.completedInDatabase, c.approvals);
      assert.ok(c.money.cards >= 50, `only ${c.money.cards} cards paid`);
      // The delay acted: an authorization is at least one round trip of the slowest-drawn delays.
      assert.ok(c.authorizeMs.p50 >= 2 * (c.impairment.delayMs - c.impairment.jitterMs), JSON.stringify(c.authorizeMs));
      if (result.impairment === "relay") {
        const f = c.frames as { towardFrontends: Record<string, number>; towardTerminals: Record<string, number> };
        const lost = f.towardFrontends.lost! + f.towardTerminals.lost!;
        // The impairment acted on real packets: frames were dropped (and cut, in the partition).
        assert.ok(lost > 0, JSON.stringify(f));
        if (i === 2) assert.ok(f.towardFrontends.partitioned! > 0, JSON.stringify(f));
      }
    });
  }

  it("the kernels' TCP stacks saw the loss: segments were retransmitted", () => {
    assert.ok(result.cases.reduce((n, c) => n + c.tcp.retransmitted, 0) > 0);
  });
});
