import assert from "node:assert/strict";
import { fromHex, toHex } from "../../../modules/bytes/bytes";
import { encodeCommand } from "../../../modules/iso7816/apdu";
import { creditForLoad, getTransactionProve, initializeForLoad, parseInitializeForLoad, PurseFormatError } from "../../../modules/purse/index";
import { PurseCard, TUNION_APPLICATION } from "../../../modules/purse/session";
import { VirtualCard, issueCard } from "../../../tools/sim/cardsim/index";
import { loadMac1, loadMac2, loadSessionKey, loadTac } from "../../../tools/purse-crypto/index";

const KEY = fromHex("11223344556677888877665544332211");
const TERMINAL = fromHex("001122334455");

describe("purse: load (a refund back onto the card)", () => {
  it("reproduces the published PBOC load example (docs/purse.md §4.7 V2): SESLK, the card's MAC1, the host's MAC2", () => {
    const sk = loadSessionKey("3des", KEY, fromHex("11223344"), 0);
    assert.equal(toHex(sk), "9B1D924E05595603");
    const f = { amount: 0x1000, type: 0x01, terminalId: TERMINAL };
    assert.equal(toHex(loadMac1("3des", sk, 0, f)), "2988AE5A");
    assert.equal(toHex(loadMac2("3des", sk, { ...f, date: "20111221", time: "214822" })), "3A845BF0");
  });

  it("encodes INITIALIZE FOR LOAD and CREDIT FOR LOAD byte by byte, and refuses bad arguments with a typed error", () => {
    assert.equal(toHex(encodeCommand(initializeForLoad({ keyIndex: 1, amount: 0x1000, terminalId: TERMINAL }))), "805000020B0100001000001122334455" + "10");
    assert.equal(toHex(encodeCommand(creditForLoad({ date: "20111221", time: "214822", mac2: fromHex("3A845BF0") }))), "805200000B201112212148223A845BF004");
    assert.equal(toHex(encodeCommand(getTransactionProve(0x02, 1))), "805A0002020001" + "08");
    assert.throws(() => creditForLoad({ date: "20111221", time: "214822", mac2: new Uint8Array(3) }), PurseFormatError);
    assert.throws(() => initializeForLoad({ keyIndex: 1, amount: -1, terminalId: TERMINAL }), PurseFormatError);
    assert.throws(() => parseInitializeForLoad(new Uint8Array(15)), PurseFormatError);
  });

  it("the virtual card: MAC1 from its load key, MAC2 checked (9302 otherwise), credit, TAC, the online serial and the proof of type 02", async () => {
    const master = { purchase: KEY, tac: fromHex("00112233445566778899AABBCCDDEEFF"), load: KEY };
    const card = new VirtualCard(issueCard([{ layout: "tunion", algorithm: "3des", asn: "03100000000000000042", cityCode: "1000", masterKeys: master, balance: 650 }]),
      { random: () => fromHex("11223344") });
    const purse = new PurseCard(card);
    await purse.selectApplication([TUNION_APPLICATION]);
    const app = card.application("tunion");
    const init = await purse.initializeForLoad({ keyIndex: 1, amount: 350, terminalId: TERMINAL });
    assert.equal(init.balance, 650);
    assert.equal(init.onlineSerial, 0);
    const sk = loadSessionKey("3des", fromHex(app.dlk!), init.random, 0);
    assert.equal(toHex(init.mac1), toHex(loadMac1("3des", sk, 650, { amount: 350, type: 0x02, terminalId: TERMINAL })));
    const mac2 = loadMac2("3des", sk, { amount: 350, type: 0x02, terminalId: TERMINAL, date: "20261126", time: "120000" });
    const wrong = mac2.slice();
    wrong[0] ^= 1;
    await assert.rejects(purse.creditForLoad({ date: "20261126", time: "120000", mac2: wrong }), (e: { sw?: number }) => e.sw === 0x9302);
    assert.equal(app.balance, 650);
    // The failed CREDIT ended the load session: a new INIT is needed, and the MAC2 of the first one no longer works.
    await assert.rejects(purse.creditForLoad({ date: "20261126", time: "120000", mac2 }), (e: { sw?: number }) => e.sw === 0x6985);
    await purse.initializeForLoad({ keyIndex: 1, amount: 350, terminalId: TERMINAL });
    const { tac } = await purse.creditForLoad({ date: "20261126", time: "120000", mac2 });
    assert.equal(app.balance, 1000);
    assert.equal(app.onlineSerial, 1);
    assert.equal(app.epSerial, 0, "a load leaves the purchase counter alone");
    assert.equal(toHex(tac), toHex(loadTac("3des", fromHex(app.dtk), { amount: 350, type: 0x02, terminalId: TERMINAL, date: "20261126", time: "120000", balanceAfter: 1000, onlineSerial: 0 })));
    assert.equal(app.log[0]!.slice(18, 20), "02", "the card's log records a load");
    const proof = await purse.getTransactionProve(0x02, 1);
    assert.equal(toHex(proof!.mac2), toHex(mac2));
    assert.equal(toHex(proof!.tac), toHex(tac));
    assert.equal(await purse.getTransactionProve(0x02, 2), undefined);
    assert.equal(await purse.getTransactionProve(0x06, 1), undefined);
  });

  it("a card issued without a load key refuses INITIALIZE FOR LOAD (9403)", async () => {
    const card = new VirtualCard(issueCard([{ layout: "tunion", algorithm: "sm4", asn: "03100000000000000043", cityCode: "1000", masterKeys: { purchase: KEY, tac: KEY }, balance: 1 }]));
    const purse = new PurseCard(card);
    await purse.selectApplication([TUNION_APPLICATION]);
    await assert.rejects(purse.initializeForLoad({ keyIndex: 1, amount: 1, terminalId: TERMINAL }), (e: { sw?: number }) => e.sw === 0x9403);
  });
});
