/**
 * `npm run moddable -- lin`: the firmware built by the user's Moddable SDK ($MODDABLE) for its Linux runtime
 * (hosts/lin/manifest.json, an instrumented release build: mcconfig -i), run headless by mcsim (under Xvfb when there
 * is no display) against the project's own world: development PKI, both front-ends, the PN532 emulator on socat pty
 * pairs (tools/rigs/harness/rig.ts), then the harness's shipped scenarios and the device-reset scenario against its
 * controller port. Then the Node host runs the approval scenarios on the same rig, for tap-to-approved side by side.
 * JUnit XML and logs go to harness-results/moddable-lin; the figures are printed as one JSON line.
 * This builds OUR app with an SDK the user installed; it never builds the SDK.
 *
 * Options: --no-build (run the last build again), --only <text> (scenarios whose name contains it).
 */
import { parseArgs } from "node:util";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { RIG_TERMINAL_ID, Rig } from "../harness/rig";
import { runHarness, type HarnessRun } from "../harness/runner";
import { loadScenarioFile, type Scenario } from "../harness/scenario";
import { hasCommand } from "../../../hosts/node/pty";
import { MODDABLE_MISSING, moddableTools } from "./sdk";
import { figures, type McsimTrace } from "./figures";

const ROOT = path.resolve(import.meta.dirname, "../../..");
const SCENARIOS = path.join(ROOT, "tools/rigs/harness/scenarios");

function fail(message: string, code: number): never {
  process.stderr.write(`moddable: ${message}\n`);
  process.exit(code);
}

function shippedScenarios(only: string | undefined): Scenario[] {
  const scenarios: Scenario[] = [];
  for (const f of readdirSync(SCENARIOS).sort()) if (/\.(ya?ml|json)$/.test(f)) scenarios.push(...loadScenarioFile(path.join(SCENARIOS, f)));
  // The reset: the harness kills the terminal by its pid file and the supervisor below starts it again.
  scenarios.push(...loadScenarioFile(path.join(SCENARIOS, "ci/device-reset.yaml")));
  return only ? scenarios.filter((s) => s.name.includes(only)) : scenarios;
}

