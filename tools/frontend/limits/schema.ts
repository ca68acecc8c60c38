import type { SqlDialect } from "../storage/dialect";

/**
 * Migration 5: each terminal's authorized amount per China business day, kept by the database so that the daily
 * ceiling holds across workers and hosts (limits/store.ts adds to it in the authorization's own transaction).
 */
export const LIMITS_MIGRATION = (d: SqlDialect): string => `CREATE TABLE terminal_day_totals (
     terminal_id TEXT NOT NULL,
     business_day TEXT NOT NULL,
     amount ${d.int64} NOT NULL,
     PRIMARY KEY (terminal_id, business_day),
     CHECK (amount >= 0)
   );`;
