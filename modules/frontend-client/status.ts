import type { TerminalSettings } from "../terminal-config/config";

/**
 * Telemetry and remote configuration on the wire: what a terminal reports about itself
 * (`POST /v1/terminals/{terminalId}/status`) and the configuration the front-end gives it (`GET /v1/terminals/{terminalId}/config`).
 */

/** Why a report went out now: its schedule, or something an operator must see at once. */
export type StatusReason =
  | "start" | "interval" | "journal-fill" | "completion-refused" | "unresolved-reported" | "reader-faults" | "clock-skew"
  | "config-refused";

export const STATUS_REASONS: readonly StatusReason[] = ["start", "interval", "journal-fill", "completion-refused", "unresolved-reported",
  "reader-faults", "clock-skew", "config-refused"];

/** The reasons a purchase may be declined with, counted in a report (a closed set: the counters never grow). */
export interface StatusCounts {
  approvals: number;
  /** Declines by reason; only reasons seen since the last report appear. */
  declines: { [reason: string]: number };
  /** Purchases whose outcome was left unknown by a pulled card. */
  tears: number;
  readerFaults: number;
  /** Front-end calls that failed (unreachable, 5xx, not the protocol). */
  frontendErrors: number;
}

export interface StatusReport {
  terminalId: string;
  firmware: string;
  reason: StatusReason;
  /** Counts the reports since start; a gap says reports were lost. */
  sequence: number;
  /** The terminal's own clock, epoch ms. */
  sentAt: number;
  uptimeMs: number;
  journal: { usedBlocks: number; blocks: number; liveRecords: number; fillPercent: number };
  pendingCompletions: number;
  unresolved: number;
  counts: StatusCounts;
  /** Tap to approval since the last report, ms; absent without approvals. */
  tapToApprovedMs?: { p50: number; p90: number; samples: number };
  /** The terminal's clock minus the front-end's `Date` header at the last answer, ms (positive: terminal ahead). */
  clockOffsetMs?: number;
  /** The configuration the terminal runs and what it refused of the last one it received. */
  config: { version: number; refused: { field: string; code: string; message: string }[] };
  /** The XS machine, where the host can tell (Moddable's Instrumentation on the ESP32). */
  heap?: { usedBytes?: number; slotBytes?: number; chunkBytes?: number };
}

/** The terminal's effective configuration: defaults, then its group, then its own settings, key by key. */
export interface ConfigAnswer {
  terminalId: string;
  /** Grows with every change that reaches this terminal (0: nothing configured yet). */
  version: number;
  settings: TerminalSettings;
}

/**
 * The front-end's answer to a status report: the version of the configuration saved for this terminal now. A
 * terminal that runs an older one fetches the new one at its next idle moment, so a change arrives within a report
 * interval instead of at the next routes refresh.
 */
export interface StatusAnswer {
  configVersion: number;
}
