/**
 * `npm run bench`: tap-to-approved latency of the terminal over a pty (socat; in-memory line otherwise) with the
 * emulator's calibrated delays (card processing SELECT/READ/INIT 15 ms, DEBIT 78 ms; RF time per byte and per
 * exchange at 106 kbps) and an injected network round trip, for each line rate (115,200 and 921,600 baud, the second
 * reached by the driver's SetSerialBaudRate) in fast and strict modes, each with file 0x15 read by READ BINARY (4
 * APDUs, `basicData: "read"`) and taken from the FCI (3 APDUs, `"fci-first"`, docs/fci-fast-path.md). Then the phone
 * rows: cards in phones (tools/sim/cardsim/phone.ts, docs/phone-wallets.md) at 921,600 baud. Each row carries its
 * lower bound (card time + wire bytes at that line rate + RF time + S(WTX) rounds + round trips) and the old bound
 * beside it (no RF time, 115,200 baud). Prints JSON lines; it is a benchmark, not a test.
 */
import type { BasicDataMode } from "../../../modules/terminal-config/config";
import { CARD_PROCESSING_MS } from "../../sim/cardsim/card";
import { PHONE_106_ONLY, PHONE_SECURE_ELEMENT, type PhoneProfile } from "../../sim/cardsim/phone";
import { DEFAULT_TIMING, byteTimeFor, frameWaitingTimeOf } from "../../sim/pn532sim/index";
import { LEVEL1_CITY, Simulation } from "../../sim/simulation/index";
import { writeFigure } from "./figures";

const TAPS = Number(process.env.BENCH_TAPS ?? 15);
/** Only these rows, as card/mode/basicData/line/radio (e.g. `card/fast/fci-first/921600/424`), comma-separated. */
const ONLY = process.env.BENCH_ONLY?.split(",");
const RTT = Number(process.env.BENCH_RTT_MS ?? 40);
/** PN532 framing around one InDataExchange: normal frame (7) + D4 40 Tg (3) out, ACK (6), frame (7) + D5 41 status (3) in. */
const FRAMING_PER_EXCHANGE = 26;

function quantile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

const round = (n: number) => Math.round(n * 10) / 10;

const LINES = [115200, 921600];

const RADIOS = [106, 424];

/** The instructions of one tap: SELECT, READ BINARY unless file 0x15 came from the FCI, INITIALIZE, DEBIT. */
function tapInstructions(basicData: BasicDataMode): number[] {
  return basicData === "read" ? [0xa4, 0xb0, 0x50, 0x54] : [0xa4, 0x50, 0x54];
}

/**
 * Card time of one tap, ms, with the S(WTX) rounds a phone adds (one request and one grant of 2 bytes + CRC each, as
 * the emulator models them: tools/sim/pn532sim/isodep.ts).
 */
function cardTime(instructions: number[], radio: number, phone?: PhoneProfile): number {
  if (!phone) return instructions.reduce((n, ins) => n + CARD_PROCESSING_MS[ins]!, 0);
  const fwt = frameWaitingTimeOf(Uint8Array.from(Buffer.from(phone.ats, "hex")), DEFAULT_TIMING.frameWaitingTime);
  const rf = DEFAULT_TIMING.rfByteTime * (106 / radio);
  return instructions.reduce((n, ins) => {
    const work = phone.processingMs[ins] ?? phone.otherMs;
    const rounds = Math.max(0, Math.ceil(work / fwt) - 1);
    return n + work + rounds * 2 * (DEFAULT_TIMING.exchangeOverhead + 4 * rf);
  }, 0);
}

interface Row {
  line: number;
  radio: number;
  strict: boolean;
  basicData: BasicDataMode;
  phone?: PhoneProfile;
}

const ROWS: Row[] = [];
for (const line of LINES) for (const radio of RADIOS) for (const strict of [false, true]) for (const basicData of ["read", "fci-first"] as const) {
  ROWS.push({ line, radio, strict, basicData });
}
// Phones at the fast line: one that moves to 424 kbps, one that stays at 106 whatever its ATS offers.
for (const phone of [PHONE_SECURE_ELEMENT, PHONE_106_ONLY]) ROWS.push({ line: 921600, radio: 424, strict: false, basicData: "fci-first", phone });

