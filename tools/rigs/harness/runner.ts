/**
 * Runs scenarios against a device: the controller port through ControllerLink, and, when given a second port, the
 * PN532 emulator playing the reader to the device with the scenarios' virtual cards. Writes JUnit XML, a summary
 * and per-scenario logs.
 */
import { spawn } from "node:child_process";
import { randomInt } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { VirtualCard, issueCard } from "../../sim/cardsim/index";
import { readDevelopmentMasterKeys } from "../../frontend/keys/keystore";
import { startEmulator, INSTANT_TIMING, type Pn532Emulator } from "../../sim/pn532sim/index";
import { ControllerLink, ControllerTimeoutError, type ControllerEvent } from "../../sim/simulation/controller-link";
import { junitXml, summaryText, type ScenarioResult } from "./report";
import type { CardDefinition, Scenario, Step } from "./scenario";
import { ReconnectingSerial, probePort } from "./serial";
import { openHarnessVmc, runMdbStep, withReplyModes, type MdbReplies } from "./mdb";
import type { StreamVmc } from "../../sim/vmc/stream";
import { CodedError } from "../../../modules/errors/errors";

export interface HarnessOptions {
  controller: string;
  pn532Port?: string;
  /** The device's MDB port (a tty in the docs/mdb.md §5 encoding): `mdb` steps play the VMC there. */
  mdbPort?: string;
  /**
   * The VMC's reply modes (docs/mdb.md §2.1): every scenario with `mdb` steps runs once per mode, "strict" (the
   * VMC refuses a deferred answer to SETUP config, REQUEST ID, SESSION COMPLETE, VEND CANCEL) and "either" (it takes
   * both forms). Default: both.
   */
  mdbReplies?: readonly MdbReplies[];
  /** A development key store (tools/frontend): virtual cards are issued from its master keys. */
  keys?: string;
  scenarios: Scenario[];
  /** Where junit.xml, summary.txt and logs/ go. */
  out: string;
  baud?: number;
  /** The emulator without modelled delays. */
  instant?: boolean;
  /** How long to wait for the device to answer `status` before the first scenario, ms. */
  readyTimeoutMs?: number;
  /** Progress lines (the CLI prints them). */
  print?: (line: string) => void;
}

export interface HarnessRun {
  results: ScenarioResult[];
  junitPath: string;
  summaryPath: string;
  summary: string;
  exitCode: number;
}

class StepFailure extends CodedError {
  constructor(message: string) {
    super("STEP_FAILED", message);
  }
}

const FINAL = new Set(["approved", "declined", "unknown-outcome"]);

function deepEqual(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

function slug(text: string): string {
  return text.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "").slice(0, 60) || "scenario";
}

/** A unique ASN for a scenario card, so runs can repeat against one front-end (it refuses a reused EP serial). */
function freshAsn(def: CardDefinition): string {
  const tail = `${Date.now() % 1e9}`.padStart(9, "0") + `${randomInt(0, 1e6)}`.padStart(6, "0");
  return def.layout === "tunion" ? `03${def.cityCode.slice(0, 2)}0${tail.slice(-15)}` : `${def.cityCode}${tail.slice(-12)}`;
}

