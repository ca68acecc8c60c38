/** PostgreSQL helpers for the feature stores (terminals, limits): numbered placeholders and one transaction. */
import type pg from "pg";
import { FrontendError } from "../errors";

/** `?` placeholders to PostgreSQL's `$n` (the SQL has no `?` inside literals). */
export function numberedPlaceholders(sql: string): string {
  let n = 0;
  return sql.replace(/\?/g, () => `$${++n}`);
}

export type PgQuery = <R extends pg.QueryResultRow>(sql: string, params?: unknown[]) => Promise<R[]>;

/** Runs fn in one transaction on one pooled connection; a database failure becomes `fail(e)` (a retryable 503). */
export async function pgTransaction<T>(pool: pg.Pool, fail: (e: unknown) => Error, fn: (q: PgQuery) => Promise<T>): Promise<T> {
  let client: pg.PoolClient;
  try {
    client = await pool.connect();
  } catch (e) {
    throw fail(e);
  }
  try {
    await client.query("BEGIN");
    const q: PgQuery = async (sql, params = []) => (await client.query(numberedPlaceholders(sql), params)).rows;
    const result = await fn(q);
    await client.query("COMMIT");
    return result;
  } catch (e) {
    await client.query("ROLLBACK").catch(() => undefined);
    throw e instanceof FrontendError ? e : fail(e);
  } finally {
    client.release();
  }
}

/** One autocommitted statement. */
export async function pgQuery<R extends pg.QueryResultRow>(pool: pg.Pool, fail: (e: unknown) => Error, sql: string, params: unknown[] = []): Promise<R[]> {
  try {
    return (await pool.query<R>(numberedPlaceholders(sql), params)).rows;
  } catch (e) {
    throw fail(e);
  }
}
