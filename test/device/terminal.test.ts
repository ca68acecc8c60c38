import * as assert from "../lib/assert";
import { fromHex, toHex } from "../../modules/bytes/bytes";
import { Journal } from "../../modules/journal/journal";
import { MemoryStorage } from "../../modules/journal/storage";
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

/** The controller writes `text` on the line, as one chunk (each character one byte). */
function feedLine(line: ControllerLine, text: string): void {
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i) & 0xff;
  let given = false;
  line.read = () => (given ? undefined : ((given = true), bytes.buffer as ArrayBuffer));
  line.options.onReadable?.call(line, bytes.length);
}

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
    const feed = (text: string) => feedLine(line, text);
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

  it("a pay refused by a request check (BAD_ASN, BAD_TIMEOUT...) leaves the terminal idle, names nothing, and the next pay works", async () => {
    const s = await start();
    const t = s.running.terminal;
    await s.clock.advance(1000);
    // Each refusal must come before the terminal takes the payment: state, status and order as they were. A request
    // that is malformed and also over the limit is refused, not declined: it never started.
    const refused: [string, { amount: number; order: string; timeoutMs?: number; asn?: string }][] = [
      ["BAD_ASN", { amount: 300, order: "Q-1", asn: "not-an-asn" }],
      ["BAD_ASN", { amount: 300, order: "Q-2", asn: "0".repeat(21) }],
      ["BAD_ASN", { amount: 1_000_000_000, order: "Q-3", asn: "XYZ" }],
      ["BAD_TIMEOUT", { amount: 1_000_000_000, order: "Q-4", timeoutMs: 5 }],
      ["BAD_AMOUNT", { amount: 0, order: "Q-5" }],
      ["BAD_ORDER", { amount: 300, order: "" }],
    ];
    for (const [code, request] of refused) {
      assert.throws(() => t.pay(request), { code });
      const status = t.status();
      assert.equal(t.state, "idle", `state after ${code} (${request.order})`);
      assert.equal(status.event === "status" ? status.state : undefined, "idle", `status after ${code}`);
      assert.equal(status.event === "status" ? status.order : "?", undefined, `status names no order after ${code}`);
      assert.equal(t.cancel(), false, `nothing to cancel after ${code}`);
    }
    await s.clock.advance(5000);
    const named = s.events.filter((e) => "order" in e && typeof e.order === "string" && e.order.startsWith("Q-"));
    assert.deepEqual(named.map((e) => e.event), [], "a refused order gets no event at all");
    await s.clock.run(t.pay({ amount: 300, order: "Q-6", asn: "00000000000000000001" }));
    // The card in the field is another one: declined before INIT, and the terminal is free again.
    assert.equal(finalOf(s.events)?.event, "declined");
    assert.equal(t.state, "idle");
    await s.clock.run(t.pay({ amount: 300, order: "Q-7" }));
    assert.deepEqual(s.events.filter((e) => e.event === "approved").map((e) => "order" in e && e.order), ["Q-7"]);
    assert.equal(s.card.debits, 1);
    s.running.close();
  });

  it("a pay refused on the controller port names its order, unless it repeats the order of the payment under way", async () => {
    const s = await start();
    const line = ControllerLine.last!;
    const feed = (text: string) => feedLine(line, text);
    feed('{"type":"pay","amount":0,"order":"E-1"}\n{"type":"pay","amount":300,"order":"E-2","timeoutMs":5}\n');
    feed('{"type":"pay","amount":300,"order":"E-3"}\n{"type":"pay","amount":300,"order":"E-3"}\n{"type":"pay","amount":300,"order":"E-4"}\n');
    await s.clock.advance(10_000);
    const sent = line.lines.map((l) => JSON.parse(l) as { event: string; code?: string; order?: string });
    const errors = sent.filter((e) => e.event === "error").map((e) => `${e.code} ${e.order ?? "-"}`);
    assert.deepEqual(errors, ["BAD_AMOUNT E-1", "BAD_TIMEOUT E-2", "BUSY -", "BUSY E-4"]);
    // The order under way gets its one final event, and no error.
    assert.deepEqual(sent.filter((e) => e.order === "E-3").map((e) => e.event), ["waiting-for-card", "card-read", "approved"]);
    assert.equal(s.card.debits, 1);
    s.running.close();
  });

  it("a pay sent the moment the answer is read waits for the terminal instead of being refused BUSY", async () => {
    // SDK behaviour (docs/moddable.md, "Promise jobs"): Moddable runs queued promise jobs as one more event among the
    // IO events, so the controller's next request can arrive between the terminal's answer and its becoming idle.
    // The extreme case here: the request comes while the answer is being written.
    const s = await start();
    const line = ControllerLine.last!;
    const feed = (text: string) => feedLine(line, text);
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

  it("a terminal stopped right after DEBIT and started again: a tap at the idle terminal settles the purchase", async () => {
    const first = await start();
    // The journal as a power cut right after DEBIT leaves it: the intent, and no outcome.
    let image: Uint8Array | undefined;
    first.onPhase = (p) => {
      if (p === "debit-sent") image = first.storage.bytes.slice();
    };
    await first.clock.run(first.running.terminal.pay({ amount: 300, order: "K-1" }));
    first.running.close();
    assert.equal(first.card.debits, 1, "the card ran the DEBIT");
    assert.ok(image, "the journal at DEBIT");
    if (!image) return;
    const s = await start(false, { storage: new MemoryStorage(first.storage.size, first.storage.blockSize, image) });
    s.card.balance = first.card.balance;
    s.card.serial = first.card.serial;
    const t = s.running.terminal;
    const ready = s.events.find((e) => e.event === "ready");
    assert.equal(ready?.event === "ready" ? ready.unresolved : undefined, 1, "the restarted terminal keeps the unfinished purchase");
    const polls = () => s.peer.commands.filter((c) => c.code === Command.InListPassiveTarget).length;
    // Idle with nothing in the field: it looks now and then, one bounded poll at a time, and nothing else happens.
    const before = polls();
    await s.clock.advance(10_000);
    const looks = polls() - before;
    assert.ok(looks >= 5 && looks <= 26, `looks for a card at a low duty cycle while a purchase is owed (${looks} in 10 s)`);
    // An hour of looks keeps no timer per look: the terminal holds what it held.
    const held = t.timersHeld;
    const pending = s.clock.pending;
    await s.clock.advance(3600_000);
    assert.ok(t.timersHeld <= held + 1 && s.clock.pending <= pending + 1, `timers: ${held} -> ${t.timersHeld}, on the clock ${pending} -> ${s.clock.pending}`);
    assert.equal(t.state, "idle");
    assert.equal(s.events.filter((e) => e.event === "resolved").length, 0);
    // The customer taps the card at the idle machine, with no payment pending.
    s.field.present = true;
    await s.clock.advance(2000);
    const resolved = s.events.find((e) => e.event === "resolved");
    assert.ok(resolved?.event === "resolved", `the tap settled the purchase (${s.events.map((e) => e.event).join(",")})`);
    if (resolved?.event !== "resolved") return;
    assert.equal(resolved.order, "K-1");
    assert.equal(resolved.result, "approved");
    assert.equal(resolved.tac, TAC);
    assert.equal(t.unresolved, 0);
    assert.equal(s.card.debits, 0, "settled from the card's counter and proof, never debited again");
    await s.clock.advance(1000);
    assert.ok(s.fe.requests.some((r) => r.path === "/v1/purchases/P-1/completion"), "the completion went to the front-end");
    assert.equal(t.pendingCompletions, 0);
    // Nothing owed any more: no more looks, with or without the card in the field.
    s.field.present = false;
    const after = polls();
    await s.clock.advance(10_000);
    assert.equal(polls(), after, "no polling while nothing is owed");
    // And a payment goes on as usual.
    s.field.present = true;
    await s.clock.run(t.pay({ amount: 300, order: "K-2" }));
    assert.equal(finalOf(s.events)?.event, "approved");
    s.running.close();
  });

  it("a payment asked for while the idle terminal looks for a card takes the reader at once", async () => {
    const first = await start();
    let image: Uint8Array | undefined;
    first.onPhase = (p) => {
      if (p === "debit-sent") image = first.storage.bytes.slice();
    };
    await first.clock.run(first.running.terminal.pay({ amount: 300, order: "K-3" }));
    first.running.close();
    const s = await start(false, { storage: new MemoryStorage(first.storage.size, first.storage.blockSize, image) });
    s.card.balance = first.card.balance;
    s.card.serial = first.card.serial;
    await s.clock.advance(1000);
    // The owed card pays a new purchase: the payment's own tap settles the old one first, and both are told.
    s.field.present = true;
    await s.clock.run(s.running.terminal.pay({ amount: 300, order: "K-4" }));
    const names = s.events.filter((e) => e.event !== "ready").map((e) => `${e.event}${"order" in e ? ` ${e.order}` : ""}`);
    assert.deepEqual(names.filter((n) => !n.startsWith("config")), ["waiting-for-card K-4", "resolved K-3", "card-read K-4", "approved K-4"]);
    s.running.close();
    await s.clock.advance(10_000);
    await settle();
    assert.equal(s.clock.pending, 0, `timers left after close: ${s.clock.describe()}`);
  });

  it("a PN532 timeout while a payment waits for the card is a reader-fault, not an error: one final event for the order", async () => {
    const s = await start();
    // The chip answers no InListPassiveTarget for 2 s (no ACK, resends too): the driver times out, then it recovers.
    let dropped = false;
    const until = s.clock.now() + 2000;
    const play = s.peer.onCommand;
    s.peer.onCommand = (c, p) => {
      if (c.code === Command.InListPassiveTarget && s.clock.now() < until) {
        dropped = true;
        return;
      }
      play(c, p);
    };
    await s.clock.run(s.running.terminal.pay({ amount: 300, order: "T2" }));
    assert.ok(dropped);
    const ours = s.events.filter((e) => "order" in e && e.order === "T2");
    // Each failed poll is one reader-fault (the terminal polls on, at a gentler pace): the same event, repeated.
    const kinds = (list: { event: string }[]) => list.map((e) => e.event).filter((e, i, all) => e !== all[i - 1]);
    assert.deepEqual(kinds(ours), ["waiting-for-card", "reader-fault", "card-read", "approved"]);
    const fault = ours[1]!;
    assert.equal(fault.event === "reader-fault" ? fault.code : undefined, "PN532_TIMEOUT");
    assert.equal(s.events.filter((e) => e.event === "error").length, 0, "no error event");
    assert.equal(ours.filter((e) => e.event === "approved" || e.event === "declined" || e.event === "unknown-outcome").length, 1);
    // The controller port carries the same: the only line naming T2 that a controller may take as final is approved.
    const lines = ControllerLine.last!.lines.map((l) => JSON.parse(l) as { event: string; order?: string });
    assert.deepEqual(kinds(lines.filter((e) => e.order === "T2")), ["waiting-for-card", "reader-fault", "card-read", "approved"]);
    assert.equal(s.card.debits, 1);
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
