/**
 * Reader -> VMC messages (docs/mdb.md §4): the bytes the cashless device puts on a POLL, and the parser the VMC
 * simulator uses for chained replies. Every message has a fixed length for a given level and mode, which is what
 * lets several be chained under one CHK. Money is the raw wire number.
 */
import { MdbReplyError } from "./errors";

export const JUST_RESET = 0x00;
export const READER_CONFIG = 0x01;
export const DISPLAY_REQUEST = 0x02;
export const BEGIN_SESSION = 0x03;
export const SESSION_CANCEL_REQUEST = 0x04;
export const VEND_APPROVED = 0x05;
export const VEND_DENIED = 0x06;
export const END_SESSION = 0x07;
export const CANCELLED = 0x08;
export const PERIPHERAL_ID = 0x09;
export const MALFUNCTION = 0x0a;
export const OUT_OF_SEQUENCE = 0x0b;
export const REVALUE_APPROVED = 0x0d;
export const REVALUE_DENIED = 0x0e;
export const REVALUE_LIMIT = 0x0f;
export const TIME_DATE_REQUEST = 0x11;

/** MALFUNCTION code C_: a refund after a failed or cancelled vend was impossible, the credit is lost. */
export const REFUND_FAILED = 0xc0;

/** The option bits of PERIPHERAL ID and EXPANSION 17 04 (docs/mdb.md §4.3). */
export const OPTION_FTL = 1 << 0;
export const OPTION_32BIT = 1 << 1;
export const OPTION_MULTI_CURRENCY = 1 << 2;
export const OPTION_NEGATIVE_VEND = 1 << 3;
export const OPTION_DATA_ENTRY = 1 << 4;
export const OPTION_ALWAYS_IDLE = 1 << 5;

/** READER CONFIG Z8 bits. */
export const MISC_REFUNDS = 1 << 0;
export const MISC_MULTIVEND = 1 << 1;
export const MISC_DISPLAY = 1 << 2;
export const MISC_CASH_SALE = 1 << 3;

/** What the formats depend on: the common level of VMC and reader, and level 3's expanded currency mode. */
export interface Format {
  level: number;
  vmcLevel: number;
  expanded: boolean;
}

export type Reply =
  | { kind: "just-reset" }
  | { kind: "reader-config"; level: number; currency: number; scale: number; decimals: number; maxResponse: number; misc: number }
  | { kind: "display-request"; tenths: number; text: Uint8Array }
  | { kind: "begin-session"; funds: number; mediaId?: number; payType?: number; payData?: number; language?: number; currency?: number; cardOptions?: number }
  | { kind: "session-cancel-request" }
  | { kind: "vend-approved"; amount: number }
  | { kind: "vend-denied" }
  | { kind: "end-session" }
  | { kind: "cancelled" }
  | { kind: "peripheral-id"; manufacturer: string; serial: string; model: string; version: number; options?: number }
  | { kind: "malfunction"; code: number }
  | { kind: "out-of-sequence"; state?: number }
  | { kind: "revalue-approved" }
  | { kind: "revalue-denied" }
  | { kind: "revalue-limit"; amount: number }
  | { kind: "time-date-request" };

function put(out: number[], n: number, bytes: number): void {
  for (let i = bytes - 1; i >= 0; i--) out.push(Math.floor(n / 2 ** (8 * i)) & 0xff);
}

function putAscii(out: number[], s: string, length: number): void {
  for (let i = 0; i < length; i++) out.push(i < s.length ? s.charCodeAt(i) & 0x7f : 0x20);
}

/** The bytes of one message in the given format. */
/** An ISO 4217 numeric code as READER CONFIG DATA carries it: BCD behind a leading 1 (156 -> 0x1156). */
export function bcdCurrency(code: number): number {
  const d = (n: number) => Math.floor(code / n) % 10;
  return 0x1000 | (d(100) << 8) | (d(10) << 4) | d(1);
}

export function encodeReply(r: Reply, f: Format): Uint8Array {
  const out: number[] = [];
  const money = f.expanded ? 4 : 2;
  switch (r.kind) {
    case "just-reset": out.push(JUST_RESET); break;
    case "reader-config":
      out.push(READER_CONFIG, r.level); put(out, r.currency, 2); out.push(r.scale, r.decimals, r.maxResponse, r.misc);
      break;
    case "display-request": out.push(DISPLAY_REQUEST, r.tenths, ...r.text); break;
    case "begin-session":
      out.push(BEGIN_SESSION); put(out, r.funds, money);
      if (f.level >= 2) {
        put(out, r.mediaId ?? 0xffffffff, 4); out.push(r.payType ?? 0); put(out, r.payData ?? 0, 2);
        if (f.expanded) { put(out, r.language ?? 0x7a68 /* "zh" */, 2); put(out, r.currency ?? 0xffff, 2); out.push(r.cardOptions ?? 0); }
      }
      break;
    case "session-cancel-request": out.push(SESSION_CANCEL_REQUEST); break;
    case "vend-approved": out.push(VEND_APPROVED); put(out, r.amount, money); break;
    case "vend-denied": out.push(VEND_DENIED); break;
    case "end-session": out.push(END_SESSION); break;
    case "cancelled": out.push(CANCELLED); break;
    case "peripheral-id":
      out.push(PERIPHERAL_ID); putAscii(out, r.manufacturer, 3); putAscii(out, r.serial, 12); putAscii(out, r.model, 12);
      put(out, r.version, 2);
      if (f.vmcLevel >= 3 && f.level >= 3) put(out, r.options ?? 0, 4);
      break;
    case "malfunction": out.push(MALFUNCTION, r.code); break;
    case "out-of-sequence": out.push(OUT_OF_SEQUENCE); if (f.level >= 2) out.push(r.state ?? 0); break;
    case "revalue-approved": out.push(REVALUE_APPROVED); break;
    case "revalue-denied": out.push(REVALUE_DENIED); break;
    case "revalue-limit": out.push(REVALUE_LIMIT); put(out, r.amount, money); break;
    case "time-date-request": out.push(TIME_DATE_REQUEST); break;
  }
  return Uint8Array.from(out);
}

