/**
 * Operator authentication for the console: accounts with scrypt-hashed passwords in the front-end's configuration,
 * checked on threads of their own (password-pool.ts), and sessions kept in the database (sessions.ts), so that
 * logout, removing an account and changing its password end them, in every process of `--workers N`.
 */
import { randomBytes, scrypt, scryptSync, timingSafeEqual } from "node:crypto";
import type { PasswordPool } from "./password-pool";
import { newSessionToken, tokenHash, type SessionStore } from "./sessions";
import { CodedError } from "../../../modules/errors/errors";

/** One operator: a name and `scrypt$N$r$p$salt$hash` (salt and hash in base64url). */
export interface OperatorAccount {
  user: string;
  password: string;
}

export class OperatorAuthError extends CodedError {}

// scrypt's cost: N = 2^15 with r = 8 takes 32 MiB and a few tens of milliseconds, the RFC 7914 interactive setting.
const N = 32768;
const R = 8;
const P = 1;
const KEY_LENGTH = 32;
const MAX_MEMORY = 64 * 1024 * 1024;
export const USER_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;

export function hashPassword(password: string, salt: Buffer = randomBytes(16)): string {
  if (typeof password !== "string" || password.length < 8) throw new OperatorAuthError("PASSWORD_TOO_SHORT", "an operator password has at least 8 characters");
  const hash = scryptSync(password, salt, KEY_LENGTH, { N, r: R, p: P, maxmem: MAX_MEMORY });
  return `scrypt$${N}$${R}$${P}$${salt.toString("base64url")}$${hash.toString("base64url")}`;
}

/** Parses a stored hash; throws OperatorAuthError for one that is not in our format (a configuration error). */
export function parseHash(stored: string): { n: number; r: number; p: number; salt: Buffer; hash: Buffer } {
  const m = /^scrypt\$([0-9]+)\$([0-9]+)\$([0-9]+)\$([A-Za-z0-9_-]+)\$([A-Za-z0-9_-]+)$/.exec(String(stored));
  if (!m) throw new OperatorAuthError("BAD_PASSWORD_HASH", "an operator password must be stored as scrypt$N$r$p$salt$hash (npm run frontend -- operator-add)");
  const n = Number(m[1]);
  const r = Number(m[2]);
  const p = Number(m[3]);
  if (n < 2 || (n & (n - 1)) !== 0 || n > 1 << 20 || r < 1 || r > 32 || p < 1 || p > 16) throw new OperatorAuthError("BAD_PASSWORD_HASH", "scrypt parameters out of range");
  return { n, r, p, salt: Buffer.from(m[4]!, "base64url"), hash: Buffer.from(m[5]!, "base64url") };
}

/**
 * On libuv's thread pool, not the event loop: for tools and tests. The console checks passwords on its own threads
 * (PasswordPool), because libuv's pool also serves the terminals' TLS and the journal's fsyncs.
 */
export function verifyPassword(password: string, stored: string): Promise<boolean> {
  const h = parseHash(stored);
  return new Promise((resolve, reject) => {
    scrypt(password, h.salt, h.hash.length, { N: h.n, r: h.r, p: h.p, maxmem: 256 * h.n * h.r + MAX_MEMORY }, (error, candidate) => {
      if (error) reject(error);
      else resolve(candidate.length === h.hash.length && timingSafeEqual(candidate, h.hash));
    });
  });
}

// A hash checked when the user is unknown, so that a wrong name costs as long as a wrong password.
const DUMMY = `scrypt$${N}$${R}$${P}$${Buffer.alloc(16).toString("base64url")}$${Buffer.alloc(KEY_LENGTH).toString("base64url")}`;

function accountMap(accounts: OperatorAccount[]): Map<string, string> {
  const map = new Map<string, string>();
  for (const a of accounts) {
    if (!a || typeof a.user !== "string" || !USER_PATTERN.test(a.user)) throw new OperatorAuthError("BAD_ACCOUNT", `bad operator name ${JSON.stringify(a?.user)}`);
    parseHash(a.password);
    map.set(a.user, a.password);
  }
  return map;
}

export class Accounts {
  #accounts: Map<string, string>;

  constructor(accounts: OperatorAccount[]) {
    this.#accounts = accountMap(accounts);
  }

  /** Takes a new list (a re-read configuration file); a bad list throws and leaves the accounts as they were. */
  replace(accounts: OperatorAccount[]): void {
    this.#accounts = accountMap(accounts);
  }

  get size(): number {
    return this.#accounts.size;
  }

  has(user: string): boolean {
    return this.#accounts.has(user);
  }

  /** The operator's name when the password is right, else null; on the pool's threads when one is given. */
  async check(user: string, password: string, pool?: PasswordPool): Promise<string | null> {
    const stored = this.#accounts.get(user) ?? DUMMY;
    const h = parseHash(stored);
    const ok = pool ? await pool.verify(password, h, 256 * h.n * h.r + MAX_MEMORY) : await verifyPassword(password, stored);
    return this.#accounts.has(user) && ok ? user : null;
  }
}

export const SESSION_COOKIE = "console_session";
const TOKEN = /^[A-Za-z0-9_-]{43}$/;

/**
 * Sessions in the database: the cookie holds a random token, the table its hash, the operator and the expiry. A token
 * is good while its row exists, has not expired, and names an operator the configuration still has (an account
 * removed from the file while the server was down ends its sessions at the next start as well).
 */
export class Sessions {
  readonly #store: SessionStore;
  readonly #accounts: Accounts;
  readonly #lifetimeMs: number;
  readonly #now: () => number;

  constructor(store: SessionStore, accounts: Accounts, lifetimeMs: number, now: () => number = Date.now) {
    this.#store = store;
    this.#accounts = accounts;
    this.#lifetimeMs = lifetimeMs;
    this.#now = now;
  }

  async issue(user: string): Promise<string> {
    const token = newSessionToken();
    const now = this.#now();
    await this.#store.createSession(tokenHash(token), user, now, now + this.#lifetimeMs);
    return token;
  }

  /** The operator of a live session, else null. */
  async verify(token: string | undefined): Promise<string | null> {
    if (!token || !TOKEN.test(token)) return null;
    const row = await this.#store.findSession(tokenHash(token), this.#now());
    if (!row || !this.#accounts.has(row.operator)) return null;
    return row.operator;
  }

  async end(token: string | undefined): Promise<void> {
    if (token && TOKEN.test(token)) await this.#store.endSession(tokenHash(token));
  }

  get lifetimeMs(): number {
    return this.#lifetimeMs;
  }
}

/** The value of one cookie in a Cookie header (RFC 6265 syntax: name=value pairs separated by "; "). */
export function readCookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

export function sessionCookie(token: string, maxAgeSeconds: number): string {
  // Secure: the console is served over TLS only. HttpOnly: scripts never see it. SameSite=Strict: another site's form
  // cannot post to the console with it (the console's own forms are same-site).
  return `${SESSION_COOKIE}=${token}; Path=/; Max-Age=${maxAgeSeconds}; HttpOnly; Secure; SameSite=Strict`;
}

export const CLEAR_SESSION = `${SESSION_COOKIE}=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Strict`;
