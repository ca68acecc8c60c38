import * as assert from "../lib/assert";
import {
  ApduError, ApduFormatError, ApduProtocolError, decodeCommand, decodeResponse, encodeCommand, encodeResponse,
  statusName, transmit, transmitOk, type Transceiver,
} from "../../modules/iso7816/index";
import { fromHex, toHex } from "../../modules/bytes/bytes";

/** A card that answers from a script, recording what it was sent. */
function scripted(answers: string[]): Transceiver & { sent: string[] } {
  const sent: string[] = [];
  return {
    sent,
    async transceive(command: Uint8Array) {
      sent.push(toHex(command));
      const next = answers.shift();
      if (next === undefined) throw new Error("script ran out");
      return fromHex(next);
    },
  };
}

describe("iso7816: command APDU encoding", () => {
  it("encodes case 1 (header only)", () => {
    assert.hex(encodeCommand({ cla: 0x00, ins: 0xa4, p1: 0x00, p2: 0x00 }), "00A40000");
  });
  it("encodes case 2 with Le, 256 as 00", () => {
    assert.hex(encodeCommand({ cla: 0x80, ins: 0x5c, p1: 0x00, p2: 0x02, le: 4 }), "805C000204");
    assert.hex(encodeCommand({ cla: 0x00, ins: 0xb0, p1: 0x95, p2: 0x00, le: 256 }), "00B0950000");
  });
  it("encodes case 3 with Lc and data", () => {
    assert.hex(encodeCommand({ cla: 0x00, ins: 0xa4, p1: 0x00, p2: 0x00, data: fromHex("1001") }), "00A40000021001");
  });
  it("encodes case 4 with Lc, data and Le", () => {
    assert.hex(encodeCommand({ cla: 0x00, ins: 0xa4, p1: 0x04, p2: 0x00, data: fromHex("A000000632010105"), le: 256 }), "00A4040008A00000063201010500");
  });
  it("refuses data that needs extended length, bad Le and non-byte header fields", () => {
    assert.throws(() => encodeCommand({ cla: 0, ins: 0xd6, p1: 0, p2: 0, data: new Uint8Array(256) }), ApduFormatError);
    assert.throws(() => encodeCommand({ cla: 0, ins: 0xb0, p1: 0, p2: 0, le: 0 }), ApduFormatError);
    assert.throws(() => encodeCommand({ cla: 0, ins: 0xb0, p1: 0, p2: 0, le: 257 }), ApduFormatError);
    assert.throws(() => encodeCommand({ cla: 256, ins: 0xb0, p1: 0, p2: 0 }), ApduFormatError);
    assert.throws(() => encodeCommand({ cla: 0, ins: 1.5, p1: 0, p2: 0 }), ApduFormatError);
  });
  it("decodes all four cases back to what was encoded", () => {
    const cases = [
      { cla: 0x00, ins: 0xa4, p1: 0x00, p2: 0x00 },
      { cla: 0x80, ins: 0x5c, p1: 0x00, p2: 0x02, le: 4 },
      { cla: 0x00, ins: 0xb0, p1: 0x95, p2: 0x00, le: 256 },
      { cla: 0x00, ins: 0xa4, p1: 0x00, p2: 0x00, data: fromHex("1001") },
      { cla: 0x80, ins: 0x50, p1: 0x01, p2: 0x02, data: fromHex("010000100000112233445566"), le: 15 },
      { cla: 0x00, ins: 0xd6, p1: 0x00, p2: 0x00, data: new Uint8Array(255).fill(7), le: 256 },
    ];
    for (const c of cases) assert.deepEqual(decodeCommand(encodeCommand(c)), c);
  });
  it("rejects truncated, overlong and extended-length commands", () => {
    assert.throws(() => decodeCommand(fromHex("00A400")), ApduFormatError);
    assert.throws(() => decodeCommand(fromHex("00A40000031001")), ApduFormatError);
    assert.throws(() => decodeCommand(fromHex("00A400000210010000")), ApduFormatError);
    assert.throws(() => decodeCommand(fromHex("00A4000000000210")), ApduFormatError);
  });
});

