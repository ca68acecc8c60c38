/**
 * `--workers 2`: a worker SIGKILLed in the middle of each request kind (authorize, completion, get purchase, routes,
 * settlement), aimed with the test-only hold (tools/rigs/frontend/test-hold.ts): the worker that takes the request stops at
 * a named point of it ("received": nothing done yet; "answered": its writes are durable, the answer not sent) and is
 * killed there. The terminal must see a retryable error, the retry must be answered (by the other worker or the
 * replacement), and the card and the database must agree: nothing lost, nothing charged twice.
 */
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { execFileSync } from "node:child_process";
import { request as httpsRequest } from "node:https";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { FrontendHttpError, type FrontendClient } from "../../../tools/rigs/frontend/index";
import { cardAsn } from "../../../tools/rigs/harness/consistency";
import { HOLD_ENV, type HoldPoint, type RequestKind } from "../../../tools/rigs/frontend/test-hold";

const TEST_HOLD_PLUGIN = path.resolve(import.meta.dirname, "../../../tools/rigs/frontend/test-hold.ts");
import {
  OPERATOR, T1, authorizeBody, chinaToday, clientFor, debitCard, describeEngines, getFixture, initCard, killed, launchFrontend, level1Config,
  tunionCard, type Fixture,
} from "./support";
import { ensureDatabase, readRows } from "./postgres-support";
import { until } from "../until";

/** A failure the terminal treats as "outcome unknown, retry": the connection went away, or a 5xx. */
function retryable(e: unknown): boolean {
  return !(e instanceof FrontendHttpError) || e.status >= 500;
}

const CASES: [RequestKind, HoldPoint][] = [
  ["authorize", "received"], ["authorize", "answered"], ["completion", "received"], ["completion", "answered"],
  ["purchase", "answered"], ["routes", "answered"], ["settlement", "answered"],
];

