/**
 * PN532 command driver over an ECMA-419 serial line in HSU mode: the one class callers use. It puts together the
 * layers, each in its own file:
 * - link.ts: frames on the serial line, ACK/NACK, resends, aborts, the command queue;
 * - line-rate.ts: raising the HSU rate and finding a chip that reset;
 * - chip.ts: the chip's own commands (start-up, configuration, registers, power-down);
 * - target.ts: the card in the field (activation, bit rate, InDataExchange).
 * Everything waits on the host's timers, nothing blocks; close() and abort() end every wait.
 */
import type { FirmwareVersion, PolledTarget, TargetA } from "./commands";
import { Chip, type ChipOptions, type CommandOptions } from "./chip";
import { Pn532AbortedError } from "./errors";
import { Link, type LinkOptions, type LinkState, type Pn532Stats } from "./link";
import { Initiator, initiatorSettings, type DetectOptions, type InitiatorOptions } from "./target";

export type { LineEvent } from "./line-rate";
export type { Pn532Stats } from "./link";
export type { CommandOptions } from "./chip";
export type { DetectOptions } from "./target";

export interface PN532Options extends LinkOptions, ChipOptions, InitiatorOptions {}

export class PN532 {
  readonly #link: Link;
  readonly #chip: Chip;
  readonly #initiator: Initiator;
  readonly stats: Pn532Stats;

  constructor(options: PN532Options) {
    // Settings are checked before the serial line opens: a bad value leaves nothing open.
    const settings = initiatorSettings(options);
    this.#link = new Link(options);
    this.#chip = new Chip(this.#link, options, () => this.#initiator.forget());
    this.#initiator = new Initiator(this.#link, this.#chip, settings);
    this.stats = this.#link.stats;
  }

  /** The line rate in use now. */
  get baud(): number {
    return this.#link.baud;
  }

  get state(): LinkState {
    return this.#link.state;
  }

  /** The activated card, if any. */
  get target(): TargetA | undefined {
    return this.#initiator.target;
  }

  set target(target: TargetA | undefined) {
    this.#initiator.target = target;
  }

  /** The activated card's ISO-DEP bit rate, kbps. */
  get bitRate(): number {
    return this.#initiator.bitRate;
  }

  set bitRate(kbps: number) {
    this.#initiator.bitRate = kbps;
  }

  /** Wire time of `bytes` at the line's baud rate (8N1: 10 bits a byte), ms. */
  wireTime(bytes: number): number {
    return this.#link.wireTime(bytes);
  }

  // ---- the chip (chip.ts) ----

  /** Wake-up, SAMConfiguration (normal mode), GetFirmwareVersion, automatic RATS, bounded retries, raised line. */
  start(): Promise<FirmwareVersion> {
    return this.#chip.start();
  }

  command(code: number, params?: Uint8Array, options?: CommandOptions): Promise<Uint8Array> {
    return this.#chip.command(code, params, options);
  }

  getFirmwareVersion(): Promise<FirmwareVersion> {
    return this.#chip.getFirmwareVersion();
  }

  /** Line test (NumTst 0): the chip echoes the data. */
  diagnose(test: number, data?: Uint8Array): Promise<Uint8Array> {
    return this.#chip.diagnose(test, data);
  }

  samConfiguration(mode?: number, timeout?: number, irq?: number): Promise<void> {
    return this.#chip.samConfiguration(mode, timeout, irq);
  }

  setParameters(flags: number): Promise<void> {
    return this.#chip.setParameters(flags);
  }

  rfConfiguration(item: number, data: Uint8Array): Promise<void> {
    return this.#chip.rfConfiguration(item, data);
  }

  setField(on: boolean, autoRFCA?: boolean): Promise<void> {
    return this.#chip.setField(on, autoRFCA);
  }

  /** Timeout codes: 0 none, n = 100 µs × 2^(n-1) (0x0A = 51.2 ms, 0x0B = 102.4 ms). */
  setTimings(atrResTimeout: number, nonDepTimeout: number): Promise<void> {
    return this.#chip.setTimings(atrResTimeout, nonDepTimeout);
  }

  /** 0xFF means for ever: with MxRtyPassiveActivation 0xFF InListPassiveTarget waits until a card comes. */
  setMaxRetries(atr: number, psl: number, passiveActivation: number): Promise<void> {
    return this.#chip.setMaxRetries(atr, psl, passiveActivation);
  }

  readRegister(addresses: readonly number[]): Promise<Uint8Array> {
    return this.#chip.readRegister(addresses);
  }

  writeRegister(values: readonly (readonly [number, number])[]): Promise<void> {
    return this.#chip.writeRegister(values);
  }

  /** Puts the chip to sleep; the next command wakes it with the HSU wake-up and SAMConfiguration first. */
  powerDown(wakeUpEnable?: number): Promise<number> {
    return this.#chip.powerDown(wakeUpEnable);
  }

  // ---- the card in the field (target.ts) ----

  /** Activates up to `maxTargets` type-A cards; with fAutomaticRATS the PN532 also gets the ATS of ISO-DEP cards. */
  inListPassiveTarget(maxTargets?: number, initiatorData?: Uint8Array, options?: CommandOptions): Promise<TargetA[]> {
    return this.#initiator.inListPassiveTarget(maxTargets, initiatorData, options);
  }

  /** Polls for the given types (PollNr 1..254 or 0xFF, Period in 150 ms units). */
  inAutoPoll(pollNr: number, period: number, types: readonly number[], options?: CommandOptions): Promise<PolledTarget[]> {
    return this.#initiator.inAutoPoll(pollNr, period, types, options);
  }

  /** One block with target `tg` (an APDU for an ISO-DEP card), chained both ways as the chip needs. */
  inDataExchange(tg: number, data: Uint8Array, options?: CommandOptions): Promise<Uint8Array> {
    return this.#initiator.inDataExchange(tg, data, options);
  }

  /** Raw frame exchange with the current CIU framing (presence checks, non-ISO-DEP cards). */
  inCommunicateThru(data: Uint8Array, options?: CommandOptions): Promise<Uint8Array> {
    return this.#initiator.inCommunicateThru(data, options);
  }

  inDeselect(tg?: number): Promise<void> {
    return this.#initiator.inDeselect(tg);
  }

  inRelease(tg?: number): Promise<void> {
    return this.#initiator.inRelease(tg);
  }

  /** Looks for one type-A card in bounded polls with timer sleeps in between; abort() ends it. */
  detect(options?: DetectOptions): Promise<TargetA> {
    return this.#initiator.detect(options);
  }

  /** InPSL: both directions of target `tg` at `kbps` (106, 212, 424). */
  inPsl(tg: number, kbps: number): Promise<void> {
    return this.#initiator.inPsl(tg, kbps);
  }

  /** The ISO 7816 transceiver the purse layer uses: one APDU to the activated card, its answer back. */
  transceive(apdu: Uint8Array): Promise<Uint8Array> {
    return this.#initiator.transceive(apdu);
  }

  // ---- the link (link.ts) ----

  /** Cancels the command on the wire (telling the chip with an ACK), every queued command and any detect() loop. */
  abort(): void {
    this.#link.cancelAll(() => new Pn532AbortedError());
  }

  close(): void {
    this.#link.close();
  }
}
