import type { SqlDialect } from "../storage/dialect";

/**
 * Migration 2: the fleet. Status reports (the latest per terminal, and a bounded history), configuration scopes
 * (defaults, group:<name>, terminal:<id>) with a version each, terminal -> group membership, and the audit of every
 * change. `revision` is one counter across all scopes and memberships: a terminal's effective version is the largest
 * revision among what it sees, so it grows with every change that reaches it, a change of group included.
 */
export const FLEET_MIGRATION = (d: SqlDialect): string => `CREATE TABLE terminal_status (
     terminal_id TEXT PRIMARY KEY,
     received_at ${d.int64} NOT NULL,
     report TEXT NOT NULL
   );
   CREATE TABLE terminal_status_history (
     id ${d.serialKey},
     terminal_id TEXT NOT NULL,
     received_at ${d.int64} NOT NULL,
     report TEXT NOT NULL
   );
   CREATE INDEX terminal_status_history_terminal ON terminal_status_history (terminal_id, id);
   CREATE TABLE config_revision (
     id INTEGER PRIMARY KEY,
     revision ${d.int64} NOT NULL
   );
   CREATE TABLE config_scopes (
     scope TEXT PRIMARY KEY,
     version ${d.int64} NOT NULL,
     revision ${d.int64} NOT NULL,
     settings TEXT NOT NULL,
     updated_at ${d.int64} NOT NULL,
     updated_by TEXT NOT NULL
   );
   CREATE TABLE terminal_groups (
     terminal_id TEXT PRIMARY KEY,
     group_name TEXT,
     version ${d.int64} NOT NULL,
     revision ${d.int64} NOT NULL,
     updated_at ${d.int64} NOT NULL,
     updated_by TEXT NOT NULL
   );
   CREATE TABLE config_audit (
     id ${d.serialKey},
     scope TEXT NOT NULL,
     kind TEXT NOT NULL,
     version ${d.int64} NOT NULL,
     actor TEXT NOT NULL,
     at ${d.int64} NOT NULL,
     old_value TEXT,
     new_value TEXT
   );
   CREATE INDEX config_audit_scope ON config_audit (scope, id);`;
