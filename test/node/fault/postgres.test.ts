/**
 * PostgreSQL stopped and restarted under HTTP load. Both front-ends of the rig run on one PostgreSQL server; while
 * terminal stand-ins keep purchases going against level 1 over mutual TLS, the terminal process pays with cards in the
 * emulated field and the server is stopped (fast shutdown: every connection cut, as when the database host dies) at a
 * chosen exchange of the terminal's purchase, then started again a moment later. Terminals must get a retryable error,
 * retry, and nothing may be lost or doubled: the harness's money check on card, terminal journal and database, and the
 * same rule for every card of the load.
 */
import assert from "node:assert/strict";
import { hasSocat } from "../../../hosts/node/pty";
import { FrontendClient, FrontendHttpError } from "../../../tools/rigs/frontend/index";
import { moneyViolations } from "../../../tools/rigs/harness/consistency";
import { FaultTally, checkAfterFault, nextOrder, payAndWait, retapUntilResolved } from "../../../tools/rigs/harness/faults";
import { Rig } from "../../../tools/rigs/harness/rig";
import type { VirtualCard } from "../../../tools/sim/cardsim/card";
import { INSTANT_TIMING } from "../../../tools/sim/pn532sim/index";
import { authorizeBody, debitCard, initCard } from "../frontend/support";
import { ensureDatabase, newPostgresUrl, postgresCluster, postgresSkipReason, type Cluster } from "../frontend/postgres-support";

const LOAD_TERMINAL = "001122334455";
const LOOPS = 8;