function num(b: Uint8Array, at: number, bytes: number): number {
  let n = 0;
  for (let i = 0; i < bytes; i++) n = n * 256 + b[at + i]!;
  return n;
}

function ascii(b: Uint8Array, from: number, to: number): string {
  let s = "";
  for (let i = from; i < to; i++) s += String.fromCharCode(b[i]!);
  return s;
}

/** Length of the message starting at `at`, or -1 for a code this format does not have. */
function messageLength(b: Uint8Array, at: number, f: Format, displayBytes: number): number {
  const money = f.expanded ? 4 : 2;
  switch (b[at]) {
    case JUST_RESET: case SESSION_CANCEL_REQUEST: case VEND_DENIED: case END_SESSION: case CANCELLED:
    case REVALUE_APPROVED: case REVALUE_DENIED: case TIME_DATE_REQUEST: return 1;
    case READER_CONFIG: return 8;
    case DISPLAY_REQUEST: return displayBytes > 0 ? 2 + displayBytes : -1;
    case BEGIN_SESSION: return f.level < 2 ? 3 : f.expanded ? 17 : 10;
    case VEND_APPROVED: case REVALUE_LIMIT: return 1 + money;
    case PERIPHERAL_ID: return f.vmcLevel >= 3 && f.level >= 3 ? 34 : 30;
    case MALFUNCTION: return 2;
    case OUT_OF_SEQUENCE: return f.level >= 2 ? 2 : 1;
    default: return -1;
  }
}

/**
 * Splits a reply's data (CHK removed) into its chained messages, strictly: an unknown code, a cut-short message or
 * a level-3 form sent to a lower level is an MdbReplyError. `displayBytes` = columns × rows the VMC declared.
 */
export function parseReplies(data: Uint8Array, f: Format, displayBytes = 0): Reply[] {
  const out: Reply[] = [];
  const money = f.expanded ? 4 : 2;
  let at = 0;
  while (at < data.length) {
    const length = messageLength(data, at, f, displayBytes);
    if (length < 0) throw new MdbReplyError(data, `unknown message code at byte ${at}`);
    if (at + length > data.length) throw new MdbReplyError(data, `message at byte ${at} cut short (needs ${length})`);
    const b = data.subarray(at, at + length);
    switch (b[0]) {
      case JUST_RESET: out.push({ kind: "just-reset" }); break;
      case READER_CONFIG:
        out.push({ kind: "reader-config", level: b[1]!, currency: num(b, 2, 2), scale: b[4]!, decimals: b[5]!, maxResponse: b[6]!, misc: b[7]! });
        break;
      case DISPLAY_REQUEST: out.push({ kind: "display-request", tenths: b[1]!, text: b.slice(2) }); break;
      case BEGIN_SESSION:
        out.push(f.level < 2 ? { kind: "begin-session", funds: num(b, 1, 2) } : {
          kind: "begin-session", funds: num(b, 1, money), mediaId: num(b, 1 + money, 4), payType: b[5 + money]!,
          payData: num(b, 6 + money, 2),
          ...(f.expanded ? { language: num(b, 12, 2), currency: num(b, 14, 2), cardOptions: b[16]! } : {}),
        });
        break;
      case SESSION_CANCEL_REQUEST: out.push({ kind: "session-cancel-request" }); break;
      case VEND_APPROVED: out.push({ kind: "vend-approved", amount: num(b, 1, money) }); break;
      case VEND_DENIED: out.push({ kind: "vend-denied" }); break;
      case END_SESSION: out.push({ kind: "end-session" }); break;
      case CANCELLED: out.push({ kind: "cancelled" }); break;
      case PERIPHERAL_ID:
        out.push({
          kind: "peripheral-id", manufacturer: ascii(b, 1, 4), serial: ascii(b, 4, 16), model: ascii(b, 16, 28),
          version: num(b, 28, 2), ...(length === 34 ? { options: num(b, 30, 4) } : {}),
        });
        break;
      case MALFUNCTION: out.push({ kind: "malfunction", code: b[1]! }); break;
      case OUT_OF_SEQUENCE: out.push(length === 2 ? { kind: "out-of-sequence", state: b[1]! } : { kind: "out-of-sequence" }); break;
      case REVALUE_APPROVED: out.push({ kind: "revalue-approved" }); break;
      case REVALUE_DENIED: out.push({ kind: "revalue-denied" }); break;
      case REVALUE_LIMIT: out.push({ kind: "revalue-limit", amount: num(b, 1, money) }); break;
      default: out.push({ kind: "time-date-request" });
    }
    at += length;
  }
  return out;
}
