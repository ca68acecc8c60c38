import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import path from "node:path";

const root = path.resolve(import.meta.dirname, "../..");
const run = (...args: string[]) => spawnSync(process.execPath, ["--import", "tsx", path.join(root, "tools/demo/main.ts"), ...args], { cwd: root, encoding: "utf8" });

describe("npm start (virtual cards against the purse cryptography)", function () {
  this.timeout(30_000);

  it("--json prints one object per transaction, each ending as scripted", () => {
    const r = run("--json");
    assert.equal(r.status, 0, r.stderr);
    const lines = r.stdout.trim().split("\n").map((l) => JSON.parse(l));
    assert.deepEqual(lines.map((l) => [l.result, l.reason]), [
      ["approved", undefined], ["approved", undefined], ["declined", "insufficient-balance"], ["declined", "card-expired"],
    ]);
    assert.equal(lines[0].balanceBefore - lines[0].balanceAfter, lines[0].amount);
    assert.equal(lines[1].application, "cityunion");
    assert.match(lines[0].tac, /^[0-9A-F]{8}$/);
  });

  it("prints the decoded APDU exchange and a summary", () => {
    const r = run();
    assert.equal(r.status, 0, r.stderr);
    for (const text of ["SELECT AID A000000632010105", "READ BINARY SFI 0x15", "INITIALIZE FOR PURCHASE", "DEBIT FOR PURCHASE", "MAC2 verified, TAC verified", "9401 insufficient balance", "4 of 4 purchases ended as scripted"]) {
      assert.ok(r.stdout.includes(text), `missing "${text}"`);
    }
  });

  it("refuses an unknown option with usage and exit code 2", () => {
    const r = run("--bogus");
    assert.equal(r.status, 2);
    assert.match(r.stderr, /unknown option --bogus/);
  });
});
