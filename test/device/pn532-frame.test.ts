import * as assert from "../lib/assert";
import { fromHex, toHex } from "../../modules/bytes/bytes";
import {
  ACK_FRAME, ERROR_FRAME, FrameParser, NACK_FRAME, TFI_HOST, TFI_PN532, encodeFrame, frameLength, type Frame, type FrameFault,
} from "../../modules/pn532/index";

function collect(maxLength?: number): { parser: FrameParser; frames: Frame[]; faults: FrameFault[] } {
  const frames: Frame[] = [];
  const faults: FrameFault[] = [];
  const parser = new FrameParser({ onFrame: (f) => frames.push(f), onFault: (f) => faults.push(f), maxLength });
  return { parser, frames, faults };
}

function describeFrame(f: Frame): string {
  return f.kind === "information" ? `${toHex(new Uint8Array([f.tfi]))}:${toHex(f.data)}${f.extended ? "x" : ""}` : f.kind;
}

describe("pn532 frame codec: encoding (bytes from docs/pn532.md §1, §5)", () => {
  it("normal information frames as libnfc sends and a PN532 answers them", () => {
    assert.hex(encodeFrame(TFI_HOST, fromHex("02")), "0000FF02FED4022A00");
    assert.hex(encodeFrame(TFI_PN532, fromHex("0332010607")), "0000FF06FAD50332010607E800");
    assert.hex(encodeFrame(TFI_HOST, fromHex("1401")), "0000FF03FDD4140117 00");
    assert.hex(encodeFrame(TFI_HOST, fromHex("00006C69626E6663")), "0000FF09F7D400006C69626E6663BE00");
    assert.hex(encodeFrame(TFI_PN532, fromHex("4B01010344200704A1B2C3D4E5F6067577810280")),
      "0000FF15EBD54B01010344200704A1B2C3D4E5F6067577810280B200");
  });
  it("extended frames from 255 bytes of TFI + data on, or when forced", () => {
    const apdu = new Uint8Array(261).fill(0x11);
    const body = new Uint8Array(3 + apdu.length);
    body.set([0x40, 0x01], 0);
    body.set(apdu, 2);
    const frame = encodeFrame(TFI_HOST, body.subarray(0, 263));
    assert.hex(frame.subarray(0, 9), "0000FFFFFF0108F7D4");
    assert.equal(frame.length, frameLength(263));
    assert.equal(frame.length, 274);
    assert.hex(encodeFrame(TFI_HOST, fromHex("02"), true), "0000FFFFFF0002FED4022A00");
    const longest = encodeFrame(TFI_HOST, new Uint8Array(254));
    assert.equal(longest[3], 0xff, "254 data bytes + TFI still fit a normal frame");
    assert.equal(longest[4], 0x01);
    assert.equal(encodeFrame(TFI_HOST, new Uint8Array(255))[3], 0xff);
    assert.equal(encodeFrame(TFI_HOST, new Uint8Array(255))[4], 0xff);
  });
  it("the fixed ACK, NACK and error frames", () => {
    assert.hex(ACK_FRAME, "0000FF00FF00");
    assert.hex(NACK_FRAME, "0000FFFF0000");
    assert.hex(ERROR_FRAME, "0000FF01FF7F8100");
  });
});

