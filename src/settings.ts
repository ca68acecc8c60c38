import type { Application } from "../modules/frontend-client/client";
import type { Journal, JournalRecord } from "../modules/journal/journal";
import { checkSettings, settingDefaults, settingErrors, SETTING_NAMES, type SettingError, type TerminalSettings } from "../modules/terminal-config/config";
import type { StatusReason } from "../modules/frontend-client/status";
import { writeRecord, type ConfigRecord } from "./records";
import { TerminalError, type TerminalEvent } from "./terminal-events";

/**
 * How a terminal is set up. The settings an operator may change remotely (limits, timings, the message) are
 * TerminalSettings, declared once with their validator; the rest is fixed at build or start.
 */
export interface TerminalConfig extends TerminalSettings {
  /** 12 hex digits: the 6-byte terminal ID sent in INIT, equal to the client certificate's CN. */
  terminalId: string;
  /** The level-1 front-end: it serves the routing table. */
  level1Url: string;
  /**
   * The terminal's own city code (4 digits): its level-2 routes are kept warm from the start, with level 1, so the
   * first local card of the day does not wait for a TLS handshake.
   */
  cityCode?: string;
  /** More city codes whose routes are kept warm from the start (a terminal near a city boundary, say). */
  warmCityCodes?: string[];
  detectIntervalMs?: number;
  /**
   * While the journal holds a torn purchase or refund, the idle terminal looks for a card every this many ms, so that
   * a tap at an idle machine settles it (src/idle-settle.ts). Default 400.
   */
  idlePollMs?: number;
  /** The firmware version the status reports name (package.json's, or the manifest's). */
  firmware?: string;
  /** How long a refund waits for the card to be (back) in the field, ms (src/refund.ts). */
  refundCardWaitMs?: number;
}

export type ResolvedConfig = Required<Omit<TerminalConfig, "applicationOrder" | "cityCode" | "warmCityCodes" | "refundCardWaitMs">> &
  { applicationOrder: Application[]; warmCityCodes: string[] };

/** The local configuration checked, with every setting it leaves out at its default (modules/terminal-config). */
export function resolveConfig(c: TerminalConfig): ResolvedConfig {
  if (!/^[0-9A-Fa-f]{12}$/.test(c.terminalId)) throw new TerminalError("BAD_CONFIG", "terminalId must be 12 hex digits");
  const warm = [...(c.cityCode ? [c.cityCode] : []), ...(c.warmCityCodes ?? [])];
  if (warm.some((city) => !/^[0-9]{4}$/.test(city))) throw new TerminalError("BAD_CONFIG", "cityCode and warmCityCodes take 4-digit city codes");
  const settings = settingDefaults() as { [key: string]: unknown };
  for (const name of SETTING_NAMES) {
    const local = c[name];
    if (local !== undefined && local !== null) settings[name] = local;
  }
  return {
    ...(settings as Required<TerminalSettings>),
    terminalId: c.terminalId.toUpperCase(),
    level1Url: c.level1Url,
    detectIntervalMs: c.detectIntervalMs ?? 50,
    idlePollMs: c.idlePollMs ?? 400,
    firmware: c.firmware ?? "unknown",
    warmCityCodes: warm,
  };
}

export interface RemoteSettingsOptions {
  journal: Journal;
  base: ResolvedConfig;
  emit: (event: TerminalEvent) => void;
  report: (reason: StatusReason) => void;
  retire: (seq: number) => void;
  /** The terminal is idle: a configuration received now is applied at once. */
  idle: () => boolean;
  starting: () => boolean;
  closed: () => boolean;
  /** The periodic jobs' intervals changed. */
  onIntervals: () => void;
}

/**
 * The remote configuration: the settings in force (the local ones with the accepted remote ones over them), one
 * accepted but waiting for the end of a purchase, and the last refusal, which the status reports carry.
 */
export class RemoteSettings {
  readonly #o: RemoteSettingsOptions;
  #config: ResolvedConfig;
  #version = 0;
  #seq: number | undefined;
  #pending: { version: number; settings: TerminalSettings } | undefined;
  #refused: { version: number; errors: SettingError[] } | undefined;

  constructor(o: RemoteSettingsOptions) {
    this.#o = o;
    this.#config = o.base;
  }

  /** The settings in force now. */
  get current(): ResolvedConfig {
    return this.#config;
  }

  /** The configuration version in force (0: the local settings only). */
  get version(): number {
    return this.#version;
  }

  /** Whether the front-end names a configuration this terminal neither runs, nor holds for later, nor refused. */
  isNew(version: number): boolean {
    return version !== (this.#pending?.version ?? this.#version) && version !== this.#refused?.version;
  }

  get refused(): SettingError[] {
    return this.#refused?.errors ?? [];
  }

  /** A configuration record from the journal at start: the last one wins, and is applied before the first purchase. */
  recover(raw: JournalRecord, record: ConfigRecord): void {
    if (this.#seq !== undefined) this.#o.retire(this.#seq);
    this.#seq = raw.seq;
    // Checked again: a record written by another firmware version may hold what this one refuses.
    if (settingErrors(record.settings).length === 0) this.#pending = { version: record.version, settings: checkSettings(record.settings) };
  }

  /** A configuration from the front-end: refused whole if any field is bad, else journaled and applied between purchases. */
  receive(version: number, settings: TerminalSettings): void {
    if (version === (this.#pending?.version ?? this.#version)) return;
    const errors = settingErrors(settings);
    if (errors.length) {
      if (this.#refused?.version === version) return;
      this.#refused = { version, errors };
      this.#o.emit({ event: "config", version, applied: false, refused: errors.map((e) => e.message) });
      this.#o.report("config-refused");
      return;
    }
    const record: ConfigRecord = { k: "config", version, settings: checkSettings(settings) };
    try {
      const seq = writeRecord(this.#o.journal, record);
      if (this.#seq !== undefined) this.#o.retire(this.#seq);
      this.#seq = seq;
    } catch (error) {
      // Applied all the same; without its record a restart without network runs the previous one until the next fetch.
      this.#o.emit({ event: "error", code: "JOURNAL_WRITE", message: `configuration ${version} not journaled: ${(error as Error).message}` });
    }
    this.#pending = { version, settings: record.settings };
    if (this.#o.idle()) this.applyPending();
  }

  /** Puts a waiting configuration in force; called only when no purchase runs. */
  applyPending(): void {
    const pending = this.#pending;
    if (!pending || this.#o.closed()) return;
    this.#pending = undefined;
    const before = this.#config;
    // The checked settings hold known keys only, with their values copied: each one set replaces the local one.
    const next: ResolvedConfig = { ...this.#o.base, ...(pending.settings as Partial<ResolvedConfig>) };
    this.#config = next;
    this.#version = pending.version;
    if (this.#refused && this.#refused.version <= pending.version) this.#refused = undefined;
    if (!this.#o.starting() && (next.routesRefreshMs !== before.routesRefreshMs || next.keepWarmMs !== before.keepWarmMs ||
        next.statusEveryMs !== before.statusEveryMs)) this.#o.onIntervals();
    this.#o.emit({ event: "config", version: pending.version, applied: true });
    if (next.message !== before.message && !this.#o.starting()) this.#o.emit({ event: "message", text: next.message });
  }
}
