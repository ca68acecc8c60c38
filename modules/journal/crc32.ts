// CRC-32 (IEEE 802.3, reflected, as zlib computes it): catches a torn or corrupted record on recovery. A 16-entry
// table, built when the module loads and frozen, so that a preloaded build keeps it in flash rather than RAM.

function nibbleStep(c: number): number {
  for (let k = 0; k < 4; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
}

const TABLE: readonly number[] = Object.freeze(Array.from({ length: 16 }, (_, n) => nibbleStep(n)));

export function crc32(bytes: Uint8Array, start = 0, end = bytes.length): number {
  let c = 0xffffffff;
  for (let i = start; i < end; i++) {
    c ^= bytes[i]!;
    c = TABLE[c & 15]! ^ (c >>> 4);
    c = TABLE[c & 15]! ^ (c >>> 4);
  }
  return (c ^ 0xffffffff) >>> 0;
}
