/**
 * A PN532 (IC 0x32, firmware v1.6) as a host sees it over HSU: it ACKs every good command frame, answers as the chip
 * does, takes an ACK as abort and a NACK as "send that again", sleeps after PowerDown until 0x55 wakes it, and runs
 * the ISO-DEP block protocol for the cards in its field (so the host sends bare APDUs, as with libnfc). Link and card
 * timing are modelled, and faults can be injected into any exchange.
 *
 * This class is the façade; the layers are line.ts (bytes and baud), chip.ts (frames and command dispatch), field.ts
 * (cards present, activation, InAutoPoll), isodep.ts (the card protocol), sharing context.ts (timing, clock, settings).
 */
import type { SerialPort, SerialSpec, Timers } from "../../../modules/device/types";
import { Chip, type BaudSwitch, type ReceivedCommand } from "./chip";
import { EmulatorContext, type EmulatorStats } from "./context";
import { Field, type HostedCard } from "./field";
import { IsoDep } from "./isodep";
import { EmulatorLine } from "./line";
import type { EmulatorTiming, Fault } from "./timing";

export { DEFAULT_TIMING, INSTANT_TIMING, byteTimeFor, type EmulatorTiming, type Fault } from "./timing";
export type { EmulatorStats } from "./context";
export type { HostedCard } from "./field";
export type { BaudSwitch, ReceivedCommand } from "./chip";

export interface EmulatorOptions {
  /** Highest ISO-DEP bit rate InPSL accepts, kbps (default 424, the PN532's highest for ISO 14443-4 type A). */
  maxBitRate?: number;
  /** SetSerialBaudRate behaviour (default "obey"): the others model firmware or wiring that cannot go faster. */
  baudSwitch?: BaudSwitch;
  /** The serial line: `{io: NodeSerial, path}` for a pty or a real port, or one end of a memory pair. */
  serial: SerialSpec;
  cards?: HostedCard[];
  timing?: Partial<EmulatorTiming>;
  /** GetFirmwareVersion answer: IC, Ver, Rev, Support. */
  firmware?: Uint8Array;
  /** Largest DataIn per InDataExchange answer; longer card answers go in pieces with the MI status bit. */
  maxDataIn?: number;
  log?: (line: string) => void;
  /**
   * The clock modelled times run on (default Node's timers): a test's VirtualClock, shared with the driver and a
   * memory line, makes every wire, firmware and card time exact and independent of the machine's load.
   */
  clock?: Timers;
}

export class Pn532Emulator {
  readonly #ctx: EmulatorContext;
  readonly #line: EmulatorLine;
  readonly #field: Field;
  readonly #chip: Chip;
  readonly cards: HostedCard[];
  readonly stats: EmulatorStats;
  /** Every command frame received, oldest first (capped). */
  readonly received: ReceivedCommand[];

  constructor(options: EmulatorOptions) {
    const ctx = new EmulatorContext(options.timing ?? {}, options.log, options.clock);
    this.#ctx = ctx;
    let isoDep!: IsoDep;
    this.#field = new Field(ctx, options.maxBitRate ?? 424, () => isoDep.resetChains());
    isoDep = new IsoDep(ctx, this.#field, options.maxDataIn ?? 262);
    for (const card of options.cards ?? []) this.#field.cards.push(card);
    this.#line = new EmulatorLine(ctx, options.serial, (bytes) => this.receive(bytes));
    const firmware = options.firmware ?? new Uint8Array([0x32, 0x01, 0x06, 0x07]);
    this.#chip = new Chip(ctx, this.#line, this.#field, isoDep, firmware, options.baudSwitch ?? "obey");
    this.cards = this.#field.cards;
    this.stats = ctx.stats;
    this.received = this.#chip.received;
    this.#line.open();
  }

  get timing(): EmulatorTiming {
    return this.#ctx.timing;
  }

  set timing(timing: EmulatorTiming) {
    this.#ctx.timing = timing;
  }

  get baudSwitch(): BaudSwitch {
    return this.#chip.baudSwitch;
  }

  set baudSwitch(mode: BaudSwitch) {
    this.#chip.baudSwitch = mode;
  }

  get maxBitRate(): number {
    return this.#field.maxBitRate;
  }

  set maxBitRate(kbps: number) {
    this.#field.maxBitRate = kbps;
  }

  /** The HSU rate the chip runs at now. */
  get baud(): number {
    return this.#line.baud;
  }

  /** Power loss or a reset pin pulse: the chip comes back at 115,200 baud in LowVbat, every setting at its default. */
  reset(): void {
    this.#chip.reset();
  }

  get asleep(): boolean {
    return this.#chip.asleep;
  }

  get serial(): SerialPort {
    return this.#line.serial;
  }

  /** Changes timing while running; a new baud rate without a byteTime recomputes the byte time. */
  setTiming(timing: Partial<EmulatorTiming>): void {
    this.#ctx.setTiming(timing);
  }

  injectFault(fault: Fault): void {
    this.#ctx.injectFault(fault);
  }

  clearFaults(): void {
    this.#ctx.clearFaults();
  }

  get pendingFaults(): number {
    return this.#ctx.pendingFaults;
  }

  /** Adds a card to the emulator's list; `inField` puts it in the field now. Returns its index. */
  addCard(card: HostedCard, inField = true): number {
    return this.#field.addCard(card, inField);
  }

  /** Puts a card (back) into the field: a fresh card for the next activation. */
  place(which: HostedCard | number): void {
    this.#field.place(which);
  }

  /** Takes a card out of the field, even in the middle of an exchange. */
  remove(which: HostedCard | number): void {
    this.#field.remove(which);
  }

  close(): void {
    if (this.#ctx.closed) return;
    this.#ctx.close();
    this.#line.close();
  }

  /** Feeds host bytes as if they came from the line (fuzzing, tests that bypass the serial port). */
  receive(bytes: Uint8Array): void {
    this.#chip.receive(bytes);
  }
}
