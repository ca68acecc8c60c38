import assert from "node:assert/strict";
import { hasSocat } from "../../../hosts/node/pty";
import { NodeSerial } from "../../../hosts/node/serial";
import type { SerialOptions } from "../../../modules/device/types";
import { FrameParser, type Frame } from "../../../modules/pn532/frame";
import type { VirtualCard } from "../../../tools/sim/cardsim/card";
import { FaultTally, checkAfterFault, nextOrder, payAndWait, retapUntilResolved } from "../../../tools/rigs/harness/faults";
import { Rig } from "../../../tools/rigs/harness/rig";

// Card tears: the card leaves at every APDU of a purchase (before the card processes it, or after it committed and
// before its answer), at every APDU of the recovery that follows a torn DEBIT, and at every PN532 frame boundary
// (command frame in, ACK out, response out) on the serial line of a real process terminal.

type Watcher = (direction: "to-pn532" | "from-pn532", frame: Frame) => void;
let watcher: Watcher | undefined;

/** The emulator's end of the PN532 line, watching whole frames go by in both directions. */
class FrameWatchSerial extends NodeSerial {
  readonly #in = new FrameParser({ onFrame: (f) => watcher?.("to-pn532", f) });
  readonly #out = new FrameParser({ onFrame: (f) => watcher?.("from-pn532", f) });

  constructor(options: SerialOptions) {
    super(options);
  }

  override read(): ArrayBuffer | undefined {
    const bytes = super.read();
    // The frame has arrived whole; the emulator has not seen it yet.
    if (bytes) this.#in.push(new Uint8Array(bytes));
    return bytes;
  }

  override write(data: ArrayBuffer | Uint8Array): void {
    super.write(data);
    this.#out.push(data instanceof Uint8Array ? data : new Uint8Array(data));
  }
}

