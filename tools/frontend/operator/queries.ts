/**
 * The console's read-only queries, on either engine: the same SQL (their common subset) through the SQLite journal's
 * connection or a read-only connection of its own (a worker of --workers: WAL lets readers in other processes see
 * committed rows while the primary writes), or through the PostgreSQL store's pool. Nothing here writes.
 */
import Database from "better-sqlite3";
import type pg from "pg";
import { FrontendError } from "../errors";
import type { PurchaseRow } from "../storage/store";

export interface PurchaseQuery {
  order?: string;
  asn?: string;
  terminal?: string;
  /** Business day (the CST transaction date), YYYYMMDD. */
  day?: string;
  status?: string;
  limit?: number;
}

export interface EventRow {
  id: number;
  purchase_id: string;
  at: number;
  kind: string;
  detail: string;
  terminal_id?: string;
  amount?: number;
  tsn?: number;
}

export interface DayTotal {
  day: string;
  count: number;
  amount: number;
}

export interface HourCount {
  /** Hours since the epoch. */
  hour: number;
  count: number;
  amount: number;
}

export interface AttentionCounts {
  flagged: number;
  reconciliation: number;
  review: number;
  authorized: number;
}

type Runner = <T>(sql: string, params: unknown[]) => Promise<T[]>;

const STATUSES = new Set(["authorized", "completed", "voided", "flagged", "reconciliation"]);
const MAX_ROWS = 500;

function numbered(sql: string): string {
  let n = 0;
  return sql.replace(/\?/g, () => `$${++n}`);
}

// count(*) and sum() come back from PostgreSQL as text (numeric/bigint): every figure here is below 2^53.
const toNumber = (v: unknown): number => (v === null || v === undefined ? 0 : Number(v));

export class ConsoleQueries {
  readonly #run: Runner;
  readonly #close: () => void;

  private constructor(run: Runner, close: () => void = () => {}) {
    this.#run = run;
    this.#close = close;
  }

  static sqlite(db: Database.Database): ConsoleQueries {
    return new ConsoleQueries(async <T>(sql: string, params: unknown[]) => db.prepare(sql).all(...params) as T[]);
  }

  /** A read-only connection of the console's own to a SQLite journal file another process writes. */
  static sqliteFile(file: string): ConsoleQueries {
    const db = new Database(file, { readonly: true, fileMustExist: true });
    db.pragma("busy_timeout = 2000");
    return new ConsoleQueries(async <T>(sql: string, params: unknown[]) => db.prepare(sql).all(...params) as T[], () => db.close());
  }

  static postgres(pool: pg.Pool): ConsoleQueries {
    return new ConsoleQueries(async <T>(sql: string, params: unknown[]) => {
      try {
        return (await pool.query(numbered(sql), params)).rows as T[];
      } catch (e) {
        throw new FrontendError("JOURNAL_UNAVAILABLE", 503, `database: ${(e as Error).message}`);
      }
    });
  }

  async search(q: PurchaseQuery): Promise<PurchaseRow[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    if (q.order) { where.push("order_no = ?"); params.push(q.order); }
    if (q.asn) { where.push("asn = ?"); params.push(q.asn); }
    if (q.terminal) { where.push("terminal_id = ?"); params.push(q.terminal.toUpperCase()); }
    if (q.day) { where.push("date = ?"); params.push(q.day); }
    if (q.status) {
      if (!STATUSES.has(q.status)) throw new FrontendError("VALIDATION", 400, `unknown status ${q.status}`);
      where.push("status = ?");
      params.push(q.status);
    }
    const limit = Math.min(Math.max(1, q.limit ?? 100), MAX_ROWS);
    return this.#run<PurchaseRow>(`SELECT * FROM purchases ${where.length ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY authorized_at DESC, id DESC LIMIT ${limit}`, params);
  }

