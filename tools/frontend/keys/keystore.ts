/**
 * The key store: master keys per (key index, key version, algorithm) of one key system.
 *
 * The interface is shaped like a PSAM or an HSM: it is asked for MAC1 and for a MAC2/TAC verdict, and never hands out a
 * key, so an HSM can implement it with the keys inside. The development implementation keeps them in a JSON file and
 * computes with tools/purse-crypto. Keys are held in private fields and never logged or serialised.
 */
import { randomBytes } from "node:crypto";
import { readFileSync, renameSync, writeFileSync } from "node:fs";
import { fromHex, isHex, toHex } from "../../../modules/bytes/bytes";
import type { MasterKeys } from "../../purse-crypto/index";
import {
  diversifyKey, loadMac1, loadMac2, loadSessionKey, loadTac, macEquals, purchaseMac1, purchaseMac2, purchaseSessionKey, purchaseTac,
  type LoadFields, type PurchaseFields, type PurseAlgorithm,
} from "../../purse-crypto/index";
import { FrontendError } from "../errors";
import { CodedError } from "../../../modules/errors/errors";

export interface MasterKeyRef {
  keyIndex: number;
  keyVersion: number;
  algorithm: PurseAlgorithm;
}

/** What the key store needs to know about the card to derive its keys. */
export interface CardKeyFactors {
  /** The right 8 bytes of the ASN (file 0x15 bytes 12..19). */
  diversificationFactor: Uint8Array;
  /** Used only by two-level derivation: T-Union issuer ID (8 bytes) or city code || FF 00 00 00 00 00. */
  issuerFactor: Uint8Array;
}

export interface PurchaseSessionInput {
  /** The card's INIT random (4 bytes). */
  random: Uint8Array;
  epSerial: number;
  tsn: number;
  fields: PurchaseFields;
}

/** A load (a refund onto the card): what INITIALIZE FOR LOAD gave and what CREDIT FOR LOAD will carry. */
export interface LoadSessionInput {
  random: Uint8Array;
  onlineSerial: number;
  /** Balance before the load, as the card's MAC1 covers it. */
  balance: number;
  fields: LoadFields & { date: string; time: string };
}

export interface KeyStore {
  /** Whether a master key exists for ref; checked before a TSN is spent. */
  has(ref: MasterKeyRef): boolean;
  /** MAC1 for the card, and the MAC2 the card must answer with. */
  authorize(ref: MasterKeyRef, card: CardKeyFactors, input: PurchaseSessionInput): Promise<{ mac1: Uint8Array; mac2: Uint8Array }> | { mac1: Uint8Array; mac2: Uint8Array };
  /** Checks the card's MAC2 and TAC for a purchase made with input. */
  verify(ref: MasterKeyRef, card: CardKeyFactors, input: PurchaseSessionInput, proof: { mac2: Uint8Array; tac: Uint8Array }):
    Promise<{ mac2Valid: boolean; tacValid: boolean }> | { mac2Valid: boolean; tacValid: boolean };
  /** Which refs it holds, without keys (for health and logs). */
  describe(): MasterKeyRef[];
  /** Whether the key system grants a load key for ref (refunds onto the card); absent = never. */
  hasLoadKey?(ref: MasterKeyRef): boolean;
  /** Checks the card's load MAC1 and, only if it is right, makes the load MAC2. */
  authorizeLoad?(ref: MasterKeyRef, card: CardKeyFactors, input: LoadSessionInput, mac1: Uint8Array):
    Promise<{ mac1Valid: boolean; mac2?: Uint8Array }> | { mac1Valid: boolean; mac2?: Uint8Array };
  /** Checks the TAC of a load the card reports done. */
  verifyLoad?(ref: MasterKeyRef, card: CardKeyFactors, input: LoadSessionInput, tac: Uint8Array): Promise<boolean> | boolean;
}

export type Derivation = "one-level" | "two-level";

export interface KeyStoreFileEntry {
  keyIndex: number;
  keyVersion: number;
  algorithm: PurseAlgorithm;
  /** Master purchase key (MPK) and master TAC key (MTK), 32 hex digits each. */
  purchase: string;
  tac: string;
  /** Master load key (MLK), 32 hex digits: without it no refund is loaded back onto a card (it is owed instead). */
  load?: string;
  /** one-level (default): card key = Div(MK, ASN8). two-level: Div(Div(MK, issuer factor), ASN8). */
  derivation?: Derivation;
}

export interface KeyStoreFile {
  format: "purse-keystore/1";
  /** A name for the key system (e.g. "MOT" for the national one, "4100" for a city's). */
  keySystem: string;
  keys: KeyStoreFileEntry[];
}

export const KEY_STORE_FORMAT = "purse-keystore/1";

