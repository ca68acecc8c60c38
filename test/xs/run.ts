// Bundles the device-module tests (each file with the XS harness) and runs them inside the real XS engine.
// A device module that imports Node (node:*, or a package that does) fails here at bundling; one that uses a global
// XS lacks (process, Buffer, setTimeout...) fails when the test runs.
import { build } from "esbuild";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const out = path.join(root, "build", "xs-tests");
mkdirSync(out, { recursive: true });

// Usage: run.ts [--dir <folder of *.test.ts>] [test file paths | name filters...]
// An argument naming an existing file runs that file; any other argument keeps the files of the folder whose name
// contains it. A filter or path that selects nothing is an error: a run of zero tests must not pass for a green one.
const argv = process.argv.slice(2);
const dirAt = argv.indexOf("--dir");
const testDir = dirAt >= 0 ? path.resolve(argv.splice(dirAt, 2)[1]!) : path.join(root, "test", "device");
const paths = argv.filter((a) => a.endsWith(".ts") && existsSync(a) && statSync(a).isFile()).map((a) => path.resolve(a));
const filters = argv.filter((a) => !paths.includes(path.resolve(a)));
const inDir = readdirSync(testDir).filter((f) => f.endsWith(".test.ts")).sort();
const unmatched = filters.filter((o) => !inDir.some((f) => f.includes(o)));
if (unmatched.length) {
  console.error(`xs: no test file in ${path.relative(root, testDir) || "."} matches ${unmatched.map((o) => JSON.stringify(o)).join(", ")}` +
    " (give a path to an existing *.test.ts file, or part of a file name)");
  process.exit(2);
}
const files = [
  ...paths,
  ...inDir.filter((f) => (!argv.length || filters.some((o) => f.includes(o)))).map((f) => path.join(testDir, f)),
];
if (!files.length) {
  console.error(`xs: no test files to run in ${testDir}`);
  process.exit(2);
}

const bundles: string[] = [];
let broken = 0;
for (const testPath of files) {
  const file = path.basename(testPath);
  const entry = path.join(out, file.replace(/\.ts$/, ".entry.ts"));
  writeFileSync(entry, [
    `import { runAll } from ${JSON.stringify(path.join(root, "test/xs/harness.ts"))};`,
    `import ${JSON.stringify(testPath)};`,
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
