/**
 * The fleet's side of the store: status reports and remote configuration, on SQLite (through the group-committing
 * journal) and on PostgreSQL (one transaction per change). Every configuration change is checked with the terminal's
 * own validator (modules/terminal-config), versioned, and audited in the same transaction that makes it.
 */
import type { Statement } from "better-sqlite3";
import type pg from "pg";
import type { StatusReport } from "../../../modules/frontend-client/status";
import { mergeSettings, settingErrors, type TerminalSettings } from "../../../modules/terminal-config/config";
import { FrontendError } from "../errors";
import type { Journal } from "../storage/journal";

/** Reports kept per terminal besides its latest one: about 40 hours at the default 5-minute interval. */
export const STATUS_HISTORY_LIMIT = 500;

export interface StatusRow {
  terminalId: string;
  /** The front-end's clock when the report arrived, epoch ms. */
  receivedAt: number;
  report: StatusReport;
}

export interface ConfigScope {
  /** `defaults`, `group:<name>` or `terminal:<12 hex digits>`. */
  scope: string;
  /** 0 for a scope never written; each change adds 1 (the optimistic check compares it). */
  version: number;
  /** The fleet-wide change counter when this scope last changed (0: never). */
  revision: number;
  settings: TerminalSettings;
  updatedAt: number | null;
  updatedBy: string | null;
}

export interface ConfigAuditRow {
  id: number;
  scope: string;
  /** `settings` (a scope's values), `group` (a terminal's membership, scope terminal:<id>) or `revoke` (terminals/store.ts). */
  kind: "settings" | "group" | "revoke";
  version: number;
  actor: string;
  at: number;
  old: unknown;
  new: unknown;
}

export interface TerminalGroupRow {
  terminalId: string;
  group: string | null;
}

export interface EffectiveConfig {
  terminalId: string;
  group: string | null;
  /** What the terminal sees as its configuration version: the largest revision among the scopes it takes. */
  version: number;
  settings: TerminalSettings;
  /** Each scope as it stands, for an editor that shows where a value comes from. */
  layers: ConfigScope[];
}

export interface FleetStore {
  /** Keeps the report as the terminal's latest and in its history (the oldest beyond STATUS_HISTORY_LIMIT go). */
  recordStatus(report: StatusReport, receivedAt?: number): Promise<void>;
  /** The latest report of every terminal that ever sent one, by terminal ID. */
  latestStatus(): Promise<StatusRow[]>;
  /** A terminal's reports, newest first. */
  statusHistory(terminalId: string, limit?: number): Promise<StatusRow[]>;
  getConfigScope(scope: string): Promise<ConfigScope>;
  /** Every scope ever written, by name. */
  configScopes(): Promise<ConfigScope[]>;
  /**
   * Replaces a scope's settings (validated: CONFIG_INVALID 400 names the field). With expectedVersion, a scope that has
   * moved on since is refused with CONFIG_VERSION_CONFLICT 409 and nothing changes.
   */
  putConfigScope(scope: string, values: unknown, actor: string, expectedVersion?: number): Promise<ConfigScope>;
  /** Puts a terminal in a group, or in none with null. */
  setTerminalGroup(terminalId: string, group: string | null, actor: string): Promise<void>;
  terminalGroups(): Promise<TerminalGroupRow[]>;
  /** Changes, newest first; of one scope with `scope`. */
  configAudit(query?: { scope?: string; limit?: number }): Promise<ConfigAuditRow[]>;
  effectiveConfig(terminalId: string): Promise<EffectiveConfig>;
}

export class ConfigScopeError extends FrontendError {
  constructor(message: string) {
    super("CONFIG_SCOPE_INVALID", 400, message);
  }
}

/** A refused setting; `field` names it (the message does too, for clients that only see code and message). */
export class ConfigInvalidError extends FrontendError {
  readonly field: string;
  constructor(field: string, message: string) {
    super("CONFIG_INVALID", 400, message);
    this.field = field;
  }
}

export class ConfigConflictError extends FrontendError {
  readonly currentVersion: number;
  constructor(scope: string, expected: number, current: number) {
    super("CONFIG_VERSION_CONFLICT", 409, `${scope} is at version ${current}, not ${expected}: reload it and apply the change again`);
    this.currentVersion = current;
  }
}

const TERMINAL_ID = /^[0-9A-Fa-f]{12}$/;
const GROUP_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export function terminalScope(terminalId: string): string {
  return `terminal:${checkTerminalId(terminalId)}`;
}