describe("fault injection: card tears at every APDU and every frame boundary", function () {
  this.timeout(300_000);
  let rig: Rig;

  before(async function () {
    if (!hasSocat()) this.skip();
    // Real line timing (115200 baud, ACK 0.5 ms after the frame) so each frame boundary is a distinct moment; short
    // card times to keep the run quick.
    rig = await Rig.start({ attach: true, pn532Io: FrameWatchSerial, timing: { cardProcessing: () => 3, defaultCardProcessing: 3, frameWaitingTime: 20 } });
    assert.equal(await rig.startTerminal({ recoveryWindowMs: 5000 }), "ready");
    // The terminal raised the line with SetSerialBaudRate: every tear below happens at 921,600 baud.
    assert.equal(rig.emulator!.baud, 921600, rig.terminalLog.filter((l) => l.includes("PN532")).join("\n"));
  });
  after(async () => {
    watcher = undefined;
    await rig?.close();
  });

  /** One payment with a card whose trouble is already armed; brings it back while the outcome is open. */
  async function tornPayment(card: VirtualCard, prepare?: () => void): Promise<string> {
    const order = nextOrder("TEAR");
    rig.emulator!.place(card);
    prepare?.();
    const final = await payAndWait(rig, 300, order, 1000);
    if (final?.event === "unknown-outcome") await retapUntilResolved(rig, card, order);
    if (card.present) rig.emulator!.remove(card);
    return final?.event === "declined" ? `declined (${String(final.reason)})` : String(final?.event);
  }

  function probeApdus(layout: "tunion" | "cityunion"): Promise<number[]> {
    const card = rig.addCard({ layout });
    return tornPayment(card).then((result) => {
      assert.equal(result, "approved");
      return card.exchanges.map((x) => x.command[1]!);
    });
  }

  it("a tear at any APDU of a purchase, at either level, never loses or doubles a charge", async () => {
    const tally = new FaultTally("card tear at every APDU of a purchase");
    for (const layout of ["tunion", "cityunion"] as const) {
      const apdus = await probeApdus(layout);
      assert.ok(apdus.includes(0x54), `the purchase sent DEBIT: ${apdus.map((i) => i.toString(16))}`);
      for (const [j, ins] of apdus.entries()) {
        const occurrence = apdus.slice(0, j + 1).filter((i) => i === ins).length;
        for (const when of ["before", "after"] as const) {
          const card = rig.addCard({ layout });
          card.armTear({ command: ins, when, occurrence });
          const result = await tornPayment(card);
          tally.add(`${layout} APDU ${j + 1} (INS ${ins.toString(16)}) torn ${when}: ${result}`, await checkAfterFault(rig, card, 5000));
        }
      }
    }
    console.log(`      ${tally.line()}`);
    // 3 APDUs on a T-Union card, 4 on a city card (its SELECT of the T-Union AID first): file 0x15 comes from the FCI.
    assert.ok(tally.points >= 14, `only ${tally.points} points`);
    assert.deepEqual(tally.violations, []);
  });

  it("a tear at any APDU of the recovery after a torn DEBIT is settled by the next tap", async () => {
    const tally = new FaultTally("card tear at every APDU of a recovery");
    // Which APDUs a recovery sends: SELECT, INIT, GET TRANSACTION PROVE (file 0x15 comes from the FCI).
    const probe = rig.addCard();
    probe.armTear({ command: "debit", when: "after" });
    await tornPayment(probe);
    const debitAt = probe.exchanges.findIndex((x) => x.command[1] === 0x54);
    const recovery = probe.exchanges.slice(debitAt + 1).map((x) => x.command[1]!);
    assert.ok(recovery.includes(0x5a), `the recovery asked for the proof: ${recovery.map((i) => i.toString(16))}`);
    for (const [j, ins] of recovery.entries()) {
      const occurrence = recovery.slice(0, j + 1).filter((i) => i === ins).length;
      for (const when of ["before", "after"] as const) {
        const card = rig.addCard();
        card.armTear({ command: "debit", when: "after" });
        // Counted from the start of the purchase: the recovery's n-th SELECT comes after the purchase's own.
        const inPurchase = probe.exchanges.slice(0, debitAt).filter((x) => x.command[1] === ins).length;
        card.armTear({ command: ins, when, occurrence: inPurchase + occurrence });
        const result = await tornPayment(card);
        tally.add(`recovery APDU ${j + 1} (INS ${ins.toString(16)}) torn ${when}: ${result}`, await checkAfterFault(rig, card, 5000));
      }
    }
    console.log(`      ${tally.line()}`);
    assert.deepEqual(tally.violations, []);
  });

  it("once a torn purchase is resolved the terminal takes the next payment at once (no BUSY while it lets the card go)", async () => {
    const card = rig.addCard();
    card.armTear({ command: "debit", when: "after" });
    const order = nextOrder("TEAR");
    rig.emulator!.place(card);
    assert.equal((await payAndWait(rig, 300, order, 1000))?.event, "unknown-outcome");
    // A slow InRelease (0x52) widens the moment between the resolved event and the card being let go.
    rig.emulator!.injectFault({ kind: "late", command: 0x52, ms: 300 });
    const link = rig.controller!;
    const next = nextOrder("TEAR");
    link.onEvent = (e) => {
      if (e.event === "resolved" && e.order === order) link.send({ type: "pay", amount: 100, order: next, timeoutMs: 2000 });
    };
    try {
      await retapUntilResolved(rig, card, order);
      const answer = await link.next((e) => (e.event === "error" && e.code === "BUSY") || (e.order === next && e.event === "waiting-for-card"), 5000);
      assert.equal(answer.event, "waiting-for-card", `the payment sent right after resolved was refused: ${JSON.stringify(answer)}`);
      const final = await link.next((e) => e.order === next && (e.event === "approved" || e.event === "declined"), 10_000);
      assert.equal(final.event, "approved");
    } finally {
      link.onEvent = undefined;
      rig.emulator!.clearFaults();
      if (card.present) rig.emulator!.remove(card);
    }
    assert.deepEqual(await checkAfterFault(rig, card, 5000), []);
  });

  it("the card leaving at any PN532 frame boundary of a purchase never loses or doubles a charge", async () => {
    const tally = new FaultTally("card removed at every PN532 frame boundary");
    let frames: string[] = [];
    watcher = (direction, frame) => frames.push(`${direction} ${frame.kind}${frame.kind === "information" ? ` ${frame.data[0]!.toString(16)}` : ""}`);
    const probe = rig.addCard();
    frames = [];
    assert.equal(await tornPayment(probe), "approved");
    const total = frames.length;
    const layout = frames;
    assert.ok(total >= 15, `a purchase took only ${total} frames`);
    for (const b of layout.keys()) {
      const card = rig.addCard();
      let seen = 0;
      watcher = () => {
        if (++seen === b + 1 && card.present) rig.emulator!.remove(card);
      };
      const result = await tornPayment(card);
      watcher = undefined;
      tally.add(`removed after frame ${b + 1} of ${total} (${layout[b]}): ${result}`, await checkAfterFault(rig, card, 5000));
    }
    console.log(`      ${tally.line()}`);
    assert.deepEqual(tally.violations, []);
  });
});

