/**
 * `npm run fuzz [-- --inputs N] [--node-only|--xs-only]`: feeds N inputs (default 1,000,000) to every parser of
 * outside bytes, on Node and then inside the XS engine, and prints the counts and every crash (an untyped error),
 * hang (a promise that never settles) or target that never finishes. Exit 1 on any finding.
 */
import { build } from "esbuild";
import { spawn } from "node:child_process";
import { mkdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { fuzz, fuzzTargets, type FuzzReport } from "./targets";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
const { values } = parseArgs({ options: { inputs: { type: "string" }, "node-only": { type: "boolean" }, "xs-only": { type: "boolean" } } });
const inputs = Number(values.inputs ?? 1_000_000);
if (!Number.isInteger(inputs) || inputs <= 0) {
  console.error("--inputs takes a positive whole number");
  process.exit(2);
}

let findings = 0;
function print(engine: string, r: FuzzReport): void {
  findings += r.findingCount;
  console.log(JSON.stringify({ engine, target: r.name, inputs: r.inputs, accepted: r.accepted, typedErrors: r.typedErrors, findings: r.findingCount,
    seconds: +(r.ms / 1000).toFixed(1) }));
  for (const f of r.findings) console.log(`  ${f.kind}: ${f.message.split("\n")[0]} (input ${f.input || "empty"})`);
}

if (!values["xs-only"]) {
  for (const [index, target] of fuzzTargets().entries()) print("node", await fuzz(target, inputs, 0xf00d + index, () => performance.now()));
}

if (!values["node-only"]) {
  const out = path.join(root, "build", "fuzz");
  mkdirSync(out, { recursive: true });
  const bundle = path.join(out, "fuzz-xs.js");
  await build({
    entryPoints: [path.join(root, "tools/rigs/fuzz/xs-entry.ts")], outfile: bundle, bundle: true, format: "iife", platform: "neutral",
    target: "es2022", logLevel: "silent", mainFields: ["module", "main"], define: { FUZZ_INPUTS: String(inputs) },
  });
  const expected = fuzzTargets().length;
  let seen = 0;
  const child = spawn(process.execPath, [path.join(root, "tools/rigs/fuzz/xs-worker.mjs"), bundle], { stdio: ["ignore", "pipe", "inherit"] });
  let buffer = "";
  child.stdout.on("data", (chunk: Buffer) => {
    buffer += chunk.toString();
    for (let nl = buffer.indexOf("\n"); nl >= 0; nl = buffer.indexOf("\n")) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      if (!line.startsWith("{")) continue;
      seen++;
      print("xs", JSON.parse(line) as FuzzReport);
    }
  });
  const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
  if (code !== 0 || seen !== expected) {
    console.log(`xs: the run ended (exit ${code}) after ${seen} of ${expected} targets: a crash or a hang inside XS`);
    findings++;
  }
}

console.log(`fuzz: ${findings} findings`);
process.exit(findings ? 1 : 0);
