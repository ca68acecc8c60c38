/**
 * The journal's storage on the Linux build: one file (the SDK's `file` module), sized once and erased in 4 KiB
 * blocks written as 0xFF, so the journal sees the same erased state as on the ESP32's flash partition. The SDK's
 * file write ends with fflush: the bytes are in the kernel when the call returns, which survives the process being
 * killed (the power cuts the harness makes).
 */
import { File } from "file";
import type { JournalStorage } from "../../modules/journal/storage";
import { CodedError } from "../../modules/errors/errors";

export class FileStorageError extends CodedError {
  constructor(message: string) {
    super("JOURNAL_STORAGE", message);
  }
}

const BLOCK = 4096;

export class FileJournalStorage implements JournalStorage {
  readonly size: number;
  readonly blockSize = BLOCK;
  readonly #file: File;
  readonly #erased = new Uint8Array(BLOCK).fill(0xff);

  constructor(options: { path: string; size: number }) {
    if (!Number.isInteger(options.size) || options.size < 2 * BLOCK || options.size % BLOCK) throw new FileStorageError(`journal size ${options.size} must be a multiple of ${BLOCK}, at least two blocks`);
    this.size = options.size;
    try {
      this.#file = new File(options.path, true);
    } catch (error) {
      throw new FileStorageError(`cannot open journal file ${options.path}: ${(error as Error).message}`);
    }
    // A new (or short) file is extended with erased blocks; an existing journal is left as it is.
    for (let at = this.#file.length - (this.#file.length % BLOCK); at < this.size; at += BLOCK) {
      this.#file.position = at;
      this.#file.write(this.#erased.buffer as ArrayBuffer);
    }
  }

  read(offset: number, length: number): Uint8Array {
    this.#file.position = offset;
    return new Uint8Array(this.#file.read(ArrayBuffer, length));
  }

  write(offset: number, bytes: Uint8Array): void {
    this.#file.position = offset;
    const copy = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? bytes.buffer as ArrayBuffer : bytes.slice().buffer;
    this.#file.write(copy);
  }

  eraseBlock(block: number): void {
    this.#file.position = block * BLOCK;
    this.#file.write(this.#erased.buffer as ArrayBuffer);
  }

  close(): void {
    this.#file.close();
  }
}
