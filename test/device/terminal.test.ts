import * as assert from "../lib/assert";
import { fromHex, toHex } from "../../modules/bytes/bytes";
import { Journal } from "../../modules/journal/journal";
import { Command } from "../../modules/pn532/commands";
import { readRecord } from "../../src/records";
import { PURCHASE_PHASES, type PurchasePhase, type TerminalEvent } from "../../src/terminal";
import { ControllerLine, start, TAC } from "../lib/terminal-rig";
import { settle } from "../lib/virtual-clock";

// The terminal as a unit, on the device interfaces only, so it runs under mocha and inside XS: the real PN532
// driver, journal, front-end client, forwarder and controller port, on a virtual clock, with the far ends played
// by scripts: the chip and its card (ScriptedPeer answering InDataExchange), the front-end (ScriptedFrontend), and
// the controller's serial line. The end-to-end suites run the same purchase against the real emulator, cards and
// front-end on Node.

function finalOf(events: TerminalEvent[]): TerminalEvent | undefined {
  return events.find((e) => e.event === "approved" || e.event === "declined" || e.event === "unknown-outcome");
}

describe("terminal (unit, on the device interfaces)", () => {
  it("approves, journals intent then outcome, and delivers the completion", async () => {
    const s = await start();
    const phases: PurchasePhase[] = [];
    s.onPhase = (p) => phases.push(p);
    await s.clock.run(s.running.terminal.pay({ amount: 300, order: "U-1" }));
    assert.equal(finalOf(s.events)?.event, "approved");
    assert.deepEqual(phases, [...PURCHASE_PHASES], "every phase, in order");
    await s.clock.advance(1000);
    assert.equal(s.running.terminal.pendingCompletions, 0);
    assert.ok(s.fe.requests.some((r) => r.path === "/v1/purchases/P-1/completion"));
    s.running.close();
  });

  it("holds the same timers across a day of keep-warm and route refresh (no handle per tick)", async () => {
    const s = await start();
    const t = s.running.terminal;
    await s.clock.advance(60_000);
    const held = t.timersHeld;
    const pending = s.clock.pending;
    for (let hour = 0; hour < 24; hour++) await s.clock.advance(3600_000);
    assert.equal(t.timersHeld, held, "the terminal's own timers");
    assert.ok(s.clock.pending <= pending, `timers on the clock: ${pending} at the start, ${s.clock.pending} a day later`);
    assert.ok(s.fe.requests.filter((r) => r.path === "/v1/routes").length >= 24, "the routing table was refreshed every hour");
    s.running.close();
  });

  for (const phase of PURCHASE_PHASES.filter((p) => p !== "released")) {
    it(`close() at ${phase}: the payment ends, no timer is left, and a debited card is never said declined`, async () => {
      const s = await start();
      s.onPhase = (p) => {
        if (p === phase) s.running.close();
      };
      const paying = s.running.terminal.pay({ amount: 300, order: `C-${phase}` });
      await s.clock.run(paying, 120_000);
      await s.clock.advance(60_000);
      await settle();
      assert.equal(s.clock.pending, 0, `timers left after close at ${phase}: ${s.clock.describe()}`);
      const final = finalOf(s.events);
      if (s.card.debits > 0) {
        assert.ok(final?.event !== "declined", `debited at ${phase} but declined`);
        // What the card did is in the journal for the next start: the intent, or its outcome.
        const journal = new Journal({ storage: s.storage });
        const kinds = journal.recovered.map((r) => readRecord(r)?.k);
        assert.ok(kinds.includes("intent") || kinds.includes("outcome"), `the journal keeps the debit (${kinds.join(",")})`);
      }
      assert.ok(s.card.debits <= 1, "DEBIT ran at most once");
    });
  }

  it("garbage, an overlong line and interleaved requests on the controller line: typed errors, nothing charged twice", async () => {
    const s = await start();
    const line = ControllerLine.last!;
    const feed = (text: string) => {
      const bytes = new Uint8Array(text.length);
      for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i) & 0xff;
      let given = false;
      line.read = () => (given ? undefined : ((given = true), bytes.buffer as ArrayBuffer));
      line.options.onReadable?.call(line, bytes.length);
    };
    feed("\x00\xff garbage {not json}\n");
    feed(`{"type":"pay","amount":300,"order":"${"x".repeat(2000)}"}\n`);
    feed('{"type":"pay","amount":300,"order":"L-1"}\n{"type":"pay","amount":300,"order":"L-2"}\n{"type":"status"}\n');
    await s.clock.advance(10_000);
    const sent = line.lines.map((l) => JSON.parse(l) as { event: string; code?: string; order?: string; state?: string });
    const codes = sent.filter((e) => e.event === "error").map((e) => e.code);
    assert.ok(codes.includes("BAD_REQUEST"), `garbage is a BAD_REQUEST (${codes.join(",")})`);
    assert.ok(codes.includes("LINE_TOO_LONG"), "an overlong line is refused whole");
    assert.ok(codes.includes("BUSY"), "a second pay while one runs is refused BUSY");
    assert.equal(sent.filter((e) => e.event === "approved").length, 1);
    assert.equal(s.card.debits, 1);
    assert.ok(sent.some((e) => e.event === "status" && e.state !== undefined));
    s.running.close();
  });

  it("a pay sent the moment the answer is read waits for the terminal instead of being refused BUSY", async () => {
    // SDK behaviour (docs/moddable.md, "Promise jobs"): Moddable runs queued promise jobs as one more event among the
    // IO events, so the controller's next request can arrive between the terminal's answer and its becoming idle.
    // The extreme case here: the request comes while the answer is being written.
    const s = await start();
    const line = ControllerLine.last!;
    const feed = (text: string) => {
      const bytes = new Uint8Array(text.length);
      for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
      let given = false;
      line.read = () => (given ? undefined : ((given = true), bytes.buffer as ArrayBuffer));
      line.options.onReadable?.call(line, bytes.length);
    };
    const write = line.write.bind(line);
    let fed = 0;
    line.write = (data) => {
      write(data);
      const last = line.lines[line.lines.length - 1] ?? "";
      if (fed === 0 && last.startsWith('{"event":"approved"')) {
        fed++;
        feed('{"type":"status"}\n{"type":"pay","amount":300,"order":"N-2"}\n{"type":"pay","amount":300,"order":"N-3"}\n');
      }
    };
    feed('{"type":"pay","amount":300,"order":"N-1"}\n');
    await s.clock.advance(20_000);
    const sent = line.lines.map((l) => JSON.parse(l) as { event: string; code?: string; order?: string });
    assert.deepEqual(sent.filter((e) => e.event === "approved").map((e) => e.order), ["N-1", "N-2"]);
    assert.deepEqual(sent.filter((e) => e.event === "error").map((e) => e.code), ["BUSY"], "only the third pay, sent while the second waited, is refused");
    assert.equal(s.card.debits, 2);
    const status = sent.find((e) => e.event === "status") as { state?: string } | undefined;
    assert.equal(status?.state, "idle", "the answered payment no longer shows as processing");
    s.running.close();
  });

  it("an unknown outcome is settled from the card's counter when it answers again", async () => {
    const s = await start();
    // The DEBIT reaches the card, but its answer is lost: the chip reports the target gone.
    let lose = true;
    const play = s.peer.onCommand;
    s.peer.onCommand = (c, p) => {
      if (c.code === Command.InDataExchange && c.params[2] === 0x54 && lose) {
        lose = false;
        s.card.answer(c.params.subarray(1));
        p.answer(c.code, fromHex("01"));
        return;
      }
      play(c, p);
    };
    await s.clock.run(s.running.terminal.pay({ amount: 300, order: "T-1" }), 120_000);
    assert.equal(finalOf(s.events)?.event, "unknown-outcome");
    const resolved = s.events.find((e) => e.event === "resolved");
    assert.equal(resolved && resolved.event === "resolved" ? resolved.result : undefined, "approved");
    assert.equal(resolved && resolved.event === "resolved" ? resolved.tac : undefined, TAC);
    assert.equal(s.card.debits, 1);
    assert.equal(toHex(new Uint8Array([s.running.terminal.unresolved])), "00");
    s.running.close();
  });

  it("close() during a refund's wait for the card clears its pause between looks (counted in timersHeld)", async () => {
    const s = await start();
    const t = s.running.terminal;
    await s.clock.run(t.pay({ amount: 300, order: "R-1" }));
    const approved = s.events.find((e) => e.event === "approved");
    assert.ok(approved?.event === "approved", "the purchase to refund");
    if (approved?.event !== "approved") return;
    await s.clock.advance(1000);
    // The card takes INITIALIZE FOR LOAD, refuses CREDIT FOR LOAD, and then answers no SELECT: the refund is in
    // doubt and keeps looking for the card, pausing between looks, until its window closes.
    let creditSent = false;
    let looks = 0;
    const play = s.peer.onCommand;
    s.peer.onCommand = (c, p) => {
      const apdu = c.params.subarray(1);
      if (c.code === Command.InDataExchange && apdu[1] === 0x50 && apdu[2] === 0x00) {
        p.answer(c.code, fromHex("00" + "00001388" + "0003" + "01" + "00" + "01020304" + "0A0B0C0D" + "9000"));
      } else if (c.code === Command.InDataExchange && apdu[1] === 0x52) {
        creditSent = true;
        p.answer(c.code, fromHex("00" + "6581"));
      } else if (c.code === Command.InDataExchange && creditSent && apdu[1] === 0xa4) {
        looks++;
        p.answer(c.code, fromHex("00" + "6A82"));
      } else {
        play(c, p);
      }
    };
    const feScript = s.fe.script;
    s.fe.script = (r) => r.path === "/v1/refunds"
      ? { status: 200, body: { purchaseId: approved.purchaseId, onlineSerial: 3, date: "20261201", time: "120100", mac2: "0A0B0C0D" } }
      : feScript(r);
    const held = t.timersHeld;
    const refunding = t.refund({ purchaseId: approved.purchaseId, order: "R-1", amount: 300, asn: approved.asn, application: approved.application,
      cityCode: approved.cityCode });
    let paused = false;
    for (let i = 0; i < 200 && !paused; i++) {
      await s.clock.advance(5);
      paused = looks >= 2 && t.timersHeld > held;
    }
    assert.ok(paused, `the pause between looks is counted (looks ${looks}, timers ${t.timersHeld}, before ${held})`);
    s.running.close();
    await settle();
    assert.equal(s.clock.pending, 0, `timers left right after close: ${s.clock.describe()}`);
    assert.equal(await refunding, "in-doubt");
  });
});
