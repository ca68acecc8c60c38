import * as assert from "../lib/assert";
import { ApduError, type Transceiver } from "../../modules/iso7816/index";
import { fromHex, toHex } from "../../modules/bytes/bytes";
import {
  AID_CITY_UNION, AID_TUNION, CITY_UNION_APPLICATION, PurseCard, PurseFormatError, TUNION_APPLICATION,
  debitForPurchase, decodeBcd, decodeDate, decodeTime, describeCommand, describeResponse, encodeAmount, encodeBcd,
  encodeDate, encodeTime, formatYuan, getBalance, getTransactionProve, initializeForPurchase, isValidDate, isValidTime,
  parseBalance, parseBasicData, parseDebitForPurchase, parseFci, parseInitializeForPurchase, parseTransactionProve,
  parseTransactionRecord, readBinary, readRecord, selectByFid, selectByName,
} from "../../modules/purse/index";
import { encodeCommand } from "../../modules/iso7816/apdu";

const TUNION_0x15 = "01011000FFFFFFFF02010310517007010479138120190718204012310000";
const CITY_0x15 = "41004100000000000101000041000000899999852015010120301231" + "0500";

describe("purse: command builders (bytes from docs/purse.md §4)", () => {
  it("SELECT by AID and by FID", () => {
    assert.hex(encodeCommand(selectByName(AID_TUNION)), "00A4040008A00000063201010500");
    assert.hex(encodeCommand(selectByName(AID_CITY_UNION)), "00A4040009A0000000038698070100");
    assert.hex(encodeCommand(selectByFid(0x1001)), "00A4000002100100");
    assert.throws(() => selectByName(new Uint8Array(3)), PurseFormatError);
  });
  it("READ BINARY by SFI and READ RECORD of the 0x18 log", () => {
    assert.hex(encodeCommand(readBinary(0x15, 0, 30)), "00B095001E");
    assert.hex(encodeCommand(readBinary(0x17, 0, 11)), "00B097000B");
    assert.hex(encodeCommand(readBinary(0x16)), "00B0960000");
    assert.hex(encodeCommand(readRecord(0x18, 1, 23)), "00B201C417");
    assert.throws(() => readBinary(0), PurseFormatError);
    assert.throws(() => readBinary(31), PurseFormatError);
    assert.throws(() => readRecord(0x18, 0), PurseFormatError);
  });
  it("GET BALANCE, INITIALIZE FOR PURCHASE, DEBIT FOR PURCHASE, GET TRANSACTION PROVE", () => {
    assert.hex(encodeCommand(getBalance()), "805C000204");
    assert.hex(encodeCommand(initializeForPurchase({ keyIndex: 1, amount: 0x1000, terminalId: fromHex("001122334455") })), "805001020B0100001000001122334455" + "0F");
    assert.hex(encodeCommand(initializeForPurchase({ keyIndex: 1, amount: 0x1c37, terminalId: fromHex("000000000001"), compound: true })), "805003020B0100001C37000000000001" + "0F");
    assert.hex(encodeCommand(debitForPurchase({ tsn: 1, date: "20120229", time: "135100", mac1: fromHex("F15CAB75") })), "805401000F0000000120120229135100F15CAB7508");
    assert.hex(encodeCommand(getTransactionProve(0x06, 1)), "805A000602000108");
  });
  it("refuses wrong sizes and values in builders", () => {
    assert.throws(() => initializeForPurchase({ keyIndex: 1, amount: 1, terminalId: new Uint8Array(5) }), PurseFormatError);
    assert.throws(() => initializeForPurchase({ keyIndex: 1, amount: -1, terminalId: new Uint8Array(6) }), PurseFormatError);
    assert.throws(() => initializeForPurchase({ keyIndex: 1, amount: 1.5, terminalId: new Uint8Array(6) }), PurseFormatError);
    assert.throws(() => initializeForPurchase({ keyIndex: 256, amount: 1, terminalId: new Uint8Array(6) }), PurseFormatError);
    assert.throws(() => debitForPurchase({ tsn: 1, date: "20120230", time: "135100", mac1: new Uint8Array(4) }), PurseFormatError);
    assert.throws(() => debitForPurchase({ tsn: 1, date: "20120229", time: "246000", mac1: new Uint8Array(4) }), PurseFormatError);
    assert.throws(() => debitForPurchase({ tsn: 2 ** 32, date: "20120229", time: "135100", mac1: new Uint8Array(4) }), PurseFormatError);
    assert.throws(() => debitForPurchase({ tsn: 1, date: "20120229", time: "135100", mac1: new Uint8Array(3) }), PurseFormatError);
    assert.throws(() => getTransactionProve(6, 0x10000), PurseFormatError);
  });
});

