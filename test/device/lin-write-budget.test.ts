// SDK behaviour (Linux target only, docs/moddable.md): the Linux TCP module takes at most 1,536 bytes per tick and
// throws "would block" above what it reported writable; the TLS client's second handshake flight is 1,574 bytes.
// hosts/lin/write-budget.ts must pass such a write through whole and in order.
import * as assert from "../lib/assert";
import { budgetedTcp } from "../../hosts/lin/write-budget";
import type { TcpOptions } from "../../hosts/esp32/https";
import { VirtualClock } from "../lib/virtual-clock";

describe("Linux build: the SDK's 1,536-byte TCP write budget", () => {
  function linuxTcp(clock: VirtualClock) {
    const wire: number[] = [];
    class LinuxTcp {
      #writable = 0;
      readonly #options: TcpOptions;
      constructor(options: TcpOptions) {
        this.#options = options;
        clock.set(() => this.#refill(), 20);
      }
      #refill() {
        this.#writable = 1536;
        this.#options.onWritable?.(1536);
      }
      read() { return undefined; }
      write(data: unknown) {
        const bytes = data as Uint8Array;
        if (bytes.byteLength > this.#writable) throw new Error("would block");
        this.#writable -= bytes.byteLength;
        wire.push(...bytes);
        clock.set(() => this.#refill(), 20);
        return this.#writable;
      }
      close() {}
    }
    return { wire, LinuxTcp };
  }

  it("a 1,574-byte flight goes out whole, in order, over two ticks", async () => {
    const clock = new VirtualClock();
    const { wire, LinuxTcp } = linuxTcp(clock);
    let ready = 0;
    const Tcp = budgetedTcp(LinuxTcp);
    const socket = new Tcp({ onWritable: (n: number) => { ready = n; } });
    await clock.advance(25);
    assert.equal(ready, 1536);
    const flight = new Uint8Array(1574).map((_, i) => i & 0xff);
    assert.throws(() => new LinuxTcp({}).write(flight), Error); // what the TLS socket hit without the wrapper
    socket.write(flight);
    socket.write(new Uint8Array([0xaa, 0xbb]));
    await clock.advance(100);
    assert.equal(wire.length, 1576);
    for (let i = 0; i < 1574; i++) if (wire[i] !== (i & 0xff)) throw new Error(`byte ${i} out of order`);
    assert.equal(wire[1574], 0xaa);
    assert.equal(wire[1575], 0xbb);
    socket.close();
  });
});
