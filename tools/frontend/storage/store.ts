/**
 * The front-end's storage: one interface, two engines.
 *
 * - SQLite (a file path in `database`): the embedded default, one process, group commit (journal.ts).
 * - PostgreSQL (`postgres://...`): any number of front-end processes on any number of hosts share one database.
 *
 * The rules that keep money right are held by the database, not by the process, so they hold with several writers:
 * - a TSN comes from one atomic upsert of the terminal's row (a row lock in PostgreSQL), and UNIQUE (terminal_id, tsn);
 * - a completion is one conditional UPDATE that only takes a purchase not yet settled and not already carrying the
 *   same completion, so two racing completions cannot both win and a repeat is answered from the row;
 * - the reconciliation sweep marks rows with one UPDATE ... WHERE status = 'authorized' (PostgreSQL: FOR UPDATE SKIP
 *   LOCKED), so with several sweepers each purchase is marked, and gets its event, exactly once.
 * Facts about the engines' guarantees: docs/frontend-storage.md.
 */
import type { Statement } from "better-sqlite3";
import pg from "pg";
import type { Application } from "../config";
import { FrontendError } from "../errors";
import { PostgresFleet, SqliteFleet, type FleetStore } from "../fleet/store";
import { PostgresLimits, SqliteLimits, type LimitsStore } from "../limits/store";
import { PostgresTerminals, SqliteTerminals, type TerminalsStore } from "../terminals/store";
import { PostgresSessions, SqliteSessions, type SessionStore } from "../operator/sessions";
import { Journal, MIGRATIONS, POSTGRES_DIALECT, SCHEMA_VERSION, type Durability } from "./journal";
import { INSERT_COLUMNS, INSERT_PURCHASE_SQL, type Outcome, type PurchaseInsert, type PurchaseRow, type PurchaseStatus } from "../purchases/rows";


/** What a completion writes; `event` names the event to log with it (flagged, reconciliation) or null. */
export { INSERT_COLUMNS, INSERT_PURCHASE_SQL, type PurchaseInsert, type PurchaseRow };

export interface SettleValues {
  status: PurchaseStatus;
  outcome: Outcome;
  mac2: string | null;
  tac: string | null;
  mac2Valid: number | null;
  tacValid: number | null;
  completion: string;
  answer: string;
  completedAt: number | null;
  reason: string | null;
  review: boolean;
  at: number;
  event: string | null;
}

export type Engine = "sqlite" | "postgres";

/** Purchases (below) and the fleet's status reports and configuration (fleet.ts). */
export interface Store {
  /** The fleet's status reports and configuration, on the same engine (fleet/store.ts). */
  readonly fleet: FleetStore;
  /** Terminal certificates: revocations and the certificates seen (terminals/store.ts). */
  readonly terminals: TerminalsStore;
  /** The daily amount ceiling (limits/store.ts). */
  readonly limits: LimitsStore;
  /** The operator console's sessions, on the same engine (operator/sessions.ts). */
  readonly operatorSessions: SessionStore;
  readonly engine: Engine;
  /** The schema version the database runs (after migrations). */
  readonly schemaVersion: number;
  /** Transactions committed and writes in them, for health and the benchmark. */
  readonly commits: number;
  readonly committedWrites: number;
  /** Whether a completed or flagged purchase already used this EP serial of this card. */
  spent(application: string, asn: string, epSerial: number): Promise<boolean>;
  /** Hands out the terminal's next TSN (durable before any purchase that uses it is). */
  reserveTsn(terminalId: string): Promise<number>;
  /**
   * spent() and reserveTsn() in one call (one round trip to the database or the journal writer): undefined when the
   * EP serial is spent, and then no TSN is used.
   */
  reserveTsnUnlessSpent(terminalId: string, application: string, asn: string, epSerial: number): Promise<number | undefined>;
  /** Records an authorization; resolves once durable. */
  insert(values: PurchaseInsert): Promise<void>;
  /** The row as committed; call durable() before answering from it (its fsync may still be running). */
  get(id: string): Promise<PurchaseRow | undefined>;
  /** Records a completion unless the purchase is settled or already carries it; false = it did not (re-read it). */
  settle(id: string, values: SettleValues): Promise<boolean>;
  /** Keeps a conflicting completion as an event and marks the purchase for review. */
  markConflict(id: string, at: number, completion: string): Promise<void>;
  /** Marks authorizations made at or before `before` for reconciliation; returns how many this call marked. */
  sweep(before: number, at: number): Promise<number>;
  /** Completed purchases of one business day, ordered by terminal and TSN. */
  settlement(businessDay: string): Promise<PurchaseRow[]>;
  /** Resolves once everything written so far is durable. */
  durable(): Promise<void>;
  close(): Promise<void>;
}