function checkTerminalId(terminalId: string): string {
  if (typeof terminalId !== "string" || !TERMINAL_ID.test(terminalId)) throw new ConfigScopeError("a terminal ID is 12 hex digits");
  return terminalId.toUpperCase();
}

function checkGroup(group: string): string {
  if (typeof group !== "string" || !GROUP_NAME.test(group)) throw new ConfigScopeError("a group name is 1..64 letters, digits, '.', '_' or '-', starting with a letter or digit");
  return group;
}

/** The scope in its one spelling (terminal IDs upper case); refuses anything else. */
export function normalScope(scope: string): string {
  if (scope === "defaults") return scope;
  if (typeof scope === "string" && scope.startsWith("group:")) return `group:${checkGroup(scope.slice(6))}`;
  if (typeof scope === "string" && scope.startsWith("terminal:")) return `terminal:${checkTerminalId(scope.slice(9))}`;
  throw new ConfigScopeError(`scope must be defaults, group:<name> or terminal:<id>, not ${JSON.stringify(scope)}`);
}

function checkValues(values: unknown): TerminalSettings {
  const errors = settingErrors(values);
  if (errors.length) throw new ConfigInvalidError(errors[0]!.field, errors.map((e) => e.message).join("; "));
  return mergeSettings(values as TerminalSettings);
}

function checkActor(actor: string): string {
  if (typeof actor !== "string" || actor.length < 1 || actor.length > 128) throw new FrontendError("VALIDATION", 400, "actor must be 1..128 characters");
  return actor;
}

const clampLimit = (limit: number | undefined, fallback: number, max: number): number =>
  Number.isInteger(limit) && limit! > 0 ? Math.min(limit!, max) : fallback;

interface ScopeDbRow { scope: string; version: number; revision: number; settings: string; updated_at: number; updated_by: string }
interface StatusDbRow { terminal_id: string; received_at: number; report: string }
interface AuditDbRow { id: number; scope: string; kind: "settings" | "group" | "revoke"; version: number; actor: string; at: number; old_value: string | null; new_value: string | null }
interface GroupDbRow { terminal_id: string; group_name: string | null; version: number; revision: number }

function scopeOf(scope: string, row: ScopeDbRow | undefined): ConfigScope {
  if (!row) return { scope, version: 0, revision: 0, settings: {}, updatedAt: null, updatedBy: null };
  return { scope, version: row.version, revision: row.revision, settings: JSON.parse(row.settings) as TerminalSettings, updatedAt: row.updated_at, updatedBy: row.updated_by };
}

const statusOf = (r: StatusDbRow): StatusRow => ({ terminalId: r.terminal_id, receivedAt: r.received_at, report: JSON.parse(r.report) as StatusReport });

const auditOf = (r: AuditDbRow): ConfigAuditRow => ({
  id: r.id, scope: r.scope, kind: r.kind, version: r.version, actor: r.actor, at: r.at,
  old: r.old_value === null ? null : JSON.parse(r.old_value), new: r.new_value === null ? null : JSON.parse(r.new_value),
});

function effective(terminalId: string, membership: GroupDbRow | undefined, layers: ConfigScope[]): EffectiveConfig {
  const version = Math.max(membership?.revision ?? 0, ...layers.map((l) => l.revision));
  return { terminalId, group: membership?.group_name ?? null, version, settings: mergeSettings(...layers.map((l) => l.settings)), layers };
}

