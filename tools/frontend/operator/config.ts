/** The operator listener's part of the front-end configuration (`operator: {...}`), and its checks. */
import { Accounts, OperatorAuthError, type OperatorAccount } from "./auth";

export interface OperatorConfig {
  /** The console's own port (default 8445), separate from the terminals' mutual-TLS listener. */
  port?: number;
  host?: string;
  /** Operators and their scrypt password hashes (npm run frontend -- operator-add). */
  accounts?: OperatorAccount[];
  /**
   * The key that signs session cookies, at least 16 bytes as hex or base64. Absent: a random one at each start (the
   * primary of --workers hands the same one to all its workers), so a restart logs everyone out.
   */
  sessionSecret?: string;
  /** How long a login lasts. Default 8 hours. */
  sessionHours?: number;
  /** The interval terminals report their status at; a terminal is offline after two of them without a report. Default 5 min. */
  statusEveryMs?: number;
  /** Whether an operator client certificate (CN in `operators`, signed by the terminal CA) also logs in. Default true. */
  clientCertificates?: boolean;
}

export class OperatorConfigError extends Error {
  readonly code = "CONFIG";
}

export function checkOperatorConfig(c: OperatorConfig): { accounts: Accounts; port: number; host: string; sessionMs: number; statusEveryMs: number } {
  if (typeof c !== "object" || c === null || Array.isArray(c)) throw new OperatorConfigError("operator must be an object");
  const port = c.port ?? 8445;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new OperatorConfigError("operator.port must be 0..65535");
  const hours = c.sessionHours ?? 8;
  if (typeof hours !== "number" || !(hours > 0) || hours > 24 * 30) throw new OperatorConfigError("operator.sessionHours must be above 0 and at most 720");
  const every = c.statusEveryMs ?? 300_000;
  if (!Number.isInteger(every) || every < 100) throw new OperatorConfigError("operator.statusEveryMs must be a whole number of milliseconds, at least 100");
  if (c.accounts !== undefined && !Array.isArray(c.accounts)) throw new OperatorConfigError("operator.accounts must be a list");
  let accounts: Accounts;
  try {
    accounts = new Accounts(c.accounts ?? []);
  } catch (e) {
    if (e instanceof OperatorAuthError) throw new OperatorConfigError(`operator.accounts: ${e.message}`);
    throw e;
  }
  return { accounts, port, host: c.host ?? "127.0.0.1", sessionMs: Math.round(hours * 3600_000), statusEveryMs: every };
}

/** The session secret's bytes from hex or base64. */
export function secretBytes(text: string): Buffer {
  const bytes = /^([0-9A-Fa-f]{2})+$/.test(text) ? Buffer.from(text, "hex") : Buffer.from(text, "base64");
  if (bytes.length < 16) throw new OperatorConfigError("operator.sessionSecret needs at least 16 bytes (32 hex digits)");
  return bytes;
}
