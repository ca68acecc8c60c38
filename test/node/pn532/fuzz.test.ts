// A million random and mutated frames into the HSU frame parser on each side: the driver's (PN532 -> host frames)
// and the emulator's (host -> PN532 frames, through its whole receive path). No exception may escape, nothing may
// hang, and a good frame must always be understood afterwards.
import assert from "node:assert/strict";
import { toHex } from "../../../modules/bytes/bytes";
import {
  ACK_FRAME, ERROR_FRAME, FrameParser, NACK_FRAME, PN532, TFI_HOST, TFI_PN532, WAKE_UP, encodeFrame, type Frame,
} from "../../../modules/pn532/index";
import { nodeTimers } from "../../../hosts/node/serial";
import { prng, randomBytes } from "../../lib/assert";
import { INSTANT_TIMING, startInMemory } from "../../../tools/sim/pn532sim/index";
import { tunionCard, within } from "./helpers";

const FRAMES = 1_000_000;

/** Command bodies both sides really exchange, as seeds for mutation. */
const HOST_SEEDS = ["02", "1401", "00006C69626E6663", "1214", "0663026303", "08630280", "320101", "3205000102", "4A0100",
  "400100A4040008A00000063201010500", "4401", "5200", "42B2", "60140220100311", "16F0", "04"];
const CHIP_SEEDS = ["0332010607", "15", "4B01010344200704A1B2C3D4E5F6067577810280", "41009000", "4140" + "00".repeat(64), "4500",
  "5300", "1700", "33", "0700000000", "4300A2", "6101201201034420070401020304050606757781028000"];

