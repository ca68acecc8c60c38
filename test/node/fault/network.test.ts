import assert from "node:assert/strict";
import { hasSocat } from "../../../hosts/node/pty";
import type { ProxyFault } from "../../../tools/rigs/harness/proxy";
import { EXHAUSTIVE, FaultTally, checkAfterFault, nextOrder, payAndWait, retapUntilResolved } from "../../../tools/rigs/harness/faults";
import { Rig } from "../../../tools/rigs/harness/rig";
import { INSTANT_TIMING } from "../../../tools/sim/pn532sim/index";
import { currentCluster, currentKeyStore, describeEngines, type Engine } from "../frontend/support";
import { ensureDatabase, newPostgresUrl } from "../frontend/postgres-support";

// Network faults between the terminal process and its front-ends (each behind a fault proxy that sees whole HTTP
// exchanges): the connection closed or reset at every exchange of a purchase, before the request reaches the
// front-end or after the front-end answered; the same at the terminal's start; and the front-end process killed
// and restarted at each exchange. On both storage engines (on PostgreSQL both front-ends keep their purchases in one
// server). To keep the suite's time down PostgreSQL runs a representative subset of the two slow cases: the kill and
// restart at level 1 only, and one fault at each start exchange; the drops and resets run in full on both.

/** What an exchange is, without the purchase ID: a fault is aimed at the first exchange of that kind. */
function signature(method: string, path: string): string {
  return `${method} ${path.replace(/\/v1\/purchases\/[^/]+/, "/v1/purchases/{id}")}`;
}

/** Fires once, at the first exchange with this signature. */
function once<T>(wanted: string, value: T): (n: number, method: string, path: string) => T | undefined {
  let fired = false;
  return (_n, method, path) => {
    if (fired || signature(method, path) !== wanted) return undefined;
    fired = true;
    return value;
  };
}

const FAULTS: ProxyFault[] = [
  { phase: "before", how: "reset" }, { phase: "after", how: "reset" }, { phase: "before", how: "close" }, { phase: "after", how: "close" },
];

/** Rig options for the engine: on PostgreSQL each level gets a fresh schema of the suite's cluster. */
async function databasesFor(engine: Engine): Promise<{ 1?: string; 2?: string }> {
  const cluster = currentCluster();
  if (engine !== "postgres" || !cluster) return {};
  const databases = { 1: newPostgresUrl(cluster), 2: newPostgresUrl(cluster) };
  for (const d of Object.values(databases)) await ensureDatabase(d);
  return databases;
}

