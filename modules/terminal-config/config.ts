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

/** The largest amount the front-end protocol carries (an unsigned 32-bit fen count, as INIT does). */
export const MAX_AMOUNT_LIMIT = 0xffffffff;

/** How a setting's value is written and checked: fen, application names, a flag, milliseconds or display text. */
export type SettingKind = "amount" | "applications" | "boolean" | "duration" | "text";

export interface SettingSpec<T> {
  kind: SettingKind;
  /** The value a terminal runs with when neither its local configuration nor the front-end sets one. */
  default: T;
  /** The accepted range: fen or ms for numbers, characters for text (outside it a terminal would misbehave or hammer). */
  min?: number;
  max?: number;
}

/**
 * Every remote setting, written once: its name (the key), kind, default and range. The validator, the terminal's
 * defaults and its merging of a remote configuration all read this table; a field of TerminalSettings without a
 * row here does not typecheck.
 */
export const SETTINGS: { readonly [K in SettingName]-?: SettingSpec<Exclude<TerminalSettings[K], undefined>> } = Object.freeze({
  maxAmount: { kind: "amount", default: 100_000, min: 1, max: MAX_AMOUNT_LIMIT },
  applicationOrder: { kind: "applications", default: Object.freeze(["tunion", "cityunion"]) as ApplicationName[] },
  strict: { kind: "boolean", default: false },
  strictTimeoutMs: { kind: "duration", default: 5000, min: 100, max: 60_000 },
  recoveryWindowMs: { kind: "duration", default: 20_000, min: 1_000, max: 600_000 },
  reportUnresolvedAfterMs: { kind: "duration", default: 10 * 60_000, min: 1_000, max: 7 * 24 * 3_600_000 },
  routesRefreshMs: { kind: "duration", default: 60 * 60_000, min: 1_000, max: 24 * 3_600_000 },
  keepWarmMs: { kind: "duration", default: 30_000, min: 1_000, max: 3_600_000 },
  statusEveryMs: { kind: "duration", default: 5 * 60_000, min: 1_000, max: 24 * 3_600_000 },
  message: { kind: "text", default: "", max: MESSAGE_MAX_LENGTH },
});

export const SETTING_NAMES: readonly SettingName[] = Object.freeze(Object.keys(SETTINGS) as SettingName[]);

/** Every setting at its default (arrays copied, so a caller may keep and change the result). */
export function settingDefaults(): Required<TerminalSettings> {
  const defaults: { [key: string]: unknown } = {};
  for (const name of SETTING_NAMES) {
    const v = SETTINGS[name].default;
    defaults[name] = Array.isArray(v) ? v.slice() : v;
  }
  return defaults as Required<TerminalSettings>;
}

/** A refused setting: `code` says how (CONFIG_NOT_OBJECT, CONFIG_UNKNOWN_KEY, CONFIG_TYPE, CONFIG_RANGE), `field` which. */
export class SettingError extends CodedError {
  readonly field: string;
  constructor(code: string, field: string, message: string) {
    super(code, `${field}: ${message}`);
    this.field = field;
  }
}

function checkOne(name: string, value: unknown): SettingError | undefined {
  const spec = Object.prototype.hasOwnProperty.call(SETTINGS, name) ? (SETTINGS as { readonly [key: string]: SettingSpec<unknown> })[name] : undefined;
  if (!spec) return new SettingError("CONFIG_UNKNOWN_KEY", name, "is not a setting");
  const min = spec.min ?? 0;
  const max = spec.max ?? 0;
  switch (spec.kind) {
    case "amount":
      if (typeof value !== "number" || !Number.isInteger(value)) return new SettingError("CONFIG_TYPE", name, "must be a whole number of fen");
      if (value < min || value > max) return new SettingError("CONFIG_RANGE", name, `must be ${min}..${max} fen`);
      return undefined;
    case "applications":
      if (!Array.isArray(value)) return new SettingError("CONFIG_TYPE", name, "must be a list of application names");
      if (value.length < 1 || value.length > 2) return new SettingError("CONFIG_RANGE", name, "must name one or two applications");
      for (const item of value) {
        if (item !== "tunion" && item !== "cityunion") return new SettingError("CONFIG_RANGE", name, "names tunion or cityunion only");
      }
      if (value.length === 2 && value[0] === value[1]) return new SettingError("CONFIG_RANGE", name, "names an application twice");
      return undefined;
    case "boolean":
      return typeof value === "boolean" ? undefined : new SettingError("CONFIG_TYPE", name, "must be true or false");
    case "text":
      if (typeof value !== "string") return new SettingError("CONFIG_TYPE", name, "must be text");
      if (value.length > max) return new SettingError("CONFIG_RANGE", name, `must be at most ${max} characters`);
      // Control characters would move a display's cursor or end an MDB text frame early.
      for (let i = 0; i < value.length; i++) {
        const c = value.charCodeAt(i);
        if (c < 0x20 || c === 0x7f) return new SettingError("CONFIG_RANGE", name, "must not contain control characters");
      }
      return undefined;
    case "duration":
      if (typeof value !== "number" || !Number.isInteger(value)) return new SettingError("CONFIG_TYPE", name, "must be a whole number of milliseconds");
      if (value < min || value > max) return new SettingError("CONFIG_RANGE", name, `must be ${min}..${max} ms`);
      return undefined;
  }
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
