import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { countsOf, runSuites } from "../../../tools/rigs/test-all/suites.js";

// `npm test` must run every suite even when one fails, and say which failed: real child processes, one failing.

function collector() {
  let text = "";
  const stream = new Writable({ write(chunk, _encoding, done) { text += String(chunk); done(); } });
  return { stream, text: () => text };
}

const node = (script: string) => ({ command: process.execPath, args: ["-e", script] });

describe("npm test (test-all)", function () {
  this.timeout(60_000);

  it("runs the suites after a failing one, prints a line per suite and a closing count", async () => {
    const out = collector();
    const results = await runSuites([
      { name: "first", ...node(`console.log("  3 passing"); console.log("  1 failing"); process.exit(1)`) },
      { name: "second", ...node(`console.log("xs: 5 passed, 0 failed")`) },
      { name: "third", ...node(`process.kill(process.pid, "SIGTERM")`) },
    ], out.stream);
    assert.deepEqual(results.map((r) => [r.name, r.ok]), [["first", false], ["second", true], ["third", false]]);
    const text = out.text();
    assert.match(text, /✘ first +FAILED \(exit 1\): 3 passing, 1 failing/);
    assert.match(text, /✔ second +ok: 5 passed, 0 failed/);
    assert.match(text, /✘ third +FAILED \(SIGTERM\)/);
    assert.match(text, /\n1 passed, 2 failed\n$/);
  });

  it("streams each suite's own output through", async () => {
    const out = collector();
    await runSuites([{ name: "talk", ...node(`console.log("hello from the suite"); console.error("and stderr")`) }], out.stream);
    assert.match(out.text(), /hello from the suite/);
    assert.match(out.text(), /and stderr/);
    assert.match(out.text(), /\n1 passed, 0 failed\n$/);
  });

  it("reads the last counts a suite printed", () => {
    assert.equal(countsOf("  1 passing\n...\n  812 passing (10m)\n  2 failing\n  4 pending\n"), "812 passing, 2 failing, 4 pending");
    assert.equal(countsOf("xs: 1 passed, 0 failed\nxs: 217 passed, 3 failed\n"), "217 passed, 3 failed");
    assert.equal(countsOf("Found 2 errors."), undefined);
  });

  it("fails a command that cannot start", async () => {
    const out = collector();
    const [r] = await runSuites([{ name: "missing", command: "/nonexistent/tool", args: [] }], out.stream);
    assert.equal(r!.ok, false);
    assert.match(out.text(), /0 passed, 1 failed/);
  });
});
