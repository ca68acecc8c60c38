/**
 * A login flood against the console (issue 23, findings 2 and 3). The front-end runs as its own process; a second
 * process floods /login with wrong passwords from 127.0.0.1; the terminal pays from this process. Purchase latency is
 * measured in interleaved quiet and flood windows (a loaded machine drifts: interleaving compares like with like): the
 * median over the rounds of (flood window p50 / quiet window p50) must stay at or below 1.2 (in one of up to three
 * measurements: the machine is shared). Meanwhile a real operator logs in from
 * another address (127.0.0.2). A second front-end shows the lockout itself: after it, the right password is refused
 * until the lockout expires, and every failure is in the audit log.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { request } from "node:https";
import path from "node:path";
import { hashPassword } from "../../../tools/frontend/operator/index";
import type { FrontendClient } from "../../../tools/rigs/frontend/index";
import { clientFor, describeEngines, getFixture, killed, launchFrontend, level1Config, purchase, start, stopAll, tunionCard, type Fixture } from "../frontend/support";
import { ensureDatabase } from "../frontend/postgres-support";

const PASSWORD = "the operator's password";

/** A login POST from a chosen local address, on a connection of its own. */
function login(url: string, ca: string, user: string, password: string, localAddress = "127.0.0.1"): Promise<{ status: number; retryAfter?: string }> {
  return new Promise((resolve, reject) => {
    const req = request(`${url}/login`, { method: "POST", ca, localAddress, agent: false, headers: { "content-type": "application/x-www-form-urlencoded" } }, (res) => {
      res.resume();
      res.on("end", () => resolve({ status: res.statusCode ?? 0, retryAfter: res.headers["retry-after"] as string | undefined }));
    });
    req.on("error", reject);
    req.end(`user=${encodeURIComponent(user)}&password=${encodeURIComponent(password)}`);
  });
}

// The flooder: 8 loops of wrong logins over keep-alive connections, each pausing 20 ms between answers, while
// "start" is the last thing it read on stdin; "report" prints the status counts.
const FLOODER = `
const https = require("node:https");
const [url, ca] = [process.argv[1], process.argv[2]];
const agent = new https.Agent({ keepAlive: true, maxSockets: 8, ca });
let on = false;
const codes = {};
process.stdin.on("data", (d) => {
  for (const word of String(d).split(/\\s+/)) {
    if (word === "start") on = true;
    if (word === "stop") on = false;
    if (word === "report") process.stdout.write(JSON.stringify(codes) + "\\n");
  }
});
process.stdin.on("end", () => process.exit(0));
function fire() {
  if (!on) return setTimeout(fire, 20);
  const req = https.request(url + "/login", { method: "POST", agent, headers: { "content-type": "application/x-www-form-urlencoded" } }, (res) => {
    res.resume();
    res.on("end", () => { codes[res.statusCode] = (codes[res.statusCode] || 0) + 1; setTimeout(fire, 20); });
  });
  req.on("error", () => { codes.error = (codes.error || 0) + 1; setTimeout(fire, 20); });
  req.end("user=admin&password=wrong" + Math.random());
}
for (let i = 0; i < 8; i++) fire();`;

