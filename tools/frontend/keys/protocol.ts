/**
 * The key service's wire: one JSON object a line over a Unix domain socket. Byte arrays travel as {"$b": hex}.
 * Requests {id, op, args}; answers {id, value} or {id, error: {code, statusCode, message}}; the service also pushes
 * {event: "keys", description} when the keys it serves change (a version created or retired).
 */
import { fromHex, toHex } from "../../../modules/bytes/bytes";
import type { Pkcs11Description } from "./pkcs11";

/** The environment variable that carries the key service's settings (JSON) from its supervisor. */
export const KEY_SERVICE_SETTINGS_ENV = "FRONTEND_KEY_SERVICE";

/** The narrow command set: nothing here can read, write or list a key. */
export const KEY_SERVICE_OPS = ["authorize", "verify", "authorizeLoad", "verifyLoad", "describe"] as const;
export type KeyServiceOp = (typeof KEY_SERVICE_OPS)[number];

export interface KeyServiceRequest {
  id: number;
  op: KeyServiceOp;
  args: unknown[];
}

export interface KeyServiceAnswer {
  id: number;
  value?: unknown;
  error?: { code: string; statusCode: number; message: string };
}

export interface KeyServicePush {
  event: "keys";
  description: Pkcs11Description;
}

export function encodeLine(message: object): string {
  return `${JSON.stringify(message, (_k, v: unknown) => (v instanceof Uint8Array ? { $b: toHex(v) } : v))}\n`;
}

export function decodeLine<T>(line: string): T {
  return JSON.parse(line, (_k, v: unknown) => {
    if (typeof v === "object" && v !== null && typeof (v as { $b?: unknown }).$b === "string" && Object.keys(v).length === 1) return fromHex((v as { $b: string }).$b);
    return v;
  }) as T;
}

/** Splits a stream's chunks into lines, calling onLine for each whole one. */
export function lineReader(onLine: (line: string) => void): (chunk: Buffer) => void {
  let rest = "";
  return (chunk) => {
    rest += chunk.toString("utf8");
    let nl: number;
    while ((nl = rest.indexOf("\n")) >= 0) {
      const line = rest.slice(0, nl);
      rest = rest.slice(nl + 1);
      if (line) onLine(line);
    }
  };
}
