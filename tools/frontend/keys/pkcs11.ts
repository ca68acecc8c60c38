/**
 * The PKCS#11 key store: master keys inside a token (an HSM; SoftHSM2 in development and tests), asked for the card
 * keys' work through token mechanisms. It runs in the key service process (service.ts), never in an HTTP process.
 *
 * Which mechanism does which step, and why SM4 keys are kept wrapped: docs/keys.md.
 *
 * Token objects (label = what the key is; retired keys keep their label behind "retired/"):
 * - 3DES master keys: CKO_SECRET_KEY, CKK_DES2, label "purse/INDEX/VERSION/3des/ROLE" (ROLE purchase, tac or load),
 *   CKA_ID the derivation ("one-level" or "two-level"); CKA_SENSITIVE true, CKA_EXTRACTABLE false.
 * - SM4 master keys: CKO_DATA, label "purse/INDEX/VERSION/sm4/ROLE", CKA_VALUE the key wrapped (CKM_AES_KEY_WRAP) under
 *   the token's AES-256 key "purse-wrap/sm4" (sensitive, non-extractable, wrap/unwrap only).
 */
import { readFileSync } from "node:fs";
import { createCipheriv } from "node:crypto";
import pkcs11js from "pkcs11js";
import { toHex, uint32Bytes as uint32 } from "../../../modules/bytes/bytes";
import {
  keyCheckValue, loadMac1Data, pbocMac, tacKey, loadMac2Data, loadSessionKeyInput, loadTacData, macEquals, pad, purchaseMac1Data, purchaseSessionKeyInput,
  purchaseTacData, type PurseAlgorithm,
} from "../../purse-crypto/index";
import { FrontendError } from "../errors";
import { Pkcs11Error, checkPkcs11Settings, readPin, type Pkcs11Settings } from "./pkcs11-settings";
import {
  FileKeyStore, KEY_STORE_FORMAT,
  type CardKeyFactors, type Derivation, type KeyStore, type KeyStoreFile, type LoadSessionInput, type MasterKeyRef, type PurchaseSessionInput,
} from "./keystore";

export const SOFTHSM2_MODULE = "/usr/lib/softhsm/libsofthsm2.so";
export const SM4_WRAP_LABEL = "purse-wrap/sm4";
/** What the project does with SM4 keys on a token without SM4 (shown by describe() and the start log). */
export const SM4_POLICY = "SM4 master keys stored in the token wrapped (AES key wrap) under a non-extractable token AES-256 key; unwrapped only inside the key service process, SM4 computed there";

export { Pkcs11Error, checkPkcs11Settings, readPin, type Pkcs11Settings };

export type KeyRole = "purchase" | "tac" | "load";
const ROLES: KeyRole[] = ["purchase", "tac", "load"];

const refName = (r: MasterKeyRef) => `${r.keyIndex}:${r.keyVersion}:${r.algorithm}`;
const keyLabel = (r: MasterKeyRef, role: KeyRole) => `purse/${r.keyIndex}/${r.keyVersion}/${r.algorithm}/${role}`;
const LABEL = /^(retired\/)?purse\/([0-9]{1,3})\/([0-9]{1,3})\/(3des|sm4)\/(purchase|tac|load)$/;

type Handle = Buffer;

/** The modules loaded in this process: PKCS#11 is initialised once per module and process. */
const modules = new Map<string, pkcs11js.PKCS11>();

function loadModule(path: string): pkcs11js.PKCS11 {
  let p = modules.get(path);
  if (!p) {
    p = new pkcs11js.PKCS11();
    try {
      p.load(path);
    } catch (e) {
      throw new Pkcs11Error(`cannot load the PKCS#11 module ${path}: ${(e as Error).message}`);
    }
    try {
      p.C_Initialize();
    } catch (e) {
      if ((e as { code?: number }).code !== pkcs11js.CKR_CRYPTOKI_ALREADY_INITIALIZED) throw e;
    }
    modules.set(path, p);
  }
  return p;
}

/** One logged-in read/write session on the token, with the few operations the key store needs. */
export class Token {
  readonly p: pkcs11js.PKCS11;
  readonly session: Handle;
  readonly label: string;