export const isPostgresUrl = (database: string): boolean => /^postgres(ql)?:\/\//i.test(database);

export interface StoreOptions {
  durability?: Durability;
  /** PostgreSQL connections per process (default 8). */
  poolSize?: number;
}

export async function openStore(database: string, options: StoreOptions = {}): Promise<Store> {
  if (isPostgresUrl(database)) return PostgresStore.open(database, options);
  return new SqliteStore(new Journal(database, options.durability ?? "full"));
}

const SETTLE_SET = `status = ?, outcome = ?, mac2 = ?, tac = ?, mac2_valid = ?, tac_valid = ?, completion = ?, answer = ?,
  completed_at = ?, reconciliation_reason = ?, needs_review = CASE WHEN ? = 1 THEN 1 ELSE needs_review END`;
// Not settled, and not already carrying this same completion (an 'unknown' outcome leaves the row in reconciliation).
const SETTLE_WHERE = "id = ? AND status NOT IN ('completed', 'voided', 'flagged') AND (completion IS NULL OR completion <> ?)";
const SETTLEMENT_SQL = "SELECT * FROM purchases WHERE date = ? AND status = 'completed' ORDER BY terminal_id, tsn";
const SPENT_SQL = "SELECT id FROM purchases WHERE application = ? AND asn = ? AND ep_serial = ? AND status IN ('completed', 'flagged') LIMIT 1";
const RESERVE_SQL = "INSERT INTO terminals (terminal_id, last_tsn) VALUES (?, 1) ON CONFLICT (terminal_id) DO UPDATE SET last_tsn = terminals.last_tsn + 1 RETURNING last_tsn";
const TIMEOUT_DETAIL = JSON.stringify({ reason: "timeout" });

function settleParams(id: string, v: SettleValues): unknown[] {
  return [v.status, v.outcome, v.mac2, v.tac, v.mac2Valid, v.tacValid, v.completion, v.answer, v.completedAt, v.reason, v.review ? 1 : 0, id, v.completion];
}

/** SQLite through the group-committing journal; every call runs synchronously on this thread and waits for the fsync. */
export class SqliteStore implements Store {
  readonly engine = "sqlite" as const;
  readonly schemaVersion = SCHEMA_VERSION;
  readonly journal: Journal;
  readonly fleet: SqliteFleet;
  readonly terminals: SqliteTerminals;
  readonly limits: SqliteLimits;
  readonly operatorSessions: SqliteSessions;
  readonly #sql: Record<"reserve" | "insert" | "get" | "spent" | "settle" | "review" | "event" | "overdue" | "settlement", Statement<unknown[]>>;

