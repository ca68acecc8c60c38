import { CodedError } from "../errors/errors";

/**
 * The settings an operator may change remotely, and the one validator both sides use: the front-end refuses a bad
 * change when it is saved, and the terminal checks again what it receives (a front-end of another version, a bug, a
 * corrupted journal), so a bad value is never applied. Device code: runs on XS as on Node.
 */

export type ApplicationName = "tunion" | "cityunion";

export interface TerminalSettings {
  /** The largest amount a purchase may have, fen; a larger one is declined with `amount-over-limit`. */
  maxAmount?: number;
  /** Which application to use on a card that carries both. */
  applicationOrder?: ApplicationName[];
  /** Wait for the front-end's completion acknowledgement before approving. */
  strict?: boolean;
  /** In strict mode, how long to wait for that acknowledgement before approving anyway (it is still delivered). */
  strictTimeoutMs?: number;
  /** After an unknown outcome, how long to keep looking for the same card within the same payment. */
  recoveryWindowMs?: number;
  /** An unknown outcome still unresolved after this long is reported to the front-end for reconciliation. */
  reportUnresolvedAfterMs?: number;
  /** How often the routing table is fetched again. */
  routesRefreshMs?: number;
  /** How often idle front-end connections are checked and re-opened, so taps never wait for a handshake. */
  keepWarmMs?: number;
  /** How often the terminal sends a status report. */
  statusEveryMs?: number;
  /** Text for the indicator or the controller's display; "" clears it. */
  message?: string;
}

export type SettingName = keyof TerminalSettings;

/** The longest `message`, in characters: a two-line vending display, or one MDB text frame, holds about this much. */
export const MESSAGE_MAX_LENGTH = 64;

/** Milliseconds settings, with the range each one accepts (outside it a terminal would misbehave or hammer). */
const DURATIONS: { readonly [name: string]: readonly [number, number] } = Object.freeze({
  strictTimeoutMs: [100, 60_000],
  recoveryWindowMs: [1_000, 600_000],
  reportUnresolvedAfterMs: [1_000, 7 * 24 * 3_600_000],
  routesRefreshMs: [1_000, 24 * 3_600_000],
  keepWarmMs: [1_000, 3_600_000],
  statusEveryMs: [1_000, 24 * 3_600_000],
});

/** The largest amount the front-end protocol carries (an unsigned 32-bit fen count, as INIT does). */
export const MAX_AMOUNT_LIMIT = 0xffffffff;

export const SETTING_NAMES: readonly SettingName[] = Object.freeze([
  "maxAmount", "applicationOrder", "strict", "strictTimeoutMs", "recoveryWindowMs", "reportUnresolvedAfterMs",
  "routesRefreshMs", "keepWarmMs", "statusEveryMs", "message",
] as SettingName[]);

/** A refused setting: `code` says how (CONFIG_NOT_OBJECT, CONFIG_UNKNOWN_KEY, CONFIG_TYPE, CONFIG_RANGE), `field` which. */
export class SettingError extends CodedError {
  readonly field: string;
  constructor(code: string, field: string, message: string) {
    super(code, `${field}: ${message}`);
    this.field = field;
  }
}

function checkOne(name: string, value: unknown): SettingError | undefined {
  if (name === "maxAmount") {
    if (typeof value !== "number" || !Number.isInteger(value)) return new SettingError("CONFIG_TYPE", name, "must be a whole number of fen");
    if (value < 1 || value > MAX_AMOUNT_LIMIT) return new SettingError("CONFIG_RANGE", name, `must be 1..${MAX_AMOUNT_LIMIT} fen`);
    return undefined;
  }
  if (name === "applicationOrder") {
    if (!Array.isArray(value)) return new SettingError("CONFIG_TYPE", name, "must be a list of application names");
    if (value.length < 1 || value.length > 2) return new SettingError("CONFIG_RANGE", name, "must name one or two applications");
    for (const item of value) {
      if (item !== "tunion" && item !== "cityunion") return new SettingError("CONFIG_RANGE", name, "names tunion or cityunion only");
    }
    if (value.length === 2 && value[0] === value[1]) return new SettingError("CONFIG_RANGE", name, "names an application twice");
    return undefined;
  }
  if (name === "strict") return typeof value === "boolean" ? undefined : new SettingError("CONFIG_TYPE", name, "must be true or false");
  if (name === "message") {
    if (typeof value !== "string") return new SettingError("CONFIG_TYPE", name, "must be text");
    if (value.length > MESSAGE_MAX_LENGTH) return new SettingError("CONFIG_RANGE", name, `must be at most ${MESSAGE_MAX_LENGTH} characters`);
    // Control characters would move a display's cursor or end an MDB text frame early.
    for (let i = 0; i < value.length; i++) {
      const c = value.charCodeAt(i);
      if (c < 0x20 || c === 0x7f) return new SettingError("CONFIG_RANGE", name, "must not contain control characters");
    }
    return undefined;
  }
  const range = Object.prototype.hasOwnProperty.call(DURATIONS, name) ? DURATIONS[name] : undefined;
  if (!range) return new SettingError("CONFIG_UNKNOWN_KEY", name, "is not a setting");
  if (typeof value !== "number" || !Number.isInteger(value)) return new SettingError("CONFIG_TYPE", name, "must be a whole number of milliseconds");
  if (value < range[0] || value > range[1]) return new SettingError("CONFIG_RANGE", name, `must be ${range[0]}..${range[1]} ms`);
  return undefined;
}

/** Every problem of a settings object (empty when it is good), in the order of its keys. */
export function settingErrors(value: unknown): SettingError[] {
  if (!value || typeof value !== "object" || Array.isArray(value)) return [new SettingError("CONFIG_NOT_OBJECT", "settings", "must be an object")];
  const errors: SettingError[] = [];
  for (const name of Object.keys(value)) {
    const error = checkOne(name, (value as { [key: string]: unknown })[name]);
    if (error) errors.push(error);
  }
  return errors;
}

/** The settings, checked: a copy holding only known keys; throws the first SettingError otherwise. */
export function checkSettings(value: unknown): TerminalSettings {
  const errors = settingErrors(value);
  if (errors.length) throw errors[0]!;
  return copySettings(value as TerminalSettings);
}

/** Layers settings, later ones winning key by key (defaults, then group, then terminal). */
export function mergeSettings(...layers: TerminalSettings[]): TerminalSettings {
  const merged: { [key: string]: unknown } = {};
  for (const layer of layers) {
    for (const name of Object.keys(layer)) {
      const v = (layer as { [key: string]: unknown })[name];
      if (v !== undefined) merged[name] = Array.isArray(v) ? v.slice() : v;
    }
  }
  return merged as TerminalSettings;
}

function copySettings(value: TerminalSettings): TerminalSettings {
  return mergeSettings(value);
}
