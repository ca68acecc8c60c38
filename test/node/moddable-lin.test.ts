// The one command for the Moddable Linux build (tools/moddable/main.ts). Without an SDK it must say what to install
// and exit 2; with one ($MODDABLE and its built Linux tools) the app must build. CI has no SDK: that part skips.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, existsSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { readFileSync } from "node:fs";
import { MODDABLE_MISSING, moddableTools } from "../../tools/moddable/sdk";
import { tapToApproved } from "../../tools/moddable/figures";
import type { HarnessRun } from "../../tools/harness/runner";

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

  it("the ESP32 and Linux builds give XS the same creation sizes, with room for the app's stack", () => {
    const creation = (file: string) => (JSON.parse(readFileSync(path.join(ROOT, file), "utf8")) as { creation: Record<string, unknown> }).creation;
    const esp32 = creation("manifest.json");
    const lin = creation("hosts/lin/manifest.json");
    assert.deepEqual({ ...lin, main: undefined }, { ...esp32, main: undefined });
    // On the SDK's runtime the app overflowed a 512-slot stack at start; a purchase's deepest is 674 slots (README).
    assert.ok((esp32.stack as number) >= 1024, `stack ${String(esp32.stack)}`);
  });

  it("tap-to-approved is read from the harness's stamped log: from the later of tap and pay to approved", () => {
    const run = { results: [
      { status: "passed", log: ["1.000 step 1: pay {}", '1.001 > {"type":"pay","amount":1}', "1.100 step 3: tap c", '1.350 < {"event":"approved","order":"A"}'] },
      { status: "passed", log: ["2.000 step 1: tap p", '2.200 > {"type":"pay","amount":1}', '2.300 < {"event":"declined"}', '2.900 < {"event":"approved"}'] },
      { status: "failed", log: ["3.000 step 1: tap c", '3.100 < {"event":"approved"}'] },
    ] } as unknown as HarnessRun;
    assert.deepEqual(tapToApproved(run), [250]);
  });
});
