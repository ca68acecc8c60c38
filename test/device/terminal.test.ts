import * as assert from "../lib/assert";
import { fromHex, toHex } from "../../modules/bytes/bytes";
import type { SerialOptions, SerialPort } from "../../modules/device/types";
import { Journal } from "../../modules/journal/journal";
import { MemoryStorage } from "../../modules/journal/storage";
import { Command } from "../../modules/pn532/commands";
import { assembleTerminal, type RunningTerminal } from "../../src/assemble";
import { readRecord } from "../../src/records";
import { PURCHASE_PHASES, type PurchasePhase, type TerminalEvent } from "../../src/terminal";
import { ScriptedFrontend } from "../lib/scripted-frontend";
import { ScriptedPeer } from "../lib/pn532-peer";
import { settle, VirtualClock } from "../lib/virtual-clock";

// The terminal as a unit, on the device interfaces only, so it runs under mocha and inside XS: the real PN532
// driver, journal, front-end client, forwarder and controller port, on a virtual clock, with the far ends played
// by scripts: the chip and its card (ScriptedPeer answering InDataExchange), the front-end (ScriptedFrontend), and
// the controller's serial line. The end-to-end suites run the same purchase against the real emulator, cards and
// front-end on Node.

const TARGET = fromHex("01 01 0344 20 07 04A1B2C3D4E5F6 06 7577810280");
const FCI = "6F318408A000000632010105A5259F0801029F0C1E01011000FFFFFFFF02010310517007010479138120190718204012310000";
const BASIC_0x15 = "01011000FFFFFFFF02010310517007010479138120190718204012310000";
const MAC2 = "AABBCCDD";
const TAC = "11223344";

/** One electronic-purse card as the terminal sees it through the PN532: its counter moves on each DEBIT it runs. */
class ScriptedCard {
  balance = 5000;
  serial = 7;
  debits = 0;
  answer(apdu: Uint8Array): string {
    switch (apdu[1]) {
      case 0xa4: return FCI + "9000";
      case 0xb0: return BASIC_0x15 + "9000";
      case 0x50: {
        const b = this.balance.toString(16).padStart(8, "0");
        return `${b}${this.serial.toString(16).padStart(4, "0")}000000` + "0100" + "9AC87503" + "9000";
      }
      case 0x54:
        this.debits++;
        this.balance -= 300;
        this.serial++;
        return TAC + MAC2 + "9000";
      case 0x5a: return MAC2 + TAC + "9000";
      default: return "6D00";
    }
  }
}

/** The controller's end of the controller port: what the terminal sends, as parsed lines. */
class ControllerLine implements SerialPort {
  static last: ControllerLine | undefined;
  readonly lines: string[] = [];
  #text = "";
  constructor(readonly options: SerialOptions) {
    ControllerLine.last = this;
  }
  read(): ArrayBuffer | undefined {
    return undefined;
  }
  write(data: ArrayBuffer | Uint8Array): void {
    const bytes = data instanceof Uint8Array ? data : new Uint8Array(data);
    for (const b of bytes) this.#text += String.fromCharCode(b);
    for (let nl = this.#text.indexOf("\n"); nl >= 0; nl = this.#text.indexOf("\n")) {
      this.lines.push(this.#text.slice(0, nl));
      this.#text = this.#text.slice(nl + 1);
    }
  }
  close(): void {}
}

interface System {
  clock: VirtualClock;
  peer: ScriptedPeer;
  card: ScriptedCard;
  fe: ScriptedFrontend;
  storage: MemoryStorage;
  running: RunningTerminal;
  events: TerminalEvent[];
  /** Called with each phase the trace reports. */
  onPhase: (phase: PurchasePhase) => void;
}

async function start(cardPresent = true): Promise<System> {
  const clock = new VirtualClock();
  const peer = new ScriptedPeer(clock);
  const card = new ScriptedCard();
  let present = cardPresent;
  peer.onCommand = (c, p) => {
    if (c.code === Command.GetFirmwareVersion) p.answer(c.code, fromHex("32010607"));
    else if (c.code === Command.InListPassiveTarget) p.answer(c.code, present ? TARGET : fromHex("00"));
    else if (c.code === Command.InDataExchange) p.answer(c.code, fromHex("00" + card.answer(c.params.subarray(1))));
    else p.answer(c.code, c.code === Command.InRelease || c.code === Command.InDeselect ? fromHex("00") : new Uint8Array(0));
  };
  void present;
  const fe = new ScriptedFrontend(clock);
  let tsn = 0;
  fe.script = (r) => {
    if (r.path === "/v1/routes") return { status: 200, body: { version: 1, routes: [{ cityCode: "*", application: "tunion", level: 1, url: "https://fe.test", keyIndex: 1 }] } };
    if (r.path === "/v1/purchases") {
      tsn++;
      return { status: 200, body: { purchaseId: `P-${tsn}`, tsn, date: "20261201", time: "120000", mac1: "01020304", mac2: MAC2 } };
    }
    return { status: 200, body: { status: "completed" } };
  };
  const storage = new MemoryStorage(16 * 1024, 1024);
  const events: TerminalEvent[] = [];
  const system = { clock, peer, card, fe, storage, events, onPhase: (_p: PurchasePhase) => {} } as System;
  const running = await clock.run(assembleTerminal({
    pn532: { io: peer.io }, controller: { io: ControllerLine }, connector: fe, storage, timers: clock,
    clock: { now: () => Date.UTC(2026, 11, 1, 4) },
    trace: (line) => {
      const m = /^ {2}phase: (.+)$/.exec(line);
      if (m) system.onPhase(m[1] as PurchasePhase);
    },
  }, { terminalId: "310001029313", level1Url: "https://fe.test", recoveryWindowMs: 2000, keepWarmMs: 30_000 }, (e) => events.push(e)));
  system.running = running;
  return system;
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
});
