import * as assert from "../lib/assert";
import { FrontendClient } from "../../modules/frontend-client/client";
import { CompletionForwarder } from "../../src/forwarder";
import type { OutcomeRecord } from "../../src/records";
import { ScriptedFrontend } from "../lib/scripted-frontend";
import { VirtualClock } from "../lib/virtual-clock";

// Store-and-forward of completions against a front-end that answers late, twice or never.

function outcome(id: string): OutcomeRecord {
  return { k: "outcome", purchaseId: id, url: "https://fe.test", order: `O-${id}`, completion: { outcome: "debited", mac2: "00112233", tac: "44556677" } };
}

function setup() {
  const clock = new VirtualClock();
  const fe = new ScriptedFrontend(clock);
  const client = new FrontendClient({ connector: fe, requestTimeout: 1000 });
  const done: { seq: number; id: string; error?: string }[] = [];
  const forwarder = new CompletionForwarder({
    client, timers: clock, firstRetryMs: 100, maxRetryMs: 800,
    onDone: (seq, record, _answer, error) => done.push({ seq, id: record.purchaseId, error: (error as { code?: string } | undefined)?.code }),
  });
  return { clock, fe, forwarder, done };
}

describe("completion forwarder", () => {
  it("delivers oldest first, one at a time, and says each is done once", async () => {
    const { clock, fe, forwarder, done } = setup();
    const a = forwarder.enqueue(1, outcome("a"));
    const b = forwarder.enqueue(2, outcome("b"));
    assert.equal(forwarder.pending, 2);
    await clock.run(Promise.all([a, b]));
    assert.deepEqual(fe.requests.map((r) => r.path), ["/v1/purchases/a/completion", "/v1/purchases/b/completion"]);
    assert.deepEqual(done, [{ seq: 1, id: "a", error: undefined }, { seq: 2, id: "b", error: undefined }]);
    assert.equal(forwarder.pending, 0);
    assert.equal(clock.pending, 0, "no timer left behind");
  });

  it("a front-end that never answers: retried with doubling backoff up to the cap, delivered once it answers", async () => {
    const { clock, fe, forwarder, done } = setup();
    let down = true;
    fe.script = () => (down ? "never" : { status: 200, body: { status: "completed" } });
    const acked = forwarder.enqueue(7, outcome("n"));
    await clock.advance(20_000);
    assert.equal(done.length, 0);
    const starts = fe.requests.map((r) => r.at);
    const gaps = starts.slice(1).map((t, i) => t - starts[i]! - 1000);
    assert.deepEqual(gaps.slice(0, 5), [100, 200, 400, 800, 800], "backoff doubles from 100 ms and stops at 800 ms");
    down = false;
    assert.equal((await clock.run(acked))?.status, "completed");
    assert.deepEqual(done, [{ seq: 7, id: "n", error: undefined }]);
    assert.equal(forwarder.retries, fe.requests.length - 1);
  });

  it("an answer that comes after the timeout, then again on the retry: done exactly once", async () => {
    const { clock, fe, forwarder, done } = setup();
    let calls = 0;
    // The first answer takes 1.5 s (the client gave up at 1 s); the front-end keeps the completion and acknowledges
    // the retry as the same one.
    fe.script = () => ({ status: 200, body: { status: "completed" }, delay: ++calls === 1 ? 1500 : 5 });
    await clock.run(forwarder.enqueue(3, outcome("late")));
    await clock.advance(5000);
    assert.equal(calls, 2);
    assert.deepEqual(done, [{ seq: 3, id: "late", error: undefined }]);
  });

  it("a completion the front-end refuses (4xx) is reported and does not block the queue", async () => {
    const { clock, fe, forwarder, done } = setup();
    fe.script = (r) => (r.path.includes("/bad/") ? { status: 409, body: { error: { code: "ALREADY_SETTLED", message: "other outcome" } } } : { status: 200, body: { status: "completed" } });
    const bad = forwarder.enqueue(1, outcome("bad"));
    const good = forwarder.enqueue(2, outcome("good"));
    assert.equal(await clock.run(bad), undefined);
    assert.equal((await clock.run(good))?.status, "completed");
    assert.deepEqual(done.map((d) => [d.id, d.error]), [["bad", "FRONTEND_DECLINED"], ["good", undefined]]);
    assert.equal(fe.requests.length, 2, "a refusal is not retried");
  });

  it("close() in the middle of a backoff: no timer left, waiters told not acknowledged, nothing sent after", async () => {
    const { clock, fe, forwarder, done } = setup();
    fe.script = () => "refuse";
    const waiting = forwarder.enqueue(1, outcome("c"));
    await clock.advance(50);
    assert.equal(forwarder.timersHeld, 1);
    forwarder.close();
    assert.equal(forwarder.timersHeld, 0);
    assert.equal(await waiting, undefined);
    const sent = fe.requests.length;
    await clock.advance(10_000);
    assert.equal(fe.requests.length, sent);
    assert.equal(clock.pending, 0);
    assert.equal(done.length, 0);
    assert.equal(await forwarder.enqueue(2, outcome("d")), undefined, "a closed forwarder takes nothing");
  });
});
