/**
 * docs/operate.md, run: every block marked `walkthrough-…` in the guide is executed in order, as an operator would,
 * with the guide's folders moved into a temporary one. On SQLite and on PostgreSQL (a throwaway cluster): the trial
 * setup, the configuration example (secrets from the environment and a file), the least-privilege roles and the
 * migration by the owner, the front-end started exactly as the systemd unit says, a purchase and a status report,
 * the backup, a purchase after it, the restore, and the restored front-end answering for the first purchase only.
 */
import assert from "node:assert/strict";
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { FrontendClient, FrontendHttpError } from "../../../tools/rigs/frontend/index";
import { readDevelopmentMasterKeys } from "../../../tools/frontend/index";
import { VirtualCard, issueCard } from "../../../tools/sim/cardsim/index";
import { purchase } from "../frontend/support";
import { postgresCluster, postgresSkipReason, type Cluster } from "../frontend/postgres-support";

const REPO = path.resolve(import.meta.dirname, "../../..");
const GUIDE = readFileSync(path.join(REPO, "docs/operate.md"), "utf8");
const TERMINAL = "001122334455";

/** The guide's block with this tag (```lang tag), its folders moved under `root`. */
function block(tag: string, root: string, pg?: Cluster): string {
  const m = new RegExp("```[a-z]+ " + tag + "\\n([\\s\\S]*?)```").exec(GUIDE);
  assert.ok(m, `docs/operate.md has no block ${tag}`);
  let text = m[1]!
    .replaceAll("/etc/transit-frontend", path.join(root, "etc"))
    .replaceAll("/var/lib/transit-frontend", path.join(root, "var"))
    .replaceAll("/var/backups/transit-frontend", path.join(root, "backups"))
    .replaceAll("/opt/transit-frontend", REPO);
  if (pg) text = text.replaceAll("127.0.0.1:5432", `127.0.0.1:${pg.port}`);
  return text;
}

function sh(script: string, env: NodeJS.ProcessEnv = {}): string {
  return execFileSync("bash", ["-euo", "pipefail", "-c", script], { cwd: REPO, env: { ...process.env, ...env }, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

function psql(pg: Cluster, database: string, user: string, sql: string, vars: Record<string, string> = {}): void {
  execFileSync("psql", ["-X", "-q", "-v", "ON_ERROR_STOP=1", ...Object.entries(vars).flatMap(([k, v]) => ["-v", `${k}=${v}`]),
    "-h", "127.0.0.1", "-p", String(pg.port), "-U", user, "-d", database], { input: sql, stdio: ["pipe", "pipe", "pipe"] });
}

/** The systemd unit's service: its ExecStart, run with its Environment= and EnvironmentFile= and WorkingDirectory=. */
function startAsUnit(root: string): Promise<{ child: ChildProcess; url: string }> {
  const unit = block("walkthrough-systemd", root);
  const value = (key: string) => unit.split("\n").filter((l) => l.startsWith(`${key}=`)).map((l) => l.slice(key.length + 1));
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const file of value("EnvironmentFile")) {
    for (const line of readFileSync(file, "utf8").split("\n")) {
      const eq = line.indexOf("=");
      if (eq > 0 && !line.startsWith("#")) env[line.slice(0, eq)] = line.slice(eq + 1);
    }
  }
  for (const pair of value("Environment")) env[pair.slice(0, pair.indexOf("="))] = pair.slice(pair.indexOf("=") + 1);
  const [command, ...args] = value("ExecStart")[0]!.split(/\s+/);
  const child = spawn(command!, args, { cwd: value("WorkingDirectory")[0], env, stdio: ["ignore", "pipe", "pipe"] });
  return new Promise((resolve, reject) => {
    let out = "";
    let err = "";
    child.stderr!.on("data", (d: Buffer) => { err += d.toString(); });
    child.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      const line = out.split("\n").find((l) => l.startsWith('{"event":"listening"'));
      if (line) resolve({ child, url: (JSON.parse(line) as { url: string }).url });
    });
    child.on("exit", (code) => reject(new Error(`the front-end exited with ${code}: ${err}`)));
  });
}

