/**
 * The PN532's own commands in the manual's names (UM0701 §7): start-up, configuration, registers, power-down. Each is
 * one round on the link, after the HSU wake-up when the chip sleeps and after a line check when the line is in doubt.
 */
import { Command, Param, RfItem, decodeFirmwareVersion, type FirmwareVersion } from "./commands";
import { Pn532ClosedError, Pn532FrameError, statusError } from "./errors";
import { LineRate, type LineRateOptions } from "./line-rate";
import type { Link } from "./link";

export interface ChipOptions extends LineRateOptions {
  /** MxRtyPassiveActivation used while detecting cards: a bounded number so InListPassiveTarget answers at once. */
  passiveRetries?: number;
}

export interface CommandOptions {
  /** Response deadline after the ACK, ms. */
  timeout?: number;
}

export class Chip {
  readonly #link: Link;
  readonly lineRate: LineRate;
  readonly passiveRetries: number;
  /** Called when the chip has let go of its targets (power-down, a reset found on the line). */
  readonly #forget: () => void;
  /** MxRtyPassiveActivation is a bounded number now (InListPassiveTarget answers at once). */
  retriesBounded = false;

  constructor(link: Link, options: ChipOptions, forget: () => void) {
    this.#link = link;
    this.passiveRetries = options.passiveRetries ?? 0x02;
    this.#forget = forget;
    this.lineRate = new LineRate(link, this, options);
  }

  /** Wake-up, SAMConfiguration (normal mode), GetFirmwareVersion, automatic RATS, bounded retries, raised line. */
  async start(): Promise<FirmwareVersion> {
    this.#link.asleep = true;
    await this.samConfiguration();
    const firmware = await this.getFirmwareVersion();
    await this.setParameters(Param.AutomaticATR_RES | Param.AutomaticRATS);
    await this.setMaxRetries(0xff, 0x01, this.passiveRetries);
    await this.#link.enqueue(() => this.lineRate.raise());
    return firmware;
  }

  command(code: number, params: Uint8Array = new Uint8Array(0), options: CommandOptions = {}): Promise<Uint8Array> {
    return this.#link.enqueue(() => this.exchange(code, params, options.timeout ?? this.#link.responseTimeout));
  }

  /** One command frame and its answer (PD1.. of the response), waking the chip first when it sleeps. */
  async exchange(code: number, params: Uint8Array, timeout: number, checking = false): Promise<Uint8Array> {
    const link = this.#link;
    if (link.closed) throw new Pn532ClosedError();
    if (link.lineSuspect && !checking) await this.lineRate.check();
    if (link.asleep) {
      const sam = code === Command.SAMConfiguration ? params : new Uint8Array([0x01, 0x14]);
      const reply = await link.send(Command.SAMConfiguration, sam, link.responseTimeout, true);
      link.asleep = false;
      if (code === Command.SAMConfiguration) return reply;
    }
    return link.send(code, params, timeout, false);
  }

  /** The status byte of a card command's answer as a typed error when it is not success. */
  checkStatus(code: number, reply: Uint8Array): Uint8Array {
    if (reply.length < 1) throw new Pn532FrameError(`command 0x${code.toString(16)} answered without a status byte`);
    const error = statusError(code, reply[0]!);
    if (error) throw error;
    return reply;
  }

  /** A chip found reset on the line lost its settings: automatic RATS and bounded retries again, no targets. */
  async restoreSettings(): Promise<void> {
    const timeout = this.#link.responseTimeout;
    await this.exchange(Command.SetParameters, new Uint8Array([Param.AutomaticATR_RES | Param.AutomaticRATS]), timeout);
    await this.exchange(Command.RFConfiguration, new Uint8Array([RfItem.MaxRetries, 0xff, 0x01, this.passiveRetries]), timeout);
    this.retriesBounded = true;
    this.#forget();
  }

  async getFirmwareVersion(): Promise<FirmwareVersion> {
    return decodeFirmwareVersion(await this.command(Command.GetFirmwareVersion));
  }

  /** Line test (NumTst 0): the chip echoes the data. */
  async diagnose(test: number, data: Uint8Array = new Uint8Array(0)): Promise<Uint8Array> {
    const params = new Uint8Array(1 + data.length);
    params[0] = test;
    params.set(data, 1);
    return this.command(Command.Diagnose, params);
  }

  async samConfiguration(mode = 0x01, timeout = 0x14, irq?: number): Promise<void> {
    const params = irq === undefined ? new Uint8Array([mode, timeout]) : new Uint8Array([mode, timeout, irq]);
    await this.command(Command.SAMConfiguration, params);
  }

  async setParameters(flags: number): Promise<void> {
    await this.command(Command.SetParameters, new Uint8Array([flags]));
  }

  async rfConfiguration(item: number, data: Uint8Array): Promise<void> {
    const params = new Uint8Array(1 + data.length);
    params[0] = item;
    params.set(data, 1);
    await this.command(Command.RFConfiguration, params);
  }

  async setField(on: boolean, autoRFCA = false): Promise<void> {
    await this.rfConfiguration(RfItem.Field, new Uint8Array([(on ? 1 : 0) | (autoRFCA ? 2 : 0)]));
  }

  /** Timeout codes: 0 none, n = 100 µs × 2^(n-1) (0x0A = 51.2 ms, 0x0B = 102.4 ms). */
  async setTimings(atrResTimeout: number, nonDepTimeout: number): Promise<void> {
    await this.rfConfiguration(RfItem.VariousTimings, new Uint8Array([0x00, atrResTimeout, nonDepTimeout]));
  }

  /** 0xFF means for ever: with MxRtyPassiveActivation 0xFF InListPassiveTarget waits until a card comes. */
  async setMaxRetries(atr: number, psl: number, passiveActivation: number): Promise<void> {
    await this.rfConfiguration(RfItem.MaxRetries, new Uint8Array([atr, psl, passiveActivation]));
    this.retriesBounded = passiveActivation !== 0xff;
  }

  async readRegister(addresses: readonly number[]): Promise<Uint8Array> {
    const params = new Uint8Array(addresses.length * 2);
    addresses.forEach((a, i) => {
      params[2 * i] = a >> 8;
      params[2 * i + 1] = a & 0xff;
    });
    return this.command(Command.ReadRegister, params);
  }

  async writeRegister(values: readonly (readonly [number, number])[]): Promise<void> {
    const params = new Uint8Array(values.length * 3);
    values.forEach(([a, v], i) => {
      params[3 * i] = a >> 8;
      params[3 * i + 1] = a & 0xff;
      params[3 * i + 2] = v;
    });
    await this.command(Command.WriteRegister, params);
  }

  /** Puts the chip to sleep; the next command wakes it with the HSU wake-up and SAMConfiguration first. */
  async powerDown(wakeUpEnable = 0xf0): Promise<number> {
    const params = new Uint8Array([wakeUpEnable]);
    const reply = await this.#link.enqueue(async () => {
      const r = await this.exchange(Command.PowerDown, params, this.#link.responseTimeout);
      this.#link.asleep = true;
      this.retriesBounded = false;
      this.#forget();
      return r;
    });
    return reply[0] ?? 0;
  }
}
