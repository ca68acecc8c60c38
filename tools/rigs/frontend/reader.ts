/**
 * Reads a front-end's database from outside the front-end (the harness's money check, the tests), on either engine,
 * with a connection of its own: SQLite opened read-only per call (safe while the front-end writes, WAL readers do not
 * block it), PostgreSQL through one kept connection. `?` placeholders on both.
 */
import Database from "better-sqlite3";
import pg from "pg";
import { isPostgresUrl } from "../../frontend/storage/store";

const INT8_OID = 20;

export class DatabaseReader {
  readonly database: string;
  #pool: pg.Pool | undefined;

  constructor(database: string) {
    this.database = database;
  }

  async rows<T = Record<string, unknown>>(sql: string, params: unknown[] = []): Promise<T[]> {
    if (!isPostgresUrl(this.database)) {
      const db = new Database(this.database, { readonly: true, fileMustExist: true });
      try {
        return db.prepare(sql).all(...params) as T[];
      } finally {
        db.close();
      }
    }
    // One connection, bounded waits: a reader must not hang when the server is down (the caller sees the error).
    if (!this.#pool) {
      this.#pool = new pg.Pool({
        connectionString: this.database, max: 1, connectionTimeoutMillis: 5_000, query_timeout: 10_000,
        // BIGINT and count(*) as numbers, as the front-end reads them (all below 2^53).
        types: { getTypeParser: ((oid: number, format?: "text") => (oid === INT8_OID ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format))) as typeof pg.types.getTypeParser },
      });
      this.#pool.on("error", () => { /* a dropped idle connection is replaced at the next query */ });
    }
    let n = 0;
    return (await this.#pool.query(sql.replace(/\?/g, () => `$${++n}`), params)).rows as T[];
  }

  async close(): Promise<void> {
    const pool = this.#pool;
    this.#pool = undefined;
    await pool?.end().catch(() => undefined);
  }
}

/** One query with a reader of its own, closed after it. */
export async function readRows<T = Record<string, unknown>>(database: string, sql: string, params: unknown[] = []): Promise<T[]> {
  const reader = new DatabaseReader(database);
  try {
    return await reader.rows<T>(sql, params);
  } finally {
    await reader.close();
  }
}
