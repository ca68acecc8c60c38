/**
 * Terminal certificates on either engine: revocations (append-only, numbered: the number is the version each process
 * polls), the certificates seen on the terminals' connections, and the console's audit row of each revocation, written
 * in the revocation's transaction.
 */
import type { Statement } from "better-sqlite3";
import type pg from "pg";
import { FrontendError } from "../errors";
import type { Journal } from "../storage/journal";
import { pgQuery, pgTransaction } from "../storage/pg-transaction";

export interface Revocation {
  /** The revocation version: it only grows. */
  id: number;
  terminalId: string;
  /** One certificate (hex serial, upper case, no leading zeros), or null: every certificate of the terminal. */
  serial: string | null;
  reason: string;
  actor: string;
  at: number;
}

export interface CertificateSeen {
  terminalId: string;
  serial: string;
  /** The certificate's notAfter, epoch ms. */
  notAfter: number;
  firstSeen: number;
  lastSeen: number;
}

export interface TerminalsStore {
  /** Records a revocation (and its audit row); returns it with its version. */
  revoke(terminalId: string, serial: string | null, reason: string, actor: string, at: number): Promise<Revocation>;
  /** The latest revocation version (0 = none): cheap, polled by every process. */
  revocationVersion(): Promise<number>;
  /** Revocations after `version`, in order. */
  revocationsSince(version: number): Promise<Revocation[]>;
  /** A terminal's revocations (the fleet page). */
  revocationsOf(terminalId: string): Promise<Revocation[]>;
  /** Notes a client certificate seen on a terminal's connection. */
  noteCertificate(terminalId: string, serial: string, notAfter: number, at: number): Promise<void>;
  /** Every terminal's certificates seen, newest notAfter first within a terminal. */
  certificates(terminalId?: string): Promise<CertificateSeen[]>;
}

/** The TerminalsStore methods, by name: a --workers worker calls them over IPC. */
export const TERMINAL_METHODS = [
  "revoke", "revocationVersion", "revocationsSince", "revocationsOf", "noteCertificate", "certificates",
] as const satisfies readonly (keyof TerminalsStore)[];

const TERMINAL_ID = /^[0-9A-F]{12}$/;

/** A certificate serial as OpenSSL prints it, normalised: upper-case hex without leading zeros (colons allowed in). */
export function normalSerial(serial: string): string {
  const hex = serial.replace(/:/g, "").toUpperCase();
  if (!/^[0-9A-F]{1,64}$/.test(hex)) throw new FrontendError("VALIDATION", 400, `a certificate serial is hex digits, got ${JSON.stringify(serial)}`);
  return hex.replace(/^0+(?=.)/, "");
}

function checkRevocation(terminalId: string, serial: string | null, reason: string, actor: string): [string, string | null, string, string] {
  const id = String(terminalId).toUpperCase();
  if (!TERMINAL_ID.test(id)) throw new FrontendError("VALIDATION", 400, "a terminal ID is 12 hex digits");
  const why = String(reason ?? "").trim() || "unspecified";
  if (why.length > 200) throw new FrontendError("VALIDATION", 400, "a revocation reason is at most 200 characters");
  const who = String(actor ?? "").trim();
  if (!who || who.length > 100) throw new FrontendError("VALIDATION", 400, "a revocation names who made it (1 to 100 characters)");
  return [id, serial === null ? null : normalSerial(serial), why, who];
}

interface RevocationDbRow { id: number; terminal_id: string; serial: string | null; reason: string; actor: string; at: number }
interface CertificateDbRow { terminal_id: string; serial: string; not_after: number; first_seen: number; last_seen: number }

const revocationOf = (r: RevocationDbRow): Revocation => ({ id: Number(r.id), terminalId: r.terminal_id, serial: r.serial, reason: r.reason, actor: r.actor, at: Number(r.at) });
const certificateOf = (r: CertificateDbRow): CertificateSeen => ({
  terminalId: r.terminal_id, serial: r.serial, notAfter: Number(r.not_after), firstSeen: Number(r.first_seen), lastSeen: Number(r.last_seen),
});

