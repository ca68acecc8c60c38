// Runs bundled device tests inside the XS engine. Plain JavaScript on purpose: xsnap's Node API wants SES
// (@endo/init), which hardens this process's globals, so it lives in a child process of its own.
import "@endo/init";
import { xsnap } from "@agoric/xsnap";
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

const decoder = new TextDecoder();
let passed = 0;
let failed = 0;
const figures = [];

for (const bundle of process.argv.slice(2)) {
  const name = path.basename(bundle, ".js");
  let results = [];
  let done = false;
  const worker = await xsnap({
    os: os.type(), spawn, fs: { ...fs, ...fs.promises }, name: `xs-${name}`, stdout: "inherit", stderr: "inherit",
    meteringLimit: 0,
    handleCommand: async (bytes) => {
      const message = JSON.parse(decoder.decode(bytes));
      if (message.kind === "result") results.push(message);
      if (message.kind === "done") done = true;
      return new Uint8Array(0);
    },
  });
  console.log(`\n  ${name} (inside XS)`);
  let meter;
  try {
    const outcome = await worker.evaluate(fs.readFileSync(bundle, "utf8"));
    meter = outcome.meterUsage;
  } catch (error) {
    results.push({ title: "load", ok: false, error: String(error && error.message || error) });
  }
  if (!done) results.push({ title: "run", ok: false, error: "tests did not finish: a promise never settled inside XS" });
  await worker.close().catch(() => {});
  for (const r of results) {
    if (r.ok) {
      passed++;
      console.log(`    ✔ ${r.title}`);
    } else {
      failed++;
      console.log(`    ✘ ${r.title}\n      ${String(r.error).split("\n").join("\n      ")}`);
    }
  }
  if (meter) figures.push({ file: name, compute: meter.compute, heapCount: meter.currentHeapCount });
}

console.log("\n  XS meter per test file (compute = deterministic count of XS work):");
for (const f of figures) console.log(`    ${f.file}: compute ${f.compute}, heap count ${f.heapCount}`);
console.log(`\nxs: ${passed} passed, ${failed} failed`);
// Zero tests is a selection mistake (an empty file, a wrong path), not a pass.
if (!passed && !failed) console.error("xs: no tests ran");
process.exit(failed || !passed ? 1 : 0);
