/**
 * A simulated vending machine around a simulated terminal: the VMC simulator (in memory, 25 ms polling) talking MDB
 * to the terminal's CashlessDevice, whose vends run the terminal's purchase. Used by `npm start -- --mdb` and the
 * end-to-end MDB tests.
 */
import { performance } from "node:perf_hooks";
import { CashlessDevice, PeripheralLink } from "../../modules/mdb/index";
import { MdbCashless } from "../../src/mdb-cashless";
import type { TerminalEvent } from "../../src/terminal";
import type { VirtualCard } from "../cardsim/card";
import type { Simulation } from "../simulation/index";
import { describeCommand, describeReply } from "./describe";
import { VmcMaster, type Answer } from "./master";

export interface Owed { order: string; amount: number; purchaseId?: string; reason: string }

export interface Vending {
  vmc: VmcMaster;
  device: CashlessDevice;
  owed: Owed[];
  /** The terminal's events go here (Simulation's onEvent). */
  onTerminalEvent(e: TerminalEvent): void;
  /** Selection first: VEND REQUEST, the card (if any) in the field, POLL every 25 ms until the answer. */
  vend(card: VirtualCard | undefined, price: number, item: number): Promise<{ answer: string; ms: number; amount?: number }>;
  endSession(): Promise<void>;
  /**
   * VEND FAILURE with the card (if any) in the field, then POLL every 25 ms: silence while the refund runs, then an
   * ACK (refunded onto the card) or `0A C_` (refund failed: owed at the front-end).
   */
  vendFailure(card: VirtualCard | undefined): Promise<{ answer: "refunded" | "refund-failed"; ms: number }>;
}

const POLL_MS = 25;

export async function startVending(sim: Simulation, options: { level?: 1 | 2 | 3; log?: (line: string) => void } = {}): Promise<Vending> {
  const log = options.log;
  let link!: PeripheralLink;
  let device!: CashlessDevice;
  let adapter!: MdbCashless;
  const owed: Owed[] = [];
  const show = (c: Parameters<typeof describeCommand>[0], a: Answer) => {
    if (!log || c.kind === "poll" && a.kind !== "data") return;
    if (c.kind !== "poll") log(`  MDB -> ${describeCommand(c)}`);
    if (a.kind === "data") for (const r of a.replies) log(`  MDB <- ${describeReply(r)}`);
    else if (c.kind !== "poll") log(`  MDB <- ${a.kind.toUpperCase()}`);
  };
  const vmc = new VmcMaster({ transmit: (words) => { for (const w of words) link.receive(w); }, onExchange: show });
  link = new PeripheralLink({
    address: 0x10, send: (words) => { for (const w of words) vmc.receive(w); },
    onCommand: (b) => device.command(b), onDelivered: (n) => device.delivered(n), onBusReset: () => device.busReset(),
  });
  device = new CashlessDevice({
    port: link, maxResponseSeconds: 30, events: {
      onVendRequest: (v) => adapter.vendRequest(v),
      onVendCancel: () => adapter.vendCancel(),
      onVendResult: (_v, ok, byReset) => adapter.vendResult(ok, byReset),
    },
  });
  adapter = new MdbCashless({ device, terminal: sim.node.terminal, refunds: sim.node.terminal, tapTimeoutMs: 3000, onRefundOwed: (o) => owed.push(o), trace: log });
  await vmc.init(options.level ?? 3, 0x20);

  return {
    vmc, device, owed,
    onTerminalEvent: (e) => adapter.event(e),
    async vend(card, price, item) {
      if (card) sim.emulator.place(card);
      const start = performance.now();
      try {
        const ack = await vmc.send({ kind: "vend-request", price, item });
        if (ack.kind !== "ack") throw new Error(`VEND REQUEST got ${ack.kind}`);
        for (let i = 0; i < 400; i++) {
          const a = await vmc.send({ kind: "poll" });
          if (a.kind === "silence") throw new Error("the reader did not answer a POLL");
          if (a.kind === "data") {
            const r = a.replies.find((x) => x.kind === "vend-approved" || x.kind === "vend-denied");
            if (r) return { answer: r.kind, ms: performance.now() - start, amount: r.kind === "vend-approved" ? r.amount : undefined };
          }
          await new Promise((res) => setTimeout(res, POLL_MS));
        }
        throw new Error("no vend answer within 400 POLLs");
      } finally {
        if (card) sim.emulator.remove(card);
      }
    },
    async vendFailure(card) {
      if (card) sim.emulator.place(card);
      const start = performance.now();
      try {
        if ((await vmc.send({ kind: "vend-failure" })).kind !== "ack") throw new Error("VEND FAILURE was not ACKed");
        for (let i = 0; i < 800; i++) {
          const a = await vmc.send({ kind: "poll" });
          if (a.kind === "ack") return { answer: "refunded", ms: performance.now() - start };
          if (a.kind === "data" && a.replies.some((r) => r.kind === "malfunction" && (r.code & 0xf0) === 0xc0)) return { answer: "refund-failed", ms: performance.now() - start };
          await new Promise((res) => setTimeout(res, POLL_MS));
        }
        throw new Error("no refund answer within 800 POLLs");
      } finally {
        if (card) sim.emulator.remove(card);
      }
    },
    async endSession() {
      await vmc.send({ kind: "session-complete" });
      await vmc.pollUntil("end-session");
    },
  };
}
