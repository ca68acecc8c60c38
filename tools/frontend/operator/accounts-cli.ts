/**
 * `npm run frontend -- operator-add --config <file> --user NAME`: stores an operator's scrypt hash in the configuration
 * file's `operator.accounts` (replacing one of the same name). The password comes from OPERATOR_PASSWORD or the first
 * line of stdin, never from the command line (it would show in `ps` and the shell's history).
 */
import { readFileSync, renameSync, writeFileSync } from "node:fs";
import { hashPassword, USER_PATTERN, type OperatorAccount } from "./auth";

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

export async function addOperator(file: string, user: string): Promise<void> {
  if (!USER_PATTERN.test(user)) throw Object.assign(new Error("--user must be 1 to 64 letters, digits, '.', '_' or '-'"), { code: "CONFIG" });
  let config: { operator?: { accounts?: OperatorAccount[]; port?: number } };
  try {
    config = JSON.parse(readFileSync(file, "utf8")) as typeof config;
  } catch (e) {
    throw Object.assign(new Error(`cannot read configuration ${file}: ${(e as Error).message}`), { code: "CONFIG" });
  }
  const password = hashPassword(await readPassword());
  config.operator ??= { port: 8445 };
  const accounts = (config.operator.accounts ?? []).filter((a) => a.user !== user);
  accounts.push({ user, password });
  config.operator.accounts = accounts;
  // Written beside and renamed over: an interrupted write never leaves half a configuration.
  writeFileSync(`${file}.tmp`, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
  renameSync(`${file}.tmp`, file);
  console.log(`operator ${user} saved in ${file} (${accounts.length} account(s)); restart the front-end to use it`);
}
