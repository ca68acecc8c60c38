/**
 * The daily amount ceiling, held by the database: the terminal's total for the business day grows by the purchase's
 * amount in the same transaction that records the authorization, and only while it stays within the ceiling. The
 * conditional upsert locks the terminal's row for the day (PostgreSQL) or runs on the one writer (SQLite), so two
 * workers authorizing at once cannot both pass the last fen of the ceiling.
 */
import type { Statement } from "better-sqlite3";
import type pg from "pg";
import type { Journal } from "../storage/journal";
import { pgQuery, pgTransaction } from "../storage/pg-transaction";
import { INSERT_PURCHASE_SQL, type PurchaseInsert } from "../purchases/rows";

export interface LimitsStore {
  /**
   * Records the authorization (store.insert) if the terminal's total for the business day (its date, values[19]) plus
   * its amount stays within `limit`; false = over the ceiling, and nothing was written.
   */
  insertWithinDailyLimit(values: PurchaseInsert, limit: number): Promise<boolean>;
  /** Gives back the amount of an authorization that ended without a debit (a voided purchase). */
  releaseDaily(terminalId: string, businessDay: string, amount: number): Promise<void>;
  /** The terminal's authorized total of a business day. */
  dailyTotal(terminalId: string, businessDay: string): Promise<number>;
}

/** The LimitsStore methods, by name: a --workers worker calls them over IPC. */
export const LIMIT_METHODS = ["insertWithinDailyLimit", "releaseDaily", "dailyTotal"] as const satisfies readonly (keyof LimitsStore)[];

// The first purchase of the day inserts the row (when it alone fits); later ones add to it only while within the limit.
// No row comes back when the ceiling would be passed. The casts keep PostgreSQL from typing the parameters as text.
const ADD_SQL = `INSERT INTO terminal_day_totals (terminal_id, business_day, amount)
  SELECT CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS BIGINT) WHERE CAST(? AS BIGINT) <= CAST(? AS BIGINT)
  ON CONFLICT (terminal_id, business_day) DO UPDATE SET amount = terminal_day_totals.amount + excluded.amount
  WHERE terminal_day_totals.amount + excluded.amount <= CAST(? AS BIGINT)
  RETURNING amount`;
const RELEASE_SQL = "UPDATE terminal_day_totals SET amount = CASE WHEN amount > ? THEN amount - ? ELSE 0 END WHERE terminal_id = ? AND business_day = ?";
const TOTAL_SQL = "SELECT amount FROM terminal_day_totals WHERE terminal_id = ? AND business_day = ?";

function addParams(values: PurchaseInsert, limit: number): unknown[] {
  const amount = values[6];
  return [values[1], values[19], amount, amount, limit, limit];
}

export class SqliteLimits implements LimitsStore {
  readonly #journal: Journal;
  readonly #sql: Record<"add" | "insert" | "release" | "total", Statement<unknown[]>>;

  constructor(journal: Journal) {
    this.#journal = journal;
    const db = journal.db;
    this.#sql = { add: db.prepare(ADD_SQL), insert: db.prepare(INSERT_PURCHASE_SQL), release: db.prepare(RELEASE_SQL), total: db.prepare(TOTAL_SQL) };
  }

  async insertWithinDailyLimit(values: PurchaseInsert, limit: number): Promise<boolean> {
    // One savepoint: the total and the purchase are written together or not at all.
    const within = this.#journal.write(() => {
      if (this.#sql.add.get(...addParams(values, limit)) === undefined) return false;
      this.#sql.insert.run(...values);
      return true;
    });
    await this.#journal.durable();
    return within;
  }

  async releaseDaily(terminalId: string, businessDay: string, amount: number): Promise<void> {
    this.#journal.write(() => this.#sql.release.run(amount, amount, terminalId, businessDay), false);
    await this.#journal.durable();
  }

  async dailyTotal(terminalId: string, businessDay: string): Promise<number> {
    return (this.#sql.total.get(terminalId, businessDay) as { amount: number } | undefined)?.amount ?? 0;
  }
}

export class PostgresLimits implements LimitsStore {
  readonly #pool: pg.Pool;
  readonly #fail: (e: unknown) => Error;

  constructor(pool: pg.Pool, fail: (e: unknown) => Error) {
    this.#pool = pool;
    this.#fail = fail;
  }

  insertWithinDailyLimit(values: PurchaseInsert, limit: number): Promise<boolean> {
    return pgTransaction(this.#pool, this.#fail, async (q) => {
      // The upsert holds the terminal's row for the day until COMMIT: a racing authorization waits, then re-checks.
      if (!(await q(ADD_SQL, addParams(values, limit))).length) return false;
      await q(INSERT_PURCHASE_SQL, values);
      return true;
    });
  }

  async releaseDaily(terminalId: string, businessDay: string, amount: number): Promise<void> {
    await pgQuery(this.#pool, this.#fail, RELEASE_SQL, [amount, amount, terminalId, businessDay]);
  }

  async dailyTotal(terminalId: string, businessDay: string): Promise<number> {
    return (await pgQuery<{ amount: number }>(this.#pool, this.#fail, TOTAL_SQL, [terminalId, businessDay]))[0]?.amount ?? 0;
  }
}
