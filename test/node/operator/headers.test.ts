/**
 * The console's security headers (issue 23, finding 6): every answer carries a CSP without inline script and with
 * frame-ancestors 'none', X-Frame-Options DENY, nosniff, HSTS and a Referrer-Policy; the pages hold no inline script
 * or style. In chromium, a page of another origin that frames the console gets no console in its frame.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Browser } from "playwright-core";
import type { RunningFrontend } from "../../../tools/frontend/index";
import { hashPassword } from "../../../tools/frontend/operator/index";
import { FrontendClient } from "../../../tools/rigs/frontend/index";
import { getFixture, level1Config, start, stopAll, type Fixture } from "../frontend/support";

const CHROMIUM = "/usr/bin/chromium";
const PASSWORD = "header test password";

describe("operator console security headers", function () {
  this.timeout(120_000);
  let f: Fixture;
  let fe: RunningFrontend;
  let web: FrontendClient;
  let cookie = "";

  before(async () => {
    f = await getFixture();
    fe = await start(level1Config(f, { operator: { port: 0, accounts: [{ user: "alice", password: hashPassword(PASSWORD) }] } }));
    web = new FrontendClient(fe.operator.url!, { ca: f.pki.ca.certPem });
    const r = await web.raw("POST", "/login", `user=alice&password=${encodeURIComponent(PASSWORD)}`, { "content-type": "application/x-www-form-urlencoded" });
    cookie = `console_session=${/console_session=([^;]+)/.exec(String(r.headers["set-cookie"]))![1]}`;
  });
  after(async () => {
    web?.close();
    await stopAll();
  });

  it("sends them with every answer: pages, 401, 404, errors, CSV, metrics, the stylesheet", async () => {
    const answers = [
      await web.raw("GET", "/login"),
      await web.raw("GET", "/purchases", undefined, { accept: "text/html" }),
      await web.raw("GET", "/metrics"),
      await web.raw("GET", "/no-such-page", undefined, { cookie }),
      await web.raw("GET", "/purchases", undefined, { cookie, accept: "text/html" }),
      await web.raw("GET", "/purchases/nope", undefined, { cookie, accept: "text/html" }),
      await web.raw("GET", "/settlement/20261126.csv", undefined, { cookie }),
      await web.raw("GET", "/metrics", undefined, { cookie }),
      await web.raw("GET", "/console.css"),
      await web.raw("POST", "/login", "user=alice&password=wrong+password", { "content-type": "application/x-www-form-urlencoded" }),
    ];
    assert.deepEqual(answers.map((a) => a.status), [200, 401, 401, 404, 200, 404, 200, 200, 200, 401]);
    for (const a of answers) {
      const csp = String(a.headers["content-security-policy"]);
      assert.match(csp, /frame-ancestors 'none'/);
      assert.match(csp, /default-src 'none'/);
      assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
      assert.doesNotMatch(csp, /script-src/, "no script source at all: default-src 'none' forbids every script");
      assert.equal(a.headers["x-frame-options"], "DENY");
      assert.equal(a.headers["x-content-type-options"], "nosniff");
      assert.match(String(a.headers["strict-transport-security"]), /^max-age=[0-9]{7,}/);
      assert.equal(a.headers["referrer-policy"], "same-origin");
    }
    for (const page of [answers[0]!, answers[4]!]) {
      assert.doesNotMatch(page.text, /<script|<style|\son[a-z]+=|style="/i, "no inline script or style");
      assert.match(page.text, /<link rel="stylesheet" href="\/console.css">/);
    }
    assert.match(String(answers[8]!.headers["content-type"]), /^text\/css/);
  });

  describe("in chromium", () => {
    let browser: Browser | undefined;
    let other: Server | undefined;
    before(async function () {
      if (!existsSync(CHROMIUM)) {
        console.log("      skipped: no chromium (apt-get install chromium)");
        this.skip();
      }
      const { chromium } = await import("playwright-core");
      browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
    });
    after(async () => {
      await browser?.close();
      await new Promise((r) => (other ? other.close(r) : r(undefined)));
    });

    it("renders the console at its own address, and not in another site's frame", async () => {
      const context = await browser!.newContext({ ignoreHTTPSErrors: true });
      const page = await context.newPage();
      // The console itself renders (the stylesheet applies: the CSP lets /console.css in).
      await page.goto(`${fe.operator.url}/login`);
      await page.waitForSelector("form.login");
      assert.equal(await page.evaluate("getComputedStyle(document.querySelector('header')).backgroundColor"), "rgb(18, 50, 74)");
      // Its own form posts still work under the policy (the Origin header stays the console's).
      await page.fill("input[name=user]", "alice");
      await page.fill("input[name=password]", PASSWORD);
      await Promise.all([page.waitForURL(`${fe.operator.url}/`), page.click("button.primary")]);
      assert.equal(await page.textContent("h1"), "Fleet");
      // Another origin frames it.
      other = createServer((_req, res) => res.writeHead(200, { "content-type": "text/html" }).end(
        `<!doctype html><title>evil</title><iframe id="victim" src="${fe.operator.url}/login" width="600" height="400"></iframe>`));
      await new Promise<void>((r) => other!.listen(0, "127.0.0.1", r));
      const refused: string[] = [];
      page.on("console", (m) => { if (/frame-ancestors|Refused to (display|frame)/i.test(m.text())) refused.push(m.text()); });
      await page.goto(`http://127.0.0.1:${(other.address() as AddressInfo).port}/`);
      await page.waitForSelector("#victim");
      // Chromium reports the refusal; wait for it (no fixed sleep), then the frame holds no console.
      const deadline = Date.now() + 20_000;
      while (!refused.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      assert.ok(refused.length, "chromium refused to frame the console");
      const frame = page.frames().find((fr) => fr !== page.mainFrame());
      assert.ok(frame, "the iframe exists");
      assert.equal(await frame.$("form.login"), null, "no login form rendered in the frame");
      assert.doesNotMatch(await frame.content(), /Operator login/);
      await context.close();
    });
  });
});
