/**
 * The terminal's settings on the Linux build, from `mc/config` as on the ESP32 (hosts/esp32/config.ts): the
 * manifest's `config`, every key overridable on the mcconfig command line. Serial ports are device paths here (the
 * SDK's Linux serial takes a non-standard `device` option), the journal is a file, and the certificates are DER files
 * read at start, so a freshly made development PKI needs no rebuild.
 */
import type { TerminalConfig } from "../../src/terminal";
import { ConfigError } from "../esp32/config";

export interface LinSettings {
  terminal: TerminalConfig;
  pn532: { device: string; baud: number };
  controller: { device: string; baud: number };
  journal: { path: string; size: number };
  dnsServers: string[];
  certificates: { ca: string; client: string; key: string };
}

type Raw = Record<string, unknown>;

function text(raw: Raw, key: string, fallback?: string): string {
  const value = raw[key] === "" || raw[key] === undefined ? fallback : raw[key];
  if (typeof value !== "string" || !value) throw new ConfigError(`config ${key} must be a string`);
  return value;
}

function integer(raw: Raw, key: string, fallback: number): number {
  const value = raw[key] === "" || raw[key] === undefined ? fallback : raw[key];
  const n = typeof value === "string" ? Number(value) : value;
  if (typeof n !== "number" || !Number.isInteger(n) || n <= 0) throw new ConfigError(`config ${key} must be a positive whole number (got ${String(value)})`);
  return n;
}

export function readLinSettings(raw: Raw): LinSettings {
  const pn532 = { device: text(raw, "pn532_device"), baud: integer(raw, "pn532_baud", 115200) };
  const controller = { device: text(raw, "controller_device"), baud: integer(raw, "controller_baud", 115200) };
  if (pn532.device === controller.device) throw new ConfigError("the PN532 and the controller port need different devices");
  const strict = raw.strict === true || raw.strict === "true" || raw.strict === "1";
  return {
    terminal: { terminalId: text(raw, "terminalId"), level1Url: text(raw, "level1Url"), strict },
    pn532,
    controller,
    journal: { path: text(raw, "journal_file"), size: integer(raw, "journal_size", 65536) },
    dnsServers: text(raw, "dns", "127.0.0.1").split(",").map((s) => s.trim()).filter((s) => s),
    certificates: { ca: text(raw, "ca_der"), client: text(raw, "client_der"), key: text(raw, "key_der") },
  };
}
