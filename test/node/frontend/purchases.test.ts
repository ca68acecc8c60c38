import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { toHex } from "../../../modules/bytes/bytes";
import { diversifyKey, purchaseSessionKey } from "../../../tools/purse-crypto/index";
import { type RunningFrontend } from "../../../tools/frontend/index";
import { FrontendHttpError, type FrontendClient } from "../../../tools/rigs/frontend/index";
import {
  OPERATOR, T1, T2, authorizeBody, chinaToday, cityCard, clientFor, debitCard, getFixture, initCard, level1Config, level2Config, purchase,
  describeEngines, start, stopAll, tunionCard, type Fixture,
} from "./support";
import { readRows } from "./postgres-support";
import { until } from "../until";

async function refused(p: Promise<unknown>, status: number, code: string): Promise<FrontendHttpError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof FrontendHttpError, `expected an HTTP refusal, got ${String(e)}`);
    assert.equal(e.code, code, `code (${e.message})`);
    assert.equal(e.status, status, `status for ${code}`);
    assert.deepEqual(Object.keys(e.body as object), ["error"]);
    return e;
  }
  assert.fail(`expected ${status} ${code}, the request succeeded`);
}

describeEngines("front-end: purchases against virtual cards over mutual TLS", function () {
  this.timeout(30_000);
  let f: Fixture;
  let l1: RunningFrontend;
  let l2: RunningFrontend;
  let c1: FrontendClient;
  let c2: FrontendClient;
  let now = Date.parse("2026-11-26T04:00:00Z"); // 12:00 in China
  const clock = () => now;

  let l1Database: string;

  before(async () => {
    f = await getFixture();
    const config = level1Config(f, { clock, hotlist: ["03109999999999999999"], limits: { maxAmount: 5000 }, acceptedCardTypes: [0x02, 0x03],
      reconciliationTimeoutMs: 60_000, reconciliationSweepMs: 3_600_000, log: { level: "trace", file: path.join(f.dir, "level1.log") } });
    l1Database = config.database;
    l1 = await start(config);
    l2 = await start(level2Config(f, { clock }));
    c1 = clientFor(f, l1.url, T1);
    c2 = clientFor(f, l2.url, T1);
  });
  after(async () => {
    c1?.close();
    c2?.close();
    await stopAll();
  });

  it("a 3DES T-Union card at level 1: MAC1 accepted by the card, expected MAC2 matches, completion verified", async () => {
    const card = tunionCard(f, { balance: 1000 });
    const r = await purchase(c1, card, "tunion", 350);
    assert.match(r.answer.purchaseId, /^[0-9a-f-]{36}$/);
    assert.equal(r.answer.date, "20261126");
    assert.equal(r.answer.time, "120000");
    assert.match(r.answer.mac1, /^[0-9A-F]{8}$/);
    assert.equal(r.answer.mac2, r.proof.mac2, "the expected MAC2 is the card's");
    assert.deepEqual(r.completion, { purchaseId: r.answer.purchaseId, status: "completed", outcome: "debited", tsn: r.answer.tsn, mac2Valid: true, tacValid: true });
    assert.equal(card.application("tunion").balance, 650);
    const view = await c1.purchase(r.answer.purchaseId);
    assert.equal(view.status, "completed");
    assert.equal(view.amount, 350);
    assert.equal(view.asn, card.application("tunion").basicData.slice(20, 40));
    assert.equal(view.terminalId, T1);
  });

  it("an SM4 city card at level 2 (key version 2 from the INIT response)", async () => {
    const card = cityCard(f, { balance: 500 });
    const r = await purchase(c2, card, "cityunion", 500);
    assert.equal(r.completion.status, "completed");
    assert.equal(card.application("cityunion").balance, 0);
    assert.equal(r.answer.tsn, 1, "level 2 keeps its own TSN sequence");
  });

  it("a compound purchase (type 09) completes too", async () => {
    const card = tunionCard(f);
    const s = initCard(card, "tunion", 120, T1, { compound: true });
    const a = await c1.authorize(authorizeBody(s, 120, T1, { transactionType: 9 }) as never);
    const proof = debitCard(card, a);
    assert.equal((await c1.complete(a.purchaseId, { outcome: "debited", ...proof })).status, "completed");
  });

  it("TSNs are monotonic per terminal and independent between terminals", async () => {
    const other = clientFor(f, l1.url, T2);
    try {
      const tsns: number[] = [];
      for (let i = 0; i < 3; i++) tsns.push((await purchase(c1, tunionCard(f), "tunion", 10)).answer.tsn);
      assert.deepEqual(tsns, [tsns[0]!, tsns[0]! + 1, tsns[0]! + 2]);
      const first = await purchase(other, tunionCard(f), "tunion", 10, T2);
      assert.equal(first.answer.tsn, 1);
    } finally {
      other.close();
    }
  });

  it("the authorization is committed to the journal before the answer leaves", async () => {
    const card = tunionCard(f);
    const a = await c1.authorize(authorizeBody(initCard(card, "tunion", 25), 25) as never);
    const [row] = await readRows(l1Database, "SELECT status, tsn, amount FROM purchases WHERE id = ?", [a.purchaseId]);
    assert.deepEqual(row, { status: "authorized", tsn: a.tsn, amount: 25 });
  });

  it("declines by the card's dates against the server's clock in China Standard Time", async () => {
    await refused(c1.authorize(authorizeBody(initCard(tunionCard(f, { expiryDate: "20261125" }), "tunion", 10), 10) as never), 422, "CARD_EXPIRED");
    await refused(c1.authorize(authorizeBody(initCard(tunionCard(f, { startDate: "20261127" }), "tunion", 10), 10) as never), 422, "CARD_NOT_YET_VALID");
    // 2026-11-26T16:30Z is already the 27th in China: a card expiring on the 26th is refused, one starting on the 27th accepted.
    const saved = now;
    now = Date.parse("2026-11-26T16:30:00Z");
    try {
      await refused(c1.authorize(authorizeBody(initCard(tunionCard(f, { expiryDate: "20261126" }), "tunion", 10), 10) as never), 422, "CARD_EXPIRED");
      const a = await c1.authorize(authorizeBody(initCard(tunionCard(f, { startDate: "20261127" }), "tunion", 10), 10) as never);
      assert.equal(a.date, "20261127");
      assert.equal(a.time, "003000");
    } finally {
      now = saved;
    }
  });

  it("declines hotlisted cards, card types not accepted, cities not served and disabled applications", async () => {
    await refused(c1.authorize(authorizeBody(initCard(tunionCard(f, { asn: "03109999999999999999" }), "tunion", 10), 10) as never), 422, "CARD_HOTLISTED");
    await refused(c1.authorize(authorizeBody(initCard(tunionCard(f, { cardType: 0x07 }), "tunion", 10), 10) as never), 422, "CARD_TYPE_NOT_ACCEPTED");
    // Level 2 serves city 4100 city cards only.
    await refused(c2.authorize(authorizeBody(initCard(cityCard(f, { cityCode: "2000" }), "cityunion", 10), 10) as never), 422, "CITY_NOT_SERVED");
    await refused(c2.authorize(authorizeBody(initCard(tunionCard(f, { cityCode: "4100", algorithm: "sm4", masterKeys: f.masterSm4, keyVersion: 2 }), "tunion", 10), 10) as never), 422, "CITY_NOT_SERVED");
    await refused(c2.authorize(authorizeBody(initCard(cityCard(f, { enabled: false }), "cityunion", 10), 10) as never), 422, "CARD_NOT_ENABLED");
  });

  it("declines an amount over the limit, a balance that does not cover it, and unknown keys or algorithms", async () => {
    const card = tunionCard(f, { balance: 100, overdraftLimit: 50 });
    await refused(c1.authorize(authorizeBody(initCard(tunionCard(f, { balance: 100_000 }), "tunion", 5001), 5001) as never), 422, "AMOUNT_OVER_LIMIT");
    // The card's INIT would refuse 151 itself (9401); a terminal that sends a larger amount than it initialised with is refused here.
    const s = initCard(card, "tunion", 150);
    await refused(c1.authorize(authorizeBody(s, 151) as never), 422, "INSUFFICIENT_BALANCE");
    const ok = await c1.authorize(authorizeBody(s, 150) as never);
    assert.ok(ok.tsn > 0, "balance + overdraft = amount is enough");
    await refused(c1.authorize(authorizeBody(s, 10, T1, { keyIndex: 2 }) as never), 422, "KEY_NOT_FOUND");
    const otherVersion = initCard(tunionCard(f, { keyVersion: 9 }), "tunion", 10);
    await refused(c1.authorize(authorizeBody(otherVersion, 10) as never), 422, "KEY_NOT_FOUND");
    const badAlgorithm = { ...s, initResponse: s.initResponse.slice(0, 20) + "01" + s.initResponse.slice(22) };
    await refused(c1.authorize(authorizeBody(badAlgorithm, 10) as never), 422, "ALGORITHM_NOT_SUPPORTED");
    // Level 1 holds 3DES keys only: an SM4 T-Union card there has no key.
    const sm4 = initCard(tunionCard(f, { algorithm: "sm4" }), "tunion", 10);
    await refused(c1.authorize(authorizeBody(sm4, 10) as never), 422, "KEY_NOT_FOUND");
  });

  it("refuses a terminal ID that is not the client certificate's", async () => {
    const s = initCard(tunionCard(f), "tunion", 10, T2);
    await refused(c1.authorize(authorizeBody(s, 10, T2) as never), 403, "TERMINAL_MISMATCH");
  });

  it("refuses card data that is not a file 0x15 or an INIT response", async () => {
    const s = initCard(tunionCard(f), "tunion", 10);
    const badDate = s.basicData.slice(0, 40) + "20261399" + s.basicData.slice(48);
    await refused(c1.authorize(authorizeBody({ ...s, basicData: badDate }, 10) as never), 400, "CARD_DATA_INVALID");
    const badAsn = s.basicData.slice(0, 20) + "0A" + s.basicData.slice(22);
    await refused(c1.authorize(authorizeBody({ ...s, basicData: badAsn }, 10) as never), 400, "CARD_DATA_INVALID");
  });

  it("a second authorization with the EP serial of a completed purchase of the same card is a replay", async () => {
    const card = tunionCard(f);
    const r = await purchase(c1, card, "tunion", 20);
    await refused(c1.authorize(authorizeBody(r.session, 20) as never), 409, "REPLAY");
    // Before completion a re-authorization of the same INIT is legitimate (a terminal retrying after a lost answer).
    const other = tunionCard(f);
    const s = initCard(other, "tunion", 30);
    const first = await c1.authorize(authorizeBody(s, 30) as never);
    const second = await c1.authorize(authorizeBody(s, 30) as never);
    assert.notEqual(first.tsn, second.tsn);
    const proof = debitCard(other, second);
    assert.equal((await c1.complete(second.purchaseId, { outcome: "debited", ...proof })).status, "completed");
    assert.equal((await c1.complete(first.purchaseId, { outcome: "not-debited" })).status, "voided");
    // The next purchase of that card uses the next serial and is fine.
    assert.equal((await purchase(c1, other, "tunion", 5)).completion.status, "completed");
  });

  it("a completion that fails verification is recorded and flagged; the same completion gets the same answer", async () => {
    const card = tunionCard(f);
    const s = initCard(card, "tunion", 40);
    const a = await c1.authorize(authorizeBody(s, 40) as never);
    const proof = debitCard(card, a);
    const badTac = { outcome: "debited" as const, mac2: proof.mac2, tac: proof.tac.slice(0, 7) + (proof.tac[7] === "0" ? "1" : "0") };
    const answer = await c1.complete(a.purchaseId, badTac);
    assert.deepEqual(answer, { purchaseId: a.purchaseId, status: "flagged", outcome: "debited", tsn: a.tsn, mac2Valid: true, tacValid: false });
    assert.deepEqual(await c1.complete(a.purchaseId, badTac), answer);
    assert.deepEqual(await c1.complete(a.purchaseId, { ...badTac, tac: badTac.tac.toLowerCase() }), answer, "hex case does not make a different completion");
    const view = await c1.purchase(a.purchaseId);
    assert.equal(view.status, "flagged");
    assert.equal(view.tacValid, false);
    // A different completion for a settled purchase is a conflict, kept for review.
    await refused(c1.complete(a.purchaseId, { outcome: "debited", ...proof }), 409, "ALREADY_SETTLED");
    await refused(c1.complete(a.purchaseId, { outcome: "not-debited" }), 409, "ALREADY_SETTLED");
    const [row] = await readRows(l1Database, "SELECT mac2, tac, needs_review FROM purchases WHERE id = ?", [a.purchaseId]);
    assert.deepEqual(row, { mac2: proof.mac2, tac: badTac.tac, needs_review: 1 });
    const kinds = (await readRows<{ kind: string }>(l1Database, "SELECT kind FROM events WHERE purchase_id = ? ORDER BY id", [a.purchaseId])).map((e) => e.kind);
    assert.deepEqual(kinds, ["flagged", "conflicting-completion", "conflicting-completion"]);
    // A wrong MAC2 is flagged as well, and a flagged serial cannot be authorized again.
    const card2 = tunionCard(f);
    const s2 = initCard(card2, "tunion", 40);
    const a2 = await c1.authorize(authorizeBody(s2, 40) as never);
    const p2 = debitCard(card2, a2);
    const flagged = await c1.complete(a2.purchaseId, { outcome: "debited", mac2: "00000000", tac: p2.tac });
    assert.equal(flagged.status, "flagged");
    assert.equal(flagged.mac2Valid, false);
    assert.equal(flagged.tacValid, true);
    await refused(c1.authorize(authorizeBody(s2, 40) as never), 409, "REPLAY");
  });

  it("not-debited voids the authorization; repeating it gets the same answer", async () => {
    const card = tunionCard(f);
    const a = await c1.authorize(authorizeBody(initCard(card, "tunion", 60), 60) as never);
    const v = await c1.complete(a.purchaseId, { outcome: "not-debited" });
    assert.deepEqual(v, { purchaseId: a.purchaseId, status: "voided", outcome: "not-debited", tsn: a.tsn });
    assert.deepEqual(await c1.complete(a.purchaseId, { outcome: "not-debited" }), v);
    assert.equal((await c1.purchase(a.purchaseId)).status, "voided");
    assert.equal(card.application("tunion").balance, 10_000);
  });

  it("unknown marks the purchase for reconciliation; a later debited settles it", async () => {
    const card = tunionCard(f);
    const a = await c1.authorize(authorizeBody(initCard(card, "tunion", 70), 70) as never);
    const proof = debitCard(card, a);
    const u = await c1.complete(a.purchaseId, { outcome: "unknown" });
    assert.equal(u.status, "reconciliation");
    assert.deepEqual(await c1.complete(a.purchaseId, { outcome: "unknown" }), u);
    const view = await c1.purchase(a.purchaseId);
    assert.equal(view.reconciliationReason, "outcome-unknown");
    const done = await c1.complete(a.purchaseId, { outcome: "debited", ...proof });
    assert.equal(done.status, "completed");
    await refused(c1.complete(a.purchaseId, { outcome: "unknown" }), 409, "ALREADY_SETTLED");
  });

  it("an authorization with no completion after the configured time is marked for reconciliation, and can still settle", async () => {
    const card = tunionCard(f);
    const a = await c1.authorize(authorizeBody(initCard(card, "tunion", 80), 80) as never);
    const fresh = await c1.authorize(authorizeBody(initCard(tunionCard(f), "tunion", 80), 80) as never);
    const proof = debitCard(card, a);
    now += 30_000;
    await l1.sweepReconciliation();
    assert.equal((await c1.purchase(a.purchaseId)).status, "authorized", "not yet");
    now += 31_000;
    const marked = await l1.sweepReconciliation();
    assert.ok(marked >= 2, `marked ${marked}`);
    const view = await c1.purchase(a.purchaseId);
    assert.equal(view.status, "reconciliation");
    assert.equal(view.reconciliationReason, "timeout");
    assert.equal((await c1.complete(a.purchaseId, { outcome: "debited", ...proof })).status, "completed");
    assert.equal((await c1.complete(fresh.purchaseId, { outcome: "not-debited" })).status, "voided");
    now -= 61_000;
  });

  it("only the terminal that authorized a purchase may read or complete it", async () => {
    const r = await purchase(c1, tunionCard(f), "tunion", 15);
    const other = clientFor(f, l1.url, T2);
    try {
      await refused(other.purchase(r.answer.purchaseId), 403, "TERMINAL_MISMATCH");
      await refused(other.complete(r.answer.purchaseId, { outcome: "debited", ...r.proof }), 403, "TERMINAL_MISMATCH");
    } finally {
      other.close();
    }
  });

  it("serves the routing table at level 1 only, and health at both", async () => {
    const routes = await c1.routes();
    assert.equal(routes.version, 3);
    assert.deepEqual(routes.routes[1], { cityCode: "4100", application: "cityunion", level: 2, url: "https://127.0.0.1:8444", keyIndex: 1 });
    await refused(c2.routes(), 404, "ROUTES_NOT_SERVED");
    const h1 = await c1.health();
    assert.equal(h1.status, "ok");
    assert.equal(h1.level, 1);
    assert.equal((await c2.health()).keySystem, "4100");
  });

  it("exports the day's completed purchases for settlement, as JSON lines and CSV, to operators only", async () => {
    const ops = clientFor(f, l1.url, OPERATOR);
    try {
      const card = tunionCard(f);
      const r = await purchase(c1, card, "tunion", 99);
      const lines = (await ops.settlement("20261126")).trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
      const mine = lines.find((l) => l.purchaseId === r.answer.purchaseId);
      assert.ok(mine);
      assert.deepEqual(mine, {
        purchaseId: r.answer.purchaseId, businessDay: "20261126", terminalId: T1, tsn: r.answer.tsn, application: "tunion",
        issuer: "01011000FFFFFFFF", cityCode: "1000", cardType: 2, asn: card.application("tunion").basicData.slice(20, 40), epSerial: 0,
        transactionType: 6, amount: 99, balanceBefore: 10_000, date: "20261126", time: "120000", tac: r.proof.tac, keyIndex: 1, keyVersion: 1,
        algorithm: "3des", order: mine.order,
      });
      assert.ok(lines.every((l) => l.businessDay === "20261126"));
      const statuses = new Set(await Promise.all(lines.map(async (l) => (await c1.purchase(l.purchaseId as string).catch(() => ({ status: "other-terminal" }))).status)));
      assert.deepEqual([...statuses].filter((s) => s !== "other-terminal"), ["completed"], "only completed purchases are exported");
      const csv = (await ops.settlement("20261126", "csv")).trim().split("\r\n");
      assert.equal(csv[0], "purchaseId,businessDay,terminalId,tsn,application,issuer,cityCode,cardType,asn,epSerial,transactionType,amount,balanceBefore,date,time,tac,keyIndex,keyVersion,algorithm,order");
      assert.equal(csv.length, lines.length + 1);
      assert.equal(await ops.settlement("20261125"), "");
      await refused(c1.settlement("20261126").then(() => undefined), 403, "CLIENT_NOT_ALLOWED");
      // An operator certificate is not a terminal: it may read a purchase, not authorize or complete one.
      await refused(ops.authorize(authorizeBody(initCard(tunionCard(f), "tunion", 5), 5) as never), 403, "CLIENT_NOT_ALLOWED");
      assert.equal((await ops.purchase(r.answer.purchaseId)).status, "completed");
      await refused(ops.complete(r.answer.purchaseId, { outcome: "not-debited" }), 403, "CLIENT_NOT_ALLOWED");
    } finally {
      ops.close();
    }
  });

  it("never puts a key in a log line or a response", async () => {
    const card = tunionCard(f);
    const r = await purchase(c1, card, "tunion", 77);
    const app = card.application("tunion");
    const factor = Buffer.from(app.basicData.slice(24, 40), "hex");
    const init = r.session.initResponse;
    const sessionKey = purchaseSessionKey("3des", diversifyKey("3des", f.master3des.purchase, factor), Buffer.from(init.slice(22, 30), "hex"), parseInt(init.slice(8, 12), 16), r.answer.tsn);
    const secrets = [toHex(f.master3des.purchase), toHex(f.master3des.tac), app.dpk, app.dtk, toHex(sessionKey)];
    // pino writes asynchronously: wait for this purchase's line rather than for a guessed time.
    const log = await until("this purchase's log line", () => {
      const text = readFileSync(path.join(f.dir, "level1.log"), "utf8");
      return text.includes(r.answer.purchaseId) && text.includes("purchase authorized") ? text : undefined;
    });
    const responses = JSON.stringify([r.answer, r.completion, await c1.purchase(r.answer.purchaseId), await c1.health()]);
    for (const secret of secrets) {
      for (const text of [log, responses]) assert.ok(!text.toUpperCase().includes(secret.toUpperCase()), "a key leaked");
    }
  });

  it("the date of a purchase is today's in China when no clock is set", async () => {
    const fe = await start(level1Config(f));
    const c = clientFor(f, fe.url);
    try {
      const a = await c.authorize(authorizeBody(initCard(tunionCard(f), "tunion", 1), 1) as never);
      assert.ok([chinaToday(Date.now() - 60_000), chinaToday()].includes(a.date));
    } finally {
      c.close();
    }
  });
});