const SQL = {
  revoke: "INSERT INTO terminal_revocations (terminal_id, serial, reason, actor, at) VALUES (?, ?, ?, ?, ?) RETURNING *",
  // The console's audit (fleet/schema.ts): the terminal's scope, kind "revoke", the revocation version.
  audit: "INSERT INTO config_audit (scope, kind, version, actor, at, old_value, new_value) VALUES (?, 'revoke', ?, ?, ?, NULL, ?)",
  version: "SELECT COALESCE(MAX(id), 0) AS version FROM terminal_revocations",
  since: "SELECT * FROM terminal_revocations WHERE id > ? ORDER BY id",
  of: "SELECT * FROM terminal_revocations WHERE terminal_id = ? ORDER BY id",
  note: `INSERT INTO terminal_certificates (terminal_id, serial, not_after, first_seen, last_seen) VALUES (?, ?, ?, ?, ?)
    ON CONFLICT (terminal_id, serial) DO UPDATE SET last_seen = excluded.last_seen, not_after = excluded.not_after`,
  all: "SELECT * FROM terminal_certificates ORDER BY terminal_id, not_after DESC",
  one: "SELECT * FROM terminal_certificates WHERE terminal_id = ? ORDER BY not_after DESC",
} as const;

const auditParams = (r: Revocation) => [`terminal:${r.terminalId}`, r.id, r.actor, r.at, JSON.stringify({ serial: r.serial ?? "all", reason: r.reason })];

export class SqliteTerminals implements TerminalsStore {
  readonly #journal: Journal;
  readonly #sql: Record<keyof typeof SQL, Statement<unknown[]>>;

  constructor(journal: Journal) {
    this.#journal = journal;
    const sql = {} as Record<keyof typeof SQL, Statement<unknown[]>>;
    for (const name of Object.keys(SQL) as (keyof typeof SQL)[]) sql[name] = journal.db.prepare(SQL[name]);
    this.#sql = sql;
  }

  async revoke(terminalId: string, serial: string | null, reason: string, actor: string, at: number): Promise<Revocation> {
    const args = checkRevocation(terminalId, serial, reason, actor);
    const revocation = this.#journal.write(() => {
      const r = revocationOf(this.#sql.revoke.get(...args, at) as RevocationDbRow);
      this.#sql.audit.run(...auditParams(r));
      return r;
    });
    await this.#journal.durable();
    return revocation;
  }

  async revocationVersion(): Promise<number> {
    return (this.#sql.version.get() as { version: number }).version;
  }

  async revocationsSince(version: number): Promise<Revocation[]> {
    return (this.#sql.since.all(version) as RevocationDbRow[]).map(revocationOf);
  }

  async revocationsOf(terminalId: string): Promise<Revocation[]> {
    return (this.#sql.of.all(terminalId.toUpperCase()) as RevocationDbRow[]).map(revocationOf);
  }

  async noteCertificate(terminalId: string, serial: string, notAfter: number, at: number): Promise<void> {
    this.#journal.write(() => this.#sql.note.run(terminalId, serial, notAfter, at, at), false);
    await this.#journal.durable();
  }

  async certificates(terminalId?: string): Promise<CertificateSeen[]> {
    const rows = terminalId === undefined ? this.#sql.all.all() : this.#sql.one.all(terminalId.toUpperCase());
    return (rows as CertificateDbRow[]).map(certificateOf);
  }
}

export class PostgresTerminals implements TerminalsStore {
  readonly #pool: pg.Pool;
  readonly #fail: (e: unknown) => Error;

  constructor(pool: pg.Pool, fail: (e: unknown) => Error) {
    this.#pool = pool;
    this.#fail = fail;
  }

  revoke(terminalId: string, serial: string | null, reason: string, actor: string, at: number): Promise<Revocation> {
    const args = checkRevocation(terminalId, serial, reason, actor);
    return pgTransaction(this.#pool, this.#fail, async (q) => {
      const r = revocationOf((await q<RevocationDbRow>(SQL.revoke, [...args, at]))[0]!);
      await q(SQL.audit, auditParams(r));
      return r;
    });
  }

  async revocationVersion(): Promise<number> {
    return Number((await pgQuery<{ version: number }>(this.#pool, this.#fail, SQL.version))[0]!.version);
  }

  async revocationsSince(version: number): Promise<Revocation[]> {
    return (await pgQuery<RevocationDbRow>(this.#pool, this.#fail, SQL.since, [version])).map(revocationOf);
  }

  async revocationsOf(terminalId: string): Promise<Revocation[]> {
    return (await pgQuery<RevocationDbRow>(this.#pool, this.#fail, SQL.of, [terminalId.toUpperCase()])).map(revocationOf);
  }

  async noteCertificate(terminalId: string, serial: string, notAfter: number, at: number): Promise<void> {
    await pgQuery(this.#pool, this.#fail, SQL.note, [terminalId, serial, notAfter, at, at]);
  }

  async certificates(terminalId?: string): Promise<CertificateSeen[]> {
    const rows = terminalId === undefined ? await pgQuery<CertificateDbRow>(this.#pool, this.#fail, SQL.all)
      : await pgQuery<CertificateDbRow>(this.#pool, this.#fail, SQL.one, [terminalId.toUpperCase()]);
    return rows.map(certificateOf);
  }
}