describe("iso7816: responses and status words", () => {
  it("splits data and SW1SW2", () => {
    const r = decodeResponse(fromHex("00000F449000"));
    assert.hex(r.data, "00000F44");
    assert.equal(r.sw, 0x9000);
    assert.hex(encodeResponse(fromHex("AB"), 0x6a82), "AB6A82");
  });
  it("rejects a response without a status word", () => {
    assert.throws(() => decodeResponse(fromHex("90")), ApduFormatError);
    assert.throws(() => decodeResponse(new Uint8Array(0)), ApduFormatError);
  });
  it("names the purse status words", () => {
    assert.equal(statusName(0x9401), "insufficient balance");
    assert.equal(statusName(0x9302), "MAC invalid");
    assert.equal(statusName(0x9406), "MAC/TAC not available");
    assert.equal(statusName(0x6a82), "file or application not found");
    assert.equal(statusName(0x610f), "15 more bytes available");
    assert.equal(statusName(0x6c1e), "wrong Le, exact length 30");
    assert.equal(statusName(0x1234), "unknown status");
  });
  it("ApduError carries the status word, its name and a code", () => {
    const e = new ApduError(0x9401, "INITIALIZE FOR PURCHASE");
    assert.equal(e.sw, 0x9401);
    assert.equal(e.code, "APDU_STATUS");
    assert.ok(e.message.includes("9401") && e.message.includes("insufficient balance"), e.message);
  });
});

describe("iso7816: transmit", () => {
  it("follows 61xx with GET RESPONSE and joins the data", async () => {
    const card = scripted(["6104", "AABBCCDD6102", "EEFF9000"]);
    const r = await transmit(card, { cla: 0x80, ins: 0x50, p1: 1, p2: 2, data: new Uint8Array(11), le: 15 });
    assert.hex(r.data, "AABBCCDDEEFF");
    assert.equal(r.sw, 0x9000);
    assert.deepEqual(card.sent.slice(1), ["00C0000004", "00C0000002"]);
  });
  it("re-issues a 6Cxx command with the exact Le", async () => {
    const card = scripted(["6C1E", "01020304059000"]);
    const r = await transmit(card, { cla: 0x00, ins: 0xb0, p1: 0x95, p2: 0, le: 40 });
    assert.deepEqual(card.sent, ["00B0950028", "00B095001E"]);
    assert.hex(r.data, "0102030405");
  });
  it("handles 6Cxx followed by 61xx", async () => {
    const card = scripted(["6C08", "6108", "11223344556677889000"]);
    const r = await transmit(card, { cla: 0x00, ins: 0xca, p1: 0, p2: 0, le: 1 });
    assert.hex(r.data, "1122334455667788");
  });
  it("gives up on a card that loops on 61xx or answers 6Cxx twice", async () => {
    await assert.rejects(transmit(scripted(Array(20).fill("6101")), { cla: 0, ins: 0xb0, p1: 0, p2: 0, le: 1 }), ApduProtocolError);
    await assert.rejects(transmit(scripted(["6C10", "6C10"]), { cla: 0, ins: 0xb0, p1: 0, p2: 0, le: 1 }), ApduProtocolError);
  });
  it("rejects a garbage answer with a typed error", async () => {
    await assert.rejects(transmit(scripted(["90"]), { cla: 0, ins: 0xb0, p1: 0, p2: 0 }), ApduFormatError);
  });
  it("transmitOk throws ApduError unless the status is accepted", async () => {
    await assert.rejects(transmitOk(scripted(["6A82"]), { cla: 0, ins: 0xa4, p1: 4, p2: 0 }, "SELECT"), ApduError, (e) => e.sw === 0x6a82);
    const r = await transmitOk(scripted(["9406"]), { cla: 0x80, ins: 0x5a, p1: 0, p2: 6 }, "PROVE", [0x9406]);
    assert.equal(r.sw, 0x9406);
  });
});

describe("iso7816: hex", () => {
  it("round-trips and rejects non-hex", () => {
    assert.hex(fromHex("00 ff Aa"), "00FFAA");
    assert.equal(toHex(fromHex("0a0b"), " "), "0A 0B");
    assert.throws(() => fromHex("0g"), RangeError);
    assert.throws(() => fromHex("abc"), RangeError);
  });
});
