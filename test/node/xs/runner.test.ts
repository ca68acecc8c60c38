import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

// The XS run is what proves device code has no Node-isms, so it must fail loudly when a module has one.

const root = path.resolve(import.meta.dirname, "../../..");

/** Writes `files` to a fresh folder and runs the XS runner on it; `args(dir)` gives the runner's arguments. */
function runXs(files: { [name: string]: string }, args: (dir: string) => string[] = (dir) => ["--dir", dir]) {
  const dir = mkdtempSync(path.join(tmpdir(), "xs-runner-"));
  try {
    for (const [name, text] of Object.entries(files)) writeFileSync(path.join(dir, name), text);
    const r = spawnSync(process.execPath, ["--import", "tsx", path.join(root, "test/xs/run.ts"), ...args(dir)], { cwd: root, encoding: "utf8" });
    return { status: r.status, output: r.stdout + r.stderr };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const assertImport = `import * as assert from ${JSON.stringify(path.join(root, "test/lib/assert"))};`;

describe("XS test runner", function () {
  this.timeout(60_000);

  it("runs a device test inside XS and reports it with its meter", () => {
    const r = runXs({ "good.test.ts": `${assertImport}\ndescribe("ok", () => { it("adds", () => assert.equal(1 + 1, 2)); it("awaits", async () => { await Promise.resolve(); }); });` });
    assert.equal(r.status, 0, r.output);
    assert.match(r.output, /✔ ok > adds/);
    assert.match(r.output, /xs: 2 passed, 0 failed/);
    assert.match(r.output, /good\.test: compute \d+/);
  });

  it("fails a file that imports a Node module", () => {
    const r = runXs({ "node.test.ts": `import { readFileSync } from "node:fs";\ndescribe("n", () => { it("reads", () => { readFileSync("/etc/hostname"); }); });` });
    assert.notEqual(r.status, 0);
    assert.match(r.output, /cannot be bundled for XS/);
  });

  it("fails a test that uses a Node global XS lacks", () => {
    const r = runXs({ "global.test.ts": `describe("g", () => { it("uses process", () => { (globalThis as any).process.env.HOME; }); it("uses setTimeout", async () => { await new Promise((ok) => (globalThis as any).setTimeout(ok, 1)); }); });` });
    assert.notEqual(r.status, 0);
    assert.match(r.output, /xs: 0 passed, 2 failed/);
  });

  it("fails a test whose promise never settles instead of hanging", () => {
    const r = runXs({ "hang.test.ts": `describe("h", () => { it("waits for ever", () => new Promise(() => {})); });` });
    assert.notEqual(r.status, 0);
    assert.match(r.output, /did not finish/);
  });

  it("runs the tests of a file given by path, and only that file", () => {
    const r = runXs({
      "one.test.ts": `${assertImport}\ndescribe("one", () => { it("runs", () => assert.equal(2 * 3, 6)); });`,
      "two.test.ts": `describe("two", () => { it("must not run", () => { throw new Error("ran"); }); });`,
    }, (dir) => [path.join(dir, "one.test.ts")]);
    assert.equal(r.status, 0, r.output);
    assert.match(r.output, /✔ one > runs/);
    assert.doesNotMatch(r.output, /two/);
    assert.match(r.output, /xs: 1 passed, 0 failed/);
  });

  it("fails a path whose tests fail", () => {
    const r = runXs({ "bad.test.ts": `describe("bad", () => { it("throws", () => { throw new Error("no"); }); });` },
      (dir) => [path.join(dir, "bad.test.ts")]);
    assert.notEqual(r.status, 0);
    assert.match(r.output, /xs: 0 passed, 1 failed/);
  });

  it("refuses a filter that matches no file instead of passing with zero tests", () => {
    const r = runXs({ "good.test.ts": `describe("g", () => { it("runs", () => {}); });` }, (dir) => ["--dir", dir, "no-such-name"]);
    assert.notEqual(r.status, 0);
    assert.match(r.output, /no test file in .* matches "no-such-name"/);
    assert.doesNotMatch(r.output, /passed/);
  });

  it("fails a file that declares no tests", () => {
    const r = runXs({ "empty.test.ts": `describe("e", () => {});` }, (dir) => [path.join(dir, "empty.test.ts")]);
    assert.notEqual(r.status, 0);
    assert.match(r.output, /xs: no tests ran/);
  });
});
