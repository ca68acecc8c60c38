import { readUint, toHex } from "../bytes/bytes";
import { decodeBcd, decodeDate, decodeTime } from "./bcd";
import { PurseFormatError } from "./errors";

/** File 0x15 comes in two layouts: JT/T 978 (T-Union) and CJ/T 166 (construction-ministry city cards). */
export type BasicDataLayout = "tunion" | "cityunion";

export interface BasicData {
  layout: BasicDataLayout;
  /** Issuer identifier: 8 bytes on T-Union cards, the 2-byte issuer code on city cards (hex). */
  issuer: string;
  /** City (area) code, bytes 2..3 in both layouts, as 4 hex digits (e.g. "1000", "4100"). */
  cityCode: string;
  /** Application type (byte 8) on T-Union cards; on city cards the issuer-defined byte 28 (our decision, docs/purse.md §3.2). */
  cardType: number;
  /** City cards carry an enable flag in byte 8 (00 = not enabled); T-Union cards are always enabled. */
  enabled: boolean;
  applicationVersion: number;
  /** Application serial number as its hex digits: 20 on T-Union cards, 16 on city cards. */
  asn: string;
  /** The right 8 bytes of the ASN (file bytes 12..19): the key diversification factor in both layouts. */
  diversificationFactor: Uint8Array;
  startDate: string;
  expiryDate: string;
  /** The 30 bytes as read: the front-end parses them itself rather than trust the terminal's reading. */
  raw: Uint8Array;
}

export const BASIC_DATA_LENGTH = 30;

export function parseBasicData(data: Uint8Array, layout: BasicDataLayout): BasicData {
  if (!(data instanceof Uint8Array) || data.length !== BASIC_DATA_LENGTH) {
    throw new PurseFormatError(`file 0x15 must be ${BASIC_DATA_LENGTH} bytes, got ${data instanceof Uint8Array ? data.length : "no bytes"}`);
  }
  if (layout !== "tunion" && layout !== "cityunion") throw new PurseFormatError(`unknown file 0x15 layout ${String(layout)}`);
  const startDate = decodeDate(data.slice(20, 24), "application start date");
  const expiryDate = decodeDate(data.slice(24, 28), "application expiry date");
  const cityCode = toHex(data.slice(2, 4));
  if (layout === "tunion") {
    const asn = decodeBcd(data.slice(10, 20), "ASN");
    return {
      layout, issuer: toHex(data.slice(0, 8)), cityCode, cardType: data[8]!, enabled: true,
      applicationVersion: data[9]!, asn, diversificationFactor: data.slice(12, 20), startDate, expiryDate, raw: data.slice(),
    };
  }
  const asn = decodeBcd(data.slice(12, 20), "ASN");
  return {
    layout, issuer: toHex(data.slice(0, 2)), cityCode, cardType: data[28]!, enabled: data[8] === 0x01,
    applicationVersion: data[9]!, asn, diversificationFactor: data.slice(12, 20), startDate, expiryDate, raw: data.slice(),
  };
}

export interface TransactionRecord {
  epSerial: number;
  overdraftLimit: number;
  amount: number;
  transactionType: number;
  terminalId: string;
  date: string;
  time: string;
}

export const TRANSACTION_RECORD_LENGTH = 23;

/** One 23-byte record of the cyclic log file 0x18 (docs/purse.md §3.5). */
export function parseTransactionRecord(data: Uint8Array): TransactionRecord {
  if (!(data instanceof Uint8Array) || data.length !== TRANSACTION_RECORD_LENGTH) {
    throw new PurseFormatError(`a transaction record is ${TRANSACTION_RECORD_LENGTH} bytes, got ${data instanceof Uint8Array ? data.length : "no bytes"}`);
  }
  return {
    epSerial: readUint(data, 0, 2),
    overdraftLimit: readUint(data, 2, 3),
    amount: readUint(data, 5, 4),
    transactionType: data[9]!,
    terminalId: toHex(data.slice(10, 16)),
    date: decodeDate(data.slice(16, 20), "record date"),
    time: decodeTime(data.slice(20, 23), "record time"),
  };
}
