import * as assert from "../lib/assert";
import { Indicator, promptFor, type IndicatorPins } from "../../src/indicator";
import type { TerminalEvent } from "../../src/terminal";
import { VirtualClock } from "../lib/virtual-clock";

/** Digital outputs that remember every level written, with the virtual time, like a logic analyser. */
function bench(clock: VirtualClock) {
  const levels = new Map<number, number>();
  const log: { at: number; pin: number; value: number }[] = [];
  const closed: number[] = [];
  class RecordingDigital {
    readonly #pin: number;
    constructor(options: { pin: number; mode: unknown }) {
      assert.equal(options.mode, "output");
      if (levels.has(options.pin)) throw new Error(`pin ${options.pin} already in use`);
      this.#pin = options.pin;
      levels.set(options.pin, -1);
    }
    write(value: 0 | 1): void {
      levels.set(this.#pin, value);
      log.push({ at: clock.now(), pin: this.#pin, value });
    }
    close(): void {
      closed.push(this.#pin);
    }
  }
  return { io: RecordingDigital, levels, log, closed };
}

const LED: IndicatorPins = { led: 2, buzzer: 4 };
const RGB: IndicatorPins = { red: 25, green: 26, blue: 27, buzzer: 14 };

function setup(pins: IndicatorPins, activeLow = false) {
  const clock = new VirtualClock();
  const b = bench(clock);
  const indicator = new Indicator({ io: b.io, mode: "output", pins, timers: clock, activeLow });
  return { clock, indicator, ...b };
}

const waiting: TerminalEvent = { event: "waiting-for-card", order: "A", amount: 100 };
const cardRead: TerminalEvent = { event: "card-read", order: "A", asn: "1", cityCode: "1000", application: "tunion" };

describe("indicator", () => {
  it("maps the terminal's events to prompts; controller faults and cancels do not alarm the customer", () => {
    assert.equal(promptFor(waiting), "tap-card");
    assert.equal(promptFor(cardRead), "hold-card");
    assert.equal(promptFor({ event: "declined", order: "A", reason: "insufficient-balance" }), "failure");
    assert.equal(promptFor({ event: "declined", order: "A", reason: "cancelled" }), "idle");
    assert.equal(promptFor({ event: "unknown-outcome", order: "A", purchaseId: "p", asn: "1" }), "tap-again");
    assert.equal(promptFor({ event: "resolved", order: "A", purchaseId: "p", result: "approved" }), "remove-card");
    assert.equal(promptFor({ event: "resolved", order: "A", purchaseId: "p", result: "unresolvable" }), "failure");
    assert.equal(promptFor({ event: "error", code: "BUSY", message: "busy" }), undefined);
  });

  it("starts dark and silent", () => {
    const { levels } = setup(LED);
    assert.equal(levels.get(2), 0);
    assert.equal(levels.get(4), 0);
  });

  it("blinks 'tap the card' until a card is read, then holds steady", async () => {
    const { clock, indicator, levels, log } = setup(LED);
    indicator.onEvent(waiting);
    assert.equal(levels.get(2), 1);
    await clock.advance(500);
    assert.equal(levels.get(2), 0);
    await clock.advance(500);
    assert.equal(levels.get(2), 1);
    await clock.advance(5000);
    const edges = log.filter((l) => l.pin === 2).length;
    assert.ok(edges >= 12, `still blinking after 6 s (${edges} writes)`);
    indicator.onEvent(cardRead);
    assert.equal(levels.get(2), 1);
    const before = log.length;
    await clock.advance(10_000);
    assert.equal(log.length, before, "steady: no writes while the card is held");
    assert.equal(clock.pending, 0, "no timer left running");
  });

  it("approved: green and one 150 ms beep, back to dark after 2 s", async () => {
    const { clock, indicator, levels, log } = setup(RGB);
    indicator.onEvent(waiting);
    assert.deepEqual([levels.get(25), levels.get(26), levels.get(27)], [0, 0, 1]);
    indicator.onEvent(cardRead);
    assert.deepEqual([levels.get(25), levels.get(26), levels.get(27)], [1, 1, 0]);
    const start = clock.now();
    indicator.onEvent({ event: "approved", order: "A", amount: 1, purchaseId: "p", tsn: 1, tac: "00", asn: "1", cityCode: "1",
      application: "tunion", level: 1, balanceBefore: 2, balanceAfter: 1, timings: { tapMs: 1, authorizeMs: 1, apdus: 4, apduBytes: 1, roundTrips: 1, handshakes: 0 } });
    assert.equal(indicator.state, "remove-card");
    assert.deepEqual([levels.get(25), levels.get(26), levels.get(27), levels.get(14)], [0, 1, 0, 1]);
    await clock.advance(150);
    assert.equal(levels.get(14), 0);
    const beeps = log.filter((l) => l.pin === 14 && l.value === 1 && l.at >= start).length;
    assert.equal(beeps, 1);
    await clock.advance(1849);
    assert.equal(levels.get(26), 1);
    await clock.advance(1);
    assert.equal(indicator.state, "idle");
    assert.deepEqual([levels.get(25), levels.get(26), levels.get(27), levels.get(14)], [0, 0, 0, 0]);
  });

  it("a decline is three red beeps, then idle", async () => {
    const { clock, indicator, log } = setup(RGB);
    indicator.onEvent({ event: "declined", order: "A", reason: "card-expired" });
    await clock.advance(3000);
    assert.equal(log.filter((l) => l.pin === 14 && l.value === 1).length, 3);
    assert.equal(log.filter((l) => l.pin === 25 && l.value === 1).length, 3);
    assert.equal(indicator.state, "idle");
  });

  it("after a tear asks for the card again until it is resolved", async () => {
    const { clock, indicator, levels } = setup(LED);
    indicator.onEvent({ event: "unknown-outcome", order: "A", purchaseId: "p", asn: "1" });
    await clock.advance(20_000);
    assert.equal(indicator.state, "tap-again");
    indicator.onEvent({ event: "resolved", order: "A", purchaseId: "p", result: "approved" });
    assert.equal(indicator.state, "remove-card");
    assert.equal(levels.get(2), 1);
  });

  it("active-low LEDs light on 0; the buzzer stays active high", () => {
    const { indicator, levels } = setup(RGB, true);
    assert.deepEqual([levels.get(25), levels.get(26), levels.get(27), levels.get(14)], [1, 1, 1, 0]);
    indicator.onEvent(cardRead);
    assert.deepEqual([levels.get(25), levels.get(26), levels.get(27)], [0, 0, 1]);
  });

  it("close() goes dark, stops its timers and frees every pin; later events are ignored", async () => {
    const { clock, indicator, levels, closed } = setup(RGB);
    indicator.onEvent(waiting);
    indicator.close();
    assert.deepEqual([levels.get(25), levels.get(26), levels.get(27), levels.get(14)], [0, 0, 0, 0]);
    assert.deepEqual(closed.sort(), [14, 25, 26, 27]);
    assert.equal(clock.pending, 0);
    indicator.onEvent(cardRead);
    assert.equal(levels.get(25), 0);
  });
});
