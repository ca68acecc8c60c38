/**
 * The HSU line rate: raising it with SetSerialBaudRate after start-up, proving it with a Diagnose echo, and finding a
 * chip that reset back at its start rate. The host's side of a rate change is Link.reopen().
 */
import { Command, SERIAL_BAUD_CODES } from "./commands";
import { Pn532IoError } from "./errors";
import { ACK_FRAME } from "./frame";
import type { Link } from "./link";

export type LineEvent =
  | { kind: "raised"; baud: number }
  | { kind: "fallback"; baud: number; tried: number; reason: string }
  | { kind: "reset"; baud: number }
  | { kind: "bit-rate"; kbps: number; reason?: string };

export interface LineRateOptions {
  /**
   * Line rates to raise the HSU to after start(), fastest first (default 921,600). Only rates the host's UART also
   * lists (`serial.rates`) are tried; a host that lists none stays at `serial.baud`.
   */
  baudRates?: readonly number[];
  /** Line events worth a log line: a raised rate, a fallback, a chip found reset. */
  onLine?: (event: LineEvent) => void;
}

/** What the line checks need from the chip layer: a command round (waking the chip) and the settings a reset lost. */
export interface LineChip {
  exchange(code: number, params: Uint8Array, timeout: number, checking?: boolean): Promise<Uint8Array>;
  restoreSettings(): Promise<void>;
}

export class LineRate {
  readonly #link: Link;
  readonly #chip: LineChip;
  readonly #baudRates: readonly number[];
  readonly #onLine: ((event: LineEvent) => void) | undefined;

  constructor(link: Link, chip: LineChip, options: LineRateOptions) {
    this.#link = link;
    this.#chip = chip;
    this.#baudRates = options.baudRates ?? [921600];
    this.#onLine = options.onLine;
  }

  /**
   * SetSerialBaudRate the manual's way (docs/pn532.md): the chip answers at the old rate, the host ACKs at the old
   * rate, then both move; a Diagnose echo at the new rate proves the line. Tries each rate both ends support, fastest
   * first; falls back to the start rate with a wake-up when a check fails.
   */
  async raise(): Promise<void> {
    const link = this.#link;
    const rates = this.#baudRates.filter((r) => r > link.baud && link.hostRates.includes(r) && SERIAL_BAUD_CODES[r] !== undefined);
    rates.sort((a, b) => b - a);
    for (const rate of rates) {
      const from = link.baud;
      try {
        await link.send(Command.SetSerialBaudRate, new Uint8Array([SERIAL_BAUD_CODES[rate]!]), link.responseTimeout, false);
      } catch (error) {
        // Refused at the old rate (an error frame, no answer): the chip did not move; try the next rate.
        this.#onLine?.({ kind: "fallback", baud: from, tried: rate, reason: (error as Error).message });
        continue;
      }
      if (!link.write(ACK_FRAME)) continue;
      // The ACK has to be out of the UART at the old rate before the host's side moves.
      await link.sleep(Math.ceil(link.wireTime(ACK_FRAME.length)) + 1);
      let moved = true;
      try {
        link.reopen(rate);
      } catch (error) {
        link.reportError(error as Error);
        moved = false;
      }
      if (moved && (await this.#works())) {
        this.#onLine?.({ kind: "raised", baud: rate });
        return;
      }
      link.reopen(link.startBaud);
      link.asleep = true;
      const back = await this.#works();
      this.#onLine?.({ kind: "fallback", baud: link.startBaud, tried: rate, reason: back ? "no echo at the new rate" : "no answer at either rate" });
      if (!back) throw new Pn532IoError(`line check failed at ${rate} and at ${link.startBaud} baud`);
    }
  }

  /** Diagnose line test with a short echo: true when it comes back intact. Wakes the chip first if it sleeps. */
  async #works(): Promise<boolean> {
    const probe = new Uint8Array([0x00, 0x55, 0xaa, 0x5a, 0xa5]);
    try {
      const echo = await this.#chip.exchange(Command.Diagnose, probe, this.#link.responseTimeout, true);
      return echo.length === probe.length && echo.every((b, i) => b === probe[i]);
    } catch {
      return false;
    } finally {
      // The check's own silence is not a sign of a reset: the caller decides from its answer.
      this.#link.lineSuspect = false;
    }
  }

  /**
   * A command found no ACK at a raised rate: a chip that reset or lost power is back at its start rate, asleep. Look
   * there with a wake-up; found, raise the line again; not found, return to the raised rate (a glitch, not a reset).
   */
  async check(): Promise<void> {
    const link = this.#link;
    link.lineSuspect = false;
    const raised = link.baud;
    link.reopen(link.startBaud);
    link.asleep = true;
    if (await this.#works()) {
      this.#onLine?.({ kind: "reset", baud: link.startBaud });
      // A reset chip lost its settings too.
      await this.#chip.restoreSettings();
      await this.raise();
      return;
    }
    link.asleep = false;
    link.reopen(raised);
  }
}