function stopped(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once("exit", () => resolve());
    child.kill("SIGTERM");
  });
}

function terminalClient(root: string, url: string): FrontendClient {
  const pki = path.join(root, "etc", "trial", "pki");
  return new FrontendClient(url, {
    ca: readFileSync(path.join(pki, "ca.crt.pem"), "utf8"),
    cert: readFileSync(path.join(pki, "terminals", `${TERMINAL}.crt.pem`), "utf8"),
    key: readFileSync(path.join(pki, "terminals", `${TERMINAL}.key.pem`), "utf8"),
  });
}

function statusReport(sequence: number) {
  return {
    terminalId: TERMINAL, firmware: "walkthrough", reason: "interval", sequence, sentAt: Date.now(), uptimeMs: 1000,
    journal: { usedBlocks: 1, blocks: 64, liveRecords: 0, fillPercent: 1 }, pendingCompletions: 0, unresolved: 0,
    counts: { approvals: 1, declines: {}, tears: 0, readerFaults: 0, frontendErrors: 0 }, config: { version: 0, refused: [] },
  };
}

async function expectUnknown(client: FrontendClient, purchaseId: string): Promise<void> {
  await assert.rejects(client.purchase(purchaseId), (e: unknown) => e instanceof FrontendHttpError && e.status === 404);
}