export class KeyStoreError extends CodedError {
  constructor(message: string) {
    super("KEY_STORE", message);
  }
}

const refKey = (r: MasterKeyRef) => `${r.keyIndex}/${r.keyVersion}/${r.algorithm}`;

interface HeldKeys {
  ref: MasterKeyRef;
  purchase: Uint8Array;
  tac: Uint8Array;
  load?: Uint8Array;
  derivation: Derivation;
}

function checkEntry(e: KeyStoreFileEntry, where: string): void {
  if (typeof e !== "object" || e === null) throw new KeyStoreError(`${where}: not an object`);
  if (!Number.isInteger(e.keyIndex) || e.keyIndex < 0 || e.keyIndex > 255) throw new KeyStoreError(`${where}: keyIndex must be 0..255`);
  if (!Number.isInteger(e.keyVersion) || e.keyVersion < 0 || e.keyVersion > 255) throw new KeyStoreError(`${where}: keyVersion must be 0..255`);
  if (e.algorithm !== "3des" && e.algorithm !== "sm4") throw new KeyStoreError(`${where}: algorithm must be "3des" or "sm4"`);
  // The message never quotes the value: it may be a key.
  if (typeof e.purchase !== "string" || !isHex(e.purchase, 16)) throw new KeyStoreError(`${where}: purchase must be 32 hex digits`);
  if (typeof e.tac !== "string" || !isHex(e.tac, 16)) throw new KeyStoreError(`${where}: tac must be 32 hex digits`);
  if (e.load !== undefined && (typeof e.load !== "string" || !isHex(e.load, 16))) throw new KeyStoreError(`${where}: load must be 32 hex digits`);
  if (e.derivation !== undefined && e.derivation !== "one-level" && e.derivation !== "two-level") throw new KeyStoreError(`${where}: derivation must be one-level or two-level`);
}

/** The development key store: master keys from a JSON file (see KeyStoreFile), in memory. */
export class FileKeyStore implements KeyStore {
  readonly keySystem: string;
  readonly #keys = new Map<string, HeldKeys>();

  constructor(file: KeyStoreFile) {
    if (typeof file !== "object" || file === null || file.format !== KEY_STORE_FORMAT) throw new KeyStoreError(`key store: format must be "${KEY_STORE_FORMAT}"`);
    if (!Array.isArray(file.keys)) throw new KeyStoreError("key store: keys must be an array");
    this.keySystem = String(file.keySystem ?? "");
    file.keys.forEach((e, i) => {
      checkEntry(e, `key store entry ${i}`);
      const ref = { keyIndex: e.keyIndex, keyVersion: e.keyVersion, algorithm: e.algorithm };
      if (this.#keys.has(refKey(ref))) throw new KeyStoreError(`key store entry ${i}: duplicate ${refKey(ref)}`);
      this.#keys.set(refKey(ref), { ref, purchase: fromHex(e.purchase), tac: fromHex(e.tac), ...(e.load ? { load: fromHex(e.load) } : {}), derivation: e.derivation ?? "one-level" });
    });
  }

  static load(path: string): FileKeyStore {
    let text: string;
    try {
      text = readFileSync(path, "utf8");
    } catch (e) {
      throw new KeyStoreError(`cannot read key store ${path}: ${(e as Error).message}`);
    }
    let parsed: KeyStoreFile;
    try {
      parsed = JSON.parse(text) as KeyStoreFile;
    } catch {
      throw new KeyStoreError(`key store ${path} is not JSON`);
    }
    return new FileKeyStore(parsed);
  }

  has(ref: MasterKeyRef): boolean {
    return this.#keys.has(refKey(ref));
  }

  describe(): MasterKeyRef[] {
    return [...this.#keys.values()].map((k) => ({ ...k.ref }));
  }

  #held(ref: MasterKeyRef): HeldKeys {
    const held = this.#keys.get(refKey(ref));
    if (!held) throw new FrontendError("KEY_NOT_FOUND", 422, `no master key for key index ${ref.keyIndex}, version ${ref.keyVersion}, ${ref.algorithm}`);
    return held;
  }

  #cardKey(held: HeldKeys, master: Uint8Array, card: CardKeyFactors): Uint8Array {
    const alg = held.ref.algorithm;
    const level = held.derivation === "two-level" ? diversifyKey(alg, master, card.issuerFactor) : master;
    return diversifyKey(alg, level, card.diversificationFactor);
  }

