/**
 * The RF field and the cards in it: which cards are present, which are activated as targets, and the commands that
 * find them (InListPassiveTarget, InAutoPoll) or change their bit rate (InPSL).
 */
import { bytesEqual } from "../../../modules/bytes/bytes";
import { Param } from "../../../modules/pn532/commands";
import type { EmulatorContext } from "./context";

/** What the emulator needs from a card in its field; tools/sim/cardsim's VirtualCard is one. */
export interface HostedCard {
  readonly uid: Uint8Array;
  readonly atqa: Uint8Array;
  readonly sak: number;
  /** ATS without TL. */
  readonly ats: Uint8Array;
  readonly present: boolean;
  /** One APDU; throws an error with code "CARD_REMOVED" when the card is out of the field or torn. */
  process(apdu: Uint8Array): Uint8Array;
  place(): void;
  remove(): void;
}

/** An activated card. */
export interface Target {
  tg: number;
  card: HostedCard;
  /** ISO-DEP bit rate both ways, kbps (InPSL moves it). */
  kbps: number;
}

/** CIU TxMode and RxMode: bit 7 CRC on, bits 6..4 speed (0 106, 1 212, 2 424 kbps), bits 1..0 framing. */
export const CIU_TX_MODE = 0x6302;
export const CIU_RX_MODE = 0x6303;

export class Field {
  readonly #ctx: EmulatorContext;
  /** A new activation: the ISO-DEP layer drops its chaining state. */
  readonly #onActivate: () => void;
  readonly cards: HostedCard[] = [];
  readonly targets = new Map<number, Target>();
  /** RF field on (RFConfiguration, or any activation). */
  on = false;
  /** Highest ISO-DEP bit rate InPSL accepts, kbps. */
  maxBitRate: number;

  constructor(ctx: EmulatorContext, maxBitRate: number, onActivate: () => void) {
    this.#ctx = ctx;
    this.maxBitRate = maxBitRate;
    this.#onActivate = onActivate;
  }

  /** Adds a card to the list; `inField` puts it in the field now. Returns its index. */
  addCard(card: HostedCard, inField: boolean): number {
    this.cards.push(card);
    if (inField) card.place();
    else if (card.present) card.remove();
    this.#ctx.notify();
    return this.cards.length - 1;
  }

  card(which: HostedCard | number): HostedCard {
    const card = typeof which === "number" ? this.cards[which] : which;
    if (!card) throw new RangeError(`no card ${String(which)}`);
    return card;
  }

  place(which: HostedCard | number): void {
    this.card(which).place();
    this.#ctx.log?.(`card ${this.cards.indexOf(this.card(which))} placed`);
    this.#ctx.notify();
  }

  remove(which: HostedCard | number): void {
    const card = this.card(which);
    card.remove();
    for (const [tg, t] of this.targets) if (t.card === card) this.targets.delete(tg);
    this.#ctx.log?.(`card ${this.cards.indexOf(card)} removed`);
    this.#ctx.notify();
  }

  #targetData(tg: number, card: HostedCard, withAts: boolean): number[] {
    const out = [tg, ...card.atqa, card.sak, card.uid.length, ...card.uid];
    if (withAts && card.sak & 0x20 && this.#ctx.flags & Param.AutomaticRATS) out.push(card.ats.length + 1, ...card.ats);
    return out;
  }