export async function runHarness(options: HarnessOptions): Promise<HarnessRun> {
  const print = options.print ?? (() => {});
  const baud = options.baud ?? 115200;
  // Fail fast, with the port named, before any scenario starts.
  await probePort(options.controller, baud, "controller port");
  if (options.pn532Port) await probePort(options.pn532Port, baud, "PN532 port");
  mkdirSync(path.join(options.out, "logs"), { recursive: true });

  let log: string[] = [];
  const started = performance.now();
  const note = (line: string) => log.push(`${((performance.now() - started) / 1000).toFixed(3)} ${line}`);
  const reconnecting = (role: string) =>
    class extends ReconnectingSerial {
      constructor(o: ConstructorParameters<typeof ReconnectingSerial>[0]) {
        super({ ...o, onStatus: (s, d) => note(`${role} port ${s}${d ? ` (${d})` : ""}`) });
      }
    };
  const link = new ControllerLink({ io: reconnecting("controller"), path: options.controller, baud });
  link.onEvent = (e) => note(`< ${JSON.stringify(e)}`);
  const controllerPort = link.port as ReconnectingSerial;
  let emulator: Pn532Emulator | undefined;
  let vmc: StreamVmc | undefined;
  const results: ScenarioResult[] = [];
  try {
    await controllerPort.opened;
    if (options.mdbPort) vmc = await openHarnessVmc(options.mdbPort);
    if (options.pn532Port) {
      emulator = await startEmulator({
        serial: { io: reconnecting("PN532"), path: options.pn532Port, baud },
        timing: options.instant ? INSTANT_TIMING : { baud },
      });
    }
    const ready = await deviceAnswers(link, options.readyTimeoutMs ?? 15_000);
    for (const { scenario, replies } of withReplyModes(options.scenarios, vmc ? options.mdbReplies ?? ["strict", "either"] : [])) {
      log = [];
      if (vmc && replies) vmc.vmc.strictReplies = replies === "strict";
      const logPath = path.join(options.out, "logs", `${String(results.length + 1).padStart(2, "0")}-${slug(scenario.name)}.log`);
      const t0 = performance.now();
      const result: ScenarioResult = { name: scenario.name, file: scenario.file, status: "passed", durationMs: 0, steps: scenario.steps.length, stepsRun: 0, logPath, log };
      note(`scenario "${scenario.name}" from ${scenario.file}`);
      if (!ready) {
        result.status = "error";
        result.message = `the device did not answer on ${options.controller} (no status event)`;
      } else {
        try {
          await runScenario(scenario, { link, controllerPort, emulator, vmc, keys: options.keys, note, result });
        } catch (error) {
          const failure = error instanceof StepFailure;
          result.status = failure ? "failed" : "error";
          const i = result.stepsRun;
          const line = scenario.lines[i - 1];
          result.message = i === 0 ? (error as Error).message
            : `step ${i}${line ? ` (line ${line})` : ""} ${describeStep(scenario.steps[i - 1])}: ${(error as Error).message}`;
          result.detail = `${result.message}\nlast events:\n${link.events.slice(-5).map((e) => JSON.stringify(e)).join("\n")}`;
        } finally {
          await cleanUp(scenario, link, emulator, note);
        }
      }
      result.durationMs = performance.now() - t0;
      note(`${result.status}${result.message ? `: ${result.message}` : ""}`);
      writeFileSync(logPath, log.join("\n") + "\n");
      print(`${result.status === "passed" ? "PASS " : result.status === "failed" ? "FAIL " : "ERROR"} ${scenario.name}`);
      results.push(result);
    }
  } finally {
    link.close();
    emulator?.close();
    vmc?.close();
  }
  const elapsed = performance.now() - started;
  const junitPath = path.join(options.out, "junit.xml");
  const summaryPath = path.join(options.out, "summary.txt");
  const summary = summaryText(results, elapsed);
  writeFileSync(junitPath, junitXml(results));
  writeFileSync(summaryPath, summary);
  return { results, junitPath, summaryPath, summary, exitCode: results.every((r) => r.status === "passed") ? 0 : 1 };
}

/** Asks for `status` until the device answers: it may still be booting when the run starts. */
async function deviceAnswers(link: ControllerLink, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    link.send({ type: "status" });
    try {
      await link.next((e) => e.event === "status" || e.event === "ready", Math.min(1000, Math.max(1, deadline - Date.now())));
      return true;
    } catch (error) {
      if (!(error instanceof ControllerTimeoutError)) throw error;
    }
  }
  return false;
}

