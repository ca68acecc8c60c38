/** What the operator console is started with: its listener, accounts and sessions, and the front-end's parts it shows. */
import type { CheckedLimits } from "../listen/limits";
import type { PurchaseService } from "../purchases/service";
import type { Store } from "../storage/store";
import type { Accounts, Sessions } from "./auth";
import type { AccountsFile } from "./accounts-file";
import type { LoginLimits } from "./login-guard";
import type { FrontendMetrics } from "./metrics";
import type { ConsoleQueries } from "./queries";

export interface ConsoleOptions {
  name: string;
  tls: { cert: string; key: string; ca: string };
  host: string;
  port: number;
  accounts: Accounts;
  sessions: Sessions;
  /** Operator certificate CNs that log in without a password (null: client certificates are not asked for). */
  certificateOperators: Set<string> | null;
  store: Store;
  queries: ConsoleQueries;
  service: PurchaseService;
  metrics: FrontendMetrics;
  /** The Prometheus text: this process's registry, or the aggregate over --workers. */
  metricsText: () => Promise<string>;
  openApi: () => string;
  statusEveryMs: number;
  now: () => number;
  logLevel: string;
  logFile?: string;
  /** Login lockout and queue limits (login-guard.ts). */
  loginLimits?: LoginLimits;
  /** Threads that check passwords (default 1). */
  passwordThreads?: number;
  /** The listener limits (config `listen`); defaults when absent. */
  limits?: CheckedLimits;
  /** Do not listen: the primary of --workers owns the console's port and hands connections in (listen/handoff.ts). */
  acceptsHandedConnections?: boolean;
  /** The configuration file the accounts are re-read from when it changes. */
  accountsFile?: AccountsFile;
}