for (const engine of ["sqlite", "postgres"] as const) {
  describe(`docs/operate.md walkthrough [${engine}]`, function () {
    this.timeout(600_000);
    let root = "";
    let pg: Cluster | undefined;
    let running: ChildProcess | undefined;
    const pgEnv = (): NodeJS.ProcessEnv => (pg ? { PGHOST: "127.0.0.1", PGPORT: String(pg.port), PGPASSWORD: "owner-secret" } : {});

    before(async function () {
      if (engine === "postgres") {
        pg = (await postgresCluster()) ?? undefined;
        if (!pg) {
          console.log(`      skipped: ${postgresSkipReason()}`);
          this.skip();
        }
      }
      root = mkdtempSync(path.join(tmpdir(), `operate-${engine}-`));
    });
    after(async () => {
      if (running) await stopped(running);
      if (root) rmSync(root, { recursive: true, force: true });
    });

    it("runs the guide: setup, configuration, unit, purchase, backup, restore", async () => {
      sh(block("walkthrough-setup", root));
      // The configuration example as it stands, on free ports (the guide's 8443 and 8445 may be taken here).
      const config = JSON.parse(block("walkthrough-config", root)) as { listen: { host: string; port: number }; operator: { port: number } };
      config.listen.host = "127.0.0.1";
      config.listen.port = 0;
      config.operator.port = 0;
      writeFileSync(path.join(root, "etc", "frontend.json"), JSON.stringify(config, null, 2));
      const envFile = path.join(root, "etc", "frontend.env");
      const database = (name: string) => `postgres://transit_frontend@127.0.0.1:${pg!.port}/${name}`;
      if (pg) {
        psql(pg, "postgres", "postgres", block("walkthrough-postgres-roles", root, pg), { owner_password: "owner-secret", frontend_password: "frontend-secret" });
        psql(pg, "postgres", "postgres", block("walkthrough-postgres-database", root, pg));
        sh(block("walkthrough-postgres-migrate", root, pg), pgEnv());
        psql(pg, "transit", "transit_owner", block("walkthrough-postgres-grants", root, pg));
        const pgpass = path.join(root, "etc", "pgpass");
        writeFileSync(pgpass, `127.0.0.1:${pg.port}:*:transit_frontend:frontend-secret\n`);
        chmodSync(pgpass, 0o600);
        writeFileSync(envFile, `DATABASE_URL=${database("transit")}\nPGPASSFILE=${pgpass}\n`);
      } else {
        writeFileSync(envFile, `DATABASE_URL=${path.join(root, "var", "frontend.sqlite")}\n`);
      }

      sh(block("walkthrough-keys", root), pgEnv());
      const first = await startAsUnit(root);
      running = first.child;
      {
        const masterKeys = readDevelopmentMasterKeys(path.join(root, "etc", "trial", "issuer-keys.json"), { keyIndex: 1, keyVersion: 1, algorithm: "3des" });
        const card = new VirtualCard(issueCard([{ layout: "tunion", algorithm: "3des", asn: "03100000000000000777", cityCode: "1000", masterKeys, balance: 10_000 }]));
        const client = terminalClient(root, first.url);
        let kept: string;
        try {
          // A purchase, and a status report (the fleet tables: inserted, updated, and the history trimmed).
          kept = (await purchase(client, card, "tunion", 150)).answer.purchaseId;
          const report = await client.raw("POST", `/v1/terminals/${TERMINAL}/status`, statusReport(1));
          assert.ok(report.status < 300, `status report: ${report.status} ${report.text}`);
          // The backup, taken while the front-end runs; then a purchase the backup does not hold.
          sh(block(engine === "sqlite" ? "walkthrough-backup-sqlite" : "walkthrough-backup-postgres", root, pg), pgEnv());
          const lost = (await purchase(client, card, "tunion", 250)).answer.purchaseId;
          assert.equal((await client.purchase(lost)).status, "completed");
          await stopped(first.child);
          // The restore, as the guide says; the front-end started again on it knows the first purchase only.
          if (pg) {
            psql(pg, "postgres", "postgres", block("walkthrough-postgres-database", root, pg).replace(/\btransit\b/g, "transit_restored"));
            sh(block("walkthrough-restore-postgres", root, pg), pgEnv());
            psql(pg, "transit_restored", "transit_owner", block("walkthrough-postgres-grants", root, pg));
            writeFileSync(envFile, readFileSync(envFile, "utf8").replace(database("transit"), database("transit_restored")));
          } else {
            sh(block("walkthrough-restore-sqlite", root));
          }
          const again = await startAsUnit(root);
          running = again.child;
          const restored = terminalClient(root, again.url);
          try {
            assert.equal((await restored.purchase(kept)).status, "completed");
            await expectUnknown(restored, lost);
            const after = await restored.raw("POST", `/v1/terminals/${TERMINAL}/status`, statusReport(2));
            assert.ok(after.status < 300, `status report after the restore: ${after.status}`);
          } finally {
            restored.close();
          }
        } finally {
          client.close();
        }
      }
    });

    it("the service role cannot create or drop tables", async function () {
      if (!pg) this.skip();
      assert.throws(() => psql(pg!, "transit", "transit_frontend", "CREATE TABLE intruder (x int);"), /permission denied/);
      assert.throws(() => psql(pg!, "transit", "transit_frontend", "DROP TABLE purchases;"), /must be owner|permission denied/);
      assert.throws(() => psql(pg!, "transit", "transit_frontend", "DELETE FROM purchases;"), /permission denied/);
    });

    it("the systemd unit passes systemd-analyze verify", function () {
      let analyze = true;
      try {
        execFileSync("systemd-analyze", ["--version"], { stdio: "ignore" });
      } catch {
        analyze = false;
      }
      if (!analyze) {
        console.log("      skipped: systemd-analyze not found (apt-get install -y systemd)");
        this.skip();
      }
      const unit = path.join(root, "transit-frontend.service");
      writeFileSync(unit, block("walkthrough-systemd", root).replace(/^(User|Group)=.*$/gm, ""));
      const out = execFileSync("sh", ["-c", `systemd-analyze verify --man=no ${unit} 2>&1 || true`], { encoding: "utf8" });
      const problems = out.split("\n").filter((l) => l.includes(path.basename(unit)) && !/network-online|postgresql\.service|multi-user/.test(l));
      assert.deepEqual(problems, [], out);
    });
  });
}
