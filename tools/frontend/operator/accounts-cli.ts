/**
 * The console's account commands on a front-end configuration file:
 *   operator-add --config <file> --user NAME      adds an operator (an existing name is refused: use operator-passwd)
 *   operator-passwd --config <file> --user NAME   changes an operator's password and ends their sessions
 *   operator-remove --config <file> --user NAME   removes an operator and ends their sessions
 *   operator-list --config <file>                 the operators, one a line
 * Each edit touches `operator.accounts` only (json-edit.ts): the rest of the file stays as the operator wrote it.
 * A password comes from OPERATOR_PASSWORD or the first line of stdin, never from the command line (it would show
 * in `ps` and the shell's history). Sessions are ended in the configuration's database, which may be in use by a
 * running front-end (SQLite's WAL lets a second writer in; PostgreSQL is shared anyway).
 */
import { readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { openDatabase } from "../storage/journal";
import { isPostgresUrl, PostgresStore } from "../storage/store";
import { hashPassword, USER_PATTERN, type OperatorAccount } from "./auth";
import { setJsonValue } from "./json-edit";
import { CodedError } from "../../../modules/errors/errors";

export class AccountCommandError extends CodedError {
  constructor(message: string) {
    super("CONFIG", message);
  }
}

async function readPassword(): Promise<string> {
  const fromEnv = process.env.OPERATOR_PASSWORD;
  if (fromEnv !== undefined) return fromEnv;
  if (process.stdin.isTTY) process.stderr.write("password (shown as you type; or pipe it in): ");
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) {
    chunks.push(chunk as Buffer);
    if (Buffer.concat(chunks).includes(10)) break;
  }
  return Buffer.concat(chunks).toString("utf8").split(/\r?\n/)[0] ?? "";
}

interface ConfigFile {
  text: string;
  accounts: OperatorAccount[];
  database: string | undefined;
}

function readConfig(file: string): ConfigFile {
  let text: string;
  let parsed: { operator?: { accounts?: OperatorAccount[] }; database?: string };
  try {
    text = readFileSync(file, "utf8");
    parsed = JSON.parse(text) as typeof parsed;
  } catch (e) {
    throw new AccountCommandError(`cannot read configuration ${file}: ${(e as Error).message}`);
  }
  const accounts = parsed.operator?.accounts ?? [];
  if (!Array.isArray(accounts)) throw new AccountCommandError(`${file}: operator.accounts must be a list`);
  return { text, accounts, database: parsed.database };
}

function checkUser(user: string): void {
  if (!USER_PATTERN.test(user)) throw new AccountCommandError("--user must be 1 to 64 letters, digits, '.', '_' or '-'");
}

/** Writes the accounts back into the file's text; written beside and renamed over, keeping the file's mode. */
function writeAccounts(file: string, config: ConfigFile, accounts: OperatorAccount[]): void {
  const text = setJsonValue(config.text, ["operator", "accounts"], accounts);
  let mode = 0o600;
  try {
    mode = statSync(file).mode & 0o777;
  } catch { /* a new file keeps 0600 */ }
  writeFileSync(`${file}.tmp`, text, { mode });
  renameSync(`${file}.tmp`, file);
}

/** Ends an operator's sessions in the configuration's database; how many were ended. */
export async function endSessionsOf(database: string | undefined, user: string): Promise<number> {
  if (!database) return 0;
  if (isPostgresUrl(database)) {
    const store = await PostgresStore.open(database, { poolSize: 1 });
    try {
      return await store.operatorSessions.endSessionsOf(user);
    } finally {
      await store.close();
    }
  }
  let db;
  try {
    // Read-write, and migrated: a database of an older program gets its sessions table here.
    db = openDatabase(database, "full");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "SQLITE_CANTOPEN") return 0;
    throw e;
  }
  try {
    return db.prepare("DELETE FROM operator_sessions WHERE operator = ?").run(user).changes;
  } finally {
    db.close();
  }
}

export async function addOperator(file: string, user: string): Promise<void> {
  checkUser(user);
  const config = readConfig(file);
  if (config.accounts.some((a) => a.user === user)) throw new AccountCommandError(`operator ${user} already exists in ${file}; change the password with operator-passwd`);
  const password = hashPassword(await readPassword());
  writeAccounts(file, config, [...config.accounts, { user, password }]);
  console.log(`operator ${user} added to ${file} (${config.accounts.length + 1} account(s)); restart the front-end to use it`);
}

export async function changePassword(file: string, user: string): Promise<void> {
  checkUser(user);
  const config = readConfig(file);
  if (!config.accounts.some((a) => a.user === user)) throw new AccountCommandError(`no operator ${user} in ${file}`);
  const password = hashPassword(await readPassword());
  writeAccounts(file, config, config.accounts.map((a) => (a.user === user ? { ...a, password } : a)));
  const ended = await endSessionsOf(config.database, user);
  console.log(`password of ${user} changed in ${file}; ${ended} session(s) ended; restart the front-end to use the new password`);
}

export async function removeOperator(file: string, user: string): Promise<void> {
  checkUser(user);
  const config = readConfig(file);
  if (!config.accounts.some((a) => a.user === user)) throw new AccountCommandError(`no operator ${user} in ${file}`);
  writeAccounts(file, config, config.accounts.filter((a) => a.user !== user));
  const ended = await endSessionsOf(config.database, user);
  console.log(`operator ${user} removed from ${file}; ${ended} session(s) ended`);
}

export function listOperators(file: string): void {
  for (const a of readConfig(file).accounts) console.log(a.user);
}
