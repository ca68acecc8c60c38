import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { SerialPort } from "serialport";
import { hasSocat } from "../../../hosts/node/pty";
import { junitXml } from "../../../tools/rigs/harness/report";
import { Rig } from "../../../tools/rigs/harness/rig";
import { parseScenarios, ScenarioError } from "../../../tools/rigs/harness/scenario";

// CI for the harness: the Node host terminal runs as its own process on two socat pty pairs (PN532 line and
// controller port), front-ends in their own processes over mutual TLS; `npm run harness` (its CLI, as a child process)
// drives the controller port and plays the PN532 with the shipped scenarios.

const ROOT = path.resolve(import.meta.dirname, "../../..");
const SCENARIOS = path.join(ROOT, "tools/rigs/harness/scenarios");

interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

function harness(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliRun> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ["--import", "tsx", path.join(ROOT, "tools/rigs/harness/main.ts"), ...args],
      { cwd: ROOT, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on("data", (d: Buffer) => { stderr += d.toString(); });
    child.on("exit", (code) => resolve({ code, stdout, stderr }));
  });
}

function shipped(): string[] {
  return readdirSync(SCENARIOS).filter((f) => /\.(ya?ml|json)$/.test(f)).map((f) => path.join(SCENARIOS, f)).sort();
}

function attr(xml: string, tag: string, name: string): string | undefined {
  return new RegExp(`<${tag}\\b[^>]*\\b${name}="([^"]*)"`).exec(xml)?.[1];
}

describe("harness: scenario files and reports", () => {
  it("reads every shipped scenario (YAML and JSON)", () => {
    for (const file of [...shipped(), ...readdirSync(path.join(SCENARIOS, "ci")).map((f) => path.join(SCENARIOS, "ci", f))]) {
      const scenarios = parseScenarios(readFileSync(file, "utf8"), file);
      assert.ok(scenarios.length >= 1 && scenarios.every((s) => s.steps.length > 0), file);
    }
  });

  it("refuses a scenario that does not parse, naming the file, the line and the problem", () => {
    assert.throws(() => parseScenarios("name: x\nsteps:\n  - pay: { amount: 1, order: A\n", "bad.yaml"),
      (e: unknown) => e instanceof ScenarioError && /bad\.yaml: line \d+, column \d+: not valid YAML/.test(e.message));
    assert.throws(() => parseScenarios("name: x\nsteps:\n  - wait: 10\n  - tap: nobody\n", "t.yaml"),
      (e: unknown) => e instanceof ScenarioError && /step 2 \(line 4\): no card named "nobody"/.test(e.message));
    assert.throws(() => parseScenarios('{"name": "x", "steps": [{"pay": {"amount": 1.5, "order": "A"}}]}', "t.json"),
      (e: unknown) => e instanceof ScenarioError && /pay.amount must be whole fen/.test(e.message));
    assert.throws(() => parseScenarios("name: x\nsteps:\n  - explode: true\n", "t.yaml"), /must have exactly one of pay, cancel/);
    assert.throws(() => parseScenarios("name: x\ncards:\n  c: { profile: tunion-3des, asn: '12' }\nsteps: [{tap: c}]\n", "t.yaml"), /asn must be 20 digits/);
  });

  it("writes JUnit XML that escapes what it quotes and counts failures and errors apart", () => {
    const xml = junitXml([
      { name: "a <b> & \"c\"", file: "s/x.yaml", status: "passed", durationMs: 1500, steps: 2, stepsRun: 2, logPath: "l1", log: ["ok"] },
      { name: "f", file: "s/x.yaml", status: "failed", message: "expected approved, got declined", durationMs: 10, steps: 3, stepsRun: 3, logPath: "l2", log: ["\u0001bad"] },
      { name: "e", file: "s/y.json", status: "error", message: "no device", durationMs: 0, steps: 1, stepsRun: 0, logPath: "l3", log: [] },
    ]);
    assert.equal(attr(xml, "testsuites", "tests"), "3");
    assert.equal(attr(xml, "testsuites", "failures"), "1");
    assert.equal(attr(xml, "testsuites", "errors"), "1");
    assert.ok(xml.includes('name="a &lt;b&gt; &amp; &quot;c&quot;"'));
    assert.ok(xml.includes("<failure message=\"expected approved, got declined\""));
    assert.ok(xml.includes("<error message=\"no device\""));
    assert.ok(!xml.includes("\u0001"));
  });
});

