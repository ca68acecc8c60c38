/**
 * ISO-DEP, the card protocol (ISO 14443-4, docs/pn532.md), both ways the chip offers it: InDataExchange, where the chip
 * runs the block protocol and chains long data with the MI bit, and InCommunicateThru, where the host sends the blocks
 * itself (RATS, I-blocks with chaining, R(ACK/NAK), S(WTX) and S(DESELECT)) and the card answers block by block.
 */
import { concatBytes } from "../../../modules/bytes/bytes";
import { Command } from "../../../modules/pn532/commands";
import type { EmulatorContext } from "./context";
import { CIU_RX_MODE, CIU_TX_MODE, type Field, type Target } from "./field";

/** ISO 14443-4 state of a card driven block by block (docs/pn532.md). */
interface ThruSession {
  /** Largest frame the reader takes (FSD from RATS), with PCB and CRC. */
  fsd: number;
  chainIn: Uint8Array[];
  /** The rest of an answer still to go in chained I-blocks. */
  out?: Uint8Array;
  /** An answer held back behind S(WTX): card time still to run when the reader grants the extension. */
  held?: { answer: Uint8Array; left: number; nr: number };
}

type Air = (bytes: number) => Promise<void>;

/** FSDI 0..8 of RATS to FSD in bytes (ISO 14443-4). */
const FSD: readonly number[] = Object.freeze([16, 24, 32, 40, 48, 64, 96, 128, 256]);

function isRemoved(error: unknown): boolean {
  return !!error && typeof error === "object" && (error as { code?: unknown }).code === "CARD_REMOVED";
}

export class IsoDep {
  readonly #ctx: EmulatorContext;
  readonly #field: Field;
  readonly #maxDataIn: number;
  /** InDataExchange pieces sent with the MI bit, waiting for the last one. */
  #chainIn: Uint8Array[] = [];
  /** The rest of a card's answer still to go with the MI status bit. */
  #chainOut: Uint8Array | undefined;
  /** The card's side when the host runs ISO-DEP itself (after its own RATS); gone with the target's activation. */
  readonly #thru = new WeakMap<Target, ThruSession>();

  constructor(ctx: EmulatorContext, field: Field, maxDataIn: number) {
    this.#ctx = ctx;
    this.#field = field;
    this.#maxDataIn = maxDataIn;
  }

  /** Drops chaining in both directions (activation, InDeselect, InRelease, reset). */
  resetChains(): void {
    this.#chainIn = [];
    this.#chainOut = undefined;
  }