describe("purse: response parsers", () => {
  it("INITIALIZE FOR PURCHASE: the 15-byte answer (blog example and a real Changsha card)", () => {
    const blog = parseInitializeForPurchase(fromHex("000000000000000000010011223344"));
    assert.deepEqual(blog, { balance: 0, epSerial: 0, overdraftLimit: 0, keyVersion: 1, algorithmId: 0, random: fromHex("11223344"), raw: fromHex("000000000000000000010011223344") });
    const real = parseInitializeForPurchase(fromHex("00001C37 0000 000000 01 00 9AC87503"));
    assert.equal(real.balance, 0x1c37);
    assert.hex(real.random, "9AC87503");
    const rich = parseInitializeForPurchase(fromHex("0001E240 0102 0003E8 02 04 CAFEBABE"));
    assert.deepEqual([rich.balance, rich.epSerial, rich.overdraftLimit, rich.keyVersion, rich.algorithmId], [123456, 258, 1000, 2, 4]);
  });
  it("a balance with bit 31 set reads as negative (overdraft in use)", () => {
    assert.equal(parseBalance(fromHex("FFFFFF9C")), -100);
    assert.equal(parseBalance(fromHex("00000F44")), 3908);
  });
  it("DEBIT answers TAC then MAC2; GET TRANSACTION PROVE answers MAC2 then TAC", () => {
    const d = parseDebitForPurchase(fromHex("1111111122222222"));
    assert.hex(d.tac, "11111111");
    assert.hex(d.mac2, "22222222");
    const p = parseTransactionProve(fromHex("1111111122222222"));
    assert.hex(p.mac2, "11111111");
    assert.hex(p.tac, "22222222");
    assert.deepEqual([p.hasMac2, p.hasTac], [true, true]);
    // A load's proof from a card OS that keeps no MAC2 for loads: zeros, then the TAC (docs/purse.md §9.1).
    const load = parseTransactionProve(fromHex("00000000A1B2C3D4"));
    assert.deepEqual([load.hasMac2, load.hasTac], [false, true]);
    assert.hex(load.tac, "A1B2C3D4");
    assert.deepEqual([parseTransactionProve(new Uint8Array(8)).hasMac2, parseTransactionProve(new Uint8Array(8)).hasTac], [false, false]);
  });
  it("rejects truncated and overlong answers", () => {
    for (const parse of [parseInitializeForPurchase, parseDebitForPurchase, parseTransactionProve, parseBalance]) {
      assert.throws(() => parse(new Uint8Array(0)), PurseFormatError);
      assert.throws(() => parse(new Uint8Array(3)), PurseFormatError);
      assert.throws(() => parse(new Uint8Array(16)), PurseFormatError);
    }
  });
  it("FCI: the T-Union sample with its 9F0C basic data", () => {
    const fci = parseFci(fromHex("6F318408A000000632010105A5259F0801029F0C1E" + TUNION_0x15));
    assert.equal(fci.dfName, "A000000632010105");
    assert.equal(fci.applicationVersion, 2);
    assert.hex(fci.issuerDiscretionary!, TUNION_0x15);
    assert.deepEqual(parseFci(new Uint8Array(0)), {});
    assert.throws(() => parseFci(fromHex("6F318408A0000006")), PurseFormatError);
    assert.throws(() => parseFci(fromHex("840100")), PurseFormatError);
  });
});