const results: Record<string, unknown>[] = [];
for (const { line, radio: chipRadio, strict, basicData, phone } of ROWS) {
  if (ONLY && !ONLY.includes(`${phone?.name ?? "card"}/${strict ? "strict" : "fast"}/${basicData}/${line}/${chipRadio}`)) continue;
  const rates = line === 115200 ? undefined : [line];
  const sim = await Simulation.start({ timing: DEFAULT_TIMING, latencyMs: RTT / 2, terminal: { strict, basicData }, pn532Rates: rates });
  // The driver asks for 424 kbps after each activation; a chip capped at 106 refuses, and the tap runs at 106.
  sim.emulator.maxBitRate = chipRadio;
  const radio = phone?.maxPpsKbps !== undefined ? Math.min(chipRadio, phone.maxPpsKbps) : chipRadio;
  try {
    const taps: { tapMs: number; lowerBound: number; oldBound: number; rfMs: number; apdus: number; wireBytes: number; roundTrips: number; handshakes: number }[] = [];
    // One warm-up tap: the first one of a process pays for JIT and lazy initialisation, not for the protocol.
    for (let i = 0; i <= TAPS; i++) {
      sim.addCard({
        name: `card-${i}`, profiles: [{ layout: "tunion", algorithm: "3des", asn: `031010000000000${String(i).padStart(5, "0")}`, cityCode: LEVEL1_CITY, balance: 10_000 }],
        options: phone ? { phone } : {},
      });
      const events = await sim.pay(`card-${i}`, 100, `BENCH-${strict ? "S" : "F"}-${i}`);
      const approved = events.find((e) => e.event === "approved");
      if (!approved) throw new Error(`tap ${i} was not approved: ${JSON.stringify(events.at(-1))}`);
      if (i === 0) continue;
      const t = approved.timings as { tapMs: number; apdus: number; apduBytes: number; roundTrips: number; handshakes: number };
      const instructions = tapInstructions(basicData);
      if (t.apdus !== instructions.length) throw new Error(`a ${basicData} tap took ${t.apdus} APDUs, not ${instructions.length}`);
      const wireBytes = t.apduBytes + t.apdus * FRAMING_PER_EXCHANGE;
      const cardMs = cardTime(instructions, radio, phone);
      // RF time as the emulator models it at 106 kbps: a fixed cost per exchange and a time per byte each way.
      const rfMs = t.apdus * DEFAULT_TIMING.exchangeOverhead + t.apduBytes * DEFAULT_TIMING.rfByteTime * (106 / radio);
      const lowerBound = cardMs + wireBytes * byteTimeFor(line) + rfMs + t.roundTrips * RTT;
      const oldBound = cardMs + wireBytes * byteTimeFor(115200) + t.roundTrips * RTT;
      taps.push({ tapMs: t.tapMs, lowerBound, oldBound, rfMs, apdus: t.apdus, wireBytes, roundTrips: t.roundTrips, handshakes: t.handshakes });
    }
    const measured = quantile(taps.map((t) => t.tapMs), 0.5);
    const bound = quantile(taps.map((t) => t.lowerBound), 0.5);
    const oldBound = quantile(taps.map((t) => t.oldBound), 0.5);
    const lineBaud = sim.emulator.baud;
    if (lineBaud !== line) throw new Error(`the line stayed at ${lineBaud} baud instead of ${line}`);
    const psl = sim.emulator.received.filter((c) => c.code === 0x4e).length;
    if (!psl) throw new Error("the driver never asked for a higher bit rate");
    const result = {
      mode: strict ? "strict" : "fast", basicData, card: phone?.name ?? "card", link: sim.linkKind, lineBaud, radioKbps: radio, taps: taps.length, rttMs: RTT,
      measuredMs: round(measured), p90Ms: round(quantile(taps.map((t) => t.tapMs), 0.9)), lowerBoundMs: round(bound),
      ratio: Math.round((measured / bound) * 1000) / 1000, rfMs: round(taps[0]!.rfMs),
      oldLowerBoundMs: round(oldBound), oldRatio: Math.round((measured / oldBound) * 1000) / 1000, apdus: taps[0]!.apdus, wireBytes: taps[0]!.wireBytes,
      frontendRoundTrips: Math.max(...taps.map((t) => t.roundTrips)), tlsHandshakesOnTapPath: Math.max(...taps.map((t) => t.handshakes)),
      ...(phone ? { wtxPerTap: round(sim.emulator.stats.wtxRequests / (TAPS + 1)) } : {}),
    };
    results.push(result);
    console.log(JSON.stringify(result));
  } finally {
    await sim.close();
  }
}

// The whole table, when every row ran with the default taps and round trip, is the figure the docs show.
if (!ONLY && TAPS === 15 && RTT === 40) {
  const ms = (v: unknown) => `${(v as number).toFixed(1)} ms`;
  const rows = results.map((r) => `| ${r.card} | ${r.mode} | ${r.basicData} | ${(r.lineBaud as number).toLocaleString("en-US")} | ${r.radioKbps} | ${r.apdus} | ` +
    `${ms(r.measuredMs)} | ${ms(r.p90Ms)} | ${ms(r.lowerBoundMs)} | ${(r.ratio as number).toFixed(3)} | ${ms(r.rfMs)} | ${ms(r.oldLowerBoundMs)} | ` +
    `${(r.oldRatio as number).toFixed(3)} | ${r.frontendRoundTrips} | ${r.tlsHandshakesOnTapPath} | ${r.wtxPerTap ?? ""} |`);
  const written = writeFigure({
    name: "tap", command: "npm run bench", title: "Tap-to-approved",
    describes: ["src", "modules", "hosts/node", "tools/sim/pn532sim", "tools/sim/cardsim"],
    body: [
      `${TAPS} taps a row after one warm-up tap, a ${RTT} ms network round trip on every front-end request, over a ${String(results[0]?.link ?? "pty")} line. ` +
      "What the columns mean, and the bound: docs/develop/benchmarks.md.",
      "",
      "| card | mode | file 0x15 | line | radio kbps | APDUs | measured (median) | p90 | lower bound | ratio | RF time in the bound | old bound | measured / old bound | round trips | handshakes on the tap path | S(WTX) a tap |",
      "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
      ...rows,
    ].join("\n"),
  });
  if (written) console.error(`wrote ${written}`);
}
