/**
 * Every parser of bytes that come from outside the terminal, as fuzz targets: PN532 frames, APDUs and the card's
 * answers, card files, controller lines, journal records and the front-end's answers. Device code only (no Node),
 * so the same targets run under Node and inside XS. A target says which errors are its typed ones; anything else
 * thrown, or a promise that never settles, is a finding.
 */
import { fromHex } from "../../../modules/bytes/bytes";
import type { HttpRequest, HttpResponse, HttpsConnection, HttpsConnector, SerialOptions, SerialPort } from "../../../modules/device/types";
import { CodedError } from "../../../modules/errors/errors";
import { FrontendClient } from "../../../modules/frontend-client/client";
import { prng } from "./prng";
import { decodeCommand, decodeResponse } from "../../../modules/iso7816/apdu";
import { Journal } from "../../../modules/journal/journal";
import { MemoryStorage } from "../../../modules/journal/storage";
import { FrameParser } from "../../../modules/pn532/frame";
import {
  describeCommand, describeResponse, parseBalance, parseBasicData, parseDebitForPurchase, parseFci, parseInitializeForPurchase,
  parseTransactionProve, parseTransactionRecord, parseCreditForLoad, parseInitializeForLoad,
} from "../../../modules/purse/index";
import { authorizeRefund, completeRefund } from "../../../modules/frontend-client/refunds";
import { CashlessDevice, MODE, PeripheralLink, WordDecoder, checksum, decodeCommand as decodeMdbCommand, encodeCommand, encodeWords, parseReplies, type Command as MdbCommand, type VendRequest } from "../../../modules/mdb/index";
import { ControllerPort } from "../../../src/controller";
import { readRecord } from "../../../src/records";

export interface FuzzTarget {
  name: string;
  /** A valid input: a third of the inputs are it with a few bytes changed, so checks past the length are reached. */
  sample: Uint8Array;
  /** Longest random input. */
  maxLength: number;
  /** Throws only typed errors (CodedError); may return a promise. */
  run(input: Uint8Array): unknown;
}

export interface FuzzReport {
  name: string;
  inputs: number;
  accepted: number;
  typedErrors: number;
  /** Untyped errors and hangs, with the input that caused each (first 5 kept). */
  findings: { kind: "untyped" | "hang"; message: string; input: string }[];
  findingCount: number;
  ms: number;
}

const TUNION_0x15 = "01011000FFFFFFFF02010310517007010479138120190718204012310000";
const hex = (s: string) => fromHex(s);
const utf8 = (s: string) => {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i) & 0xff;
  return out;
};

/** A serial line that hands the controller port whatever the fuzzer writes, and swallows what the port sends. */
class FuzzLine implements SerialPort {
  static current: FuzzLine | undefined;
  readonly #options: SerialOptions;
  #pending: ArrayBuffer | undefined;
  sent = 0;
  constructor(options: SerialOptions) {
    this.#options = options;
    FuzzLine.current = this;
  }
  feed(bytes: Uint8Array): void {
    this.#pending = bytes.slice().buffer as ArrayBuffer;
    this.#options.onReadable?.call(this, bytes.length);
  }
  read(): ArrayBuffer | undefined {
    const p = this.#pending;
    this.#pending = undefined;
    return p;
  }
  write(data: ArrayBuffer | Uint8Array): void {
    this.sent += data.byteLength;
  }
  close(): void {}
}

/** A connection whose one answer is the fuzz input: status from its first byte, the rest as the body. */
class FuzzConnection implements HttpsConnection {
  readonly origin = "https://fuzz.invalid";
  readonly handshakes = 0;
  readonly connected = true;
  answer: HttpResponse = { status: 200, body: new Uint8Array(0) };
  async warm(): Promise<void> {}
  async request(_request: HttpRequest): Promise<HttpResponse> {
    return this.answer;
  }
  close(): void {}
}

const fuzzConnection = new FuzzConnection();
const fuzzConnector: HttpsConnector = { connect: () => fuzzConnection };
const STATUSES = [200, 200, 200, 201, 400, 404, 409, 422, 500, 503, 302];

