/**
 * The terminal's settings on the ESP32, from `mc/config`: manifest.json's `config`, where every key can be overridden
 * on the mcconfig command line (`mcconfig ... pn532_rx=16 terminalId=310001029313`). Command-line values arrive as
 * strings, so numbers and flags are parsed here, once, with an error that names the key.
 */
import type { TerminalConfig } from "../../src/terminal";
import type { IndicatorPins } from "../../src/indicator";
import { CodedError } from "../../modules/errors/errors";
import { BIT_RATE_CODES, SERIAL_BAUD_CODES } from "../../modules/pn532/commands";

export class ConfigError extends CodedError {
  constructor(message: string) {
    super("BAD_CONFIG", message);
  }
}

export interface UartPins {
  port: number;
  receive: number;
  transmit: number;
  baud: number;
}

/** How fast the PN532 runs: the UART rates to raise the line to after start-up, and the highest radio bit rate. */
export interface Pn532LineSettings {
  /** Fastest first; empty = the line stays at pn532_baud. The same rates go to the driver and the host's UART list. */
  baudRates: number[];
  /** kbps: 106, 212 or 424 (InPSL after activation, when the card's ATS allows it). */
  maxBitRate: number;
}

export interface Esp32Settings {
  terminal: TerminalConfig;
  pn532: UartPins;
  pn532Line: Pn532LineSettings;
  /** The JSON-lines controller port; undefined with controller "mdb". */
  controller: UartPins | undefined;
  /** controller "mdb": the MDB cashless device on these pins (modules/mdb/native/esp32, docs/mdb.md §8). */
  mdb: { receive: number; transmit: number; address: number; level: number } | undefined;
  indicator: { pins: IndicatorPins; activeLow: boolean } | undefined;
  journalPartition: string;
  sntpHosts: string[];
  dnsServers: string[];
  certificates: { ca: string; client: string; key: string };
}

type Raw = Record<string, unknown>;

/** A key given as "" is unset: the manifest lists every key, and Number("") would read it as pin 0. */
function given(raw: Raw, key: string): unknown {
  return raw[key] === "" ? undefined : raw[key];
}

function integer(raw: Raw, key: string, fallback?: number): number {
  const value = given(raw, key) ?? fallback;
  const n = typeof value === "string" ? Number(value) : value;
  if (typeof n !== "number" || !Number.isInteger(n) || n < 0) throw new ConfigError(`config ${key} must be a whole number (got ${String(value)})`);
  return n;
}

function text(raw: Raw, key: string, fallback?: string): string {
  const value = given(raw, key) ?? fallback;
  if (typeof value !== "string" || !value) throw new ConfigError(`config ${key} must be a string`);
  return value;
}

function flag(raw: Raw, key: string): boolean {
  const value = raw[key];
  return value === true || value === "true" || value === "1";
}

function list(raw: Raw, key: string, fallback: string): string[] {
  return text(raw, key, fallback).split(",").map((s) => s.trim()).filter((s) => s);
}

/** A comma list that may be empty ("" = none), unlike list(), which needs at least its fallback. */
function optionalList(raw: Raw, key: string, fallback: string): string[] {
  const value = raw[key] ?? fallback;
  if (typeof value !== "string") throw new ConfigError(`config ${key} must be a comma-separated string`);
  return value.split(",").map((s) => s.trim()).filter((s) => s);
}

/** City codes are the 4 digits of file 0x15 (docs/purse.md), checked here so a typo stops the build's first start. */
function cityCodes(raw: Raw, key: string): string[] {
  const codes = optionalList(raw, key, "");
  for (const code of codes) if (!/^[0-9]{4}$/.test(code)) throw new ConfigError(`config ${key} takes 4-digit city codes (got ${code})`);
  return codes;
}