describe("purse: card files", () => {
  it("0x15 in the T-Union layout", () => {
    const b = parseBasicData(fromHex(TUNION_0x15), "tunion");
    assert.equal(b.issuer, "01011000FFFFFFFF");
    assert.equal(b.cityCode, "1000");
    assert.equal(b.cardType, 2);
    assert.equal(b.applicationVersion, 1);
    assert.equal(b.asn, "03105170070104791381");
    assert.hex(b.diversificationFactor, "5170070104791381");
    assert.equal(b.startDate, "20190718");
    assert.equal(b.expiryDate, "20401231");
    assert.ok(b.enabled);
  });
  it("0x15 of the terminal-comment sample gives the published diversification factor", () => {
    const b = parseBasicData(fromHex("02313750FFFFFFFF0201031049906000000000062017010820991231" + "0000"), "tunion");
    assert.hex(b.diversificationFactor, "4990600000000006");
    assert.equal(b.cityCode, "3750");
  });
  it("0x15 in the CJ/T 166 city layout", () => {
    const b = parseBasicData(fromHex(CITY_0x15), "cityunion");
    assert.equal(b.issuer, "4100");
    assert.equal(b.cityCode, "4100");
    assert.equal(b.asn, "4100000089999985");
    assert.hex(b.diversificationFactor, "4100000089999985");
    assert.equal(b.cardType, 5);
    assert.ok(b.enabled);
    assert.equal(b.startDate, "20150101");
    assert.equal(b.expiryDate, "20301231");
    const disabled = fromHex(CITY_0x15);
    disabled[8] = 0;
    assert.equal(parseBasicData(disabled, "cityunion").enabled, false);
  });
  it("0x15: wrong length, bad BCD dates and impossible dates throw PurseFormatError", () => {
    assert.throws(() => parseBasicData(fromHex(TUNION_0x15).slice(0, 29), "tunion"), PurseFormatError);
    assert.throws(() => parseBasicData(fromHex(TUNION_0x15 + "00"), "tunion"), PurseFormatError);
    const badBcd = fromHex(TUNION_0x15);
    badBcd[21] = 0x1a;
    assert.throws(() => parseBasicData(badBcd, "tunion"), PurseFormatError);
    const feb30 = fromHex(TUNION_0x15);
    feb30.set(fromHex("20230230"), 24);
    assert.throws(() => parseBasicData(feb30, "tunion"), PurseFormatError);
    const badAsn = fromHex(TUNION_0x15);
    badAsn[15] = 0xff;
    assert.throws(() => parseBasicData(badAsn, "tunion"), PurseFormatError);
    assert.throws(() => parseBasicData(fromHex(TUNION_0x15), "other" as "tunion"), PurseFormatError);
  });
  it("a 0x18 record (the Hangzhou sample)", () => {
    const r = parseTransactionRecord(fromHex("0008 000000 0000016C 09 310001029313 20140614 173611"));
    assert.deepEqual(r, { epSerial: 8, overdraftLimit: 0, amount: 364, transactionType: 9, terminalId: "310001029313", date: "20140614", time: "173611" });
    assert.throws(() => parseTransactionRecord(new Uint8Array(22)), PurseFormatError);
    assert.throws(() => parseTransactionRecord(fromHex("0008 000000 0000016C 09 310001029313 20141314 173611")), PurseFormatError);
  });
});

describe("purse: BCD, dates, amounts", () => {
  it("encodes and decodes BCD", () => {
    assert.hex(encodeBcd("20120229"), "20120229");
    assert.equal(decodeBcd(fromHex("135100")), "135100");
    assert.throws(() => encodeBcd("123"), PurseFormatError);
    assert.throws(() => encodeBcd("12a4"), PurseFormatError);
    assert.throws(() => decodeBcd(fromHex("1A")), PurseFormatError);
  });
  it("validates calendar dates, leap years included, and times of day", () => {
    assert.ok(isValidDate("20240229"));
    assert.ok(isValidDate("20000229"));
    assert.ok(!isValidDate("19000229"));
    assert.ok(!isValidDate("20230229"));
    assert.ok(!isValidDate("20231301"));
    assert.ok(!isValidDate("20230100"));
    assert.ok(!isValidDate("2023011"));
    assert.ok(isValidTime("235959"));
    assert.ok(!isValidTime("240000"));
    assert.ok(!isValidTime("126000"));
    assert.hex(encodeDate("20991231"), "20991231");
    assert.hex(encodeTime("000000"), "000000");
    assert.equal(decodeDate(fromHex("20120229")), "20120229");
    assert.equal(decodeTime(fromHex("135100")), "135100");
    assert.throws(() => decodeDate(fromHex("201202")), PurseFormatError);
    assert.throws(() => decodeTime(fromHex("13510000")), PurseFormatError);
  });
  it("amounts are whole fen in 4 bytes", () => {
    assert.hex(encodeAmount(0x1000), "00001000");
    assert.hex(encodeAmount(0xffffffff), "FFFFFFFF");
    assert.throws(() => encodeAmount(2 ** 32), PurseFormatError);
    assert.throws(() => encodeAmount(0.5), PurseFormatError);
    assert.equal(formatYuan(1234), "12.34");
    assert.equal(formatYuan(5), "0.05");
    assert.equal(formatYuan(-250), "-2.50");
  });
});

/** A card that answers from a table keyed by command hex. */
function tableCard(table: { [command: string]: string[] }): Transceiver & { sent: string[] } {
  const sent: string[] = [];
  return {
    sent,
    async transceive(command: Uint8Array) {
      const key = toHex(command);
      sent.push(key);
      const answers = table[key];
      if (!answers || !answers.length) return fromHex("6D00");
      return fromHex(answers.length > 1 ? answers.shift()! : answers[0]!);
    },
  };
}

