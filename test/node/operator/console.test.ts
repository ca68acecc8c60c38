/**
 * The operator listener over real TLS on both engines: 401 before login, scrypt accounts and the signed session
 * cookie, an operator certificate, the pages' queries (search, flagged, settlement CSV), /metrics after real
 * purchases, and /openapi.json against docs/openapi.json.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { type RunningFrontend } from "../../../tools/frontend/index";
import { FrontendClient } from "../../../tools/rigs/frontend/index";
import { hashPassword } from "../../../tools/frontend/operator/index";
import { OPENAPI_FILE, generateOpenApi } from "../../../tools/rigs/frontend/openapi-main";
import {
  OPERATOR, T1, authorizeBody, chinaToday, clientFor, debitCard, describeEngines, getFixture, initCard, level1Config, purchase, start, stopAll, tunionCard, type Fixture,
} from "../frontend/support";

const PASSWORD = "correct horse battery";

describeEngines("operator console: login, pages, metrics and OpenAPI", function () {
  this.timeout(60_000);
  let f: Fixture;
  let fe: RunningFrontend;
  let terminal: FrontendClient;
  let web: FrontendClient;
  let cookie = "";
  let now = Date.parse("2026-11-26T04:00:00Z");
  const day = chinaToday(Date.parse("2026-11-26T04:00:00Z"));
  let order = "";
  let asn = "";
  let flaggedId = "";

  before(async () => {
    f = await getFixture();
    fe = await start(level1Config(f, {
      clock: () => now, limits: { maxAmount: 5000 },
      operator: {
        port: 0, accounts: [{ user: "alice", password: hashPassword(PASSWORD) }], sessionHours: 1, statusEveryMs: 60_000,
        // The lockout has its own test (login-flood.test.ts): here the flood below must not lock alice out.
        loginLimits: { freeFailures: 50 },
      },
    }));
    assert.ok(fe.operator.url, "the console listens");
    terminal = clientFor(f, fe.url, T1);
    web = new FrontendClient(fe.operator.url!, { ca: f.pki.ca.certPem });
    const card = tunionCard(f, { balance: 10_000 });
    asn = `0310${"0".repeat(16)}`;
    const session = initCard(card, "tunion", 420);
    const body = authorizeBody(session, 420);
    order = body.order;
    const answer = await terminal.authorize(body as never);
    await terminal.complete(answer.purchaseId, { outcome: "debited", ...debitCard(card, answer) });
    asn = (await terminal.purchase(answer.purchaseId)).asn;
    // A completion whose TAC does not verify: flagged.
    const other = tunionCard(f);
    const s2 = initCard(other, "tunion", 100);
    const a2 = await terminal.authorize(authorizeBody(s2, 100) as never);
    const proof = debitCard(other, a2);
    flaggedId = a2.purchaseId;
    await terminal.complete(a2.purchaseId, { outcome: "debited", mac2: proof.mac2, tac: proof.tac === "00000000" ? "11111111" : "00000000" });
    // A decline the front-end gives: over its limit.
    await assert.rejects(terminal.authorize(authorizeBody(initCard(tunionCard(f), "tunion", 9000), 9000) as never), /AMOUNT_OVER_LIMIT/);
    await purchase(terminal, tunionCard(f), "tunion", 50);
  });
  after(async () => {
    terminal?.close();
    web?.close();
    await stopAll();
  });

  const get = (path: string, headers: Record<string, string> = {}) => web.raw("GET", path, undefined, { ...(cookie ? { cookie } : {}), ...headers });

  it("answers 401 before login: JSON for the API and metrics, the login page for a browser", async () => {
    for (const path of ["/metrics", "/openapi.json", "/purchases", "/settlement/20261126.csv"]) {
      const r = await web.raw("GET", path);
      assert.equal(r.status, 401, path);
      assert.equal((r.json as { error: { code: string } }).error.code, "UNAUTHENTICATED");
    }
    const page = await web.raw("GET", "/purchases?day=20261126", undefined, { accept: "text/html" });
    assert.equal(page.status, 401);
    assert.match(page.text, /<form class="login" method="post" action="\/login">/);
    assert.match(page.text, /name="next" value="\/purchases\?day=20261126"/);
  });

  it("refuses a wrong password, a wrong name and a forged or expired cookie; logs in with the right password", async () => {
    const form = (user: string, password: string) => `user=${encodeURIComponent(user)}&password=${encodeURIComponent(password)}&next=%2Fattention`;
    const post = (body: string) => web.raw("POST", "/login", body, { "content-type": "application/x-www-form-urlencoded", accept: "text/html" });
    assert.equal((await post(form("alice", "wrong password!"))).status, 401);
    assert.equal((await post(form("mallory", PASSWORD))).status, 401);
    // A flood of logins from one address: two are checked at a time, the rest are told to come back.
    const flood = await Promise.all(Array.from({ length: 8 }, () => post(form("alice", "wrong password!"))));
    assert.ok(flood.some((r) => r.status === 429), `statuses ${flood.map((r) => r.status)}`);
    assert.ok(flood.every((r) => r.status === 429 || r.status === 401));
    const ok = await post(form("alice", PASSWORD));
    assert.equal(ok.status, 303);
    assert.equal(ok.headers.location, "/attention");
    const set = String(ok.headers["set-cookie"]);
    assert.match(set, /HttpOnly/);
    assert.match(set, /Secure/);
    assert.match(set, /SameSite=Strict/);
    const token = /console_session=([^;]+)/.exec(set)![1]!;
    assert.match(token, /^[A-Za-z0-9_-]{43}$/, "a random token, nothing in it to forge");
    const forged = Buffer.alloc(32, 7).toString("base64url");
    assert.equal((await web.raw("GET", "/metrics", undefined, { cookie: `console_session=${forged}` })).status, 401);
    assert.equal((await web.raw("GET", "/metrics", undefined, { cookie: `console_session=${token.slice(0, -2)}xx` })).status, 401);
    cookie = `console_session=${token}`;
    assert.equal((await get("/metrics")).status, 200);
    now += 2 * 3600_000;
    try {
      assert.equal((await get("/metrics")).status, 401, "a session outlives its hours");
    } finally {
      now -= 2 * 3600_000;
    }
    // Another site's form is refused even with the cookie.
    const cross = await web.raw("POST", "/attention/sweep", "", { cookie, origin: "https://evil.example", "content-type": "application/x-www-form-urlencoded" });
    assert.equal(cross.status, 403);
  });

  it("logs in with an operator client certificate instead of a password", async () => {
    const bundle = f.pki.operators[OPERATOR]!;
    const withCert = new FrontendClient(fe.operator.url!, { ca: f.pki.ca.certPem, cert: bundle.certPem, key: bundle.keyPem });
    try {
      assert.equal((await withCert.raw("GET", "/metrics")).status, 200);
    } finally {
      withCert.close();
    }
    // A terminal's certificate is no operator's.
    const asTerminal = new FrontendClient(fe.operator.url!, { ca: f.pki.ca.certPem, cert: f.pki.terminals[T1]!.certPem, key: f.pki.terminals[T1]!.keyPem });
    try {
      assert.equal((await asTerminal.raw("GET", "/metrics")).status, 401);
    } finally {
      asTerminal.close();
    }
  });

  it("finds the purchase by order, ASN, terminal and day, with its APDU-level facts", async () => {
    for (const q of [`order=${encodeURIComponent(order)}`, `asn=${asn}`, `terminal=${T1}&day=${day}`]) {
      const r = await get(`/purchases?${q}`, { accept: "text/html" });
      assert.equal(r.status, 200, q);
      assert.ok(r.text.includes(order) || q.startsWith("terminal"), q);
      assert.ok(r.text.includes(asn), q);
    }
    assert.equal((await get("/purchases?day=2026-11-26", { accept: "text/html" })).status, 400, "a bad day is refused");
    const list = await get(`/purchases?order=${encodeURIComponent(order)}`, { accept: "text/html" });
    const id = /href="\/purchases\/([0-9a-f-]{36})"/.exec(list.text)![1]!;
    const detail = await get(`/purchases/${id}`, { accept: "text/html" });
    assert.equal(detail.status, 200);
    assert.match(detail.text, /INITIALIZE FOR PURCHASE answer/);
    assert.match(detail.text, /verified/);
    assert.match(detail.text, /Balance before<\/td><td>100\.00 yuan/);
  });

  it("lists the flagged purchase and the sweep's results", async () => {
    const r = await get("/attention", { accept: "text/html" });
    assert.equal(r.status, 200);
    assert.ok(r.text.includes(flaggedId), "the flagged purchase is listed");
    // An authorization never completed, then the sweep after the timeout.
    const a = await terminal.authorize(authorizeBody(initCard(tunionCard(f), "tunion", 10), 10) as never);
    now += 11 * 60_000;
    try {
      const swept = await web.raw("POST", "/attention/sweep", "", { cookie, "content-type": "application/x-www-form-urlencoded" });
      assert.equal(swept.status, 303);
      assert.equal(swept.headers.location, "/attention?swept=1");
      const after = await get("/attention", { accept: "text/html" });
      assert.ok(after.text.includes(a.purchaseId.slice(0, 13)), "the swept purchase is listed");
      assert.match(after.text, /reason&#34;:&#34;timeout/);
    } finally {
      now -= 11 * 60_000;
    }
  });

  it("downloads the business day's settlement as CSV", async () => {
    const r = await get(`/settlement/${day}.csv`);
    assert.equal(r.status, 200);
    assert.match(String(r.headers["content-type"]), /^text\/csv/);
    assert.match(String(r.headers["content-disposition"]), /attachment; filename="settlement-20261126.csv"/);
    const lines = r.text.trim().split("\r\n");
    assert.equal(lines.length, 3, "header and the two completed purchases (not the flagged one)");
    assert.ok(lines.some((l) => l.includes(order) && l.includes(",420,")));
    const index = await get("/settlement", { accept: "text/html" });
    assert.match(index.text, /20261126<\/a><\/td><td class="num">2<\/td><td class="num">4\.70/);
  });

  it("serves /metrics in Prometheus text with the purchases' counts", async () => {
    const r = await get("/metrics");
    assert.equal(r.status, 200);
    assert.match(String(r.headers["content-type"]), /^text\/plain; version=0\.0\.4/);
    const value = (line: RegExp) => Number(new RegExp(`^${line.source} ([0-9.e+-]+)$`, "m").exec(r.text)?.[1] ?? NaN);
    assert.equal(value(/frontend_authorizations_total\{outcome="approved"\}/), 4);
    assert.equal(value(/frontend_authorizations_total\{outcome="AMOUNT_OVER_LIMIT"\}/), 1);
    assert.equal(value(/frontend_completions_total\{outcome="completed"\}/), 2);
    assert.equal(value(/frontend_completions_total\{outcome="flagged"\}/), 1);
    assert.equal(value(/frontend_purchases_attention\{kind="flagged"\}/), 1);
    assert.ok(value(/frontend_http_request_duration_seconds_count\{listener="terminal",method="POST",route="\/v1\/purchases"\}/) >= 5);
    assert.ok(value(/frontend_http_requests_total\{listener="terminal",method="POST",route="\/v1\/purchases\/:purchaseId\/completion",status="200"\}/) >= 3);
    if (fe.store.engine === "sqlite") {
      assert.ok(value(/frontend_journal_commit_batch_writes_count/) >= 1, "commit batches observed");
      assert.ok(value(/frontend_journal_fsync_seconds_count/) >= 1, "fsyncs observed");
    }
  });

  it("shows the fleet's reports with online/offline and alerts, and charts from them", async () => {
    const report = (terminalId: string, sequence: number, extra: Record<string, unknown> = {}) => ({
      terminalId, firmware: "0.1.0", reason: "interval", sequence, sentAt: now, uptimeMs: 60_000 * sequence,
      journal: { usedBlocks: 2, blocks: 16, liveRecords: 3, fillPercent: 12 }, pendingCompletions: 0, unresolved: 0,
      counts: { approvals: 3, declines: { "amount-over-limit": 2 }, tears: 0, readerFaults: 0, frontendErrors: 0 },
      tapToApprovedMs: { p50: 310 + sequence, p90: 420 + sequence, samples: 3 }, config: { version: 0, refused: [] }, ...extra,
    }) as never;
    await fe.store.fleet.recordStatus(report(T1, 1), now - 5 * 60_000);
    await fe.store.fleet.recordStatus(report(T1, 2, { pendingCompletions: 2, journal: { usedBlocks: 14, blocks: 16, liveRecords: 30, fillPercent: 87 }, reason: "journal-fill" }), now - 1000);
    await fe.store.fleet.recordStatus(report("AABBCCDDEEFF", 1), now - 3 * 60_000);
    const r = await get("/", { accept: "text/html" });
    assert.equal(r.status, 200);
    const rowOf = (id: string) => r.text.split("<tr>").find((tr) => tr.includes(`>${id}<`)) ?? "";
    assert.match(rowOf(T1), /pill online/);
    assert.match(rowOf(T1), /journal 87% full/);
    assert.match(rowOf(T1), /2 completion\(s\) waiting/);
    assert.match(rowOf("AABBCCDDEEFF"), /pill offline/, "no report within two 60 s intervals");
    const charts = await get("/charts", { accept: "text/html" });
    assert.match(charts.text, /<title>amount-over-limit: 6<\/title>/, "declines summed over the reports");
    assert.match(charts.text, /<polyline/);
    const metrics = (await get("/metrics")).text;
    assert.match(metrics, new RegExp(`^frontend_terminal_completions_waiting\{terminal="${T1}"\} 2$`, "m"));
  });

  it("edits configuration with validation errors shown, an optimistic version check, and the audit", async () => {
    const post = (fields: Record<string, string>) => web.raw("POST", "/config", new URLSearchParams(fields).toString(),
      { cookie, "content-type": "application/x-www-form-urlencoded", accept: "text/html" });
    const bad = await post({ scope: `terminal:${T1}`, version: "0", maxAmount: "lots", statusEveryMs: "5" });
    assert.equal(bad.status, 422);
    assert.match(bad.text, /maxAmount: must be a whole number of fen \(CONFIG_TYPE\)/);
    assert.match(bad.text, /statusEveryMs: must be 1000\.\.86400000 ms \(CONFIG_RANGE\)/);
    assert.equal((await fe.store.fleet.getConfigScope(`terminal:${T1}`)).version, 0, "nothing saved");
    const ok = await post({ scope: `terminal:${T1}`, version: "0", maxAmount: "300", group: "depot-7" });
    assert.equal(ok.status, 303);
    const effective = await fe.store.fleet.effectiveConfig(T1);
    assert.equal(effective.settings.maxAmount, 300);
    assert.equal(effective.group, "depot-7");
    const stale = await post({ scope: `terminal:${T1}`, version: "0", maxAmount: "400" });
    assert.equal(stale.status, 422);
    assert.match(stale.text, /CONFIG_VERSION_CONFLICT/);
    const page = await get(`/config?scope=terminal:${T1}`, { accept: "text/html" });
    assert.match(page.text, /<td>alice<\/td><td>settings<\/td><td>1<\/td><td><code>null<\/code><\/td><td><code>\{&#34;maxAmount&#34;:300\}<\/code>/);
    assert.match(page.text, /<td>alice<\/td><td>group<\/td>/);
  });

  it("shows a saved configuration as pending until the terminal reports running it (not as in force at the save)", async () => {
    const saved = (await fe.store.fleet.effectiveConfig(T1)).version;
    assert.ok(saved > 0, "the test before saved a configuration for the terminal");
    const report = (version: number) => ({
      terminalId: T1, firmware: "0.1.0", reason: "interval", sequence: 9, sentAt: now, uptimeMs: 60_000,
      journal: { usedBlocks: 2, blocks: 16, liveRecords: 3, fillPercent: 12 }, pendingCompletions: 0, unresolved: 0,
      counts: { approvals: 0, declines: {}, tears: 0, readerFaults: 0, frontendErrors: 0 }, config: { version, refused: [] },
    }) as never;
    await fe.store.fleet.recordStatus(report(0), now);
    const state = `saved ${saved} · in force 0 · <span class="warn">pending</span>`;
    assert.ok((await get(`/config?scope=terminal:${T1}`, { accept: "text/html" })).text.includes(state));
    assert.ok((await get(`/fleet/${T1}`, { accept: "text/html" })).text.includes(state));
    assert.ok((await get("/", { accept: "text/html" })).text.includes(state));
    await fe.store.fleet.recordStatus(report(saved), now + 1);
    const page = (await get(`/config?scope=terminal:${T1}`, { accept: "text/html" })).text;
    assert.ok(page.includes(`saved ${saved} · in force ${saved}</h2>`), "in force once reported");
    assert.ok(!page.includes("pending"));
  });

  it("serves /openapi.json, the same document as docs/openapi.json and as the terminals' listener", async () => {
    const r = await get("/openapi.json");
    assert.equal(r.status, 200);
    const committed = readFileSync(OPENAPI_FILE, "utf8");
    assert.equal(r.text, committed, "docs/openapi.json is stale: run npm run openapi");
    const fromTerminalListener = await terminal.raw("GET", "/openapi.json");
    assert.equal(fromTerminalListener.text, committed);
    const doc = r.json as { openapi: string; paths: Record<string, Record<string, { requestBody?: { content: Record<string, { schema: { required: string[] } }> } }>> };
    assert.equal(doc.openapi, "3.0.3");
    assert.deepEqual(doc.paths["/v1/purchases"]!.post!.requestBody!.content["application/json"]!.schema.required.slice(0, 3), ["terminalId", "order", "amount"]);
    assert.ok(!("/openapi.json" in doc.paths), "the document does not list itself");
  });
});

describe("npm run openapi", function () {
  this.timeout(60_000);
  it("generates exactly the committed docs/openapi.json", async () => {
    assert.equal(await generateOpenApi(), readFileSync(OPENAPI_FILE, "utf8"), "docs/openapi.json is stale: run npm run openapi");
  });
});
