/**
 * The front-end's journal: SQLite (better-sqlite3 12) in WAL mode. No answer leaves before its writes are committed
 * and the WAL is fsynced, so a SIGKILL or a power cut loses nothing that was acknowledged.
 *
 * Group commit: requests write inside one open transaction and wait for `durable()`. A setImmediate commits once the
 * current burst of requests has been processed, and one fsync of the WAL then covers every request of the burst.
 * SQLite itself runs with synchronous = NORMAL (it appends to the WAL without syncing) and the journal fsyncs the WAL
 * file on libuv's thread pool before it resolves the waiters: the same guarantee as synchronous = FULL, but the event
 * loop goes on serving while the disk syncs. Should the WAL file not be reachable, SQLite's own FULL sync is used.
 */
import { POSTGRES_DIALECT, SQLITE_DIALECT, type SqlDialect } from "./dialect";
import Database from "better-sqlite3";
import { closeSync, fsync, fsyncSync, mkdirSync, openSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { Worker } from "node:worker_threads";
import { FrontendError } from "../errors";
import { FLEET_MIGRATION } from "../fleet/schema";
import { LIMITS_MIGRATION } from "../limits/schema";
import { TERMINALS_MIGRATION } from "../terminals/schema";
import { SESSIONS_MIGRATION } from "../operator/schema";

type Db = Database.Database;

/** What differs between the engines in a migration: 64-bit integers and a generated key. */
export { POSTGRES_DIALECT, SQLITE_DIALECT, type SqlDialect };

/**
 * Each migration runs once, in order, in its own transaction, on either engine (the SQL is their common subset; only
 * the dialect's types differ). SQLite records how far a database is in user_version, PostgreSQL in schema_version.
 */
export const MIGRATIONS: ((d: SqlDialect) => string)[] = [
  (d) => `CREATE TABLE terminals (
     terminal_id TEXT PRIMARY KEY,
     last_tsn ${d.int64} NOT NULL
   );
   CREATE TABLE purchases (
     id TEXT PRIMARY KEY,
     terminal_id TEXT NOT NULL,
     tsn ${d.int64} NOT NULL,
     order_no TEXT NOT NULL,
     application TEXT NOT NULL,
     transaction_type INTEGER NOT NULL,
     amount ${d.int64} NOT NULL,
     key_index INTEGER NOT NULL,
     key_version INTEGER NOT NULL,
     algorithm TEXT NOT NULL,
     issuer TEXT NOT NULL,
     city_code TEXT NOT NULL,
     card_type INTEGER NOT NULL,
     asn TEXT NOT NULL,
     ep_serial INTEGER NOT NULL,
     balance ${d.int64} NOT NULL,
     overdraft_limit ${d.int64} NOT NULL,
     basic_data TEXT NOT NULL,
     init_response TEXT NOT NULL,
     date TEXT NOT NULL,
     time TEXT NOT NULL,
     authorized_at ${d.int64} NOT NULL,
     status TEXT NOT NULL,
     outcome TEXT,
     mac2 TEXT,
     tac TEXT,
     mac2_valid INTEGER,
     tac_valid INTEGER,
     completion TEXT,
     answer TEXT,
     completed_at ${d.int64},
     reconciliation_reason TEXT,
     needs_review INTEGER NOT NULL DEFAULT 0,
     UNIQUE (terminal_id, tsn)
   );
   -- Partial indexes: each covers only the rows its one query looks for, so a purchase costs fewer index writes.
   CREATE INDEX purchases_card ON purchases (application, asn, ep_serial) WHERE status IN ('completed', 'flagged');
   CREATE INDEX purchases_open ON purchases (authorized_at) WHERE status = 'authorized';
   CREATE INDEX purchases_day ON purchases (date, terminal_id, tsn) WHERE status = 'completed';
   CREATE TABLE events (
     id ${d.serialKey},
     purchase_id TEXT NOT NULL,
     at ${d.int64} NOT NULL,
     kind TEXT NOT NULL,
     detail TEXT NOT NULL
   );
   CREATE INDEX events_purchase ON events (purchase_id);`,
  FLEET_MIGRATION,
  // Refunds back onto the card (a PBOC load), tied to their purchase: the database itself keeps each refund to at most
  // its purchase's amount, on the same card, and to one per purchase; and a card's online serial credits only once.
  (d) => `CREATE UNIQUE INDEX purchases_refund_key ON purchases (id, amount, application, asn);
   CREATE TABLE refunds (
     purchase_id TEXT PRIMARY KEY,
     purchase_amount ${d.int64} NOT NULL,
     application TEXT NOT NULL,
     asn TEXT NOT NULL,
     terminal_id TEXT NOT NULL,
     order_no TEXT NOT NULL,
     amount ${d.int64} NOT NULL,
     key_index INTEGER,
     key_version INTEGER,
     algorithm TEXT,
     online_serial INTEGER,
     balance ${d.int64},
     basic_data TEXT,
     init_response TEXT,
     date TEXT NOT NULL,
     time TEXT NOT NULL,
     mac2 TEXT,
     status TEXT NOT NULL,
     tac TEXT,
     tac_valid INTEGER,
     completion TEXT,
     answer TEXT,
     owed_reason TEXT,
     created_at ${d.int64} NOT NULL,
     completed_at ${d.int64},
     CHECK (amount > 0 AND amount <= purchase_amount),
     CHECK (status IN ('authorized', 'completed', 'flagged', 'owed', 'reconciliation')),
     FOREIGN KEY (purchase_id, purchase_amount, application, asn) REFERENCES purchases (id, amount, application, asn)
   );
   CREATE UNIQUE INDEX refunds_card_serial ON refunds (application, asn, online_serial) WHERE status IN ('completed', 'flagged');
   CREATE INDEX refunds_day ON refunds (date, terminal_id) WHERE status IN ('completed', 'flagged', 'owed');`,
  TERMINALS_MIGRATION,
  LIMITS_MIGRATION,
  SESSIONS_MIGRATION,
];

export const SCHEMA_VERSION = MIGRATIONS.length;

export type Durability = "full" | "normal";

export function openDatabase(file: string, durability: Durability = "full", readonly = false): Db {
  if (!readonly) mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  const db = new Database(file, { readonly, fileMustExist: readonly });
  try {
    db.pragma("busy_timeout = 5000");
    if (!readonly) {
      db.pragma("journal_mode = WAL");
      // FULL: the WAL is fsynced at every commit (NORMAL would survive a crash of this process but not a power cut).
      db.pragma(`synchronous = ${durability === "full" ? "FULL" : "NORMAL"}`);
      db.pragma("cache_size = -65536");
      // The refunds table's tie to its purchase is a foreign key: SQLite checks those only when asked to.
      db.pragma("foreign_keys = ON");
      migrate(db);
    } else if ((db.pragma("user_version", { simple: true }) as number) > SCHEMA_VERSION) {
      throw new FrontendError("JOURNAL_UNAVAILABLE", 503, `${file} has a newer schema than this program`);
    }
  } catch (error) {
    // A database this program will not use is closed at once, not left holding its files.
    db.close();
    throw error;
  }
  return db;
}

export function migrate(db: Db): number {
  const current = db.pragma("user_version", { simple: true }) as number;
  if (current > SCHEMA_VERSION) throw new Error(`journal schema ${current} is newer than this program (${SCHEMA_VERSION})`);
  for (let v = current; v < MIGRATIONS.length; v++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[v]!(SQLITE_DIALECT));
      db.pragma(`user_version = ${v + 1}`);
    }).immediate();
  }
  return SCHEMA_VERSION;
}