function describeStep(step: Step | undefined): string {
  if (!step) return "";
  const [kind, value] = Object.entries(step)[0]!;
  const text = typeof value === "object" && value !== null ? JSON.stringify(value) : String(value);
  return `${kind} ${text.length > 80 ? `${text.slice(0, 77)}...` : text}`;
}

interface Context {
  link: ControllerLink;
  controllerPort: ReconnectingSerial;
  emulator: Pn532Emulator | undefined;
  vmc?: StreamVmc;
  keys: string | undefined;
  note: (line: string) => void;
  result: ScenarioResult;
}

const scenarioCards = new WeakMap<Scenario, Map<string, VirtualCard>>();

function issueCards(scenario: Scenario, ctx: Context): Map<string, VirtualCard> {
  const cards = new Map<string, VirtualCard>();
  const names = Object.keys(scenario.cards);
  if (!names.length) return cards;
  if (!ctx.emulator) throw new Error("this scenario has virtual cards: run with --pn532-port to play the reader");
  if (!ctx.keys) throw new Error("virtual cards need the front-end's master keys: run with --keys <keystore.json>");
  for (const name of names) {
    const def = scenario.cards[name]!;
    const ref = { keyIndex: def.keyIndex ?? 1, keyVersion: def.keyVersion ?? 1, algorithm: def.algorithm };
    const card = new VirtualCard(issueCard([{ ...def, asn: def.asn ?? freshAsn(def), masterKeys: readDevelopmentMasterKeys(ctx.keys, ref) }]));
    ctx.emulator.addCard(card, false);
    cards.set(name, card);
    ctx.note(`card ${name}: ${def.layout} ${def.algorithm}, city ${def.cityCode}, balance ${def.balance}`);
  }
  return cards;
}

async function runScenario(scenario: Scenario, ctx: Context): Promise<void> {
  const { link, note } = ctx;
  ctx.result.stepsRun = 0;
  const cards = issueCards(scenario, ctx);
  scenarioCards.set(scenario, cards);
  const card = (name: string) => cards.get(name)!;
  const emulator = () => {
    if (!ctx.emulator) throw new Error("this step needs the emulator: run with --pn532-port");
    return ctx.emulator;
  };
  for (const step of scenario.steps) {
    ctx.result.stepsRun++;
    note(`step ${ctx.result.stepsRun}: ${describeStep(step)}`);
    const send = (request: object | string) => {
      note(`> ${typeof request === "string" ? request : JSON.stringify(request)}`);
      link.send(request);
    };
    if ("pay" in step) send({ type: "pay", ...step.pay });
    else if ("cancel" in step) send({ type: "cancel" });
    else if ("status" in step) send({ type: "status" });
    else if ("send" in step) send(step.send);
    else if ("tap" in step) emulator().place(card(step.tap));
    else if ("remove" in step) emulator().remove(card(step.remove));
    else if ("tear" in step) card(step.tear.card).armTear({ command: step.tear.command as never, when: step.tear.when, occurrence: step.tear.occurrence });
    else if ("fault" in step) emulator().injectFault(step.fault);
    else if ("wait" in step) await new Promise((r) => setTimeout(r, step.wait));
    else if ("check" in step) {
      const app = card(step.check.card).state.applications[0]!;
      if (step.check.balance !== undefined && app.balance !== step.check.balance) {
        throw new StepFailure(`card ${step.check.card} has balance ${app.balance}, expected ${step.check.balance}`);
      }
      if (step.check.epSerial !== undefined && app.epSerial !== step.check.epSerial) {
        throw new StepFailure(`card ${step.check.card} has EP serial ${app.epSerial}, expected ${step.check.epSerial}`);
      }
    } else if ("expect" in step) await expectEvent(step.expect, scenario.timeoutMs, link);
    else if ("reset" in step) await reset(step.reset, ctx);
    else if ("mdb" in step) {
      try {
        await runMdbStep(step.mdb, ctx.vmc, note, scenario.timeoutMs);
      } catch (error) {
        // A strict VMC's refusal of a deferred reply is the reader failing the step, as a wrong message is.
        const code = (error as { code?: string }).code;
        if (code === "MDB_STEP_FAILED" || code === "MDB_DEFERRED_REPLY") throw new StepFailure((error as Error).message);
        throw error;
      }
    }
  }
}

