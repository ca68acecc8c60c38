import type { StatusCounts, StatusReason, StatusReport } from "../modules/frontend-client/status";
import type { Journal } from "../modules/journal/journal";
import { DECLINE_REASONS } from "./declines";
import type { TerminalEvent } from "./terminal-events";

/**
 * What the terminal counts for its status reports, in fixed-size storage: the counters, one slot per decline reason
 * (a closed set), and a ring of the latest tap-to-approved times. Months of service do not grow any of it; each
 * report reads the counts and starts them again.
 */

/** Reader faults in a row that call for a report at once (a reader that keeps failing cannot take payments). */
export const READER_FAULTS_IN_A_ROW = 5;
/** The journal fill above which a report goes at once (a full journal declines every purchase). */
export const JOURNAL_ALERT_PERCENT = 80;
/** How far the terminal's clock may be from the front-end's `Date` before a report goes at once, ms. */
export const CLOCK_ALERT_MS = 2000;
/** Tap times kept per report: the percentiles are of the latest this many approvals. */
const TAP_SAMPLES = 128;

export interface HeapInfo {
  usedBytes?: number;
  slotBytes?: number;
  chunkBytes?: number;
}

/** What the terminal itself knows at report time. */
export interface TerminalSnapshot {
  pendingCompletions: number;
  unresolved: number;
  config: StatusReport["config"];
}

export class Telemetry {
  readonly #terminalId: string;
  readonly #firmware: string;
  readonly #journal: Journal;
  readonly #startedAt: number;
  readonly #now: () => number;
  readonly #heap: (() => HeapInfo | undefined) | undefined;
  #sequence = 0;
  #approvals = 0;
  #tears = 0;
  #readerFaults = 0;
  #frontendErrors = 0;
  #faultsInARow = 0;
  /** One slot per reason of DECLINE_REASONS, and a last one for a reason not in it ("other"). */
  readonly #declineCounts = new Uint32Array(DECLINE_REASONS.length + 1);
  readonly #taps = new Float64Array(TAP_SAMPLES);
  #tapCount = 0;
  #journalAlerted = false;
  #clockAlerted = false;
  clockOffsetMs: number | undefined;

  constructor(options: { terminalId: string; firmware: string; journal: Journal; now: () => number; heap?: () => HeapInfo | undefined }) {
    this.#terminalId = options.terminalId;
    this.#firmware = options.firmware;
    this.#journal = options.journal;
    this.#now = options.now;
    this.#startedAt = options.now();
    this.#heap = options.heap;
  }

  /** Counts one terminal event; returns the reason for a report at once when the event calls for one. */
  observe(event: TerminalEvent): StatusReason | undefined {
    switch (event.event) {
      case "approved":
        this.#approvals++;
        this.#taps[this.#tapCount % TAP_SAMPLES] = event.timings.tapMs;
        this.#tapCount++;
        return this.#journalAlert();
      case "declined":
        this.#decline(event.reason);
        if (event.reason === "frontend-unavailable") this.#frontendErrors++;
        return this.#journalAlert();
      case "unknown-outcome":
        this.#tears++;
        return this.#journalAlert();
      case "card-read":
        this.#faultsInARow = 0;
        return undefined;
      case "error":
        if (event.code === "COMPLETION_REFUSED") return "completion-refused";
        if (event.code.startsWith("PN532") || event.code === "READER") {
          this.#readerFaults++;
          this.#faultsInARow++;
          return this.#faultsInARow === READER_FAULTS_IN_A_ROW ? "reader-faults" : undefined;
        }
        return undefined;
      default:
        return undefined;
    }
  }

  /** A front-end call that failed outside a purchase (routes, configuration, a report). */
  frontendError(): void {
    this.#frontendErrors++;
  }

  /**
   * Compares the terminal's clock with the front-end's `Date` (whole seconds, so the server's time is somewhere in the
   * second after it: docs/telemetry.md). Returns "clock-skew" when the clock has just gone out of bounds.
   */
  checkClock(serverDate: number | undefined, now: number): StatusReason | undefined {
    if (serverDate === undefined) return undefined;
    const offset = now < serverDate ? now - serverDate : now > serverDate + 1000 ? now - (serverDate + 1000) : 0;
    this.clockOffsetMs = offset;
    const off = offset > CLOCK_ALERT_MS || offset < -CLOCK_ALERT_MS;
    const alert = off && !this.#clockAlerted;
    this.#clockAlerted = off;
    return alert ? "clock-skew" : undefined;
  }

  #decline(reason: string): void {
    const slot = DECLINE_REASONS.indexOf(reason as (typeof DECLINE_REASONS)[number]);
    this.#declineCounts[slot < 0 ? DECLINE_REASONS.length : slot]!++;
  }

  #journalFill(): { usedBlocks: number; blocks: number; liveRecords: number; fillPercent: number } {
    const s = this.#journal.stats();
    return { usedBlocks: s.usedBlocks, blocks: s.blocks, liveRecords: s.liveRecords, fillPercent: s.blocks ? Math.round((s.usedBlocks * 100) / s.blocks) : 0 };
  }

  /** "journal-fill" when the journal has just passed the alert level; re-armed once it is back below. */
  #journalAlert(): StatusReason | undefined {
    const high = this.#journalFill().fillPercent > JOURNAL_ALERT_PERCENT;
    const alert = high && !this.#journalAlerted;
    this.#journalAlerted = high;
    return alert ? "journal-fill" : undefined;
  }

  /** The report as of now; the counts since the last report start again from zero. */
  report(reason: StatusReason, snapshot: TerminalSnapshot): StatusReport {
    const declines: StatusCounts["declines"] = {};
    for (let i = 0; i <= DECLINE_REASONS.length; i++) {
      const n = this.#declineCounts[i]!;
      if (n) declines[i < DECLINE_REASONS.length ? DECLINE_REASONS[i]! : "other"] = n;
    }
    const samples = Math.min(this.#tapCount, TAP_SAMPLES);
    const report: StatusReport = {
      terminalId: this.#terminalId, firmware: this.#firmware, reason, sequence: ++this.#sequence, sentAt: this.#now(),
      uptimeMs: Math.max(0, this.#now() - this.#startedAt), journal: this.#journalFill(),
      pendingCompletions: snapshot.pendingCompletions, unresolved: snapshot.unresolved,
      counts: { approvals: this.#approvals, declines, tears: this.#tears, readerFaults: this.#readerFaults, frontendErrors: this.#frontendErrors },
      config: snapshot.config,
    };
    if (samples) {
      const sorted = Array.from(this.#taps.subarray(0, samples)).sort((a, b) => a - b);
      const at = (q: number) => Math.round(sorted[Math.min(samples - 1, Math.ceil(q * samples) - 1)]! * 10) / 10;
      report.tapToApprovedMs = { p50: at(0.5), p90: at(0.9), samples };
    }
    if (this.clockOffsetMs !== undefined) report.clockOffsetMs = this.clockOffsetMs;
    const heap = this.#safeHeap();
    if (heap) report.heap = heap;
    this.#approvals = this.#tears = this.#readerFaults = this.#frontendErrors = this.#tapCount = 0;
    this.#declineCounts.fill(0);
    return report;
  }

  #safeHeap(): HeapInfo | undefined {
    try {
      return this.#heap?.();
    } catch {
      // A host's instrumentation that fails leaves the report without it, never without a report.
      return undefined;
    }
  }
}