async function until(what: string, check: () => boolean, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) assert.fail(`timed out waiting: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

describeEngines("console login flood", function () {
  this.timeout(600_000);
  let f: Fixture;
  let frontend: ChildProcess | undefined;
  let flooder: ChildProcess | undefined;
  let terminal: FrontendClient | undefined;

  before(async () => {
    f = await getFixture();
  });
  after(async () => {
    terminal?.close();
    flooder?.stdin?.end();
    if (flooder) await killed(flooder, "SIGTERM");
    if (frontend) await killed(frontend, "SIGTERM");
    await stopAll();
  });

  it("keeps terminal purchase p50 within 20 % of quiet while wrong logins flood in, and a real operator still logs in", async () => {
    const logFile = path.join(f.dir, `flood-${process.pid}-${Date.now()}.log`);
    const config = level1Config(f, { operator: { port: 0, accounts: [{ user: "alice", password: hashPassword(PASSWORD) }] }, log: { level: "warn", file: logFile } });
    await ensureDatabase(config.database);
    const configPath = path.join(f.dir, `flood-${process.pid}-${Date.now()}.json`);
    writeFileSync(configPath, JSON.stringify(config));
    let operatorUrl = "";
    const running = await launchFrontend(configPath, [], (line) => {
      if (line.startsWith("{\"event\":\"listening\"")) operatorUrl = (JSON.parse(line) as { operatorUrl?: string }).operatorUrl ?? "";
    });
    frontend = running.child;
    terminal = clientFor(f, running.url);
    flooder = spawn(process.execPath, ["-e", FLOODER, operatorUrl, f.pki.ca.certPem], { stdio: ["pipe", "pipe", "inherit"] });
    const reports: string[] = [];
    flooder.stdout!.on("data", (d: Buffer) => reports.push(...String(d).split("\n").filter(Boolean)));

    const sample = async (n: number, into: number[]) => {
      for (let i = 0; i < n; i++) {
        const card = tunionCard(f);
        const t0 = performance.now();
        await purchase(terminal!, card, "tunion", 100);
        into.push(performance.now() - t0);
      }
    };
    await sample(5, []); // warm-up: connections, JIT
    // The flood's first wrong passwords are checked (scrypt) until the lockout starts; the windows measure the
    // flood as it then goes on: refused before any check, with one check each time a lockout runs out.
    flooder.stdin!.write("start\n");
    await until("the flood is locked out", () => readFileSync(logFile, "utf8").includes('"outcome":"locked"'));
    flooder.stdin!.write("stop\n");
    let operatorLogins = 0;
    const loginMs: number[] = [];
    /** One measurement: 30 rounds of a quiet and a flood window; the median over the rounds of flood p50 / quiet p50. */
    const measure = async () => {
      const quiet: number[][] = [];
      const flood: number[][] = [];
      const quietWindow = async () => {
        flooder!.stdin!.write("stop\n");
        // The same pause as before a flood window: the first purchases after a pause are slower on a busy machine.
        await new Promise((r) => setTimeout(r, 100));
        const window: number[] = [];
        await sample(8, window);
        quiet.push(window);
      };
      const floodWindow = async (round: number) => {
        flooder!.stdin!.write("start\n");
        // The flood is under way before the window opens.
        await new Promise((r) => setTimeout(r, 100));
        const window: number[] = [];
        await sample(8, window);
        flood.push(window);
        if (round % 8 === 0) {
          // A real operator, from another address, during the flood.
          const t0 = performance.now();
          const r = await login(operatorUrl, f.pki.ca.certPem, "alice", PASSWORD, "127.0.0.2");
          loginMs.push(performance.now() - t0);
          assert.equal(r.status, 303, `round ${round}: the operator's login answered ${r.status}`);
          operatorLogins++;
        }
        flooder!.stdin!.write("stop\n");
      };
      // Short windows, many of them, in alternating order: the machine's own load drifts over seconds, and each flood
      // window then has quiet ones just before and after it.
      for (let round = 0; round < 30; round++) {
        if (round % 2 === 0) {
          await quietWindow();
          await floodWindow(round);
        } else {
          await floodWindow(round);
          await quietWindow();
        }
      }
      // Each flood window against the quiet window beside it (the same round): the machine's drift cancels out.
      const ratios = flood.map((w, i) => median(w) / median(quiet[i]!));
      return { ratio: median(ratios), quiet: median(quiet.flat()), flood: median(flood.flat()) };
    };
    // Other work on a shared machine can swamp a 20 % margin for the seconds one measurement takes: up to three, and
    // one within the margin passes. A flood that costs the terminals (scrypt on their threads: p50 x6 in issue 23)
    // fails all three.
    const results: { ratio: number; quiet: number; flood: number }[] = [];
    while (results.length < 3 && !results.some((m) => m.ratio <= 1.2)) {
      const m = await measure();
      results.push(m);
      console.log(`      purchase p50 quiet ${m.quiet.toFixed(1)} ms, during the flood ${m.flood.toFixed(1)} ms; median ratio of 30 paired windows of 8 purchases ${m.ratio.toFixed(2)}`);
    }
    flooder.stdin!.write("report\n");
    const deadline = Date.now() + 10_000;
    while (!reports.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const codes = JSON.parse(reports.at(-1) ?? "{}") as Record<string, number>;
    const attempts = Object.values(codes).reduce((a, b) => a + b, 0);
    console.log(`      flood answers ${JSON.stringify(codes)}; operator logins ${operatorLogins} (${loginMs.map((ms) => ms.toFixed(0)).join(", ")} ms)`);
    assert.ok(attempts > 40, `the flood sent ${attempts} logins`);
    // Checked: the first few, then one each time a lockout runs out (and each lockout twice as long as the last).
    assert.ok((codes["401"] ?? 0) <= 12, "after the lockout the flood is refused without a password check");
    assert.ok(results.some((m) => m.ratio <= 1.2), `purchase p50 during the flood / quiet: ${results.map((m) => m.ratio.toFixed(2)).join(", ")}`);
    // Failures and lockouts are audited.
    const log = readFileSync(logFile, "utf8");
    assert.match(log, /"audit":"operator-login","outcome":"wrong-password","address":"127\.0\.0\.1","user":"admin"/);
    assert.match(log, /"audit":"operator-login","outcome":"locked"/);
  });

  it("after the lockout the right password is refused until the lockout expires", async () => {
    const lockMs = 3000;
    const fe = await start(level1Config(f, {
      operator: { port: 0, accounts: [{ user: "alice", password: hashPassword(PASSWORD) }], loginLimits: { freeFailures: 3, baseLockMs: lockMs } },
    }));
    const url = fe.operator.url!;
    const ca = f.pki.ca.certPem;
    for (let i = 0; i < 3; i++) assert.equal((await login(url, ca, "alice", "wrong password")).status, 401);
    const lockedAt = Date.now();
    const refused = await login(url, ca, "alice", PASSWORD);
    assert.equal(refused.status, 429, "the right password during the lockout");
    assert.ok(Number(refused.retryAfter) >= 1 && Number(refused.retryAfter) <= lockMs / 1000);
    // The account is locked too: the right password from another address is refused as well.
    assert.equal((await login(url, ca, "alice", PASSWORD, "127.0.0.2")).status, 429);
    let status = 429;
    while (status === 429) {
      await new Promise((r) => setTimeout(r, 200));
      status = (await login(url, ca, "alice", PASSWORD)).status;
    }
    assert.equal(status, 303);
    assert.ok(Date.now() - lockedAt >= lockMs - 50, `logged in ${Date.now() - lockedAt} ms after the lockout began`);
    // A failure after a lockout doubles it: lock again, wait until a wrong password is checked again (401), and that
    // fourth failure locks for twice as long.
    for (let i = 0; i < 3; i++) await login(url, ca, "alice", "wrong password");
    assert.equal((await login(url, ca, "alice", PASSWORD)).status, 429);
    while ((await login(url, ca, "alice", "wrong password")).status === 429) await new Promise((r) => setTimeout(r, 200));
    const again = await login(url, ca, "alice", PASSWORD);
    assert.equal(again.status, 429);
    assert.ok(Number(again.retryAfter) > lockMs / 1000, `retry-after ${again.retryAfter}`);
  });
}, ["sqlite"]);