function frontendAnswer(input: Uint8Array): void {
  fuzzConnection.answer = { status: STATUSES[(input[0] ?? 0) % STATUSES.length]!, body: input.subarray(1) };
}

/**
 * The terminal's MDB side as a VMC (or the noise on its bus) sees it: words from the wire encoding into the link,
 * whose whole blocks go to the cashless device. Nothing may run twice: the device must never ask for a second vend
 * while one is still open (its answer, cancel, result or a reset closes it).
 */
class MdbFuzzBus {
  openVend: VendRequest | undefined;
  doubled = 0;
  readonly device: CashlessDevice;
  readonly link: PeripheralLink;
  readonly decoder: WordDecoder;
  constructor() {
    this.link = new PeripheralLink({
      address: 0x10, send: () => undefined,
      onCommand: (b, direct) => this.device.command(b, direct), onDelivered: (n) => this.device.delivered(n), onBusReset: () => this.device.busReset(),
    });
    const close = () => { this.openVend = undefined; };
    this.device = new CashlessDevice({
      port: this.link, level: 3, multivend: true, refunds: true, events: {
        onVendRequest: (v) => {
          if (this.openVend) this.doubled++;
          this.openVend = v;
        },
        onVendCancel: close, onVendResult: close, onReset: close, onSessionEnd: close,
        // A card is in the field whenever the reader is enabled, so inputs reach the session states.
        onEnabled: (enabled) => { if (enabled) this.device.beginSession(5000); },
      },
    });
    this.decoder = new WordDecoder({ onWord: (w) => this.link.receive(w) });
  }
}

/** The VMC's side of the wire: the address word with the mode bit, the data, the CHK (docs/mdb.md §2). */
function vmcWords(c: MdbCommand): number[] {
  const block = encodeCommand(0x10, c, false);
  const words: number[] = [MODE | block[0]!];
  for (let i = 1; i < block.length; i++) words.push(block[i]!);
  words.push(checksum(block));
  return words;
}

const ACK_WORD = 0x00;
const MDB_SESSION = encodeWords([
  ...vmcWords({ kind: "reset" }), ...vmcWords({ kind: "poll" }), ACK_WORD,
  ...vmcWords({ kind: "setup-config", vmcLevel: 3, columns: 0, rows: 0, displayType: 0 }), ...vmcWords({ kind: "poll" }), ACK_WORD,
  ...vmcWords({ kind: "reader-enable" }), ...vmcWords({ kind: "poll" }), ACK_WORD,
  ...vmcWords({ kind: "vend-request", price: 350, item: 12 }), ...vmcWords({ kind: "vend-request", price: 350, item: 12 }),
  ...vmcWords({ kind: "poll" }), ACK_WORD, ...vmcWords({ kind: "vend-success", item: 12 }), ...vmcWords({ kind: "session-complete" }),
  ...vmcWords({ kind: "poll" }), ACK_WORD,
]);

