// A client that does ISO-DEP itself, as nfcpy does: no automatic RATS, then RATS, I-blocks chained both ways, S(WTX)
// and DESELECT, all through InCommunicateThru. The purse layer runs a whole purchase over it against a virtual card.
import assert from "node:assert/strict";
import { fromHex, toHex } from "../../../modules/bytes/bytes";
import { PN532 } from "../../../modules/pn532/index";
import { PurseCard, TUNION_APPLICATION } from "../../../modules/purse/index";
import { purchaseMac1, purchaseSessionKey } from "../../../tools/purse-crypto/index";
import { nodeTimers } from "../../../hosts/node/serial";
import { startInMemory } from "../../../tools/sim/pn532sim/index";
import { tunionCard, within } from "./helpers";

/** ISO 14443-4 block protocol on the reader's side, over raw frames (the chip adds and checks the CRC). */
class IsoDep {
  nr = 0;
  wtx = 0;
  chainedOut = 0;
  chainedIn = 0;
  constructor(readonly pn532: PN532, readonly fsc = 16) {}

  async rats(fsdi: number): Promise<Uint8Array> {
    return this.pn532.inCommunicateThru(new Uint8Array([0xe0, fsdi << 4]));
  }

  /** Sends one APDU in I-blocks of at most fsc - 3 bytes of INF, and collects the answer across chained I-blocks. */
  async transceive(apdu: Uint8Array): Promise<Uint8Array> {
    const room = this.fsc - 3;
    let at = 0;
    let reply: Uint8Array;
    for (;;) {
      const piece = apdu.subarray(at, at + room);
      at += piece.length;
      const more = at < apdu.length;
      reply = await this.pn532.inCommunicateThru(new Uint8Array([0x02 | (more ? 0x10 : 0) | this.nr, ...piece]));
      if (!more) break;
      this.chainedOut++;
      assert.equal(reply[0], 0xa2 | this.nr, "R(ACK) for a chained piece");
      this.nr ^= 1;
    }
    const parts: number[] = [];
    for (;;) {
      const pcb = reply[0]!;
      if ((pcb & 0xf7) === 0xf2) {
        // The card asks for more time: grant it with the same WTXM.
        this.wtx++;
        reply = await this.pn532.inCommunicateThru(new Uint8Array([0xf2, reply[1]!]));
        continue;
      }
      assert.equal(pcb & 0xe2, 0x02, `an I-block, got ${toHex(reply)}`);
      assert.equal(pcb & 1, this.nr, "block number");
      parts.push(...reply.subarray(1));
      this.nr ^= 1;
      if (!(pcb & 0x10)) return new Uint8Array(parts);
      this.chainedIn++;
      reply = await this.pn532.inCommunicateThru(new Uint8Array([0xa2 | this.nr]));
    }
  }

  async deselect(): Promise<Uint8Array> {
    return this.pn532.inCommunicateThru(new Uint8Array([0xc2]));
  }
}

describe("pn532 emulator: ISO-DEP done by the client through InCommunicateThru (nfcpy's way)", function () {
  this.timeout(20_000);
  it("RATS, chained I-blocks both ways, WTX and DESELECT: a whole purchase on a virtual card", async () => {
    const card = tunionCard(5000);
    const { emulator, serial } = startInMemory({ cards: [card] });
    const pn532 = new PN532({ serial, timers: nodeTimers, maxBitRate: 106 });
    try {
      await within(3000, pn532.start());
      await pn532.setParameters(0x00);
      const [target] = await within(3000, pn532.inListPassiveTarget(1));
      assert.ok(target && !target.ats, "no automatic RATS: the client runs it");
      // The CIU reads as a real chip's after a 106A activation: CRC on both ways, 106 kbps.
      assert.equal(toHex(await pn532.readRegister([0x6302, 0x6303])), "8080");
      const dep = new IsoDep(pn532);
      const ats = await within(3000, dep.rats(0));
      assert.equal(toHex(ats), "067577810280");
      const purse = new PurseCard(dep);
      await within(3000, purse.selectApplication([TUNION_APPLICATION]));
      const basic = await within(3000, purse.readBasicData());
      assert.ok(basic);
      const init = await within(3000, purse.initializeForPurchase({ keyIndex: 1, amount: 250, terminalId: fromHex("001122334455") }));
      const app = card.application("tunion");
      const key = purchaseSessionKey(app.algorithm, fromHex(app.dpk), init.random, init.epSerial, 9);
      const fields = { amount: 250, type: 0x06, terminalId: fromHex("001122334455"), date: "20260115", time: "101500" };
      await within(3000, purse.debitForPurchase({ tsn: 9, date: fields.date, time: fields.time, mac1: purchaseMac1(app.algorithm, key, fields) }));
      assert.equal(app.balance, 4750);
      assert.ok(dep.chainedOut > 0, "APDUs longer than FSC went in chained I-blocks");
      assert.ok(dep.chainedIn > 0, "answers longer than FSD came in chained I-blocks");
      assert.ok(dep.wtx > 0, "DEBIT (78 ms) asked for a waiting time extension");
      assert.equal(toHex(await within(3000, dep.deselect())), "C2");
      // Deselected: the card answers nothing until it is activated again.
      await assert.rejects(within(3000, dep.transceive(fromHex("00B0950000"))), { code: "PN532_RF_TIMEOUT" });
    } finally {
      pn532.close();
      emulator.close();
    }
  });
});