describeEngines("front-end: --workers 2, a worker SIGKILLed in the middle of each request kind", function () {
  this.timeout(300_000);
  let f: Fixture;
  let database: string;
  let primary: ChildProcess | undefined;
  let url = "";
  let holdFile = "";
  let operatorUrl = "";
  const replaced: number[] = [];

  before(async () => {
    f = await getFixture();
    const config = level1Config(f, {
      log: { level: "warn", file: path.join(f.dir, `kills-${process.pid}-${Date.now()}.log`) },
      reconciliationTimeoutMs: 2000, reconciliationSweepMs: 200,
      plugins: [TEST_HOLD_PLUGIN],
      operator: { host: "127.0.0.1", port: 0, accounts: [] },
    });
    database = config.database;
    const configPath = path.join(f.dir, `kills-${process.pid}-${Date.now()}.json`);
    holdFile = path.join(f.dir, `hold-${process.pid}-${Date.now()}`);
    writeFileSync(configPath, JSON.stringify(config));
    await ensureDatabase(database);
    const running = await launchFrontend(configPath, ["--workers", "2"], (line) => {
      if (line.includes("worker-replaced")) replaced.push((JSON.parse(line) as { pid: number }).pid);
      if (line.includes('"operatorUrl"')) operatorUrl = (JSON.parse(line) as { operatorUrl: string }).operatorUrl;
    }, { [HOLD_ENV]: holdFile });
    primary = running.child;
    url = running.url;
  });
  after(async () => {
    // SIGTERM: the primary stops its workers (a SIGKILLed primary leaves a starting replacement to fail on its IPC).
    if (primary) await killed(primary, "SIGTERM");
  });

  /**
   * Runs `request` with the hold armed at kind:point, kills the worker holding it, and checks the terminal's error is
   * retryable; then retries (a fresh connection each time) until answered, and returns that answer.
   */
  async function killedMidway<T>(kind: RequestKind, point: HoldPoint, request: (c: FrontendClient) => Promise<T>, who = T1): Promise<T> {
    for (const suffix of [".held", ".claimed"]) rmSync(holdFile + suffix, { force: true });
    writeFileSync(holdFile, `${kind}:${point}`);
    const client = clientFor(f, url, who);
    const before = replaced.length;
    try {
      const pending = request(client).then(() => undefined, (e: unknown) => e);
      const held = await until(`a worker to hold the ${kind} request at "${point}"`, () => {
        if (!existsSync(`${holdFile}.held`)) return undefined;
        try {
          return JSON.parse(readFileSync(`${holdFile}.held`, "utf8")) as { pid: number; kind: string; point: string };
        } catch {
          return undefined; // claimed, not yet written
        }
      });
      assert.equal(held.kind, kind);
      process.kill(held.pid, "SIGKILL");
      const error = await pending;
      assert.ok(error !== undefined, `the ${kind} request was answered although its worker was killed`);
      assert.ok(retryable(error), `the terminal got a final error, not a retryable one: ${String(error)}`);
      await until("the killed worker to be replaced", () => replaced.length > before);
    } finally {
      client.close();
    }
    for (let attempt = 1; ; attempt++) {
      const retry = clientFor(f, url, who);
      try {
        return await request(retry);
      } catch (e) {
        if (!retryable(e) || attempt >= 50) throw e;
        await new Promise((r) => setTimeout(r, 100));
      } finally {
        retry.close();
      }
    }
  }

  /** Card and database agree: what left the card is what was completed, once per EP serial. */
  async function moneyAgrees(asn: string, initial: number, balance: number): Promise<void> {
    const rows = await readRows<{ status: string; amount: number; ep_serial: number }>(database, "SELECT status, amount, ep_serial FROM purchases WHERE asn = ?", [asn]);
    const completed = rows.filter((r) => r.status === "completed");
    assert.equal(completed.reduce((n, r) => n + r.amount, 0), initial - balance, `money: ${JSON.stringify(rows)}`);
    assert.equal(new Set(completed.map((r) => r.ep_serial)).size, completed.length, "an EP serial was completed twice");
    await until("every authorization not completed to be marked for reconciliation",
      async () => (await readRows(database, "SELECT id FROM purchases WHERE asn = ? AND status = 'authorized'", [asn])).length === 0);
  }

  for (const [kind, point] of CASES) {
    it(`${kind}, killed at "${point}": a retryable error, the retry is answered, nothing lost or doubled`, async () => {
      const card = tunionCard(f);
      const asn = cardAsn(card);
      const initial = card.state.applications[0]!.balance;
      const amount = 120;
      const authorize = async (c: FrontendClient) => c.authorize(authorizeBody(initCard(card, "tunion", amount), amount) as never);
      if (kind === "authorize") {
        // The retry is the same INIT (the card's EP serial has not moved): a held authorization left authorized is
        // swept to reconciliation; the retried one is debited and completed.
        const session = initCard(card, "tunion", amount);
        const body = authorizeBody(session, amount) as never;
        const answer = await killedMidway(kind, point, (c) => c.authorize(body));
        const proof = debitCard(card, answer);
        const client = clientFor(f, url);
        try {
          assert.equal((await client.complete(answer.purchaseId, { outcome: "debited", ...proof })).status, "completed");
        } finally {
          client.close();
        }
        const rows = await readRows<{ id: string }>(database, "SELECT id FROM purchases WHERE asn = ?", [asn]);
        assert.equal(rows.length, point === "received" ? 1 : 2, "a held authorization is recorded only once it got that far");
      } else {
        const client = clientFor(f, url);
        try {
          const answer = await authorize(client);
          const proof = debitCard(card, answer);
          if (kind === "completion") {
            const done = await killedMidway(kind, point, (c) => c.complete(answer.purchaseId, { outcome: "debited", ...proof }));
            assert.equal(done.status, "completed");
          } else {
            assert.equal((await client.complete(answer.purchaseId, { outcome: "debited", ...proof })).status, "completed");
            if (kind === "purchase") {
              const view = await killedMidway(kind, point, (c) => c.purchase(answer.purchaseId));
              assert.equal(view.status, "completed");
            } else if (kind === "routes") {
              const table = await killedMidway(kind, point, (c) => c.routes());
              assert.equal(table.routes.length, 2);
            } else {
              const text = await killedMidway(kind, point, (c) => c.settlement(chinaToday()), OPERATOR);
              assert.ok(text.includes(answer.purchaseId), "the settlement export holds the completed purchase");
            }
          }
        } finally {
          client.close();
        }
      }
      await moneyAgrees(asn, initial, card.state.applications[0]!.balance);
    });
  }

  /**
   * Every worker dead at once, before any replacement listens (what a quick second kill did to the cases above on a
   * loaded machine): the port stays open and a terminal's connection waits for a replacement instead of being refused.
   */
  it("every worker killed at once: a new connection (terminal or console) is not refused, it is answered by a replacement", async () => {
    // The primary's live workers (its other children, such as tsx's esbuild service, are not), a replacement still
    // starting included if the case before killed one.
    const isWorker = (pid: number) => {
      try {
        return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8")) && readFileSync(`/proc/${pid}/environ`, "utf8").split("\0").includes("FRONTEND_WORKER=1");
      } catch {
        return false;
      }
    };
    const workers = execFileSync("pgrep", ["-P", String(primary!.pid)], { encoding: "utf8" }).trim().split("\n").map(Number).filter(isWorker);
    assert.ok(workers.length >= 2, `the primary's workers: ${workers.join(", ")}`);
    const before = replaced.length;
    for (const pid of workers) process.kill(pid, "SIGKILL");
    await until("the primary to see every death", () => (replaced.length >= before + workers.length ? true : undefined));
    const client = clientFor(f, url);
    try {
      const [health, login] = await Promise.all([client.health(), consoleLoginPage()]);
      assert.equal(health.status, "ok");
      assert.equal(login, 200, "the console's login page");
    } finally {
      client.close();
    }
  });

  /** The console's login page status, over TLS to the console's port. */
  function consoleLoginPage(): Promise<number> {
    assert.ok(operatorUrl, "the front-end announced its console");
    return new Promise((resolve, reject) => {
      const req = httpsRequest(`${operatorUrl}/login`, { ca: f.pki.ca.certPem, agent: false, timeout: 30_000 }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on("timeout", () => req.destroy(new Error("no answer from the console in 30 s")));
      req.on("error", reject);
      req.end();
    });
  }
});