  constructor(settings: Pkcs11Settings) {
    // SoftHSM2 reads SOFTHSM2_CONF when the module is initialised: set it first.
    if (settings.softhsm2Conf) process.env.SOFTHSM2_CONF = settings.softhsm2Conf;
    this.p = loadModule(settings.module);
    const slot = this.p.C_GetSlotList(true).find((s) => this.p.C_GetTokenInfo(s).label.trim() === settings.tokenLabel);
    if (!slot) throw new Pkcs11Error(`no token labelled "${settings.tokenLabel}" in ${settings.module}`);
    this.label = settings.tokenLabel;
    this.session = this.p.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
    try {
      this.p.C_Login(this.session, pkcs11js.CKU_USER, readPin(settings));
    } catch (e) {
      if ((e as { code?: number }).code !== pkcs11js.CKR_USER_ALREADY_LOGGED_IN) {
        this.p.C_CloseSession(this.session);
        throw new Pkcs11Error(`cannot log in to token "${settings.tokenLabel}": ${(e as Error).message}`);
      }
    }
  }

  close(): void {
    try {
      this.p.C_CloseSession(this.session);
    } catch {
      // already closed (the module was finalised)
    }
  }

  find(template: pkcs11js.Template): Handle[] {
    this.p.C_FindObjectsInit(this.session, template);
    try {
      const found: Handle[] = [];
      for (;;) {
        const batch = this.p.C_FindObjects(this.session, 64);
        if (!batch.length) return found;
        found.push(...batch);
      }
    } finally {
      this.p.C_FindObjectsFinal(this.session);
    }
  }

  attribute(handle: Handle, type: number): Buffer | undefined {
    const [a] = this.p.C_GetAttributeValue(this.session, handle, [{ type }]);
    return a?.value as Buffer | undefined;
  }

  encrypt(mechanism: pkcs11js.Mechanism, key: Handle, data: Uint8Array): Uint8Array {
    this.p.C_EncryptInit(this.session, mechanism, key);
    return new Uint8Array(this.p.C_Encrypt(this.session, Buffer.from(data), Buffer.alloc(data.length + 16)));
  }

  /** A session object (gone with the session) holding a card or session key, sensitive, for encryption only. */
  sessionDes2(value: Uint8Array): Handle {
    return this.p.C_CreateObject(this.session, [
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY }, { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_DES2 },
      { type: pkcs11js.CKA_TOKEN, value: false }, { type: pkcs11js.CKA_SENSITIVE, value: true }, { type: pkcs11js.CKA_EXTRACTABLE, value: false },
      { type: pkcs11js.CKA_ENCRYPT, value: true }, { type: pkcs11js.CKA_VALUE, value: Buffer.from(value) },
    ]);
  }

  destroy(handle: Handle): void {
    this.p.C_DestroyObject(this.session, handle);
  }

  /** With a key made from value as a session object, destroyed afterwards whatever happens. */
  withDes2<T>(value: Uint8Array, use: (key: Handle) => T): T {
    const key = this.sessionDes2(value);
    try {
      return use(key);
    } finally {
      value.fill(0);
      this.destroy(key);
    }
  }
}

const ECB: pkcs11js.Mechanism = { mechanism: pkcs11js.CKM_DES3_ECB };
const CBC_ZERO_IV = (): pkcs11js.Mechanism => ({ mechanism: pkcs11js.CKM_DES3_CBC, parameter: Buffer.alloc(8) });
const complement = (b: Uint8Array) => b.map((x) => x ^ 0xff);
const concat = (a: Uint8Array, b: Uint8Array) => { const o = new Uint8Array(a.length + b.length); o.set(a); o.set(b, a.length); return o; };

/**
 * The PBOC MAC in the token: DES3-CBC with a zero IV over the data padded by ISO 9797-1 method 2, leftmost 4 bytes of
 * the last block. A single-DES key K is the DES2 key K || K (SoftHSM2 on OpenSSL 3 refuses CKM_DES_CBC).
 */
function tokenMac(token: Token, key: Handle, data: Uint8Array): Uint8Array {
  const chained = token.encrypt(CBC_ZERO_IV(), key, pad("3des", data));
  return chained.slice(chained.length - 8, chained.length - 4);
}

interface TokenKeys {
  ref: MasterKeyRef;
  derivation: Derivation;
  purchase: Handle;
  tac: Handle;
  load?: Handle;
}

export interface KeyListing {
  ref: MasterKeyRef;
  role: KeyRole;
  /** 6 hex digits. */
  kcv: string;
  retired: boolean;
  derivation: Derivation;
}