// The SQL both engines run (`?` placeholders; PostgreSQL's are numbered by the caller).
const SQL = {
  upsertLatest: "INSERT INTO terminal_status (terminal_id, received_at, report) VALUES (?, ?, ?) ON CONFLICT (terminal_id) DO UPDATE SET received_at = excluded.received_at, report = excluded.report",
  insertHistory: "INSERT INTO terminal_status_history (terminal_id, received_at, report) VALUES (?, ?, ?)",
  // Keeps the newest STATUS_HISTORY_LIMIT: everything at or below the (limit+1)-th newest id goes.
  trimHistory: `DELETE FROM terminal_status_history WHERE terminal_id = ? AND id <= (SELECT id FROM terminal_status_history WHERE terminal_id = ? ORDER BY id DESC LIMIT 1 OFFSET ${STATUS_HISTORY_LIMIT})`,
  latest: "SELECT terminal_id, received_at, report FROM terminal_status ORDER BY terminal_id",
  history: "SELECT terminal_id, received_at, report FROM terminal_status_history WHERE terminal_id = ? ORDER BY id DESC LIMIT ?",
  scope: "SELECT * FROM config_scopes WHERE scope = ?",
  scopes: "SELECT * FROM config_scopes ORDER BY scope",
  bump: "INSERT INTO config_revision (id, revision) VALUES (1, 1) ON CONFLICT (id) DO UPDATE SET revision = config_revision.revision + 1 RETURNING revision",
  putScope: "INSERT INTO config_scopes (scope, version, revision, settings, updated_at, updated_by) VALUES (?, ?, ?, ?, ?, ?) " +
    "ON CONFLICT (scope) DO UPDATE SET version = excluded.version, revision = excluded.revision, settings = excluded.settings, updated_at = excluded.updated_at, updated_by = excluded.updated_by",
  group: "SELECT * FROM terminal_groups WHERE terminal_id = ?",
  groups: "SELECT * FROM terminal_groups WHERE group_name IS NOT NULL ORDER BY terminal_id",
  putGroup: "INSERT INTO terminal_groups (terminal_id, group_name, version, revision, updated_at, updated_by) VALUES (?, ?, ?, ?, ?, ?) " +
    "ON CONFLICT (terminal_id) DO UPDATE SET group_name = excluded.group_name, version = excluded.version, revision = excluded.revision, updated_at = excluded.updated_at, updated_by = excluded.updated_by",
  audit: "INSERT INTO config_audit (scope, kind, version, actor, at, old_value, new_value) VALUES (?, ?, ?, ?, ?, ?, ?)",
  auditAll: "SELECT * FROM config_audit ORDER BY id DESC LIMIT ?",
  auditScope: "SELECT * FROM config_audit WHERE scope = ? ORDER BY id DESC LIMIT ?",
} as const;

type SqlName = keyof typeof SQL;

/** The report as stored: checked to be an object with the terminal's ID, and no bigger than the route lets in. */
function reportJson(report: StatusReport): string {
  if (!report || typeof report !== "object" || typeof report.terminalId !== "string" || !TERMINAL_ID.test(report.terminalId)) {
    throw new FrontendError("VALIDATION", 400, "a status report names its terminal (12 hex digits)");
  }
  return JSON.stringify(report);
}

/** One change's decision, the same on both engines: the new scope row and its audit row, or a refusal. */
function planScope(scope: string, old: ScopeDbRow | undefined, values: TerminalSettings, actor: string, expectedVersion: number | undefined, revision: number, at: number) {
  const current = old?.version ?? 0;
  if (expectedVersion !== undefined && expectedVersion !== current) throw new ConfigConflictError(scope, expectedVersion, current);
  const settings = JSON.stringify(values);
  const row = [scope, current + 1, revision, settings, at, actor];
  const audit = [scope, "settings", current + 1, actor, at, old ? old.settings : null, settings];
  return { row, audit, result: { scope, version: current + 1, revision, settings: values, updatedAt: at, updatedBy: actor } satisfies ConfigScope };
}

function planGroup(terminalId: string, old: GroupDbRow | undefined, group: string | null, actor: string, revision: number, at: number) {
  const version = (old?.version ?? 0) + 1;
  return {
    row: [terminalId, group, version, revision, at, actor],
    audit: [`terminal:${terminalId}`, "group", version, actor, at, JSON.stringify({ group: old?.group_name ?? null }), JSON.stringify({ group })],
  };
}

export class SqliteFleet implements FleetStore {
  readonly #journal: Journal;
  readonly #sql: Record<SqlName, Statement<unknown[]>>;

  constructor(journal: Journal) {
    this.#journal = journal;
    const sql = {} as Record<SqlName, Statement<unknown[]>>;
    for (const name of Object.keys(SQL) as SqlName[]) sql[name] = journal.db.prepare(SQL[name]);
    this.#sql = sql;
  }

