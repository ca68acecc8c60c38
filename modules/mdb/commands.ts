/**
 * The cashless command set, VMC -> reader (docs/mdb.md §3): lengths, checksum, decoding into typed commands and
 * encoding (the VMC simulator's side). A block here is the address byte and its data, without CHK. Money and item
 * numbers are the raw wire numbers (scaled, MSB first); the device converts money to fen.
 */
import { MdbCommandError } from "./errors";

export const CASHLESS_1 = 0x10;
export const CASHLESS_2 = 0x60;

export const RESET = 0;
export const SETUP = 1;
export const POLL = 2;
export const VEND = 3;
export const READER = 4;
export const REVALUE = 5;
export const EXPANSION = 7;

/** Largest block either side sends, CHK included. */
export const MAX_BLOCK = 36;

export function checksum(bytes: Uint8Array, length = bytes.length): number {
  let sum = 0;
  for (let i = 0; i < length; i++) sum += bytes[i]!;
  return sum & 0xff;
}

/**
 * Data bytes (address included, CHK excluded) of the command that `block` begins, given the bytes seen so far:
 * a number once known, 0 while more bytes are needed to tell, -1 for a command outside the set. `expanded` is
 * level 3's expanded currency mode (option b1 or b2 enabled), which widens money fields to 32 bits.
 */
export function commandLength(block: Uint8Array, seen: number, expanded: boolean): number {
  const command = block[0]! & 7;
  switch (command) {
    case RESET: case POLL: return 1;
    case SETUP: case VEND: case READER: case REVALUE: case EXPANSION: break;
    default: return -1;
  }
  if (seen < 2) return 0;
  const sub = block[1]!;
  switch (command) {
    case SETUP:
      return sub === 0 ? 6 : sub === 1 ? (expanded ? 12 : 6) : -1;
    case VEND:
      switch (sub) {
        case 0: case 6: return expanded ? 8 : 6;
        case 1: case 3: case 4: return 2;
        case 2: return 4;
        case 5: return expanded ? 10 : 6;
        default: return -1;
      }
    case READER:
      return sub <= 2 ? 2 : sub === 3 ? 10 : -1;
    case REVALUE:
      return sub === 0 ? (expanded ? 6 : 4) : sub === 1 ? 2 : -1;
    default: // EXPANSION
      switch (sub) {
        case 0: return 31;
        case 1: return 3;
        case 2: return seen < 4 ? 0 : 4 + block[3]! <= MAX_BLOCK - 1 ? 4 + block[3]! : -1;
        case 3: return 12;
        case 4: return 6;
        default: return -1; // FTL and diagnostics are not offered (docs/mdb.md §3.4)
      }
  }
}

export interface TimeDate {
  /** Decoded from BCD; undefined where the VMC sent FF (not supported). */
  year?: number; month?: number; day?: number; hour?: number; minute?: number; second?: number;
  dayOfWeek?: number; week?: number; dst?: boolean; holiday?: boolean;
}

export type Command =
  | { kind: "reset" }
  | { kind: "poll" }
  | { kind: "setup-config"; vmcLevel: number; columns: number; rows: number; displayType: number }
  | { kind: "setup-prices"; max: number; min: number; currency?: number }
  | { kind: "vend-request"; price: number; item: number }
  | { kind: "vend-cancel" }
  | { kind: "vend-success"; item: number }
  | { kind: "vend-failure" }
  | { kind: "session-complete" }
  | { kind: "cash-sale"; price: number; item: number; currency?: number }
  | { kind: "negative-vend"; value: number; item: number }
  | { kind: "reader-disable" }
  | { kind: "reader-enable" }
  | { kind: "reader-cancel" }
  | { kind: "data-entry-response"; keys: Uint8Array }
  | { kind: "revalue-request"; amount: number }
  | { kind: "revalue-limit-request" }
  | { kind: "request-id"; manufacturer: string; serial: string; model: string; version: number }
  | { kind: "read-user-file"; file: number }
  | { kind: "write-user-file"; file: number; data: Uint8Array }
  | { kind: "write-time-date"; time: TimeDate }
  | { kind: "optional-features"; bits: number };

