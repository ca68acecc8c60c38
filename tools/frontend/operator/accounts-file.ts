/**
 * Keeps the console's accounts in step with the configuration file: the account commands edit the file, and the
 * running console re-reads `operator.accounts` when the file's modification time or size changes, looked at no more
 * than once a second. A file that does not parse or holds a bad account is reported and the accounts stay as they were.
 */
import { readFileSync, statSync } from "node:fs";
import type { Accounts, OperatorAccount } from "./auth";

export class AccountsFile {
  readonly #file: string;
  readonly #accounts: Accounts;
  readonly #warn: (message: string) => void;
  #seen = "";
  #lookedAt = 0;

  constructor(file: string, accounts: Accounts, warn: (message: string) => void) {
    this.#file = file;
    this.#accounts = accounts;
    this.#warn = warn;
    this.#seen = this.#stamp();
  }

  #stamp(): string {
    try {
      const s = statSync(this.#file);
      return `${s.mtimeMs}:${s.size}:${s.ino}`;
    } catch {
      return "";
    }
  }

  /** Re-reads the accounts if the file changed since the last look. */
  refresh(now = Date.now()): void {
    if (now - this.#lookedAt < 1000) return;
    this.#lookedAt = now;
    const stamp = this.#stamp();
    if (!stamp || stamp === this.#seen) return;
    this.#seen = stamp;
    try {
      const parsed = JSON.parse(readFileSync(this.#file, "utf8")) as { operator?: { accounts?: OperatorAccount[] } };
      this.#accounts.replace(parsed.operator?.accounts ?? []);
    } catch (e) {
      this.#warn(`operator accounts not re-read from ${this.#file}: ${(e as Error).message}`);
    }
  }
}
