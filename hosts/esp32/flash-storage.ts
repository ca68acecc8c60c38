/**
 * The journal's storage on the ESP32: a raw flash partition (`flash` module), erased in 4 KiB sectors. ESP-IDF's
 * flash writes are done when the call returns, which is what the journal's durability rests on.
 */
import Flash from "flash";
import type { JournalStorage } from "../../modules/journal/storage";
import { CodedError } from "../../modules/errors/errors";

export class JournalStorageError extends CodedError {
  constructor(message: string) {
    super("JOURNAL_STORAGE", message);
  }
}

export class FlashJournalStorage implements JournalStorage {
  readonly size: number;
  readonly blockSize: number;
  readonly #flash: Flash;

  /** `partition` is the name in the partitions file (hosts/esp32/partitions.csv: "journal"). */
  constructor(partition: string) {
    try {
      this.#flash = new Flash(partition);
    } catch (error) {
      throw new JournalStorageError(`no flash partition "${partition}": ${(error as Error).message}`);
    }
    this.blockSize = this.#flash.blockSize;
    // A partition that is not a whole number of sectors leaves its tail unused.
    this.size = this.#flash.byteLength - (this.#flash.byteLength % this.blockSize);
    if (this.size < 2 * this.blockSize) throw new JournalStorageError(`flash partition "${partition}" is too small for a journal`);
  }

  read(offset: number, length: number): Uint8Array {
    return new Uint8Array(this.#flash.read(offset, length) as ArrayBuffer);
  }

  write(offset: number, bytes: Uint8Array): void {
    this.#flash.write(offset, bytes.length, bytes);
  }

  eraseBlock(block: number): void {
    this.#flash.erase(block);
  }
}