describe("pn532 frame codec: streaming parser", () => {
  it("finds ACK, NACK, error and information frames", () => {
    const { parser, frames, faults } = collect();
    parser.push(ACK_FRAME);
    parser.push(NACK_FRAME);
    parser.push(ERROR_FRAME);
    parser.push(fromHex("0000FF06FAD50332010607E800"));
    assert.deepEqual(frames.map(describeFrame), ["ack", "nack", "error", "D5:0332010607"]);
    assert.equal(faults.length, 0);
  });
  it("accepts any number of preamble bytes, the HSU wake-up, and frames split at every byte", () => {
    const { parser, frames } = collect();
    const stream = fromHex("5555" + "00".repeat(14) + "00000000FF03FDD4140117" + "00" + "0000FF02FED4022A");
    for (const b of stream) parser.push(new Uint8Array([b]));
    assert.deepEqual(frames.map(describeFrame), ["D4:1401", "D4:02"]);
  });
  it("works without postamble (fRemovePrePostAmble) and across back-to-back frames in one chunk", () => {
    const { parser, frames } = collect();
    parser.push(fromHex("00FF00FF" + "00FF02FED5132A" + "00FF02FED51318"));
    assert.deepEqual(frames.map(describeFrame), ["ack", "D5:13"]);
    assert.equal(parser.faults, 1, "the second frame's DCS (2A) was wrong for D5 13");
  });
  it("skips garbage (an arygon probe) and resynchronises", () => {
    const { parser, frames } = collect();
    parser.push(fromHex("30617200FF1234"));
    parser.push(ACK_FRAME);
    assert.deepEqual(frames.map(describeFrame), ["ack"]);
  });
  it("reports a bad LCS and a bad DCS, and recovers the frame that follows", () => {
    const { parser, frames, faults } = collect();
    parser.push(fromHex("0000FF03FCD4140117 00"));
    parser.push(fromHex("0000FF03FDD4140118 00"));
    parser.push(fromHex("0000FF02FED4022A00"));
    assert.deepEqual(faults, ["lcs", "dcs"]);
    assert.deepEqual(frames.map(describeFrame), ["D4:02"]);
  });
  it("finds a real frame that starts inside a truncated one", () => {
    const { parser, frames, faults } = collect();
    // A response cut off after 4 of its 20 data bytes, then an ACK and a whole response: the cut frame swallows them
    // as data, fails its DCS, and the replay finds both.
    parser.push(fromHex("0000FF15EBD54B0101"));
    parser.push(ACK_FRAME);
    parser.push(fromHex("0000FF06FAD50332010607E800"));
    parser.push(new Uint8Array(8));
    assert.equal(faults[0], "dcs");
    assert.deepEqual(frames.map(describeFrame), ["ack", "D5:0332010607"]);
  });
  it("resync() drops a half-received frame and rescans it", () => {
    const { parser, frames } = collect();
    parser.push(fromHex("0000FF40C0D5"));
    parser.push(ACK_FRAME);
    assert.equal(frames.length, 0);
    assert.ok(parser.busy);
    parser.resync();
    assert.deepEqual(frames.map(describeFrame), ["ack"]);
    assert.ok(!parser.busy);
  });
  it("parses extended frames and refuses lengths over the limit", () => {
    const { parser, frames, faults } = collect();
    const data = new Uint8Array(300);
    data[0] = 0x41;
    for (let i = 1; i < data.length; i++) data[i] = i & 0xff;
    parser.push(encodeFrame(TFI_PN532, data.subarray(0, 260)));
    assert.equal(frames.length, 1);
    const f = frames[0]!;
    assert.ok(f.kind === "information" && f.extended && f.data.length === 260 && f.data[259] === 259 % 256);
    parser.push(fromHex("0000FFFFFF0FFFF2"));
    assert.deepEqual(faults, ["length"]);
    parser.push(ACK_FRAME);
    assert.equal(frames[1]!.kind, "ack");
  });
  it("treats LEN 0 with LCS 0 as corruption, not a frame", () => {
    const { parser, frames, faults } = collect();
    parser.push(fromHex("0000FF0000D400"));
    assert.equal(frames.length, 0);
    assert.deepEqual(faults, ["lcs"]);
  });
});

describe("pn532 frame codec: fuzz inside the device runtime (the 1,000,000-frame run is a host test)", () => {
  it("20,000 random and mutated frames: no exception, and a good frame is always found afterwards", async () => {
    const next = assert.prng(0x5eed532);
    const { parser, frames } = collect();
    const good = encodeFrame(TFI_PN532, fromHex("0332010607"));
    for (let n = 0; n < 20_000; n++) {
      const r = next();
      let bytes: Uint8Array;
      if (r % 3 === 0) bytes = assert.randomBytes(next, next() % 40);
      else {
        bytes = encodeFrame(next() & 1 ? TFI_PN532 : TFI_HOST, assert.randomBytes(next, next() % 300), (next() & 7) === 0);
        for (let k = next() % 4; k > 0; k--) bytes[next() % bytes.length] = next() & 0xff;
        if (next() & 1) bytes = bytes.subarray(0, next() % bytes.length);
      }
      parser.push(bytes);
      if (n % 1000 === 999) {
        parser.resync();
        const before = frames.length;
        parser.push(good);
        const last = frames[frames.length - 1];
        assert.ok(frames.length > before && last && describeFrame(last) === "D5:0332010607", `no resync after frame ${n}`);
      }
    }
  });
});
