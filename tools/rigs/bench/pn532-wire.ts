/**
 * Benchmark (not a test): per APDU exchange over driver <-> pty (or in-memory line) <-> PN532 emulator at 115200 baud,
 * the bytes on the wire in each direction and the time taken, against the minimum the HSU frame format allows
 * (command frame + ACK + response frame at 10 bits a byte). Prints JSON lines.
 *
 *   npm run bench:pn532 [-- --memory] [-- --rounds 20] [-- --card-timing]
 *
 * By default the emulator's RF and card delays are zero, so the figures show the link alone; --card-timing adds
 * the modelled card processing (CARD_PROCESSING_MS) and RF time, and the minimum then includes the card's time.
 */
import { parseArgs } from "node:util";
import { encodeCommand } from "../../../modules/iso7816/apdu";
import { fromHex } from "../../../modules/bytes/bytes";
import { PN532, frameLength } from "../../../modules/pn532/index";
import * as commands from "../../../modules/purse/commands";
import { NodeSerial, nodeTimers } from "../../../hosts/node/serial";
import { createPtyPair, hasSocat, type PtyPair } from "../../../hosts/node/pty";
import { VirtualCard, CARD_PROCESSING_MS } from "../../sim/cardsim/card";
import { issueCard } from "../../sim/cardsim/issue";
import { purchaseMac1, purchaseSessionKey } from "../../purse-crypto/index";
import { byteTimeFor, startEmulator, startInMemory, type EmulatorTiming, type HostedCard, type Pn532Emulator } from "../../sim/pn532sim/index";

const { values: args } = parseArgs({ strict: true, options: { memory: { type: "boolean" }, "card-timing": { type: "boolean" }, rounds: { type: "string" } } });
const useMemory = !!args.memory || !hasSocat();
const cardTiming = !!args["card-timing"];
const rounds = args.rounds === undefined ? 20 : Number(args.rounds);
if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`--rounds takes a whole number of at least 1 (got ${args.rounds})`);
const BAUD = 115200;
const BYTE_MS = byteTimeFor(BAUD);

class EchoCard implements HostedCard {
  uid = fromHex("08112233");
  atqa = fromHex("0004");
  sak = 0x20;
  ats = fromHex("7577810280");
  present = true;
  process(apdu: Uint8Array): Uint8Array {
    const lc = apdu.length > 5 ? apdu[4]! : 0;
    const data = lc ? apdu.slice(5, 5 + lc) : new Uint8Array(apdu[4] || 256);
    const out = new Uint8Array(data.length + 2);
    out.set(data);
    out.set([0x90, 0x00], data.length);
    return out;
  }
  place(): void { this.present = true; }
  remove(): void { this.present = false; }
}

const keys = { purchase: fromHex("11223344556677888877665544332211"), tac: fromHex("00112233445566778899AABBCCDDEEFF") };
const card = new VirtualCard(issueCard([{ layout: "tunion", algorithm: "3des", asn: "10000000000000000001", cityCode: "1000", masterKeys: keys, balance: 1_000_000 }]));
const echo = new EchoCard();

const linkOnly: Partial<EmulatorTiming> = {
  baud: BAUD, ackDelay: 0, commandDelay: 0, activationDelay: 0, rfByteTime: 0, exchangeOverhead: 0, cardProcessing: () => 0, defaultCardProcessing: 0,
};
const timing: Partial<EmulatorTiming> = cardTiming ? { baud: BAUD } : linkOnly;

let emulator: Pn532Emulator;
let pn532: PN532;
let pair: PtyPair | undefined;
if (useMemory) {
  const link = startInMemory({ cards: [card, echo], timing });
  emulator = link.emulator;
  pn532 = new PN532({ serial: link.serial, timers: nodeTimers });
} else {
  pair = await createPtyPair();
  emulator = await startEmulator({ path: pair.device, cards: [card, echo], timing, baud: BAUD });
  pn532 = new PN532({ serial: { io: NodeSerial, path: pair.host, baud: BAUD }, timers: nodeTimers });
}