function u16(b: Uint8Array, at: number): number {
  return (b[at]! << 8) | b[at + 1]!;
}

function u32(b: Uint8Array, at: number): number {
  return ((b[at]! << 24) >>> 0) + (b[at + 1]! << 16) + (b[at + 2]! << 8) + b[at + 3]!;
}

function ascii(b: Uint8Array, from: number, to: number): string {
  let s = "";
  for (let i = from; i < to; i++) s += String.fromCharCode(b[i]!);
  return s;
}

function bcd(byte: number): number | undefined {
  if (byte === 0xff) return undefined;
  const hi = byte >> 4;
  const lo = byte & 15;
  return hi > 9 || lo > 9 ? undefined : hi * 10 + lo;
}

/** Decodes a whole block (address + data, CHK already checked). Throws MdbCommandError for anything else. */
export function decodeCommand(block: Uint8Array, expanded: boolean): Command {
  if (!block.length) throw new MdbCommandError(block, "empty block");
  const length = commandLength(block, block.length, expanded);
  if (length < 0) throw new MdbCommandError(block, "not a cashless command");
  if (length !== block.length) throw new MdbCommandError(block, `length ${block.length}, the command has ${length}`);
  const command = block[0]! & 7;
  const sub = block[1]!;
  switch (command) {
    case RESET: return { kind: "reset" };
    case POLL: return { kind: "poll" };
    case SETUP:
      if (sub === 0) return { kind: "setup-config", vmcLevel: block[2]!, columns: block[3]!, rows: block[4]!, displayType: block[5]! & 7 };
      return expanded
        ? { kind: "setup-prices", max: u32(block, 2), min: u32(block, 6), currency: u16(block, 10) }
        : { kind: "setup-prices", max: u16(block, 2), min: u16(block, 4) };
    case VEND:
      switch (sub) {
        case 0: return expanded
          ? { kind: "vend-request", price: u32(block, 2), item: u16(block, 6) }
          : { kind: "vend-request", price: u16(block, 2), item: u16(block, 4) };
        case 1: return { kind: "vend-cancel" };
        case 2: return { kind: "vend-success", item: u16(block, 2) };
        case 3: return { kind: "vend-failure" };
        case 4: return { kind: "session-complete" };
        case 5: return expanded
          ? { kind: "cash-sale", price: u32(block, 2), item: u16(block, 6), currency: u16(block, 8) }
          : { kind: "cash-sale", price: u16(block, 2), item: u16(block, 4) };
        default: return expanded
          ? { kind: "negative-vend", value: u32(block, 2), item: u16(block, 6) }
          : { kind: "negative-vend", value: u16(block, 2), item: u16(block, 4) };
      }
    case READER:
      switch (sub) {
        case 0: return { kind: "reader-disable" };
        case 1: return { kind: "reader-enable" };
        case 2: return { kind: "reader-cancel" };
        default: return { kind: "data-entry-response", keys: block.slice(2, 10) };
      }
    case REVALUE:
      if (sub === 1) return { kind: "revalue-limit-request" };
      return { kind: "revalue-request", amount: expanded ? u32(block, 2) : u16(block, 2) };
    default:
      switch (sub) {
        case 0: return {
          kind: "request-id", manufacturer: ascii(block, 2, 5), serial: ascii(block, 5, 17), model: ascii(block, 17, 29),
          version: u16(block, 29),
        };
        case 1: return { kind: "read-user-file", file: block[2]! };
        case 2: return { kind: "write-user-file", file: block[2]!, data: block.slice(4, 4 + block[3]!) };
        case 3: {
          const v = (i: number) => bcd(block[2 + i]!);
          const flag = (i: number) => (block[2 + i] === 0xff ? undefined : block[2 + i] === 1);
          return {
            kind: "write-time-date", time: {
              year: v(0), month: v(1), day: v(2), hour: v(3), minute: v(4), second: v(5), dayOfWeek: v(6), week: v(7),
              dst: flag(8), holiday: flag(9),
            },
          };
        }
        default: return { kind: "optional-features", bits: u32(block, 2) };
      }
  }
}