/** Every purse key object in the token, with its check value (never the key). */
export function listTokenKeys(token: Token): Array<KeyListing & { handle: Handle; cls: number }> {
  const out: Array<KeyListing & { handle: Handle; cls: number }> = [];
  let wrap: Handle | undefined;
  for (const handle of token.find([{ type: pkcs11js.CKA_TOKEN, value: true }])) {
    const label = token.attribute(handle, pkcs11js.CKA_LABEL)?.toString("utf8") ?? "";
    const m = LABEL.exec(label);
    if (!m) continue;
    const ref: MasterKeyRef = { keyIndex: Number(m[2]), keyVersion: Number(m[3]), algorithm: m[4] as PurseAlgorithm };
    const cls = token.attribute(handle, pkcs11js.CKA_CLASS)!.readUInt32LE(0);
    const idText = token.attribute(handle, cls === pkcs11js.CKO_DATA ? pkcs11js.CKA_APPLICATION : pkcs11js.CKA_ID)?.toString("utf8");
    const derivation: Derivation = idText === "two-level" ? "two-level" : "one-level";
    let kcv: Uint8Array;
    if (ref.algorithm === "3des") {
      // The token's own CKA_CHECK_VALUE (PKCS#11 2.40) still answers for a retired key, which may no longer encrypt.
      kcv = checkValue(token, handle) ?? token.encrypt(ECB, handle, new Uint8Array(8)).slice(0, 3);
    } else {
      wrap ??= wrapKey(token);
      const clear = unwrapSm4(token, wrap, token.attribute(handle, pkcs11js.CKA_VALUE)!);
      kcv = keyCheckValue("sm4", clear);
      clear.fill(0);
    }
    out.push({ ref, role: m[5] as KeyRole, kcv: toHex(kcv), retired: !!m[1], derivation, handle, cls });
  }
  return out.sort((a, b) => a.ref.keyIndex - b.ref.keyIndex || a.ref.keyVersion - b.ref.keyVersion || a.ref.algorithm.localeCompare(b.ref.algorithm) || a.role.localeCompare(b.role));
}

function checkValue(token: Token, handle: Handle): Uint8Array | undefined {
  try {
    const v = token.attribute(handle, pkcs11js.CKA_CHECK_VALUE);
    return v?.length === 3 ? new Uint8Array(v) : undefined;
  } catch {
    return undefined; // a module older than PKCS#11 2.40
  }
}

function wrapKey(token: Token): Handle {
  const [h] = token.find([{ type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY }, { type: pkcs11js.CKA_LABEL, value: SM4_WRAP_LABEL }]);
  if (!h) throw new Pkcs11Error(`token "${token.label}" has SM4 keys but no wrapping key ${SM4_WRAP_LABEL}`);
  return h;
}

function ensureWrapKey(token: Token): Handle {
  const [h] = token.find([{ type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY }, { type: pkcs11js.CKA_LABEL, value: SM4_WRAP_LABEL }]);
  if (h) return h;
  return token.p.C_GenerateKey(token.session, { mechanism: pkcs11js.CKM_AES_KEY_GEN }, [
    { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY }, { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_AES },
    { type: pkcs11js.CKA_VALUE_LEN, value: 32 }, { type: pkcs11js.CKA_TOKEN, value: true }, { type: pkcs11js.CKA_PRIVATE, value: true },
    { type: pkcs11js.CKA_SENSITIVE, value: true }, { type: pkcs11js.CKA_EXTRACTABLE, value: false },
    { type: pkcs11js.CKA_WRAP, value: true }, { type: pkcs11js.CKA_UNWRAP, value: true }, { type: pkcs11js.CKA_ENCRYPT, value: false },
    { type: pkcs11js.CKA_DECRYPT, value: false }, { type: pkcs11js.CKA_LABEL, value: SM4_WRAP_LABEL },
  ]);
}

/** Unwraps an SM4 master key into this process's memory (the key service's only: see SM4_POLICY). */
function unwrapSm4(token: Token, wrap: Handle, blob: Buffer): Uint8Array {
  const h = token.p.C_UnwrapKey(token.session, { mechanism: pkcs11js.CKM_AES_KEY_WRAP }, wrap, blob, [
    { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY }, { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_GENERIC_SECRET },
    { type: pkcs11js.CKA_TOKEN, value: false }, { type: pkcs11js.CKA_SENSITIVE, value: false }, { type: pkcs11js.CKA_EXTRACTABLE, value: true },
  ]);
  try {
    return new Uint8Array(token.attribute(h, pkcs11js.CKA_VALUE)!);
  } finally {
    token.destroy(h);
  }
}