  authorize(ref: MasterKeyRef, card: CardKeyFactors, input: PurchaseSessionInput): { mac1: Uint8Array; mac2: Uint8Array } {
    const held = this.#held(ref);
    const alg = ref.algorithm;
    const sessionKey = purchaseSessionKey(alg, this.#cardKey(held, held.purchase, card), input.random, input.epSerial, input.tsn);
    return { mac1: purchaseMac1(alg, sessionKey, input.fields), mac2: purchaseMac2(alg, sessionKey, input.fields.amount) };
  }

  verify(ref: MasterKeyRef, card: CardKeyFactors, input: PurchaseSessionInput, proof: { mac2: Uint8Array; tac: Uint8Array }): { mac2Valid: boolean; tacValid: boolean } {
    const held = this.#held(ref);
    const alg = ref.algorithm;
    const sessionKey = purchaseSessionKey(alg, this.#cardKey(held, held.purchase, card), input.random, input.epSerial, input.tsn);
    const tac = purchaseTac(alg, this.#cardKey(held, held.tac, card), { ...input.fields, tsn: input.tsn });
    return { mac2Valid: macEquals(purchaseMac2(alg, sessionKey, input.fields.amount), proof.mac2), tacValid: macEquals(tac, proof.tac) };
  }

  hasLoadKey(ref: MasterKeyRef): boolean {
    return this.#keys.get(refKey(ref))?.load !== undefined;
  }

  authorizeLoad(ref: MasterKeyRef, card: CardKeyFactors, input: LoadSessionInput, mac1: Uint8Array): { mac1Valid: boolean; mac2?: Uint8Array } {
    const held = this.#held(ref);
    if (!held.load) throw new FrontendError("LOAD_KEY_NOT_GRANTED", 422, "the key system grants no load key for this card");
    const alg = ref.algorithm;
    const sessionKey = loadSessionKey(alg, this.#cardKey(held, held.load, card), input.random, input.onlineSerial);
    // MAC2 is made only for a card whose MAC1 proves it holds the load key and reported this balance and amount.
    if (!macEquals(loadMac1(alg, sessionKey, input.balance, input.fields), mac1)) return { mac1Valid: false };
    return { mac1Valid: true, mac2: loadMac2(alg, sessionKey, input.fields) };
  }

  verifyLoad(ref: MasterKeyRef, card: CardKeyFactors, input: LoadSessionInput, tac: Uint8Array): boolean {
    const held = this.#held(ref);
    const expected = loadTac(ref.algorithm, this.#cardKey(held, held.tac, card),
      { ...input.fields, balanceAfter: input.balance + input.fields.amount, onlineSerial: input.onlineSerial });
    return macEquals(expected, tac);
  }

  toJSON(): object {
    return { keySystem: this.keySystem, keys: this.describe() };
  }
}

export interface DevelopmentKeyEntry extends MasterKeyRef {
  masterKeys: MasterKeys;
  derivation: Derivation;
}

/**
 * Writes a development key store with fresh random master keys, one pair per ref, and returns them so the caller can
 * issue virtual cards from the same master keys (tools/sim/cardsim issueCard `masterKeys`). Development only.
 */
export function writeDevelopmentKeyStore(path: string, options: { keySystem?: string; refs?: MasterKeyRef[] } = {}): { path: string; keySystem: string; keys: DevelopmentKeyEntry[] } {
  const refs = options.refs ?? [{ keyIndex: 1, keyVersion: 1, algorithm: "3des" }, { keyIndex: 1, keyVersion: 1, algorithm: "sm4" }];
  const keySystem = options.keySystem ?? "DEV";
  const keys: DevelopmentKeyEntry[] = refs.map((r) => ({
    ...r, derivation: "one-level", masterKeys: { purchase: new Uint8Array(randomBytes(16)), tac: new Uint8Array(randomBytes(16)), load: new Uint8Array(randomBytes(16)) },
  }));
  const file: KeyStoreFile = {
    format: KEY_STORE_FORMAT, keySystem,
    keys: keys.map((k) => ({ keyIndex: k.keyIndex, keyVersion: k.keyVersion, algorithm: k.algorithm, purchase: toHex(k.masterKeys.purchase), tac: toHex(k.masterKeys.tac), load: toHex(k.masterKeys.load!) })),
  };
  new FileKeyStore(file); // refuses duplicates and bad refs before anything is written
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(file, null, 2)}\n`, { mode: 0o600 });
  renameSync(tmp, path);
  return { path, keySystem, keys };
}

/** Reads the master keys out of a development key store file (to issue virtual cards in tests and the simulation). */
export function readDevelopmentMasterKeys(path: string, ref: MasterKeyRef): MasterKeys {
  const file = JSON.parse(readFileSync(path, "utf8")) as KeyStoreFile;
  const entry = file.keys.find((k) => k.keyIndex === ref.keyIndex && k.keyVersion === ref.keyVersion && k.algorithm === ref.algorithm);
  if (!entry) throw new KeyStoreError(`no entry ${refKey(ref)} in ${path}`);
  return { purchase: fromHex(entry.purchase), tac: fromHex(entry.tac), ...(entry.load ? { load: fromHex(entry.load) } : {}) };
}
