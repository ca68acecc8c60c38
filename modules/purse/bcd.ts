import { PurseFormatError } from "./errors";

export function encodeBcd(digits: string): Uint8Array {
  if (digits.length % 2 || !/^[0-9]*$/.test(digits)) throw new PurseFormatError(`"${digits}" is not an even number of decimal digits`);
  const out = new Uint8Array(digits.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = ((digits.charCodeAt(2 * i) - 48) << 4) | (digits.charCodeAt(2 * i + 1) - 48);
  return out;
}

export function decodeBcd(bytes: Uint8Array, what = "BCD field"): string {
  let out = "";
  for (let i = 0; i < bytes.length; i++) {
    const hi = bytes[i]! >> 4;
    const lo = bytes[i]! & 15;
    if (hi > 9 || lo > 9) throw new PurseFormatError(`${what} has a non-decimal nibble in byte ${i}`);
    out += String.fromCharCode(48 + hi, 48 + lo);
  }
  return out;
}

function daysInMonth(year: number, month: number): number {
  if (month === 2) return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28;
  return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
}

/** `YYYYMMDD`, a real calendar day. */
export function isValidDate(date: string): boolean {
  if (!/^[0-9]{8}$/.test(date)) return false;
  const year = Number(date.slice(0, 4));
  const month = Number(date.slice(4, 6));
  const day = Number(date.slice(6, 8));
  return year >= 1 && month >= 1 && month <= 12 && day >= 1 && day <= daysInMonth(year, month);
}

/** `hhmmss`, 00:00:00 to 23:59:59. */
export function isValidTime(time: string): boolean {
  if (!/^[0-9]{6}$/.test(time)) return false;
  return Number(time.slice(0, 2)) < 24 && Number(time.slice(2, 4)) < 60 && Number(time.slice(4, 6)) < 60;
}

export function encodeDate(date: string): Uint8Array {
  if (!isValidDate(date)) throw new PurseFormatError(`"${date}" is not a valid YYYYMMDD date`);
  return encodeBcd(date);
}

export function encodeTime(time: string): Uint8Array {
  if (!isValidTime(time)) throw new PurseFormatError(`"${time}" is not a valid hhmmss time`);
  return encodeBcd(time);
}

export function decodeDate(bytes: Uint8Array, what = "date"): string {
  if (bytes.length !== 4) throw new PurseFormatError(`${what} must be 4 bytes, got ${bytes.length}`);
  const date = decodeBcd(bytes, what);
  if (!isValidDate(date)) throw new PurseFormatError(`${what} ${date} is not a calendar day`);
  return date;
}

export function decodeTime(bytes: Uint8Array, what = "time"): string {
  if (bytes.length !== 3) throw new PurseFormatError(`${what} must be 3 bytes, got ${bytes.length}`);
  const time = decodeBcd(bytes, what);
  if (!isValidTime(time)) throw new PurseFormatError(`${what} ${time} is not a time of day`);
  return time;
}
