import type { Clock } from "../modules/device/types";
import type { FrontendClient } from "../modules/frontend-client/client";
import type { StatusReason } from "../modules/frontend-client/status";
import type { SettingError } from "../modules/terminal-config/config";
import type { Telemetry } from "./telemetry";

export interface StatusReportsOptions {
  telemetry: Telemetry;
  client: FrontendClient;
  clock: Clock;
  level1Url: () => string;
  /** No purchase, refund or recovery runs: a report may go now. */
  idle: () => boolean;
  closed: () => boolean;
  counts: () => { pendingCompletions: number; unresolved: number };
  config: () => { version: number; refused: SettingError[] };
  /** The configuration version the front-end's answer names (the one saved for this terminal now). */
  configVersion: (version: number) => void;
}

/**
 * The scheduling of status reports to level 1: one in flight at a time, none while a purchase runs (a report never
 * takes time from one), and the reason of a report that had to wait kept for when the terminal is free.
 */
export class StatusReports {
  readonly #o: StatusReportsOptions;
  /** A report in flight, and the reason of the next one to send (a trigger while busy or during a purchase). */
  #reporting = false;
  #due: StatusReason | undefined;

  constructor(o: StatusReportsOptions) {
    this.#o = o;
  }

  /**
   * Sends a status report, or keeps its reason for later: while a purchase runs or while another report is in
   * flight. A report that fails is counted and not retried; the next one carries on.
   */
  report(reason: StatusReason): void {
    const o = this.#o;
    if (o.closed()) return;
    if (this.#reporting || !o.idle()) {
      this.#due ??= reason;
      return;
    }
    this.#reporting = true;
    this.#due = undefined;
    const config = o.config();
    const report = o.telemetry.report(reason, {
      ...o.counts(),
      // Bounded, so a report stays well inside the front-end's body limit (4 KB by default).
      config: { version: config.version, refused: config.refused.slice(0, 8).map((e) => ({ field: e.field.slice(0, 64), code: e.code, message: e.message.slice(0, 120) })) },
    });
    o.client.status(o.level1Url(), report).then((answer) => {
      this.checkClock();
      o.configVersion(answer.configVersion);
    }, () => o.telemetry.frontendError()).then(() => {
      this.#reporting = false;
      const due = this.#due;
      if (due) {
        this.#due = undefined;
        this.report(due);
      }
    });
  }

  /** Between purchases: sends the report that waited for the end of one, unless another is in flight. */
  sendDue(): void {
    const due = this.#due;
    if (due && !this.#reporting) {
      this.#due = undefined;
      this.report(due);
    }
  }

  /** Compares the terminal's clock with the front-end's last Date header; an alert is reported. */
  checkClock(): void {
    const alert = this.#o.telemetry.checkClock(this.#o.client.serverDate, this.#o.clock.now());
    if (alert) this.report(alert);
  }
}