/** Told about each commit (the metrics: batch sizes, fsync time). */
export interface JournalObserver {
  committed(writes: number): void;
  synced(seconds: number): void;
}

interface Waiter {
  resolve: () => void;
  reject: (e: Error) => void;
}

export class Journal {
  readonly db: Db;
  #open = false;
  #waiters: Waiter[] = [];
  #scheduled = false;
  #closed = false;
  /** Batches committed and their sizes, for health and the benchmark. */
  commits = 0;
  observer: JournalObserver | undefined;
  committedWrites = 0;
  #writesInBatch = 0;

  #checkpointer: Worker | undefined;
  #checkpointerStopped: Promise<void> = Promise.resolve();
  readonly durability: Durability;
  /** The WAL file, fsynced after each commit when durability is full; undefined = SQLite syncs by itself. */
  #walFd: number | undefined;
  #walPath: string;
  #syncing: Promise<void> | undefined;

  constructor(file: string, durability: Durability = "full", options: { checkpointMs?: number } = {}) {
    this.durability = durability;
    this.#walPath = `${path.resolve(file)}-wal`;
    this.db = openDatabase(file, durability === "full" ? "normal" : durability);
    if (durability === "full") this.#openWal();
    if (options.checkpointMs !== 0) this.#startCheckpointer(path.resolve(file), options.checkpointMs ?? 250);
  }

  /** Whether commits are made durable by the journal's own fsync of the WAL (rather than by SQLite's FULL sync). */
  get syncsWal(): boolean {
    return this.#walFd !== undefined;
  }

