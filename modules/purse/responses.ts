import { readUint, toHex } from "../bytes/bytes";
import { decodeBalance } from "./amount";
import { PurseFormatError } from "./errors";

function expectLength(what: string, data: Uint8Array, length: number): void {
  if (!(data instanceof Uint8Array)) throw new PurseFormatError(`${what}: response data is not bytes`);
  if (data.length !== length) throw new PurseFormatError(`${what}: expected ${length} bytes of response data, got ${data.length}`);
}

export const ALGORITHM_3DES = 0x00;
export const ALGORITHM_SM4 = 0x04;

export interface InitializeForPurchaseResponse {
  /** Balance before the purchase, in fen. */
  balance: number;
  /** The EP offline transaction serial this purchase will use. */
  epSerial: number;
  overdraftLimit: number;
  keyVersion: number;
  algorithmId: number;
  random: Uint8Array;
  /** The 15 bytes as the card sent them, for the front-end. */
  raw: Uint8Array;
}

export function parseInitializeForPurchase(data: Uint8Array): InitializeForPurchaseResponse {
  expectLength("INITIALIZE FOR PURCHASE", data, 15);
  return {
    balance: decodeBalance(data, 0),
    epSerial: readUint(data, 4, 2),
    overdraftLimit: readUint(data, 6, 3),
    keyVersion: data[9]!,
    algorithmId: data[10]!,
    random: data.slice(11, 15),
    raw: data.slice(),
  };
}

export interface DebitForPurchaseResponse {
  tac: Uint8Array;
  mac2: Uint8Array;
}

/** DEBIT answers TAC first, then MAC2 (the reverse of GET TRANSACTION PROVE). */
export function parseDebitForPurchase(data: Uint8Array): DebitForPurchaseResponse {
  expectLength("DEBIT FOR PURCHASE", data, 8);
  return { tac: data.slice(0, 4), mac2: data.slice(4, 8) };
}

/**
 * GET TRANSACTION PROVE: MAC2 ‖ TAC (docs/purse.md §4.7). A field of zeros is one the card did not keep: some card
 * OSes store zeros where a purchase keeps MAC2 when the proof is of a load (docs/purse.md §9.1).
 */
export interface TransactionProveResponse {
  mac2: Uint8Array;
  tac: Uint8Array;
  /** False when the MAC2 field is all zeros. */
  hasMac2: boolean;
  /** False when the TAC field is all zeros. */
  hasTac: boolean;
}

function anyNonZero(bytes: Uint8Array): boolean {
  for (let i = 0; i < bytes.length; i++) if (bytes[i]) return true;
  return false;
}

export function parseTransactionProve(data: Uint8Array): TransactionProveResponse {
  expectLength("GET TRANSACTION PROVE", data, 8);
  const mac2 = data.slice(0, 4);
  const tac = data.slice(4, 8);
  return { mac2, tac, hasMac2: anyNonZero(mac2), hasTac: anyNonZero(tac) };
}

export function parseBalance(data: Uint8Array): number {
  expectLength("GET BALANCE", data, 4);
  return decodeBalance(data, 0);
}

export interface FileControlInformation {
  dfName?: string;
  /** Tag 9F0C: on T-Union cards the same 30 bytes as file 0x15. */
  issuerDiscretionary?: Uint8Array;
  applicationVersion?: number;
}

interface Tlv {
  tag: number;
  value: Uint8Array;
}

/** BER-TLV with 1- or 2-byte tags and short or 81/82 lengths; enough for an FCI. */
function parseTlvs(bytes: Uint8Array): Tlv[] {
  const out: Tlv[] = [];
  let i = 0;
  while (i < bytes.length) {
    let tag = bytes[i++]!;
    if (tag === 0x00 || tag === 0xff) continue; // padding between objects
    if ((tag & 0x1f) === 0x1f) {
      if (i >= bytes.length) throw new PurseFormatError("FCI: truncated tag");
      tag = (tag << 8) | bytes[i++]!;
    }
    if (i >= bytes.length) throw new PurseFormatError("FCI: missing length");
    let length = bytes[i++]!;
    if (length === 0x81 || length === 0x82) {
      const n = length - 0x80;
      if (i + n > bytes.length) throw new PurseFormatError("FCI: truncated length");
      length = readUint(bytes, i, n);
      i += n;
    } else if (length > 0x80) {
      throw new PurseFormatError("FCI: unsupported length form");
    }
    if (i + length > bytes.length) throw new PurseFormatError("FCI: value runs past the end");
    out.push({ tag, value: bytes.slice(i, i + length) });
    i += length;
  }
  return out;
}

/** Parses the FCI that SELECT returns (6F { 84 name, A5 { ... } }); an empty answer is a valid, empty FCI. */
export function parseFci(data: Uint8Array): FileControlInformation {
  const fci: FileControlInformation = {};
  if (data.length === 0) return fci;
  const top = parseTlvs(data);
  const template = top.find((t) => t.tag === 0x6f);
  if (!template) throw new PurseFormatError("FCI: no 6F template");
  for (const item of parseTlvs(template.value)) {
    if (item.tag === 0x84) fci.dfName = toHex(item.value);
    if (item.tag === 0xa5) {
      for (const inner of parseTlvs(item.value)) {
        if (inner.tag === 0x9f0c) fci.issuerDiscretionary = inner.value;
        if (inner.tag === 0x9f08 && inner.value.length === 1) fci.applicationVersion = inner.value[0]!;
      }
    }
  }
  return fci;
}

export interface InitializeForLoadResponse {
  /** Balance before the load, in fen. */
  balance: number;
  /** The online (load) transaction serial this load will use. */
  onlineSerial: number;
  keyVersion: number;
  algorithmId: number;
  random: Uint8Array;
  /** The card's MAC1 over balance, amount, type and terminal: the front-end checks it before it makes MAC2. */
  mac1: Uint8Array;
  /** The 16 bytes as the card sent them, for the front-end. */
  raw: Uint8Array;
}

export function parseInitializeForLoad(data: Uint8Array): InitializeForLoadResponse {
  expectLength("INITIALIZE FOR LOAD", data, 16);
  return {
    balance: decodeBalance(data, 0),
    onlineSerial: readUint(data, 4, 2),
    keyVersion: data[6]!,
    algorithmId: data[7]!,
    random: data.slice(8, 12),
    mac1: data.slice(12, 16),
    raw: data.slice(),
  };
}

/** CREDIT FOR LOAD answers the card's TAC (4 bytes). */
export function parseCreditForLoad(data: Uint8Array): { tac: Uint8Array } {
  expectLength("CREDIT FOR LOAD", data, 4);
  return { tac: data.slice() };
}
