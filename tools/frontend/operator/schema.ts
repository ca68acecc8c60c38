/**
 * Migration 4: the console's sessions. One row per login, keyed by the SHA-256 of the cookie's random token; the
 * operator's name lets the account commands end all of an operator's sessions at once.
 */
import type { SqlDialect } from "../storage/dialect";

export const SESSIONS_MIGRATION = (d: SqlDialect): string => `CREATE TABLE operator_sessions (
     token_hash TEXT PRIMARY KEY,
     operator TEXT NOT NULL,
     created_at ${d.int64} NOT NULL,
     expires_at ${d.int64} NOT NULL
   );
   CREATE INDEX operator_sessions_operator ON operator_sessions (operator);`;
