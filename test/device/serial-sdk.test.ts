// SDK serial behaviours the shared code must live with (docs/moddable.md, "Serial writes"), on stand-ins that keep
// to what the SDK's C does:
// - ESP32 (modules/io/serial/esp32/serial.c): write() is all or nothing against the room left in the UART's 128-byte
//   hardware FIFO and throws "output full" past it, so a line longer than 128 bytes could never be written whole;
// - Linux only (modules/io/serial/lin/serial.c): the line is named by a `device` option, and write() takes an
//   ArrayBuffer and nothing else (xsToArrayBuffer), so a Uint8Array throws.
import * as assert from "../lib/assert";
import { ControllerPort } from "../../src/controller";
import { linBuffer, linSerial } from "../../hosts/lin/lin-serial";
import { decodeUtf8 } from "../../modules/bytes/bytes";
import type { SerialOptions } from "../../modules/device/types";
import { VirtualClock } from "../lib/virtual-clock";

const FIFO = 128;
// 115200 baud, 10 bits a byte: 11.52 bytes a millisecond leave the FIFO.
const DRAIN_PER_MS = 11;

function esp32Uart(clock: VirtualClock) {
  const wire: number[] = [];
  class Esp32Uart {
    static writes = 0;
    #fifo = 0;
    constructor(_options: SerialOptions) {
      clock.repeat(() => {
        this.#fifo = Math.max(0, this.#fifo - DRAIN_PER_MS);
      }, 1);
    }
    read() { return undefined; }
    write(data: ArrayBuffer | Uint8Array) {
      const bytes = data instanceof Uint8Array ? data : new Uint8Array(data);
      if (bytes.length > FIFO - this.#fifo) throw new Error("output full");
      this.#fifo += bytes.length;
      Esp32Uart.writes++;
      for (const b of bytes) wire.push(b);
    }
    close() {}
  }
  return { wire, Esp32Uart };
}

describe("SDK serial: ESP32 writes are bounded by the 128-byte UART FIFO", () => {
  it("an event line of 300 bytes reaches the controller whole and in order", async () => {
    const clock = new VirtualClock();
    const { wire, Esp32Uart } = esp32Uart(clock);
    // The SDK behaviour itself: a write larger than the FIFO throws at once.
    assert.throws(() => new Esp32Uart({ baud: 115200 }).write(new Uint8Array(FIFO + 1)), Error);
    const port = new ControllerPort({ serial: { io: Esp32Uart, baud: 115200 }, timers: clock });
    const long = { event: "status", note: "x".repeat(260) };
    port.send(long);
    port.send({ event: "status", note: "after" });
    await clock.advance(200);
    const text = decodeUtf8(new Uint8Array(wire));
    // The first line opens with a break, which ends any fragment a run that died mid-line left on the wire.
    assert.equal(text, `\n${JSON.stringify(long)}\n${JSON.stringify({ event: "status", note: "after" })}\n`);
    assert.ok(Esp32Uart.writes >= 5, `written in ${Esp32Uart.writes} pieces`);
    port.close();
  });
});

describe("SDK serial: the Linux build's serial takes `device` and ArrayBuffers only", () => {
  function linuxSdkSerial() {
    const wire: number[] = [];
    let opened = "";
    class SdkSerial {
      constructor(options: { device?: unknown }) {
        if (typeof options.device !== "string") throw new Error("no device");
        opened = options.device;
      }
      read(): ArrayBuffer | undefined { return undefined; }
      write(data: ArrayBuffer) {
        if (!(data instanceof ArrayBuffer)) throw new TypeError("not an ArrayBuffer");
        for (const b of new Uint8Array(data)) wire.push(b);
      }
      close() {}
    }
    return { wire, SdkSerial, opened: () => opened };
  }

  it("the controller port opens the pty path and its lines go out as ArrayBuffers", async () => {
    const clock = new VirtualClock();
    const { wire, SdkSerial, opened } = linuxSdkSerial();
    assert.throws(() => new SdkSerial({ device: "/x" }).write(new Uint8Array(2) as never), TypeError);
    const port = new ControllerPort({ serial: { io: linSerial(SdkSerial), path: "/tmp/pty-controller", baud: 115200 }, timers: clock });
    assert.equal(opened(), "/tmp/pty-controller");
    const event = { event: "status", note: "y".repeat(100) };
    port.send(event);
    await clock.advance(50);
    assert.equal(decodeUtf8(new Uint8Array(wire)), `\n${JSON.stringify(event)}\n`);
    port.close();
  });

  it("linBuffer passes a whole buffer through and copies only a window's bytes", () => {
    const whole = new Uint8Array([1, 2, 3]);
    assert.equal(linBuffer(whole), whole.buffer);
    const window = new Uint8Array([9, 1, 2, 3, 9]).subarray(1, 4);
    const copy = linBuffer(window);
    assert.equal(copy.byteLength, 3);
    assert.equal(Array.from(new Uint8Array(copy)).join(","), "1,2,3");
    const raw = new ArrayBuffer(4);
    assert.equal(linBuffer(raw), raw);
  });
});
