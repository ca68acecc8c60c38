/** The operator listener's part of the front-end configuration (`operator: {...}`), and its checks. */
import { Accounts, OperatorAuthError, type OperatorAccount } from "./auth";
import type { LoginLimits } from "./login-guard";
import { CodedError } from "../../../modules/errors/errors";

export interface OperatorConfig {
  /** The console's own port (default 8445), separate from the terminals' mutual-TLS listener. */
  port?: number;
  host?: string;
  /** Operators and their scrypt password hashes (npm run frontend -- operator-add). */
  accounts?: OperatorAccount[];
  /**
   * No longer needed: sessions are kept in the database (a restart keeps them; logout, operator-remove and
   * operator-passwd end them). Still accepted, and checked to be at least 16 bytes as hex or base64.
   */
  sessionSecret?: string;
  /**
   * A configuration file whose `operator.accounts` the console re-reads when it changes (at most once a second), so
   * that operator-add, operator-passwd and operator-remove take effect without a restart. Set by loadConfigFile.
   */
  accountsFile?: string;
  /** Login lockout per source address and per account (operator/login-guard.ts for the defaults). */
  loginLimits?: LoginLimits;
  /** Threads that check passwords, apart from the terminals' (default 1). */
  passwordThreads?: number;
  /** How long a login lasts. Default 8 hours. */
  sessionHours?: number;
  /** The interval terminals report their status at; a terminal is offline after two of them without a report. Default 5 min. */
  statusEveryMs?: number;
  /** Whether an operator client certificate (CN in `operators`, signed by the terminal CA) also logs in. Default true. */
  clientCertificates?: boolean;
}

export class OperatorConfigError extends CodedError {
  constructor(message: string) {
    super("CONFIG", message);
  }
}

export function checkOperatorConfig(c: OperatorConfig): {
  accounts: Accounts; port: number; host: string; sessionMs: number; statusEveryMs: number; loginLimits: LoginLimits; passwordThreads: number;
} {
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
  const threads = c.passwordThreads ?? 1;
  if (!Number.isInteger(threads) || threads < 1 || threads > 8) throw new OperatorConfigError("operator.passwordThreads must be 1 to 8");
  const limits = c.loginLimits ?? {};
  if (typeof limits !== "object" || limits === null || Array.isArray(limits)) throw new OperatorConfigError("operator.loginLimits must be an object");
  for (const [key, value] of Object.entries(limits)) {
    if (!["freeFailures", "baseLockMs", "maxLockMs", "perAddressInFlight", "forgetAfterMs", "tarpitMs", "perAddressHeld"].includes(key)) throw new OperatorConfigError(`operator.loginLimits.${key} is not a setting`);
    if (!Number.isInteger(value) || (value as number) < 1) throw new OperatorConfigError(`operator.loginLimits.${key} must be a whole number above 0`);
  }
  return { accounts, port, host: c.host ?? "127.0.0.1", sessionMs: Math.round(hours * 3600_000), statusEveryMs: every, loginLimits: limits, passwordThreads: threads };
}

/** The session secret's bytes from hex or base64. */
export function secretBytes(text: string): Buffer {
  const bytes = /^([0-9A-Fa-f]{2})+$/.test(text) ? Buffer.from(text, "hex") : Buffer.from(text, "base64");
  if (bytes.length < 16) throw new OperatorConfigError("operator.sessionSecret needs at least 16 bytes (32 hex digits)");
  return bytes;
}
