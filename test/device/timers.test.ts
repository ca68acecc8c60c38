import * as assert from "../lib/assert";
import { OwnedTimers } from "../../modules/device/timers";
import type { Timers } from "../../modules/device/types";
import { settle, VirtualClock } from "../lib/virtual-clock";

// The owned-timers helper on the virtual clock (mocha and XS): what it sets is counted, and close() leaves nothing.

/** The clock as a host without Timer.repeat sees it (Node's own timers have one; the helper must not need it). */
function withoutRepeat(clock: VirtualClock): Timers {
  return { set: (fn, ms) => clock.set(fn, ms), clear: (h) => clock.clear(h), now: () => clock.now() };
}

describe("owned timers (modules/device/timers)", () => {
  it("counts one-shots until they fire or are cleared", async () => {
    const clock = new VirtualClock();
    const t = new OwnedTimers(clock);
    let fired = 0;
    t.set(() => fired++, 100);
    const second = t.set(() => fired++, 200);
    assert.equal(t.held, 2);
    await clock.advance(100);
    assert.equal(fired, 1);
    assert.equal(t.held, 1);
    t.clear(second);
    assert.equal(t.held, 0);
    assert.equal(clock.pending, 0);
    await clock.advance(1000);
    assert.equal(fired, 1);
  });

  for (const host of ["with Timer.repeat", "without Timer.repeat"]) {
    it(`repeats under one handle for its whole life (${host})`, async () => {
      const clock = new VirtualClock();
      const t = new OwnedTimers(host === "with Timer.repeat" ? clock : withoutRepeat(clock));
      let ticks = 0;
      const handle = t.repeat(() => ticks++, 1000);
      for (let i = 0; i < 24; i++) await clock.advance(1000);
      assert.equal(ticks, 24);
      assert.equal(t.held, 1);
      assert.equal(clock.pending, 1, "one timer on the clock, not one per tick");
      t.clear(handle);
      assert.equal(t.held, 0);
      assert.equal(clock.pending, 0);
      await clock.advance(5000);
      assert.equal(ticks, 24);
    });
  }

  it("within(): the value when the promise settles in time, the fallback when it does not", async () => {
    const clock = new VirtualClock();
    const t = new OwnedTimers(clock);
    let answer: (v: boolean) => void = () => {};
    const late = new Promise<boolean>((resolve) => (answer = resolve));
    const timedOut = t.within(late, 500, false);
    assert.equal(t.held, 1);
    await clock.advance(500);
    assert.equal(await timedOut, false);
    assert.equal(t.held, 0);
    const early = t.within(Promise.resolve(true), 500, false);
    assert.equal(await early, true);
    await settle();
    assert.equal(t.held, 0);
    assert.equal(clock.pending, 0, "the wait's timer is cleared when the promise wins");
    answer(true);
  });

  it("close() clears every timer, ends every sleep and wait, and sets nothing afterwards", async () => {
    const clock = new VirtualClock();
    const t = new OwnedTimers(withoutRepeat(clock));
    let fired = 0;
    t.set(() => fired++, 100);
    t.repeat(() => fired++, 100);
    let slept = false;
    const sleeping = t.sleep(10_000).then(() => (slept = true));
    const waiting = t.within(new Promise<string>(() => {}), 10_000, "gave up");
    assert.equal(t.held, 4);
    t.close();
    assert.equal(t.held, 0);
    assert.equal(clock.pending, 0);
    await sleeping;
    assert.ok(slept, "the sleep ended at close()");
    assert.equal(await waiting, "gave up");
    assert.equal(t.set(() => fired++, 10), undefined);
    await t.sleep(10_000);
    assert.equal(clock.pending, 0, "nothing new is set once closed");
    await clock.advance(1000);
    assert.equal(fired, 0);
  });
});