export function fuzzTargets(): FuzzTarget[] {
  let timers = 0;
  const controller = new ControllerPort({
    serial: { io: FuzzLine }, maxLine: 256,
    timers: { set: () => ++timers, clear: () => undefined, now: () => 0 },
  });
  void controller;
  const client = new FrontendClient({ connector: fuzzConnector });
  const url = "https://fuzz.invalid";
  const mdb = new MdbFuzzBus();
  const MDB_FORMAT = { level: 3, vmcLevel: 3, expanded: false };
  return [
    {
      // RESET, SETUP CONFIG (VMC level 3), EXPANSION REQUEST ID, READER ENABLE, VEND REQUEST: each a 9-bit address word
      // (FF 00 escape), data, CHK; between them the VMC's ACKs.
      name: "MDB bus (link and cashless device)", sample: MDB_SESSION,
      maxLength: 200,
      run(input) {
        // A vend asked for in the previous input is answered now (declined, as a terminal whose card said no), and an
        // enabled reader has a card in its field (onEnabled).
        if (mdb.openVend) {
          mdb.openVend = undefined;
          mdb.device.deny();
        }
        mdb.decoder.push(input);
        if (mdb.doubled) {
          mdb.doubled = 0;
          throw new Error("the cashless device asked for a second vend while one was open");
        }
      },
    },
    { name: "MDB commands", sample: hex("130000010001"), maxLength: 40, run: (b) => decodeMdbCommand(b, (b[0] ?? 0) % 2 === 1) },
    { name: "MDB poll replies (VMC side)", sample: hex("030BB8FFFFFFFF0000050064"), maxLength: 60, run: (b) => parseReplies(b, MDB_FORMAT) },
    {
      name: "PN532 frames", sample: hex("0000FF0AF6D5410000112233449000F100"), maxLength: 300,
      run(input) {
        const parser = new FrameParser({ onFrame: () => undefined, onFault: () => undefined });
        parser.push(input);
      },
    },
    { name: "response APDU", sample: hex("00000F449000"), maxLength: 64, run: decodeResponse },
    { name: "command APDU", sample: hex("805001020B01000010000011223344550F"), maxLength: 300, run: decodeCommand },
    { name: "INITIALIZE FOR PURCHASE answer", sample: hex("00001C3700000000000100" + "9AC87503"), maxLength: 32, run: parseInitializeForPurchase },
    { name: "DEBIT FOR PURCHASE answer", sample: hex("AABBCCDD11223344"), maxLength: 16, run: parseDebitForPurchase },
    { name: "GET TRANSACTION PROVE answer", sample: hex("11223344AABBCCDD"), maxLength: 16, run: parseTransactionProve },
    { name: "INITIALIZE FOR LOAD answer", sample: hex("0000028A0000010011223344" + "2988AE5A"), maxLength: 32, run: parseInitializeForLoad },
    { name: "CREDIT FOR LOAD answer", sample: hex("AABBCCDD"), maxLength: 16, run: parseCreditForLoad },
    { name: "GET BALANCE answer", sample: hex("00000F44"), maxLength: 8, run: parseBalance },
    { name: "FCI", sample: hex("6F318408A000000632010105A5259F0801029F0C1E" + TUNION_0x15), maxLength: 96, run: parseFci },
    { name: "card file 0x15 (T-Union)", sample: hex(TUNION_0x15), maxLength: 64, run: (b) => parseBasicData(b, "tunion") },
    { name: "card file 0x15 (city)", sample: hex("41004100000000000101000041000000899999852015010120301231" + "0500"), maxLength: 64, run: (b) => parseBasicData(b, "cityunion") },
    { name: "card file 0x18 record", sample: hex("00080000000000016C0931000102931320140614173611"), maxLength: 48, run: parseTransactionRecord },
    { name: "APDU trace", sample: hex("805401000F0000000120120229135100F15CAB7508"), maxLength: 64, run: (b) => describeResponse(b, b) + describeCommand(b) },
    {
      name: "controller lines", sample: utf8('{"type":"pay","amount":350,"order":"A-1","timeoutMs":30000}\n{"type":"status"}\n'), maxLength: 400,
      run(input) {
        FuzzLine.current!.feed(input);
      },
    },
    {
      name: "journal records", sample: utf8('{"k":"intent","purchaseId":"p","url":"https://x","order":"o","amount":1,"asn":"a","application":"tunion","epSerial":1,"balance":1,"tsn":1,"mac2":"AA","at":1}'),
      maxLength: 300,
      run(input) {
        readRecord({ seq: 1, payload: input });
      },
    },
    {
      name: "refund journal records",
      sample: utf8('{"k":"refund-credit","purchaseId":"p","url":"https://x","order":"o","amount":1,"asn":"a","application":"tunion","keyIndex":1,"at":1,"onlineSerial":0,"balance":1,"mac2":"AABBCCDD"}'),
      maxLength: 300,
      run(input) {
        readRecord({ seq: 1, payload: input });
      },
    },
    {
      name: "journal storage", sample: hex("544A3032000000010000000100000000" + "A5FF0004000000017B7D7D00".repeat(4)), maxLength: 512,
      run(input) {
        // Whatever the flash holds, opening the journal either works or says it cannot: 4 blocks of 128 bytes.
        const storage = new MemoryStorage(512, 128);
        storage.bytes.set(input.subarray(0, 512));
        if (input.length > 128) storage.bytes.set(input.subarray(0, 128), 256);
        new Journal({ storage });
      },
    },
    {
      name: "front-end answers", sample: new Uint8Array([0, ...utf8('{"purchaseId":"p","tsn":1,"date":"20261201","time":"120000","mac1":"00112233","mac2":"44556677"}')]),
      maxLength: 200,
      async run(input) {
        frontendAnswer(input);
        const which = (input[1] ?? 0) % 3;
        if (which === 0) await client.authorize(url, { terminalId: "310001029313", order: "o", amount: 1, keyIndex: 1, transactionType: 6, application: "tunion", basicData: "", initResponse: "" });
        else if (which === 1) await client.complete(url, "p", { outcome: "not-debited" });
        else await client.routes(url);
      },
    },
    {
      name: "front-end refund answers", sample: new Uint8Array([0, ...utf8('{"purchaseId":"p","onlineSerial":0,"date":"20261201","time":"120000","mac2":"44556677","status":"owed"}')]),
      maxLength: 200,
      async run(input) {
        frontendAnswer(input);
        if ((input[1] ?? 0) % 2 === 0) {
          await authorizeRefund(client, url, { terminalId: "310001029313", purchaseId: "p", amount: 1, keyIndex: 1, application: "tunion", basicData: "", initResponse: "" });
        } else await completeRefund(client, url, "p", { outcome: "not-credited", amount: 1, reason: "card-gone" });
      },
    },
  ];
}

