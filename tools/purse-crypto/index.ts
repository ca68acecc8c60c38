/**
 * Electronic-purse cryptography for PBOC / JT/T 978 purchases: the part a PSAM does in a classic terminal.
 *
 * The consumption front-end uses it to make MAC1 and check MAC2 and TAC, the virtual card uses it to play the card,
 * and a clearing system can use it to verify TACs. Host side only (node:crypto); device code never imports it.
 *
 * 3DES follows docs/purse.md §6.2-6.5 (confirmed by published examples and real cards). SM4 follows the decisions of
 * docs/purse.md §6.6, which are assumptions: they live here, and only here, so an issuer's specification can
 * replace them.
 *
 * Every function checks its arguments and throws PurseCryptoError (code "PURSE_CRYPTO") on a wrong size or value.
 */
import { createCipheriv, timingSafeEqual } from "node:crypto";
import { uint32Bytes } from "../../modules/bytes/bytes";
import { encodeDate, encodeTime } from "../../modules/purse/bcd";
import { CodedError } from "../../modules/errors/errors";

export type PurseAlgorithm = "3des" | "sm4";

/** An issuer's master keys, from which every card's keys derive (docs/purse.md). */
export interface MasterKeys {
  /** Master purchase key (MPK) and master TAC key (MTK), 16 bytes each. */
  purchase: Uint8Array;
  tac: Uint8Array;
  /** Master load key (MLK); without it the card is issued without a load key and cannot be refunded onto. */
  load?: Uint8Array;
}

export class PurseCryptoError extends CodedError {
  constructor(message: string) {
    super("PURSE_CRYPTO", message);
  }
}

/** The algorithm identifier byte of the INITIALIZE FOR PURCHASE response: 00 = 3DES (real cards), 04 = SM4 (assumed). */
export function algorithmFromId(algorithmId: number): PurseAlgorithm {
  if (algorithmId === 0x00) return "3des";
  if (algorithmId === 0x04) return "sm4";
  throw new PurseCryptoError(`unsupported algorithm identifier 0x${algorithmId.toString(16).padStart(2, "0")}`);
}

export function algorithmId(alg: PurseAlgorithm): number {
  checkAlgorithm(alg);
  return alg === "3des" ? 0x00 : 0x04;
}

function checkAlgorithm(alg: PurseAlgorithm): void {
  if (alg !== "3des" && alg !== "sm4") throw new PurseCryptoError(`unknown purse algorithm ${String(alg)}`);
}

function checkBytes(what: string, value: Uint8Array, ...lengths: number[]): void {
  if (!(value instanceof Uint8Array)) throw new PurseCryptoError(`${what} must be a Uint8Array`);
  if (!lengths.includes(value.length)) throw new PurseCryptoError(`${what} must be ${lengths.join(" or ")} bytes, got ${value.length}`);
}

function checkUint(what: string, value: number, max: number): void {
  if (!Number.isInteger(value) || value < 0 || value > max) throw new PurseCryptoError(`${what} must be an integer in 0..${max}, got ${value}`);
}

function blockSize(alg: PurseAlgorithm): number {
  return alg === "3des" ? 8 : 16;
}

/** Single DES is 3DES with K1 = K2 (OpenSSL 3 keeps plain DES in its legacy provider only). */
function desKey(key: Uint8Array): Uint8Array {
  if (key.length === 16) return key;
  const k = new Uint8Array(16);
  k.set(key, 0);
  k.set(key, 8);
  return k;
}

function cipherName(alg: PurseAlgorithm, mode: "ecb" | "cbc"): string {
  return alg === "3des" ? `des-ede-${mode}` : `sm4-${mode}`;
}

function encrypt(alg: PurseAlgorithm, mode: "ecb" | "cbc", key: Uint8Array, data: Uint8Array): Uint8Array {
  const k = alg === "3des" ? desKey(key) : key;
  const iv = mode === "cbc" ? new Uint8Array(blockSize(alg)) : null;
  const cipher = createCipheriv(cipherName(alg, mode), k, iv);
  cipher.setAutoPadding(false);
  const out = new Uint8Array(data.length);
  const first = cipher.update(data);
  out.set(first, 0);
  out.set(cipher.final(), first.length);
  return out;
}

