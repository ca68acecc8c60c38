/**
 * Operator authentication for the console: accounts with scrypt-hashed passwords in the front-end's configuration,
 * and a session cookie that is an HMAC-signed token (operator, expiry), so that every process of `--workers N` checks
 * it with the same secret and no session table has to be shared between them.
 */
import { createHmac, randomBytes, scrypt, scryptSync, timingSafeEqual } from "node:crypto";

/** One operator: a name and `scrypt$N$r$p$salt$hash` (salt and hash in base64url). */
export interface OperatorAccount {
  user: string;
  password: string;
}

export class OperatorAuthError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}

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
 * On libuv's thread pool, not the event loop: one scrypt costs about a quarter of a second on a loaded 2-core machine,
 * which would otherwise stall every terminal request the same process serves.
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

export class Accounts {
  readonly #accounts = new Map<string, string>();

  constructor(accounts: OperatorAccount[]) {
    for (const a of accounts) {
      if (!a || typeof a.user !== "string" || !USER_PATTERN.test(a.user)) throw new OperatorAuthError("BAD_ACCOUNT", `bad operator name ${JSON.stringify(a?.user)}`);
      parseHash(a.password);
      this.#accounts.set(a.user, a.password);
    }
  }

  get size(): number {
    return this.#accounts.size;
  }

  /** The operator's name when the password is right, else null. */
  async check(user: string, password: string): Promise<string | null> {
    const stored = this.#accounts.get(user);
    const ok = await verifyPassword(password, stored ?? DUMMY);
    return stored !== undefined && ok ? user : null;
  }
}

export const SESSION_COOKIE = "console_session";

/** Session tokens: `user.expiresMs.hmac`, HMAC-SHA256 over the first two parts. */
export class Sessions {
  readonly #secret: Buffer;
  readonly #lifetimeMs: number;
  readonly #now: () => number;

  constructor(secret: Buffer, lifetimeMs: number, now: () => number = Date.now) {
    if (secret.length < 16) throw new OperatorAuthError("BAD_SESSION_SECRET", "the session secret needs at least 16 bytes");
    this.#secret = secret;
    this.#lifetimeMs = lifetimeMs;
    this.#now = now;
  }

  #mac(body: string): Buffer {
    return createHmac("sha256", this.#secret).update(body).digest();
  }

  issue(user: string): string {
    const body = `${user}.${this.#now() + this.#lifetimeMs}`;
    return `${body}.${this.#mac(body).toString("base64url")}`;
  }

  /** The operator of a valid, unexpired token, else null. */
  verify(token: string | undefined): string | null {
    if (!token) return null;
    const m = /^([A-Za-z0-9._-]{1,64})\.([0-9]{1,16})\.([A-Za-z0-9_-]{43})$/.exec(token);
    if (!m) return null;
    const given = Buffer.from(m[3]!, "base64url");
    const expected = this.#mac(`${m[1]}.${m[2]}`);
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return null;
    if (Number(m[2]) <= this.#now()) return null;
    return m[1]!;
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
