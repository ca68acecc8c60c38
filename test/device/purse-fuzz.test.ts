import * as assert from "../lib/assert";
import { ApduFormatError, decodeCommand, decodeResponse } from "../../modules/iso7816/index";
import { fromHex } from "../../modules/bytes/bytes";
import {
  PurseFormatError, describeCommand, describeResponse, parseBalance, parseBasicData, parseDebitForPurchase, parseFci,
  parseInitializeForPurchase, parseTransactionProve, parseTransactionRecord,
} from "../../modules/purse/index";

// Every parser of card answers gets 100,000 byte strings: a third of random length, a third of exactly the length it
// expects, a third a valid sample with a few bytes changed, so the checks behind the length check are reached too.
// Only our typed errors may come out.

const RUNS = 100_000;

const TUNION_0x15 = "01011000FFFFFFFF02010310517007010479138120190718204012310000";
const parsers: { name: string; sample: string; parse: (b: Uint8Array) => unknown }[] = [
  { name: "response APDU", sample: "00000F449000", parse: decodeResponse },
  { name: "command APDU", sample: "805001020B01000010000011223344550F", parse: decodeCommand },
  { name: "INITIALIZE FOR PURCHASE", sample: "00001C3700000000000100" + "9AC87503", parse: parseInitializeForPurchase },
  { name: "DEBIT FOR PURCHASE", sample: "AABBCCDD11223344", parse: parseDebitForPurchase },
  { name: "GET TRANSACTION PROVE", sample: "11223344AABBCCDD", parse: parseTransactionProve },
  { name: "GET BALANCE", sample: "00000F44", parse: parseBalance },
  { name: "FCI", sample: "6F318408A000000632010105A5259F0801029F0C1E" + TUNION_0x15, parse: parseFci },
  { name: "0x15 T-Union", sample: TUNION_0x15, parse: (b) => parseBasicData(b, "tunion") },
  { name: "0x15 city", sample: "41004100000000000101000041000000899999852015010120301231" + "0500", parse: (b) => parseBasicData(b, "cityunion") },
  { name: "0x18 record", sample: "00080000000000016C0931000102931320140614173611", parse: parseTransactionRecord },
  { name: "trace", sample: "805401000F0000000120120229135100F15CAB7508", parse: (b) => describeResponse(b, b) + describeCommand(b) },
];

describe("purse: fuzzing every response parser", () => {
  for (const [index, p] of parsers.entries()) {
    it(`${p.name}: ${RUNS} random inputs, only typed errors`, () => {
      const next = assert.prng(0x5eed + index);
      const sample = fromHex(p.sample);
      let accepted = 0;
      for (let run = 0; run < RUNS; run++) {
        const r = next();
        let bytes: Uint8Array;
        if (r % 3 === 2) {
          bytes = sample.slice();
          for (let n = 1 + ((r >>> 4) % 3); n > 0; n--) bytes[next() % bytes.length] = next() & 0xff;
        } else {
          bytes = new Uint8Array(r % 3 === 1 ? sample.length : (r >>> 4) % 64);
          for (let i = 0; i < bytes.length; i++) bytes[i] = next() & 0xff;
        }
        const length = bytes.length;
        try {
          p.parse(bytes);
          accepted++;
        } catch (error) {
          if (!(error instanceof PurseFormatError) && !(error instanceof ApduFormatError)) {
            throw new Error(`${p.name} threw an untyped ${String(error)} for input of ${length} bytes`);
          }
        }
      }
      assert.ok(accepted > 0, `${p.name} accepted no input at all`);
    });
  }
});