async function main(): Promise<void> {
  let parsed;
  try {
    parsed = parseArgs({ strict: true, allowPositionals: true, options: { "no-build": { type: "boolean" }, only: { type: "string" } } });
  } catch (error) {
    return fail((error as Error).message, 2);
  }
  const target = parsed.positionals[0] ?? "lin";
  if (target !== "lin" || parsed.positionals.length > 1) fail(`unknown target "${parsed.positionals.join(" ")}" (only "lin")`, 2);
  const noBuild = !!parsed.values["no-build"];
  const only = parsed.values.only;
  const bin = moddableTools();
  if (!bin) fail(MODDABLE_MISSING, 2);
  // Before the build and the rig: fail() exits at once, skipping the rig's close() below, which left both front-ends
  // and the socat pairs running when this was found only after Rig.start.
  if (!process.env.DISPLAY && !hasCommand("Xvfb")) fail("mcsim needs a display: apt-get install -y xvfb (or set DISPLAY)", 2);
  const out = path.join(ROOT, "build", "moddable-lin");
  const results = path.join(ROOT, "harness-results", "moddable-lin");
  mkdirSync(out, { recursive: true });
  mkdirSync(results, { recursive: true });
  const env = { ...process.env, PATH: `${bin}:${path.join(ROOT, "node_modules", ".bin")}:${process.env.PATH}` };
  const settingsFile = path.join(out, "settings.json");
  const library = path.join(out, "bin", "lin", "mc", "instrument", "lin", "mc.so");

  let buildMs: number | null = null;
  if (!noBuild || !existsSync(library)) {
    process.stdout.write("moddable: building hosts/lin/manifest.json with mcconfig -i -m -p lin -t build\n");
    const built = Date.now();
    // -t build: the SDK's default target would also (re)start simulators it finds by name. -i: the SDK's
    // instrumentation (XS chunks, slots, stack) without a debugger.
    const make = spawnSync("mcconfig", ["-i", "-m", "-p", "lin", "-t", "build", "-o", out, path.join(ROOT, "hosts/lin/manifest.json"), `settings_file=${settingsFile}`],
      { cwd: ROOT, env, encoding: "utf8", maxBuffer: 64 << 20 });
    writeFileSync(path.join(results, "build.log"), `${make.stdout}${make.stderr}`);
    if (make.status !== 0) fail(`mcconfig failed (see ${path.join(results, "build.log")})`, 1);
    buildMs = Date.now() - built;
  }
  if (!existsSync(library)) fail(`mcconfig built no ${library}`, 1);

  // A fresh world each run: a journal left by the last run would retry its completions against front-ends gone.
  rmSync(path.join(out, "rig"), { recursive: true, force: true });
  const rig = await Rig.start({ dir: path.join(out, "rig"), attach: false });
  const children: ChildProcess[] = [];
  const log: string[] = [];
  const trace: McsimTrace[] = [];
  let respawn = true;
  let sim: ChildProcess | undefined;
  let starts = 0;
  let aborts = 0;
  try {
    const t = rig.pki.terminals[RIG_TERMINAL_ID]!;
    const settings = () => writeFileSync(settingsFile, JSON.stringify({
      terminalId: RIG_TERMINAL_ID, level1Url: rig.level1Url, pn532_device: rig.pn532Pair.host, controller_device: rig.controllerPair.host,
      journal_file: rig.journalPath, ca_der: rig.pki.ca.certDerPath, client_der: t.certDerPath, key_der: t.keyDerPath,
    }));
    settings();
    let display = process.env.DISPLAY;
    if (!display) {
      display = `:${90 + (process.pid % 9)}`;
      const xvfb = spawn("Xvfb", [display, "-nolisten", "tcp"], { stdio: "ignore" });
      children.push(xvfb);
      await new Promise((r) => setTimeout(r, 1000));
    }
    // mcsim's stdout is a pipe here, which stdio buffers in 4 KiB blocks: trace() lines would come late, and be lost
    // when the process is killed. stdbuf makes them line-buffered.
    const stdbuf = hasCommand("stdbuf");
    const startSim = () => {
      starts++;
      const command = stdbuf ? ["stdbuf", "-oL", "-eL", path.join(bin, "mcsim"), library] : [path.join(bin, "mcsim"), library];
      const child = spawn(command[0]!, command.slice(1), { env: { ...env, DISPLAY: display }, stdio: ["ignore", "pipe", "pipe"] });
      sim = child;
      writeFileSync(rig.pidFile, `${child.pid}\n`);
      let partial = "";
      const take = (d: Buffer) => {
        partial += d.toString();
        const lines = partial.split("\n");
        partial = lines.pop()!;
        for (const line of lines) {
          const stamped = `${(performance.now() / 1000).toFixed(3)} [${starts}] ${line}`;
          log.push(stamped);
          trace.push({ at: performance.now(), line });
          // An ESP32 reboots when XS aborts (memory full, stack overflow); mcsim stops the machine and stays up.
          // Killing it makes the supervisor below restart it, as the board's reset would.
          if (line.startsWith("XS abort")) {
            aborts++;
            child.kill("SIGKILL");
          }
        }
      };
      child.stdout!.on("data", take);
      child.stderr!.on("data", take);
      // Like a device's watchdog: a terminal that dies (the reset scenario kills it) comes back, on a controller
      // line made again, as a USB adapter re-enumerates.
      child.once("exit", (code, signal) => {
        log.push(`${(performance.now() / 1000).toFixed(3)} mcsim exited (${signal ?? code})`);
        if (!respawn) return;
        void (async () => {
          await new Promise((r) => setTimeout(r, 300));
          if (!respawn) return;
          await rig.recreateControllerPty();
          settings();
          startSim();
        })();
      });
    };
    startSim();
    process.env.HARNESS_TERMINAL_PIDFILE = rig.pidFile;
    const scenarios = shippedScenarios(only);
    const print = (line: string) => process.stdout.write(`${line}\n`);
    print(`moddable: ${scenarios.length} scenarios against mcsim`);
    const run = await runHarness({
      controller: rig.controllerPair.device, pn532Port: rig.pn532Pair.device, keys: rig.keysPath, scenarios, out: results,
      baud: 115200, readyTimeoutMs: 120_000, print,
    });
    // The firmware traces its idle figures every 5 s between payments: wait for them after the last scenario.
    const idleFrom = trace.length;
    for (let i = 0; i < 70 && !trace.slice(idleFrom).some((t) => t.line.includes('xs-memory {"at":"idle-live"')); i++) await new Promise((r) => setTimeout(r, 100));
    const mcsimExit = sim?.exitCode ?? null;
    respawn = false;
    if (sim && sim.exitCode === null && sim.signalCode === null) {
      const s = sim;
      await new Promise<void>((resolve) => {
        s.once("exit", () => resolve());
        s.kill("SIGKILL");
      });
    }
    writeFileSync(path.join(results, "mcsim.log"), log.join("\n") + "\n");
    process.stdout.write(`\n${run.summary}JUnit XML: ${run.junitPath}\n`);

    // The Node host on the same rig (its own journal), the approvals only: tap-to-approved side by side.
    print("moddable: the Node host on the same rig, for comparison");
    let node: HarnessRun | undefined;
    const approvals = shippedScenarios(undefined).filter((s) => s.name.startsWith("approve"));
    rig.journalPath = path.join(rig.dir, "node.journal");
    await rig.recreateControllerPty();
    rig.startTerminal().catch(() => undefined);
    try {
      node = await runHarness({
        controller: rig.controllerPair.device, pn532Port: rig.pn532Pair.device, keys: rig.keysPath, scenarios: approvals,
        out: path.join(results, "node-host"), baud: 115200, readyTimeoutMs: 60_000, print,
      });
    } finally {
      await rig.killTerminal();
    }
    const result = figures({ target: "lin", buildMs, mcsimStarts: starts, xsAborts: aborts, mcsimExit, moddable: run, node, trace });
    writeFileSync(path.join(results, "figures.json"), JSON.stringify(result, null, 2) + "\n");
    process.stdout.write(`${JSON.stringify(result)}\n`);
    process.exitCode = run.exitCode;
  } finally {
    respawn = false;
    if (sim && sim.exitCode === null && sim.signalCode === null) sim.kill("SIGKILL");
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    await rig.close();
  }
}

await main();
