/**
 * Storage of refunds (a purchase's amount loaded back onto the card), on both engines. The rules that keep a refund to
 * at most its purchase's amount, on that purchase's card, once, live in the database (migration 3 of journal.ts):
 * - the refund's primary key is its purchase's ID: a second refund of the same purchase cannot be inserted;
 * - a foreign key ties (purchase, amount, card) to the purchase row, and a CHECK keeps the amount within it;
 * - a unique index over the card's online serial among credited refunds: one load of a card is never counted twice.
 * Every change is one conditional statement, so two front-end processes racing on the same refund cannot both win.
 */
import pg from "pg";
import { FrontendError } from "../errors";
import { PostgresStore, SqliteStore, type Store } from "../storage/store";

export type RefundStatus = "authorized" | "completed" | "flagged" | "owed" | "reconciliation";

export interface RefundRow {
  purchase_id: string;
  purchase_amount: number;
  application: "tunion" | "cityunion";
  asn: string;
  terminal_id: string;
  order_no: string;
  amount: number;
  key_index: number | null;
  key_version: number | null;
  algorithm: "3des" | "sm4" | null;
  online_serial: number | null;
  balance: number | null;
  basic_data: string | null;
  init_response: string | null;
  date: string;
  time: string;
  mac2: string | null;
  status: RefundStatus;
  tac: string | null;
  tac_valid: number | null;
  completion: string | null;
  answer: string | null;
  owed_reason: string | null;
  created_at: number;
  completed_at: number | null;
}

/** A new refund's values; the purchase's amount and card are taken from its row by the INSERT itself. */
export interface RefundInsert {
  purchaseId: string;
  terminalId: string;
  order: string;
  amount: number;
  keyIndex: number | null;
  keyVersion: number | null;
  algorithm: string | null;
  onlineSerial: number | null;
  balance: number | null;
  basicData: string | null;
  initResponse: string | null;
  date: string;
  time: string;
  mac2: string | null;
  status: "authorized" | "owed";
  completion: string | null;
  answer: string | null;
  owedReason: string | null;
  createdAt: number;
  /** The card the refund goes to: the INSERT takes nothing unless it is the purchase's card. */
  application: string;
  asn: string;
}

export interface RefundSettle {
  status: RefundStatus;
  tac: string | null;
  tacValid: number | null;
  completion: string;
  answer: string;
  owedReason: string | null;
  completedAt: number | null;
}

export interface RefundStore {
  get(purchaseId: string): Promise<RefundRow | undefined>;
  /** Inserts unless the purchase already has a refund, or is not refundable (voided, another card); false = it did not. */
  insert(values: RefundInsert): Promise<boolean>;
  /** A new INITIALIZE FOR LOAD at the same online serial (the first answer was lost): a fresh MAC2, nothing credited yet. */
  reauthorize(purchaseId: string, onlineSerial: number, v: { balance: number; initResponse: string; date: string; time: string; mac2: string }): Promise<boolean>;
  /** Records a completion unless the refund is settled or already carries it; false = it did not (re-read it). */
  settle(purchaseId: string, v: RefundSettle): Promise<boolean>;
  /** Whether a credited refund already used this online serial of this card (a replayed load). */
  credited(application: string, asn: string, onlineSerial: number): Promise<boolean>;
  /** Refunds of one business day that a clearing house needs: credited, flagged and owed ones. */
  settlement(businessDay: string): Promise<RefundRow[]>;
}

const INSERT_SQL = `INSERT INTO refunds (purchase_id, purchase_amount, application, asn, terminal_id, order_no, amount, key_index, key_version,
    algorithm, online_serial, balance, basic_data, init_response, date, time, mac2, status, completion, answer, owed_reason, created_at)
  SELECT p.id, p.amount, p.application, p.asn, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?
  FROM purchases p WHERE p.id = ? AND p.application = ? AND p.asn = ? AND p.status <> 'voided'
  ON CONFLICT (purchase_id) DO NOTHING`;
const REAUTHORIZE_SQL = `UPDATE refunds SET balance = ?, init_response = ?, date = ?, time = ?, mac2 = ?
  WHERE purchase_id = ? AND status = 'authorized' AND online_serial = ?`;
const SETTLE_SQL = `UPDATE refunds SET status = ?, tac = ?, tac_valid = ?, completion = ?, answer = ?, owed_reason = ?, completed_at = ?
  WHERE purchase_id = ? AND status IN ('authorized', 'reconciliation') AND (completion IS NULL OR completion <> ?)`;
const CREDITED_SQL = "SELECT purchase_id FROM refunds WHERE application = ? AND asn = ? AND online_serial = ? AND status IN ('completed', 'flagged') LIMIT 1";
const SETTLEMENT_SQL = "SELECT * FROM refunds WHERE date = ? AND status IN ('completed', 'flagged', 'owed') ORDER BY terminal_id, purchase_id";

function insertParams(v: RefundInsert): unknown[] {
  return [v.terminalId, v.order, v.amount, v.keyIndex, v.keyVersion, v.algorithm, v.onlineSerial, v.balance, v.basicData, v.initResponse,
    v.date, v.time, v.mac2, v.status, v.completion, v.answer, v.owedReason, v.createdAt, v.purchaseId, v.application, v.asn];
}

function settleParams(id: string, v: RefundSettle): unknown[] {
  return [v.status, v.tac, v.tacValid, v.completion, v.answer, v.owedReason, v.completedAt, id, v.completion];
}

