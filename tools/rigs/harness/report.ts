/** What a harness run produces: JUnit XML for CI, a human summary, and one log per scenario. */

export interface ScenarioResult {
  name: string;
  file: string;
  status: "passed" | "failed" | "error";
  /** For a failure: which step, where, and what was seen instead. */
  message?: string;
  detail?: string;
  durationMs: number;
  steps: number;
  stepsRun: number;
  logPath: string;
  log: string[];
}

function xml(text: string): string {
  // Characters XML 1.0 cannot carry at all are dropped; the rest are escaped.
  return text
    .replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/g, "")
    .replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

function seconds(ms: number): string {
  return (ms / 1000).toFixed(3);
}

/** One <testsuite> per scenario file, one <testcase> per scenario; a failed expectation is <failure>, a broken run <error>. */
export function junitXml(results: ScenarioResult[], suiteName = "transit-terminal-harness"): string {
  const files = [...new Set(results.map((r) => r.file))];
  const total = (rs: ScenarioResult[]) => ({
    tests: rs.length, failures: rs.filter((r) => r.status === "failed").length, errors: rs.filter((r) => r.status === "error").length,
    time: rs.reduce((n, r) => n + r.durationMs, 0),
  });
  const all = total(results);
  const out = [`<?xml version="1.0" encoding="UTF-8"?>`,
    `<testsuites name="${xml(suiteName)}" tests="${all.tests}" failures="${all.failures}" errors="${all.errors}" time="${seconds(all.time)}">`];
  for (const file of files) {
    const rs = results.filter((r) => r.file === file);
    const t = total(rs);
    const base = file.replace(/^.*[\\/]/, "");
    out.push(`  <testsuite name="${xml(base)}" file="${xml(file)}" tests="${t.tests}" failures="${t.failures}" errors="${t.errors}" skipped="0" time="${seconds(t.time)}">`);
    for (const r of rs) {
      out.push(`    <testcase name="${xml(r.name)}" classname="harness.${xml(base.replace(/\.[^.]+$/, ""))}" file="${xml(file)}" time="${seconds(r.durationMs)}">`);
      if (r.status !== "passed") {
        const tag = r.status === "failed" ? "failure" : "error";
        out.push(`      <${tag} message="${xml(r.message ?? "")}" type="${r.status === "failed" ? "ExpectationFailed" : "HarnessError"}">${xml(r.detail ?? r.message ?? "")}</${tag}>`);
      }
      out.push(`      <system-out>${xml(`log: ${r.logPath}\n${r.log.join("\n")}`)}</system-out>`);
      out.push(`    </testcase>`);
    }
    out.push(`  </testsuite>`);
  }
  out.push(`</testsuites>`, "");
  return out.join("\n");
}

/** The lines a person reads at the end of a run. */
export function summaryText(results: ScenarioResult[], elapsedMs: number): string {
  const lines: string[] = [];
  for (const r of results) {
    const tag = r.status === "passed" ? "PASS " : r.status === "failed" ? "FAIL " : "ERROR";
    lines.push(`${tag} ${r.name} (${r.file}, ${(r.durationMs / 1000).toFixed(1)} s)${r.message ? `\n      ${r.message}\n      log: ${r.logPath}` : ""}`);
  }
  const passed = results.filter((r) => r.status === "passed").length;
  const failed = results.filter((r) => r.status === "failed").length;
  const errors = results.filter((r) => r.status === "error").length;
  lines.push(`${results.length} scenarios: ${passed} passed, ${failed} failed, ${errors} errors in ${(elapsedMs / 1000).toFixed(1)} s`);
  return lines.join("\n") + "\n";
}