/** Runs one target on `inputs` deterministic inputs (seeded), collecting what is not a typed error. */
export async function fuzz(target: FuzzTarget, inputs: number, seed: number, now: () => number): Promise<FuzzReport> {
  const next = prng(seed);
  const report: FuzzReport = { name: target.name, inputs, accepted: 0, typedErrors: 0, findings: [], findingCount: 0, ms: 0 };
  const started = now();
  const sample = target.sample;
  for (let run = 0; run < inputs; run++) {
    const r = next();
    let bytes: Uint8Array;
    if (r % 3 === 2) {
      bytes = sample.slice();
      for (let n = 1 + ((r >>> 4) % 3); n > 0; n--) bytes[next() % bytes.length] = next() & 0xff;
    } else {
      bytes = new Uint8Array(r % 3 === 1 ? sample.length : (r >>> 4) % (target.maxLength + 1));
      for (let i = 0; i < bytes.length; i++) bytes[i] = next() & 0xff;
    }
    const finding = (kind: "untyped" | "hang", message: string) => {
      report.findingCount++;
      if (report.findings.length < 5) {
        let h = "";
        for (let i = 0; i < Math.min(bytes.length, 64); i++) h += (bytes[i]! < 16 ? "0" : "") + bytes[i]!.toString(16);
        report.findings.push({ kind, message, input: h });
      }
    };
    try {
      const result = target.run(bytes);
      if (result && typeof (result as Promise<unknown>).then === "function") {
        // An answer is in hand before the call (the connection answers at once): a promise still pending after
        // the jobs queue drains is a hang.
        let settled = false;
        const p = (result as Promise<unknown>).then(() => { settled = true; }, (error: unknown) => {
          settled = true;
          throw error;
        });
        for (let i = 0; i < 32 && !settled; i++) await Promise.resolve();
        if (!settled) {
          finding("hang", "promise did not settle");
          continue;
        }
        await p;
      }
      report.accepted++;
    } catch (error) {
      if (error instanceof CodedError) report.typedErrors++;
      else finding("untyped", String((error as Error)?.stack ?? error));
    }
  }
  report.ms = now() - started;
  return report;
}