function put16(out: number[], n: number): void {
  out.push((n >>> 8) & 0xff, n & 0xff);
}

function put32(out: number[], n: number): void {
  out.push((n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);
}

function putAscii(out: number[], s: string, length: number): void {
  for (let i = 0; i < length; i++) out.push(i < s.length ? s.charCodeAt(i) & 0x7f : 0x20);
}

function toBcd(n: number | undefined): number {
  return n === undefined ? 0xff : ((Math.floor(n / 10) % 10) << 4) | (n % 10);
}

/** The block (address + data, no CHK) for a command to the device at `address` (0x10 or 0x60). */
export function encodeCommand(address: number, c: Command, expanded: boolean): Uint8Array {
  const out: number[] = [];
  const a = address & 0xf8;
  switch (c.kind) {
    case "reset": out.push(a | RESET); break;
    case "poll": out.push(a | POLL); break;
    case "setup-config": out.push(a | SETUP, 0, c.vmcLevel, c.columns, c.rows, c.displayType); break;
    case "setup-prices":
      out.push(a | SETUP, 1);
      if (expanded) { put32(out, c.max); put32(out, c.min); put16(out, c.currency ?? 0xffff); }
      else { put16(out, c.max); put16(out, c.min); }
      break;
    case "vend-request": out.push(a | VEND, 0); (expanded ? put32 : put16)(out, c.price); put16(out, c.item); break;
    case "vend-cancel": out.push(a | VEND, 1); break;
    case "vend-success": out.push(a | VEND, 2); put16(out, c.item); break;
    case "vend-failure": out.push(a | VEND, 3); break;
    case "session-complete": out.push(a | VEND, 4); break;
    case "cash-sale":
      out.push(a | VEND, 5); (expanded ? put32 : put16)(out, c.price); put16(out, c.item);
      if (expanded) put16(out, c.currency ?? 0xffff);
      break;
    case "negative-vend": out.push(a | VEND, 6); (expanded ? put32 : put16)(out, c.value); put16(out, c.item); break;
    case "reader-disable": out.push(a | READER, 0); break;
    case "reader-enable": out.push(a | READER, 1); break;
    case "reader-cancel": out.push(a | READER, 2); break;
    case "data-entry-response": out.push(a | READER, 3); for (let i = 0; i < 8; i++) out.push(c.keys[i] ?? 0); break;
    case "revalue-request": out.push(a | REVALUE, 0); (expanded ? put32 : put16)(out, c.amount); break;
    case "revalue-limit-request": out.push(a | REVALUE, 1); break;
    case "request-id":
      out.push(a | EXPANSION, 0); putAscii(out, c.manufacturer, 3); putAscii(out, c.serial, 12); putAscii(out, c.model, 12);
      put16(out, c.version);
      break;
    case "read-user-file": out.push(a | EXPANSION, 1, c.file); break;
    case "write-user-file": out.push(a | EXPANSION, 2, c.file, c.data.length, ...c.data); break;
    case "write-time-date": {
      const t = c.time;
      const flag = (f: boolean | undefined) => (f === undefined ? 0xff : f ? 1 : 0);
      out.push(a | EXPANSION, 3, toBcd(t.year), toBcd(t.month), toBcd(t.day), toBcd(t.hour), toBcd(t.minute),
        toBcd(t.second), toBcd(t.dayOfWeek), toBcd(t.week), flag(t.dst), flag(t.holiday));
      break;
    }
    case "optional-features": out.push(a | EXPANSION, 4); put32(out, c.bits); break;
  }
  return Uint8Array.from(out);
}