  #openWal(): void {
    try {
      this.#walFd = openSync(this.#walPath, "r");
    } catch {
      this.#walFd = undefined;
      this.db.pragma("synchronous = FULL");
    }
  }

  /**
   * Checkpoints (copying the WAL into the database file, with its fsync) run on a worker thread with its own
   * connection, so the event loop only ever waits for the WAL append of its own commits. The main connection keeps
   * a high automatic checkpoint as a safety net should the worker stop.
   */
  #startCheckpointer(file: string, intervalMs: number): void {
    this.db.pragma("wal_autocheckpoint = 20000");
    const modulePath = createRequire(import.meta.url).resolve("better-sqlite3");
    const code = `
      const { parentPort, workerData } = require("node:worker_threads");
      const Database = require(workerData.modulePath);
      // fileMustExist: a worker that starts late, after the journal was closed and its files removed, must not make an empty one.
      const db = new Database(workerData.file, { fileMustExist: true });
      db.pragma("busy_timeout = 1000");
      const timer = setInterval(() => { try { db.pragma("wal_checkpoint(PASSIVE)"); } catch {} }, workerData.intervalMs);
      parentPort.on("message", () => { clearInterval(timer); try { db.close(); } catch {} parentPort.close(); });`;
    const worker = new Worker(code, { eval: true, workerData: { file, modulePath, intervalMs } });
    worker.on("error", () => { /* the main connection's automatic checkpoint takes over */ });
    this.#checkpointerStopped = new Promise((resolve) => worker.once("exit", () => resolve()));
    worker.unref();
    this.#checkpointer = worker;
  }

  /**
   * Runs fn inside the open batch; its effects become durable at the next commit. With atomic (the default) fn runs in
   * a savepoint, so a throw undoes all of it; a single statement is atomic by itself and can skip the savepoint.
   */
  write<T>(fn: () => T, atomic = true): T {
    if (this.#closed) throw new FrontendError("JOURNAL_UNAVAILABLE", 503, "journal closed");
    if (!this.#open) {
      this.db.exec("BEGIN IMMEDIATE");
      this.#open = true;
    }
    this.#writesInBatch++;
    this.#schedule();
    return atomic ? this.db.transaction(fn)() : fn();
  }

  /** Resolves once everything written so far is committed (at once when nothing is pending). */
  durable(): Promise<void> {
    // Committed rows are visible before their fsync ends: an answer built from them waits for that fsync too.
    if (!this.#open) return this.#syncing ?? Promise.resolve();
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => this.commit());
  }

  /** Commits the open batch; `wait` syncs on this thread (used by close, which cannot wait for the thread pool). */
  commit(wait = false): void {
    this.#scheduled = false;
    if (!this.#open) return;
    const waiters = this.#waiters;
    this.#waiters = [];
    try {
      this.db.exec("COMMIT");
      this.#open = false;
      this.commits++;
      this.committedWrites += this.#writesInBatch;
      this.observer?.committed(this.#writesInBatch);
      this.#writesInBatch = 0;
      if (this.#walFd === undefined) {
        for (const w of waiters) w.resolve();
        return;
      }
      if (wait) {
        fsyncSync(this.#walFd);
        for (const w of waiters) w.resolve();
        return;
      }
      // Each fsync covers everything committed before it started, so waiting for the latest one is enough.
      const syncStarted = process.hrtime.bigint();
      const syncing = new Promise<void>((resolve, reject) => {
        fsync(this.#walFd!, (error) => {
          this.observer?.synced(Number(process.hrtime.bigint() - syncStarted) / 1e9);
          if (this.#syncing === syncing) this.#syncing = undefined;
          if (!error) {
            for (const w of waiters) w.resolve();
            resolve();
            return;
          }
          const failed = new FrontendError("JOURNAL_UNAVAILABLE", 503, `journal sync failed: ${error.message}`);
          for (const w of waiters) w.reject(failed);
          reject(failed);
        });
      });
      syncing.catch(() => { /* reported to the waiters */ });
      this.#syncing = syncing;
    } catch (e) {
      try {
        if (this.db.inTransaction) this.db.exec("ROLLBACK");
      } catch { /* the connection is gone; the waiters learn below */ }
      this.#open = false;
      this.#writesInBatch = 0;
      const error = new FrontendError("JOURNAL_UNAVAILABLE", 503, `journal commit failed: ${(e as Error).message}`);
      for (const w of waiters) w.reject(error);
    }
  }

  /**
   * Commits and closes the main connection at once; the promise resolves once the checkpoint worker has closed its own
   * connection too, after which nothing of this journal touches its files (a caller removing them waits for it).
   */
  close(): Promise<void> {
    if (this.#closed) return this.#checkpointerStopped;
    this.commit(true);
    this.#closed = true;
    // The worker was unref'd so an idle journal never holds a process open; a caller awaiting close() needs the loop
    // to live until the worker's exit arrives, or Node ends with that await unsettled (exit code 13).
    this.#checkpointer?.ref();
    this.#checkpointer?.postMessage("close");
    this.db.close();
    if (this.#walFd !== undefined) {
      // SQLite may have removed the WAL on close; the descriptor only kept it reachable for fsync.
      try { closeSync(this.#walFd); } catch { /* already gone */ }
      this.#walFd = undefined;
    }
    return this.#checkpointerStopped;
  }
}
