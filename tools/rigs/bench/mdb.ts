/**
 * `npm run bench:mdb`: the terminal as MDB cashless device under a VMC polling every 25 ms, card-first vends with
 * the terminal's real purchase (PN532 emulator with card timing, TLS front-ends). Measured, printed as JSON:
 * - the reader's POLL reply time (VMC's last byte -> reader's first byte) and inter-byte gaps over the simulated
 *   link, all POLLs and those answered while a purchase ran, against the 5 ms and 1 ms limits;
 * - VEND REQUEST -> VEND APPROVED next to the terminal's own tap-to-approved for the same purchase.
 * The link is a socat pty pair carrying the docs/mdb.md §5 encoding when socat is there (the reply passes through
 * the same event loop as the purchase), else in memory. Options: --vends N (default 20), --link pty|memory.
 */
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { createPtyPair, hasSocat, type PtyPair } from "../../../hosts/node/pty";
import { NodeSerial, nodeTimers } from "../../../hosts/node/serial";
import { PeripheralLink, StreamLink } from "../../../modules/mdb/index";
import type { Reply } from "../../../modules/mdb/replies";
import { MdbReader } from "../../../src/mdb-reader";
import type { TerminalEvent } from "../../../src/terminal";
import { LEVEL1_CITY, Simulation } from "../../sim/simulation/index";
import { VmcMaster } from "../../sim/vmc/master";
import { openStreamVmc, percentiles, type StreamVmc } from "../../sim/vmc/stream";

const { values } = parseArgs({ options: { vends: { type: "string" }, link: { type: "string" } } });
const vends = Number(values.vends ?? 20);
const linkKind = values.link === "memory" || (values.link !== "pty" && !hasSocat()) ? "memory" : "pty";

let reader: MdbReader | undefined;
const tapMs: number[] = [];
const sim = await Simulation.start({ link: "memory", onEvent: (e: TerminalEvent) => {
  if (e.event === "approved") tapMs.push(e.timings.tapMs);
  reader?.event(e);
} });
let pair: PtyPair | undefined;
let side: StreamVmc | undefined;
let serial: NodeSerial | undefined;
let vmc: VmcMaster;
let status = 0;
try {
  const device = { maxResponseSeconds: 30, multivend: true };
  if (linkKind === "pty") {
    pair = await createPtyPair();
    let stream!: StreamLink;
    const port: NodeSerial = new NodeSerial({ path: pair.device, baud: 9600, format: "buffer", onReadable() {
      const d = port.read();
      if (d) stream.push(new Uint8Array(d));
    } });
    serial = port;
    await port.opened;
    reader = new MdbReader({
      link: (h) => (stream = new StreamLink({ address: 0x10, write: (b) => port.write(b), ...h })).link,
      terminal: sim.node.terminal, timers: nodeTimers, device,
    });
    side = await openStreamVmc(pair.host, { replyTimeoutMs: 1000 });
    vmc = side.vmc;
  } else {
    let link!: PeripheralLink;
    vmc = new VmcMaster({ transmit: (w) => { for (const x of w) link.receive(x); }, now: () => performance.now() });
    reader = new MdbReader({
      link: (h) => (link = new PeripheralLink({ address: 0x10, send: (w) => { for (const x of w) vmc.receive(x); }, ...h })),
      terminal: sim.node.terminal, timers: nodeTimers, device,
    });
  }
  await vmc.init(3, 0x20);
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  const pollFor = async (kind: Reply["kind"]) => {
    if (vmc.claim(kind)) return; // it came as the direct reply
    for (let i = 0; i < 2000; i++) {
      const a = await vmc.send({ kind: "poll" });
      if (a.kind === "data" && a.replies.some((r) => r.kind === kind)) return;
      await sleep(25);
    }
    throw new Error(`no ${kind}`);
  };
  vmc.replyTimes.length = 0;
  vmc.gapTimes.length = 0;
  const during: number[] = [];
  const vendMs: number[] = [];
  for (let i = 0; i < vends; i++) {
    const card = sim.addCard({ name: `bench-${i}`, profiles: [{ layout: "tunion", algorithm: "3des", asn: `0310100000000700${String(i).padStart(4, "0")}`, cityCode: LEVEL1_CITY, balance: 10_000 }] });
    sim.emulator.place(card);
    await pollFor("begin-session");
    const from = vmc.replyTimes.length;
    const start = performance.now();
    await vmc.send({ kind: "vend-request", price: 350, item: 12 });
    await pollFor("vend-approved");
    vendMs.push(performance.now() - start);
    during.push(...vmc.replyTimes.slice(from));
    await vmc.send({ kind: "vend-success", item: 12 });
    await vmc.send({ kind: "session-complete" });
    await pollFor("end-session");
    sim.emulator.remove(card);
  }
  const round = (p: ReturnType<typeof percentiles>) => ({ n: p.n, p50: +p.p50.toFixed(3), p99: +p.p99.toFixed(3), max: +p.max.toFixed(3) });
  console.log(JSON.stringify({
    bench: "mdb", link: linkKind === "pty" ? "socat pty pair, docs/mdb.md §5 encoding" : "in memory (synchronous)", vends, pollEveryMs: 25,
    pollReplyMs: { all: round(percentiles(vmc.replyTimes)), whilePurchaseRuns: round(percentiles(during)), limit: 5 },
    interByteMs: { max: +Math.max(0, ...vmc.gapTimes).toFixed(3), limit: 1 },
    vendRequestToApprovedMs: round(percentiles(vendMs)),
    tapToApprovedMs: round(percentiles(tapMs)),
  }, null, 2));
} catch (error) {
  console.error(`bench:mdb failed: ${(error as Error).message}`);
  status = 1;
} finally {
  reader?.close();
  side?.close();
  serial?.close();
  await pair?.close();
  await sim.close();
}
process.exit(status);
