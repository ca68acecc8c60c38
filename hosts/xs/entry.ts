/**
 * The XS side of the XS purchase: the terminal (src/ + modules/, assembled by src/assemble) on the forwarding
 * device of ./device. The parent starts it with {t:"start"}, then ticks it; after each tick the worker says when its
 * next timer is due.
 */
import { toHex, fromHex } from "../../modules/bytes/bytes";
import { MemoryStorage, PowerCut, type JournalStorage } from "../../modules/journal/storage";
import type { TerminalConfig } from "../../src/terminal";
import { assembleTerminal, type RunningTerminal } from "../../src/assemble";
import { BridgeConnector, ParentClock, bridgeSerial, decodeCommand, deliver, send, type Incoming } from "./device";

declare const setImmediate: (callback: () => void) => void;
declare const gc: () => void;

type Command =
  | { t: "start"; now: number; wall: number; config: TerminalConfig; journalSize: number; journal?: string; trace?: boolean; indicator?: { red: number; green: number; blue: number; buzzer: number } }
  | { t: "cut-power"; atWrite: number }
  | { t: "tick"; now: number; wall: number; inputs: Incoming[]; gc?: boolean }
  | { t: "gc" };

const clock = new ParentClock();
let running: RunningTerminal | undefined;

/**
 * The journal's flash, kept by the parent across restarts as a device's flash outlives a reset: every write and
 * erase that lands is sent to it. A power cut armed at the n-th write from now (cut-power) lands nothing and tells
 * the parent, which kills this worker.
 */
class ForwardedFlash implements JournalStorage {
  readonly #memory: MemoryStorage;
  #writes = 0;
  #cutAt = 0;
  constructor(size: number, image: Uint8Array | undefined) {
    this.#memory = new MemoryStorage(size, 4096, image);
  }
  get size(): number {
    return this.#memory.size;
  }
  get blockSize(): number {
    return this.#memory.blockSize;
  }
  cutAt(writesFromNow: number): void {
    this.#cutAt = this.#writes + writesFromNow;
  }
  read(offset: number, length: number): Uint8Array {
    return this.#memory.read(offset, length);
  }
  write(offset: number, bytes: Uint8Array): void {
    this.#land();
    this.#memory.write(offset, bytes);
    send({ k: "flash", offset, hex: toHex(bytes) });
  }
  eraseBlock(block: number): void {
    this.#land();
    this.#memory.eraseBlock(block);
    send({ k: "flash-erase", offset: block * this.blockSize, length: this.blockSize });
  }
  #land(): void {
    if (++this.#writes !== this.#cutAt) return;
    send({ k: "power-cut" });
    throw new PowerCut();
  }
}
let flash: ForwardedFlash | undefined;

/** A Digital output whose writes the parent sees, like pins on a logic analyser. */
class ForwardedDigital {
  readonly #pin: number;
  constructor(options: { pin: number; mode: unknown }) {
    this.#pin = options.pin;
  }
  write(value: 0 | 1): void {
    send({ k: "digital", pin: this.#pin, value });
  }
  close(): void {}
}

function tock(collect: boolean): void {
  // After every promise job of this turn: what is due next is now known, and what is still referenced is live.
  setImmediate(() => {
    if (collect) gc();
    send({ k: "next", at: clock.nextAt });
  });
}

(globalThis as { handleCommand?: (bytes: ArrayBuffer) => void }).handleCommand = (bytes: ArrayBuffer) => {
  const command = decodeCommand(bytes) as Command;
  if (command.t === "gc") {
    gc();
    return;
  }
  if (command.t === "cut-power") {
    flash?.cutAt(command.atWrite);
    return;
  }
  clock.advanceTo(command.now, command.wall);
  if (command.t === "start") {
    const trace = command.trace ? (line: string) => send({ k: "trace", line }) : undefined;
    assembleTerminal({
      pn532: { io: bridgeSerial("pn532"), baud: 115200 },
      controller: { io: bridgeSerial("controller"), baud: 115200 },
      connector: new BridgeConnector(clock),
      storage: (flash = new ForwardedFlash(command.journalSize, command.journal ? fromHex(command.journal) : undefined)),
      timers: clock,
      clock: { now: () => clock.wall() },
      indicator: command.indicator ? { io: ForwardedDigital, mode: 1, pins: command.indicator } : undefined,
      trace,
    }, command.config).then(
      (terminal) => {
        running = terminal;
        send({ k: "ready" });
      },
      (error: Error) => send({ k: "fatal", message: `${error.name}: ${error.message}` }),
    );
  } else {
    for (const input of command.inputs) deliver(input, clock);
    void clock.fireDue();
  }
  tock(command.t === "tick" && !!command.gc);
};

export { running };