describe("harness: against the Node host terminal over pty pairs", function () {
  this.timeout(120_000);
  let rig: Rig;
  let out: string;
  let respawn = true;
  let restarts = 0;

  before(async function () {
    if (!hasSocat()) this.skip();
    rig = await Rig.start();
    out = mkdtempSync(path.join(tmpdir(), "harness-out-"));
    // The terminal boots before anyone plays its PN532, as a device powered up before the rig: it fails to start
    // and is restarted until the harness's emulator answers.
    rig.startTerminal().catch(() => undefined);
    superviseTerminal();
  });
  after(async () => {
    respawn = false;
    await rig?.close();
    if (out) rmSync(out, { recursive: true, force: true });
  });

  /** Like a device's watchdog: a terminal that dies comes back, on a serial line made again (USB re-enumeration). */
  function superviseTerminal(): void {
    const child = rig.terminal!;
    child.once("exit", () => {
      if (!respawn) return;
      void (async () => {
        await new Promise((r) => setTimeout(r, 300));
        if (!respawn) return;
        await rig.recreateControllerPty();
        restarts++;
        rig.startTerminal().catch(() => undefined);
        superviseTerminal();
      })();
    });
  }

  const common = () => ["--controller", rig.controllerPair.device, "--pn532-port", rig.pn532Pair.device, "--keys", rig.keysPath];

  it("runs every shipped scenario and passes, with JUnit XML, a summary and one log per scenario", async () => {
    const dir = path.join(out, "shipped");
    // settle-on-idle-tap kills the terminal by its pid file; the supervisor above starts it again.
    const run = await harness([...common(), "--out", dir, ...shipped()], { HARNESS_TERMINAL_PIDFILE: rig.pidFile });
    assert.equal(run.code, 0, `${run.stdout}\n${run.stderr}\n${rig.terminalLog.slice(-30).join("\n")}`);
    const xml = readFileSync(path.join(dir, "junit.xml"), "utf8");
    const tests = Number(attr(xml, "testsuites", "tests"));
    assert.ok(tests >= 9, `only ${tests} scenarios ran`);
    assert.equal(attr(xml, "testsuites", "failures"), "0");
    assert.equal(attr(xml, "testsuites", "errors"), "0");
    assert.equal((xml.match(/<testcase /g) ?? []).length, tests);
    assert.match(run.stdout, new RegExp(`${tests} scenarios: ${tests} passed, 0 failed, 0 errors`));
    assert.equal(readFileSync(path.join(dir, "summary.txt"), "utf8").split("\n").filter((l) => l.startsWith("PASS")).length, tests);
    const logs = readdirSync(path.join(dir, "logs"));
    assert.equal(logs.length, tests);
    const tunionLog = readFileSync(path.join(dir, "logs", logs.find((l) => l.includes("t-union-card"))!), "utf8");
    assert.match(tunionLog, /< \{"event":"approved"/);
    // What the scenarios paid reached the front-ends, completed, with no TSN twice.
    const level1 = await rig.purchases(1);
    const rows = [...level1, ...await rig.purchases(2)];
    assert.ok(rows.filter((r) => r.status === "completed").length >= 5);
    assert.equal(new Set(level1.map((r) => r.tsn)).size, level1.length);
  });

  it("reports a scenario that fails: exit status 1, a <failure> with what came instead, the step's line", async () => {
    const dir = path.join(out, "failing");
    const run = await harness([...common(), "--out", dir, path.join(SCENARIOS, "approve-tunion.yaml"), path.join(SCENARIOS, "ci/expected-failure.yaml")]);
    assert.equal(run.code, 1, run.stdout + run.stderr);
    const xml = readFileSync(path.join(dir, "junit.xml"), "utf8");
    assert.equal(attr(xml, "testsuites", "tests"), "2");
    assert.equal(attr(xml, "testsuites", "failures"), "1");
    const failure = /<failure message="([^"]*)"/.exec(xml)?.[1] ?? "";
    assert.match(failure, /step 3 \(line 8\) expect .*expected approved, got declined \(insufficient-balance\)/);
    assert.match(run.stdout, /FAIL  expected failure/);
    assert.match(run.stdout, /2 scenarios: 1 passed, 1 failed, 0 errors/);
  });

  it("reconnects after the device resets mid-payment and carries on", async () => {
    const dir = path.join(out, "reset");
    const before = restarts;
    const run = await harness([...common(), "--out", dir, path.join(SCENARIOS, "ci/device-reset.yaml")], { HARNESS_TERMINAL_PIDFILE: rig.pidFile });
    assert.equal(run.code, 0, `${run.stdout}\n${run.stderr}`);
    assert.equal(restarts, before + 1, "the terminal was restarted once");
    const log = readFileSync(path.join(dir, "logs", readdirSync(path.join(dir, "logs"))[0]!), "utf8");
    assert.match(log, /controller port lost/);
    assert.match(log, /controller port reopened/);
    assert.match(log, /< \{"event":"ready"/);
    assert.match(log, /< \{"event":"approved","order":"H-RESET-2"/);
  });

  it("says clearly when a port is missing or busy, or a scenario does not parse (exit status 2)", async () => {
    const missing = await harness(["--controller", path.join(out, "no-such-port"), path.join(SCENARIOS, "approve-tunion.yaml")]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /controller port .*no-such-port does not exist/);

    const holder = new SerialPort({ path: rig.controllerPair.device, baudRate: 115200, autoOpen: false });
    await new Promise<void>((resolve, reject) => holder.open((e) => (e ? reject(e) : resolve())));
    try {
      const busy = await harness(["--controller", rig.controllerPair.device, path.join(SCENARIOS, "approve-tunion.yaml")]);
      assert.equal(busy.code, 2);
      assert.match(busy.stderr, /controller port .* is busy: another program has it open/);
    } finally {
      await new Promise<void>((resolve) => holder.close(() => resolve()));
    }

    const bad = path.join(out, "broken.yaml");
    writeFileSync(bad, "name: broken\nsteps:\n  - pay: { amount: 100, order: X }\n  - expect: { event approved }\n  - tap: [\n");
    const parse = await harness(["--controller", rig.controllerPair.device, bad]);
    assert.equal(parse.code, 2);
    assert.match(parse.stderr, /scenario does not parse: .*broken\.yaml: line \d+, column \d+/);

    // Virtual cards without a PN532 port to play them on: that scenario is an error, said plainly, the run goes on.
    const dir = path.join(out, "no-pn532");
    const noReader = await harness(["--controller", rig.controllerPair.device, "--out", dir, path.join(SCENARIOS, "approve-tunion.yaml")]);
    assert.equal(noReader.code, 1);
    const xml = readFileSync(path.join(dir, "junit.xml"), "utf8");
    assert.equal(attr(xml, "testsuites", "errors"), "1");
    assert.match(xml, /<error message="this scenario has virtual cards: run with --pn532-port/);

    const noArgs = await harness([]);
    assert.equal(noArgs.code, 2);
    assert.match(noArgs.stderr, /--controller <port> is required/);
  });
});
