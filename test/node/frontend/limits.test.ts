import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { ensureDatabase } from "./postgres-support";
import {
  authorizeBody, chinaToday, clientFor, describeEngines, getFixture, initCard, killed, launchFrontend, level1Config, start, stopAll, T1, T2, tunionCard,
} from "./support";
import type { FrontendClient } from "../../../tools/rigs/frontend/index";

const codeOf = (json: unknown) => (json as { error?: { code?: string } } | undefined)?.error?.code;

describeEngines("per-terminal limits", function (engine) {
  this.timeout(120_000);
  afterEach(stopAll);

  it("a token bucket per terminal: a burst, then 429 RATE_LIMITED with Retry-After; other terminals unaffected; tokens come back", async () => {
    const f = await getFixture();
    // One token every 4 s: the burst of 3 is spent long before the first comes back, even on a loaded machine.
    const fe = await start(level1Config(f, { limits: { authorizationsPerSecond: 0.25, authorizationBurst: 3 } }));
    const t1 = clientFor(f, fe.url, T1);
    const t2 = clientFor(f, fe.url, T2);
    try {
      const s1 = initCard(tunionCard(f), "tunion", 100, T1);
      const s2 = initCard(tunionCard(f), "tunion", 100, T2);
      for (let i = 0; i < 3; i++) assert.equal((await t1.raw("POST", "/v1/purchases", authorizeBody(s1, 100, T1))).status, 201);
      const over = await t1.raw("POST", "/v1/purchases", authorizeBody(s1, 100, T1));
      assert.equal(over.status, 429);
      assert.equal(codeOf(over.json), "RATE_LIMITED");
      const retryAfter = Number(over.headers["retry-after"]);
      assert.ok(retryAfter >= 1 && retryAfter <= 4, `Retry-After ${over.headers["retry-after"]}`);
      assert.equal((await t2.raw("POST", "/v1/purchases", authorizeBody(s2, 100, T2))).status, 201, "another terminal has its own bucket");
      await new Promise((resolve) => setTimeout(resolve, retryAfter * 1000));
      assert.equal((await t1.raw("POST", "/v1/purchases", authorizeBody(s1, 100, T1))).status, 201, "a token comes back after Retry-After");
      assert.equal((await t1.raw("POST", "/v1/purchases", authorizeBody(s1, 100, T1))).status, 429);
    } finally {
      t1.close();
      t2.close();
    }
  });

  it("by default a terminal may make 10 authorizations at once, then about 5 a second", async () => {
    const f = await getFixture();
    const config = level1Config(f);
    delete config.limits!.authorizationsPerSecond;
    delete config.limits!.authorizationBurst;
    const fe = await start(config);
    const t1 = clientFor(f, fe.url, T1);
    try {
      const s = initCard(tunionCard(f), "tunion", 100, T1);
      // 20 at once; what the bucket grants may grow by 5 a second of however long the machine takes to answer them.
      const started = performance.now();
      const statuses = (await Promise.all(Array.from({ length: 20 }, () => t1.raw("POST", "/v1/purchases", authorizeBody(s, 100, T1))))).map((r) => r.status);
      const seconds = (performance.now() - started) / 1000;
      const granted = statuses.filter((x) => x === 201).length;
      assert.ok(granted >= 10 && granted <= 10 + Math.ceil(seconds * 5), `${granted} granted in ${seconds.toFixed(2)} s`);
      assert.equal(statuses.filter((x) => x === 429).length, 20 - granted, "the rest are RATE_LIMITED");
      if (seconds < 1.5) assert.ok(granted < 20, "some were refused");
    } finally {
      t1.close();
    }
  });

  it("a daily amount ceiling per terminal: 422 DAILY_LIMIT past it, a voided purchase gives its amount back, the next China day starts afresh", async () => {
    const f = await getFixture();
    let now = Date.now();
    const fe = await start(level1Config(f, { clock: () => now, limits: { dailyAmount: 1000 } }));
    const t1 = clientFor(f, fe.url, T1);
    try {
      const s = initCard(tunionCard(f), "tunion", 100, T1);
      const authorize = (amount: number) => t1.raw("POST", "/v1/purchases", authorizeBody(s, amount, T1));
      assert.equal((await authorize(1001)).status, 422, "an amount alone over the ceiling");
      assert.equal((await authorize(400)).status, 201);
      const second = await authorize(400);
      assert.equal(second.status, 201);
      const over = await authorize(300);
      assert.equal(over.status, 422);
      assert.equal(codeOf(over.json), "DAILY_LIMIT");
      assert.equal(await fe.store.limits.dailyTotal(T1, chinaToday(now)), 800, "a refused authorization adds nothing");
      const voided = await t1.raw("POST", `/v1/purchases/${(second.json as { purchaseId: string }).purchaseId}/completion`, { outcome: "not-debited" });
      assert.equal(voided.status, 200);
      assert.equal(await fe.store.limits.dailyTotal(T1, chinaToday(now)), 400, "the voided purchase's amount is given back");
      assert.equal((await authorize(600)).status, 201, "exactly up to the ceiling");
      assert.equal(codeOf((await authorize(1)).json), "DAILY_LIMIT");
      now += 24 * 3600_000;
      assert.equal((await authorize(1000)).status, 201, "a new business day");
    } finally {
      t1.close();
    }
  });

  it("two workers racing for the last of the ceiling: exactly the ceiling is authorized", async () => {
    const f = await getFixture();
    const config = level1Config(f, { log: { level: "warn" }, limits: { dailyAmount: 1000, authorizationsPerSecond: 10_000, authorizationBurst: 10_000 } });
    await ensureDatabase(config.database);
    const configPath = path.join(f.dir, `limits-${engine}-${process.pid}.json`);
    writeFileSync(configPath, JSON.stringify(config));
    const { child, url } = await launchFrontend(configPath, ["--workers", "2"]);
    const clients: FrontendClient[] = [];
    try {
      const s = initCard(tunionCard(f), "tunion", 100, T1);
      // Eight clients with several connections each, so that both workers take a share of the 30 requests at once.
      for (let i = 0; i < 8; i++) clients.push(clientFor(f, url, T1));
      const answers = await Promise.all(Array.from({ length: 30 }, (_, i) => clients[i % clients.length]!.raw("POST", "/v1/purchases", authorizeBody(s, 100, T1))));
      const statuses = answers.map((a) => a.status === 201 ? "ok" : codeOf(a.json));
      assert.equal(statuses.filter((x) => x === "ok").length, 10, statuses.join(","));
      assert.equal(statuses.filter((x) => x === "DAILY_LIMIT").length, 20, statuses.join(","));
    } finally {
      for (const c of clients) c.close();
      await killed(child, "SIGTERM");
    }
  });
});