function complement(bytes: Uint8Array): Uint8Array {
  return bytes.map((b) => b ^ 0xff);
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

function bcdField(what: string, encode: (s: string) => Uint8Array, value: string): Uint8Array {
  try {
    return encode(value);
  } catch {
    throw new PurseCryptoError(`${what} "${value}" is not valid`);
  }
}

/** ISO/IEC 9797-1 padding method 2: 80, then 00 up to a whole block (a full block is added to aligned data). */
export function pad(alg: PurseAlgorithm, data: Uint8Array): Uint8Array {
  checkAlgorithm(alg);
  const size = blockSize(alg);
  const out = new Uint8Array((Math.floor(data.length / size) + 1) * size);
  out.set(data, 0);
  out[data.length] = 0x80;
  return out;
}

/**
 * Card-key diversification with the 8-byte factor (the right 8 bytes of the ASN).
 * 3DES: E(MK, F) || E(MK, NOT F). SM4: SM4(MK, F || NOT F). Returns the 16-byte card key.
 */
export function diversifyKey(alg: PurseAlgorithm, masterKey: Uint8Array, factor: Uint8Array): Uint8Array {
  checkAlgorithm(alg);
  checkBytes("master key", masterKey, 16);
  checkBytes("diversification factor", factor, 8);
  // One ECB pass over F || NOT F: for 3DES that is the two 8-byte blocks encrypted independently, E(F) || E(NOT F),
  // with one cipher context instead of two; for SM4 it is the one 16-byte block.
  return encrypt(alg, "ecb", masterKey, concat(factor, complement(factor)));
}

/**
 * The purchase session key SESPK from the card's purchase key (DPK), the INIT random, the EP serial and the TSN
 * (its right 2 bytes). 3DES: 8 bytes. SM4: 16 bytes, the 8-byte input padded with 80 00.. to one block.
 */
export function purchaseSessionKey(alg: PurseAlgorithm, dpk: Uint8Array, random: Uint8Array, epSerial: number, tsn: number): Uint8Array {
  checkAlgorithm(alg);
  checkBytes("purchase key", dpk, 16);
  checkBytes("random", random, 4);
  checkUint("EP serial", epSerial, 0xffff);
  checkUint("TSN", tsn, 0xffffffff);
  const input = concat(random, new Uint8Array([epSerial >> 8, epSerial & 0xff, (tsn >>> 8) & 0xff, tsn & 0xff]));
  if (alg === "3des") return encrypt(alg, "ecb", dpk, input);
  return encrypt(alg, "ecb", dpk, concat(input, new Uint8Array([0x80, 0, 0, 0, 0, 0, 0, 0])));
}

/**
 * The PBOC transaction MAC: ISO/IEC 9797-1 MAC algorithm 1, padding method 2, zero IV, leftmost 4 bytes of the last
 * block. 3DES takes an 8-byte key (single DES, as MAC1/MAC2/TAC use) or a 16-byte key (3DES CBC); SM4 a 16-byte key.
 */
export function pbocMac(alg: PurseAlgorithm, key: Uint8Array, data: Uint8Array): Uint8Array {
  checkAlgorithm(alg);
  if (alg === "3des") checkBytes("MAC key", key, 8, 16);
  else checkBytes("MAC key", key, 16);
  if (!(data instanceof Uint8Array)) throw new PurseCryptoError("MAC data must be a Uint8Array");
  const chained = encrypt(alg, "cbc", key, pad(alg, data));
  const size = blockSize(alg);
  return chained.slice(chained.length - size, chained.length - size + 4);
}

function checkSessionKey(alg: PurseAlgorithm, key: Uint8Array): void {
  checkAlgorithm(alg);
  checkBytes("session key", key, alg === "3des" ? 8 : 16);
}

export interface PurchaseFields {
  /** Amount in fen. */
  amount: number;
  /** Transaction type: 06 purchase, 09 compound purchase. */
  type: number;
  /** 6-byte terminal ID, as sent in INITIALIZE FOR PURCHASE. */
  terminalId: Uint8Array;
  /** YYYYMMDD */
  date: string;
  /** hhmmss */
  time: string;
}

function purchaseHead(f: PurchaseFields): Uint8Array {
  if (typeof f !== "object" || f === null) throw new PurseCryptoError("purchase fields are required");
  checkUint("amount", f.amount, 0xffffffff);
  checkUint("transaction type", f.type, 0xff);
  checkBytes("terminal ID", f.terminalId, 6);
  return concat(uint32Bytes(f.amount), new Uint8Array([f.type]), f.terminalId);
}

function dateTime(f: PurchaseFields): Uint8Array {
  return concat(bcdField("date", encodeDate, f.date), bcdField("time", encodeTime, f.time));
}

/** MAC1 (made by the front-end, checked by the card): amount 4 || type 1 || terminal 6 || date 4 || time 3. */
export function purchaseMac1(alg: PurseAlgorithm, sessionKey: Uint8Array, f: PurchaseFields): Uint8Array {
  checkSessionKey(alg, sessionKey);
  return pbocMac(alg, sessionKey, concat(purchaseHead(f), dateTime(f)));
}

/** MAC2 (made by the card after it debits): over the 4-byte amount. */
export function purchaseMac2(alg: PurseAlgorithm, sessionKey: Uint8Array, amount: number): Uint8Array {
  checkSessionKey(alg, sessionKey);
  checkUint("amount", amount, 0xffffffff);
  return pbocMac(alg, sessionKey, uint32Bytes(amount));
}

/** The key a TAC is made with: DTK left XOR right for 3DES (single DES), the whole DTK for SM4. */
export function tacKey(alg: PurseAlgorithm, dtk: Uint8Array): Uint8Array {
  checkAlgorithm(alg);
  checkBytes("TAC key", dtk, 16);
  if (alg === "sm4") return dtk;
  const key = new Uint8Array(8);
  for (let i = 0; i < 8; i++) key[i] = dtk[i]! ^ dtk[i + 8]!;
  return key;
}

/** TAC (made by the card, checked at clearing): amount 4 || type 1 || terminal 6 || TSN 4 || date 4 || time 3. */
export function purchaseTac(alg: PurseAlgorithm, dtk: Uint8Array, f: PurchaseFields & { tsn: number }): Uint8Array {
  const key = tacKey(alg, dtk);
  const head = purchaseHead(f);
  checkUint("TSN", f.tsn, 0xffffffff);
  return pbocMac(alg, key, concat(head, uint32Bytes(f.tsn), dateTime(f)));
}

/** Constant-time comparison of two MACs or TACs. */
export function macEquals(a: Uint8Array, b: Uint8Array): boolean {
  return a instanceof Uint8Array && b instanceof Uint8Array && a.length === b.length && timingSafeEqual(a, b);
}

// ---- load (docs/purse.md §2.9, §4.8): a refund is put back onto the card as a PBOC EP load ----

/**
 * The load session key SESLK from the card's load key (DLK), the INITIALIZE FOR LOAD random and the online serial.
 * 3DES: E(DLK, random 4 || online serial 2 || 80 00). SM4: the same 8 bytes padded with 80 00.. to one block.
 */
export function loadSessionKey(alg: PurseAlgorithm, dlk: Uint8Array, random: Uint8Array, onlineSerial: number): Uint8Array {
  checkAlgorithm(alg);
  checkBytes("load key", dlk, 16);
  checkBytes("random", random, 4);
  checkUint("online serial", onlineSerial, 0xffff);
  const input = concat(random, new Uint8Array([onlineSerial >> 8, onlineSerial & 0xff, 0x80, 0x00]));
  if (alg === "3des") return encrypt(alg, "ecb", dlk, input);
  return encrypt(alg, "ecb", dlk, concat(input, new Uint8Array([0x80, 0, 0, 0, 0, 0, 0, 0])));
}

export interface LoadFields {
  amount: number;
  /** 02 EP load (01 ED load). */
  type: number;
  terminalId: Uint8Array;
}

function loadHead(f: LoadFields): Uint8Array {
  if (typeof f !== "object" || f === null) throw new PurseCryptoError("load fields are required");
  checkUint("amount", f.amount, 0xffffffff);
  checkUint("transaction type", f.type, 0xff);
  checkBytes("terminal ID", f.terminalId, 6);
  return concat(uint32Bytes(f.amount), new Uint8Array([f.type]), f.terminalId);
}

/** MAC1 of a load (made by the card in INITIALIZE FOR LOAD): balance before 4 || amount 4 || type 1 || terminal 6. */
export function loadMac1(alg: PurseAlgorithm, sessionKey: Uint8Array, balance: number, f: LoadFields): Uint8Array {
  checkSessionKey(alg, sessionKey);
  checkUint("balance", balance, 0xffffffff);
  return pbocMac(alg, sessionKey, concat(uint32Bytes(balance), loadHead(f)));
}

/** MAC2 of a load (made by the front-end, checked by the card in CREDIT FOR LOAD): amount || type || terminal || date || time. */
export function loadMac2(alg: PurseAlgorithm, sessionKey: Uint8Array, f: LoadFields & { date: string; time: string }): Uint8Array {
  checkSessionKey(alg, sessionKey);
  return pbocMac(alg, sessionKey, concat(loadHead(f), bcdField("date", encodeDate, f.date), bcdField("time", encodeTime, f.time)));
}

/**
 * TAC of a load (made by the card when it credits): balance after 4 || online serial before 2 || amount 4 || type 1 ||
 * terminal 6 || date 4 || time 3, with the TAC key as for a purchase. The layout is this project's choice
 * (docs/purse.md §4.8): no public source gives it.
 */
export function loadTac(alg: PurseAlgorithm, dtk: Uint8Array, f: LoadFields & { balanceAfter: number; onlineSerial: number; date: string; time: string }): Uint8Array {
  const key = tacKey(alg, dtk);
  checkUint("balance", f.balanceAfter, 0xffffffff);
  checkUint("online serial", f.onlineSerial, 0xffff);
  return pbocMac(alg, key, concat(uint32Bytes(f.balanceAfter), new Uint8Array([f.onlineSerial >> 8, f.onlineSerial & 0xff]), loadHead(f),
    bcdField("date", encodeDate, f.date), bcdField("time", encodeTime, f.time)));
}
