// Shared set-up for the PN532 host tests: cards, a driver on a pty or an in-memory line, and a deadline wrapper
// that turns a hang into a failure.
import { fromHex } from "../../../modules/bytes/bytes";
import { PN532, type PN532Options } from "../../../modules/pn532/index";
import { NodeSerial, nodeTimers } from "../../../hosts/node/serial";
import { createPtyPair, hasSocat, type PtyPair } from "../../../hosts/node/pty";
import { VirtualCard, CardRemovedError } from "../../../tools/sim/cardsim/card";
import { issueCard } from "../../../tools/sim/cardsim/issue";
import { startEmulator, startInMemory, type EmulatorOptions, type HostedCard, type Pn532Emulator } from "../../../tools/sim/pn532sim/index";

export const MASTER_KEYS = { purchase: fromHex("11223344556677888877665544332211"), tac: fromHex("00112233445566778899AABBCCDDEEFF") };

export function tunionCard(balance = 10_000, asn = "10000000000000000001", uid?: string): VirtualCard {
  return new VirtualCard(issueCard([{ layout: "tunion", algorithm: "3des", asn, cityCode: "1000", masterKeys: MASTER_KEYS, balance }], uid),
    { random: () => fromHex("11223344") });
}

/** A card that answers any APDU with its data field (or Le bytes of a pattern when it has none) plus 9000. */
export class EchoCard implements HostedCard {
  uid = fromHex("08112233");
  atqa = fromHex("0004");
  sak = 0x20;
  ats = fromHex("787781028043");
  present = true;
  readonly commands: Uint8Array[] = [];
  process(apdu: Uint8Array): Uint8Array {
    if (!this.present) throw new CardRemovedError();
    this.commands.push(apdu.slice());
    const lc = apdu.length > 5 ? apdu[4]! : 0;
    const data = lc ? apdu.slice(5, 5 + lc) : new Uint8Array((apdu[4] || 256)).map((_, i) => i & 0xff);
    const out = new Uint8Array(data.length + 2);
    out.set(data);
    out.set([0x90, 0x00], data.length);
    return out;
  }
  place(): void { this.present = true; }
  remove(): void { this.present = false; }
}

export async function within<T>(ms: number, promise: Promise<T>, what = "operation"): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const guard = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`hang: ${what} did not settle within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, guard]);
  } finally {
    clearTimeout(timer);
  }
}

export interface Rig {
  pn532: PN532;
  emulator: Pn532Emulator;
  pair?: PtyPair;
  close(): Promise<void>;
}

export type RigOptions = {
  cards?: HostedCard[];
  emulator?: Omit<EmulatorOptions, "serial" | "cards">;
  driver?: Partial<Omit<PN532Options, "serial" | "timers">>;
  /** Line rates the host side can be raised to (none: it stays at 115,200). */
  rates?: number[];
};

/** Driver <-> socat pty pair <-> emulator. */
export async function ptyRig(options: RigOptions = {}): Promise<Rig> {
  const pair = await createPtyPair();
  const emulator = await startEmulator({ path: pair.device, cards: options.cards ?? [], ...options.emulator });
  // The emulator answers through socat, another process: on a loaded machine its ACK can come later than the chip's
  // 15 ms, so wait as the PC host does (hosts/node/terminal.ts) unless a test sets its own.
  const pn532 = new PN532({ serial: { io: NodeSerial, path: pair.host, baud: 115200, rates: options.rates }, timers: nodeTimers, ackTimeout: 250, ...options.driver });
  return {
    pn532, emulator, pair,
    async close() {
      pn532.close();
      emulator.close();
      await new Promise((r) => setTimeout(r, 20));
      await pair.close();
    },
  };
}

/** Driver <-> in-memory serial pair <-> emulator, in this process, with no pty tool. */
export async function memoryRig(options: RigOptions = {}): Promise<Rig> {
  const { emulator, serial } = startInMemory({ cards: options.cards ?? [], ...options.emulator });
  const pn532 = new PN532({ serial: { ...serial, rates: options.rates }, timers: nodeTimers, ...options.driver });
  return {
    pn532, emulator,
    async close() {
      pn532.close();
      emulator.close();
    },
  };
}

export { hasSocat };