/** A constraint the database refused with: the amount over the purchase's, or the same load counted twice. */
function refused(e: unknown): never {
  const code = String((e as { code?: unknown }).code ?? "");
  if (code === "SQLITE_CONSTRAINT_CHECK" || code === "23514") {
    throw new FrontendError("REFUND_OVER_AMOUNT", 422, "a refund is at most its purchase's amount");
  }
  if (code === "SQLITE_CONSTRAINT_UNIQUE" || code === "23505") throw new FrontendError("REPLAY", 409, "this load of the card is already counted by another refund");
  if (code === "SQLITE_CONSTRAINT_FOREIGNKEY" || code === "23503") throw new FrontendError("REFUND_NOT_ALLOWED", 409, "the refund does not match its purchase");
  throw e;
}

class SqliteRefundStore implements RefundStore {
  readonly #store: SqliteStore;
  readonly #sql;

  constructor(store: SqliteStore) {
    this.#store = store;
    const db = store.journal.db;
    this.#sql = {
      get: db.prepare("SELECT * FROM refunds WHERE purchase_id = ?"),
      insert: db.prepare(INSERT_SQL),
      reauthorize: db.prepare(REAUTHORIZE_SQL),
      settle: db.prepare(SETTLE_SQL),
      credited: db.prepare(CREDITED_SQL),
      settlement: db.prepare(SETTLEMENT_SQL),
    };
  }

  async get(purchaseId: string): Promise<RefundRow | undefined> {
    return this.#sql.get.get(purchaseId) as RefundRow | undefined;
  }

  async #write(fn: () => boolean): Promise<boolean> {
    let done: boolean;
    try {
      done = this.#store.journal.write(fn, false);
    } catch (e) {
      refused(e);
    }
    await this.#store.journal.durable();
    return done;
  }

  insert(v: RefundInsert): Promise<boolean> {
    return this.#write(() => this.#sql.insert.run(...insertParams(v)).changes > 0);
  }

  reauthorize(purchaseId: string, onlineSerial: number, v: { balance: number; initResponse: string; date: string; time: string; mac2: string }): Promise<boolean> {
    return this.#write(() => this.#sql.reauthorize.run(v.balance, v.initResponse, v.date, v.time, v.mac2, purchaseId, onlineSerial).changes > 0);
  }

  settle(purchaseId: string, v: RefundSettle): Promise<boolean> {
    return this.#write(() => this.#sql.settle.run(...settleParams(purchaseId, v)).changes > 0);
  }

  async credited(application: string, asn: string, onlineSerial: number): Promise<boolean> {
    return this.#sql.credited.get(application, asn, onlineSerial) !== undefined;
  }

  async settlement(businessDay: string): Promise<RefundRow[]> {
    await this.#store.journal.durable();
    return this.#sql.settlement.all(businessDay) as RefundRow[];
  }
}

function numbered(sql: string): string {
  let n = 0;
  return sql.replace(/\?/g, () => `$${++n}`);
}

class PostgresRefundStore implements RefundStore {
  readonly #pool: pg.Pool;

  constructor(store: PostgresStore) {
    this.#pool = store.pool;
  }

  async #query<R extends pg.QueryResultRow>(sql: string, params: unknown[]): Promise<pg.QueryResult<R>> {
    try {
      return await this.#pool.query<R>(numbered(sql), params);
    } catch (e) {
      if (/^23/.test(String((e as { code?: unknown }).code ?? ""))) refused(e);
      const err = e as { code?: string; message?: string };
      throw new FrontendError("JOURNAL_UNAVAILABLE", 503, `database: ${err.code ? `${err.code} ` : ""}${err.message ?? String(e)}`);
    }
  }

  async get(purchaseId: string): Promise<RefundRow | undefined> {
    return (await this.#query<RefundRow>("SELECT * FROM refunds WHERE purchase_id = ?", [purchaseId])).rows[0];
  }

  async insert(v: RefundInsert): Promise<boolean> {
    return (await this.#query(INSERT_SQL, insertParams(v))).rowCount! > 0;
  }

  async reauthorize(purchaseId: string, onlineSerial: number, v: { balance: number; initResponse: string; date: string; time: string; mac2: string }): Promise<boolean> {
    return (await this.#query(REAUTHORIZE_SQL, [v.balance, v.initResponse, v.date, v.time, v.mac2, purchaseId, onlineSerial])).rowCount! > 0;
  }

  async settle(purchaseId: string, v: RefundSettle): Promise<boolean> {
    return (await this.#query(SETTLE_SQL, settleParams(purchaseId, v))).rowCount! > 0;
  }

  async credited(application: string, asn: string, onlineSerial: number): Promise<boolean> {
    return (await this.#query(CREDITED_SQL, [application, asn, onlineSerial])).rowCount! > 0;
  }

  async settlement(businessDay: string): Promise<RefundRow[]> {
    return (await this.#query<RefundRow>(SETTLEMENT_SQL, [businessDay])).rows;
  }
}

/** The refund storage next to a purchase store; undefined for a store that is a proxy (the workers of --workers). */
export function refundStoreFor(store: Store): RefundStore | undefined {
  if (store instanceof SqliteStore) return new SqliteRefundStore(store);
  if (store instanceof PostgresStore) return new PostgresRefundStore(store);
  return undefined;
}
