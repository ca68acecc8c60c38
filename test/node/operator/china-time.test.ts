/**
 * One time rule on the console (issue 23, finding 9): a purchase made at 01:30 China time on 26 November (17:30 UTC
 * on the 25th) shows on the purchases page, its detail, the fleet page and the charts under China time, the day its
 * search and its settlement use; UTC stands beside it on the detail page. Before, the pages showed the UTC day.
 */
import assert from "node:assert/strict";
import type { RunningFrontend } from "../../../tools/frontend/index";
import { hashPassword } from "../../../tools/frontend/operator/index";
import type { FrontendClient } from "../../../tools/rigs/frontend/index";
import { FrontendClient as Client } from "../../../tools/rigs/frontend/index";
import { clientFor, getFixture, level1Config, purchase, start, stopAll, T1, tunionCard, type Fixture } from "../frontend/support";

const PASSWORD = "china time password";

describe("console times in China time", function () {
  this.timeout(120_000);
  let f: Fixture;
  let fe: RunningFrontend;
  let terminal: FrontendClient;
  let web: FrontendClient;
  let cookie = "";
  // 2026-11-26 01:30:00 in China (UTC+8).
  const now = Date.parse("2026-11-25T17:30:00Z");
  let purchaseId = "";

  before(async () => {
    f = await getFixture();
    fe = await start(level1Config(f, { clock: () => now, operator: { port: 0, accounts: [{ user: "alice", password: hashPassword(PASSWORD) }] } }));
    terminal = clientFor(f, fe.url, T1);
    web = new Client(fe.operator.url!, { ca: f.pki.ca.certPem });
    const r = await web.raw("POST", "/login", `user=alice&password=${encodeURIComponent(PASSWORD)}`, { "content-type": "application/x-www-form-urlencoded" });
    cookie = `console_session=${/console_session=([^;]+)/.exec(String(r.headers["set-cookie"]))![1]}`;
    purchaseId = (await purchase(terminal, tunionCard(f), "tunion", 250)).answer.purchaseId;
  });
  after(async () => {
    terminal?.close();
    web?.close();
    await stopAll();
  });

  const page = async (path: string) => {
    const r = await web.raw("GET", path, undefined, { cookie, accept: "text/html" });
    assert.equal(r.status, 200, path);
    return r.text;
  };
  const rowOf = (html: string, needle: string) => html.split("<tr>").find((tr) => tr.includes(needle)) ?? "";

  it("the purchases page shows the China-time business day and time, and the search for that day finds it", async () => {
    const list = rowOf(await page("/purchases"), purchaseId);
    assert.match(list, />20261126</, "business day");
    assert.match(list, /2026-11-26 01:30:00 \+08:00/);
    assert.doesNotMatch(list, />2026-11-25/, "the UTC day only in the tooltip");
    assert.match(list, /title="2026-11-25 17:30:00Z"/);
    assert.ok(rowOf(await page("/purchases?day=20261126"), purchaseId), "found under the day the page shows");
    assert.equal(rowOf(await page("/purchases?day=20261125"), purchaseId), "", "not under the UTC day");
    const settlement = (await web.raw("GET", "/settlement/20261126.csv", undefined, { cookie })).text;
    assert.ok(settlement.includes(purchaseId), "and settled under it");
  });

  it("the purchase's page gives China time with UTC beside it", async () => {
    const detail = await page(`/purchases/${purchaseId}`);
    assert.match(detail, /2026-11-26 01:30:00 \+08:00 <span class="muted">\(2026-11-25 17:30:00Z\)<\/span>/);
  });

  it("the fleet page and the charts use China time", async () => {
    await fe.store.fleet.recordStatus({
      terminalId: T1, firmware: "0.1.0", reason: "interval", sequence: 1, sentAt: now, uptimeMs: 60_000,
      journal: { usedBlocks: 2, blocks: 16, liveRecords: 3, fillPercent: 12 }, pendingCompletions: 0, unresolved: 0,
      counts: { approvals: 1, declines: {}, tears: 0, readerFaults: 0, frontendErrors: 0 }, tapToApprovedMs: { p50: 300, p90: 400, samples: 1 }, config: { version: 0, refused: [] },
    } as never, now);
    assert.match(rowOf(await page("/"), `>${T1}<`), /2026-11-26 01:30:00 \+08:00/);
    const charts = await page("/charts");
    assert.match(charts, /last 24 h, China time/);
    assert.match(charts, /<title>01:00: 1<\/title>/, "the purchase in the 01:00 China-time hour");
  });
});
