import assert from "node:assert/strict";
import { spawnSync, type ChildProcess } from "node:child_process";
import { writeFileSync } from "node:fs";
import path from "node:path";
import type { AuthorizeAnswer } from "../../../tools/frontend/index";
import type { FrontendClient } from "../../../tools/rigs/frontend/index";
import { T1, T2, authorizeBody, clientFor, debitCard, getFixture, initCard, level1Config, tunionCard, type Fixture, describeEngines, killed, launchFrontend } from "./support";
import { ensureDatabase, readRows } from "./postgres-support";

const root = path.resolve(import.meta.dirname, "../../..");
const MAIN = path.join(root, "tools/frontend/main.ts");
const launch = (configPath: string) => launchFrontend(configPath);

interface Acknowledged {
  terminalId: string;
  authorized: AuthorizeAnswer[];
  completed: Set<string>;
}

/** Purchases in a loop until the server goes away or the deadline passes; records what the server acknowledged. */
async function loadLoop(f: Fixture, client: FrontendClient, terminalId: string, ack: Acknowledged, until: number): Promise<void> {
  const card = tunionCard(f, { balance: 10_000_000 });
  try {
    while (Date.now() < until) {
      const amount = 1 + Math.floor(Math.random() * 500);
      const answer = await client.authorize(authorizeBody(initCard(card, "tunion", amount, terminalId), amount, terminalId) as never);
      ack.authorized.push(answer);
      const proof = debitCard(card, answer);
      const done = await client.complete(answer.purchaseId, { outcome: "debited", ...proof });
      assert.equal(done.status, "completed");
      ack.completed.add(answer.purchaseId);
    }
  } catch (e) {
    if (e instanceof assert.AssertionError) throw e;
    // The server was killed under us: what was acknowledged so far is what must survive.
  }
}

describeEngines("front-end: crash (SIGKILL under load) and restart", function () {
  this.timeout(90_000);
  let f: Fixture;
  let configPath: string;
  let databasePath: string;
  let child: ChildProcess | undefined;

  before(async () => {
    f = await getFixture();
    const config = level1Config(f, { listen: { host: "127.0.0.1", port: 0 }, log: { level: "warn", file: path.join(f.dir, "crash.log") } });
    databasePath = config.database;
    configPath = path.join(f.dir, "crash-config.json");
    writeFileSync(configPath, JSON.stringify(config));
    await ensureDatabase(config.database);
  });
  after(async () => {
    if (child) await killed(child);
  });

  it("keeps every acknowledged authorization and completion and never hands out a TSN twice", async () => {
    const acks: Acknowledged[] = [T1, T2].map((terminalId) => ({ terminalId, authorized: [], completed: new Set<string>() }));
    for (let round = 0; round < 2; round++) {
      const running = await launch(configPath);
      child = running.child;
      const clients = acks.map((a) => clientFor(f, running.url, a.terminalId));
      const stopAt = Date.now() + 10_000;
      const loops = acks.flatMap((a, i) => Array.from({ length: 6 }, () => loadLoop(f, clients[i]!, a.terminalId, a, stopAt)));
      // Let the load run, then kill the process without warning while requests are in flight.
      const before = acks.reduce((n, a) => n + a.completed.size, 0);
      while (acks.reduce((n, a) => n + a.completed.size, 0) < before + 150 && Date.now() < stopAt) await new Promise((r) => setTimeout(r, 20));
      await killed(child);
      await Promise.all(loops);
      for (const c of clients) c.close();
    }
    const totalAuthorized = acks.reduce((n, a) => n + a.authorized.length, 0);
    assert.ok(totalAuthorized >= 100, `load too small: ${totalAuthorized}`);

    const running = await launch(configPath);
    child = running.child;
    for (const a of acks) {
      const client = clientFor(f, running.url, a.terminalId);
      try {
        const tsns = a.authorized.map((x) => x.tsn);
        assert.equal(new Set(tsns).size, tsns.length, `a TSN was handed out twice to ${a.terminalId}`);
        for (const x of a.authorized) {
          const view = await client.purchase(x.purchaseId);
          assert.equal(view.tsn, x.tsn);
          if (a.completed.has(x.purchaseId)) assert.equal(view.status, "completed", `acknowledged completion of ${x.purchaseId} lost`);
          else assert.ok(["authorized", "completed"].includes(view.status));
        }
        // After the restart the terminal's sequence goes on above everything handed out before.
        const next = await client.authorize(authorizeBody(initCard(tunionCard(f), "tunion", 1, a.terminalId), 1, a.terminalId) as never);
        assert.ok(next.tsn > Math.max(...tsns), `TSN ${next.tsn} after restart is not above ${Math.max(...tsns)}`);
      } finally {
        client.close();
      }
    }
    await killed(child);
    child = undefined;

    const read = <T>(sql: string, params: unknown[] = []) => readRows<T>(databasePath, sql, params);
    assert.deepEqual(await read("SELECT terminal_id, tsn FROM purchases GROUP BY terminal_id, tsn HAVING COUNT(*) > 1"), []);
    for (const a of acks) {
      const [{ last }] = await read<{ last: number }>("SELECT last_tsn AS last FROM terminals WHERE terminal_id = ?", [a.terminalId]) as [{ last: number }];
      const [{ top }] = await read<{ top: number }>("SELECT MAX(tsn) AS top FROM purchases WHERE terminal_id = ?", [a.terminalId]) as [{ top: number }];
      assert.ok(last >= top);
    }
    // The settlement command reads the same journal: every completed purchase of a day is in that day's export.
    const days = await read<{ date: string; n: number }>("SELECT date, COUNT(*) AS n FROM purchases WHERE status = 'completed' GROUP BY date");
    assert.ok(days.length >= 1);
    for (const { date, n } of days) {
      const r = spawnSync(process.execPath, ["--import", "tsx", MAIN, "settle", "--config", configPath, "--date", date, "--format", "csv"], { cwd: root, encoding: "utf8" });
      assert.equal(r.status, 0, r.stderr);
      const lines = r.stdout.trim().split("\r\n");
      assert.equal(lines.length, n + 1);
      const ids = new Set(lines.slice(1).map((l) => l.split(",")[0]));
      const dates = new Map((await read<{ id: string; date: string }>("SELECT id, date FROM purchases")).map((x) => [x.id, x.date]));
      for (const a of acks) for (const id of a.completed) {
        if (dates.get(id) === date) assert.ok(ids.has(id), `completed ${id} missing from the settlement export`);
      }
    }
  });
});
