/**
 * Console sessions kept in the database (operator/schema.ts), on both engines, so that a session can be
 * ended: at logout, when the account is removed, and when its password changes. The cookie holds a random token of
 * 32 bytes; the table holds only its SHA-256, so a copy of the database gives nobody a session.
 *
 * With --workers on SQLite the primary holds the only writer and the workers call these methods over IPC
 * (SESSION_METHODS, as the fleet's); on PostgreSQL every process uses the pool.
 */
import { createHash, randomBytes } from "node:crypto";
import type { Statement } from "better-sqlite3";
import type pg from "pg";
import type { Journal } from "../storage/journal";

export interface SessionRow {
  operator: string;
  expiresAt: number;
}

export interface SessionStore {
  createSession(tokenHash: string, operator: string, createdAt: number, expiresAt: number): Promise<void>;
  /** The session of this token hash if it has not expired at `now`. */
  findSession(tokenHash: string, now: number): Promise<SessionRow | null>;
  endSession(tokenHash: string): Promise<void>;
  /** Ends every session of an operator (account removed, password changed); how many were ended. */
  endSessionsOf(operator: string): Promise<number>;
  /** Forgets sessions that expired before `now`. */
  pruneSessions(now: number): Promise<number>;
}

export const SESSION_METHODS = ["createSession", "findSession", "endSession", "endSessionsOf", "pruneSessions"] as const satisfies readonly (keyof SessionStore)[];

const SQL = {
  create: "INSERT INTO operator_sessions (token_hash, operator, created_at, expires_at) VALUES (?, ?, ?, ?)",
  find: "SELECT operator, expires_at FROM operator_sessions WHERE token_hash = ? AND expires_at > ?",
  end: "DELETE FROM operator_sessions WHERE token_hash = ?",
  endOf: "DELETE FROM operator_sessions WHERE operator = ?",
  prune: "DELETE FROM operator_sessions WHERE expires_at <= ?",
};
type SqlName = keyof typeof SQL;

const rowOf = (r: { operator: string; expires_at: number | string } | undefined): SessionRow | null => (r ? { operator: r.operator, expiresAt: Number(r.expires_at) } : null);

export class SqliteSessions implements SessionStore {
  readonly #journal: Journal;
  readonly #sql: Record<SqlName, Statement<unknown[]>>;

  constructor(journal: Journal) {
    this.#journal = journal;
    this.#sql = Object.fromEntries(Object.entries(SQL).map(([k, v]) => [k, journal.db.prepare(v)])) as Record<SqlName, Statement<unknown[]>>;
  }

  async #write(name: SqlName, params: unknown[]): Promise<number> {
    const changes = this.#journal.write(() => this.#sql[name].run(...params).changes, false);
    await this.#journal.durable();
    return changes;
  }

  async createSession(tokenHash: string, operator: string, createdAt: number, expiresAt: number): Promise<void> {
    await this.#write("create", [tokenHash, operator, createdAt, expiresAt]);
  }

  async findSession(tokenHash: string, now: number): Promise<SessionRow | null> {
    return rowOf(this.#sql.find.get(tokenHash, now) as { operator: string; expires_at: number } | undefined);
  }

  async endSession(tokenHash: string): Promise<void> {
    await this.#write("end", [tokenHash]);
  }

  endSessionsOf(operator: string): Promise<number> {
    return this.#write("endOf", [operator]);
  }

  pruneSessions(now: number): Promise<number> {
    return this.#write("prune", [now]);
  }
}

function numbered(sql: string): string {
  let n = 0;
  return sql.replace(/\?/g, () => `$${++n}`);
}

export class PostgresSessions implements SessionStore {
  readonly #pool: pg.Pool;
  readonly #fail: (e: unknown) => Error;

  constructor(pool: pg.Pool, fail: (e: unknown) => Error) {
    this.#pool = pool;
    this.#fail = fail;
  }

  async #query(name: SqlName, params: unknown[]): Promise<pg.QueryResult> {
    try {
      return await this.#pool.query(numbered(SQL[name]), params);
    } catch (e) {
      throw this.#fail(e);
    }
  }

  async createSession(tokenHash: string, operator: string, createdAt: number, expiresAt: number): Promise<void> {
    await this.#query("create", [tokenHash, operator, createdAt, expiresAt]);
  }

  async findSession(tokenHash: string, now: number): Promise<SessionRow | null> {
    return rowOf((await this.#query("find", [tokenHash, now])).rows[0]);
  }

  async endSession(tokenHash: string): Promise<void> {
    await this.#query("end", [tokenHash]);
  }

  async endSessionsOf(operator: string): Promise<number> {
    return (await this.#query("endOf", [operator])).rowCount ?? 0;
  }

  async pruneSessions(now: number): Promise<number> {
    return (await this.#query("prune", [now])).rowCount ?? 0;
  }
}

/** A new session token for the cookie (43 base64url characters). */
export function newSessionToken(): string {
  return randomBytes(32).toString("base64url");
}

export function tokenHash(token: string): string {
  return createHash("sha256").update(token).digest("hex");
}
