// Byte helpers that work the same on XS and Node (no Buffer, no TextEncoder).

const DIGITS = "0123456789ABCDEF";

export function toHex(bytes: Uint8Array, separator = ""): string {
  let out = "";
  for (let i = 0; i < bytes.length; i++) {
    if (i && separator) out += separator;
    const b = bytes[i]!;
    out += DIGITS[b >> 4]! + DIGITS[b & 15]!;
  }
  return out;
}

function nibble(code: number): number {
  if (code >= 48 && code <= 57) return code - 48;
  if (code >= 65 && code <= 70) return code - 55;
  if (code >= 97 && code <= 102) return code - 87;
  return -1;
}

/** Parses hex, ignoring spaces; throws RangeError on anything else so callers can wrap it in their own error. */
export function fromHex(text: string): Uint8Array {
  const clean = text.replace(/\s+/g, "");
  if (clean.length % 2) throw new RangeError("odd number of hex digits");
  const out = new Uint8Array(clean.length / 2);
  for (let i = 0; i < out.length; i++) {
    const hi = nibble(clean.charCodeAt(2 * i));
    const lo = nibble(clean.charCodeAt(2 * i + 1));
    if (hi < 0 || lo < 0) throw new RangeError(`not a hex digit at ${2 * i}`);
    out[i] = (hi << 4) | lo;
  }
  return out;
}

export function isHex(text: string, byteLength?: number): boolean {
  if (text.length % 2 || (byteLength !== undefined && text.length !== byteLength * 2)) return false;
  for (let i = 0; i < text.length; i++) if (nibble(text.charCodeAt(i)) < 0) return false;
  return true;
}

export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  let length = 0;
  for (const p of parts) length += p.length;
  const out = new Uint8Array(length);
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

export function uint32Bytes(value: number): Uint8Array {
  return new Uint8Array([(value >>> 24) & 0xff, (value >>> 16) & 0xff, (value >>> 8) & 0xff, value & 0xff]);
}

export function readUint(bytes: Uint8Array, offset: number, length: number): number {
  let value = 0;
  for (let i = 0; i < length; i++) value = value * 256 + bytes[offset + i]!;
  return value;
}