function retryable(e: unknown): boolean {
  return !(e instanceof FrontendHttpError) || e.status >= 500;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Load {
  cards: { card: VirtualCard; initial: number }[];
  completed: number;
  retryable: number;
  stop(): Promise<void>;
}

/** LOOPS terminal stand-ins, each with its own card and connection, paying back to back and retrying as a terminal does. */
function startLoad(rig: Rig): Load {
  const bundle = rig.pki.terminals[LOAD_TERMINAL]!;
  let stopping = false;
  const load: Load = { cards: [], completed: 0, retryable: 0, stop: async () => undefined };
  const loop = async (client: FrontendClient, card: VirtualCard) => {
    while (!stopping) {
      const amount = 1 + Math.floor(Math.random() * 50);
      let answer;
      try {
        answer = await client.authorize(authorizeBody(initCard(card, "tunion", amount, LOAD_TERMINAL), amount, LOAD_TERMINAL) as never);
      } catch (e) {
        if (!retryable(e)) throw e;
        load.retryable++;
        await sleep(50);
        continue;
      }
      const proof = debitCard(card, answer);
      // The card is debited: its completion is retried until the front-end has it (the terminal's forwarder does so).
      for (let attempt = 0; ; attempt++) {
        try {
          assert.equal((await client.complete(answer.purchaseId, { outcome: "debited", ...proof })).status, "completed");
          load.completed++;
          break;
        } catch (e) {
          if (!retryable(e) || attempt > 600) throw e;
          load.retryable++;
          await sleep(100);
        }
      }
    }
  };
  const runs: Promise<void>[] = [];
  const clients: FrontendClient[] = [];
  for (let i = 0; i < LOOPS; i++) {
    const card = rig.addCard({ balance: 10_000_000 }, { inEmulator: false });
    load.cards.push({ card, initial: 10_000_000 });
    // Straight to the level-1 front-end (the terminal process goes through the proxy, where the fault is aimed).
    const client = new FrontendClient(`https://127.0.0.1:${rig.frontends[1]!.config.listen!.port}`, {
      ca: rig.pki.ca.certPem, cert: bundle.certPem, key: bundle.keyPem,
    });
    clients.push(client);
    runs.push(loop(client, card));
  }
  load.stop = async () => {
    stopping = true;
    try {
      await Promise.all(runs);
    } finally {
      for (const c of clients) c.close();
    }
  };
  return load;
}

describe("fault injection: PostgreSQL stopped and restarted under load", function () {
  this.timeout(300_000);
  let rig: Rig;
  let cluster: Cluster;

  before(async function () {
    this.timeout(180_000);
    if (!hasSocat()) {
      console.log("      skipped: socat is not installed (apt-get install -y socat)");
      this.skip();
    }
    const c = await postgresCluster();
    if (!c) {
      console.log(`      skipped: ${postgresSkipReason()}`);
      this.skip();
    }
    cluster = c;
    const databases = { 1: newPostgresUrl(cluster), 2: newPostgresUrl(cluster) };
    for (const d of Object.values(databases)) await ensureDatabase(d);
    rig = await Rig.start({ attach: true, proxies: true, timing: INSTANT_TIMING, reconciliationTimeoutMs: 1500, databases });
    assert.equal(await rig.startTerminal({ recoveryWindowMs: 3000 }), "ready");
  });
  after(async () => {
    await rig?.close();
  });

  it("the terminal and the load get retryable errors, retry, and card, terminal journal and database agree", async () => {
    const tally = new FaultTally("PostgreSQL stopped and restarted at each exchange of a purchase, under load");
    const load = startLoad(rig);
    try {
      while (load.completed < 40) await sleep(20);
      for (const exchange of ["POST /v1/purchases", "POST /v1/purchases/{id}/completion"]) {
        const proxy = rig.proxies[1]!;
        let outage: Promise<void> | undefined;
        const before = { completed: load.completed, retryable: load.retryable };
        proxy.intercept = async (_n, method, path, phase) => {
          const kind = `${method} ${path.replace(/\/v1\/purchases\/[^/]+/, "/v1/purchases/{id}")}`;
          if (outage || phase !== "request" || kind !== exchange) return;
          // Down before the terminal's request reaches the front-end; back after a while, as a failover would be.
          await cluster.stopAsync();
          outage = sleep(1500).then(() => cluster.startAsync());
        };
        const card = rig.addCard({ layout: "tunion" });
        const order = nextOrder("PG");
        rig.emulator!.place(card);
        const final = await payAndWait(rig, 180, order);
        if (final?.event === "unknown-outcome") await retapUntilResolved(rig, card, order);
        if (card.present) rig.emulator!.remove(card);
        // The completion is sent after the approval: give it the time to reach the proxy.
        for (let i = 0; !outage && i < 500; i++) await sleep(20);
        await outage;
        proxy.intercept = undefined;
        const violations = await checkAfterFault(rig, card, 5000, { reconciliationWaitMs: 10_000 });
        if (!outage) violations.push("the fault point was not reached");
        // The load kept going through the outage: it saw retryable errors and completed purchases after it.
        const during = load.retryable - before.retryable;
        const resumed = load.completed;
        while (load.completed < resumed + 20) await sleep(20);
        if (during === 0) violations.push("the load saw no retryable error while PostgreSQL was down");
        tally.add(`stopped at ${exchange}: terminal ${final?.event === "declined" ? `declined (${String(final.reason)})` : String(final?.event)}, ` +
          `load ${during} retryable errors, ${load.completed - before.completed} purchases completed`, violations);
      }
    } finally {
      await load.stop();
    }
    // Every card of the load: what left it is what was completed, once per EP serial.
    const purchases = [{ level: 1, rows: await rig.purchases(1) }, { level: 2, rows: await rig.purchases(2) }];
    const violations = load.cards.flatMap(({ card, initial }) => moneyViolations({ card, initialBalance: initial, purchases, initialSerial: 0 }));
    tally.add(`the load's ${LOOPS} cards (${load.completed} purchases, ${load.retryable} retryable errors)`, violations);
    console.log(`      ${tally.line()}`);
    for (const p of tally.tried) console.log(`        ${p}`);
    assert.deepEqual(tally.violations, []);
  });
});