  async purchase(id: string): Promise<PurchaseRow | undefined> {
    return (await this.#run<PurchaseRow>("SELECT * FROM purchases WHERE id = ?", [id]))[0];
  }

  async eventsOf(id: string): Promise<EventRow[]> {
    return this.#run<EventRow>("SELECT * FROM events WHERE purchase_id = ? ORDER BY id", [id]);
  }

  /** Purchases a person must look at: failed verification, unknown outcome or timeout, a conflicting completion. */
  async attention(limit = 200): Promise<PurchaseRow[]> {
    return this.#run<PurchaseRow>(
      `SELECT * FROM purchases WHERE status IN ('flagged', 'reconciliation') OR needs_review = 1 ORDER BY authorized_at DESC LIMIT ${Math.min(limit, MAX_ROWS)}`, []);
  }

  /** The latest events of some kinds (the reconciliation sweep writes "reconciliation" with reason timeout). */
  async events(kinds: string[], limit = 100): Promise<EventRow[]> {
    const rows = await this.#run<EventRow>(
      `SELECT e.id, e.purchase_id, e.at, e.kind, e.detail, p.terminal_id, p.amount, p.tsn FROM events e JOIN purchases p ON p.id = e.purchase_id
       WHERE e.kind IN (${kinds.map(() => "?").join(", ")}) ORDER BY e.id DESC LIMIT ${Math.min(limit, MAX_ROWS)}`, kinds);
    return rows.map((r) => ({ ...r, id: toNumber(r.id), at: toNumber(r.at) }));
  }

  async attentionCounts(): Promise<AttentionCounts> {
    const rows = await this.#run<Record<string, unknown>>(`SELECT
        sum(CASE WHEN status = 'flagged' THEN 1 ELSE 0 END) AS flagged,
        sum(CASE WHEN status = 'reconciliation' THEN 1 ELSE 0 END) AS reconciliation,
        sum(CASE WHEN needs_review = 1 THEN 1 ELSE 0 END) AS review,
        sum(CASE WHEN status = 'authorized' THEN 1 ELSE 0 END) AS authorized
      FROM purchases`, []);
    const r = rows[0] ?? {};
    return { flagged: toNumber(r.flagged), reconciliation: toNumber(r.reconciliation), review: toNumber(r.review), authorized: toNumber(r.authorized) };
  }

  /** Completed purchases per business day, newest first. */
  async days(limit = 31): Promise<DayTotal[]> {
    const rows = await this.#run<Record<string, unknown>>(
      `SELECT date AS day, count(*) AS n, sum(amount) AS total FROM purchases WHERE status = 'completed' GROUP BY date ORDER BY date DESC LIMIT ${Math.min(limit, 366)}`, []);
    return rows.map((r) => ({ day: String(r.day), count: toNumber(r.n), amount: toNumber(r.total) }));
  }

  /** Completed purchases per hour (by authorization time) since `sinceMs`. */
  async perHour(sinceMs: number): Promise<HourCount[]> {
    const rows = await this.#run<Record<string, unknown>>(
      `SELECT authorized_at / 3600000 AS hour, count(*) AS n, sum(amount) AS total FROM purchases
       WHERE status = 'completed' AND authorized_at >= ? GROUP BY authorized_at / 3600000 ORDER BY hour`, [sinceMs]);
    return rows.map((r) => ({ hour: Math.floor(toNumber(r.hour)), count: toNumber(r.n), amount: toNumber(r.total) }));
  }

  /** Every terminal the front-end has handed a TSN, with its last purchase. */
  async terminals(): Promise<{ terminalId: string; lastTsn: number; lastPurchaseAt: number; purchases: number }[]> {
    const rows = await this.#run<Record<string, unknown>>(
      `SELECT t.terminal_id AS id, t.last_tsn AS tsn, max(p.authorized_at) AS last_at, count(p.id) AS n FROM terminals t
       LEFT JOIN purchases p ON p.terminal_id = t.terminal_id GROUP BY t.terminal_id, t.last_tsn ORDER BY t.terminal_id`, []);
    return rows.map((r) => ({ terminalId: String(r.id), lastTsn: toNumber(r.tsn), lastPurchaseAt: toNumber(r.last_at), purchases: toNumber(r.n) }));
  }

  close(): void {
    this.#close();
  }
}