  constructor(journal: Journal) {
    this.journal = journal;
    this.fleet = new SqliteFleet(journal);
    this.terminals = new SqliteTerminals(journal);
    this.limits = new SqliteLimits(journal);
    this.operatorSessions = new SqliteSessions(journal);
    const db = journal.db;
    this.#sql = {
      reserve: db.prepare(RESERVE_SQL),
      insert: db.prepare(INSERT_PURCHASE_SQL),
      get: db.prepare("SELECT * FROM purchases WHERE id = ?"),
      spent: db.prepare(SPENT_SQL),
      settle: db.prepare(`UPDATE purchases SET ${SETTLE_SET} WHERE ${SETTLE_WHERE}`),
      review: db.prepare("UPDATE purchases SET needs_review = 1 WHERE id = ?"),
      event: db.prepare("INSERT INTO events (purchase_id, at, kind, detail) VALUES (?, ?, ?, ?)"),
      overdue: db.prepare("UPDATE purchases SET status = 'reconciliation', reconciliation_reason = 'timeout' WHERE status = 'authorized' AND authorized_at <= ? RETURNING id"),
      settlement: db.prepare(SETTLEMENT_SQL),
    };
  }

  get commits(): number {
    return this.journal.commits;
  }

  get committedWrites(): number {
    return this.journal.committedWrites;
  }

  async spent(application: string, asn: string, epSerial: number): Promise<boolean> {
    return this.#sql.spent.get(application, asn, epSerial) !== undefined;
  }

  async reserveTsn(terminalId: string): Promise<number> {
    // Not waited for: the purchase that uses it commits in the same or a later batch, and its fsync covers this one.
    return this.journal.write(() => (this.#sql.reserve.get(terminalId) as { last_tsn: number }).last_tsn, false);
  }

  async reserveTsnUnlessSpent(terminalId: string, application: string, asn: string, epSerial: number): Promise<number | undefined> {
    if (this.#sql.spent.get(application, asn, epSerial) !== undefined) return undefined;
    return this.reserveTsn(terminalId);
  }

  async insert(values: PurchaseInsert): Promise<void> {
    this.journal.write(() => this.#sql.insert.run(...values), false);
    await this.journal.durable();
  }

  async get(id: string): Promise<PurchaseRow | undefined> {
    // A row may be committed but its fsync not yet done: the service waits for durable() before answering from it.
    return this.#sql.get.get(id) as PurchaseRow | undefined;
  }

  async settle(id: string, v: SettleValues): Promise<boolean> {
    // A single statement is atomic by itself; only with its event are two statements kept together by a savepoint.
    const done = this.journal.write(() => {
      const changed = this.#sql.settle.run(...settleParams(id, v)).changes > 0;
      if (changed && v.event) this.#sql.event.run(id, v.at, v.event, v.completion);
      return changed;
    }, v.event !== null);
    await this.journal.durable();
    return done;
  }

  async markConflict(id: string, at: number, completion: string): Promise<void> {
    this.journal.write(() => {
      this.#sql.event.run(id, at, "conflicting-completion", completion);
      this.#sql.review.run(id);
    });
    await this.journal.durable();
  }

  async sweep(before: number, at: number): Promise<number> {
    const rows = this.journal.write(() => {
      const marked = this.#sql.overdue.all(before) as { id: string }[];
      for (const r of marked) this.#sql.event.run(r.id, at, "reconciliation", TIMEOUT_DETAIL);
      return marked;
    });
    await this.journal.durable();
    return rows.length;
  }

  async settlement(businessDay: string): Promise<PurchaseRow[]> {
    await this.journal.durable();
    return this.#sql.settlement.all(businessDay) as PurchaseRow[];
  }

  durable(): Promise<void> {
    return this.journal.durable();
  }

  async close(): Promise<void> {
    // Let in-flight WAL syncs finish before the descriptor they use is closed.
    await this.journal.durable().catch(() => undefined);
    await this.journal.close();
  }
}

/** `?` placeholders to PostgreSQL's `$n` (our SQL has no `?` inside literals). */
function numbered(sql: string): string {
  let n = 0;
  return sql.replace(/\?/g, () => `$${++n}`);
}

// BIGINT columns (TSNs, amounts, epoch milliseconds) come back as numbers: every one of them is below 2^53.
const INT8_OID = 20;
const types = {
  getTypeParser: ((oid: number, format?: "text" | "binary") =>
    oid === INT8_OID ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format as "text")) as typeof pg.types.getTypeParser,
};

/** A key for pg_advisory_xact_lock: migrations of several processes starting at once run one after the other. */
const MIGRATION_LOCK = 0x7472616e; // "tran"

/** Connection-level failures (server gone, restarting, refusing connections): retryable by the terminal. */
export function unavailable(e: unknown): FrontendError {
  if (e instanceof FrontendError) return e;
  const err = e as { code?: string; message?: string };
  return new FrontendError("JOURNAL_UNAVAILABLE", 503, `database: ${err.code ? `${err.code} ` : ""}${err.message ?? String(e)}`);
}

export class PostgresStore implements Store {
  readonly engine = "postgres" as const;
  readonly schemaVersion: number;
  readonly pool: pg.Pool;
  readonly fleet: PostgresFleet;
  readonly terminals: PostgresTerminals;
  readonly limits: PostgresLimits;
  readonly operatorSessions: PostgresSessions;
  commits = 0;
  committedWrites = 0;

  private constructor(pool: pg.Pool, schemaVersion: number) {
    this.pool = pool;
    this.schemaVersion = schemaVersion;
    this.operatorSessions = new PostgresSessions(pool, unavailable);
    this.fleet = new PostgresFleet(pool, unavailable, (writes) => {
      this.commits++;
      this.committedWrites += writes;
    });
    this.terminals = new PostgresTerminals(pool, unavailable);
    this.limits = new PostgresLimits(pool, unavailable);
  }

  static async open(url: string, options: StoreOptions = {}): Promise<PostgresStore> {
    const pool = new pg.Pool({
      connectionString: url, max: options.poolSize ?? 8, types,
      // Every wait has a bound: a connection attempt, and any one statement.
      connectionTimeoutMillis: 5_000, query_timeout: 10_000, statement_timeout: 10_000,
    });
    // "normal" durability: commits return before the WAL flush (a server crash may lose the last ones). The default,
    // synchronous_commit = on, answers only after the commit's WAL is flushed to disk.
    if (options.durability === "normal") pool.on("connect", (client) => { client.query("SET synchronous_commit = off").catch(() => {}); });
    // An idle connection the server drops (restart) must not crash the process; the pool replaces it.
    pool.on("error", () => {});
    try {
      const version = await PostgresStore.migrate(pool);
      return new PostgresStore(pool, version);
    } catch (e) {
      await pool.end().catch(() => undefined);
      throw unavailable(e);
    }
  }

  /** Applies the migrations not yet applied, each in its own transaction, under an advisory lock. */
  static async migrate(pool: pg.Pool): Promise<number> {
    const client = await pool.connect();
    try {
      for (;;) {
        await client.query("BEGIN");
        try {
          // Under the lock: CREATE TABLE IF NOT EXISTS itself is not safe against a concurrent twin.
          await client.query("SELECT pg_advisory_xact_lock($1)", [MIGRATION_LOCK]);
          // Created only when missing: a front-end running as a role without CREATE (docs/operate.md) gets this far.
          const exists = await client.query<{ t: string | null }>("SELECT to_regclass('schema_version')::text AS t");
          if (exists.rows[0]?.t == null) await client.query("CREATE TABLE schema_version (version INTEGER NOT NULL)");
          const { rows } = await client.query<{ v: number | null }>("SELECT max(version) AS v FROM schema_version");
          const current = rows[0]?.v ?? 0;
          if (current > SCHEMA_VERSION) throw new Error(`database schema ${current} is newer than this program (${SCHEMA_VERSION})`);
          if (current === SCHEMA_VERSION) {
            await client.query("COMMIT");
            return current;
          }
          await client.query(MIGRATIONS[current]!(POSTGRES_DIALECT));
          await client.query("INSERT INTO schema_version (version) VALUES ($1)", [current + 1]);
          await client.query("COMMIT");
        } catch (e) {
          await client.query("ROLLBACK").catch(() => undefined);
          throw e;
        }
      }
    } finally {
      client.release();
    }
  }

  async #query<R extends pg.QueryResultRow>(sql: string, params: unknown[], writes = 0): Promise<pg.QueryResult<R>> {
    try {
      const result = await this.pool.query<R>(sql, params);
      if (writes) {
        this.commits++;
        this.committedWrites += writes;
      }
      return result;
    } catch (e) {
      throw unavailable(e);
    }
  }

  async spent(application: string, asn: string, epSerial: number): Promise<boolean> {
    return (await this.#query(numbered(SPENT_SQL), [application, asn, epSerial])).rowCount! > 0;
  }

  async reserveTsn(terminalId: string): Promise<number> {
    // One autocommitted upsert: the terminal's row is locked while it counts, so no two processes get the same TSN.
    const { rows } = await this.#query<{ last_tsn: number }>(numbered(RESERVE_SQL), [terminalId], 1);
    return rows[0]!.last_tsn;
  }

  async reserveTsnUnlessSpent(terminalId: string, application: string, asn: string, epSerial: number): Promise<number | undefined> {
    // One statement: no row comes back (and no TSN is used) when a completed or flagged purchase holds the serial.
    const { rows } = await this.#query<{ last_tsn: number }>(`WITH spent AS (
        SELECT id FROM purchases WHERE application = $2 AND asn = $3 AND ep_serial = $4 AND status IN ('completed', 'flagged') LIMIT 1)
      INSERT INTO terminals (terminal_id, last_tsn) SELECT $1, 1 WHERE NOT EXISTS (SELECT 1 FROM spent)
      ON CONFLICT (terminal_id) DO UPDATE SET last_tsn = terminals.last_tsn + 1 RETURNING last_tsn`, [terminalId, application, asn, epSerial], 1);
    return rows[0]?.last_tsn;
  }

  async insert(values: PurchaseInsert): Promise<void> {
    await this.#query(numbered(INSERT_PURCHASE_SQL), values, 1);
  }

  async get(id: string): Promise<PurchaseRow | undefined> {
    return (await this.#query<PurchaseRow>("SELECT * FROM purchases WHERE id = $1", [id])).rows[0];
  }

  async settle(id: string, v: SettleValues): Promise<boolean> {
    // One statement: the UPDATE locks the row and re-checks its WHERE after any concurrent writer commits, and the
    // event is inserted only for a row it changed.
    const sql = numbered(`WITH u AS (UPDATE purchases SET ${SETTLE_SET} WHERE ${SETTLE_WHERE} RETURNING id),
      e AS (INSERT INTO events (purchase_id, at, kind, detail) SELECT id, ?::bigint, ?::text, ?::text FROM u WHERE ?::text IS NOT NULL)
      SELECT count(*) AS n FROM u`);
    const { rows } = await this.#query<{ n: number }>(sql, [...settleParams(id, v), v.at, v.event, v.completion, v.event], 1);
    return rows[0]!.n > 0;
  }

  async markConflict(id: string, at: number, completion: string): Promise<void> {
    await this.#query(`WITH r AS (UPDATE purchases SET needs_review = 1 WHERE id = $1 RETURNING id)
      INSERT INTO events (purchase_id, at, kind, detail) VALUES ($1, $2, 'conflicting-completion', $3)`, [id, at, completion], 2);
  }

  async sweep(before: number, at: number): Promise<number> {
    // SKIP LOCKED: a sweeper passes over rows another sweeper (or a completion) holds; the status re-check of the
    // UPDATE keeps a row from being marked twice.
    const { rows } = await this.#query<{ n: number }>(`WITH s AS (
        SELECT id FROM purchases WHERE status = 'authorized' AND authorized_at <= $1 FOR UPDATE SKIP LOCKED
      ), u AS (
        UPDATE purchases p SET status = 'reconciliation', reconciliation_reason = 'timeout' FROM s WHERE p.id = s.id AND p.status = 'authorized' RETURNING p.id
      ), e AS (
        INSERT INTO events (purchase_id, at, kind, detail) SELECT id, $2, 'reconciliation', $3 FROM u
      ) SELECT count(*) AS n FROM u`, [before, at, TIMEOUT_DETAIL], 1);
    return rows[0]!.n;
  }

  async settlement(businessDay: string): Promise<PurchaseRow[]> {
    return (await this.#query<PurchaseRow>(numbered(SETTLEMENT_SQL), [businessDay])).rows;
  }

  /** Every call resolves only after its own commit: nothing is pending. */
  async durable(): Promise<void> {}

  async close(): Promise<void> {
    await this.pool.end();
  }
}

