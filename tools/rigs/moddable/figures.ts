/**
 * The figures of a Moddable run, from what the harness logged and what the firmware traced (hosts/lin/main.ts:
 * `xs-memory {...}` after each terminal event, `tls-handshake {"ms":N}` per handshake).
 */
import type { MemoryFigure } from "../../../hosts/lin/memory-figure";
import type { HarnessRun } from "../harness/runner";

export interface McsimTrace {
  at: number;
  line: string;
}

/**
 * Tap-to-approved in each scenario that approves: from the later of the tap and the pay request to the approved
 * event, as the harness stamped them (its log lines start with seconds since the run began).
 */
export function tapToApproved(run: HarnessRun | undefined): number[] {
  const out: number[] = [];
  for (const result of run?.results ?? []) {
    if (result.status !== "passed") continue;
    let from: number | undefined;
    for (const line of result.log) {
      const m = /^([0-9.]+) (.*)$/.exec(line);
      if (!m) continue;
      const t = Number(m[1]) * 1000;
      const text = m[2]!;
      if (/^step [0-9]+: tap /.test(text) || text.startsWith('> {"type":"pay"')) from = from === undefined ? t : Math.max(from, t);
      else if (text.startsWith('< {"event":"approved"') && from !== undefined) {
        out.push(Math.round(t - from));
        from = undefined;
      } else if (/^< \{"event":"(declined|unknown-outcome)"/.test(text)) from = undefined;
    }
  }
  return out;
}

function median(values: number[]): number | null {
  if (!values.length) return null;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor((s.length - 1) / 2)]!;
}

function tagged<T>(trace: McsimTrace[], tag: string): T[] {
  const out: T[] = [];
  for (const { line } of trace) {
    const at = line.indexOf(`${tag} {`);
    if (at < 0) continue;
    try {
      out.push(JSON.parse(line.slice(at + tag.length + 1)) as T);
    } catch {
      // A line cut by a kill: not a figure.
    }
  }
  return out;
}

export function figures(o: { target: string; buildMs: number | null; mcsimStarts: number; xsAborts: number; mcsimExit: number | null; moddable: HarnessRun; node: HarnessRun | undefined; trace: McsimTrace[] }) {
  const memory = tagged<MemoryFigure>(o.trace, "xs-memory");
  const handshakes = tagged<{ ms: number }>(o.trace, "tls-handshake").map((h) => h.ms);
  const start = memory.find((m) => m.at === "ready");
  const idle = [...memory].reverse().find((m) => m.at === "idle");
  const idleLive = [...memory].reverse().find((m) => m.at === "idle-live");
  const purchase = memory.filter((m) => m.at === "card-read" || m.at === "approved");
  const moddableTap = tapToApproved(o.moddable);
  const nodeTap = tapToApproved(o.node);
  const count = (run: HarnessRun | undefined) => run && { scenarios: run.results.length, passed: run.results.filter((r) => r.status === "passed").length };
  return {
    target: o.target,
    buildMs: o.buildMs,
    mcsimStarts: o.mcsimStarts,
    xsAborts: o.xsAborts,
    mcsimExit: o.mcsimExit,
    moddable: count(o.moddable),
    node: count(o.node),
    tapToApprovedMs: { moddable: moddableTap, node: nodeTap, moddableMedian: median(moddableTap), nodeMedian: median(nodeTap) },
    tlsHandshakeMs: { all: handshakes, median: median(handshakes) },
    xsMemoryBytes: {
      start: start && { chunks: start.chunks, slots: start.slots, stack: start.stack },
      idle: idle && { chunks: idle.chunks, slots: idle.slots, stack: idle.stack },
      // After a full collection: the app's kept state, comparable from run to run (the figure above counts garbage).
      idleLive: idleLive && { chunks: idleLive.chunks, slots: idleLive.slots, stack: idleLive.stack },
      purchasePeak: purchase.length ? {
        chunks: Math.max(...purchase.map((m) => m.peakChunks)),
        slots: Math.max(...purchase.map((m) => m.peakSlots)),
        stack: Math.max(...purchase.map((m) => m.stack)),
      } : undefined,
    },
  };
}
