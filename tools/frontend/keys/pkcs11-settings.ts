/** The PKCS#11 key store's configuration, checked without loading the PKCS#11 binding (HTTP processes read it too). */
import { readFileSync } from "node:fs";
import { KeyStoreError } from "./keystore";

const ROLES = ["purchase", "tac", "load"] as const;

export interface Pkcs11Settings {
  /** Path of the vendor's PKCS#11 module (SoftHSM2: /usr/lib/softhsm/libsofthsm2.so). */
  module: string;
  tokenLabel: string;
  /** The user PIN: inline (development), from an environment variable, or from a file (first line). */
  pin?: string;
  pinEnv?: string;
  pinFile?: string;
  /** SoftHSM2 only: its configuration file (SOFTHSM2_CONF), which names the token directory. */
  softhsm2Conf?: string;
  /** A name for the key system (health and logs). */
  keySystem?: string;
  /**
   * Key check values the token's keys must have, "INDEX:VERSION:ALG" -> {purchase, tac, load?} as 6 hex digits. The key
   * service refuses to start when a listed key is missing or differs.
   */
  kcv?: Record<string, { purchase: string; tac: string; load?: string }>;
  /**
   * Where 3DES session keys and MACs are made once the token has made the card key: "token" (default; session objects
   * and DES3-CBC in the token) or "key-service" (node:crypto in the key service process: the card key is there
   * already, so the boundary is the same, at a fraction of the token calls). docs/keys.md.
   */
  sessionKeys?: "token" | "key-service";
}

export class Pkcs11Error extends KeyStoreError {}

export function readPin(s: Pkcs11Settings): string {
  if (s.pin !== undefined) return s.pin;
  if (s.pinEnv) {
    const v = process.env[s.pinEnv];
    if (!v) throw new Pkcs11Error(`the PIN's environment variable ${s.pinEnv} is not set`);
    return v;
  }
  if (s.pinFile) {
    try {
      return readFileSync(s.pinFile, "utf8").split("\n")[0]!.trim();
    } catch (e) {
      throw new Pkcs11Error(`cannot read the PIN file ${s.pinFile}: ${(e as Error).message}`);
    }
  }
  throw new Pkcs11Error("keyStore.pkcs11 needs pin, pinEnv or pinFile");
}

export function checkPkcs11Settings(s: unknown): Pkcs11Settings {
  const o = s as Pkcs11Settings;
  if (typeof o !== "object" || o === null) throw new Pkcs11Error("keyStore.pkcs11 must be an object");
  if (typeof o.module !== "string" || !o.module) throw new Pkcs11Error("keyStore.pkcs11.module (the PKCS#11 library path) is required");
  if (typeof o.tokenLabel !== "string" || !o.tokenLabel) throw new Pkcs11Error("keyStore.pkcs11.tokenLabel is required");
  if (o.sessionKeys !== undefined && o.sessionKeys !== "token" && o.sessionKeys !== "key-service") throw new Pkcs11Error('keyStore.pkcs11.sessionKeys must be "token" or "key-service"');
  if (o.pin === undefined && !o.pinEnv && !o.pinFile) throw new Pkcs11Error("keyStore.pkcs11 needs pin, pinEnv or pinFile");
  for (const [name, k] of Object.entries(o.kcv ?? {})) {
    if (!/^[0-9]{1,3}:[0-9]{1,3}:(3des|sm4)$/.test(name)) throw new Pkcs11Error(`keyStore.pkcs11.kcv: "${name}" is not INDEX:VERSION:3des|sm4`);
    for (const role of ROLES) {
      const v = (k as Record<string, unknown>)[role];
      if ((role !== "load" || v !== undefined) && (typeof v !== "string" || !/^[0-9A-Fa-f]{6}$/.test(v))) throw new Pkcs11Error(`keyStore.pkcs11.kcv["${name}"].${role} must be 6 hex digits`);
    }
  }
  return o;
}

