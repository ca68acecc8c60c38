/**
 * The console with `--workers 2`, as its own process: an account made by `operator-add`, a login in one worker valid
 * in the other (each request on a new connection, which the cluster hands to the workers in turn), and /metrics from
 * any worker counting the purchases of all of them.
 */
import assert from "node:assert/strict";
import { spawnSync, type ChildProcess } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { FrontendClient } from "../../../tools/rigs/frontend/index";
import { clientFor, describeEngines, getFixture, killed, launchFrontend, level1Config, purchase, T1, tunionCard, type Fixture } from "../frontend/support";
import { ensureDatabase } from "../frontend/postgres-support";

const MAIN = path.resolve(import.meta.dirname, "../../../tools/frontend/main.ts");

describeEngines("operator console with --workers 2", function () {
  this.timeout(120_000);
  let f: Fixture;
  let child: ChildProcess | undefined;

  before(async () => {
    f = await getFixture();
  });
  after(async () => {
    if (child) await killed(child, "SIGTERM");
  });

  it("operator-add makes an account; a login holds in every worker; /metrics aggregates the workers", async () => {
    const config = level1Config(f, { operator: { port: 0 }, log: { level: "warn", file: path.join(f.dir, `console-workers-${Date.now()}.log`) } });
    await ensureDatabase(config.database);
    const configPath = path.join(f.dir, `console-workers-${process.pid}-${Date.now()}.json`);
    writeFileSync(configPath, JSON.stringify(config));
    const add = spawnSync(process.execPath, ["--import", "tsx", MAIN, "operator-add", "--config", configPath, "--user", "bob"], {
      input: "a long enough password\n", encoding: "utf8", cwd: path.resolve(import.meta.dirname, "../../.."),
    });
    assert.equal(add.status, 0, add.stderr);
    const saved = JSON.parse(readFileSync(configPath, "utf8")) as { operator: { accounts: { user: string; password: string }[] } };
    assert.equal(saved.operator.accounts[0]!.user, "bob");
    assert.match(saved.operator.accounts[0]!.password, /^scrypt\$32768\$8\$1\$/);
    assert.ok(!readFileSync(configPath, "utf8").includes("a long enough password"), "only the hash is stored");
    const short = spawnSync(process.execPath, ["--import", "tsx", MAIN, "operator-add", "--config", configPath, "--user", "eve"], { input: "short\n", encoding: "utf8" });
    assert.equal(short.status, 1);
    assert.match(short.stderr, /PASSWORD_TOO_SHORT/);

    let operatorUrl = "";
    const running = await launchFrontend(configPath, ["--workers", "2"], (line) => {
      if (line.startsWith("{\"event\":\"listening\"")) operatorUrl = (JSON.parse(line) as { operatorUrl?: string }).operatorUrl ?? "";
    });
    child = running.child;
    assert.match(operatorUrl, /^https:\/\/127\.0\.0\.1:[0-9]+$/);

    // Each request on a new connection: the cluster hands connections to the workers in turn.
    const once = async (method: string, p: string, body?: string, headers: Record<string, string> = {}) => {
      const c = new FrontendClient(operatorUrl, { ca: f.pki.ca.certPem });
      try {
        return await c.raw(method, p, body, headers);
      } finally {
        c.close();
      }
    };
    assert.equal((await once("GET", "/metrics")).status, 401);
    const login = await once("POST", "/login", "user=bob&password=a+long+enough+password", { "content-type": "application/x-www-form-urlencoded" });
    assert.equal(login.status, 303);
    const cookie = /console_session=[^;]+/.exec(String(login.headers["set-cookie"]))![0];
    for (let i = 0; i < 4; i++) assert.equal((await once("GET", "/purchases", undefined, { cookie, accept: "text/html" })).status, 200, `request ${i}`);

    const PURCHASES = 6;
    for (let i = 0; i < PURCHASES; i++) {
      const terminal = clientFor(f, running.url, T1);
      try {
        await purchase(terminal, tunionCard(f), "tunion", 10 + i);
      } finally {
        terminal.close();
      }
    }
    // Every page in both workers: the fleet and configuration through the store, the rest through the console's queries.
    for (const page of ["/", `/purchases?terminal=${T1}`, "/attention", "/settlement", "/charts", `/config?scope=terminal:${T1}`, `/fleet/${T1}`]) {
      for (let i = 0; i < 2; i++) {
        const r = await once("GET", page, undefined, { cookie, accept: "text/html" });
        assert.equal(r.status, 200, `${page}: ${r.text.slice(0, 300)}`);
        if (page === "/") assert.ok(r.text.includes(T1), "the terminal that bought is listed");
      }
    }
    const edited = await once("POST", "/config", `scope=terminal%3A${T1}&version=0&maxAmount=777`, { cookie, "content-type": "application/x-www-form-urlencoded" });
    assert.equal(edited.status, 303);
    assert.match((await once("GET", `/config?scope=terminal:${T1}`, undefined, { cookie, accept: "text/html" })).text, /&#34;maxAmount&#34;: 777/);
    for (let i = 0; i < 2; i++) {
      const metrics = (await once("GET", "/metrics", undefined, { cookie })).text;
      assert.match(metrics, new RegExp(`^frontend_authorizations_total\\{outcome="approved"\\} ${PURCHASES}$`, "m"), "every worker's authorizations, summed");
      assert.match(metrics, new RegExp(`^frontend_completions_total\\{outcome="completed"\\} ${PURCHASES}$`, "m"));
      if (!config.database.startsWith("postgres")) assert.match(metrics, /^frontend_journal_commit_batch_writes_count [1-9][0-9]*$/m, "the primary's journal");
    }
  });
});