describeEngines("fault injection: network drops and resets, front-end killed and restarted", function (engine) {
  this.timeout(300_000);
  let rig: Rig;
  const subset = engine === "postgres";
  const both = [[1, "tunion"], [2, "cityunion"]] as [1 | 2, "tunion" | "cityunion"][];

  before(async function () {
    if (!hasSocat()) this.skip();
    rig = await Rig.start({ attach: true, proxies: true, timing: INSTANT_TIMING, reconciliationTimeoutMs: 1500, databases: await databasesFor(engine), keyStore: currentKeyStore() });
    assert.equal(await rig.startTerminal({ recoveryWindowMs: 3000 }), "ready");
  });
  after(async () => {
    await rig?.close();
  });

  /** A purchase with a fresh card; an open outcome is settled by tapping again. */
  async function purchase(layout: "tunion" | "cityunion"): Promise<{ result: string; card: ReturnType<Rig["addCard"]> }> {
    const card = rig.addCard({ layout });
    const order = nextOrder("NET");
    rig.emulator!.place(card);
    const final = await payAndWait(rig, 250, order);
    if (final?.event === "unknown-outcome") await retapUntilResolved(rig, card, order);
    if (card.present) rig.emulator!.remove(card);
    return { card, result: final?.event === "declined" ? `declined (${String(final.reason)})` : String(final?.event) };
  }

  /** The exchanges a settled purchase makes with its front-end, from a clean run. */
  async function probe(level: 1 | 2, layout: "tunion" | "cityunion"): Promise<string[]> {
    const proxy = rig.proxies[level]!;
    await purchase(layout); // warms the connection: the probed purchase is a steady-state one
    await checkAfterFault(rig, rig.addCard(), 5000);
    const base = proxy.exchanges.length;
    const { result, card } = await purchase(layout);
    assert.equal(result, "approved");
    assert.deepEqual(await checkAfterFault(rig, card, 5000), []);
    const seen = proxy.exchanges.slice(base).map((x) => signature(x.method, x.path));
    // A connection found closed is opened again with a health check before the tap needs it: that is an exchange too.
    return [...seen, "GET /v1/health"];
  }

  it("a drop or reset at any front-end exchange of a purchase, at either level, loses nothing", async () => {
    const tally = new FaultTally(`network drop or reset at every front-end exchange of a purchase (${engine})`);
    for (const [level, layout] of both) {
      const exchanges = await probe(level, layout);
      assert.ok(exchanges.length >= 2, exchanges.join(", "));
      tally.expect(exchanges.length * FAULTS.length);
      const proxy = rig.proxies[level]!;
      for (const [j, exchange] of exchanges.entries()) {
        for (const fault of FAULTS) {
          const plan = once(exchange, fault);
          let hit = false;
          proxy.plan = (n, method, path) => {
            const f = plan(n, method, path);
            if (f) hit = true;
            return f;
          };
          if (exchange.startsWith("GET /v1/health")) proxy.dropAll();
          const { card, result } = await purchase(layout);
          const violations = await checkAfterFault(rig, card, 5000, { reconciliationWaitMs: 5000 });
          proxy.plan = undefined;
          if (!hit) violations.push("the fault point was not reached");
          tally.add(`level ${level} exchange ${j + 1} (${exchange}) ${fault.how} ${fault.phase}: ${result}`, violations);
        }
      }
    }
    console.log(`      ${tally.line()}`);
    assert.deepEqual(tally.violations, []);
  });

  it("a drop at any exchange while the terminal starts: it starts on its stored routes and pays", async () => {
    const tally = new FaultTally(`network reset at every front-end exchange of a terminal's start (${engine})`);
    const proxy = rig.proxies[1]!;
    await rig.killTerminal("SIGTERM");
    let base = proxy.exchanges.length;
    assert.equal(await rig.startTerminal({ recoveryWindowMs: 3000 }), "ready");
    const startup = proxy.exchanges.slice(base).map((x) => `${x.method} ${x.path}`);
    assert.ok(startup.includes("GET /v1/routes"), startup.join(", "));
    for (const [j, exchange] of startup.entries()) {
      for (const fault of EXHAUSTIVE ? FAULTS : FAULTS.slice(0, subset ? 1 : 2)) {
        await rig.killTerminal("SIGTERM");
        base = proxy.exchanges.length;
        proxy.plan = (n) => (n === base + j + 1 ? fault : undefined);
        assert.equal(await rig.startTerminal({ recoveryWindowMs: 3000 }), "ready");
        proxy.plan = undefined;
        const { card, result } = await purchase("tunion");
        const violations = await checkAfterFault(rig, card, 5000, { reconciliationWaitMs: 5000 });
        if (result !== "approved") violations.push(`the first payment after the start was ${result}`);
        tally.add(`start exchange ${j + 1} (${exchange}) ${fault.how} ${fault.phase}: ${result}`, violations);
      }
    }
    console.log(`      ${tally.line()}`);
    assert.deepEqual(tally.violations, []);
  });

  it("the front-end process killed at any exchange and restarted: every outcome is still resolved", async () => {
    const tally = new FaultTally(`front-end killed and restarted at every exchange of a purchase (${engine})`);
    for (const [level, layout] of subset ? both.slice(0, 1) : both) {
      const proxy = rig.proxies[level]!;
      const exchanges = await probe(level, layout);
      for (const [j, exchange] of exchanges.entries()) {
        for (const phase of ["request", "answer"] as const) {
          let restarted: Promise<void> | undefined;
          if (exchange.startsWith("GET /v1/health")) proxy.dropAll();
          proxy.intercept = async (_n, method, path, at) => {
            if (signature(method, path) !== exchange || at !== phase || restarted) return;
            await rig.killFrontend(level);
            // Back after a while, as a supervisor restarts it; the terminal meanwhile sees a dead server.
            restarted = new Promise((r) => setTimeout(r, 300)).then(() => rig.startFrontend(level));
          };
          const { card, result } = await purchase(layout);
          // The completion goes after the approval: settle first, so its exchange has happened.
          const violations = await checkAfterFault(rig, card, 5000, { reconciliationWaitMs: 5000 });
          await restarted;
          proxy.intercept = undefined;
          if (!restarted) violations.push("the fault point was not reached");
          tally.add(`level ${level} exchange ${j + 1} (${exchange}) killed at the ${phase}: ${result}`, violations);
        }
      }
    }
    console.log(`      ${tally.line()}`);
    assert.deepEqual(tally.violations, []);
  });
}, undefined, ["file", "pkcs11"]);
