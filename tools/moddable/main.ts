/**
 * `npm run moddable -- lin`: the firmware built by the user's Moddable SDK ($MODDABLE) for its Linux runtime
 * (hosts/lin/manifest.json), run headless by mcsim (under Xvfb when there is no display) against the project's own
 * world: development PKI, both front-ends, the PN532 emulator on socat pty pairs (tools/harness/rig.ts), then the
 * harness's shipped scenarios against its controller port. JUnit XML and logs go to harness-results/moddable-lin.
 * This builds OUR app with an SDK the user installed; it never builds the SDK.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { RIG_TERMINAL_ID, Rig } from "../harness/rig";
import { runHarness } from "../harness/runner";
import { loadScenarioFile, type Scenario } from "../harness/scenario";
import { MODDABLE_MISSING, moddableTools } from "./sdk";

const ROOT = path.resolve(import.meta.dirname, "../..");
function fail(message: string, code: number): never {
  process.stderr.write(`moddable: ${message}\n`);
  process.exit(code);
}

async function main(): Promise<void> {
  const target = process.argv[2] ?? "lin";
  if (target !== "lin") fail(`unknown target "${target}" (only "lin")`, 2);
  const bin = moddableTools();
  if (!bin) fail(MODDABLE_MISSING, 2);
  const out = path.join(ROOT, "build", "moddable-lin");
  const results = path.join(ROOT, "harness-results", "moddable-lin");
  mkdirSync(out, { recursive: true });
  mkdirSync(results, { recursive: true });
  const env = { ...process.env, PATH: `${bin}:${path.join(ROOT, "node_modules", ".bin")}:${process.env.PATH}` };
  const settingsFile = path.join(out, "settings.json");

  process.stdout.write("moddable: building hosts/lin/manifest.json with mcconfig -m -p lin -t build\n");
  const built = Date.now();
  // -t build: the SDK's default target would also (re)start simulators it finds by name.
  const make = spawnSync("mcconfig", ["-m", "-p", "lin", "-t", "build", "-o", out, path.join(ROOT, "hosts/lin/manifest.json"), `settings_file=${settingsFile}`],
    { cwd: ROOT, env, encoding: "utf8", maxBuffer: 64 << 20 });
  writeFileSync(path.join(results, "build.log"), `${make.stdout}${make.stderr}`);
  if (make.status !== 0) fail(`mcconfig failed (see ${path.join(results, "build.log")})`, 1);
  const buildMs = Date.now() - built;
  const library = path.join(out, "bin", "lin", "mc", "release", "lin", "mc.so");
  if (!existsSync(library)) fail(`mcconfig built no ${library}`, 1);

  const rig = await Rig.start({ dir: path.join(out, "rig"), attach: false });
  const children: ChildProcess[] = [];
  try {
    const t = rig.pki.terminals[RIG_TERMINAL_ID]!;
    writeFileSync(settingsFile, JSON.stringify({
      terminalId: RIG_TERMINAL_ID, level1Url: rig.level1Url, pn532_device: rig.pn532Pair.host, controller_device: rig.controllerPair.host,
      journal_file: rig.journalPath, ca_der: rig.pki.ca.certDerPath, client_der: t.certDerPath, key_der: t.keyDerPath,
    }));
    let display = process.env.DISPLAY;
    if (!display) {
      display = ":97";
      const xvfb = spawn("Xvfb", [display, "-nolisten", "tcp"], { stdio: "ignore" });
      children.push(xvfb);
      await new Promise((r) => setTimeout(r, 1000));
    }
    const log: string[] = [];
    const sim = spawn(path.join(bin, "mcsim"), [library], { env: { ...env, DISPLAY: display }, stdio: ["ignore", "pipe", "pipe"] });
    children.push(sim);
    writeFileSync(rig.pidFile, `${sim.pid}\n`);
    sim.stdout!.on("data", (d: Buffer) => log.push(d.toString()));
    sim.stderr!.on("data", (d: Buffer) => log.push(d.toString()));
    const dir = path.join(ROOT, "tools/harness/scenarios");
    const scenarios: Scenario[] = [];
    for (const f of readdirSync(dir).sort()) if (/\.(ya?ml|json)$/.test(f)) scenarios.push(...loadScenarioFile(path.join(dir, f)));
    const run = await runHarness({
      controller: rig.controllerPair.device, pn532Port: rig.pn532Pair.device, keys: rig.keysPath, scenarios, out: results,
      baud: 115200, readyTimeoutMs: 60_000, print: (line) => process.stdout.write(`${line}\n`),
    });
    writeFileSync(path.join(results, "mcsim.log"), log.join(""));
    process.stdout.write(`\n${run.summary}JUnit XML: ${run.junitPath}\n`);
    process.stdout.write(`${JSON.stringify({ target: "lin", buildMs, mcsimExit: sim.exitCode, scenarios: scenarios.length, exitCode: run.exitCode })}\n`);
    process.exitCode = run.exitCode;
  } finally {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    await rig.close();
  }
}

await main();
