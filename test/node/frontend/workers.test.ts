/**
 * `--workers 4`: four front-end processes on one port, 64 concurrent terminal loops on the same two terminal IDs,
 * racing completions of each purchase against each other and replays of spent EP serials, while workers are
 * SIGKILLed under load and replaced. Afterwards the database must agree with every answer the terminals got.
 */
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { type CompletionAnswer } from "../../../tools/frontend/index";
import { FrontendHttpError, type FrontendClient } from "../../../tools/rigs/frontend/index";
import {
  T1, T2, authorizeBody, clientFor, debitCard, describeEngines, getFixture, initCard, killed, launchFrontend, level1Config, tunionCard, type Fixture,
} from "./support";
import { ensureDatabase, readRows } from "./postgres-support";
import { until } from "../until";

const WORKERS = 4;
const LOOPS = 64;

interface Tally {
  /** purchaseId -> the status every successful completion answer gave. */
  settled: Map<string, string>;
  /** TSNs answered per terminal. */
  tsns: Map<string, number[]>;
  replaysRefused: number;
  conflicts: number;
  retryable: number;
}

/** A failure the terminal treats as "outcome unknown, retry": the connection went away, or a 5xx. */
function retryable(e: unknown): boolean {
  return !(e instanceof FrontendHttpError) || e.status >= 500;
}

