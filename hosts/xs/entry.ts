/**
 * The XS side of the XS purchase: the terminal (src/ + modules/, assembled by src/assemble) on the forwarding
 * device of ./device. The parent starts it with {t:"start"}, then ticks it; after each tick the worker says when its
 * next timer is due.
 */
import { MemoryStorage } from "../../modules/journal/storage";
import type { TerminalConfig } from "../../src/terminal";
import { assembleTerminal, type RunningTerminal } from "../../src/assemble";
import { BridgeConnector, ParentClock, bridgeSerial, decodeCommand, deliver, send, type Incoming } from "./device";

declare const setImmediate: (callback: () => void) => void;
declare const gc: () => void;

type Command =
  | { t: "start"; now: number; wall: number; config: TerminalConfig; journalSize: number; trace?: boolean; indicator?: { red: number; green: number; blue: number; buzzer: number } }
  | { t: "tick"; now: number; wall: number; inputs: Incoming[]; gc?: boolean }
  | { t: "gc" };

const clock = new ParentClock();
let running: RunningTerminal | undefined;

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
  clock.advanceTo(command.now, command.wall);
  if (command.t === "start") {
    const trace = command.trace ? (line: string) => send({ k: "trace", line }) : undefined;
    assembleTerminal({
      pn532: { io: bridgeSerial("pn532"), baud: 115200 },
      controller: { io: bridgeSerial("controller"), baud: 115200 },
      connector: new BridgeConnector(clock),
      storage: new MemoryStorage(command.journalSize),
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
