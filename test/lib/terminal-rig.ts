// The terminal as a unit on the device interfaces (mocha and XS): the real PN532 driver, journal, front-end client,
// forwarder and controller port on a virtual clock, the far ends played by scripts: the chip and its card
// (ScriptedPeer answering InDataExchange), the front-end (ScriptedFrontend) and the controller's serial line.
import { fromHex } from "../../modules/bytes/bytes";
import type { SerialOptions, SerialPort } from "../../modules/device/types";
import { MemoryStorage } from "../../modules/journal/storage";
import { Command } from "../../modules/pn532/commands";
import { assembleTerminal, type RunningTerminal } from "../../src/assemble";
import type { PurchasePhase, TerminalConfig, TerminalEvent } from "../../src/terminal";
import { ScriptedFrontend } from "./scripted-frontend";
import { ScriptedPeer } from "./pn532-peer";
import { VirtualClock } from "./virtual-clock";

export const TARGET = fromHex("01 01 0344 20 07 04A1B2C3D4E5F6 06 7577810280");
export const FCI = "6F318408A000000632010105A5259F0801029F0C1E01011000FFFFFFFF02010310517007010479138120190718204012310000";
export const BASIC_0x15 = "01011000FFFFFFFF02010310517007010479138120190718204012310000";
export const MAC2 = "AABBCCDD";
export const TAC = "11223344";

/** One electronic-purse card as the terminal sees it through the PN532: its counter moves on each DEBIT it runs. */
export class ScriptedCard {
  balance = 5000;
  serial = 7;
  debits = 0;
  answer(apdu: Uint8Array): string {
    switch (apdu[1]) {
      case 0xa4: return FCI + "9000";
      case 0xb0: return BASIC_0x15 + "9000";
      case 0x50: {
        const b = this.balance.toString(16).padStart(8, "0");
        return `${b}${this.serial.toString(16).padStart(4, "0")}000000` + "0100" + "9AC87503" + "9000";
      }
      case 0x54:
        this.debits++;
        this.balance -= 300;
        this.serial++;
        return TAC + MAC2 + "9000";
      case 0x5a: return MAC2 + TAC + "9000";
      default: return "6D00";
    }
  }
}

/** The controller's end of the controller port: what the terminal sends, as parsed lines. */
export class ControllerLine implements SerialPort {
  static last: ControllerLine | undefined;
  readonly lines: string[] = [];
  #text = "";
  constructor(readonly options: SerialOptions) {
    ControllerLine.last = this;
  }
  read(): ArrayBuffer | undefined {
    return undefined;
  }
  write(data: ArrayBuffer | Uint8Array): void {
    const bytes = data instanceof Uint8Array ? data : new Uint8Array(data);
    for (const b of bytes) this.#text += String.fromCharCode(b);
    for (let nl = this.#text.indexOf("\n"); nl >= 0; nl = this.#text.indexOf("\n")) {
      // As a controller does, an empty line (the break the terminal's first line opens with) is no line.
      if (nl > 0) this.lines.push(this.#text.slice(0, nl));
      this.#text = this.#text.slice(nl + 1);
    }
  }
  close(): void {}
}

export interface System {
  clock: VirtualClock;
  peer: ScriptedPeer;
  card: ScriptedCard;
  fe: ScriptedFrontend;
  storage: MemoryStorage;
  running: RunningTerminal;
  events: TerminalEvent[];
  /** Whether the card is in the field: InListPassiveTarget finds it only then. */
  field: { present: boolean };
  /** Called with each phase the trace reports. */
  onPhase: (phase: PurchasePhase) => void;
}

export interface RigOptions {
  /** Settings over the rig's own. */
  config?: Partial<TerminalConfig>;
  /** A journal to start from (a restart keeps its storage). */
  storage?: MemoryStorage;
  /** A front-end to use (a restart keeps its script and its log of requests). */
  fe?: ScriptedFrontend;
  clock?: VirtualClock;
  /** The terminal's wall clock; the rig's is fixed at 2026-12-01 04:00 UTC. */
  wall?: () => number;
}

export async function start(cardPresent = true, options: RigOptions = {}): Promise<System> {
  const clock = options.clock ?? new VirtualClock();
  const peer = new ScriptedPeer(clock);
  const card = new ScriptedCard();
  const field = { present: cardPresent };
  peer.onCommand = (c, p) => {
    if (c.code === Command.GetFirmwareVersion) p.answer(c.code, fromHex("32010607"));
    else if (c.code === Command.InListPassiveTarget) p.answer(c.code, field.present ? TARGET : fromHex("00"));
    else if (c.code === Command.InDataExchange) p.answer(c.code, fromHex("00" + card.answer(c.params.subarray(1))));
    else p.answer(c.code, c.code === Command.InRelease || c.code === Command.InDeselect ? fromHex("00") : new Uint8Array(0));
  };
  const fe = options.fe ?? new ScriptedFrontend(clock);
  let tsn = 0;
  if (!options.fe) fe.script = (r) => {
    if (r.path === "/v1/routes") return { status: 200, body: { version: 1, routes: [{ cityCode: "*", application: "tunion", level: 1, url: "https://fe.test", keyIndex: 1 }] } };
    if (r.path === "/v1/purchases") {
      tsn++;
      return { status: 200, body: { purchaseId: `P-${tsn}`, tsn, date: "20261201", time: "120000", mac1: "01020304", mac2: MAC2 } };
    }
    return { status: 200, body: { status: "completed" } };
  };
  const storage = options.storage ?? new MemoryStorage(16 * 1024, 1024);
  const events: TerminalEvent[] = [];
  const system = { clock, peer, card, fe, storage, events, field, onPhase: (_p: PurchasePhase) => {} } as System;
  const running = await clock.run(assembleTerminal({
    pn532: { io: peer.io }, controller: { io: ControllerLine }, connector: fe, storage, timers: clock,
    clock: { now: options.wall ?? (() => Date.UTC(2026, 11, 1, 4)) },
    trace: (line) => {
      const m = /^ {2}phase: (.+)$/.exec(line);
      if (m) system.onPhase(m[1] as PurchasePhase);
    },
  }, { terminalId: "310001029313", level1Url: "https://fe.test", recoveryWindowMs: 2000, keepWarmMs: 30_000, ...options.config }, (e) => events.push(e)));
  system.running = running;
  return system;
}