describe("purse: PurseCard session", () => {
  it("selects by the configured order, moving past a missing application", async () => {
    const card = tableCard({
      "00A4040008A00000063201010500": ["6A82"],
      "00A4040009A0000000038698070100": ["6F0B8409A000000003869807019000"],
    });
    const purse = new PurseCard(card);
    const { application, fci } = await purse.selectApplication([TUNION_APPLICATION, CITY_UNION_APPLICATION]);
    assert.equal(application.layout, "cityunion");
    assert.equal(fci.dfName, "A00000000386980701");
    assert.equal(card.sent.length, 2);
  });
  it("throws ApduError when no application answers, and stops at a status other than not-found", async () => {
    const none = new PurseCard(tableCard({ "00A4040008A00000063201010500": ["6A82"], "00A4040009A0000000038698070100": ["6A82"] }));
    await assert.rejects(none.selectApplication([TUNION_APPLICATION, CITY_UNION_APPLICATION]), ApduError, (e) => e.sw === 0x6a82);
    const locked = tableCard({ "00A4040008A00000063201010500": ["9303"] });
    await assert.rejects(new PurseCard(locked).selectApplication([TUNION_APPLICATION, CITY_UNION_APPLICATION]), ApduError, (e) => e.sw === 0x9303);
    assert.equal(locked.sent.length, 1);
  });
  it("reads the basic data, runs INIT and DEBIT, and reads the log until 6A83", async () => {
    const card = tableCard({
      "00A4040008A00000063201010500": ["9000"],
      "00B095001E": [TUNION_0x15 + "9000"],
      "805001020B01000010000011223344550F": ["610F"],
      "00C000000F": ["0000200000050000000100112233449000"],
      "805401000F0000000120120229135100F15CAB7508": ["AABBCCDD112233449000"],
      "00B201C417": ["0008000000000001000631000102931320140614173611" + "9000"],
      "00B202C417": ["6A83"],
    });
    card.sent.length = 0;
    const purse = new PurseCard(card);
    await purse.selectApplication([TUNION_APPLICATION]);
    const basic = await purse.readBasicData();
    assert.equal(basic.asn, "03105170070104791381");
    const init = await purse.initializeForPurchase({ keyIndex: 1, amount: 0x1000, terminalId: fromHex("001122334455") });
    assert.deepEqual([init.balance, init.epSerial, init.keyVersion, init.algorithmId], [0x2000, 5, 1, 0]);
    const debit = await purse.debitForPurchase({ tsn: 1, date: "20120229", time: "135100", mac1: fromHex("F15CAB75") });
    assert.hex(debit.tac, "AABBCCDD");
    assert.hex(debit.mac2, "11223344");
    const log = await purse.readTransactionLog();
    assert.equal(log.length, 1);
    assert.equal(log[0]!.amount, 256);
  });
  it("INIT on a poor card surfaces 9401 as an ApduError; PROVE's 9406 is 'no proof'", async () => {
    const card = tableCard({
      "805001020B01000010000011223344550F": ["9401"],
      "805A000602000608": ["9406"],
    });
    const purse = new PurseCard(card);
    await assert.rejects(purse.initializeForPurchase({ keyIndex: 1, amount: 0x1000, terminalId: fromHex("001122334455") }), ApduError, (e) => e.sw === 0x9401);
    assert.equal(await purse.getTransactionProve(6, 6), undefined);
  });
  it("a card that answers garbage gets a typed error, not a crash", async () => {
    const card = tableCard({ "00B095001E": ["0102039000"], "805C000204": ["019000"] });
    const purse = new PurseCard(card);
    await assert.rejects(purse.readBasicData("tunion"), PurseFormatError);
    await assert.rejects(purse.getBalance(), PurseFormatError);
  });
});

describe("purse: trace", () => {
  it("names commands and decodes their answers", () => {
    assert.equal(describeCommand(fromHex("00A4040008A00000063201010500")), "SELECT AID A000000632010105");
    assert.equal(describeCommand(fromHex("00B095001E")), "READ BINARY SFI 0x15 (basic data) offset 0");
    assert.equal(describeCommand(fromHex("805001020B01000010000011223344550F")), "INITIALIZE FOR PURCHASE key index 1 amount 40.96 terminal 001122334455");
    assert.equal(describeCommand(fromHex("805401000F0000000120120229135100F15CAB7508")), "DEBIT FOR PURCHASE TSN 1 at 20120229 135100 MAC1 F15CAB75");
    assert.equal(describeCommand(fromHex("805A000602000108")), "GET TRANSACTION PROVE type 06 serial 1");
    assert.equal(describeResponse(fromHex("805001020B01000010000011223344550F"), fromHex("000000000000000000010011223344" + "9000")),
      "9000 balance 0.00 serial 0 overdraft 0.00 key version 1 algorithm 0 random 11223344");
    assert.equal(describeResponse(fromHex("805401000F"), fromHex("AABBCCDD112233449000")), "9000 TAC AABBCCDD MAC2 11223344");
    assert.equal(describeResponse(fromHex("805001020B"), fromHex("9401")), "9401 insufficient balance");
  });
  it("never throws on garbage", () => {
    assert.ok(describeCommand(fromHex("01")).startsWith("malformed APDU"));
    assert.ok(describeResponse(fromHex("01"), fromHex("01")).startsWith("malformed response"));
  });
});