async function expectEvent(want: { event: string; within?: number; [field: string]: unknown }, defaultMs: number, link: ControllerLink): Promise<void> {
  const { event, within, ...fields } = want;
  const order = typeof fields.order === "string" ? fields.order : undefined;
  // A different final answer for the payment fails at once instead of waiting out the timeout.
  const conflicts = (e: ControllerEvent) => FINAL.has(event) && FINAL.has(e.event) && e.event !== event && (order === undefined || e.order === order);
  let got: ControllerEvent;
  try {
    got = await link.next((e) => (e.event === event && (order === undefined || e.order === order)) || conflicts(e), within ?? defaultMs);
  } catch (error) {
    if (error instanceof ControllerTimeoutError) throw new StepFailure(`no ${event} event within ${within ?? defaultMs} ms`);
    throw error;
  }
  if (got.event !== event) {
    throw new StepFailure(`expected ${event}, got ${got.event}${got.reason ? ` (${String(got.reason)})` : ""}: ${JSON.stringify(got)}`);
  }
  const wrong = Object.entries(fields).filter(([k, v]) => !deepEqual(got[k], v));
  if (wrong.length) {
    throw new StepFailure(`${event} has ${wrong.map(([k, v]) => `${k} ${JSON.stringify(got[k])} (expected ${JSON.stringify(v)})`).join(", ")}`);
  }
}

/** Resets the device (a command, or a DTR/RTS pulse), then waits for its `ready`, reconnecting the ports if they went away. */
async function reset(spec: { command?: string; within?: number }, ctx: Context): Promise<void> {
  const within = spec.within ?? 30_000;
  const waiting = ctx.link.next((e) => e.event === "ready", within);
  waiting.catch(() => undefined);
  if (spec.command) {
    const code = await new Promise<number | null>((resolve) => {
      const child = spawn("sh", ["-c", spec.command!], { stdio: ["ignore", "pipe", "pipe"] });
      child.stdout.on("data", (d: Buffer) => ctx.note(`reset command: ${d.toString().trimEnd()}`));
      child.stderr.on("data", (d: Buffer) => ctx.note(`reset command: ${d.toString().trimEnd()}`));
      child.on("error", () => resolve(-1));
      child.on("exit", (c) => resolve(c));
    });
    if (code !== 0) throw new Error(`reset command exited with ${code}`);
  } else if (!(await ctx.controllerPort.pulseReset())) {
    throw new Error("this port cannot pulse DTR/RTS: give reset a command");
  }
  try {
    await waiting;
  } catch {
    throw new StepFailure(`the device did not come back (no ready event within ${within} ms)`);
  }
  ctx.note(`device back; controller port reconnects so far: ${ctx.controllerPort.reconnects}`);
}

/** Leaves the device idle and the field empty for the next scenario. */
async function cleanUp(scenario: Scenario, link: ControllerLink, emulator: Pn532Emulator | undefined, note: (line: string) => void): Promise<void> {
  const cards = scenarioCards.get(scenario);
  if (emulator) {
    emulator.clearFaults();
    for (const c of cards?.values() ?? []) {
      c.clearTears();
      if (c.present) emulator.remove(c);
    }
  }
  for (let i = 0; i < 3; i++) {
    link.send({ type: "status" });
    let status: ControllerEvent;
    try {
      status = await link.next((e) => e.event === "status", 3000);
    } catch {
      note("no status answer while cleaning up");
      return;
    }
    if (status.state === "idle") return;
    link.send({ type: "cancel" });
    await new Promise((r) => setTimeout(r, 300));
  }
}
