// The one command for the Moddable Linux build (tools/moddable/main.ts). Without an SDK it must say what to install
// and exit 2; with one ($MODDABLE and its built Linux tools) the app must build. CI has no SDK: that part skips.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, existsSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { MODDABLE_MISSING, moddableTools } from "../../tools/moddable/sdk";

const ROOT = path.resolve(import.meta.dirname, "../..");

describe("npm run moddable -- lin", function () {
  this.timeout(900_000);

  it("without $MODDABLE says what to install and exits 2", () => {
    const env = { ...process.env };
    delete env.MODDABLE;
    const r = spawnSync(process.execPath, ["--import", "tsx", path.join(ROOT, "tools/moddable/main.ts"), "lin"], { cwd: ROOT, env, encoding: "utf8" });
    assert.equal(r.status, 2);
    assert.match(r.stderr, /Moddable SDK not found: install it per https:\/\/github\.com\/Moddable-OpenSource/);
  });

  it("builds hosts/lin with the installed SDK", function () {
    const bin = moddableTools();
    if (!bin) {
      console.log(`      skipped: ${MODDABLE_MISSING}`);
      this.skip();
    }
    const out = mkdtempSync(path.join(os.tmpdir(), "moddable-lin-"));
    try {
      const r = spawnSync(path.join(bin!, "mcconfig"), ["-m", "-p", "lin", "-t", "build", "-o", out, path.join(ROOT, "hosts/lin/manifest.json")],
        { cwd: ROOT, encoding: "utf8", env: { ...process.env, PATH: `${bin}:${path.join(ROOT, "node_modules/.bin")}:${process.env.PATH}` }, maxBuffer: 64 << 20 });
      assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`.slice(-3000));
      assert.ok(existsSync(path.join(out, "bin", "lin", "mc", "release", "lin", "mc.so")));
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});
