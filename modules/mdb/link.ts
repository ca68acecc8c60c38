/**
 * The cashless device's side of the MDB link, at the level of 9-bit words (docs/mdb.md §2). It is what the C core
 * (modules/mdb/native) does on the ESP32, written once more here for Node, the simulator and tests; the application above
 * sees only whole frames through FramePort, so the 5 ms reply can come from below JavaScript.
 *
 * - A block starts at a word with the mode bit; it is ours when its upper 5 bits are our address. Its length comes
 *   from the command table, so no inter-byte timer is needed; a new mode-bit word always resynchronises.
 * - A bad CHK or a foreign/unknown command gets silence, never NAK (docs/mdb.md §2.3).
 * - POLL is answered at once from the armed reply (bare ACK when none).
 * - The four commands whose answer is a message of its own (SETUP config → READER CONFIG, EXPANSION REQUEST ID →
 *   PERIPHERAL ID, SESSION COMPLETE → END SESSION, VEND CANCEL → VEND DENIED; docs/mdb.md §2.1) are answered with
 *   that message directly when the device has primed it, so a VMC that insists on the direct form is served too.
 *   A prime is used once; the device primes again what still holds. Unprimed (the answer is not ready, or the device
 *   is in a state where the command gets something else), they are ACKed like every other command, and the data
 *   goes on a later POLL. Either way the command is then handed up, saying which it got.
 * - Data sent stays armed until the VMC ACKs it: RET resends it now, NAK or silence keeps it for the next POLL. A
 *   direct reply not ACKed is sent again on the next POLL, or as the answer to the same command repeated.
 * - A non-POLL command identical to the last one, with no reply data delivered in between, is the VMC repeating a
 *   command whose ACK it lost: it is ACKed again (or gets the direct reply again) and not handed up, so nothing runs
 *   twice. RESET is always handed up.
 */
import { EXPANSION, MAX_BLOCK, POLL, RESET, SETUP, VEND, checksum, commandLength } from "./commands";
import { BREAK, MODE } from "./wire";

export const ACK = 0x00;
export const RET = 0xaa;
export const NAK = 0xff;

/** What the application gives the link (this class, or the native core). */
export interface FramePort {
  /** The data (CHK is added below) the next POLL gets; an empty array means a bare ACK. Copied. */
  arm(reply: Uint8Array): void;
  /** While true, POLLs get no answer: the VMC's sign that a refund is in progress (docs/mdb.md §6.5). */
  hold(silent: boolean): void;
  /** Level 3 expanded currency mode changes command lengths. */
  setExpanded(expanded: boolean): void;
  /**
   * The message (data; CHK is added below) the next command of this slot is answered with directly, instead of an
   * ACK; empty = none (ACK, the data on a later POLL). Copied; used once.
   */
  prime(slot: DirectSlot, reply: Uint8Array): void;
}

/** The commands a direct reply can answer (docs/mdb.md §2.1), in the order the C core numbers them. */
export const DIRECT_SETUP_CONFIG = 0;
export const DIRECT_REQUEST_ID = 1;
export const DIRECT_SESSION_COMPLETE = 2;
export const DIRECT_VEND_CANCEL = 3;
export type DirectSlot = 0 | 1 | 2 | 3;
const DIRECT_SLOTS = 4;

/** The direct-reply slot of a command block (address + data), or -1 when it has none. */
export function directSlot(block: Uint8Array): number {
  const command = block[0]! & 7;
  const sub = block.length > 1 ? block[1] : -1;
  if (command === SETUP && sub === 0x00) return DIRECT_SETUP_CONFIG;
  if (command === EXPANSION && sub === 0x00) return DIRECT_REQUEST_ID;
  if (command === VEND && sub === 0x04) return DIRECT_SESSION_COMPLETE;
  if (command === VEND && sub === 0x01) return DIRECT_VEND_CANCEL;
  return -1;
}