function secretTemplate(ref: MasterKeyRef, role: KeyRole, derivation: Derivation): pkcs11js.Template {
  return [
    { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY }, { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_DES2 },
    { type: pkcs11js.CKA_TOKEN, value: true }, { type: pkcs11js.CKA_PRIVATE, value: true },
    { type: pkcs11js.CKA_SENSITIVE, value: true }, { type: pkcs11js.CKA_EXTRACTABLE, value: false },
    { type: pkcs11js.CKA_ENCRYPT, value: true }, { type: pkcs11js.CKA_DECRYPT, value: false },
    { type: pkcs11js.CKA_LABEL, value: keyLabel(ref, role) }, { type: pkcs11js.CKA_ID, value: Buffer.from(derivation) },
  ];
}

/** Stores an SM4 key (a session object, extractable only to be wrapped) as a wrapped data object, then destroys it. */
function storeWrappedSm4(token: Token, ref: MasterKeyRef, role: KeyRole, derivation: Derivation, key: Handle): void {
  const blob = token.p.C_WrapKey(token.session, { mechanism: pkcs11js.CKM_AES_KEY_WRAP }, ensureWrapKey(token), key, Buffer.alloc(64));
  token.destroy(key);
  token.p.C_CreateObject(token.session, [
    { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_DATA }, { type: pkcs11js.CKA_TOKEN, value: true }, { type: pkcs11js.CKA_PRIVATE, value: true },
    { type: pkcs11js.CKA_LABEL, value: keyLabel(ref, role) }, { type: pkcs11js.CKA_APPLICATION, value: derivation }, { type: pkcs11js.CKA_VALUE, value: blob },
  ]);
}

const SM4_SESSION_TEMPLATE = (value?: Uint8Array): pkcs11js.Template => [
  { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY }, { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_GENERIC_SECRET },
  { type: pkcs11js.CKA_TOKEN, value: false }, { type: pkcs11js.CKA_SENSITIVE, value: true }, { type: pkcs11js.CKA_EXTRACTABLE, value: true },
  ...(value ? [{ type: pkcs11js.CKA_VALUE, value: Buffer.from(value) }] : [{ type: pkcs11js.CKA_VALUE_LEN, value: 16 }]),
];

function refuseExisting(token: Token, ref: MasterKeyRef): void {
  if (listTokenKeys(token).some((k) => refName(k.ref) === refName(ref))) throw new Pkcs11Error(`token "${token.label}" already has keys ${refName(ref)} (retired ones included)`);
}

/** Key ceremony: makes the master keys of ref inside the token (generated there; the load key only if asked). */
export function createTokenKeys(token: Token, ref: MasterKeyRef, options: { load?: boolean; derivation?: Derivation } = {}): KeyListing[] {
  refuseExisting(token, ref);
  const derivation = options.derivation ?? "one-level";
  const roles = ROLES.filter((r) => r !== "load" || options.load !== false);
  for (const role of roles) {
    if (ref.algorithm === "3des") {
      token.p.C_GenerateKey(token.session, { mechanism: pkcs11js.CKM_DES2_KEY_GEN }, secretTemplate(ref, role, derivation));
    } else {
      const key = token.p.C_GenerateKey(token.session, { mechanism: pkcs11js.CKM_GENERIC_SECRET_KEY_GEN }, SM4_SESSION_TEMPLATE());
      storeWrappedSm4(token, ref, role, derivation, key);
    }
  }
  return listTokenKeys(token).filter((k) => refName(k.ref) === refName(ref)).map(({ handle: _h, cls: _c, ...k }) => k);
}

/**
 * Key ceremony: imports master keys given in clear (a development key store file, or components combined on an offline
 * machine) once; in the token they are sensitive and non-extractable like generated ones.
 */
