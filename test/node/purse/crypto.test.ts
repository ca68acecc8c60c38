import assert from "node:assert/strict";
import { fromHex, toHex } from "../../../modules/bytes/bytes";
import {
  PurseCryptoError, algorithmFromId, algorithmId, diversifyKey, macEquals, pbocMac, purchaseMac1, purchaseMac2,
  purchaseSessionKey, purchaseTac, tacKey,
} from "../../../tools/purse-crypto/index";

const KEY = fromHex("11223344556677888877665544332211");
const TERMINAL = fromHex("001122334455");
const V1 = { amount: 0x1000, type: 0x06, terminalId: TERMINAL, date: "20120229", time: "135100" };

describe("purse crypto: published vectors (docs/purse.md §7)", () => {
  it("V1: 3DES purchase session key, MAC1 and MAC2 from the published PBOC example", () => {
    const sespk = purchaseSessionKey("3des", KEY, fromHex("11223344"), 0, 1);
    assert.equal(toHex(sespk), "003238ABC57659DD");
    assert.equal(toHex(purchaseMac1("3des", sespk, V1)), "F15CAB75");
    assert.equal(toHex(purchaseMac2("3des", sespk, 0x1000)), "56988A13");
  });
  it("V2: the published load example (session key input random || serial || 8000)", () => {
    const seslk = purchaseSessionKey("3des", KEY, fromHex("11223344"), 0, 0x8000);
    assert.equal(toHex(seslk), "9B1D924E05595603");
    assert.equal(toHex(pbocMac("3des", seslk, fromHex("00000000 00001000 01 001122334455"))), "2988AE5A");
    assert.equal(toHex(pbocMac("3des", seslk, fromHex("00001000 01 001122334455 20111221 214822"))), "3A845BF0");
  });
  it("V4: diversification (3DES and SM4) and the DES TAC", () => {
    assert.equal(toHex(diversifyKey("3des", KEY, fromHex("0000000000000001"))), "6B3C059DBA64295091C3F108689C120A");
    assert.equal(toHex(diversifyKey("3des", KEY, fromHex("4990600000000006"))), "A7AF3BFB3229705393EAA41E1A458F9A");
    assert.equal(toHex(diversifyKey("sm4", KEY, fromHex("0000000000000001"))), "94AA6036A0259B3D5B6CE208675ADF13");
    const dtk = fromHex("00112233445566778899AABBCCDDEEFF");
    assert.equal(toHex(tacKey("3des", dtk)), "8888888888888888");
    assert.equal(toHex(purchaseTac("3des", dtk, { ...V1, tsn: 1 })), "B3A0D49C");
  });
  it("V4: SM4 purchase under our decisions (session key padded with 80 00.., MAC variant (a))", () => {
    const sespk = purchaseSessionKey("sm4", KEY, fromHex("11223344"), 0, 1);
    assert.equal(toHex(sespk), "9D9CE1CC45B1F817FA2CBF52C3FC18D5");
    assert.equal(toHex(purchaseMac1("sm4", sespk, V1)), "9454C578");
    assert.equal(toHex(purchaseMac2("sm4", sespk, 0x1000)), "1553DDE1");
    assert.equal(toHex(tacKey("sm4", KEY)), toHex(KEY));
  });
  it("the SM4 standard vector (GB/T 32907 appendix A), through SM4 diversification whose input is F || NOT F", () => {
    // The standard's plaintext 0123456789ABCDEF FEDCBA9876543210 is exactly F || NOT F for F = 0123456789ABCDEF.
    const key = fromHex("0123456789ABCDEFFEDCBA9876543210");
    assert.equal(toHex(diversifyKey("sm4", key, fromHex("0123456789ABCDEF"))), "681EDF34D206965E86B3E94F536E4246");
  });
  it("NIST TDEA known answers (SP 800-20, K1 = K2 = K3) and the classic DES example, through the 3DES path", () => {
    const des = (key: string, plain: string) => toHex(diversifyKey("3des", fromHex(key + key), fromHex(plain)).slice(0, 8));
    assert.equal(des("0101010101010101", "8000000000000000"), "95F8A5E5DD31D900");
    assert.equal(des("0101010101010101", "4000000000000000"), "DD7F121CA5015619");
    assert.equal(des("8001010101010101", "0000000000000000"), "95A8D72813DAA94D");
    assert.equal(des("133457799BBCDFF1", "0123456789ABCDEF"), "85E813540F0AB405");
  });
});

describe("purse crypto: arguments", () => {
  const isCryptoError = (e: unknown) => e instanceof PurseCryptoError && e.code === "PURSE_CRYPTO";
  it("wrong key, factor, random and MAC key sizes throw PurseCryptoError", () => {
    assert.throws(() => diversifyKey("3des", new Uint8Array(8), new Uint8Array(8)), isCryptoError);
    assert.throws(() => diversifyKey("sm4", KEY, new Uint8Array(7)), isCryptoError);
    assert.throws(() => purchaseSessionKey("3des", KEY, new Uint8Array(3), 0, 1), isCryptoError);
    assert.throws(() => purchaseSessionKey("3des", KEY, new Uint8Array(4), 0x10000, 1), isCryptoError);
    assert.throws(() => purchaseSessionKey("3des", KEY, new Uint8Array(4), 0, -1), isCryptoError);
    assert.throws(() => pbocMac("sm4", new Uint8Array(8), new Uint8Array(1)), isCryptoError);
    assert.throws(() => pbocMac("3des", new Uint8Array(12), new Uint8Array(1)), isCryptoError);
    assert.throws(() => purchaseMac2("3des", new Uint8Array(16), 1), isCryptoError);
    assert.throws(() => purchaseMac2("sm4", new Uint8Array(8), 1), isCryptoError);
    assert.throws(() => purchaseTac("3des", new Uint8Array(8), { ...V1, tsn: 1 }), isCryptoError);
  });
  it("bad fields in MAC1 and TAC input throw PurseCryptoError", () => {
    const sk = new Uint8Array(8);
    assert.throws(() => purchaseMac1("3des", sk, { ...V1, terminalId: new Uint8Array(5) }), isCryptoError);
    assert.throws(() => purchaseMac1("3des", sk, { ...V1, date: "20120230" }), isCryptoError);
    assert.throws(() => purchaseMac1("3des", sk, { ...V1, time: "1351" }), isCryptoError);
    assert.throws(() => purchaseMac1("3des", sk, { ...V1, amount: 2 ** 32 }), isCryptoError);
    assert.throws(() => purchaseMac1("3des", sk, { ...V1, type: 256 }), isCryptoError);
    assert.throws(() => purchaseTac("3des", KEY, { ...V1, tsn: 1.5 }), isCryptoError);
    assert.throws(() => purchaseMac1("aes" as "3des", sk, V1), isCryptoError);
  });
  it("maps the INIT algorithm identifier: 00 = 3DES, 04 = SM4, others refused", () => {
    assert.equal(algorithmFromId(0x00), "3des");
    assert.equal(algorithmFromId(0x04), "sm4");
    assert.throws(() => algorithmFromId(0x01), isCryptoError);
    assert.equal(algorithmId("sm4"), 4);
  });
  it("macEquals compares in constant time and refuses mismatched lengths", () => {
    assert.ok(macEquals(fromHex("01020304"), fromHex("01020304")));
    assert.ok(!macEquals(fromHex("01020304"), fromHex("01020305")));
    assert.ok(!macEquals(fromHex("01020304"), fromHex("010203")));
  });
});