function pn532Line(raw: Raw): Pn532LineSettings {
  const baudRates = optionalList(raw, "pn532_rates", "921600").map((r) => {
    const n = Number(r);
    if (SERIAL_BAUD_CODES[n] === undefined) throw new ConfigError(`config pn532_rates: ${r} is not a rate the PN532 can set (docs/pn532.md)`);
    return n;
  }).sort((a, b) => b - a);
  const maxBitRate = integer(raw, "nfc_max_kbps", 424);
  if (BIT_RATE_CODES[maxBitRate] === undefined) throw new ConfigError(`config nfc_max_kbps must be 106, 212 or 424 (got ${maxBitRate})`);
  return { baudRates, maxBitRate };
}

function uart(raw: Raw, prefix: string): UartPins {
  return { port: integer(raw, `${prefix}_port`), receive: integer(raw, `${prefix}_rx`), transmit: integer(raw, `${prefix}_tx`), baud: integer(raw, `${prefix}_baud`, 115200) };
}

export function readSettings(raw: Raw): Esp32Settings {
  const kind = text(raw, "indicator", "none");
  let indicator: Esp32Settings["indicator"];
  const buzzer = given(raw, "buzzer_pin") === undefined ? undefined : integer(raw, "buzzer_pin");
  if (kind === "led") indicator = { pins: { led: integer(raw, "led_pin"), buzzer }, activeLow: flag(raw, "indicator_active_low") };
  else if (kind === "rgb") {
    indicator = { pins: { red: integer(raw, "red_pin"), green: integer(raw, "green_pin"), blue: integer(raw, "blue_pin"), buzzer }, activeLow: flag(raw, "indicator_active_low") };
  } else if (kind !== "none") throw new ConfigError(`config indicator must be led, rgb or none (got ${kind})`);
  const pn532 = uart(raw, "pn532");
  const kind2 = text(raw, "controller", "json-lines");
  if (kind2 !== "json-lines" && kind2 !== "mdb") throw new ConfigError(`config controller must be json-lines or mdb (got ${kind2})`);
  const controller = kind2 === "json-lines" ? uart(raw, "controller") : undefined;
  if (controller && pn532.port === controller.port) throw new ConfigError("the PN532 and the controller port need different UARTs");
  let mdb: Esp32Settings["mdb"];
  if (kind2 === "mdb") {
    mdb = { receive: integer(raw, "mdb_rx"), transmit: integer(raw, "mdb_tx"), address: integer(raw, "mdb_address", 0x10), level: integer(raw, "mdb_level", 3) };
    if (mdb.address !== 0x10 && mdb.address !== 0x60) throw new ConfigError("config mdb_address must be 16 (0x10, cashless #1) or 96 (0x60, #2)");
    if (mdb.level < 1 || mdb.level > 3) throw new ConfigError("config mdb_level must be 1, 2 or 3");
    if ([pn532.receive, pn532.transmit].includes(mdb.receive) || [pn532.receive, pn532.transmit].includes(mdb.transmit)) {
      throw new ConfigError("the MDB pins must differ from the PN532's");
    }
  }
  const [cityCode, ...extra] = cityCodes(raw, "cityCode");
  if (extra.length) throw new ConfigError("config cityCode is one city code; more go in warmCityCodes");
  const warmCityCodes = cityCodes(raw, "warmCityCodes");
  return {
    terminal: {
      terminalId: text(raw, "terminalId"), level1Url: text(raw, "level1Url"), strict: flag(raw, "strict"), firmware: text(raw, "firmware", "unknown"),
      ...(cityCode ? { cityCode } : {}), ...(warmCityCodes.length ? { warmCityCodes } : {}),
    },
    pn532,
    pn532Line: pn532Line(raw),
    controller,
    mdb,
    indicator,
    journalPartition: text(raw, "journal_partition", "journal"),
    sntpHosts: list(raw, "sntp", "pool.ntp.org"),
    dnsServers: list(raw, "dns", "1.1.1.1,8.8.8.8"),
    certificates: { ca: text(raw, "ca_der", "ca.der"), client: text(raw, "client_der", "terminal.der"), key: text(raw, "key_der", "terminal.key.der") },
  };
}
