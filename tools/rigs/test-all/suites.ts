/**
 * Runs test suites one after another, every one of them even when an earlier one fails, and sums them up: one line
 * per suite, then a closing `N passed, N failed` line counting suites (the form CI reads). Each suite's own output
 * streams through as it runs; only its tail is kept, to read the suite's counts from its closing lines.
 */
import { spawn } from "node:child_process";
import { formatDuration } from "../progress.js";

export interface Suite {
  name: string;
  command: string;
  args: string[];
}

export interface SuiteResult {
  name: string;
  ok: boolean;
  /** The suite's own count of tests, when its output states one ("12 passing, 1 failing"). */
  counts?: string;
  elapsedMs: number;
  /** Exit code, or the signal that ended the suite. */
  exit: number | string;
}

const TAIL_CHARS = 16_384;

/** The test counts a suite printed last: mocha's "N passing / N failing / N pending", or a runner's "N passed, N failed". */
export function countsOf(output: string): string | undefined {
  const mocha = ["passing", "failing", "pending"]
    .map((word) => { const m = [...output.matchAll(new RegExp(`^\\s*(\\d+) ${word}\\b`, "gm"))].at(-1); return m ? `${m[1]} ${word}` : ""; })
    .filter(Boolean);
  if (mocha.length) return mocha.join(", ");
  const runner = [...output.matchAll(/(\d+) passed, (\d+) failed/g)].at(-1);
  return runner ? `${runner[1]} passed, ${runner[2]} failed` : undefined;
}

function runOne(suite: Suite, out: NodeJS.WritableStream): Promise<SuiteResult> {
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn(suite.command, suite.args, { stdio: ["ignore", "pipe", "pipe"] });
    let tail = "";
    const keep = (chunk: Buffer) => {
      out.write(chunk);
      tail = (tail + chunk.toString("utf8")).slice(-TAIL_CHARS);
    };
    child.stdout.on("data", keep);
    child.stderr.on("data", keep);
    const finish = (exit: number | string) => resolve({
      name: suite.name, ok: exit === 0, counts: countsOf(tail), elapsedMs: Date.now() - started, exit,
    });
    child.on("error", (error) => { tail += `\n${error.message}`; finish(-1); });
    child.on("close", (code, signal) => finish(code ?? signal ?? -1));
  });
}

export function summaryLine(r: SuiteResult): string {
  const verdict = r.ok ? "ok" : `FAILED (${typeof r.exit === "number" ? `exit ${r.exit}` : r.exit})`;
  return `  ${r.ok ? "✔" : "✘"} ${r.name.padEnd(10)} ${verdict}${r.counts ? `: ${r.counts}` : ""} in ${formatDuration(r.elapsedMs)}`;
}

/** Runs every suite in order and writes the summary; resolves to the results (all ok: every suite passed). */
export async function runSuites(suites: Suite[], out: NodeJS.WritableStream = process.stdout): Promise<SuiteResult[]> {
  const results: SuiteResult[] = [];
  for (const suite of suites) {
    out.write(`\n=== ${suite.name}: ${[suite.command, ...suite.args].join(" ")}\n`);
    results.push(await runOne(suite, out));
  }
  const failed = results.filter((r) => !r.ok).length;
  out.write(`\nSuites:\n${results.map(summaryLine).join("\n")}\n${results.length - failed} passed, ${failed} failed\n`);
  return results;
}