function workerPids(primary: ChildProcess): number[] {
  try {
    return readFileSync(`/proc/${primary.pid}/task/${primary.pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

async function loop(f: Fixture, client: FrontendClient, other: FrontendClient, terminalId: string, tally: Tally, until: () => boolean): Promise<void> {
  const card = tunionCard(f, { balance: 10_000_000 });
  while (!until()) {
    const amount = 1 + Math.floor(Math.random() * 300);
    const session = initCard(card, "tunion", amount, terminalId);
    const body = authorizeBody(session, amount, terminalId) as never;
    let answer;
    try {
      answer = await client.authorize(body);
    } catch (e) {
      if (!retryable(e)) throw e;
      tally.retryable++;
      continue;
    }
    tally.tsns.get(terminalId)!.push(answer.tsn);
    const proof = debitCard(card, answer);
    // Three reports of one purchase race through different connections (and so different workers): the same
    // debited report twice, and a conflicting one. Exactly one outcome wins; every success names it.
    const reports = [{ outcome: "debited" as const, ...proof }, { outcome: "debited" as const, ...proof }, { outcome: "not-debited" as const }];
    const results = await Promise.allSettled(reports.map((r, i) => (i === 1 ? other : client).complete(answer.purchaseId, r)));
    const statuses = new Set<string>();
    let unknown = false;
    for (const r of results) {
      if (r.status === "fulfilled") statuses.add((r.value as CompletionAnswer).status);
      else if (retryable(r.reason)) unknown = true;
      else {
        assert.equal((r.reason as FrontendHttpError).code, "ALREADY_SETTLED", String(r.reason));
        tally.conflicts++;
      }
    }
    // A terminal retries an unanswered completion until it hears back (the forwarder does).
    for (let attempt = 0; unknown && attempt < 50; attempt++) {
      try {
        statuses.add((await client.complete(answer.purchaseId, reports[0]!)).status);
        unknown = false;
      } catch (e) {
        if (!retryable(e)) {
          assert.equal((e as FrontendHttpError).code, "ALREADY_SETTLED");
          unknown = false;
        } else {
          tally.retryable++;
          await new Promise((r) => setTimeout(r, 50));
        }
      }
    }
    assert.ok(statuses.size <= 1, `answers disagree for ${answer.purchaseId}: ${[...statuses]}`);
    if (statuses.size) tally.settled.set(answer.purchaseId, [...statuses][0]!);
    // The EP serial this purchase used is spent if it completed: a replay of its INIT is refused, from any worker.
    if (statuses.has("completed")) {
      try {
        await other.authorize(body);
        assert.fail("a replayed EP serial was authorized");
      } catch (e) {
        if (e instanceof FrontendHttpError && e.code === "REPLAY") tally.replaysRefused++;
        else if (!retryable(e)) throw e;
      }
    }
  }
}

describeEngines("front-end: --workers 4, 64 racing terminals, workers SIGKILLed under load", function () {
  this.timeout(180_000);
  let f: Fixture;
  let configPath: string;
  let database: string;
  let primary: ChildProcess | undefined;

  before(async () => {
    f = await getFixture();
    const config = level1Config(f, { listen: { host: "127.0.0.1", port: 0 }, log: { level: "warn", file: path.join(f.dir, `workers-${Date.now()}.log`) } });
    database = config.database;
    configPath = path.join(f.dir, `workers-${Date.now()}.json`);
    writeFileSync(configPath, JSON.stringify(config));
    await ensureDatabase(database);
  });
  after(async () => {
    if (primary) await killed(primary);
  });

  it("hands out no TSN twice, settles nothing twice, and the database agrees with every answer", async () => {
    const replaced: unknown[] = [];
    const running = await launchFrontend(configPath, ["--workers", String(WORKERS)], (line) => {
      if (line.includes("worker-replaced")) replaced.push(JSON.parse(line));
    });
    primary = running.child;
    const tally: Tally = { settled: new Map(), tsns: new Map([[T1, []], [T2, []]]), replaysRefused: 0, conflicts: 0, retryable: 0 };
    const clients = Array.from({ length: LOOPS }, (_, i) => clientFor(f, running.url, i % 2 ? T2 : T1));
    const others = Array.from({ length: LOOPS }, (_, i) => clientFor(f, running.url, i % 2 ? T2 : T1));
    let stop = false;
    const loops = clients.map((c, i) => loop(f, c, others[i]!, i % 2 ? T2 : T1, tally, () => stop));
    const settledCount = () => tally.settled.size;
    const waitFor = (n: number) => until(`${n} purchases settled`, () => settledCount() >= n, 30_000, 50);
    try {
      await waitFor(100);
      // Kill a worker three times while every kind of request is in flight; each is replaced.
      let kills = 0;
      let settledAtKill = 0;
      for (let k = 0; k < 3; k++) {
        const pids = workerPids(primary);
        assert.ok(pids.length >= 1, "no workers found");
        settledAtKill = settledCount();
        process.kill(pids[k % pids.length]!, "SIGKILL");
        kills++;
        await waitFor(settledCount() + 60);
      }
      // Served after the last kill too: the replacements listen on the same port.
      assert.ok(settledCount() > settledAtKill, "nothing was settled after the last kill");
      stop = true;
      await Promise.all(loops);
      await until("every killed worker to be replaced", () => replaced.length >= kills, 5000).catch(() => {});
      assert.equal(replaced.length, kills, "every killed worker is replaced");
    } finally {
      stop = true;
      await Promise.allSettled(loops);
      for (const c of [...clients, ...others]) c.close();
    }
    assert.ok(tally.settled.size >= 200, `load too small: ${tally.settled.size}`);
    assert.ok(tally.conflicts > 0, "the conflicting reports were refused");

    for (const [terminalId, tsns] of tally.tsns) assert.equal(new Set(tsns).size, tsns.length, `a TSN was handed out twice to ${terminalId}`);
    assert.deepEqual(await readRows(database, "SELECT terminal_id, tsn FROM purchases GROUP BY terminal_id, tsn HAVING COUNT(*) > 1"), []);
    const rows = new Map((await readRows<{ id: string; status: string }>(database, "SELECT id, status FROM purchases")).map((r) => [r.id, r.status]));
    for (const [id, status] of tally.settled) assert.equal(rows.get(id), status, `purchase ${id}: the terminal was told ${status}`);
    // A completed EP serial appears once: nothing is settled twice.
    assert.deepEqual(await readRows(database,
      "SELECT asn, ep_serial FROM purchases WHERE status = 'completed' GROUP BY application, asn, ep_serial HAVING COUNT(*) > 1"), []);
    console.log(`      ${tally.settled.size} purchases settled, ${tally.conflicts} conflicting reports refused, ${tally.replaysRefused} replays refused, ` +
      `${tally.retryable} retryable failures, ${replaced.length} workers replaced`);
  });
});