function hexBytes(h: string): Uint8Array {
  const out = new Uint8Array(h.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(h.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** One random or mutated frame: byte flips, insertions, deletions, truncation, wrong lengths, pure noise. */
function makeFrameSource(seed: number, tfi: number, seeds: string[]) {
  const next = prng(seed);
  const bodies = seeds.map(hexBytes);
  return (): Uint8Array => {
    const r = next() % 100;
    if (r < 10) return randomBytes(next, next() % 48);
    if (r < 14) return [ACK_FRAME, NACK_FRAME, ERROR_FRAME, WAKE_UP][next() & 3]!;
    let body: Uint8Array;
    if (r < 20) body = randomBytes(next, 1 + (next() % 300));
    else body = bodies[next() % bodies.length]!;
    let frame = encodeFrame(next() % 16 ? tfi : next() & 0xff, body, (next() & 15) === 0);
    const m = next() % 8;
    if (m === 0) return frame; // left intact
    if (m <= 3) {
      frame = frame.slice();
      for (let k = 1 + (next() % 3); k > 0; k--) frame[next() % frame.length] = next() & 0xff;
    } else if (m === 4) {
      frame = frame.subarray(0, next() % frame.length);
    } else if (m === 5) {
      const at = next() % frame.length;
      const extra = randomBytes(next, 1 + (next() % 4));
      const out = new Uint8Array(frame.length + extra.length);
      out.set(frame.subarray(0, at));
      out.set(extra, at);
      out.set(frame.subarray(at), at + extra.length);
      frame = out;
    } else if (m === 6) {
      const at = next() % frame.length;
      const out = new Uint8Array(frame.length - 1);
      out.set(frame.subarray(0, at));
      out.set(frame.subarray(at + 1), at);
      frame = out;
    } else {
      frame = frame.slice();
      frame[3] = next() & 0xff; // a lying LEN
    }
    return frame;
  };
}

describe("pn532 fuzz: 1,000,000 frames into each side's frame parser", function () {
  this.timeout(120_000);

  it("driver side: every frame, no exception, resynchronised after every batch", () => {
    const frames: Frame[] = [];
    let faults = 0;
    const parser = new FrameParser({ onFrame: (f) => frames.push(f), onFault: () => faults++ });
    const source = makeFrameSource(0xc0ffee, TFI_PN532, CHIP_SEEDS);
    const good = encodeFrame(TFI_PN532, hexBytes("0332010607"));
    let bytes = 0;
    const t0 = performance.now();
    for (let n = 1; n <= FRAMES; n++) {
      const frame = source();
      bytes += frame.length;
      parser.push(frame);
      if (n % 10_000 === 0) {
        parser.resync();
        frames.length = 0;
        parser.push(good);
        const last = frames.at(-1);
        assert.ok(last && last.kind === "information" && toHex(last.data) === "0332010607", `no resynchronisation after frame ${n}`);
        frames.length = 0;
      }
    }
    const ms = performance.now() - t0;
    assert.ok(parser.frames > 100_000, `only ${parser.frames} frames recognised`);
    assert.ok(faults > 100_000, `only ${faults} faults seen`);
    console.log(`      driver side: ${FRAMES} frames, ${(bytes / 1e6).toFixed(1)} MB in ${ms.toFixed(0)} ms; ${parser.frames} good frames, ${faults} faults`);
  });

  it("emulator side: every frame through its receive path, then a real driver still gets answers", async () => {
    const card = tunionCard();
    const internal: string[] = [];
    const { emulator, serial } = startInMemory({
      cards: [card], timing: INSTANT_TIMING,
      log: (line) => { if (line.startsWith("internal error")) internal.push(line); },
    });
    const source = makeFrameSource(0xbadf00d, TFI_HOST, HOST_SEEDS);
    let bytes = 0;
    const t0 = performance.now();
    for (let n = 1; n <= FRAMES; n++) {
      const frame = source();
      bytes += frame.length;
      emulator.receive(frame);
      // Let the commands that got through run, so their timers do not pile up.
      if (n % 5_000 === 0) await new Promise((r) => setImmediate(r));
    }
    const ms = performance.now() - t0;
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(internal, [], "no exception inside the emulator");
    assert.ok(emulator.stats.frames > 100_000 && emulator.stats.faults > 100_000);
    console.log(`      emulator side: ${FRAMES} frames, ${(bytes / 1e6).toFixed(1)} MB in ${ms.toFixed(0)} ms; ` +
      `${emulator.stats.frames} frames, ${emulator.stats.faults} faults, ${emulator.received.length} commands logged`);
    const pn532 = new PN532({ serial, timers: nodeTimers });
    try {
      const fw = await within(3000, pn532.start());
      assert.equal(fw.ic, 0x32);
      card.place();
      const target = await within(3000, pn532.detect({ timeout: 1000 }));
      assert.equal(toHex(target.uid), toHex(card.uid));
      const r = await within(3000, pn532.transceive(hexBytes("00A4040008A00000063201010500")));
      assert.equal(toHex(r.subarray(r.length - 2)), "9000");
    } finally {
      pn532.close();
      emulator.close();
    }
  });

  it("driver under a stream of noise: every command ends (answer or typed error), none hangs", async () => {
    const { emulator, serial } = startInMemory({ cards: [tunionCard()], timing: INSTANT_TIMING });
    const pn532 = new PN532({ serial, timers: nodeTimers, ackTimeout: 10, responseTimeout: 100, exchangeTimeout: 100 });
    const next = prng(77);
    const noise = makeFrameSource(0x5151, TFI_PN532, CHIP_SEEDS);
    const port = emulator.serial;
    let ok = 0;
    const codes = new Map<string, number>();
    const noiseWritten: Promise<void>[] = [];
    try {
      await pn532.start();
      for (let n = 0; n < 300; n++) {
        // Noise from the "chip" side, written while the command is in flight.
        for (let k = next() % 4; k > 0; k--) {
          const delay = next() % 5;
          noiseWritten.push(new Promise((resolve) => setTimeout(() => { port.write(noise()); resolve(); }, delay)));
        }
        try {
          await within(3000, pn532.getFirmwareVersion());
          ok++;
        } catch (error) {
          const code = (error as { code?: string }).code;
          assert.ok(typeof code === "string" && code.startsWith("PN532_"), `untyped failure: ${String(error)}`);
          codes.set(code, (codes.get(code) ?? 0) + 1);
        }
      }
      // Every noise write has landed (a loaded machine fires them late), and the line has gone quiet, before the last command.
      await Promise.all(noiseWritten);
      await new Promise((r) => setTimeout(r, 20));
      const fw = await within(3000, pn532.getFirmwareVersion());
      assert.equal(fw.ic, 0x32);
      assert.ok(ok > 150, `only ${ok} of 300 commands succeeded under noise (${JSON.stringify([...codes])})`);
    } finally {
      pn532.close();
      emulator.close();
    }
  });
});
