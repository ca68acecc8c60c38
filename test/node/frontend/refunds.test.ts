import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import Database from "better-sqlite3";
import pg from "pg";
import { fromHex, toHex, uint32Bytes } from "../../../modules/bytes/bytes";
import { encodeBcd } from "../../../modules/purse/bcd";
import type { VirtualCard } from "../../../tools/sim/cardsim/index";
import { isPostgresUrl, type KeyStoreFile } from "../../../tools/frontend/index";
import { type FrontendClient } from "../../../tools/rigs/frontend/index";
import {
  OPERATOR, T1, T2, chinaToday, clientFor, describeEngines, getFixture, level1Config, purchase, start, stopAll, tunionCard, type Fixture,
} from "./support";
import { readRows } from "./postgres-support";

/** INITIALIZE FOR LOAD on the card (after the purchase's SELECT), as the terminal's refund does. */
function initLoad(card: VirtualCard, amount: number, terminalId = T1): string {
  const r = card.process(fromHex(`805000020B01${toHex(uint32Bytes(amount))}${terminalId}10`));
  assert.equal(toHex(r.slice(-2)), "9000");
  return toHex(r.slice(0, -2));
}

function creditLoad(card: VirtualCard, a: { date: string; time: string; mac2: string }): { sw: string; tac: string } {
  const r = card.process(fromHex(`805200000B${toHex(encodeBcd(a.date))}${toHex(encodeBcd(a.time))}${a.mac2}04`));
  return { sw: toHex(r.slice(-2)), tac: toHex(r.slice(0, -2)) };
}

async function call(client: FrontendClient, method: string, url: string, body?: unknown): Promise<{ status: number; json: any }> {
  const r = await client.raw(method, url, body);
  return { status: r.status, json: r.json };
}

async function refused(p: Promise<{ status: number; json: any }>, status: number, code: string): Promise<void> {
  const r = await p;
  assert.equal(r.json?.error?.code, code, JSON.stringify(r.json));
  assert.equal(r.status, status);
}

/** Runs one statement straight against the database, as a buggy or hostile writer would. */
async function exec(database: string, sql: string, params: unknown[]): Promise<void> {
  if (!isPostgresUrl(database)) {
    const db = new Database(database);
    db.pragma("foreign_keys = ON");
    try {
      db.prepare(sql).run(...params);
    } finally {
      db.close();
    }
    return;
  }
  let n = 0;
  const client = new pg.Client({ connectionString: database });
  await client.connect();
  try {
    await client.query(sql.replace(/\?/g, () => `$${++n}`), params);
  } finally {
    await client.end();
  }
}

