import type { SqlDialect } from "../storage/dialect";

/**
 * Migration 4: terminal certificates. `terminal_revocations` is append-only: its id is the revocation version every
 * front-end process polls (a revocation names a terminal, and optionally one certificate serial of it: the old one
 * after a renewal). `terminal_certificates` records each client certificate seen (serial, notAfter), so the fleet
 * page shows when each terminal's certificate expires, both of them while it renews.
 */
export const TERMINALS_MIGRATION = (d: SqlDialect): string => `CREATE TABLE terminal_revocations (
     id ${d.serialKey},
     terminal_id TEXT NOT NULL,
     serial TEXT,
     reason TEXT NOT NULL,
     actor TEXT NOT NULL,
     at ${d.int64} NOT NULL
   );
   CREATE INDEX terminal_revocations_terminal ON terminal_revocations (terminal_id);
   CREATE TABLE terminal_certificates (
     terminal_id TEXT NOT NULL,
     serial TEXT NOT NULL,
     not_after ${d.int64} NOT NULL,
     first_seen ${d.int64} NOT NULL,
     last_seen ${d.int64} NOT NULL,
     PRIMARY KEY (terminal_id, serial)
   );`;
