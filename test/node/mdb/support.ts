// What the MDB end-to-end tests share: a simulation (in memory, instant PN532 timing) with the VMC simulator
// driving the terminal's MdbReader (tools/sim/simulation/mdb-vending.ts), set up and torn down by mocha hooks, and cards issued
// with ASNs unique to the suite.
import type { VirtualCard } from "../../../tools/sim/cardsim/card";
import { INSTANT_TIMING } from "../../../tools/sim/pn532sim/index";
import { LEVEL1_CITY, Simulation } from "../../../tools/sim/simulation/index";
import { startVending, type Vending } from "../../../tools/sim/simulation/mdb-vending";
import type { TerminalEvent } from "../../../src/terminal";

export interface VendingWorld {
  sim: Simulation;
  m: Vending;
  /** A T-Union 3DES card with this balance, out of the field; `prefix` (6 digits) keeps suites' ASNs apart. */
  card(balance: number): VirtualCard;
}

export const balanceOf = (c: VirtualCard): number => c.state.applications[0]!.balance;

/** Registers before/after hooks in the calling describe; the fields are set once `before` has run. */
export function useVending(prefix: string, options: Parameters<typeof startVending>[1] = {}): VendingWorld {
  let n = 0;
  const world = { card: (balance: number) => world.sim.addCard({
    name: `mdb-${prefix}-${++n}`,
    profiles: [{ layout: "tunion", algorithm: "3des", asn: `03101${prefix.padStart(9, "0")}${String(n).padStart(6, "0")}`, cityCode: LEVEL1_CITY, balance }],
  }) } as VendingWorld;
  before(async () => {
    let vending: Vending | undefined;
    world.sim = await Simulation.start({ link: "memory", timing: INSTANT_TIMING, onEvent: (e: TerminalEvent) => vending?.onTerminalEvent(e) });
    world.m = vending = await startVending(world.sim, options);
  });
  after(async () => {
    world.m?.close();
    await world.sim?.close();
  });
  return world;
}
