import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { ApduError } from "../../../modules/iso7816/errors";
import { fromHex, toHex } from "../../../modules/bytes/bytes";
import { CITY_UNION_APPLICATION, PurseCard, TUNION_APPLICATION } from "../../../modules/purse/session";
import { parseTransactionProve } from "../../../modules/purse/responses";
import { CardRemovedError, VirtualCard, issueCard, type MasterKeys } from "../../../tools/sim/cardsim/index";
import {
  algorithmFromId, diversifyKey, macEquals, purchaseMac1, purchaseMac2, purchaseSessionKey, purchaseTac, type PurseAlgorithm,
} from "../../../tools/purse-crypto/index";

const MASTER: MasterKeys = { purchase: fromHex("11223344556677888877665544332211"), tac: fromHex("00112233445566778899AABBCCDDEEFF") };
const TERMINAL = fromHex("310001029313");

function tunionCard(balance = 5000, algorithm: PurseAlgorithm = "3des") {
  return new VirtualCard(issueCard([{ layout: "tunion", algorithm, asn: "03104990600000000006", cityCode: "3750", masterKeys: MASTER, balance }]));
}
function cityCard(balance = 5000, algorithm: PurseAlgorithm = "sm4") {
  return new VirtualCard(issueCard([{ layout: "cityunion", algorithm, asn: "4100000089999985", cityCode: "4100", masterKeys: MASTER, balance }]));
}

/** Plays the front-end: derives the card's keys from the master keys, makes MAC1, and checks MAC2 and TAC. */
async function purchase(card: VirtualCard, amount: number, tsn: number, opts: { order?: typeof TUNION_APPLICATION[]; tamperMac1?: boolean } = {}) {
  const purse = new PurseCard(card);
  const { application } = await purse.selectApplication(opts.order ?? [TUNION_APPLICATION, CITY_UNION_APPLICATION]);
  const basic = await purse.readBasicData(application.layout);
  const init = await purse.initializeForPurchase({ keyIndex: 1, amount, terminalId: TERMINAL });
  const alg = algorithmFromId(init.algorithmId);
  const dpk = diversifyKey(alg, MASTER.purchase, basic.diversificationFactor);
  const dtk = diversifyKey(alg, MASTER.tac, basic.diversificationFactor);
  const sessionKey = purchaseSessionKey(alg, dpk, init.random, init.epSerial, tsn);
  const fields = { amount, type: 0x06, terminalId: TERMINAL, date: "20261126", time: "120000" };
  const mac1 = purchaseMac1(alg, sessionKey, fields);
  if (opts.tamperMac1) mac1[0] ^= 1;
  const debit = await purse.debitForPurchase({ tsn, date: fields.date, time: fields.time, mac1 });
  return {
    purse, basic, init, debit, alg,
    mac2Ok: macEquals(debit.mac2, purchaseMac2(alg, sessionKey, amount)),
    tacOk: macEquals(debit.tac, purchaseTac(alg, dtk, { ...fields, tsn })),
  };
}

describe("virtual card: purchases against the purse cryptography", () => {
  it("a 3DES T-Union card: debited, MAC2 and TAC verify, serial and log move on", async () => {
    const card = tunionCard(5000, "3des");
    const r = await purchase(card, 150, 7);
    assert.equal(r.alg, "3des");
    assert.equal(r.init.balance, 5000);
    assert.equal(r.init.epSerial, 0);
    assert.ok(r.mac2Ok && r.tacOk);
    assert.equal(card.application("tunion").balance, 4850);
    assert.equal(await r.purse.getBalance(), 4850);
    const log = await r.purse.readTransactionLog();
    assert.equal(log.length, 1);
    assert.deepEqual(log[0], { epSerial: 0, overdraftLimit: 0, amount: 150, transactionType: 6, terminalId: "310001029313", date: "20261126", time: "120000" });
    const second = await purchase(card, 50, 8);
    assert.equal(second.init.epSerial, 1);
    assert.equal(card.application("tunion").balance, 4800);
  });

  it("an SM4 city card at the CJ/T layout: debited, MAC2 and TAC verify", async () => {
    const card = cityCard(300, "sm4");
    const r = await purchase(card, 300, 1);
    assert.equal(r.alg, "sm4");
    assert.equal(r.init.algorithmId, 0x04);
    assert.equal(r.basic.layout, "cityunion");
    assert.equal(r.basic.cityCode, "4100");
    assert.ok(r.mac2Ok && r.tacOk);
    assert.equal(card.application("cityunion").balance, 0);
  });

  it("a wrong MAC1 gets 9302 and the card keeps its money and serial", async () => {
    const card = tunionCard(5000);
    await assert.rejects(purchase(card, 100, 1, { tamperMac1: true }), (e: unknown) => e instanceof ApduError && e.sw === 0x9302);
    assert.equal(card.application("tunion").balance, 5000);
    assert.equal(card.application("tunion").epSerial, 0);
  });

  it("too little money gets 9401 at INIT; overdraft counts", async () => {
    await assert.rejects(purchase(tunionCard(99), 100, 1), (e: unknown) => e instanceof ApduError && e.sw === 0x9401);
    const card = new VirtualCard(issueCard([{ layout: "tunion", algorithm: "3des", asn: "03104990600000000007", cityCode: "3750", masterKeys: MASTER, balance: 50, overdraftLimit: 100 }]));
    const r = await purchase(card, 120, 1);
    assert.ok(r.mac2Ok);
    assert.equal(await r.purse.getBalance(), -70);
  });

  it("DEBIT without INIT gets 6985; a wrong key index 9403", async () => {
    const card = tunionCard();
    const purse = new PurseCard(card);
    await purse.selectApplication([TUNION_APPLICATION]);
    await assert.rejects(purse.debitForPurchase({ tsn: 1, date: "20261126", time: "120000", mac1: new Uint8Array(4) }), (e: unknown) => e instanceof ApduError && e.sw === 0x6985);
    await assert.rejects(purse.initializeForPurchase({ keyIndex: 2, amount: 1, terminalId: TERMINAL }), (e: unknown) => e instanceof ApduError && e.sw === 0x9403);
  });

  it("a card carrying both applications follows the configured order", async () => {
    const state = issueCard([
      { layout: "tunion", algorithm: "3des", asn: "03104100000089999985", cityCode: "4100", masterKeys: MASTER, balance: 1000 },
      { layout: "cityunion", algorithm: "sm4", asn: "4100000089999985", cityCode: "4100", masterKeys: MASTER, balance: 2000 },
    ]);
    const first = await purchase(new VirtualCard(state), 10, 1, { order: [CITY_UNION_APPLICATION, TUNION_APPLICATION] });
    assert.equal(first.basic.layout, "cityunion");
    assert.equal(first.init.balance, 2000);
    const other = await purchase(new VirtualCard(state), 10, 1, { order: [TUNION_APPLICATION, CITY_UNION_APPLICATION] });
    assert.equal(other.init.balance, 1000);
  });

  it("answers 61xx to INIT when asked to, and the APDU layer still completes the purchase", async () => {
    const state = issueCard([{ layout: "tunion", algorithm: "3des", asn: "03104990600000000006", cityCode: "3750", masterKeys: MASTER, balance: 500 }]);
    const card = new VirtualCard(state, { getResponse: true });
    const r = await purchase(card, 100, 3);
    assert.ok(r.mac2Ok && r.tacOk);
    assert.ok(card.exchanges.some((x) => toHex(x.command).startsWith("00C0") && toHex(x.response!).endsWith("9000")));
  });

  it("answers 6Cxx to READ BINARY with a Le longer than the file", () => {
    const card = tunionCard();
    card.process(fromHex("00A4040008A00000063201010500"));
    assert.equal(toHex(card.process(fromHex("00B0950028"))), "6C1E");
  });
});