export interface LinkOptions {
  /** 0x10 (cashless #1) or 0x60 (#2). */
  address: number;
  /** Transmits words; called synchronously from receive(), so the reply leaves as soon as the command is whole. */
  send(words: Uint16Array): void;
  /**
   * A whole, checksummed, non-POLL, non-duplicate block: address + data, no CHK. Valid only during the call.
   * `direct`: it was answered with its primed reply (already sent), not with an ACK.
   */
  onCommand(block: Uint8Array, direct: boolean): void;
  /** The VMC ACKed `length` bytes of armed data (direct replies are not reported: they were never armed). */
  onDelivered(length: number): void;
  /** A break on the bus (≥100 ms): every peripheral resets. */
  onBusReset(): void;
}

export interface LinkStats {
  commands: number;
  polls: number;
  duplicates: number;
  badChecksums: number;
  unknown: number;
  resends: number;
  naks: number;
  /** Commands answered with their primed reply. */
  direct: number;
}

/** ACK/RET/NAK by set bits, so one flipped bit cannot turn one into another (docs/mdb.md §2.3). */
export function classifyResponse(byte: number): "ack" | "ret" | "nak" {
  let bits = 0;
  for (let b = byte; b; b >>= 1) bits += b & 1;
  return bits <= 1 ? "ack" : bits >= 3 && bits <= 5 ? "ret" : "nak";
}

export class PeripheralLink implements FramePort {
  readonly #o: LinkOptions;
  readonly #base: number;
  readonly #block = new Uint8Array(MAX_BLOCK);
  #length = 0;
  /** -1 not in a block (or not ours); else the bytes needed (0 = not yet known). */
  #need = -1;
  readonly #armed = new Uint8Array(MAX_BLOCK);
  #armedLength = 0;
  /** Words of the last data block sent, kept for RET. */
  readonly #sent = new Uint16Array(MAX_BLOCK);
  #sentWords = 0;
  #awaiting = false;
  /** What was sent last (and is awaited, or pending) is a direct reply, not the armed data. */
  #sentDirect = false;
  /** A direct reply the VMC did not ACK: the next POLL carries it. */
  #directPending = false;
  readonly #primed = Array.from({ length: DIRECT_SLOTS }, () => new Uint8Array(MAX_BLOCK));
  readonly #primedLength = new Uint8Array(DIRECT_SLOTS);
  readonly #last = new Uint8Array(MAX_BLOCK);
  #lastLength = 0;
  #silent = false;
  #expanded = false;
  readonly #ackWord = Uint16Array.of(MODE | ACK);
  readonly stats: LinkStats = { commands: 0, polls: 0, duplicates: 0, badChecksums: 0, unknown: 0, resends: 0, naks: 0, direct: 0 };

  constructor(options: LinkOptions) {
    if (options.address !== 0x10 && options.address !== 0x60) throw new RangeError("MDB cashless address is 0x10 or 0x60");
    this.#o = options;
    this.#base = options.address;
  }

  arm(reply: Uint8Array): void {
    const n = Math.min(reply.length, MAX_BLOCK - 1);
    this.#armed.set(reply.subarray(0, n));
    this.#armedLength = n;
  }

  hold(silent: boolean): void {
    this.#silent = silent;
  }

  setExpanded(expanded: boolean): void {
    this.#expanded = expanded;
  }

  prime(slot: DirectSlot, reply: Uint8Array): void {
    const n = Math.min(reply.length, MAX_BLOCK - 1);
    this.#primed[slot]!.set(reply.subarray(0, n));
    this.#primedLength[slot] = n;
  }

