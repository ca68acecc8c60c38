/**
 * The operator console in a real browser: Debian's chromium driven by playwright-core, against the whole simulated
 * system (tools/sim/simulation: front-ends, PN532 emulator, the terminal taking payments through its controller port).
 * It gets 401 before logging in, logs in, finds the purchase the simulated terminal made, edits the terminal's
 * maxAmount, and downloads the day's settlement. Each page is kept as a screenshot under test-output/console/.
 */
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import path from "node:path";
import type { Browser, Page } from "playwright-core";
import { hashPassword } from "../../../tools/frontend/operator/index";
import { DEFAULT_CARDS, Simulation, TERMINAL_ID } from "../../../tools/sim/simulation/index";
import { until } from "../until";

const CHROMIUM = "/usr/bin/chromium";
const OUT = path.resolve(import.meta.dirname, "../../../test-output/console");
const PASSWORD = "browser test password";

describe("operator console in chromium", function () {
  this.timeout(180_000);
  let sim: Simulation | undefined;
  let browser: Browser | undefined;
  let page: Page;
  let base = "";
  const order = `BROWSER-${Date.now().toString(36).toUpperCase()}`;
  const terminalEvents: Record<string, unknown>[] = [];

  before(async function () {
    if (!existsSync(CHROMIUM)) {
      console.log("      skipped: no chromium (apt-get install chromium)");
      this.skip();
    }
    mkdirSync(OUT, { recursive: true });
    sim = await Simulation.start({
      operator: { port: 0, accounts: [{ user: "operator", password: hashPassword(PASSWORD) }], statusEveryMs: 60_000 },
      // The terminal fetches its configuration with the routing table: every second here, so the edit arrives soon.
      terminal: { routesRefreshMs: 1000, statusEveryMs: 1000 },
      onEvent: (e) => terminalEvents.push(e as unknown as Record<string, unknown>),
    });
    base = sim.level1.operator.url!;
    const { chromium } = await import("playwright-core");
    // Running as root in CI: chromium's sandbox needs a user namespace it may not get.
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
    // The console's certificate is the development PKI's, which chromium does not know.
    const context = await browser.newContext({ ignoreHTTPSErrors: true, acceptDownloads: true, viewport: { width: 1400, height: 900 } });
    page = await context.newPage();
  });
  after(async () => {
    await browser?.close();
    await sim?.close();
  });

  const shot = (name: string) => page.screenshot({ path: path.join(OUT, `${name}.png`), fullPage: true });

  it("answers 401 with the login page, then logs in", async () => {
    const first = await page.goto(`${base}/purchases`);
    assert.equal(first?.status(), 401);
    await page.waitForSelector("form.login");
    await shot("login");
    await page.fill("input[name=user]", "operator");
    await page.fill("input[name=password]", "not the password");
    await page.click("button.primary");
    await page.waitForSelector(".errors");
    assert.match(await page.textContent(".errors") ?? "", /Wrong operator name or password/);
    await page.fill("input[name=user]", "operator");
    await page.fill("input[name=password]", PASSWORD);
    await Promise.all([page.waitForURL(`${base}/purchases`), page.click("button.primary")]);
    assert.equal(await page.textContent("h1"), "Purchases");
  });

  it("finds the purchase the simulated terminal made, with its APDU-level facts", async () => {
    sim!.addCard(DEFAULT_CARDS[0]!);
    const events = await sim!.pay(DEFAULT_CARDS[0]!.name, 250, order);
    assert.ok(events.some((e) => e.event === "approved"), `the purchase was approved: ${JSON.stringify(events)}`);
    // The terminal's live status reports: it shows as online, with the approval it just counted.
    await until("a status report after the start report", async () =>
      ((await sim!.level1.store.fleet.latestStatus()).find((r) => r.terminalId === TERMINAL_ID)?.report.sequence ?? 0) > 1, 10_000, 100);
    await page.goto(`${base}/`);
    const row = page.locator("tbody tr", { hasText: TERMINAL_ID });
    assert.match(await row.textContent() ?? "", /online/);
    await shot("fleet");
    await page.goto(`${base}/purchases`);
    await page.fill("input[name=order]", order);
    await Promise.all([page.waitForURL(/order=/), page.click("form.inline button.primary")]);
    const rows = page.locator("tbody tr");
    assert.equal(await rows.count(), 1);
    assert.match(await rows.first().textContent() ?? "", new RegExp(`${TERMINAL_ID}.*${order}.*2\\.50.*completed`));
    await shot("purchases");
    await Promise.all([page.waitForURL(/\/purchases\/[0-9a-f-]{36}$/), rows.first().locator("a").first().click()]);
    const text = await page.textContent("main") ?? "";
    assert.match(text, /INITIALIZE FOR PURCHASE answer/);
    assert.match(text, /MAC2 \(card\)[0-9A-F]{8} verified/);
    assert.match(text, /Balance before50\.00 yuan/);
    await shot("purchase");
    await page.goto(`${base}/attention`);
    await shot("flagged");
    await page.goto(`${base}/charts`);
    await page.waitForSelector("svg");
    await shot("charts");
  });

  it("edits the terminal's maxAmount: a bad value is refused, a good one is saved, audited, and the running terminal declines over it", async () => {
    await page.goto(`${base}/config?scope=terminal:${TERMINAL_ID}`);
    await page.fill("#config-form input[name=maxAmount]", "twelve");
    await page.click("#config-form button.primary");
    await page.waitForSelector(".errors");
    assert.match(await page.textContent(".errors") ?? "", /maxAmount: must be a whole number of fen/);
    await page.fill("#config-form input[name=maxAmount]", "200");
    await Promise.all([page.waitForURL(/saved=1/), page.click("#config-form button.primary")]);
    assert.match(await page.textContent(".notice") ?? "", /version 1/);
    assert.match(await page.textContent("main") ?? "", /operator.*settings.*\{"maxAmount":200\}/s);
    assert.equal((await sim!.level1.store.fleet.effectiveConfig(TERMINAL_ID)).settings.maxAmount, 200);
    await shot("config");
    const version = (await sim!.level1.store.fleet.effectiveConfig(TERMINAL_ID)).version;
    await until(`the terminal to apply configuration version ${version}`,
      () => terminalEvents.some((e) => e.event === "config" && e.applied === true && Number(e.version) >= version), 30_000, 100)
      .catch((error: Error) => assert.fail(`${error.message}: ${JSON.stringify(terminalEvents.filter((e) => e.event === "config"))}`));
    const over = await sim!.pay(DEFAULT_CARDS[0]!.name, 300, `${order}-OVER`);
    const final = over.at(-1)!;
    assert.equal(final.event, "declined");
    assert.equal(final.reason, "amount-over-limit");
    const under = await sim!.pay(DEFAULT_CARDS[0]!.name, 150, `${order}-UNDER`);
    assert.equal(under.at(-1)!.event, "approved");
  });

  it("downloads the business day's settlement as CSV", async () => {
    await page.goto(`${base}/settlement`);
    await shot("settlement");
    const link = page.locator("a[download]").first();
    const [download] = await Promise.all([page.waitForEvent("download"), link.click()]);
    assert.match(download.suggestedFilename(), /^settlement-[0-9]{8}\.csv$/);
    const file = path.join(OUT, download.suggestedFilename());
    await download.saveAs(file);
    const csv = readFileSync(file, "utf8");
    assert.match(csv.split("\r\n")[0]!, /^purchaseId,businessDay,terminalId,tsn/);
    assert.ok(csv.includes(`,${order}\r\n`), "the simulated purchase is in the settlement");
  });
});
