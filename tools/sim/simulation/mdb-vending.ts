/**
 * A simulated vending machine around a simulated terminal: the VMC simulator (in memory, 25 ms polling) talking MDB
 * to the terminal's MdbReader (src/mdb-reader.ts), whose vends run the terminal's purchase. Used by `npm start --
 * --mdb`, the end-to-end MDB tests and the MDB bench. Both flows: card first (tap, BEGIN SESSION, VEND REQUEST) and
 * selection first (VEND REQUEST, then the tap).
 */
import { performance } from "node:perf_hooks";
import { nodeTimers } from "../../../hosts/node/serial";
import { PeripheralLink, type CashlessDevice } from "../../../modules/mdb/index";
import type { Reply } from "../../../modules/mdb/replies";
import { MdbReader } from "../../../src/mdb-reader";
import type { TerminalEvent } from "../../../src/terminal";
import type { VirtualCard } from "../cardsim/card";
import type { Simulation } from "./index";
import { describeCommand, describeReply } from "../vmc/describe";
import { VmcMaster, type Answer } from "../vmc/master";

export interface Owed { order: string; amount: number; purchaseId?: string; reason: string }

export interface VendAnswer { answer: string; ms: number; amount?: number }

export interface Vending {
  vmc: VmcMaster;
  device: CashlessDevice;
  reader: MdbReader;
  link: PeripheralLink;
  owed: Owed[];
  /** The terminal's events go here (Simulation's onEvent). */
  onTerminalEvent(e: TerminalEvent): void;
  /** Card first: the card goes into the field and the VMC polls until BEGIN SESSION; returns the funds (wire). */
  tap(card: VirtualCard): Promise<number>;
  /** Card first, in a session: VEND REQUEST and POLL every 25 ms until the answer. */
  vendInSession(price: number, item: number): Promise<VendAnswer>;
  /** Selection first: VEND REQUEST, the card (if any) in the field, POLL every 25 ms until the answer. */
  vend(card: VirtualCard | undefined, price: number, item: number): Promise<VendAnswer>;
  /** SESSION COMPLETE, and END SESSION as its direct reply or on a later POLL. */
  endSession(): Promise<void>;
  /**
   * VEND FAILURE with the card (if any) in the field, then POLL every 25 ms: silence while the refund runs, then an
   * ACK (refunded onto the card) or `0A C_` (refund failed: owed at the front-end).
   */
  vendFailure(card: VirtualCard | undefined): Promise<{ answer: "refunded" | "refund-failed"; ms: number }>;
  /** POLL every 25 ms until a message of this kind (or `ms` pass). */
  pollFor(kind: Reply["kind"], ms?: number): Promise<Reply[]>;
  close(): void;
}

const POLL_MS = 25;

export async function startVending(sim: Simulation, options: {
  level?: 1 | 2 | 3; log?: (line: string) => void; multivend?: boolean; sessionTimeoutMs?: number; cardFirst?: boolean;
  /** The VMC's strict timing checks (5 ms reply, 1 ms between bytes): a late reply throws. */
  strict?: boolean;
  /** A VMC that wants the direct reply form (tools/sim/vmc/master.ts strictReplies): a deferred one throws. */
  strictReplies?: boolean;
} = {}): Promise<Vending> {
  const log = options.log;
  let link!: PeripheralLink;
  const owed: Owed[] = [];
  const show = (c: Parameters<typeof describeCommand>[0], a: Answer) => {
    if (!log || c.kind === "poll" && a.kind !== "data") return;
    if (c.kind !== "poll") log(`  MDB -> ${describeCommand(c)}`);
    if (a.kind === "data") for (const r of a.replies) log(`  MDB <- ${describeReply(r)}`);
    else if (c.kind !== "poll") log(`  MDB <- ${a.kind.toUpperCase()}`);
  };
  const vmc = new VmcMaster({ transmit: (words) => { for (const w of words) link.receive(w); }, onExchange: show, now: () => performance.now(),
    strict: options.strict, strictReplies: options.strictReplies });
  const reader = new MdbReader({
    link: (h) => (link = new PeripheralLink({ address: 0x10, send: (words) => { for (const w of words) vmc.receive(w); }, ...h })),
    terminal: sim.node.terminal, timers: nodeTimers, tapTimeoutMs: 3000, searchMs: 300, cardFirst: options.cardFirst,
    sessionTimeoutMs: options.sessionTimeoutMs,
    device: { maxResponseSeconds: 30, multivend: options.multivend, manufacturer: "OTT", serial: "310001029313", model: "TRANSIT-MDB", version: 0x0100 },
    refunds: sim.node.terminal, onRefundOwed: (o) => owed.push(o), trace: log,
  });
  await vmc.init(options.level ?? 3, 0x20);

  const pollFor = async (kind: Reply["kind"], ms = 10_000): Promise<Reply[]> => {
    const direct = vmc.claim(kind);
    if (direct) return direct;
    const seen: Reply[] = [];
    const until = performance.now() + ms;
    while (performance.now() < until) {
      const a = await vmc.send({ kind: "poll" });
      if (a.kind === "silence") throw new Error("the reader did not answer a POLL");
      if (a.kind === "data") {
        seen.push(...a.replies);
        if (a.replies.some((r) => r.kind === kind)) return seen;
      }
      await new Promise((res) => setTimeout(res, POLL_MS));
    }
    throw new Error(`no ${kind} within ${ms} ms (saw ${seen.map((r) => r.kind).join(", ") || "nothing"})`);
  };
  const vendOnce = async (price: number, item: number): Promise<VendAnswer> => {
    const start = performance.now();
    const ack = await vmc.send({ kind: "vend-request", price, item });
    if (ack.kind !== "ack") throw new Error(`VEND REQUEST got ${ack.kind}`);
    // VEND DENIED ends the wait as well as VEND APPROVED.
    const seen: Reply[] = [];
    const until = performance.now() + 30_000;
    while (performance.now() < until) {
      const a = await vmc.send({ kind: "poll" });
      if (a.kind === "silence") throw new Error("the reader did not answer a POLL");
      if (a.kind === "data") {
        seen.push(...a.replies);
        const r = a.replies.find((x) => x.kind === "vend-approved" || x.kind === "vend-denied");
        if (r) return { answer: r.kind, ms: performance.now() - start, amount: r.kind === "vend-approved" ? r.amount : undefined };
      }
      await new Promise((res) => setTimeout(res, POLL_MS));
    }
    throw new Error(`no vend answer within 30 s (saw ${seen.map((r) => r.kind).join(", ") || "nothing"})`);
  };

  return {
    vmc, device: reader.device, reader, link, owed, pollFor,
    onTerminalEvent: (e) => reader.event(e),
    async tap(card) {
      sim.emulator.place(card);
      const seen = await pollFor("begin-session");
      const begin = seen.find((r) => r.kind === "begin-session") as Extract<Reply, { kind: "begin-session" }>;
      return begin.funds;
    },
    vendInSession: vendOnce,
    async vend(card, price, item) {
      if (card) sim.emulator.place(card);
      try {
        return await vendOnce(price, item);
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
      await pollFor("end-session");
    },
    close: () => reader.close(),
  };
}
