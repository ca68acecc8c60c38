import { CodedError } from "../errors/errors";

/**
 * Where the journal lives: a flash partition on the ESP32, a file on Node. Shaped like flash, because flash is the
 * harder medium: erase works on whole blocks and sets them to FF; writes go to erased bytes; a write or erase is
 * durable when the call returns.
 */
export interface JournalStorage {
  /** Total bytes; a whole number of blocks. */
  readonly size: number;
  /** Erase unit in bytes (4096 on ESP32 flash). */
  readonly blockSize: number;
  read(offset: number, length: number): Uint8Array;
  write(offset: number, bytes: Uint8Array): void;
  eraseBlock(block: number): void;
}

/** A RAM-backed storage for tests and for hosts with nothing better; it keeps its bytes while the object lives. */
export class MemoryStorage implements JournalStorage {
  readonly size: number;
  readonly blockSize: number;
  readonly bytes: Uint8Array;
  /** Counts writes so tests can cut the power at any one of them. */
  writes = 0;
  /** When set, throws before the n-th write lands (a power cut), optionally after landing only `partial` bytes. */
  failAt: { write: number; partial?: number } | undefined;

  constructor(size: number, blockSize = 4096, bytes?: Uint8Array) {
    if (size % blockSize) throw new RangeError("storage size must be a whole number of blocks");
    this.size = size;
    this.blockSize = blockSize;
    this.bytes = bytes ?? new Uint8Array(size).fill(0xff);
  }

  read(offset: number, length: number): Uint8Array {
    return this.bytes.slice(offset, offset + length);
  }

  write(offset: number, bytes: Uint8Array): void {
    this.writes++;
    if (this.failAt && this.writes === this.failAt.write) {
      const partial = Math.min(this.failAt.partial ?? 0, bytes.length);
      for (let i = 0; i < partial; i++) this.bytes[offset + i]! &= bytes[i]!;
      throw new PowerCut();
    }
    // Flash can only clear bits; AND models that, and shows up a write to bytes that were never erased.
    for (let i = 0; i < bytes.length; i++) this.bytes[offset + i]! &= bytes[i]!;
  }

  eraseBlock(block: number): void {
    this.writes++;
    if (this.failAt && this.writes === this.failAt.write) throw new PowerCut();
    this.bytes.fill(0xff, block * this.blockSize, (block + 1) * this.blockSize);
  }
}

/** Thrown by MemoryStorage to simulate losing power in the middle of a write. */
export class PowerCut extends CodedError {
  constructor() {
    super("POWER_CUT", "power cut during a storage write");
  }
}
