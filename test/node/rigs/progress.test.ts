/** tools/rigs/progress.ts: drawn on a TTY with done/total, elapsed and an estimate; nothing at all when not a TTY. */
import assert from "node:assert/strict";
import { Progress, formatDuration } from "../../../tools/rigs/progress";

function stream(isTTY: boolean) {
  const out: string[] = [];
  return { out, s: { isTTY, columns: 120, write: (t: string) => { out.push(t); } } };
}

describe("progress on long runs", () => {
  it("draws points done / total, elapsed and the time left on a TTY, throttled, and clears its line", () => {
    let now = 0;
    const { out, s } = stream(true);
    const p = new Progress("fault points", { total: 4, stream: s, now: () => now, everyMs: 1000, enabled: true });
    now = 10_000;
    p.tick();
    assert.equal(out.length, 1);
    assert.equal(out[0], "\rfault points: 1/4 (25%), 10s elapsed, ~30s left\x1b[K");
    now = 10_500;
    p.tick();
    assert.equal(out.length, 1, "no redraw within everyMs");
    now = 130_000;
    p.tick(1, "level 2");
    assert.match(out.at(-1)!, /3\/4 \(75%\), 2m10s elapsed, ~43s left · level 2/);
    p.tick();
    assert.match(out.at(-1)!, /4\/4 \(100%\)/, "the last point is always drawn");
    p.finish();
    assert.equal(out.at(-1), "\r\x1b[K");
  });

  it("says nothing when stderr is not a TTY (CI logs)", () => {
    const { out, s } = stream(false);
    const saved = process.env.PROGRESS;
    delete process.env.PROGRESS;
    try {
      const p = new Progress("soak", { total: 10, stream: s });
      assert.equal(p.enabled, false);
      for (let i = 0; i < 10; i++) p.tick();
      p.around(() => undefined);
      p.finish();
      assert.deepEqual(out, []);
    } finally {
      if (saved !== undefined) process.env.PROGRESS = saved;
    }
  });

  it("formats durations", () => {
    assert.equal(formatDuration(59_400), "59s");
    assert.equal(formatDuration(61_000), "1m01s");
    assert.equal(formatDuration(3 * 3600_000 + 5 * 60_000), "3h05m");
    assert.equal(formatDuration(NaN), "?");
  });
});
