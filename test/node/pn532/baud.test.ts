// The HSU line rate: SetSerialBaudRate the manual's way, the fallback when the chip cannot follow, a chip that resets
// at the raised rate, and a host that cannot change its rate. On an in-memory line whose ends garble bytes sent at
// another rate than they listen at, and on a pty (where only the emulator's timing model changes).
import assert from "node:assert/strict";
import { encodeCommand } from "../../../modules/iso7816/apdu";
import { Command, Pn532TimeoutError, type LineEvent } from "../../../modules/pn532/index";
import { TUNION_APPLICATION } from "../../../modules/purse/index";
import { hasSocat, memoryRig, ptyRig, tunionCard, within, type Rig, type RigOptions } from "./helpers";

const select = encodeCommand({ cla: 0, ins: 0xa4, p1: 4, p2: 0, data: TUNION_APPLICATION.aid, le: 256 });

function suite(kind: "pty" | "memory") {
  const make = (options: RigOptions) => (kind === "pty" ? ptyRig(options) : memoryRig(options));
  return function (this: Mocha.Suite) {
    let rig: Rig | undefined;
    before(function () {
      if (kind === "pty" && !hasSocat()) this.skip();
    });
    afterEach(async () => {
      await rig?.close();
      rig = undefined;
    });

    it("start() raises the line to 921,600 (answer, host ACK, both switch) and proves it with an echo", async () => {
      const events: LineEvent[] = [];
      rig = await make({ cards: [tunionCard()], rates: [921600, 460800], driver: { onLine: (e) => events.push(e) } });
      await within(3000, rig.pn532.start());
      assert.equal(rig.pn532.baud, 921600);
      assert.equal(rig.emulator.baud, 921600);
      assert.deepEqual(events, [{ kind: "raised", baud: 921600 }]);
      const codes = rig.emulator.received.map((c) => c.code);
      const at = codes.indexOf(Command.SetSerialBaudRate);
      assert.equal(rig.emulator.received[at]!.params[0], 0x07);
      assert.equal(codes[at + 1], Command.Diagnose, "the check exchange comes right after the switch");
      await rig.pn532.detect({ timeout: 500 });
      const r = await within(3000, rig.pn532.transceive(select));
      assert.equal(r.at(-2), 0x90);
    });

    it("a host that cannot set the rate never asks the chip to change", async () => {
      rig = await make({ cards: [tunionCard()] });
      await within(3000, rig.pn532.start());
      assert.equal(rig.pn532.baud, 115200);
      assert.ok(!rig.emulator.received.some((c) => c.code === Command.SetSerialBaudRate));
    });

    it("a chip that refuses the rate, or answers but stays at 115,200: fallback with a wake-up, and it says so", async () => {
      const events: LineEvent[] = [];
      rig = await make({ cards: [tunionCard()], rates: [921600], emulator: { baudSwitch: "refuse" }, driver: { onLine: (e) => events.push(e) } });
      await within(3000, rig.pn532.start());
      assert.equal(rig.pn532.baud, 115200);
      assert.equal(events[0]?.kind, "fallback");
      await rig.close();
      rig = undefined;
      if (kind === "pty") return; // a pty carries any rate: a chip that stays behind is only visible where rates garble
      events.length = 0;
      rig = await make({ cards: [tunionCard()], rates: [921600], emulator: { baudSwitch: "ignore" }, driver: { onLine: (e) => events.push(e), responseTimeout: 300 } });
      await within(5000, rig.pn532.start());
      assert.equal(rig.pn532.baud, 115200);
      assert.deepEqual(events.map((e) => e.kind), ["fallback"]);
      const codes = rig.emulator.received.map((c) => c.code);
      assert.equal(codes[codes.indexOf(Command.SetSerialBaudRate) + 1], Command.SAMConfiguration, "woken again at 115,200");
      await rig.pn532.detect({ timeout: 500 });
      assert.equal((await within(3000, rig.pn532.transceive(select))).at(-2), 0x90);
    });

    it("a PN532 that resets at the raised rate: one typed error, then the line is found at 115,200 and raised again", async function () {
      if (kind === "pty") this.skip(); // a pty carries any rate: the reset is only visible where rates garble
      const events: LineEvent[] = [];
      rig = await make({ cards: [tunionCard()], rates: [921600], driver: { onLine: (e) => events.push(e), ackTimeout: 20, responseTimeout: 300 } });
      await within(3000, rig.pn532.start());
      assert.equal(rig.pn532.baud, 921600);
      rig.emulator.reset();
      await assert.rejects(within(3000, rig.pn532.getFirmwareVersion()), (e) => e instanceof Pn532TimeoutError && e.phase === "ack");
      const fw = await within(5000, rig.pn532.getFirmwareVersion());
      assert.equal(fw.ic, 0x32);
      assert.deepEqual(events.map((e) => e.kind), ["raised", "reset", "raised"]);
      assert.equal(rig.pn532.baud, 921600);
      assert.equal(rig.emulator.baud, 921600);
      await rig.pn532.detect({ timeout: 500 });
      assert.equal((await within(3000, rig.pn532.transceive(select))).at(-2), 0x90);
    });

    it("ISO-DEP moves to 424 kbps after activation (InPSL), stays at 106 when refused, and drops back when RF errors rise", async () => {
      const events: LineEvent[] = [];
      rig = await make({ cards: [tunionCard()], driver: { onLine: (e) => events.push(e) } });
      await within(3000, rig.pn532.start());
      await within(3000, rig.pn532.detect({ timeout: 500 }));
      assert.equal(rig.pn532.bitRate, 424);
      const psl = rig.emulator.received.find((c) => c.code === Command.InPSL)!;
      assert.deepEqual([...psl.params], [0x01, 0x02, 0x02]);
      if (kind === "memory") assert.equal([...await rig.pn532.readRegister([0x6302, 0x6303])].map((b) => b.toString(16)).join(","), "a0,a0", "CIU speed bits at 424");
      assert.equal((await within(3000, rig.pn532.transceive(select))).at(-2), 0x90);
      // Two RF errors in a row at 424: back to 106 for this card.
      rig.emulator.injectFault({ kind: "status", status: 0x02, count: 2 });
      await assert.rejects(within(3000, rig.pn532.transceive(select)), { code: "PN532_RF_ERROR" });
      await assert.rejects(within(3000, rig.pn532.transceive(select)), { code: "PN532_RF_ERROR" });
      assert.equal(rig.pn532.bitRate, 106);
      assert.deepEqual([...rig.emulator.received.filter((c) => c.code === Command.InPSL).at(-1)!.params], [0x01, 0x00, 0x00]);
      assert.equal((await within(3000, rig.pn532.transceive(select))).at(-2), 0x90);
      // A chip (or card) that cannot go above 106: the InPSL is refused, the tap goes on at 106.
      rig.emulator.maxBitRate = 106;
      await within(3000, rig.pn532.detect({ timeout: 500 }));
      assert.equal(rig.pn532.bitRate, 106);
      const last = events.at(-1);
      assert.ok(last?.kind === "bit-rate" && last.kbps === 106 && /refused/.test(last.reason ?? ""), JSON.stringify(last));
      assert.equal((await within(3000, rig.pn532.transceive(select))).at(-2), 0x90);
    });
  };
}

describe("pn532 line rate over an in-memory line", suite("memory"));
describe("pn532 line rate over a pty pair (socat)", suite("pty"));