describeEngines("front-end: a completion the key store cannot verify", function () {
  this.timeout(30_000);
  after(stopAll);

  it("is recorded and flagged, not refused, when the key store fails at completion", async () => {
    const f = await getFixture();
    const { FileKeyStore } = await import("../../../tools/frontend/index");
    const real = FileKeyStore.load(f.level1Keys);
    let broken = false;
    const keyStore = {
      has: (ref: Parameters<typeof real.has>[0]) => real.has(ref),
      describe: () => real.describe(),
      authorize: (...a: Parameters<typeof real.authorize>) => real.authorize(...a),
      verify: (...a: Parameters<typeof real.verify>) => {
        if (broken) throw Object.assign(new Error("HSM offline"), { code: "HSM_DOWN" });
        return real.verify(...a);
      },
    };
    const fe = await start(level1Config(f, { keyStore }));
    const c = clientFor(f, fe.url);
    try {
      const card = tunionCard(f);
      const a = await c.authorize(authorizeBody(initCard(card, "tunion", 11), 11) as never);
      const proof = debitCard(card, a);
      broken = true;
      const answer = await c.complete(a.purchaseId, { outcome: "debited", ...proof });
      assert.deepEqual([answer.status, answer.mac2Valid, answer.tacValid], ["flagged", false, false]);
      assert.equal((await c.purchase(a.purchaseId)).status, "flagged");
    } finally {
      c.close();
    }
  });
});
