import type { Timers } from "../modules/device/types";
import type { TerminalEvent } from "./terminal";

/**
 * Prompts to the customer on a terminal without a screen: an LED and a buzzer, or an RGB LED, driven by the same
 * events the controller port reports. "Tap the card" blinks, "hold the card" is steady, "remove the card" is a
 * steady green (single LED: steady on) with one short beep, a failure is fast blinks with three beeps, and "tap the
 * card again" after a tear is a double blink that lasts until the card comes back.
 */

/** An ECMA-419 Digital output, as `device.io.Digital` makes it with `mode: Digital.Output`. */
export interface DigitalOutput {
  write(value: 0 | 1): void;
  close(): void;
}

export type DigitalClass = new (options: { pin: number; mode: unknown }) => DigitalOutput;

export type IndicatorPins = { led: number; buzzer?: number } | { red: number; green: number; blue: number; buzzer?: number };

export interface IndicatorOptions {
  io: DigitalClass;
  /** The class's output mode constant (`Digital.Output`). */
  mode: unknown;
  pins: IndicatorPins;
  timers: Timers;
  /** LEDs wired from 3.3 V to the pin light on 0 (common-anode RGB LEDs are). The buzzer is always active high. */
  activeLow?: boolean;
  /** Shows the operator's message (remote configuration) where the host has a display; "" clears it. */
  display?: (text: string) => void;
}

export type IndicatorState = "off" | "idle" | "tap-card" | "hold-card" | "remove-card" | "failure" | "tap-again";

/** Colours as a bitmask; a single LED is on for any colour but black. */
const BLACK = 0, BLUE = 1, GREEN = 2, RED = 4, YELLOW = RED | GREEN, MAGENTA = RED | BLUE;

interface Step { readonly colour: number; readonly buzz: 0 | 1; readonly ms: number }
interface Pattern { readonly steps: readonly Step[]; readonly repeat: boolean; readonly then?: IndicatorState }

const step = (colour: number, buzz: 0 | 1, ms: number): Step => Object.freeze({ colour, buzz, ms });
// Frozen, so a preloaded build keeps the tables in flash instead of copying them to RAM.
const pattern = (steps: Step[], repeat: boolean, then?: IndicatorState): Pattern => Object.freeze({ steps: Object.freeze(steps), repeat, then });

/** What each prompt looks and sounds like; a finite pattern falls back to `then` when it ends. */
export const PATTERNS: { readonly [state in IndicatorState]: Pattern } = Object.freeze({
  "off": pattern([step(BLACK, 0, 0)], false),
  "idle": pattern([step(BLACK, 0, 0)], false),
  "tap-card": pattern([step(BLUE, 0, 500), step(BLACK, 0, 500)], true),
  "hold-card": pattern([step(YELLOW, 0, 0)], false),
  "remove-card": pattern([step(GREEN, 1, 150), step(GREEN, 0, 1850)], false, "idle"),
  "failure": pattern([step(RED, 1, 100), step(BLACK, 0, 100), step(RED, 1, 100), step(BLACK, 0, 100), step(RED, 1, 100), step(BLACK, 0, 500)], false, "idle"),
  "tap-again": pattern([step(MAGENTA, 1, 100), step(BLACK, 0, 100), step(MAGENTA, 1, 100), step(BLACK, 0, 700),
    step(MAGENTA, 0, 100), step(BLACK, 0, 100), step(MAGENTA, 0, 100), step(BLACK, 0, 700)], true),
});

/** The prompt an event calls for, or undefined when the event does not concern the customer. */
export function promptFor(event: TerminalEvent): IndicatorState | undefined {
  switch (event.event) {
    case "ready": return "idle";
    case "waiting-for-card": return "tap-card";
    case "card-read": return "hold-card";
    case "approved": return "remove-card";
    // The customer did nothing wrong when the vending machine withdrew the payment.
    case "declined": return event.reason === "cancelled" ? "idle" : "failure";
    case "unknown-outcome": return "tap-again";
    case "resolved": return event.result === "approved" ? "remove-card" : "failure";
    default: return undefined;
  }
}

export class Indicator {
  readonly #timers: Timers;
  readonly #activeLow: boolean;
  readonly #display: ((text: string) => void) | undefined;
  readonly #light: { out: DigitalOutput; bit: number }[] = [];
  readonly #buzzer: DigitalOutput | undefined;
  #state: IndicatorState = "off";
  #pattern: Pattern = PATTERNS.off;
  #index = 0;
  #timer: unknown;
  #closed = false;

  constructor(options: IndicatorOptions) {
    this.#timers = options.timers;
    this.#display = options.display;
    this.#activeLow = options.activeLow ?? false;
    const open = (pin: number) => new options.io({ pin, mode: options.mode });
    const pins = options.pins;
    try {
      if ("led" in pins) {
        this.#light.push({ out: open(pins.led), bit: RED | GREEN | BLUE });
      } else {
        this.#light.push({ out: open(pins.red), bit: RED }, { out: open(pins.green), bit: GREEN }, { out: open(pins.blue), bit: BLUE });
      }
      this.#buzzer = pins.buzzer === undefined ? undefined : open(pins.buzzer);
    } catch (error) {
      for (const l of this.#light) l.out.close();
      throw error;
    }
    this.#apply(PATTERNS.off.steps[0]!);
  }

  get state(): IndicatorState {
    return this.#state;
  }

  /** The operator's message last shown ("" for none). */
  message = "";

  /** Follows the terminal: pass every event the controller port is sent. */
  onEvent(event: TerminalEvent): void {
    if (event.event === "message") {
      this.message = event.text;
      try {
        this.#display?.(event.text);
      } catch {
        // A display that fails must not stop the prompts.
      }
      return;
    }
    const state = promptFor(event);
    if (state) this.show(state);
  }

  show(state: IndicatorState): void {
    if (this.#closed) return;
    if (this.#timer !== undefined) this.#timers.clear(this.#timer);
    this.#timer = undefined;
    this.#state = state;
    this.#pattern = PATTERNS[state];
    this.#index = 0;
    this.#step();
  }

  /** Turns everything off and frees the pins. */
  close(): void {
    if (this.#closed) return;
    if (this.#timer !== undefined) this.#timers.clear(this.#timer);
    this.#timer = undefined;
    this.#apply(PATTERNS.off.steps[0]!);
    this.#closed = true;
    for (const l of this.#light) l.out.close();
    this.#buzzer?.close();
  }

  #step(): void {
    const steps = this.#pattern.steps;
    if (this.#index >= steps.length) {
      if (this.#pattern.repeat) {
        this.#index = 0;
      } else {
        if (this.#pattern.then) this.show(this.#pattern.then);
        return;
      }
    }
    const s = steps[this.#index++]!;
    this.#apply(s);
    // A zero-length step is a steady state: it holds until the next prompt.
    if (s.ms > 0 || this.#index < steps.length || this.#pattern.then) {
      this.#timer = this.#timers.set(() => {
        this.#timer = undefined;
        this.#step();
      }, s.ms);
    }
  }

  #apply(s: Step): void {
    for (const l of this.#light) {
      const on = s.colour & l.bit ? 1 : 0;
      l.out.write((this.#activeLow ? 1 - on : on) as 0 | 1);
    }
    this.#buzzer?.write(s.buzz);
  }
}