export function importTokenKeys(token: Token, file: KeyStoreFile): KeyListing[] {
  new FileKeyStore(file); // the same checks as the file store's
  for (const e of file.keys) refuseExisting(token, e);
  for (const e of file.keys) {
    const ref: MasterKeyRef = { keyIndex: e.keyIndex, keyVersion: e.keyVersion, algorithm: e.algorithm };
    const derivation = e.derivation ?? "one-level";
    for (const role of ROLES) {
      const hex = e[role];
      if (hex === undefined) continue;
      const value = Buffer.from(hex, "hex");
      if (ref.algorithm === "3des") {
        token.p.C_CreateObject(token.session, [...secretTemplate(ref, role, derivation), { type: pkcs11js.CKA_VALUE, value }]);
      } else {
        storeWrappedSm4(token, ref, role, derivation, token.p.C_CreateObject(token.session, SM4_SESSION_TEMPLATE(value)));
      }
      value.fill(0);
    }
  }
  return listTokenKeys(token).filter((k) => file.keys.some((e) => refName(e) === refName(k.ref))).map(({ handle: _h, cls: _c, ...k }) => k);
}

/**
 * Key ceremony: retires a key version. Its objects stay (for audit) under a "retired/" label, and a 3DES key loses
 * CKA_ENCRYPT so the token itself refuses to use it; a running key service stops serving it at its next refresh.
 */
export function retireTokenKeys(token: Token, ref: MasterKeyRef): number {
  const keys = listTokenKeys(token).filter((k) => refName(k.ref) === refName(ref) && !k.retired);
  if (!keys.length) throw new Pkcs11Error(`token "${token.label}" has no active keys ${refName(ref)}`);
  for (const k of keys) {
    const attrs: pkcs11js.Template = [{ type: pkcs11js.CKA_LABEL, value: `retired/${keyLabel(k.ref, k.role)}` }];
    if (k.cls === pkcs11js.CKO_SECRET_KEY) attrs.push({ type: pkcs11js.CKA_ENCRYPT, value: false });
    token.p.C_SetAttributeValue(token.session, k.handle, attrs);
  }
  return keys.length;
}

/** The store's facts for describe() and the start log: never a key, only where they are and what is done with SM4. */
export interface Pkcs11Description {
  kind: "pkcs11";
  module: string;
  token: string;
  sm4: string;
  sessionKeys: string;
  keys: Array<MasterKeyRef & { kcv: Record<string, string>; load: boolean }>;
}

/** The key store over a token. Synchronous (pkcs11js calls are): it belongs in the key service process. */
export class Pkcs11KeyStore implements KeyStore {
  readonly keySystem: string;
  readonly #settings: Pkcs11Settings;
  readonly #token: Token;
  readonly #macsInToken: boolean;
  #des = new Map<string, TokenKeys>();
  /** SM4 refs, unwrapped into this process (SM4_POLICY). */
  #sm4 = new FileKeyStore({ format: KEY_STORE_FORMAT, keySystem: "", keys: [] });
  #kcvs = new Map<string, Record<string, string>>();

  constructor(settings: Pkcs11Settings) {
    this.#settings = checkPkcs11Settings(settings);
    this.keySystem = settings.keySystem ?? "";
    this.#macsInToken = (settings.sessionKeys ?? "token") === "token";
    this.#token = new Token(settings);
    try {
      this.refresh();
      this.checkKcvs();
    } catch (e) {
      this.#token.close();
      throw e;
    }
  }

