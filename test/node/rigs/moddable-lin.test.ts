// The one command for the Moddable Linux build (tools/rigs/moddable/main.ts). Without an SDK it must say what to install
// and exit 2; with one ($MODDABLE and its built Linux tools) the app must build and pass the shipped scenarios. CI has
// no SDK: that part skips.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import path from "node:path";
import { readFileSync } from "node:fs";
import { MODDABLE_MISSING, moddableTools } from "../../../tools/rigs/moddable/sdk";
import { tapToApproved } from "../../../tools/rigs/moddable/figures";
import type { HarnessRun } from "../../../tools/rigs/harness/runner";

const ROOT = path.resolve(import.meta.dirname, "../../..");

describe("npm run moddable -- lin", function () {
  this.timeout(900_000);

  it("without $MODDABLE says what to install and exits 2", () => {
    const env = { ...process.env };
    delete env.MODDABLE;
    const r = spawnSync(process.execPath, ["--import", "tsx", path.join(ROOT, "tools/rigs/moddable/main.ts"), "lin"], { cwd: ROOT, env, encoding: "utf8" });
    assert.equal(r.status, 2);
    assert.match(r.stderr, /Moddable SDK not found: install it per https:\/\/github\.com\/Moddable-OpenSource/);
  });

  it("builds hosts/lin with the installed SDK and passes every shipped scenario on it", function () {
    const bin = moddableTools();
    if (!bin) {
      console.log(`      skipped: ${MODDABLE_MISSING}`);
      this.skip();
    }
    // The one command itself, into its own build directory (incremental after the first build).
    const r = spawnSync(process.execPath, ["--import", "tsx", path.join(ROOT, "tools/rigs/moddable/main.ts"), "lin"], { cwd: ROOT, encoding: "utf8", maxBuffer: 64 << 20 });
    assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`.slice(-3000));
    const figures = JSON.parse(readFileSync(path.join(ROOT, "harness-results/moddable-lin/figures.json"), "utf8")) as {
      moddable: { scenarios: number; passed: number }; tlsHandshakeMs: { all: number[] };
      xsMemoryBytes: { purchasePeak?: { stack: number }; idleLive?: { slots: number } };
    };
    assert.ok(figures.moddable.scenarios >= 10 && figures.moddable.passed === figures.moddable.scenarios, JSON.stringify(figures.moddable));
    assert.ok(figures.tlsHandshakeMs.all.length >= 1);
    assert.ok((figures.xsMemoryBytes.purchasePeak?.stack ?? 0) > 0);
    // The kept state, after a collection at idle: below the slot heap (4,096 slots of 32 bytes), or something leaks.
    const live = figures.xsMemoryBytes.idleLive?.slots ?? 0;
    assert.ok(live > 0 && live < 4096 * 32, `idle-live slots ${live}`);
  });

  it("the ESP32 and Linux builds give XS the same creation sizes (chunks scaled to 64 bits), with room for the app's stack", () => {
    const creation = (file: string) => (JSON.parse(readFileSync(path.join(ROOT, file), "utf8")) as { creation: Record<string, unknown> }).creation;
    const esp32 = creation("manifest.json");
    const lin = creation("hosts/lin/manifest.json");
    // Except the chunk heap: a 64-bit build's chunks hold 32-byte slots where the ESP32's hold 16-byte ones (arrays,
    // closures' environments), so the Linux build gets twice the bytes; with the ESP32's 48 KiB it ran out during a
    // cold-route handshake ("memory full").
    const chunk = (c: Record<string, unknown>) => (c.chunk as { initial: number }).initial;
    assert.equal(chunk(lin), 2 * chunk(esp32));
    assert.deepEqual({ ...lin, main: undefined, chunk: undefined }, { ...esp32, main: undefined, chunk: undefined });
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
