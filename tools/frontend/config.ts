/** Front-end configuration: the JSON file that `npm run frontend -- --config <file>` reads, and what startFrontend takes. */
import { readFileSync } from "node:fs";
import path from "node:path";
import type { KeyStore } from "./keys/keystore";
import { checkPkcs11Settings, type Pkcs11Settings } from "./keys/pkcs11-settings";
import type { Durability } from "./storage/journal";
import { checkOperatorConfig, type OperatorConfig } from "./operator/config";
import { CodedError } from "../../modules/errors/errors";
import { checkListenLimits, type ListenLimits } from "./listen/limits";

export type Application = "tunion" | "cityunion";

/** One line of the routing table: where a terminal sends a card of this city and application. */
export interface Route {
  /** 4 hex digits from file 0x15 bytes 2..3, or "*" for any city. */
  cityCode: string;
  application: Application;
  level: 1 | 2;
  url: string;
  keyIndex: number;
}

/** A city this front-end accepts cards of; cityCode "*" accepts every city (e.g. T-Union at the national level). */
export interface CityServed {
  cityCode: string;
  /** Default: both applications. */
  applications?: Application[];
}

/** A PEM text or a path to a PEM file. */
export type PemSource = string;

export interface FrontendConfig {
  /** A name for logs and health. */
  name?: string;
  level: 1 | 2;
  /**
   * Default 127.0.0.1, port 8443 (0 = an ephemeral port). The limits (handshake, idle, headers and request timeouts,
   * the total and per-address connection caps: listen/limits.ts) apply to the terminals' and the console's listeners.
   */
  listen?: { host?: string; port?: number } & ListenLimits;
  tls: {
    /** The server's certificate chain and key (RSA-2048). */
    cert: PemSource;
    key: PemSource;
    /** The CA(s) terminal certificates must chain to. */
    clientCa: PemSource;
    /**
     * A file with the CRL(s) of the terminal CA, PEM (docs/certificates.md). Certificates it lists are refused at the
     * handshake; the file is reloaded when it changes. Every CA in clientCa then needs its CRL in the file.
     */
    crl?: string;
  };
  /** The SQLite journal file, or a PostgreSQL URL (postgres://user@host:port/db) shared by any number of front-ends. */
  database: string;
  /** Durability of commits: "full" (default, fsync per commit batch) or "normal" (survives a crash of the process only). */
  durability?: Durability;
  /**
   * A development key store file (see keystore.ts; the master keys in clear: development only), a PKCS#11 token
   * ({pkcs11: {module, tokenLabel, pin | pinEnv | pinFile, kcv}}, served by a key service process: docs/keys.md), or an
   * object implementing KeyStore (in-process callers).
   */
  keyStore: string | KeyStore | { pkcs11: Pkcs11Settings };
  /** The key system's name, for health and logs (default: the key store file's). */
  keySystem?: string;
  cities: CityServed[];
  /** The routing table; served by level 1 only. */
  routes?: Route[];
  routesVersion?: number;
  limits?: {
    /** Largest amount of one purchase, in fen. Default 100000 (1,000 yuan). */
    maxAmount?: number;
    /** Largest request body in bytes. Default 4096. */
    bodyLimit?: number;
    /** Authorizations a terminal may make per second, on average (a token bucket per process). Default 5. */
    authorizationsPerSecond?: number;
    /** How many authorizations a terminal may make at once before the rate applies. Default 10. */
    authorizationBurst?: number;
    /** Most fen a terminal may authorize per China business day (docs/limits.md). Absent: no ceiling. */
    dailyAmount?: number;
  };
  /** Card types (file 0x15) accepted; absent = all. */
  acceptedCardTypes?: number[];
  /**
   * ASNs (their decimal digits, 16 to 20) refused as hotlisted. A listed ASN refuses every card whose key
   * diversification factor (the ASN's last 16 digits) is its own: purchases/hotlist.ts.
   */
  hotlist?: string[];
  /** A file with more hotlisted ASNs, one per line (# comments allowed); read at start. */
  hotlistFile?: string;
  /** Client certificate CNs that may read the settlement export (e.g. "clearing"). Terminals may not. */
  operators?: string[];
  /** After this long without a completion an authorization is marked for reconciliation. Default 10 minutes. */
  reconciliationTimeoutMs?: number;
  /** How often to look for such authorizations. Default min(timeout / 4, 30 s). */
  reconciliationSweepMs?: number;
  /** Milliseconds since the epoch; tests replace it to move the server's clock. */
  clock?: () => number;
  /** The operator console's listener (tools/frontend/operator): its port, the operator accounts. Absent: no console. */
  operator?: OperatorConfig;
  /** Pino log level ("info" default; "silent" for none) and an optional log file (default stdout). */
  log?: { level?: string; file?: string; requests?: boolean };
  /**
   * Modules whose default export is a Fastify plugin, registered before the routes: how a test rig adds a hook
   * (tools/rigs/frontend/test-hold.ts) to a front-end it starts, in every worker. A deployment names none.
   */
  plugins?: string[];
}

