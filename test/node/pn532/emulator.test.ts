// The emulator byte for byte: a raw host on an in-memory line sends the frames libnfc sends (docs/pn532.md §5) and
// checks the exact bytes that come back, then the control frames, sleep, waiting commands and link timing.
import assert from "node:assert/strict";
import { toHex } from "../../../modules/bytes/bytes";
import type { SerialPort } from "../../../modules/device/types";
import { ACK_FRAME, NACK_FRAME, TFI_HOST, WAKE_UP, encodeFrame } from "../../../modules/pn532/index";
import { INSTANT_TIMING, Pn532Emulator, byteTimeFor, createMemorySerialPair, type EmulatorOptions } from "../../../tools/sim/pn532sim/index";
import { VirtualClock } from "../../lib/virtual-clock";
import { tunionCard } from "./helpers";
import { until } from "../until";

function h(text: string): Uint8Array {
  const clean = text.replace(/\s+/g, "");
  const out = new Uint8Array(clean.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(clean.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** A bare host end: writes bytes, collects what comes back. */
class RawHost {
  received: number[] = [];
  readonly port: SerialPort;
  readonly emulator: Pn532Emulator;
  /** With `options.clock` the line and the emulator run on that clock (a VirtualClock) instead of Node's. */
  constructor(options: Omit<EmulatorOptions, "serial"> = {}) {
    const pair = createMemorySerialPair({ timers: options.clock });
    this.emulator = new Pn532Emulator({ ...options, serial: { io: pair.device, baud: 115200 } });
    const host = this;
    this.port = new pair.host({
      baud: 115200,
      onReadable(this: SerialPort) {
        const b = this.read();
        if (b) host.received.push(...new Uint8Array(b));
      },
    });
  }
  take(): string {
    const out = toHex(new Uint8Array(this.received)).toLowerCase();
    this.received = [];
    return out;
  }
  /** Waits until `length` bytes have come, or `ms` passed. */
  async waitFor(length: number, ms = 1000): Promise<void> {
    const end = performance.now() + ms;
    while (this.received.length < length && performance.now() < end) await new Promise((r) => setTimeout(r, 2));
  }
  async exchange(frame: string, expect: string): Promise<void> {
    this.port.write(h(frame));
    const want = expect.replace(/\s+/g, "").toLowerCase();
    await this.waitFor(want.length / 2);
    await new Promise((r) => setTimeout(r, 5));
    assert.equal(this.take(), want, `answer to ${frame}`);
  }
  close(): void {
    this.port.close();
    this.emulator.close();
  }
}

const ACK = "0000ff00ff00";

describe("pn532 emulator: libnfc's conversation, byte for byte (docs/pn532.md §5.1, §5.2)", () => {
  it("open, list one ISO-DEP card, close", async () => {
    const card = tunionCard(100, undefined, "04A1B2C3D4E5F6");
    const host = new RawHost({ cards: [card], timing: INSTANT_TIMING });
    try {
      host.port.write(WAKE_UP);
      await host.exchange("0000ff03fdd4140117 00", ACK + "0000ff02fed5151600");
      await host.exchange("0000ff09f7d400006c69626e6663be00", ACK + "0000ff09f7d501006c69626e6663bc00");
      await host.exchange("0000ff02fed4022a00", ACK + "0000ff06fad50332010607e800");
      await host.exchange("0000ff03fdd4121406 00", ACK + "0000ff02fed5131800");
      await host.exchange("0000ff0cf4d40663026303630d6338633db000", ACK + "0000ff07f9d507000000000024 00");
      await host.exchange("0000ff08f8d40863028063038059 00", ACK + "0000ff02fed5092200");
      await host.exchange("0000ff04fcd4320100f900", ACK + "0000ff02fed533f800");
      await host.exchange("0000ff04fcd4320101f800", ACK + "0000ff02fed533f800");
      await host.exchange("0000ff06fad43205ffffff f800", ACK + "0000ff02fed533f800");
      await host.exchange("0000ff0ef2d40663026303630563386 33c633d 1900".replace(/ /g, ""), ACK + "0000ff08f8d507808000000000 24 00".replace(/ /g, ""));
      await host.exchange("0000ff06fad4320500 0102f200", ACK + "0000ff02fed533f800");
      await host.exchange("0000ff04fcd44a0100e100", ACK + "0000ff15ebd54b01010344200704a1b2c3d4e5f6067577810280b200");
      await host.exchange("0000ff03fdd4440 0e800".replace(/ /g, ""), ACK + "0000ff03fdd54500e600");
      await host.exchange("0000ff03fdd45200da00", ACK + "0000ff03fdd55300d800");
      await host.exchange("0000ff03fdd416f02600", ACK + "0000ff03fdd5170014 00".replace(/ /g, ""));
      assert.ok(host.emulator.asleep);
    } finally {
      host.close();
    }
  });
  it("answers with exactly one preamble byte and extended frames only for answers over 255 bytes", async () => {
    const host = new RawHost({ timing: INSTANT_TIMING });
    try {
      const data = new Uint8Array(262).fill(0x5a);
      data[0] = 0x00;
      host.port.write(encodeFrame(TFI_HOST, new Uint8Array([0x00, ...data])));
      await host.waitFor(6 + 262 + 1 + 1 + 10);
      const got = host.take();
      assert.equal(got.slice(0, 12), ACK.replace(/ /g, ""));
      assert.equal(got.slice(12, 28), "0000ffffff0108f7", "extended header for 264 bytes");
      host.port.write(encodeFrame(TFI_HOST, new Uint8Array([0x02]), true));
      await host.waitFor(19);
      assert.equal(host.take(), ACK + "0000ff06fad50332010607e800", "an extended command still gets a normal answer");
    } finally {
      host.close();
    }
  });
});

describe("pn532 emulator: control frames, sleep, waiting commands", () => {
  it("NACK gets the last response again; an unknown command or bad parameters get the error frame", async () => {
    const host = new RawHost({ timing: INSTANT_TIMING });
    try {
      await host.exchange("0000ff02fed4022a00", ACK + "0000ff06fad50332010607e800");
      host.port.write(NACK_FRAME);
      await host.waitFor(13);
      assert.equal(host.take(), "0000ff06fad50332010607e800");
      await host.exchange(toHex(encodeFrame(TFI_HOST, h("ff"))), ACK + "0000ff01ff7f8100");
      await host.exchange(toHex(encodeFrame(TFI_HOST, h("1409"))), ACK + "0000ff01ff7f8100");
      await host.exchange(toHex(encodeFrame(TFI_HOST, h("3201"))), ACK + "0000ff01ff7f8100");
    } finally {
      host.close();
    }
  });
  it("an ACK aborts InListPassiveTarget waiting with unbounded retries; so does a new command frame", async () => {
    const card = tunionCard();
    card.remove();
    const host = new RawHost({ cards: [card], timing: INSTANT_TIMING });
    try {
      await host.exchange(toHex(encodeFrame(TFI_HOST, h("3205ffffff"))), ACK + "0000ff02fed533f800");
      host.port.write(encodeFrame(TFI_HOST, h("4a0100")));
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(host.take(), ACK, "only the ACK while no card is there");
      host.port.write(ACK_FRAME);
      await until("the emulator to take the abort", () => host.emulator.stats.aborts > 0);
      host.emulator.place(card);
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(host.take(), "", "nothing after the abort, even when a card comes");
      assert.equal(host.emulator.stats.aborts, 1);
      card.remove();
      host.port.write(encodeFrame(TFI_HOST, h("4a0100")));
      await host.waitFor(6); // its ACK: the emulator is waiting for a card when the next frame comes
      await host.exchange("0000ff02fed4022a00", ACK + ACK + "0000ff06fad50332010607e800");
      host.emulator.place(card);
      await new Promise((r) => setTimeout(r, 30));
      assert.equal(host.take(), "", "the cancelled InListPassiveTarget stays silent");
    } finally {
      host.close();
    }
  });
  it("a card placed while InListPassiveTarget waits is reported at once", async () => {
    const card = tunionCard();
    card.remove();
    const host = new RawHost({ cards: [card], timing: INSTANT_TIMING });
    try {
      await host.exchange(toHex(encodeFrame(TFI_HOST, h("3205ffffff"))), ACK + "0000ff02fed533f800");
      host.port.write(encodeFrame(TFI_HOST, h("4a0100")));
      setTimeout(() => host.emulator.place(card), 60);
      await host.waitFor(6 + 28, 2000);
      assert.match(host.take(), new RegExp(`^${ACK}0000ff15ebd54b0101`));
    } finally {
      host.close();
    }
  });
  it("asleep after PowerDown: frames without 0x55 are ignored; the HSU wake-up brings it back", async () => {
    const host = new RawHost({ timing: INSTANT_TIMING });
    try {
      await host.exchange("0000ff03fdd416f02600", ACK + "0000ff03fdd5170014 00".replace(/ /g, ""));
      await until("the emulator to power down", () => host.emulator.asleep);
      host.port.write(h("0000ff02fed4022a00"));
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(host.take(), "", "no ACK while asleep");
      host.port.write(WAKE_UP);
      await host.exchange("0000ff03fdd4140117 00".replace(/ /g, ""), ACK + "0000ff02fed5151600");
      assert.equal(host.emulator.stats.wakeUps, 1);
    } finally {
      host.close();
    }
  });
  it("InAutoPoll answers with the ISO14443-4A target when a card arrives, 61 00 when the polls run out", async () => {
    const card = tunionCard();
    card.remove();
    const host = new RawHost({ cards: [card], timing: { ...INSTANT_TIMING, pollPeriodUnit: 10 } });
    try {
      host.port.write(encodeFrame(TFI_HOST, h("6002011020")));
      await host.waitFor(6 + 10, 2000);
      assert.equal(host.take(), ACK + toHex(encodeFrame(0xd5, h("6100"))).toLowerCase());
      host.port.write(encodeFrame(TFI_HOST, h("60ff011020")));
      setTimeout(() => host.emulator.place(card), 40);
      await host.waitFor(6 + 30, 2000);
      const got = host.take();
      assert.ok(got.startsWith(ACK + "0000ff"), got);
      assert.ok(got.includes("d5610120120103442007" + toHex(card.uid).toLowerCase() + "067577810280"), got);
    } finally {
      host.close();
    }
  });
  it("presence check: InCommunicateThru R(NAK) gets R(ACK) while the card is there, status 01 once it is gone", async () => {
    const card = tunionCard();
    const host = new RawHost({ cards: [card], timing: INSTANT_TIMING });
    try {
      host.port.write(encodeFrame(TFI_HOST, h("4a0100")));
      await host.waitFor(6 + 28);
      host.take();
      await host.exchange(toHex(encodeFrame(TFI_HOST, h("42b2"))), ACK + toHex(encodeFrame(0xd5, h("4300a2"))));
      host.emulator.remove(card);
      await host.exchange(toHex(encodeFrame(TFI_HOST, h("42b2"))), ACK + toHex(encodeFrame(0xd5, h("4301"))));
      await host.exchange(toHex(encodeFrame(TFI_HOST, h("400100a4040000"))), ACK + toHex(encodeFrame(0xd5, h("4127"))));
    } finally {
      host.close();
    }
  });
});

describe("pn532 emulator: timing", () => {
  // On a virtual clock shared by the line and the emulator, modelled times are exact and the machine's load cannot
  // stretch them: each answer is checked just before and just after the moment the model says it arrives.
  it("byteTimeFor(baud) is 10 bits a byte, and the line model delays answers by their wire time", async () => {
    assert.equal(byteTimeFor(115200).toFixed(4), "0.0868");
    assert.equal(byteTimeFor(9600).toFixed(4), "1.0417");
    const { byteTime: _instant, ...instant } = INSTANT_TIMING;
    const clock = new VirtualClock();
    const host = new RawHost({ timing: { ...instant, baud: 9600 }, clock });
    assert.equal(host.emulator.timing.byteTime, byteTimeFor(9600));
    try {
      host.port.write(h("0000ff02fed4022a00"));
      // 9 bytes in, then the 6-byte ACK and the 13-byte answer out at 1.04 ms a byte: 15 and 28 byte times.
      await clock.advance(15 * byteTimeFor(9600) - 0.01);
      assert.equal(host.received.length, 0, "nothing before the ACK's last byte has left");
      await clock.advance(0.02);
      assert.equal(host.take(), ACK);
      await clock.advance(13 * byteTimeFor(9600) - 0.02);
      assert.equal(host.received.length, 0, "nothing before the answer's last byte has left");
      await clock.advance(0.02);
      assert.equal(host.take(), "0000ff06fad50332010607e800");
    } finally {
      host.close();
    }
  });
  it("card processing time per command comes from the timing table, changeable while running", async () => {
    const card = tunionCard();
    const clock = new VirtualClock();
    const host = new RawHost({ cards: [card], timing: { ...INSTANT_TIMING, cardProcessing: { 0xa4: 120 }, defaultCardProcessing: 0 }, clock });
    try {
      host.port.write(encodeFrame(TFI_HOST, h("4a0100")));
      await clock.advance(0);
      assert.equal(host.received.length, 34, "ACK and the activated card, at once with instant timing");
      host.take();
      const select = encodeFrame(TFI_HOST, h("400100a4040008a00000063201010500"));
      host.port.write(select);
      await clock.advance(119.99);
      assert.equal(host.take(), ACK, "only the ACK while the card works its 120 ms on SELECT");
      await clock.advance(0.02);
      const answer = host.take();
      assert.match(answer, /^0000ff....d54100.*9000..00$/, "the card's answer once the 120 ms are up");
      host.emulator.setTiming({ cardProcessing: { 0xa4: 0 } });
      host.port.write(select);
      await clock.advance(0);
      assert.equal(host.take(), ACK + answer, "ACK and answer at once after the change");
    } finally {
      host.close();
    }
  });
});