  /** Reads the token's active keys again: versions created or retired since are served or dropped. */
  refresh(): void {
    const listed = listTokenKeys(this.#token).filter((k) => !k.retired);
    const des = new Map<string, TokenKeys>();
    const kcvs = new Map<string, Record<string, string>>();
    const sm4: KeyStoreFile = { format: KEY_STORE_FORMAT, keySystem: "", keys: [] };
    let wrap: Handle | undefined;
    const groups = new Map<string, typeof listed>();
    for (const k of listed) groups.set(refName(k.ref), [...groups.get(refName(k.ref)) ?? [], k]);
    for (const [name, keys] of groups) {
      const byRole = new Map(keys.map((k) => [k.role, k]));
      const purchase = byRole.get("purchase");
      const tac = byRole.get("tac");
      if (!purchase || !tac) continue; // a half-made key set is not served
      kcvs.set(name, Object.fromEntries(keys.map((k) => [k.role, k.kcv])));
      const { ref, derivation } = purchase;
      if (ref.algorithm === "3des") {
        des.set(name, { ref, derivation, purchase: purchase.handle, tac: tac.handle, ...(byRole.get("load") ? { load: byRole.get("load")!.handle } : {}) });
      } else {
        wrap ??= wrapKey(this.#token);
        const clear = (k?: { handle: Handle }) => (k ? toHex(unwrapSm4(this.#token, wrap!, this.#token.attribute(k.handle, pkcs11js.CKA_VALUE)!)) : undefined);
        const load = clear(byRole.get("load"));
        sm4.keys.push({ keyIndex: ref.keyIndex, keyVersion: ref.keyVersion, algorithm: "sm4", purchase: clear(purchase)!, tac: clear(tac)!, derivation, ...(load ? { load } : {}) });
      }
    }
    this.#des = des;
    this.#sm4 = new FileKeyStore(sm4);
    this.#kcvs = kcvs;
  }

  /** The configured check values against the token's: a missing or different key is refused (KeyStoreError). */
  checkKcvs(): void {
    for (const [name, want] of Object.entries(this.#settings.kcv ?? {})) {
      const have = this.#kcvs.get(name);
      if (!have) throw new Pkcs11Error(`token "${this.#token.label}" has no active keys ${name} listed in keyStore.pkcs11.kcv`);
      for (const role of ROLES) {
        const w = (want as Record<string, string | undefined>)[role];
        if (w !== undefined && w.toUpperCase() !== have[role]) throw new Pkcs11Error(`key ${name} ${role}: check value ${have[role] ?? "(absent)"} in the token, ${w.toUpperCase()} configured`);
      }
    }
  }

  close(): void {
    this.#token.close();
  }

  has(ref: MasterKeyRef): boolean {
    return ref.algorithm === "3des" ? this.#des.has(refName(ref)) : this.#sm4.has(ref);
  }

  hasLoadKey(ref: MasterKeyRef): boolean {
    return ref.algorithm === "3des" ? this.#des.get(refName(ref))?.load !== undefined : this.#sm4.hasLoadKey(ref);
  }

  describe(): MasterKeyRef[] {
    return [...[...this.#des.values()].map((k) => ({ ...k.ref })), ...this.#sm4.describe()];
  }

  details(): Pkcs11Description {
    return {
      kind: "pkcs11", module: this.#settings.module, token: this.#token.label, sm4: SM4_POLICY,
      sessionKeys: this.#macsInToken ? "3DES session keys and MACs in the token (DES3-ECB, DES3-CBC on session objects)" : "3DES session keys and MACs in the key service process (card keys from the token's DES3-ECB)",
      keys: this.describe().map((ref) => ({ ...ref, kcv: this.#kcvs.get(refName(ref)) ?? {}, load: this.hasLoadKey(ref) })),
    };
  }

  #keys(ref: MasterKeyRef): TokenKeys {
    const k = this.#des.get(refName(ref));
    if (!k) throw new FrontendError("KEY_NOT_FOUND", 422, `no master key for key index ${ref.keyIndex}, version ${ref.keyVersion}, ${ref.algorithm}`);
    return k;
  }

  /**
   * The card key Div(MK, F) = E(MK, F) || E(MK, NOT F): DES3-ECB with the master key in the token. (Two-level: the
   * issuer-level key first, the same way, from a session object.) The card key comes back to this process, because
   * SoftHSM2's *_ECB_ENCRYPT_DATA derivation needs a parameter pkcs11js cannot pass (docs/keys.md).
   */
  #cardKey(k: TokenKeys, master: Handle, card: CardKeyFactors): Uint8Array {
    const f = card.diversificationFactor;
    if (k.derivation === "one-level") return this.#token.encrypt(ECB, master, concat(f, complement(f)));
    const level = this.#token.encrypt(ECB, master, concat(card.issuerFactor, complement(card.issuerFactor)));
    return this.#token.withDes2(level, (h) => this.#token.encrypt(ECB, h, concat(f, complement(f))));
  }

  /** A session key (8 bytes, single DES) from a card key: DES3-ECB in the token; used as the DES2 key SK || SK. */
  #withSession<T>(cardKey: Uint8Array, input: Uint8Array, use: (sk: Handle) => T): T {
    const sk = this.#token.withDes2(cardKey, (h) => this.#token.encrypt(ECB, h, input));
    return this.#token.withDes2(concat(sk, sk), use);
  }

  /** With a MAC function of the session key made from cardKey and input: in the token, or here (sessionKeys). */
  #session<T>(cardKey: Uint8Array, input: Uint8Array, use: (mac: (data: Uint8Array) => Uint8Array) => T): T {
    if (this.#macsInToken) return this.#withSession(cardKey, input, (sk) => use((data) => tokenMac(this.#token, sk, data)));
    const cipher = createCipheriv("des-ede-ecb", cardKey, null).setAutoPadding(false);
    const sk = new Uint8Array(cipher.update(input));
    cardKey.fill(0);
    try {
      return use((data) => pbocMac("3des", sk, data));
    } finally {
      sk.fill(0);
    }
  }

  /** With a MAC function of the card's TAC key: in the token, or here (sessionKeys). */
  #tac<T>(k: TokenKeys, card: CardKeyFactors, use: (mac: (data: Uint8Array) => Uint8Array) => T): T {
    if (this.#macsInToken) return this.#withTacKey(k, card, (key) => use((data) => tokenMac(this.#token, key, data)));
    const dtk = this.#cardKey(k, k.tac, card);
    const key = tacKey("3des", dtk);
    dtk.fill(0);
    try {
      return use((data) => pbocMac("3des", key, data));
    } finally {
      key.fill(0);
    }
  }

  /** The TAC key DTK left XOR right: the XOR is done here (SoftHSM2 has no CKM_XOR_BASE_AND_DATA), the MAC in the token. */
  #withTacKey<T>(k: TokenKeys, card: CardKeyFactors, use: (key: Handle) => T): T {
    const dtk = this.#cardKey(k, k.tac, card);
    const key = new Uint8Array(16);
    for (let i = 0; i < 8; i++) key[i] = key[i + 8] = dtk[i]! ^ dtk[i + 8]!;
    dtk.fill(0);
    return this.#token.withDes2(key, use);
  }

  authorize(ref: MasterKeyRef, card: CardKeyFactors, input: PurchaseSessionInput): { mac1: Uint8Array; mac2: Uint8Array } {
    if (ref.algorithm === "sm4") return this.#sm4.authorize(ref, card, input);
    const k = this.#keys(ref);
    return this.#session(this.#cardKey(k, k.purchase, card), purchaseSessionKeyInput("3des", input.random, input.epSerial, input.tsn),
      (mac) => ({ mac1: mac(purchaseMac1Data(input.fields)), mac2: mac(uint32(input.fields.amount)) }));
  }

  verify(ref: MasterKeyRef, card: CardKeyFactors, input: PurchaseSessionInput, proof: { mac2: Uint8Array; tac: Uint8Array }): { mac2Valid: boolean; tacValid: boolean } {
    if (ref.algorithm === "sm4") return this.#sm4.verify(ref, card, input, proof);
    const k = this.#keys(ref);
    const mac2 = this.#session(this.#cardKey(k, k.purchase, card), purchaseSessionKeyInput("3des", input.random, input.epSerial, input.tsn),
      (mac) => mac(uint32(input.fields.amount)));
    const tac = this.#tac(k, card, (mac) => mac(purchaseTacData({ ...input.fields, tsn: input.tsn })));
    return { mac2Valid: macEquals(mac2, proof.mac2), tacValid: macEquals(tac, proof.tac) };
  }

  authorizeLoad(ref: MasterKeyRef, card: CardKeyFactors, input: LoadSessionInput, mac1: Uint8Array): { mac1Valid: boolean; mac2?: Uint8Array } {
    if (ref.algorithm === "sm4") return this.#sm4.authorizeLoad(ref, card, input, mac1);
    const k = this.#keys(ref);
    if (!k.load) throw new FrontendError("LOAD_KEY_NOT_GRANTED", 422, "the key system grants no load key for this card");
    return this.#session(this.#cardKey(k, k.load, card), loadSessionKeyInput("3des", input.random, input.onlineSerial), (mac) => {
      // MAC2 is made only for a card whose MAC1 proves it holds the load key and reported this balance and amount.
      if (!macEquals(mac(loadMac1Data(input.balance, input.fields)), mac1)) return { mac1Valid: false };
      return { mac1Valid: true, mac2: mac(loadMac2Data(input.fields)) };
    });
  }

  verifyLoad(ref: MasterKeyRef, card: CardKeyFactors, input: LoadSessionInput, tac: Uint8Array): boolean {
    if (ref.algorithm === "sm4") return this.#sm4.verifyLoad(ref, card, input, tac);
    const k = this.#keys(ref);
    const expected = this.#tac(k, card, (mac) => mac(loadTacData({ ...input.fields, balanceAfter: input.balance + input.fields.amount, onlineSerial: input.onlineSerial })));
    return macEquals(expected, tac);
  }
}
