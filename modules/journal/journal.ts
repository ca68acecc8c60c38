import { crc32 } from "./crc32";
import type { JournalStorage } from "./storage";
import { readUint32, writeUint32 } from "../bytes/bytes";
import { CodedError } from "../errors/errors";

/**
 * A power-fail-safe append-only journal over flash-shaped storage.
 *
 * Storage is a ring of erase blocks. A block starts with a header: magic, block sequence, the record sequence at the
 * time it was opened (so sequence numbers never go backwards, even when every record has been reclaimed), CRC.
 * Records follow: marker A5, a live flag, payload length (2), record sequence (4), payload, CRC-32 (4) over all but
 * the flag. A record is durable once `append` returns.
 *
 * `retire(seq)` says a record is no longer needed by clearing its flag byte in place: on flash that is a single
 * write of 00 over FF, needs no space (a full journal can still retire) and cannot be torn into anything else.
 *
 * Recovery reads blocks in header order and each block up to its first record that is not whole and valid, so a
 * write torn by a power cut is simply not there. Space comes back by reclaiming the oldest block: its live records
 * are appended again at the head, keeping their sequence numbers, then the block is erased; a cut at any point
 * leaves every live record readable, and recovery returns each sequence number once.
 */

export interface JournalRecord {
  seq: number;
  payload: Uint8Array;
}

export interface JournalOptions {
  storage: JournalStorage;
}

export class JournalFullError extends CodedError {
  constructor(message = "journal full: every block holds records still needed") {
    super("JOURNAL_FULL", message);
  }
}

export class JournalError extends CodedError {
  constructor(message: string) {
    super("JOURNAL", message);
  }
}

const BLOCK_MAGIC = 0x544a3032; // "TJ02"
const HEADER = 16;
const MARKER = 0xa5;
const LIVE = 0xff;
const RETIRED = 0x00;
const RECORD_OVERHEAD = 12;

interface Block {
  index: number;
  seq: number;
}

interface Location {
  block: Block;
  offset: number;
  length: number;
}


function recordCrc(bytes: Uint8Array, offset: number, end: number): number {
  // The flag byte (offset + 1) changes after the record is written, so it stays out of the CRC.
  const head = crc32(new Uint8Array([bytes[offset]!]));
  return (crc32(bytes, offset + 2, end) ^ head) >>> 0;
}

/**
 * The smallest journal: the head block, one block to reclaim into, and one held in reserve so that reclaiming always
 * has somewhere to copy live records to. Checked here, and only here; hosts size their storage and let this say no.
 */
export const MIN_JOURNAL_BLOCKS = 3;
const MIN_BLOCK_SIZE = 64;

export class Journal {
  readonly #storage: JournalStorage;
  readonly #blockCount: number;
  /** Blocks holding records, oldest first; the last one is the head. */
  #blocks: Block[] = [];
  /** Where each live record is, by sequence number. */
  #live = new Map<number, Location>();
  #headOffset = 0;
  /** After recovery the head block may end in torn bytes that flash cannot overwrite: start a new block. */
  #headClosed = true;
  #nextSeq = 1;
  #nextBlockSeq = 1;
  #reclaiming = false;
  #recovered: JournalRecord[] = [];

  constructor(options: JournalOptions) {
    const storage = options.storage;
    if (storage.blockSize < MIN_BLOCK_SIZE || storage.size % storage.blockSize || storage.size / storage.blockSize < MIN_JOURNAL_BLOCKS) {
      throw new JournalError(`journal storage needs at least ${MIN_JOURNAL_BLOCKS} whole blocks of ${MIN_BLOCK_SIZE} bytes or more`);
    }
    this.#storage = storage;
    this.#blockCount = storage.size / storage.blockSize;
    this.#recover();
  }

  /** The live records found when the journal was opened, oldest first. */
  get recovered(): readonly JournalRecord[] {
    return this.#recovered;
  }

  /** The newest sequence number ever given out; it survives reclaiming and restarts. */
  get lastSeq(): number {
    return this.#nextSeq - 1;
  }

  get liveCount(): number {
    return this.#live.size;
  }

