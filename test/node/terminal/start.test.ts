import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { hasSocat, PTY_INSTALL_HINT } from "../../../hosts/node/pty";
import { childrenNamed } from "../proc";
import { until } from "../until";

// `npm start` with no arguments: the whole system on this machine, ending as scripted.

const root = path.resolve(import.meta.dirname, "../../..");
const run = (...args: string[]) => spawnSync(process.execPath, ["--import", "tsx", path.join(root, "tools/sim/simulation/main.ts"), ...args], { cwd: root, encoding: "utf8", timeout: 120_000 });

describe("npm start (the simulated system)", function () {
  this.timeout(150_000);

  it("--json prints one object per transaction and nothing else, each ending as scripted", () => {
    const r = run("--json");
    assert.equal(r.status, 0, r.stderr + r.stdout);
    const lines = r.stdout.trim().split("\n").map((l) => JSON.parse(l));
    assert.deepEqual(lines.map((l) => [l.result, l.reason]), [
      ["approved", null], ["approved", null], ["approved", null], ["declined", "insufficient-balance"], ["declined", "card-expired"],
    ]);
    assert.deepEqual(lines.map((l) => l.level), [1, 2, 1, null, null]);
    for (const l of lines.slice(0, 3)) {
      assert.equal(l.balanceBefore - l.balanceAfter, l.amount);
      assert.match(l.tac, /^[0-9A-F]{8}$/);
      assert.ok(Number.isInteger(l.tsn) && l.tsn > 0);
      assert.equal(l.timings.roundTrips, 1);
    }
    assert.equal(lines[2].timings.handshakes, 0, "the level-1 connection was warm before the tap");
  });

  it("prints the decoded APDU trace, the front-end calls and a summary; the in-memory link works without socat", () => {
    const r = run("--link", "memory");
    assert.equal(r.status, 0, r.stderr + r.stdout);
    for (const text of ["SELECT AID A000000632010105", "READ BINARY SFI 0x15", "INITIALIZE FOR PURCHASE", "front-end (level 1): POST /v1/purchases",
      "front-end (level 2): POST /v1/purchases", "DEBIT FOR PURCHASE", "9401 insufficient balance", "in-memory lines", "Summary: 5 of 5 purchases ended as scripted"]) {
      assert.ok(r.stdout.includes(text), `missing "${text}"`);
    }
  });

  it("--help documents the options; a bad option exits 2", () => {
    const help = run("--help");
    assert.equal(help.status, 0);
    for (const option of ["--json", "--strict", "--link", "--latency", "--pn532", "--frontend", "--cert", "--key", "--ca", "--terminal-id", "--controller", "--journal"]) {
      assert.ok(help.stdout.includes(option), `--help does not mention ${option}`);
    }
    const bad = run("--bogus");
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /bogus/);
    assert.equal(run("--pn532", "/dev/null").status, 2, "--pn532 without its companions");
  });

  it("ends cleanly when its reader goes away (--json | head -2): exit 0, no EPIPE crash, no socat left running", async function () {
    if (!hasSocat()) {
      console.log(`      (skipped: socat not installed; ${PTY_INSTALL_HINT})`);
      this.skip();
    }
    const child = spawn(process.execPath, ["--import", "tsx", path.join(root, "tools/sim/simulation/main.ts"), "--json", "--link", "pty"],
      { cwd: root, stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => { stderr += d.toString(); });
    const exited = new Promise<number | null>((ok) => child.once("exit", (code) => ok(code)));
    try {
      let stdout = "";
      const firstLine = new Promise<void>((ok) => child.stdout.on("data", (d: Buffer) => { stdout += d.toString(); if (stdout.includes("\n")) ok(); }));
      await Promise.race([firstLine, exited]);
      assert.ok(stdout.includes("\n"), `no transaction printed: ${stderr}`);
      const socats = childrenNamed(child.pid!, "socat");
      assert.equal(socats.length, 2, "the simulation runs its two pty pairs through socat");
      child.stdout.destroy(); // the reader goes away, as head does after its lines
      assert.equal(await exited, 0, stderr);
      assert.doesNotMatch(stderr, /EPIPE|Error/);
      await until("the socat children to end", () => socats.every((pid) => !existsSync(`/proc/${pid}`)), 5000);
    } finally {
      if (child.exitCode === null) child.kill("SIGKILL");
    }
  });
});
