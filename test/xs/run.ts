// Bundles the device-module tests (each file with the XS harness) and runs them inside the real XS engine.
// A device module that imports Node (node:*, or a package that does) fails here at bundling; one that uses a global
// XS lacks (process, Buffer, setTimeout...) fails when the test runs.
import { build } from "esbuild";
import { spawnSync } from "node:child_process";
import { mkdirSync, readdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const out = path.join(root, "build", "xs-tests");
mkdirSync(out, { recursive: true });

// Usage: run.ts [--dir <folder of *.test.ts>] [name filters...]
const argv = process.argv.slice(2);
const dirAt = argv.indexOf("--dir");
const testDir = dirAt >= 0 ? path.resolve(argv.splice(dirAt, 2)[1]!) : path.join(root, "test", "device");
const only = argv;
const files = readdirSync(testDir)
  .filter((f) => f.endsWith(".test.ts"))
  .filter((f) => !only.length || only.some((o) => f.includes(o)))
  .sort();

const bundles: string[] = [];
let broken = 0;
for (const file of files) {
  const entry = path.join(out, file.replace(/\.ts$/, ".entry.ts"));
  writeFileSync(entry, [
    `import { runAll } from ${JSON.stringify(path.join(root, "test/xs/harness.ts"))};`,
    `import ${JSON.stringify(path.join(testDir, file))};`,
    "runAll();",
  ].join("\n"));
  const bundle = path.join(out, file.replace(/\.ts$/, ".js"));
  try {
    await build({
      entryPoints: [entry], outfile: bundle, bundle: true, format: "iife", platform: "neutral",
      target: "es2022", logLevel: "silent", mainFields: ["module", "main"],
    });
    bundles.push(bundle);
  } catch (error) {
    broken++;
    console.error(`✘ ${file} cannot be bundled for XS (device code must not use Node):\n${(error as Error).message}`);
  }
}

const child = spawnSync(process.execPath, [path.join(root, "test/xs/worker.mjs"), ...bundles], { stdio: "inherit" });
if (broken) console.log(`xs: ${broken} test file(s) could not be bundled`);
process.exit(child.status || (broken ? 1 : 0));