  async recordStatus(report: StatusReport, receivedAt = Date.now()): Promise<void> {
    const json = reportJson(report);
    const id = report.terminalId.toUpperCase();
    this.#journal.write(() => {
      this.#sql.upsertLatest.run(id, receivedAt, json);
      this.#sql.insertHistory.run(id, receivedAt, json);
      this.#sql.trimHistory.run(id, id);
    });
    await this.#journal.durable();
  }

  async latestStatus(): Promise<StatusRow[]> {
    return (this.#sql.latest.all() as StatusDbRow[]).map(statusOf);
  }

  async statusHistory(terminalId: string, limit?: number): Promise<StatusRow[]> {
    return (this.#sql.history.all(checkTerminalId(terminalId), clampLimit(limit, 100, STATUS_HISTORY_LIMIT)) as StatusDbRow[]).map(statusOf);
  }

  async getConfigScope(scope: string): Promise<ConfigScope> {
    const name = normalScope(scope);
    return scopeOf(name, this.#sql.scope.get(name) as ScopeDbRow | undefined);
  }

  async configScopes(): Promise<ConfigScope[]> {
    return (this.#sql.scopes.all() as ScopeDbRow[]).map((r) => scopeOf(r.scope, r));
  }

  async putConfigScope(scope: string, values: unknown, actor: string, expectedVersion?: number): Promise<ConfigScope> {
    const name = normalScope(scope);
    const settings = checkValues(values);
    const who = checkActor(actor);
    // One savepoint: a refusal (a stale version) undoes the revision bump with it.
    const result = this.#journal.write(() => {
      const old = this.#sql.scope.get(name) as ScopeDbRow | undefined;
      const revision = (this.#sql.bump.get() as { revision: number }).revision;
      const plan = planScope(name, old, settings, who, expectedVersion, revision, Date.now());
      this.#sql.putScope.run(...plan.row);
      this.#sql.audit.run(...plan.audit);
      return plan.result;
    });
    await this.#journal.durable();
    return result;
  }

  async setTerminalGroup(terminalId: string, group: string | null, actor: string): Promise<void> {
    const id = checkTerminalId(terminalId);
    const name = group === null ? null : checkGroup(group);
    const who = checkActor(actor);
    this.#journal.write(() => {
      const old = this.#sql.group.get(id) as GroupDbRow | undefined;
      if ((old?.group_name ?? null) === name) return;
      const revision = (this.#sql.bump.get() as { revision: number }).revision;
      const plan = planGroup(id, old, name, who, revision, Date.now());
      this.#sql.putGroup.run(...plan.row);
      this.#sql.audit.run(...plan.audit);
    });
    await this.#journal.durable();
  }

  async terminalGroups(): Promise<TerminalGroupRow[]> {
    return (this.#sql.groups.all() as GroupDbRow[]).map((r) => ({ terminalId: r.terminal_id, group: r.group_name }));
  }

  async configAudit(query: { scope?: string; limit?: number } = {}): Promise<ConfigAuditRow[]> {
    const limit = clampLimit(query.limit, 100, 1000);
    const rows = query.scope === undefined ? this.#sql.auditAll.all(limit) : this.#sql.auditScope.all(normalScope(query.scope), limit);
    return (rows as AuditDbRow[]).map(auditOf);
  }

  async effectiveConfig(terminalId: string): Promise<EffectiveConfig> {
    const id = checkTerminalId(terminalId);
    // One read transaction: the layers are of one moment even while an operator saves.
    return this.#journal.db.transaction(() => {
      const membership = this.#sql.group.get(id) as GroupDbRow | undefined;
      const names = ["defaults", ...(membership?.group_name ? [`group:${membership.group_name}`] : []), `terminal:${id}`];
      return effective(id, membership, names.map((n) => scopeOf(n, this.#sql.scope.get(n) as ScopeDbRow | undefined)));
    })();
  }
}

function numbered(sql: string): string {
  let n = 0;
  return sql.replace(/\?/g, () => `$${++n}`);
}

type Query = <R extends pg.QueryResultRow>(sql: string, params?: unknown[]) => Promise<R[]>;

/** A key for pg_advisory_xact_lock: configuration changes of every front-end process run one at a time. */
const CONFIG_LOCK = 0x636f6e66; // "conf"

/** PostgreSQL: a change is one transaction under the configuration lock, so a version read cannot move under it. */
export class PostgresFleet implements FleetStore {
  readonly #pool: pg.Pool;
  readonly #fail: (e: unknown) => Error;
  readonly #counted: (writes: number) => void;

  constructor(pool: pg.Pool, fail: (e: unknown) => Error, counted: (writes: number) => void) {
    this.#pool = pool;
    this.#fail = fail;
    this.#counted = counted;
  }

  async #query<R extends pg.QueryResultRow>(sql: SqlName, params: unknown[] = []): Promise<R[]> {
    try {
      return (await this.#pool.query<R>(numbered(SQL[sql]), params)).rows;
    } catch (e) {
      throw this.#fail(e);
    }
  }

  async #transaction<T>(writes: number, fn: (q: Query) => Promise<T>, begin = "BEGIN"): Promise<T> {
    let client: pg.PoolClient;
    try {
      client = await this.#pool.connect();
    } catch (e) {
      throw this.#fail(e);
    }
    try {
      await client.query(begin);
      const q: Query = async (sql, params = []) => (await client.query(numbered(sql), params)).rows;
      const result = await fn(q);
      await client.query("COMMIT");
      if (writes) this.#counted(writes);
      return result;
    } catch (e) {
      await client.query("ROLLBACK").catch(() => undefined);
      throw e instanceof FrontendError ? e : this.#fail(e);
    } finally {
      client.release();
    }
  }

  async recordStatus(report: StatusReport, receivedAt = Date.now()): Promise<void> {
    const json = reportJson(report);
    const id = report.terminalId.toUpperCase();
    await this.#transaction(3, async (q) => {
      await q(SQL.upsertLatest, [id, receivedAt, json]);
      await q(SQL.insertHistory, [id, receivedAt, json]);
      await q(SQL.trimHistory, [id, id]);
    });
  }

  async latestStatus(): Promise<StatusRow[]> {
    return (await this.#query<StatusDbRow>("latest")).map(statusOf);
  }

  async statusHistory(terminalId: string, limit?: number): Promise<StatusRow[]> {
    return (await this.#query<StatusDbRow>("history", [checkTerminalId(terminalId), clampLimit(limit, 100, STATUS_HISTORY_LIMIT)])).map(statusOf);
  }

  async getConfigScope(scope: string): Promise<ConfigScope> {
    const name = normalScope(scope);
    return scopeOf(name, (await this.#query<ScopeDbRow>("scope", [name]))[0]);
  }

  async configScopes(): Promise<ConfigScope[]> {
    return (await this.#query<ScopeDbRow>("scopes")).map((r) => scopeOf(r.scope, r));
  }

  async putConfigScope(scope: string, values: unknown, actor: string, expectedVersion?: number): Promise<ConfigScope> {
    const name = normalScope(scope);
    const settings = checkValues(values);
    const who = checkActor(actor);
    return this.#transaction(3, async (q) => {
      await q("SELECT pg_advisory_xact_lock(?)", [CONFIG_LOCK]);
      const old = (await q<ScopeDbRow>(SQL.scope, [name]))[0];
      const revision = (await q<{ revision: number }>(SQL.bump))[0]!.revision;
      const plan = planScope(name, old, settings, who, expectedVersion, revision, Date.now());
      await q(SQL.putScope, plan.row);
      await q(SQL.audit, plan.audit);
      return plan.result;
    });
  }

  async setTerminalGroup(terminalId: string, group: string | null, actor: string): Promise<void> {
    const id = checkTerminalId(terminalId);
    const name = group === null ? null : checkGroup(group);
    const who = checkActor(actor);
    await this.#transaction(3, async (q) => {
      await q("SELECT pg_advisory_xact_lock(?)", [CONFIG_LOCK]);
      const old = (await q<GroupDbRow>(SQL.group, [id]))[0];
      if ((old?.group_name ?? null) === name) return;
      const revision = (await q<{ revision: number }>(SQL.bump))[0]!.revision;
      const plan = planGroup(id, old, name, who, revision, Date.now());
      await q(SQL.putGroup, plan.row);
      await q(SQL.audit, plan.audit);
    });
  }

  async terminalGroups(): Promise<TerminalGroupRow[]> {
    return (await this.#query<GroupDbRow>("groups")).map((r) => ({ terminalId: r.terminal_id, group: r.group_name }));
  }

  async configAudit(query: { scope?: string; limit?: number } = {}): Promise<ConfigAuditRow[]> {
    const limit = clampLimit(query.limit, 100, 1000);
    const rows = query.scope === undefined ? await this.#query<AuditDbRow>("auditAll", [limit]) : await this.#query<AuditDbRow>("auditScope", [normalScope(query.scope), limit]);
    return rows.map(auditOf);
  }

  async effectiveConfig(terminalId: string): Promise<EffectiveConfig> {
    const id = checkTerminalId(terminalId);
    // REPEATABLE READ: the membership and the layers are read from one snapshot.
    return this.#transaction(0, async (q) => {
      const membership = (await q<GroupDbRow>(SQL.group, [id]))[0];
      const names = ["defaults", ...(membership?.group_name ? [`group:${membership.group_name}`] : []), `terminal:${id}`];
      const rows = await q<ScopeDbRow>("SELECT * FROM config_scopes WHERE scope = ANY(?)", [names]);
      return effective(id, membership, names.map((n) => scopeOf(n, rows.find((r) => r.scope === n))));
    }, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
  }
}

/** The FleetStore methods, by name: a --workers worker calls them over IPC. */
export const FLEET_METHODS = [
  "recordStatus", "latestStatus", "statusHistory", "getConfigScope", "configScopes", "putConfigScope", "setTerminalGroup",
  "terminalGroups", "configAudit", "effectiveConfig",
] as const satisfies readonly (keyof FleetStore)[];
