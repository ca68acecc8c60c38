import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { liveConnection } from "./live-connection";
import { ensureDatabase } from "./postgres-support";
import {
  clientFor, describeEngines, getFixture, killed, launchFrontend, level1Config, purchase, T1, T2, tunionCard,
} from "./support";

const MAIN = path.resolve(import.meta.dirname, "../../../tools/frontend/main.ts");

function runCli(args: string[]): Promise<{ code: number | null; out: string; err: string; doneAt: number }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ["--import", "tsx", MAIN, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    let doneAt = 0;
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
      // The revocation is committed when the CLI prints it; closing the CLI's own store comes after.
      if (!doneAt && out.includes('"event":"revoked"')) doneAt = Date.now();
    });
    child.stderr.on("data", (d: Buffer) => { err += d.toString(); });
    child.on("exit", (code) => resolve({ code, out, err, doneAt: doneAt || Date.now() }));
  });
}

describeEngines("terminal revocation with --workers 2", function (engine) {
  this.timeout(180_000);

  it("closes every keep-alive connection of the revoked terminal within a second, refuses its next request, and others keep paying", async () => {
    const f = await getFixture();
    const config = level1Config(f, { log: { level: "warn" } });
    await ensureDatabase(config.database);
    const configPath = path.join(f.dir, `revocation-${engine}-${process.pid}.json`);
    writeFileSync(configPath, JSON.stringify(config));
    const { child, url } = await launchFrontend(configPath, ["--workers", "2"]);
    try {
      // Several connections each, so that both workers hold some (the primary deals them out in turn).
      const revoked = await Promise.all([1, 2, 3, 4].map(() => liveConnection(f, url, T1)));
      const others = await Promise.all([1, 2, 3, 4].map(() => liveConnection(f, url, T2)));
      const cli = await runCli(["revoke", "--config", configPath, "--terminal", T1, "--reason", "stolen vending machine"]);
      assert.equal(cli.code, 0, cli.err);
      const closed = await Promise.race([
        Promise.all(revoked.map((c) => c.closedAt)),
        new Promise<never>((_, reject) => setTimeout(() => reject(new Error("the revoked terminal's connections stayed open 10 s")), 10_000)),
      ]);
      const slowest = Math.max(...closed) - cli.doneAt;
      assert.ok(slowest < 1000, `the last connection closed ${slowest} ms after the revocation`);
      for (const c of others) assert.ok(!c.socket.destroyed && c.socket.readyState === "open", "another terminal's connection stays open");

      // Its requests on new connections are refused by every worker (each new client's connection goes to the next
      // worker in turn) within a second of the revocation, while another terminal pays.
      const t2 = clientFor(f, url, T2);
      try {
        const refusedEverywhere = async () => {
          const fresh = [1, 2, 3, 4].map(() => clientFor(f, url, T1));
          try {
            const answers = await Promise.all(fresh.map((c) => c.raw("GET", "/v1/health").catch(() => undefined)));
            return answers.every((a) => a?.status === 403 && (a.json as { error: { code: string } }).error.code === "TERMINAL_REVOKED");
          } finally {
            for (const c of fresh) c.close();
          }
        };
        while (!(await refusedEverywhere())) {
          assert.ok(Date.now() - cli.doneAt < 1000, "a new connection of the revoked terminal was still served a second after the revocation");
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
        assert.ok(await refusedEverywhere(), "and stays refused");
        const { completion } = await purchase(t2, tunionCard(f), "tunion", 150, T2);
        assert.equal(completion.status, "completed");
      } finally {
        t2.close();
        for (const c of others) c.socket.destroy();
      }
    } finally {
      await killed(child, "SIGTERM");
    }
  });
});
