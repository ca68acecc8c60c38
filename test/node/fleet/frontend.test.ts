/**
 * The fleet routes on a real front-end (mutual TLS, both engines): a terminal reports for itself only, the report is
 * validated by the route's schema, kept as latest and in history, and the terminal reads its effective configuration.
 */
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import path from "node:path";
import type { StatusReport } from "../../../modules/frontend-client/status";
import type { RunningFrontend } from "../../../tools/frontend/index";
import { clientFor, describeEngines, getFixture, killed, launchFrontend, level1Config, OPERATOR, start, stopAll, T1, T2, type Fixture } from "../frontend/support";
import { ensureDatabase, readRows } from "../frontend/postgres-support";

function report(terminalId: string, sequence: number): StatusReport {
  return {
    terminalId, firmware: "0.1.0", reason: "start", sequence, sentAt: Date.now(), uptimeMs: 5,
    journal: { usedBlocks: 1, blocks: 16, liveRecords: 1, fillPercent: 6 }, pendingCompletions: 0, unresolved: 0,
    counts: { approvals: 0, declines: { "card-expired": 2 }, tears: 0, readerFaults: 0, frontendErrors: 0 },
    tapToApprovedMs: { p50: 110.5, p90: 180, samples: 12 }, clockOffsetMs: -20, config: { version: 0, refused: [] }, heap: { usedBytes: 1000 },
  };
}

describeEngines("fleet routes", function () {
  this.timeout(60_000);
  let f: Fixture;
  let fe: RunningFrontend;

  before(async () => {
    f = await getFixture();
    fe = await start(level1Config(f));
  });
  after(stopAll);

  it("keeps a terminal's report, answers with the saved configuration version and a Date header, and refuses a report for another terminal", async () => {
    const t1 = clientFor(f, fe.url, T1);
    const t2 = clientFor(f, fe.url, T2);
    const op = clientFor(f, fe.url, OPERATOR);
    try {
      const sent = report(T1, 1);
      const ok = await t1.raw("POST", `/v1/terminals/${T1}/status`, sent);
      assert.equal(ok.status, 200, ok.text);
      assert.deepEqual(ok.json, { configVersion: 0 });
      assert.ok(typeof ok.headers.date === "string" && !Number.isNaN(Date.parse(ok.headers.date)));
      const [latest] = await fe.store.fleet.latestStatus();
      assert.equal(latest!.terminalId, T1);
      assert.deepEqual(latest!.report, sent);
      assert.equal(latest!.report.counts.declines["card-expired"], 2);

      for (const [client, path, body] of [
        [t2, `/v1/terminals/${T1}/status`, report(T1, 2)],
        [t2, `/v1/terminals/${T2}/status`, report(T1, 2)],
        [op, `/v1/terminals/${T1}/status`, report(T1, 2)],
      ] as const) {
        const r = await client.raw("POST", path, body);
        assert.deepEqual([r.status, (r.json as { error: { code: string } }).error.code], [403, "TERMINAL_MISMATCH"], path);
      }
      for (const bad of [{ ...report(T1, 2), extra: 1 }, { ...report(T1, 2), reason: "bored" }, { ...report(T1, 2), sequence: -1 },
        { ...report(T1, 2), journal: { usedBlocks: 1 } }, { ...report(T1, 2), counts: { ...report(T1, 2).counts, declines: { "Bad Reason!": 1 } } }]) {
        const r = await t1.raw("POST", `/v1/terminals/${T1}/status`, bad);
        assert.deepEqual([r.status, (r.json as { error: { code: string } }).error.code], [400, "VALIDATION"], JSON.stringify(bad).slice(0, 80));
      }
      assert.equal((await fe.store.fleet.statusHistory(T1, 10)).length, 1, "nothing refused was kept");
    } finally {
      t1.close();
      t2.close();
      op.close();
    }
  });

  it("gives a terminal its effective configuration, and an operator any terminal's; not another terminal", async () => {
    await fe.store.fleet.putConfigScope("defaults", { maxAmount: 900, message: "Hi" }, "test");
    await fe.store.fleet.putConfigScope(`terminal:${T1}`, { maxAmount: 400 }, "test");
    const t1 = clientFor(f, fe.url, T1);
    const t2 = clientFor(f, fe.url, T2);
    const op = clientFor(f, fe.url, OPERATOR);
    try {
      const mine = await t1.raw("GET", `/v1/terminals/${T1.toLowerCase()}/config`);
      assert.equal(mine.status, 200, mine.text);
      const answer = mine.json as { terminalId: string; version: number; settings: Record<string, unknown> };
      assert.deepEqual([answer.terminalId, answer.settings], [T1, { maxAmount: 400, message: "Hi" }]);
      assert.ok(answer.version >= 2);
      // The answer to a status report names the same version, so the terminal learns of the change at its next report.
      const reported = await t1.raw("POST", `/v1/terminals/${T1}/status`, report(T1, 7));
      assert.deepEqual([reported.status, reported.json], [200, { configVersion: answer.version }]);
      assert.equal((await op.raw("GET", `/v1/terminals/${T1}/config`)).status, 200);
      const other = await t2.raw("GET", `/v1/terminals/${T1}/config`);
      assert.deepEqual([other.status, (other.json as { error: { code: string } }).error.code], [403, "TERMINAL_MISMATCH"]);
      assert.equal((await t1.raw("GET", "/v1/terminals/nothex/config")).status, 400);
    } finally {
      t1.close();
      t2.close();
      op.close();
    }
  });

  it("works with --workers 2: reports from several terminals are kept, configurations are answered", async () => {
    const config = level1Config(f, { log: { level: "warn", file: path.join(f.dir, `fleet-workers-${Date.now()}.log`) } });
    const configPath = path.join(f.dir, `fleet-workers-${Date.now()}.json`);
    writeFileSync(configPath, JSON.stringify(config));
    await ensureDatabase(config.database);
    const running = await launchFrontend(configPath, ["--workers", "2"]);
    const clients = [T1, T2, T1, T2].map((t) => [t, clientFor(f, running.url, t)] as const);
    try {
      const answers = await Promise.all(clients.map(([t, c], i) => c.raw("POST", `/v1/terminals/${t}/status`, report(t, i + 1))));
      assert.deepEqual(answers.map((a) => [a.status, a.json]), Array(4).fill([200, { configVersion: 0 }]));
      const configs = await Promise.all(clients.map(([t, c]) => c.raw("GET", `/v1/terminals/${t}/config`)));
      assert.deepEqual(configs.map((c) => [c.status, (c.json as { version: number }).version]), [[200, 0], [200, 0], [200, 0], [200, 0]]);
      const rows = await readRows<{ terminal_id: string; n: number }>(config.database,
        "SELECT terminal_id, COUNT(*) AS n FROM terminal_status_history GROUP BY terminal_id ORDER BY terminal_id");
      assert.deepEqual(rows.map((r) => [r.terminal_id, Number(r.n)]), [[T1, 2], [T2, 2]]);
    } finally {
      for (const [, c] of clients) c.close();
      await killed(running.child);
    }
  });
});
