import { PurseFormatError } from "./errors";

/** Amounts are integer fen carried as a 4-byte big-endian unsigned field. */
export const MAX_AMOUNT = 0xffffffff;

export function checkAmount(amount: number, what = "amount"): number {
  if (!Number.isInteger(amount) || amount < 0 || amount > MAX_AMOUNT) throw new PurseFormatError(`${what} must be whole fen in 0..${MAX_AMOUNT}, got ${amount}`);
  return amount;
}

export function encodeAmount(amount: number): Uint8Array {
  checkAmount(amount);
  return new Uint8Array([(amount >>> 24) & 0xff, (amount >>> 16) & 0xff, (amount >>> 8) & 0xff, amount & 0xff]);
}

/** Balances are signed: a negative balance means the overdraft limit is in use (our reading of bit 31, docs/purse.md §4.4). */
export function decodeBalance(bytes: Uint8Array, offset = 0): number {
  const view = new DataView(bytes.buffer, bytes.byteOffset + offset, 4);
  return view.getInt32(0, false);
}

export function encodeBalance(balance: number): Uint8Array {
  if (!Number.isInteger(balance) || balance < -0x80000000 || balance > 0x7fffffff) throw new PurseFormatError(`balance ${balance} does not fit 32 bits`);
  const out = new Uint8Array(4);
  new DataView(out.buffer).setInt32(0, balance, false);
  return out;
}

/** Formats fen as yuan for people: 1234 -> "12.34". */
export function formatYuan(fen: number): string {
  const sign = fen < 0 ? "-" : "";
  const abs = Math.abs(fen);
  const cents = abs % 100;
  return `${sign}${Math.floor(abs / 100)}.${cents < 10 ? "0" : ""}${cents}`;
}