  receive(word: number): void {
    if (word === BREAK) {
      this.#need = -1;
      this.#awaiting = false;
      this.#directPending = false;
      this.#armedLength = 0;
      this.#lastLength = 0;
      this.#expanded = false;
      this.#o.onBusReset();
      return;
    }
    if (this.#awaiting) {
      // The VMC's answer to our data. Some VMCs send ACK with the mode bit (docs/mdb.md §2.3); any other mode-bit
      // word is a new command, meaning our data went unacknowledged.
      if (!(word & MODE) || word === (MODE | ACK)) {
        this.#awaiting = false;
        const answer = classifyResponse(word & 0xff);
        if (answer === "ack") {
          this.#lastLength = 0;
          if (this.#sentDirect) {
            this.#directPending = false;
            return;
          }
          // The device re-arms whatever it queued beyond what was delivered.
          const n = this.#sentWords - 1;
          this.#armedLength = 0;
          this.#o.onDelivered(n);
        } else if (answer === "ret") {
          this.stats.resends++;
          this.#awaiting = true;
          this.#o.send(this.#sent.subarray(0, this.#sentWords));
        } else this.#unacknowledged();
        return;
      }
      this.#awaiting = false;
      this.#unacknowledged();
    }
    if (word & MODE) {
      const b = word & 0xff;
      if ((b & 0xf8) !== this.#base) {
        this.#need = -1;
        return;
      }
      this.#block[0] = b;
      this.#length = 1;
      this.#need = commandLength(this.#block, 1, this.#expanded);
      if (this.#need < 0) this.stats.unknown++;
      return;
    }
    if (this.#need < 0) return; // noise, or another device's data
    if (this.#length >= MAX_BLOCK) {
      this.#need = -1;
      return;
    }
    this.#block[this.#length++] = word & 0xff;
    if (this.#need === 0) {
      this.#need = commandLength(this.#block, this.#length, this.#expanded);
      if (this.#need < 0) {
        this.stats.unknown++;
        return;
      }
      if (this.#need === 0) return;
    }
    if (this.#length < this.#need + 1) return;
    this.#need = -1;
    const n = this.#length - 1;
    if (checksum(this.#block, n) !== this.#block[n]) {
      this.stats.badChecksums++;
      return;
    }
    this.#complete(n);
  }

  /** NAK or silence after our data: armed data stays armed; a direct reply waits for the next POLL. */
  #unacknowledged(): void {
    this.stats.naks++;
    if (this.#sentDirect) this.#directPending = true;
  }

  #complete(n: number): void {
    const command = this.#block[0]! & 7;
    if (command === POLL) {
      this.stats.polls++;
      if (this.#silent) return;
      if (this.#directPending) {
        this.#resendDirect();
        return;
      }
      if (!this.#armedLength) {
        this.#o.send(this.#ackWord);
        return;
      }
      let sum = 0;
      for (let i = 0; i < this.#armedLength; i++) {
        this.#sent[i] = this.#armed[i]!;
        sum += this.#armed[i]!;
      }
      this.#sent[this.#armedLength] = MODE | (sum & 0xff);
      this.#sentWords = this.#armedLength + 1;
      this.#sentDirect = false;
      this.#awaiting = true;
      this.#o.send(this.#sent.subarray(0, this.#sentWords));
      return;
    }
    const block = this.#block.subarray(0, n);
    if (command !== RESET && n === this.#lastLength && sameBytes(block, this.#last, n)) {
      this.stats.duplicates++;
      if (this.#directPending) this.#resendDirect();
      else this.#o.send(this.#ackWord);
      return;
    }
    this.#last.set(block);
    this.#lastLength = command === RESET ? 0 : n;
    this.stats.commands++;
    if (command === RESET) this.#directPending = false;
    const slot = directSlot(block);
    const primed = slot < 0 ? 0 : this.#primedLength[slot]!;
    if (!primed) {
      this.#o.send(this.#ackWord);
      this.#o.onCommand(block, false);
      return;
    }
    const reply = this.#primed[slot]!;
    let sum = 0;
    for (let i = 0; i < primed; i++) {
      this.#sent[i] = reply[i]!;
      sum += reply[i]!;
    }
    this.#sent[primed] = MODE | (sum & 0xff);
    this.#sentWords = primed + 1;
    this.#primedLength[slot] = 0;
    this.#sentDirect = true;
    this.#awaiting = true;
    this.stats.direct++;
    this.#o.send(this.#sent.subarray(0, this.#sentWords));
    this.#o.onCommand(block, true);
  }

  #resendDirect(): void {
    this.stats.resends++;
    this.#awaiting = true;
    this.#o.send(this.#sent.subarray(0, this.#sentWords));
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array, n: number): boolean {
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return false;
  return true;
}
