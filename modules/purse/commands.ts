import type { CommandApdu } from "../iso7816/apdu";
import { concatBytes, fromHex } from "../bytes/bytes";
import { encodeAmount } from "./amount";
import { encodeDate, encodeTime } from "./bcd";
import { PurseFormatError } from "./errors";

/** Electronic-purse applications this terminal knows (docs/purse.md §2). */
export const AID_TUNION = fromHex("A000000632010105");
export const AID_CITY_UNION = fromHex("A00000000386980701");
export const FID_EP = 0x1001;
export const FID_MF = 0x3f00;

export const SFI_BASIC_DATA = 0x15;
export const SFI_HOLDER_DATA = 0x16;
export const SFI_MANAGEMENT_DATA = 0x17;
export const SFI_TRANSACTION_LOG = 0x18;

export const TRANSACTION_TYPE_PURCHASE = 0x06;
export const TRANSACTION_TYPE_COMPOUND_PURCHASE = 0x09;
export const TRANSACTION_TYPE_LOAD = 0x02;

const EP = 0x02;

function checkLength(what: string, bytes: Uint8Array, length: number): void {
  if (!(bytes instanceof Uint8Array) || bytes.length !== length) throw new PurseFormatError(`${what} must be ${length} bytes`);
}

function checkInteger(what: string, value: number, max: number): void {
  if (!Number.isInteger(value) || value < 0 || value > max) throw new PurseFormatError(`${what} must be an integer in 0..${max}, got ${value}`);
}

export function selectByName(aid: Uint8Array): CommandApdu {
  if (!(aid instanceof Uint8Array) || aid.length < 5 || aid.length > 16) throw new PurseFormatError("an AID is 5 to 16 bytes");
  return { cla: 0x00, ins: 0xa4, p1: 0x04, p2: 0x00, data: aid, le: 256 };
}

export function selectByFid(fid: number): CommandApdu {
  checkInteger("FID", fid, 0xffff);
  return { cla: 0x00, ins: 0xa4, p1: 0x00, p2: 0x00, data: new Uint8Array([fid >> 8, fid & 0xff]), le: 256 };
}

/** READ BINARY of a short-file-identifier file; `length` 0 means "everything" (Le 00). */
export function readBinary(sfi: number, offset = 0, length = 0): CommandApdu {
  checkInteger("SFI", sfi, 30);
  if (sfi === 0) throw new PurseFormatError("SFI 0 does not name a file");
  checkInteger("offset", offset, 255);
  checkInteger("length", length, 256);
  return { cla: 0x00, ins: 0xb0, p1: 0x80 | sfi, p2: offset, le: length || 256 };
}

/** READ RECORD `record` (1 = newest) of a cyclic file; P2 = SFI << 3 | 4 reads one record by number. */
export function readRecord(sfi: number, record: number, length = 0): CommandApdu {
  checkInteger("SFI", sfi, 30);
  if (record < 1 || record > 255) throw new PurseFormatError("record numbers are 1..255");
  checkInteger("length", length, 256);
  return { cla: 0x00, ins: 0xb2, p1: record, p2: (sfi << 3) | 4, le: length || 256 };
}

export function getBalance(): CommandApdu {
  return { cla: 0x80, ins: 0x5c, p1: 0x00, p2: EP, le: 4 };
}

export interface InitializeForPurchaseRequest {
  keyIndex: number;
  amount: number;
  terminalId: Uint8Array;
  /** Compound (CAPP) purchase uses P1 = 03; plain purchase P1 = 01. */
  compound?: boolean;
}

export function initializeForPurchase(request: InitializeForPurchaseRequest): CommandApdu {
  checkInteger("key index", request.keyIndex, 255);
  checkLength("terminal ID", request.terminalId, 6);
  const data = concatBytes(new Uint8Array([request.keyIndex]), encodeAmount(request.amount), request.terminalId);
  return { cla: 0x80, ins: 0x50, p1: request.compound ? 0x03 : 0x01, p2: EP, data, le: 15 };
}

export interface DebitForPurchaseRequest {
  tsn: number;
  date: string;
  time: string;
  mac1: Uint8Array;
}

export function debitForPurchase(request: DebitForPurchaseRequest): CommandApdu {
  checkInteger("TSN", request.tsn, 0xffffffff);
  checkLength("MAC1", request.mac1, 4);
  const tsn = new Uint8Array([(request.tsn >>> 24) & 0xff, (request.tsn >>> 16) & 0xff, (request.tsn >>> 8) & 0xff, request.tsn & 0xff]);
  const data = concatBytes(tsn, encodeDate(request.date), encodeTime(request.time), request.mac1);
  return { cla: 0x80, ins: 0x54, p1: 0x01, p2: 0x00, data, le: 8 };
}

/** GET TRANSACTION PROVE for the transaction whose card counter is now `serial` (the interrupted INIT serial + 1). */
export function getTransactionProve(transactionType: number, serial: number): CommandApdu {
  checkInteger("transaction type", transactionType, 255);
  checkInteger("EP serial", serial, 0xffff);
  return { cla: 0x80, ins: 0x5a, p1: 0x00, p2: transactionType, data: new Uint8Array([serial >> 8, serial & 0xff]), le: 8 };
}

export interface InitializeForLoadRequest {
  /** Index of the load key (DLK) on the card. */
  keyIndex: number;
  amount: number;
  terminalId: Uint8Array;
}

/** INITIALIZE FOR LOAD (docs/purse.md §2.9): P1 = 00, EP; the card answers 16 bytes with its MAC1. */
export function initializeForLoad(request: InitializeForLoadRequest): CommandApdu {
  checkInteger("key index", request.keyIndex, 255);
  checkLength("terminal ID", request.terminalId, 6);
  const data = concatBytes(new Uint8Array([request.keyIndex]), encodeAmount(request.amount), request.terminalId);
  return { cla: 0x80, ins: 0x50, p1: 0x00, p2: EP, data, le: 16 };
}

export interface CreditForLoadRequest {
  date: string;
  time: string;
  /** MAC2 made by the front-end with the load session key. */
  mac2: Uint8Array;
}

/** CREDIT FOR LOAD (docs/purse.md §2.11): `80 52 00 00 0B` date 4 || time 3 || MAC2 4; the card answers its TAC. */
export function creditForLoad(request: CreditForLoadRequest): CommandApdu {
  checkLength("MAC2", request.mac2, 4);
  const data = concatBytes(encodeDate(request.date), encodeTime(request.time), request.mac2);
  return { cla: 0x80, ins: 0x52, p1: 0x00, p2: 0x00, data, le: 4 };
}