  /** ms per byte over the air for `target`: the 106 kbps figure scaled by its bit rate. */
  #rfByte(target: Target | undefined): number {
    return this.#ctx.timing.rfByteTime * (106 / (target?.kbps ?? 106));
  }

  #cardTime(apdu: Uint8Array): number {
    const c = this.#ctx.timing.cardProcessing;
    if (typeof c === "function") return c(apdu);
    return c[apdu.length > 1 ? apdu[1]! : -1] ?? this.#ctx.timing.defaultCardProcessing;
  }

  async #noAnswer(g: number, status = 0x01): Promise<Uint8Array> {
    await this.#ctx.sleep(g, this.#ctx.timing.frameWaitingTime);
    this.#ctx.lastError = status;
    return new Uint8Array([status]);
  }

  #nextPiece(): Uint8Array {
    const rest = this.#chainOut!;
    const size = Math.min(this.#maxDataIn, rest.length);
    const more = size < rest.length;
    this.#chainOut = more ? rest.slice(size) : undefined;
    const out = new Uint8Array(1 + size);
    out[0] = more ? 0x40 : 0x00;
    out.set(rest.subarray(0, size), 1);
    return out;
  }

  async inDataExchange(g: number, p: Uint8Array): Promise<Uint8Array | "error"> {
    if (p.length < 1) return "error";
    const ctx = this.#ctx;
    const t = ctx.timing;
    const tg = p[0]! & 0x3f;
    const more = (p[0]! & 0x40) !== 0;
    const data = p.subarray(1);
    const target = this.#field.targets.get(tg);
    const rf = this.#rfByte(target);
    if (!target) {
      await ctx.sleep(g, t.commandDelay);
      ctx.lastError = 0x27;
      return new Uint8Array([0x27]);
    }
    if (!data.length && !more && this.#chainOut) {
      // The host asks for the next piece of a chained answer.
      await ctx.sleep(g, t.exchangeOverhead + Math.min(this.#maxDataIn, this.#chainOut.length) * rf);
      return this.#nextPiece();
    }
    this.#chainOut = undefined;
    const status = ctx.takeFault("status", Command.InDataExchange);
    if (status) {
      await ctx.sleep(g, t.exchangeOverhead);
      return new Uint8Array([status.status]);
    }
    const card = target.card;
    if (!card.present) return this.#noAnswer(g);
    if (more) {
      this.#chainIn.push(data.slice());
      await ctx.sleep(g, t.exchangeOverhead + data.length * rf);
      return new Uint8Array([0x00]);
    }
    const apdu = concatBytes(...this.#chainIn, data);
    this.#chainIn = [];
    const tear = ctx.takeFault("remove-card", Command.InDataExchange);
    if (tear && (tear.when ?? "before") === "before") this.#field.remove(card);
    await ctx.sleep(g, t.exchangeOverhead + apdu.length * rf);
    let answer: Uint8Array;
    try {
      answer = card.process(apdu);
    } catch (error) {
      if (isRemoved(error)) {
        this.#field.remove(card);
        return this.#noAnswer(g, tear?.status);
      }
      throw error;
    }
    if (tear) {
      this.#field.remove(card);
      return this.#noAnswer(g, tear.status);
    }
    await ctx.sleep(g, this.#cardTime(apdu) + answer.length * rf);
    // Taken out while it was working: the answer never reaches the reader.
    if (!card.present) return this.#noAnswer(g);
    ctx.lastError = 0;
    this.#chainOut = answer;
    return this.#nextPiece();
  }

  async inCommunicateThru(g: number, p: Uint8Array): Promise<Uint8Array> {
    const ctx = this.#ctx;
    const target = [...this.#field.targets.values()][0];
    const card = target?.card;
    if (target && card?.present && this.#field.on && p.length >= 1) {
      const rf = this.#rfByte(target);
      const air = async (bytes: number) => ctx.sleep(g, ctx.timing.exchangeOverhead + bytes * rf);
      const pcb = p[0]!;
      const crcOn = ((ctx.registers.get(CIU_TX_MODE) ?? 0) & 0x80) !== 0;
      if (pcb === 0xe0 && p.length === 2 && card.sak & 0x20 && crcOn) {
        // RATS from a reader doing ISO-DEP itself: the ATS (with TL) back, and a fresh block-level session.
        await air(2 + card.ats.length + 1);
        this.#thru.set(target, { fsd: FSD[Math.min(8, p[1]! >> 4)]!, chainIn: [] });
        return new Uint8Array([0x00, card.ats.length + 1, ...card.ats]);
      }
      if ((pcb & 0xfe) === 0xb2) {
        // Presence check: an ISO-DEP card answers R(NAK) with R(ACK) of its current block number.
        await air(2);
        return new Uint8Array([0x00, 0xa2 | (pcb & 1)]);
      }
      const thru = this.#thru.get(target);
      // Raw blocks reach the card whole only with the CIU adding and checking the CRC; without it the card ignores them.
      const crc = ((ctx.registers.get(CIU_TX_MODE) ?? 0) & 0x80) !== 0 && ((ctx.registers.get(CIU_RX_MODE) ?? 0) & 0x80) !== 0;
      if (thru && crc) {
        const reply = await this.#thruBlock(g, target, thru, p, air);
        if (reply) return reply;
      }
    }
    const code = ctx.nonDepTimeoutCode;
    const timeout = code === 0 ? ctx.timing.frameWaitingTime : Math.min(0.1 * 2 ** (code - 1), ctx.timing.frameWaitingTime);
    await ctx.sleep(g, timeout);
    ctx.lastError = 0x01;
    return new Uint8Array([0x01]);
  }

  /** One ISO 14443-4 block from the reader (CRC handled by the chip): I, R(ACK) or S(WTX/DESELECT). */
  async #thruBlock(g: number, target: Target, thru: ThruSession, p: Uint8Array, air: Air): Promise<Uint8Array | undefined> {
    const ctx = this.#ctx;
    const pcb = p[0]!;
    const nr = pcb & 0x01;
    if ((pcb & 0xe2) === 0x02) {
      // I-block; CID and NAD (bits 4 and 3) are not used by this card.
      if (pcb & 0x0c) return undefined;
      thru.out = undefined;
      thru.chainIn.push(p.slice(1));
      if (pcb & 0x10) {
        await air(p.length + 1);
        return new Uint8Array([0x00, 0xa2 | nr]);
      }
      const apdu = concatBytes(...thru.chainIn);
      thru.chainIn = [];
      await air(p.length);
      let answer: Uint8Array;
      try {
        answer = target.card.process(apdu);
      } catch (error) {
        if (isRemoved(error)) {
          this.#field.remove(target.card);
          return undefined;
        }
        throw error;
      }
      const work = this.#cardTime(apdu);
      // A card that needs longer than its frame waiting time asks for more with S(WTX) first.
      const fwt = ctx.timing.frameWaitingTime;
      if (work >= fwt * 0.9) {
        await ctx.sleep(g, fwt * 0.8);
        thru.held = { answer, left: work - fwt * 0.8, nr };
        return new Uint8Array([0x00, 0xf2, 0x01]);
      }
      await ctx.sleep(g, work);
      return this.#thruAnswer(thru, answer, nr, air);
    }
    if ((pcb & 0xf7) === 0xf2 && thru.held && p.length === 2) {
      // The reader grants the extension: the card finishes and answers.
      const held = thru.held;
      thru.held = undefined;
      await air(2);
      await ctx.sleep(g, held.left);
      return this.#thruAnswer(thru, held.answer, held.nr, air);
    }
    if ((pcb & 0xf6) === 0xa2 && thru.out) {
      // R(ACK) for the next piece of a chained answer.
      return this.#thruAnswer(thru, thru.out, nr, air);
    }
    if ((pcb & 0xf7) === 0xc2) {
      // DESELECT: the card answers and goes to HALT; it needs a new activation.
      await air(2);
      this.#field.targets.delete(target.tg);
      return new Uint8Array([0x00, 0xc2]);
    }
    return undefined;
  }

  /** The next I-block of `answer`, chained when it does not fit the reader's FSD. */
  async #thruAnswer(thru: ThruSession, answer: Uint8Array, nr: number, air: Air): Promise<Uint8Array> {
    const room = thru.fsd - 3;
    const more = answer.length > room;
    const piece = answer.subarray(0, more ? room : answer.length);
    thru.out = more ? answer.slice(room) : undefined;
    await air(piece.length + 3);
    const out = new Uint8Array(2 + piece.length);
    out[0] = 0x00;
    out[1] = 0x02 | (more ? 0x10 : 0) | nr;
    out.set(piece, 2);
    return out;
  }
}
