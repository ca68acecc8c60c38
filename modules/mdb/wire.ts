/**
 * The explicit 8-bit encoding of MDB's 9-bit words over a byte stream (a pty, a socket, memory), shared by the
 * terminal's link and the VMC simulator (docs/mdb.md §5). It is the form Linux termios delivers with PARMRK and
 * space parity, so a PC link over a real UART reads the same bytes:
 *   data byte b, mode bit 0  -> b          (but 0xFF -> FF FF)
 *   data byte b, mode bit 1  -> FF 00 b
 *   bus reset (break)        -> FF 01      (a pty has no break; this marks where a ≥100 ms break was)
 * A word is a number: bits 0-7 data, bit 8 (MODE) the mode bit. BREAK is a word value of its own.
 */
import { MdbWireError } from "./errors";

export const MODE = 0x100;
export const BREAK = 0x200;
const ESCAPE = 0xff;

/** Bytes for one word (at most 3). */
export function encodeWord(word: number, out: Uint8Array, at: number): number {
  if (word === BREAK) {
    out[at] = ESCAPE;
    out[at + 1] = 0x01;
    return 2;
  }
  const b = word & 0xff;
  if (word & MODE) {
    out[at] = ESCAPE;
    out[at + 1] = 0x00;
    out[at + 2] = b;
    return 3;
  }
  if (b === ESCAPE) {
    out[at] = ESCAPE;
    out[at + 1] = ESCAPE;
    return 2;
  }
  out[at] = b;
  return 1;
}

export function encodeWords(words: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(words.length * 3);
  let n = 0;
  for (let i = 0; i < words.length; i++) n += encodeWord(words[i]!, out, n);
  return out.slice(0, n);
}

export interface WordDecoderOptions {
  onWord(word: number): void;
  /** A broken escape: the decoder drops the escape and reads the byte as a fresh start. */
  onError?(error: MdbWireError): void;
}

/** Streaming decoder: bytes arrive in any pieces; never throws on input. */
export class WordDecoder {
  readonly #onWord: (word: number) => void;
  readonly #onError: ((error: MdbWireError) => void) | undefined;
  /** 0 plain, 1 after FF, 2 after FF 00. */
  #state = 0;

  constructor(options: WordDecoderOptions) {
    this.#onWord = options.onWord;
    this.#onError = options.onError;
  }

  push(bytes: Uint8Array): void {
    for (let i = 0; i < bytes.length; i++) this.#byte(bytes[i]!);
  }

  reset(): void {
    this.#state = 0;
  }

  #byte(b: number): void {
    switch (this.#state) {
      case 0:
        if (b === ESCAPE) this.#state = 1;
        else this.#onWord(b);
        return;
      case 1:
        this.#state = 0;
        if (b === ESCAPE) this.#onWord(ESCAPE);
        else if (b === 0x00) this.#state = 2;
        else if (b === 0x01) this.#onWord(BREAK);
        else {
          this.#onError?.(new MdbWireError(b));
          this.#byte(b);
        }
        return;
      default:
        this.#state = 0;
        this.#onWord(MODE | b);
    }
  }
}
