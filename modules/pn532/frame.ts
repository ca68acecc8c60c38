/**
 * The PN532 host-interface frames (UM0701 §6.2.1) and a streaming parser for them. Both ends use it: the driver reads
 * the chip's D5 frames, the emulator reads the host's D4 frames. Bytes arrive in arbitrary pieces over a UART, with
 * wake-up bytes, other drivers' probe garbage and the odd corrupted byte, so the parser never throws on input: it
 * reports what it found and starts looking for the next start code.
 */

export const TFI_HOST = 0xd4;
export const TFI_PN532 = 0xd5;
export const TFI_ERROR = 0x7f;

export const ACK_FRAME: Uint8Array = new Uint8Array([0x00, 0x00, 0xff, 0x00, 0xff, 0x00]);
export const NACK_FRAME: Uint8Array = new Uint8Array([0x00, 0x00, 0xff, 0xff, 0x00, 0x00]);
export const ERROR_FRAME: Uint8Array = new Uint8Array([0x00, 0x00, 0xff, 0x01, 0xff, 0x7f, 0x81, 0x00]);

/** HSU wake-up: 0x55 gets the chip's attention, the zeros give its oscillator time (libnfc sends 16 bytes in all). */
export const WAKE_UP: Uint8Array = new Uint8Array([0x55, 0x55, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);

/** TFI + data of the largest frame the v1.6 firmware handles is 265 bytes; a little room for other firmware. */
export const MAX_FRAME_LENGTH = 300;

/** Bytes of a normal frame around its TFI + data; an extended one has 3 more. */
export const NORMAL_OVERHEAD = 7;
export const EXTENDED_OVERHEAD = 10;

export type Frame =
  | { kind: "ack" }
  | { kind: "nack" }
  | { kind: "error" }
  /** `data` is PD0..PDn: the command code (or code + 1) and its parameters; TFI separate. */
  | { kind: "information"; tfi: number; data: Uint8Array; extended: boolean };

export type FrameFault = "lcs" | "dcs" | "length";

/** Wire length of an information frame carrying `dataLength` bytes after the TFI. */
export function frameLength(dataLength: number, extended = dataLength + 1 > 255): number {
  return dataLength + 1 + (extended ? EXTENDED_OVERHEAD : NORMAL_OVERHEAD);
}

/** Builds `00 00 FF LEN LCS TFI PD.. DCS 00`, switching to the extended form when TFI + data exceed 255 bytes. */
export function encodeFrame(tfi: number, data: Uint8Array, forceExtended = false): Uint8Array {
  const length = data.length + 1;
  if (length > 0xffff) throw new RangeError("frame too long");
  const extended = forceExtended || length > 255;
  const out = new Uint8Array(frameLength(data.length, extended));
  out[0] = 0x00;
  out[1] = 0x00;
  out[2] = 0xff;
  let i = 3;
  if (extended) {
    out[i++] = 0xff;
    out[i++] = 0xff;
    out[i++] = length >> 8;
    out[i++] = length & 0xff;
    out[i++] = (0x100 - (((length >> 8) + (length & 0xff)) & 0xff)) & 0xff;
  } else {
    out[i++] = length;
    out[i++] = (0x100 - length) & 0xff;
  }
  out[i++] = tfi;
  let sum = tfi;
  for (let k = 0; k < data.length; k++) {
    out[i++] = data[k]!;
    sum += data[k]!;
  }
  out[i++] = (0x100 - (sum & 0xff)) & 0xff;
  out[i] = 0x00;
  return out;
}

const enum S { Start0, Start1, Len, Lcs, XLenM, XLenL, XLcs, Body, Dcs }

export interface FrameParserOptions {
  onFrame: (frame: Frame) => void;
  /** A candidate frame failed a check; parsing already moved on. */
  onFault?: (fault: FrameFault) => void;
  /** Longest TFI + data accepted; a longer length field is treated as corruption. */
  maxLength?: number;
}

/**
 * Byte-at-a-time state machine. When a candidate frame fails a check, the bytes after its start code are fed through
 * again: a real frame may begin inside a damaged or truncated one, and this is how the parser finds it.
 */
export class FrameParser {
  readonly #onFrame: (frame: Frame) => void;
  readonly #onFault: ((fault: FrameFault) => void) | undefined;
  readonly #maxLength: number;
  #state = S.Start0;
  #length = 0;
  #lenByte = 0;
  #extended = false;
  /** Bytes since the start code of the candidate (LEN onwards), kept for replay after a failed check. */
  readonly #candidate: Uint8Array;
  #count = 0;
  #sum = 0;
  frames = 0;
  faults = 0;

  constructor(options: FrameParserOptions) {
    this.#onFrame = options.onFrame;
    this.#onFault = options.onFault;
    this.#maxLength = Math.min(options.maxLength ?? MAX_FRAME_LENGTH, 0xffff);
    this.#candidate = new Uint8Array(this.#maxLength + 8);
  }

  /** True while a frame has started but not finished: the line may still be delivering it. */
  get busy(): boolean {
    return this.#state !== S.Start0 && this.#state !== S.Start1;
  }

  push(bytes: Uint8Array): void {
    for (let i = 0; i < bytes.length; i++) this.#byte(bytes[i]!);
  }

  /** Gives up on a half-received candidate (the sender went quiet) and rescans what it held. */
  resync(): void {
    // The replay may itself open a candidate that is still incomplete: drop that one too, until nothing is pending.
    while (this.busy) this.#fail(undefined);
    this.#state = S.Start0;
  }

  #fail(fault: FrameFault | undefined): void {
    const replay = this.#candidate.slice(0, this.#count);
    this.#state = S.Start0;
    this.#count = 0;
    if (fault) {
      this.faults++;
      this.#onFault?.(fault);
    }
    for (let i = 0; i < replay.length; i++) this.#byte(replay[i]!);
  }

  #emit(frame: Frame): void {
    this.frames++;
    this.#onFrame(frame);
  }

  #byte(b: number): void {
    switch (this.#state) {
      case S.Start0:
        if (b === 0x00) this.#state = S.Start1;
        return;
      case S.Start1:
        if (b === 0xff) {
          this.#state = S.Len;
          this.#count = 0;
        } else if (b !== 0x00) this.#state = S.Start0;
        return;
    }
    this.#candidate[this.#count++] = b;
    switch (this.#state) {
      case S.Len:
        this.#lenByte = b;
        this.#state = S.Lcs;
        return;
      case S.Lcs: {
        const len = this.#lenByte;
        if (len === 0x00 && b === 0xff) {
          this.#state = S.Start0;
          this.#emit({ kind: "ack" });
        } else if (len === 0xff && b === 0x00) {
          this.#state = S.Start0;
          this.#emit({ kind: "nack" });
        } else if (len === 0xff && b === 0xff) {
          this.#state = S.XLenM;
        } else if (((len + b) & 0xff) === 0 && len !== 0) {
          this.#begin(len, false);
        } else {
          this.#fail("lcs");
        }
        return;
      }
      case S.XLenM:
        this.#lenByte = b;
        this.#state = S.XLenL;
        return;
      case S.XLenL:
        this.#length = (this.#lenByte << 8) | b;
        this.#state = S.XLcs;
        return;
      case S.XLcs:
        if (((this.#length >> 8) + (this.#length & 0xff) + b) & 0xff) this.#fail("lcs");
        else this.#begin(this.#length, true);
        return;
      case S.Body:
        this.#sum += b;
        if (this.#count === this.#bodyEnd()) this.#state = S.Dcs;
        return;
      case S.Dcs:
        if ((this.#sum + b) & 0xff) {
          this.#fail("dcs");
          return;
        }
        this.#state = S.Start0;
        this.#finish();
        return;
    }
  }

  #begin(length: number, extended: boolean): void {
    if (length < 1 || length > this.#maxLength) {
      this.#fail("length");
      return;
    }
    this.#length = length;
    this.#extended = extended;
    this.#sum = 0;
    this.#state = S.Body;
  }

  #bodyEnd(): number {
    return (this.#extended ? 5 : 2) + this.#length;
  }

  #finish(): void {
    const start = this.#extended ? 5 : 2;
    const tfi = this.#candidate[start]!;
    if (tfi === TFI_ERROR && this.#length === 1) {
      this.#emit({ kind: "error" });
      return;
    }
    const data = this.#candidate.slice(start + 1, start + this.#length);
    this.#emit({ kind: "information", tfi, data, extended: this.#extended });
  }
}