export class ConfigError extends CodedError {
  constructor(message: string) {
    super("CONFIG", message);
  }
}

export function readPem(source: PemSource, what: string): string {
  if (typeof source !== "string" || !source) throw new ConfigError(`${what} is required`);
  if (source.includes("-----BEGIN")) return source;
  try {
    return readFileSync(source, "utf8");
  } catch (e) {
    throw new ConfigError(`cannot read ${what} from ${source}: ${(e as Error).message}`);
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

export const isPkcs11KeyStore = (k: FrontendConfig["keyStore"]): k is { pkcs11: Pkcs11Settings } => isObject(k) && "pkcs11" in k;

/** Checks a configuration and fills defaults; throws ConfigError with the first problem. */
export function checkConfig(c: FrontendConfig): FrontendConfig {
  if (!isObject(c)) throw new ConfigError("configuration must be an object");
  if (c.level !== 1 && c.level !== 2) throw new ConfigError("level must be 1 or 2");
  if (!isObject(c.tls)) throw new ConfigError("tls {cert, key, clientCa} is required");
  if (typeof c.database !== "string" || !c.database) throw new ConfigError("database (a file path or a postgres:// URL) is required");
  if (typeof c.keyStore !== "string" && !isObject(c.keyStore)) throw new ConfigError("keyStore (a file path, {pkcs11: {...}} or a KeyStore) is required");
  if (isPkcs11KeyStore(c.keyStore)) {
    try {
      checkPkcs11Settings(c.keyStore.pkcs11);
    } catch (e) {
      throw new ConfigError((e as Error).message);
    }
  }
  if (!Array.isArray(c.cities) || !c.cities.length) throw new ConfigError("cities must list at least one city served");
  for (const city of c.cities) {
    if (!isObject(city) || typeof city.cityCode !== "string" || !/^([0-9A-Fa-f]{4}|\*)$/.test(city.cityCode)) throw new ConfigError(`city code must be 4 hex digits or "*": ${JSON.stringify(city)}`);
    if (city.applications !== undefined && (!Array.isArray(city.applications) || city.applications.some((a) => a !== "tunion" && a !== "cityunion"))) {
      throw new ConfigError(`applications of city ${city.cityCode} must be "tunion" and/or "cityunion"`);
    }
  }
  for (const r of c.routes ?? []) {
    if (!isObject(r) || !/^([0-9A-Fa-f]{4}|\*)$/.test(String(r.cityCode)) || (r.application !== "tunion" && r.application !== "cityunion") ||
      (r.level !== 1 && r.level !== 2) || typeof r.url !== "string" || !Number.isInteger(r.keyIndex) || r.keyIndex < 0 || r.keyIndex > 255) {
      throw new ConfigError(`bad route ${JSON.stringify(r)}`);
    }
  }
  const max = c.limits?.maxAmount;
  if (max !== undefined && (!Number.isInteger(max) || max < 1 || max > 0xffffffff)) throw new ConfigError("limits.maxAmount must be whole fen, 1..4294967295");
  const body = c.limits?.bodyLimit;
  if (body !== undefined && (!Number.isInteger(body) || body < 256)) throw new ConfigError("limits.bodyLimit must be at least 256 bytes");
  const rate = c.limits?.authorizationsPerSecond;
  if (rate !== undefined && (typeof rate !== "number" || !(rate > 0) || rate > 100_000)) throw new ConfigError("limits.authorizationsPerSecond must be a number above 0");
  const burst = c.limits?.authorizationBurst;
  if (burst !== undefined && (!Number.isInteger(burst) || burst < 1 || burst > 100_000)) throw new ConfigError("limits.authorizationBurst must be a whole number, at least 1");
  const daily = c.limits?.dailyAmount;
  if (daily !== undefined && (!Number.isInteger(daily) || daily < 1 || daily > Number.MAX_SAFE_INTEGER)) throw new ConfigError("limits.dailyAmount must be whole fen, at least 1");
  if (c.tls.crl !== undefined && (typeof c.tls.crl !== "string" || !c.tls.crl)) throw new ConfigError("tls.crl must be the path of a PEM file");
  if (c.acceptedCardTypes !== undefined && (!Array.isArray(c.acceptedCardTypes) || c.acceptedCardTypes.some((t) => !Number.isInteger(t) || t < 0 || t > 255))) {
    throw new ConfigError("acceptedCardTypes must be bytes");
  }
  if (c.hotlist !== undefined && (!Array.isArray(c.hotlist) || c.hotlist.some((a) => typeof a !== "string" || !/^[0-9]{16,20}$/.test(a)))) {
    throw new ConfigError("hotlist must list ASNs as 16 to 20 digits");
  }
  if (c.plugins !== undefined && (!Array.isArray(c.plugins) || c.plugins.some((p) => typeof p !== "string" || !p))) {
    throw new ConfigError("plugins must list module paths");
  }
  const timeout = c.reconciliationTimeoutMs;
  if (timeout !== undefined && (!Number.isInteger(timeout) || timeout < 1)) throw new ConfigError("reconciliationTimeoutMs must be a positive integer");
  if (c.operator !== undefined) {
    try {
      checkOperatorConfig(c.operator);
    } catch (e) {
      throw new ConfigError((e as Error).message);
    }
  }
  try {
    checkListenLimits(c.listen);
  } catch (e) {
    throw new ConfigError((e as Error).message);
  }
  if (c.durability !== undefined && c.durability !== "full" && c.durability !== "normal") throw new ConfigError('durability must be "full" or "normal"');
  return c;
}

/**
 * A secret in the configuration file: the value itself, or where to read it from, so that the file holds no secret:
 * `{"env": "DATABASE_URL"}` (an environment variable, e.g. set by systemd's EnvironmentFile or LoadCredential) or
 * `{"file": "/run/credentials/frontend/session-secret"}` (a file readable only by the service; one trailing newline
 * is dropped). Used for `database` and `operator.sessionSecret`; other secrets (a key store's PIN) take the same form.
 */
export type SecretSource = string | { env: string } | { file: string };

/** The secret's text; relative files are relative to `base` (the configuration file's folder). */
export function resolveSecret(source: unknown, what: string, base = process.cwd()): string {
  if (typeof source === "string") return source;
  if (isObject(source) && typeof source.env === "string" && Object.keys(source).length === 1) {
    const value = process.env[source.env];
    if (!value) throw new ConfigError(`${what}: the environment variable ${source.env} is not set`);
    return value;
  }
  if (isObject(source) && typeof source.file === "string" && Object.keys(source).length === 1) {
    try {
      return readFileSync(path.resolve(base, source.file), "utf8").replace(/\r?\n$/, "");
    } catch (e) {
      throw new ConfigError(`${what}: cannot read ${source.file}: ${(e as Error).message}`);
    }
  }
  throw new ConfigError(`${what} must be a string, {"env": NAME} or {"file": PATH}`);
}

/** Reads a configuration file; relative paths in it are relative to the file. */
export function loadConfigFile(file: string): FrontendConfig {
  let parsed: FrontendConfig;
  try {
    parsed = JSON.parse(readFileSync(file, "utf8")) as FrontendConfig;
  } catch (e) {
    throw new ConfigError(`cannot read configuration ${file}: ${(e as Error).message}`);
  }
  if (!isObject(parsed)) throw new ConfigError(`${file}: configuration must be an object`);
  const base = path.dirname(path.resolve(file));
  const resolve = (p: unknown) => (typeof p === "string" && p && !p.includes("-----BEGIN") ? path.resolve(base, p) : p) as string;
  if (parsed.database !== undefined) parsed.database = resolveSecret(parsed.database, "database", base);
  if (isObject(parsed.operator) && parsed.operator.sessionSecret !== undefined) {
    parsed.operator = { ...parsed.operator, sessionSecret: resolveSecret(parsed.operator.sessionSecret, "operator.sessionSecret", base) };
  }
  if (isObject(parsed.tls)) {
    parsed.tls = { cert: resolve(parsed.tls.cert), key: resolve(parsed.tls.key), clientCa: resolve(parsed.tls.clientCa), ...(parsed.tls.crl ? { crl: resolve(parsed.tls.crl) } : {}) };
  }
  if (!/^postgres(ql)?:\/\//i.test(String(parsed.database))) parsed.database = resolve(parsed.database);
  if (typeof parsed.keyStore === "string") parsed.keyStore = resolve(parsed.keyStore);
  if (isPkcs11KeyStore(parsed.keyStore) && isObject(parsed.keyStore.pkcs11)) {
    const k = parsed.keyStore.pkcs11;
    parsed.keyStore = { pkcs11: { ...k, ...(k.pinFile ? { pinFile: resolve(k.pinFile) } : {}), ...(k.softhsm2Conf ? { softhsm2Conf: resolve(k.softhsm2Conf) } : {}) } };
  }
  if (parsed.hotlistFile) parsed.hotlistFile = resolve(parsed.hotlistFile);
  if (parsed.log?.file) parsed.log = { ...parsed.log, file: resolve(parsed.log.file) };
  // The console re-reads its accounts from here, so operator-remove and operator-passwd take effect without a restart.
  if (isObject(parsed.operator)) parsed.operator = { ...parsed.operator, accountsFile: path.resolve(file) };
  return checkConfig(parsed);
}
