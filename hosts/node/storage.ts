/** The journal's storage on Node: a preallocated file, every write followed by fdatasync so it is durable on return. */
import { closeSync, fdatasyncSync, fstatSync, ftruncateSync, openSync, readSync, writeSync } from "node:fs";
import type { JournalStorage } from "../../modules/journal/storage";

export class FileJournalStorage implements JournalStorage {
  readonly size: number;
  readonly blockSize: number;
  readonly path: string;
  #fd: number;

  constructor(path: string, options: { size?: number; blockSize?: number } = {}) {
    this.path = path;
    this.blockSize = options.blockSize ?? 4096;
    this.size = options.size ?? 64 * 1024;
    if (this.size % this.blockSize) throw new RangeError("journal size must be a whole number of blocks");
    this.#fd = openSync(path, "a+");
    closeSync(this.#fd);
    this.#fd = openSync(path, "r+");
    const length = fstatSync(this.#fd).size;
    if (length < this.size) {
      // New space reads as erased flash.
      writeSync(this.#fd, new Uint8Array(this.size - length).fill(0xff), 0, this.size - length, length);
      fdatasyncSync(this.#fd);
    } else if (length > this.size) {
      ftruncateSync(this.#fd, this.size);
    }
  }

  read(offset: number, length: number): Uint8Array {
    const out = new Uint8Array(length);
    readSync(this.#fd, out, 0, length, offset);
    return out;
  }

  write(offset: number, bytes: Uint8Array): void {
    writeSync(this.#fd, bytes, 0, bytes.length, offset);
    fdatasyncSync(this.#fd);
  }

  eraseBlock(block: number): void {
    writeSync(this.#fd, new Uint8Array(this.blockSize).fill(0xff), 0, this.blockSize, block * this.blockSize);
    fdatasyncSync(this.#fd);
  }

  close(): void {
    if (this.#fd < 0) return;
    closeSync(this.#fd);
    this.#fd = -1;
  }
}