  /** The largest payload one record can carry. */
  get maxPayload(): number {
    return Math.min(0xffff, this.#storage.blockSize - HEADER - RECORD_OVERHEAD);
  }

  /** Appends a record durably and returns its sequence number. */
  append(payload: Uint8Array): number {
    if (payload.length > this.maxPayload) throw new JournalError(`a record of ${payload.length} bytes does not fit in a block`);
    this.#ensureRoom(payload.length + RECORD_OVERHEAD);
    return this.#write(payload, this.#nextSeq);
  }

  /** Marks a record as no longer needed; its space comes back when its block is reclaimed. */
  retire(seq: number): void {
    const where = this.#live.get(seq);
    if (!where) return;
    this.#storage.write(where.block.index * this.#storage.blockSize + where.offset + 1, new Uint8Array([RETIRED]));
    this.#live.delete(seq);
  }

  isLive(seq: number): boolean {
    return this.#live.has(seq);
  }

  /** True when records of these payload sizes can all be appended now without touching live records' safety. */
  hasRoomFor(...payloadLengths: number[]): boolean {
    const usable = this.#storage.blockSize - HEADER;
    const sizes = payloadLengths.map((n) => n + RECORD_OVERHEAD);
    if (sizes.some((n) => n > usable)) return false;
    // Blocks that hold nothing live are as good as free; the oldest block's live records must be carried forward.
    const liveBytes = new Map<Block, number>();
    for (const where of this.#live.values()) liveBytes.set(where.block, (liveBytes.get(where.block) ?? 0) + where.length);
    let room = this.#headClosed ? 0 : this.#storage.blockSize - this.#headOffset;
    let spare = this.#freeBlocks().length - 1;
    for (const block of this.#blocks.slice(0, -1)) if (!liveBytes.has(block)) spare++;
    const pending = [...sizes];
    while (pending.length) {
      const size = pending[0]!;
      if (size <= room) {
        room -= size;
        pending.shift();
      } else if (spare > 0) {
        spare--;
        room = usable;
      } else {
        return false;
      }
    }
    return true;
  }

  stats(): { blocks: number; usedBlocks: number; freeBlocks: number; liveRecords: number; headFree: number } {
    return {
      blocks: this.#blockCount,
      usedBlocks: this.#blocks.length,
      freeBlocks: this.#freeBlocks().length,
      liveRecords: this.#live.size,
      headFree: this.#headClosed ? 0 : this.#storage.blockSize - this.#headOffset,
    };
  }

  #freeBlocks(): number[] {
    const used = new Set(this.#blocks.map((b) => b.index));
    const free: number[] = [];
    for (let i = 0; i < this.#blockCount; i++) if (!used.has(i)) free.push(i);
    return free;
  }

  #ensureRoom(need: number): void {
    if (!this.#headClosed && this.#headOffset + need <= this.#storage.blockSize) return;
    // Each reclaim moves the oldest block's live records to the head; once every block has had its turn without
    // freeing one, what is left is all needed and the journal is full.
    for (let turns = this.#blocks.length; ; turns--) {
      const free = this.#freeBlocks();
      // One block stays in reserve so that reclaiming always has somewhere to copy live records to.
      if (free.length > 1 || (this.#reclaiming && free.length > 0)) {
        this.#openBlock(free[0]!);
        return;
      }
      if (this.#reclaiming || this.#blocks.length < 2 || turns <= 0) throw new JournalFullError();
      this.#reclaimOldest();
    }
  }

  #openBlock(index: number): void {
    const header = new Uint8Array(HEADER);
    writeUint32(header, 0, BLOCK_MAGIC);
    writeUint32(header, 4, this.#nextBlockSeq);
    writeUint32(header, 8, this.#nextSeq);
    writeUint32(header, 12, crc32(header, 0, 12));
    this.#headClosed = true;
    this.#storage.eraseBlock(index);
    this.#storage.write(index * this.#storage.blockSize, header);
    this.#blocks.push({ index, seq: this.#nextBlockSeq++ });
    this.#headOffset = HEADER;
    this.#headClosed = false;
  }

  #reclaimOldest(): void {
    const oldest = this.#blocks[0]!;
    const keep = this.#scan(oldest).records.filter((r) => this.#live.get(r.seq)?.block === oldest);
    this.#reclaiming = true;
    try {
      for (const record of keep) {
        this.#ensureRoom(record.payload.length + RECORD_OVERHEAD);
        this.#write(record.payload, record.seq);
      }
    } finally {
      this.#reclaiming = false;
    }
    this.#storage.eraseBlock(oldest.index);
    this.#blocks.shift();
  }

  #write(payload: Uint8Array, seq: number): number {
    const record = new Uint8Array(payload.length + RECORD_OVERHEAD);
    record[0] = MARKER;
    record[1] = LIVE;
    record[2] = payload.length >> 8;
    record[3] = payload.length & 0xff;
    writeUint32(record, 4, seq);
    record.set(payload, 8);
    writeUint32(record, 8 + payload.length, recordCrc(record, 0, 8 + payload.length));
    const head = this.#blocks[this.#blocks.length - 1]!;
    try {
      this.#storage.write(head.index * this.#storage.blockSize + this.#headOffset, record);
    } catch (error) {
      // Some of the record may have landed: flash cannot write over it, so the next record starts a new block.
      this.#headClosed = true;
      throw error;
    }
    this.#live.set(seq, { block: head, offset: this.#headOffset, length: record.length });
    this.#headOffset += record.length;
    if (seq >= this.#nextSeq) this.#nextSeq = seq + 1;
    return seq;
  }

  /** Reads a block's records up to the first one that is not whole and valid; also says where they end. */
  #scan(block: Block): { records: (JournalRecord & { offset: number; live: boolean; length: number })[]; end: number; clean: boolean } {
    const size = this.#storage.blockSize;
    const bytes = this.#storage.read(block.index * size, size);
    const records: (JournalRecord & { offset: number; live: boolean; length: number })[] = [];
    let offset = HEADER;
    while (offset + RECORD_OVERHEAD <= size && bytes[offset] === MARKER) {
      const length = (bytes[offset + 2]! << 8) | bytes[offset + 3]!;
      const end = offset + RECORD_OVERHEAD + length;
      if (end > size || readUint32(bytes, end - 4) !== recordCrc(bytes, offset, end - 4)) break;
      records.push({ seq: readUint32(bytes, offset + 4), payload: bytes.slice(offset + 8, end - 4), offset, live: bytes[offset + 1] === LIVE, length: end - offset });
      offset = end;
    }
    let clean = true;
    for (let i = offset; i < size; i++) {
      if (bytes[i] !== 0xff) {
        clean = false;
        break;
      }
    }
    return { records, end: offset, clean };
  }

  #recover(): void {
    const size = this.#storage.blockSize;
    const blocks: Block[] = [];
    let nextSeq = 1;
    for (let index = 0; index < this.#blockCount; index++) {
      const header = this.#storage.read(index * size, HEADER);
      if (readUint32(header, 0) !== BLOCK_MAGIC || readUint32(header, 12) !== crc32(header, 0, 12)) continue;
      blocks.push({ index, seq: readUint32(header, 4) });
      nextSeq = Math.max(nextSeq, readUint32(header, 8));
    }
    blocks.sort((a, b) => a.seq - b.seq);
    this.#blocks = blocks;
    const records = new Map<number, JournalRecord>();
    const retired = new Set<number>();
    let scan: { end: number; clean: boolean } | undefined;
    for (const block of blocks) {
      const found = this.#scan(block);
      scan = found;
      for (const r of found.records) {
        nextSeq = Math.max(nextSeq, r.seq + 1);
        // A record copied forward by reclaiming may also still stand, live or retired, in the block it came from;
        // retiring either copy retires the record.
        if (!r.live) retired.add(r.seq);
        this.#live.set(r.seq, { block, offset: r.offset, length: r.length });
        records.set(r.seq, { seq: r.seq, payload: r.payload });
      }
    }
    for (const seq of retired) {
      records.delete(seq);
      this.#live.delete(seq);
    }
    this.#recovered = [...records.values()].sort((a, b) => a.seq - b.seq);
    this.#nextSeq = nextSeq;
    this.#nextBlockSeq = blocks.length ? blocks[blocks.length - 1]!.seq + 1 : 1;
    this.#headOffset = scan ? scan.end : 0;
    this.#headClosed = !scan || !scan.clean;
  }
}
