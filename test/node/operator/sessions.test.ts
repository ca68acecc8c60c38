/**
 * Console sessions in the database, on both engines (issue 23, finding 4): logout, `operator-passwd` and
 * `operator-remove` end them in a running front-end; a token the server never issued, or one whose operator the
 * configuration no longer has, is refused, also after a restart on the same database with the same sessionSecret.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { createHash, randomBytes } from "node:crypto";
import type { RunningFrontend } from "../../../tools/frontend/index";
import { hashPassword } from "../../../tools/frontend/operator/index";
import { FrontendClient } from "../../../tools/rigs/frontend/index";
import { describeEngines, getFixture, level1Config, start, type Fixture } from "../frontend/support";

const root = path.resolve(import.meta.dirname, "../../..");
const MAIN = path.join(root, "tools/frontend/main.ts");
const SECRET = "00112233445566778899aabbccddeeff";

function cli(args: string[], password?: string): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", MAIN, ...args], { cwd: root, env: { ...process.env, ...(password ? { OPERATOR_PASSWORD: password } : {}) }, stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => { stderr += d; });
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stderr }));
  });
}

/** Polls until `check` holds (the console re-reads its accounts file at most once a second). */
async function until(what: string, check: () => Promise<boolean>, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) assert.fail(`timed out waiting: ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describeEngines("operator sessions in the database", function () {
  this.timeout(180_000);
  let f: Fixture;
  let file = "";
  let database = "";
  let fe: RunningFrontend | undefined;
  let web: FrontendClient;
  const accounts = (users: Record<string, string>) => Object.entries(users).map(([user, password]) => ({ user, password: hashPassword(password) }));

  const writeConfig = (users: Record<string, string>) => writeFileSync(file, `${JSON.stringify({ database, operator: { accounts: accounts(users) } }, null, 2)}\n`);
  const boot = async (users: Record<string, string>) => {
    writeConfig(users);
    fe = await start(level1Config(f, { database, operator: { port: 0, accounts: accounts(users), sessionSecret: SECRET, accountsFile: file } }));
    web?.close();
    web = new FrontendClient(fe.operator.url!, { ca: f.pki.ca.certPem });
  };
  const login = async (user: string, password: string) => {
    const r = await web.raw("POST", "/login", `user=${user}&password=${encodeURIComponent(password)}`, { "content-type": "application/x-www-form-urlencoded" });
    return { status: r.status, cookie: /console_session=([^;]+)/.exec(String(r.headers["set-cookie"] ?? ""))?.[1] };
  };
  const status = async (token: string | undefined) => (await web.raw("GET", "/metrics", undefined, { cookie: `console_session=${token}` })).status;

  before(async () => {
    f = await getFixture();
    database = level1Config(f).database;
    file = path.join(f.dir, `sessions-${process.pid}-${Date.now()}.json`);
    await boot({ alice: "alice password", bob: "bob password", carol: "carol password" });
  });
  after(async () => {
    web?.close();
    await fe?.close();
  });

  it("logout ends the session: the same cookie is refused afterwards", async () => {
    const { cookie } = await login("alice", "alice password");
    assert.equal(await status(cookie), 200);
    const out = await web.raw("POST", "/logout", "", { cookie: `console_session=${cookie}`, "content-type": "application/x-www-form-urlencoded" });
    assert.equal(out.status, 303);
    assert.equal(await status(cookie), 401);
  });

  it("refuses a token the server never issued, and a stored session of an operator who never existed", async () => {
    assert.equal(await status(randomBytes(32).toString("base64url")), 401);
    const token = randomBytes(32).toString("base64url");
    await fe!.store.operatorSessions.createSession(createHash("sha256").update(token).digest("hex"), "ghost", Date.now(), Date.now() + 3600_000);
    assert.equal(await status(token), 401);
  });

  it("operator-passwd ends the operator's sessions, and only the new password logs in", async () => {
    const { cookie } = await login("alice", "alice password");
    const other = await login("carol", "carol password");
    assert.equal(await status(cookie), 200);
    const r = await cli(["operator-passwd", "--config", file, "--user", "alice"], "alice's new password");
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await status(cookie), 401);
    assert.equal(await status(other.cookie), 200, "another operator's session goes on");
    await until("the new password works", async () => (await login("alice", "alice's new password")).status === 303);
    assert.equal((await login("alice", "alice password")).status, 401);
  });

  it("operator-remove ends the operator's sessions and the account", async () => {
    const { cookie } = await login("bob", "bob password");
    assert.equal(await status(cookie), 200);
    const r = await cli(["operator-remove", "--config", file, "--user", "bob"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await status(cookie), 401);
    await until("bob can no longer log in", async () => (await login("bob", "bob password")).status === 401);
  });

  it("after a restart with the same sessionSecret, a deleted account's session is refused and others survive", async () => {
    const alice = await login("alice", "alice's new password");
    const carol = await login("carol", "carol password");
    assert.equal(await status(alice.cookie), 200);
    await fe!.close();
    // alice deleted from the file by hand while the server was down: her session row is still in the database.
    await boot({ carol: "carol password" });
    assert.equal(await status(alice.cookie), 401);
    assert.equal(await status(carol.cookie), 200, "sessions outlive a restart");
  });
});
