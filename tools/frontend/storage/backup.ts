/**
 * `frontend backup` and `frontend migrate`: the operator's storage commands (docs/operate.md).
 *
 * - backup (SQLite): a consistent copy of the live journal through SQLite's online backup API (better-sqlite3's
 *   db.backup), taken while the front-end runs: pages written during the copy are copied again, and the copy is a
 *   complete database in rollback mode, not a WAL file set. PostgreSQL is backed up with pg_dump (the guide says how).
 * - migrate: applies the schema migrations and exits, so that the role that owns the tables runs them and the
 *   front-end itself may run as a role that cannot create tables.
 */
import { existsSync, renameSync, rmSync } from "node:fs";
import Database from "better-sqlite3";
import { ConfigError } from "../config";
import { openDatabase, SCHEMA_VERSION } from "./journal";
import { isPostgresUrl, PostgresStore } from "./store";

export class BackupError extends Error {
  readonly code = "BACKUP";
}

/** Copies the SQLite journal at `database` to `out` (written beside it, then renamed: `out` is never half a copy). */
export async function backupSqlite(database: string, out: string): Promise<{ pages: number; schemaVersion: number }> {
  if (isPostgresUrl(database)) throw new BackupError("the database is PostgreSQL: back it up with pg_dump (docs/operate.md)");
  if (!existsSync(database)) throw new ConfigError(`no journal at ${database}`);
  const db = openDatabase(database, "full", true);
  const partial = `${out}.partial`;
  rmSync(partial, { force: true });
  try {
    const { totalPages } = await db.backup(partial);
    // The copy is checked before it replaces anything: it opens, its schema is this program's, and it is intact.
    const copy = new Database(partial, { readonly: true, fileMustExist: true });
    try {
      const check = copy.pragma("integrity_check", { simple: true });
      if (check !== "ok") throw new BackupError(`the copy failed its integrity check: ${String(check)}`);
      const schemaVersion = copy.pragma("user_version", { simple: true }) as number;
      if (schemaVersion !== SCHEMA_VERSION) throw new BackupError(`the copy has schema ${schemaVersion}, this program ${SCHEMA_VERSION}`);
    } finally {
      copy.close();
    }
    renameSync(partial, out);
    return { pages: totalPages, schemaVersion: SCHEMA_VERSION };
  } catch (e) {
    rmSync(partial, { force: true });
    throw e;
  } finally {
    db.close();
  }
}

/** Brings the database's schema up to this program's; returns the version. */
export async function migrateDatabase(database: string): Promise<number> {
  if (isPostgresUrl(database)) {
    const store = await PostgresStore.open(database, { poolSize: 1 });
    await store.close();
    return store.schemaVersion;
  }
  openDatabase(database).close();
  return SCHEMA_VERSION;
}