describeEngines("front-end: refunds loaded back onto the card", function () {
  this.timeout(30_000);
  let f: Fixture;
  let c1: FrontendClient;
  let c2: FrontendClient;
  let op: FrontendClient;
  let database: string;
  let noLoad: FrontendClient;
  const now = Date.parse("2026-11-26T04:00:00Z");

  before(async () => {
    f = await getFixture();
    const config = level1Config(f, { clock: () => now });
    database = config.database;
    const l1 = await start(config);
    c1 = clientFor(f, l1.url, T1);
    c2 = clientFor(f, l1.url, T2);
    op = clientFor(f, l1.url, OPERATOR);
    // The same key system without its load key: refunds cannot go onto cards, they are owed.
    const keys = JSON.parse(readFileSync(f.level1Keys, "utf8")) as KeyStoreFile;
    for (const k of keys.keys) delete k.load;
    const stripped = path.join(f.dir, `keys-no-load-${process.pid}-${Math.random().toString(36).slice(2)}.json`);
    writeFileSync(stripped, JSON.stringify(keys));
    const other = await start(level1Config(f, { clock: () => now, keyStore: stripped }));
    noLoad = clientFor(f, other.url, T1);
  });
  after(async () => {
    for (const c of [c1, c2, op, noLoad]) c?.close();
    await stopAll();
  });

  function body(purchaseId: string, session: { basicData: string }, initResponse: string, amount: number, extra: object = {}) {
    return { terminalId: T1, purchaseId, amount, keyIndex: 1, application: "tunion", basicData: session.basicData, initResponse, ...extra };
  }

  it("a refund: the card's MAC1 is checked, MAC2 credits the card, the TAC verifies, and a repeat is answered the same", async () => {
    const card = tunionCard(f, { balance: 1000 });
    const p = await purchase(c1, card, "tunion", 350);
    assert.equal(card.application("tunion").balance, 650);
    const init = initLoad(card, 350);
    const a = await call(c1, "POST", "/v1/refunds", body(p.answer.purchaseId, p.session, init, 350));
    assert.equal(a.status, 201, JSON.stringify(a.json));
    assert.equal(a.json.onlineSerial, 0);
    const credit = creditLoad(card, a.json);
    assert.equal(credit.sw, "9000");
    assert.equal(card.application("tunion").balance, 1000);
    assert.equal(card.application("tunion").onlineSerial, 1);
    const done = await call(c1, "POST", `/v1/refunds/${p.answer.purchaseId}/completion`, { outcome: "credited", tac: credit.tac });
    assert.equal(done.status, 200);
    assert.deepEqual(done.json, { purchaseId: p.answer.purchaseId, status: "completed", outcome: "credited", amount: 350, tacValid: true });
    const again = await call(c1, "POST", `/v1/refunds/${p.answer.purchaseId}/completion`, { outcome: "credited", tac: credit.tac });
    assert.deepEqual(again.json, done.json);
    await refused(call(c1, "POST", `/v1/refunds/${p.answer.purchaseId}/completion`, { outcome: "not-credited", amount: 350, reason: "card-gone" }), 409, "ALREADY_SETTLED");
    // At most once: a second refund of the same purchase is refused, whatever the card says.
    await refused(call(c1, "POST", "/v1/refunds", body(p.answer.purchaseId, p.session, initLoad(card, 350), 350)), 409, "ALREADY_REFUNDED");
    const view = await call(c1, "GET", `/v1/refunds/${p.answer.purchaseId}`);
    assert.equal(view.json.status, "completed");
  });

  it("refuses a refund over the purchase's amount, onto another card, for another terminal's purchase, or with a wrong MAC1", async () => {
    const card = tunionCard(f, { balance: 1000 });
    const p = await purchase(c1, card, "tunion", 200);
    await refused(call(c1, "POST", "/v1/refunds", body(p.answer.purchaseId, p.session, initLoad(card, 201), 201)), 422, "REFUND_OVER_AMOUNT");
    const other = tunionCard(f, { balance: 1000 });
    const o = await purchase(c1, other, "tunion", 10);
    await refused(call(c1, "POST", "/v1/refunds", body(p.answer.purchaseId, o.session, initLoad(other, 200), 200)), 409, "REFUND_CARD_MISMATCH");
    await refused(call(c2, "POST", "/v1/refunds", body(p.answer.purchaseId, p.session, initLoad(card, 200), 200, { terminalId: T2 })), 403, "TERMINAL_MISMATCH");
    const init = initLoad(card, 200);
    const forged = init.slice(0, 24) + (init.slice(24, 26) === "00" ? "01" : "00") + init.slice(26);
    await refused(call(c1, "POST", "/v1/refunds", body(p.answer.purchaseId, p.session, forged, 200)), 422, "MAC1_INVALID");
    await refused(call(c1, "POST", "/v1/refunds", body("no-such-purchase", p.session, init, 200)), 404, "PURCHASE_NOT_FOUND");
    await refused(call(c1, "POST", "/v1/refunds", { ...body(p.answer.purchaseId, p.session, init, 200), extra: 1 }), 400, "VALIDATION");
    await refused(call(c1, "POST", "/v1/refunds", body(p.answer.purchaseId, p.session, init, "200" as never)), 400, "VALIDATION");
    await refused(call(c1, "POST", `/v1/refunds/${p.answer.purchaseId}/completion`, { outcome: "credited" }), 400, "VALIDATION");
    await refused(call(c1, "POST", `/v1/refunds/${p.answer.purchaseId}/completion`, { outcome: "credited", tac: "00000000" }), 404, "REFUND_NOT_FOUND");
    // None of these refusals left a refund behind.
    assert.deepEqual(await readRows(database, "SELECT purchase_id FROM refunds WHERE purchase_id = ?", [p.answer.purchaseId]), []);
  });

  it("a lost answer: authorized again at the same online serial, the old MAC2 no longer credits, the new one does", async () => {
    const card = tunionCard(f, { balance: 500 });
    const p = await purchase(c1, card, "tunion", 120);
    const first = await call(c1, "POST", "/v1/refunds", body(p.answer.purchaseId, p.session, initLoad(card, 120), 120));
    assert.equal(first.status, 201);
    const second = await call(c1, "POST", "/v1/refunds", body(p.answer.purchaseId, p.session, initLoad(card, 120), 120));
    assert.equal(second.status, 201, JSON.stringify(second.json));
    assert.notEqual(second.json.mac2, first.json.mac2);
    initLoad(card, 120);
    assert.equal(creditLoad(card, first.json).sw, "9302");
    assert.equal(card.application("tunion").balance, 380);
    // Re-authorised for the card's current session, then credited.
    const third = await call(c1, "POST", "/v1/refunds", body(p.answer.purchaseId, p.session, initLoad(card, 120), 120));
    const credit = creditLoad(card, third.json);
    assert.equal(credit.sw, "9000");
    assert.equal(card.application("tunion").balance, 500);
    const done = await call(c1, "POST", `/v1/refunds/${p.answer.purchaseId}/completion`, { outcome: "credited", tac: credit.tac });
    assert.equal(done.json.status, "completed");
    assert.equal(done.json.tacValid, true);
    // A wrong TAC on another refund is flagged, not completed.
    const q = await purchase(c1, card, "tunion", 50);
    const qa = await call(c1, "POST", "/v1/refunds", body(q.answer.purchaseId, q.session, initLoad(card, 50), 50));
    assert.equal(creditLoad(card, qa.json).sw, "9000");
    const flagged = await call(c1, "POST", `/v1/refunds/${q.answer.purchaseId}/completion`, { outcome: "credited", tac: "DEADBEEF" });
    assert.equal(flagged.json.status, "flagged");
    assert.equal(flagged.json.tacValid, false);
  });

  it("unknown, then settled: a refund reported unknown is held for reconciliation until the card's proof comes", async () => {
    const card = tunionCard(f, { balance: 700 });
    const p = await purchase(c1, card, "tunion", 90);
    const a = await call(c1, "POST", "/v1/refunds", body(p.answer.purchaseId, p.session, initLoad(card, 90), 90));
    const credit = creditLoad(card, a.json);
    const unknown = await call(c1, "POST", `/v1/refunds/${p.answer.purchaseId}/completion`, { outcome: "unknown" });
    assert.equal(unknown.json.status, "reconciliation");
    assert.deepEqual((await call(c1, "POST", `/v1/refunds/${p.answer.purchaseId}/completion`, { outcome: "unknown" })).json, unknown.json);
    const done = await call(c1, "POST", `/v1/refunds/${p.answer.purchaseId}/completion`, { outcome: "credited", tac: credit.tac });
    assert.equal(done.json.status, "completed");
    assert.equal(done.json.tacValid, true);
  });

  it("a load recovered by its TAC alone (the proof had zeros for MAC2): a valid TAC completes it, a bad one is flagged", async () => {
    const card = tunionCard(f, { balance: 900 });
    const p = await purchase(c1, card, "tunion", 130);
    const a = await call(c1, "POST", "/v1/refunds", body(p.answer.purchaseId, p.session, initLoad(card, 130), 130));
    const credit = creditLoad(card, a.json);
    assert.equal(credit.sw, "9000");
    const done = await call(c1, "POST", `/v1/refunds/${p.answer.purchaseId}/completion`, { outcome: "credited", tac: credit.tac, proof: "tac" });
    assert.deepEqual(done.json, { purchaseId: p.answer.purchaseId, status: "completed", outcome: "credited", amount: 130, tacValid: true });
    // The same report again gets the same answer; the row says how it was proved.
    assert.deepEqual((await call(c1, "POST", `/v1/refunds/${p.answer.purchaseId}/completion`, { outcome: "credited", tac: credit.tac, proof: "tac" })).json, done.json);
    const q = await purchase(c1, card, "tunion", 40);
    const qa = await call(c1, "POST", "/v1/refunds", body(q.answer.purchaseId, q.session, initLoad(card, 40), 40));
    assert.equal(creditLoad(card, qa.json).sw, "9000");
    const flagged = await call(c1, "POST", `/v1/refunds/${q.answer.purchaseId}/completion`, { outcome: "credited", tac: "DEADBEEF", proof: "tac" });
    assert.equal(flagged.json.status, "flagged");
    assert.equal(flagged.json.tacValid, false);
    await refused(call(c1, "POST", `/v1/refunds/${q.answer.purchaseId}/completion`, { outcome: "credited", tac: "DEADBEEF", proof: "mac2" }), 400, "VALIDATION");
  });

  it("replay refusal: an INITIALIZE FOR LOAD answer already credited is refused for another refund", async () => {
    const card = tunionCard(f, { balance: 900 });
    const p1 = await purchase(c1, card, "tunion", 100);
    const p2 = await purchase(c1, card, "tunion", 100);
    const init = initLoad(card, 100);
    const a = await call(c1, "POST", "/v1/refunds", body(p1.answer.purchaseId, p1.session, init, 100));
    const credit = creditLoad(card, a.json);
    await call(c1, "POST", `/v1/refunds/${p1.answer.purchaseId}/completion`, { outcome: "credited", tac: credit.tac });
    await refused(call(c1, "POST", "/v1/refunds", body(p2.answer.purchaseId, p2.session, init, 100)), 409, "REPLAY");
  });

  it("owed: no load key granted, or the card gone; once, at most the amount, then in the settlement with the credited ones", async () => {
    const card = tunionCard(f, { balance: 1000 });
    const p = await purchase(noLoad, card, "tunion", 300);
    await refused(call(noLoad, "POST", "/v1/refunds", body(p.answer.purchaseId, p.session, initLoad(card, 300), 300)), 422, "LOAD_KEY_NOT_GRANTED");
    await refused(call(noLoad, "POST", `/v1/refunds/${p.answer.purchaseId}/completion`, { outcome: "not-credited", amount: 301, reason: "no-load-key" }), 422, "REFUND_OVER_AMOUNT");
    const owed = await call(noLoad, "POST", `/v1/refunds/${p.answer.purchaseId}/completion`, { outcome: "not-credited", amount: 300, reason: "no-load-key" });
    assert.deepEqual(owed.json, { purchaseId: p.answer.purchaseId, status: "owed", outcome: "not-credited", amount: 300 });
    const repeat = await call(noLoad, "POST", `/v1/refunds/${p.answer.purchaseId}/completion`, { outcome: "not-credited", amount: 300, reason: "no-load-key" });
    assert.deepEqual(repeat.json, owed.json);
    await refused(call(noLoad, "POST", `/v1/refunds/${p.answer.purchaseId}/completion`, { outcome: "not-credited", amount: 200, reason: "card-gone" }), 409, "ALREADY_SETTLED");
    // An authorised refund whose card went before CREDIT is owed too.
    const q = await purchase(c1, card, "tunion", 80);
    await call(c1, "POST", "/v1/refunds", body(q.answer.purchaseId, q.session, initLoad(card, 80), 80));
    const gone = await call(c1, "POST", `/v1/refunds/${q.answer.purchaseId}/completion`, { outcome: "not-credited", amount: 80, reason: "card-gone" });
    assert.equal(gone.json.status, "owed");
    const lines = (await op.raw("GET", `/v1/settlement/${chinaToday(now)}/refunds`)).text.trim().split("\n").map((l) => JSON.parse(l));
    const q1 = lines.find((l) => l.purchaseId === q.answer.purchaseId);
    assert.equal(q1.status, "owed");
    assert.equal(q1.owedReason, "card-gone");
    assert.ok(lines.some((l) => l.status === "completed" && /^[0-9A-F]{8}$/.test(l.tac) && l.transactionType === 2));
    await refused(call(c1, "GET", `/v1/settlement/${chinaToday(now)}/refunds`), 403, "CLIENT_NOT_ALLOWED");
  });

  it("the database itself keeps a refund to its purchase: at most its amount, on its card, at most once", async () => {
    const card = tunionCard(f, { balance: 1000 });
    const p = await purchase(c1, card, "tunion", 100);
    const [{ asn }] = await readRows<{ asn: string }>(database, "SELECT asn FROM purchases WHERE id = ?", [p.answer.purchaseId]);
    const insert = "INSERT INTO refunds (purchase_id, purchase_amount, application, asn, terminal_id, order_no, amount, date, time, status, created_at) " +
      "VALUES (?, ?, 'tunion', ?, ?, 'x', ?, '20261126', '120000', 'owed', 0)";
    await assert.rejects(exec(database, insert, [p.answer.purchaseId, 100, asn, T1, 101]), /CHECK|check/);
    await assert.rejects(exec(database, insert, [p.answer.purchaseId, 500, asn, T1, 400]), /FOREIGN|foreign/);
    await assert.rejects(exec(database, insert, [p.answer.purchaseId, 100, "03109999999999999999", T1, 50]), /FOREIGN|foreign/);
    await exec(database, insert, [p.answer.purchaseId, 100, asn, T1, 100]);
    await assert.rejects(exec(database, insert, [p.answer.purchaseId, 100, asn, T1, 1]), /UNIQUE|unique|duplicate/);
  });
});