  #available(initiatorData?: Uint8Array): HostedCard[] {
    return this.cards.filter((c) => {
      if (!c.present) return false;
      if (!initiatorData || !initiatorData.length) return true;
      // A UID given with its cascade tags (88 ..) selects the card whose plain UID matches.
      const plain: number[] = [];
      for (let i = 0; i < initiatorData.length; i++) {
        if (initiatorData[i] === 0x88 && (i === 0 || i === 4) && initiatorData.length > 4) continue;
        plain.push(initiatorData[i]!);
      }
      return bytesEqual(new Uint8Array(plain), c.uid);
    });
  }

  #activate(cards: HostedCard[]): void {
    this.targets.clear();
    this.#onActivate();
    cards.forEach((card, i) => {
      // A fresh activation: the card starts its ISO-DEP session from scratch, nothing selected.
      card.place();
      this.targets.set(i + 1, { tg: i + 1, card, kbps: 106 });
    });
    this.on = true;
    // As a real chip leaves its CIU after a 106A activation: CRC on both ways at 106 kbps, ISO 14443-A framing.
    this.#ctx.registers.set(CIU_TX_MODE, 0x80);
    this.#ctx.registers.set(CIU_RX_MODE, 0x80);
  }

  async inListPassiveTarget(g: number, p: Uint8Array): Promise<Uint8Array | "error"> {
    if (p.length < 2 || p[0]! < 1 || p[0]! > 2 || p[1]! > 4) return "error";
    const ctx = this.#ctx;
    const t = ctx.timing;
    const maxTg = p[0]!;
    const attempts = ctx.passiveRetries === 0xff ? Infinity : ctx.passiveRetries + 1;
    if (p[1] !== 0x00) {
      // Only type-A cards live here; other modulations find nothing.
      if (attempts === Infinity) {
        for (;;) await ctx.waitForChange(g);
      }
      await ctx.sleep(g, t.pollDelay * attempts);
      return new Uint8Array([0x00]);
    }
    const initiatorData = p.subarray(2);
    let tried = 0;
    for (;;) {
      const found = this.#available(initiatorData).slice(0, maxTg);
      if (found.length) {
        await ctx.sleep(g, t.activationDelay * found.length);
        const still = found.filter((c) => c.present);
        if (still.length) {
          this.#activate(still);
          const out = [still.length];
          still.forEach((card, i) => out.push(...this.#targetData(i + 1, card, true)));
          return new Uint8Array(out);
        }
      }
      if (attempts === Infinity) {
        // MxRtyPassiveActivation = FF: only the ACK until a card comes (or the host aborts).
        await ctx.waitForChange(g);
        continue;
      }
      const left = attempts - tried;
      await ctx.sleep(g, t.pollDelay * left);
      tried = attempts;
      if (!this.#available(initiatorData).length) return new Uint8Array([0x00]);
    }
  }

  /**
   * InPSL: the chip sends the card PPS (ISO 14443-4) and both move to the new bit rate. Refused (status 0x27) above
   * maxBitRate or above what the card's ATS TA(1) offers both ways.
   */
  async inPsl(g: number, p: Uint8Array): Promise<Uint8Array | "error"> {
    if (p.length !== 3 || p[1]! > 2 || p[2]! > 2) return "error";
    const ctx = this.#ctx;
    const target = this.targets.get(p[0]!);
    await ctx.sleep(g, ctx.timing.exchangeOverhead + 5 * ctx.timing.rfByteTime);
    if (!target || !target.card.present) return new Uint8Array([target ? 0x01 : 0x27]);
    const kbps = [106, 212, 424][Math.max(p[1]!, p[2]!)]!;
    const ats = target.card.ats;
    const ta = ats.length >= 2 && ats[0]! & 0x10 ? ats[1]! : 0;
    const bits = ((ta >> 4) & ta) & 0x07;
    const offered = kbps === 106 || (kbps === 212 && bits & 1) || (kbps === 424 && bits & 2);
    if (kbps > this.maxBitRate || !offered) return new Uint8Array([0x27]);
    target.kbps = kbps;
    // TxSpeed and RxSpeed (bits 6..4) follow the new bit rate.
    const speed = [106, 212, 424].indexOf(kbps) << 4;
    ctx.registers.set(CIU_TX_MODE, ((ctx.registers.get(CIU_TX_MODE) ?? 0x80) & 0x8f) | speed);
    ctx.registers.set(CIU_RX_MODE, ((ctx.registers.get(CIU_RX_MODE) ?? 0x80) & 0x8f) | speed);
    return new Uint8Array([0x00]);
  }

  async inAutoPoll(g: number, p: Uint8Array): Promise<Uint8Array | "error"> {
    if (p.length < 3 || p[0] === 0 || p[1]! < 1 || p[1]! > 0x0f || p.length > 17) return "error";
    const ctx = this.#ctx;
    const pollNr = p[0]!;
    const period = p[1]! * ctx.timing.pollPeriodUnit;
    const types = [...p.subarray(2)];
    const pickType = (card: HostedCard): number | undefined => {
      if (card.sak & 0x20 && types.includes(0x20)) return 0x20;
      if (types.includes(0x10)) return 0x10;
      if (types.includes(0x00)) return 0x00;
      return undefined;
    };
    for (let poll = 0; pollNr === 0xff || poll < pollNr; poll++) {
      const card = this.#available().find((c) => pickType(c) !== undefined);
      if (card) {
        await ctx.sleep(g, ctx.timing.activationDelay);
        if (card.present) {
          const type = pickType(card)!;
          this.#activate([card]);
          const data = this.#targetData(1, card, type !== 0x10);
          return new Uint8Array([0x01, type, data.length, ...data]);
        }
      }
      // One period per type, woken early when a card arrives.
      await ctx.waitForChange(g, period * types.length);
    }
    return new Uint8Array([0x00]);
  }
}