interface Sample { ms: number; out: number; in: number; apdu: number; answer: number }
const samples = new Map<string, Sample[]>();

async function measure(name: string, apdu: Uint8Array): Promise<Uint8Array> {
  const out0 = pn532.stats.bytesOut;
  const in0 = pn532.stats.bytesIn;
  const t0 = performance.now();
  const answer = await pn532.transceive(apdu);
  const ms = performance.now() - t0;
  const list = samples.get(name) ?? [];
  list.push({ ms, out: pn532.stats.bytesOut - out0, in: pn532.stats.bytesIn - in0, apdu: apdu.length, answer: answer.length });
  samples.set(name, list);
  return answer;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

try {
  await pn532.start();
  const terminalId = fromHex("001122334455");
  for (let round = 0; round < rounds; round++) {
    await pn532.inListPassiveTarget(1, card.uid);
    await measure("SELECT EP (T-Union AID)", encodeCommand(commands.selectByName(commands.AID_TUNION)));
    await measure("READ BINARY 0x15", encodeCommand(commands.readBinary(0x15, 0, 30)));
    await measure("GET BALANCE", encodeCommand(commands.getBalance()));
    const init = await measure("INITIALIZE FOR PURCHASE", encodeCommand(commands.initializeForPurchase({ keyIndex: 1, amount: 1, terminalId })));
    const app = card.application("tunion");
    const random = init.slice(11, 15);
    const serial = (init[4]! << 8) | init[5]!;
    const tsn = round + 1;
    const sk = purchaseSessionKey(app.algorithm, fromHex(app.dpk), random, serial, tsn);
    const mac1 = purchaseMac1(app.algorithm, sk, { amount: 1, type: 6, terminalId, date: "20260115", time: "101500" });
    await measure("DEBIT FOR PURCHASE", encodeCommand(commands.debitForPurchase({ tsn, date: "20260115", time: "101500", mac1 })));
    await measure("GET TRANSACTION PROVE", encodeCommand(commands.getTransactionProve(6, serial + 1)));
    await pn532.inListPassiveTarget(1, echo.uid);
    const long = new Uint8Array(261);
    long.set([0x00, 0xd6, 0x00, 0x00, 0xff]);
    await measure("261-byte C-APDU (extended frame)", long);
    await measure("256-byte R-APDU + SW (extended frame)", fromHex("00B0000000"));
  }
  for (const [name, list] of samples) {
    const s = list[list.length - 1]!;
    const outFrame = frameLength(2 + s.apdu);
    const inFrame = frameLength(2 + s.answer);
    const minBytes = outFrame + 6 + inFrame;
    const ins = name.startsWith("SELECT") ? 0xa4 : name.startsWith("READ") ? 0xb0 : name.startsWith("GET BALANCE") ? 0x5c
      : name.startsWith("INIT") ? 0x50 : name.startsWith("DEBIT") ? 0x54 : name.startsWith("GET TRANS") ? 0x5a : -1;
    const cardMs = cardTiming ? (CARD_PROCESSING_MS[ins] ?? 15) : 0;
    const wireMinMs = minBytes * BYTE_MS;
    const med = median(list.map((x) => x.ms));
    console.log(JSON.stringify({
      bench: "pn532-wire", link: useMemory ? "memory" : "pty", baud: BAUD, exchange: name, apduBytes: s.apdu, responseBytes: s.answer,
      wireBytesOut: s.out, wireBytesIn: s.in, wireBytes: s.out + s.in, minFrameBytes: minBytes,
      wireMinMs: +wireMinMs.toFixed(3), cardMs, minMs: +(wireMinMs + cardMs).toFixed(3),
      medianMs: +med.toFixed(3), minMeasuredMs: +Math.min(...list.map((x) => x.ms)).toFixed(3),
      overheadMs: +(med - wireMinMs - cardMs).toFixed(3), rounds: list.length,
    }));
  }
} finally {
  pn532.close();
  emulator.close();
  await pair?.close();
}
