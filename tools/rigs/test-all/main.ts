/**
 * `npm test`: the type check, the device and Node tests under mocha, and the device tests inside XS. Every suite runs
 * even when one before it fails, so a red mocha test no longer hides the XS results; exits non-zero if any failed.
 */
import { parseArgs } from "node:util";
import { runSuites, type Suite } from "./suites.js";

const npx = process.platform === "win32" ? "npx.cmd" : "npx";
const all: Suite[] = [
  { name: "typecheck", command: "npm", args: ["run", "--silent", "typecheck"] },
  { name: "mocha", command: npx, args: ["mocha", "test/device/**/*.test.ts", "test/node/**/*.test.ts"] },
  { name: "xs", command: npx, args: ["tsx", "test/xs/run.ts"] },
];

const { values } = parseArgs({
  options: { only: { type: "string", multiple: true }, help: { type: "boolean", short: "h" } },
});
if (values.help) {
  console.log(`Usage: npm test [-- --only <suite>...]   suites: ${all.map((s) => s.name).join(", ")}`);
  process.exit(0);
}
const unknown = (values.only ?? []).filter((name) => !all.some((s) => s.name === name));
if (unknown.length) {
  console.error(`test-all: unknown suite ${unknown.join(", ")} (suites: ${all.map((s) => s.name).join(", ")})`);
  process.exit(2);
}
const chosen = values.only ? all.filter((s) => values.only!.includes(s.name)) : all;
const results = await runSuites(chosen);
process.exitCode = results.every((r) => r.ok) ? 0 : 1;