describe("virtual card: tears and GET TRANSACTION PROVE", () => {
  it("pulled before DEBIT is processed: nothing changed, PROVE says 9406, serial unchanged", async () => {
    const card = tunionCard(1000);
    card.armTear({ command: "debit", when: "before" });
    await assert.rejects(purchase(card, 100, 1), CardRemovedError);
    assert.equal(card.present, false);
    await assert.rejects(card.transceive(fromHex("00A4040008A00000063201010500")), CardRemovedError);
    card.place();
    const purse = new PurseCard(card);
    await purse.selectApplication([TUNION_APPLICATION]);
    const init = await purse.initializeForPurchase({ keyIndex: 1, amount: 0, terminalId: TERMINAL });
    assert.equal(init.epSerial, 0);
    assert.equal(init.balance, 1000);
    assert.equal(await purse.getTransactionProve(0x06, init.epSerial), undefined);
  });

  it("pulled after the card committed: the serial moved and PROVE returns the same MAC2 and TAC", async () => {
    const card = tunionCard(1000);
    const witness = tunionCard(1000);
    // Same random on both cards, so the torn purchase's MAC2/TAC can be computed by a twin that finishes normally.
    const fixed = () => fromHex("0A0B0C0D");
    const twin = new VirtualCard(witness.state, { random: fixed });
    const torn = new VirtualCard(card.state, { random: fixed });
    const expected = await purchase(twin, 100, 9);
    torn.armTear({ command: 0x54, when: "after" });
    await assert.rejects(purchase(torn, 100, 9), CardRemovedError);
    torn.place();
    const purse = new PurseCard(torn);
    await purse.selectApplication([TUNION_APPLICATION]);
    const init = await purse.initializeForPurchase({ keyIndex: 1, amount: 0, terminalId: TERMINAL });
    assert.equal(init.epSerial, 1, "the counter moved past the serial the torn purchase used");
    assert.equal(init.balance, 900);
    const proof = await purse.getTransactionProve(0x06, init.epSerial);
    assert.ok(proof);
    assert.equal(toHex(proof.mac2), toHex(expected.debit.mac2));
    assert.equal(toHex(proof.tac), toHex(expected.debit.tac));
    assert.equal(await purse.getTransactionProve(0x06, init.epSerial + 1), undefined);
    assert.equal(await purse.getTransactionProve(0x09, init.epSerial), undefined);
    assert.equal(toHex(parseTransactionProve(fromHex(toHex(proof.mac2) + toHex(proof.tac))).tac), toHex(proof.tac));
  });

  it("keeps its state in a JSON file across runs", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "cardsim-"));
    try {
      const file = path.join(dir, "card.json");
      const card = tunionCard(800);
      card.save(file);
      const loaded = VirtualCard.load(file);
      await purchase(loaded, 300, 1);
      const again = VirtualCard.load(file);
      assert.equal(again.application("tunion").balance, 500);
      assert.equal(again.application("tunion").epSerial, 1);
      assert.equal(again.application("tunion").log.length, 1);
      assert.ok(again.application("tunion").lastTransaction);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("keeps ten log records, newest first", async () => {
    const card = tunionCard(100_000);
    for (let i = 1; i <= 12; i++) await purchase(card, i, i);
    const purse = new PurseCard(card);
    await purse.selectApplication([TUNION_APPLICATION]);
    const log = await purse.readTransactionLog(12);
    assert.equal(log.length, 10);
    assert.deepEqual(log.map((r) => r.amount), [12, 11, 10, 9, 8, 7, 6, 5, 4, 3]);
  });
});
