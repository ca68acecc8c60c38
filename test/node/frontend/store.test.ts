/**
 * The money rules held by the database itself, with several writers on one PostgreSQL: separate pools stand for
 * separate front-end processes (each its own connections, nothing shared in memory), racing on one terminal's TSNs,
 * one purchase's completion, the reconciliation sweep and the migrations themselves.
 */
import assert from "node:assert/strict";
import { PostgresStore, SCHEMA_VERSION, type PurchaseInsert, type SettleValues } from "../../../tools/frontend/index";
import { ensureDatabase, newPostgresUrl, postgresCluster, postgresSkipReason, readRows, type Cluster } from "./postgres-support";

const WRITERS = 4;

function purchase(id: string, terminalId: string, tsn: number, authorizedAt: number): PurchaseInsert {
  return [id, terminalId, tsn, `O-${id}`, "tunion", 6, 100, 1, 1, "3des", "issuer", "1000", 2, "03100000000000000001", tsn, 1000, 0,
    "00", "00", "20261126", "120000", authorizedAt];
}

function completion(outcome: "debited" | "not-debited", n: number): SettleValues {
  const canonical = JSON.stringify({ outcome, n });
  return {
    status: outcome === "debited" ? "completed" : "voided", outcome, mac2: null, tac: null, mac2Valid: null, tacValid: null,
    completion: canonical, answer: canonical, completedAt: 1, reason: null, review: false, at: 1, event: null,
  };
}

describe("front-end storage: money rules in PostgreSQL with several writers", function () {
  this.timeout(120_000);
  let cluster: Cluster;
  let url: string;
  let stores: PostgresStore[] = [];

  before(async function () {
    const c = await postgresCluster();
    if (!c) {
      console.log(`      skipped: ${postgresSkipReason()}`);
      this.skip();
    }
    cluster = c;
    url = newPostgresUrl(cluster);
    await ensureDatabase(url);
  });
  after(async () => {
    await Promise.all(stores.map((s) => s.close()));
  });

  it("several processes starting at once apply the migrations once", async () => {
    stores = await Promise.all(Array.from({ length: WRITERS }, () => PostgresStore.open(url, { poolSize: 8 })));
    for (const s of stores) assert.equal(s.schemaVersion, SCHEMA_VERSION);
    assert.deepEqual(await readRows(url, "SELECT version FROM schema_version ORDER BY version"), Array.from({ length: SCHEMA_VERSION }, (_, i) => ({ version: i + 1 })));
  });

  it("hands out every TSN of a terminal once, whichever writer asks", async () => {
    const per = 100;
    const tsns = (await Promise.all(stores.map((s) => Promise.all(Array.from({ length: per }, () => s.reserveTsn("00AABBCCDDEE")))))).flat();
    assert.equal(new Set(tsns).size, WRITERS * per);
    assert.deepEqual([Math.min(...tsns), Math.max(...tsns)], [1, WRITERS * per]);
  });

  it("refuses a second purchase with the same terminal and TSN", async () => {
    // Authorized far in the future, so the sweep below leaves it alone.
    await stores[0]!.insert(purchase("dup-1", "00AABBCCDDEE", 7, 1e13));
    await assert.rejects(stores[1]!.insert(purchase("dup-2", "00AABBCCDDEE", 7, 1e13)), /duplicate key|unique/);
  });

  it("lets exactly one of racing different completions win; the same one again is not a second write", async () => {
    const ids = Array.from({ length: 20 }, (_, i) => `race-${i}`);
    await Promise.all(ids.map((id, i) => stores[i % WRITERS]!.insert(purchase(id, "00AABBCCDD01", 1000 + i, 1))));
    for (const id of ids) {
      const wins = await Promise.all(stores.map((s, w) => s.settle(id, completion(w % 2 ? "not-debited" : "debited", w))));
      assert.equal(wins.filter(Boolean).length, 1, `${id}: ${wins}`);
      const [row] = await readRows<{ completion: string }>(url, "SELECT completion FROM purchases WHERE id = ?", [id]);
      const winner = wins.indexOf(true);
      assert.equal(row!.completion, completion(winner % 2 ? "not-debited" : "debited", winner).completion);
      assert.equal(await stores[0]!.settle(id, completion(winner % 2 ? "not-debited" : "debited", winner)), false);
    }
  });

  it("refuses a TSN to a spent EP serial in the same statement, and uses none for it", async () => {
    const [spent] = await readRows<{ asn: string; ep_serial: number }>(url, "SELECT asn, ep_serial FROM purchases WHERE status = 'completed' LIMIT 1");
    assert.ok(spent, "a completed purchase from the race above");
    const terminal = "00AABBCCDD05";
    assert.equal(await stores[1]!.reserveTsnUnlessSpent(terminal, "tunion", spent.asn, spent.ep_serial), undefined);
    assert.equal(await stores[2]!.reserveTsnUnlessSpent(terminal, "tunion", spent.asn, 60_000), 1);
    assert.equal(await stores[3]!.reserveTsnUnlessSpent(terminal, "tunion", spent.asn, spent.ep_serial), undefined);
    assert.equal(await stores[0]!.reserveTsnUnlessSpent(terminal, "cityunion", spent.asn, spent.ep_serial), 2, "another application's serial is not spent");
  });

  it("marks each overdue authorization for reconciliation exactly once with several sweepers", async () => {
    const n = 400;
    await Promise.all(Array.from({ length: n }, (_, i) => stores[i % WRITERS]!.insert(purchase(`sweep-${i}`, "00AABBCCDD02", i + 1, 10))));
    const marked = await Promise.all(stores.flatMap((s) => [s.sweep(1000, 2000), s.sweep(1000, 2000)]));
    assert.equal(marked.reduce((a, b) => a + b, 0), n, `marked ${marked}`);
    const [events] = await readRows<{ n: number; distinct: number }>(url,
      "SELECT COUNT(*) AS n, COUNT(DISTINCT purchase_id) AS distinct FROM events WHERE kind = 'reconciliation' AND purchase_id LIKE 'sweep-%'");
    assert.deepEqual(events, { n, distinct: n });
  });

  it("answers a retryable JOURNAL_UNAVAILABLE while the server is down, and works again after it restarts", async () => {
    const s = stores[0]!;
    cluster.stop();
    try {
      await assert.rejects(s.reserveTsn("00AABBCCDD03"), (e: { code?: string; statusCode?: number }) => e.code === "JOURNAL_UNAVAILABLE" && e.statusCode === 503);
    } finally {
      cluster.start();
    }
    // Connections the restart cut fail once each, with the same retryable error; a retry gets a fresh one.
    let tsn = 0;
    for (let attempt = 0; !tsn; attempt++) {
      assert.ok(attempt < 20, "the store did not recover after the restart");
      tsn = await s.reserveTsn("00AABBCCDD03").catch((e: { code?: string }) => {
        assert.equal(e.code, "JOURNAL_UNAVAILABLE");
        return 0;
      });
    }
    assert.equal(tsn, 1);
  });
});
