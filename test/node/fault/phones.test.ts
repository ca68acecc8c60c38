import assert from "node:assert/strict";
import { hasSocat } from "../../../hosts/node/pty";
import type { VirtualCard } from "../../../tools/sim/cardsim/card";
import { PHONE_106_ONLY, PHONE_PROFILES, PHONE_SECURE_ELEMENT, type PhoneProfile } from "../../../tools/sim/cardsim/phone";
import { FaultTally, checkAfterFault, nextOrder, payAndWait, untilResolved } from "../../../tools/rigs/harness/faults";
import { Rig } from "../../../tools/rigs/harness/rig";

// Transit cards in phones (docs/phone-wallets.md) against a real terminal process over socat ptys: slow commands with
// S(WTX) during DEBIT and a larger FWI, their own ATS, a phone that stays at 106 kbps, and a phone that leaves the
// field in the middle of any exchange and comes back by itself. The terminal pays them, or settles the tear when the
// phone is back, and the money rule holds.

describe("fault injection: phone wallets", function () {
  this.timeout(300_000);
  let rig: Rig;

  before(async function () {
    if (!hasSocat()) this.skip();
    rig = await Rig.start({ attach: true });
    assert.equal(await rig.startTerminal({ recoveryWindowMs: 5000 }), "ready");
  });
  after(async () => {
    await rig?.close();
  });

  function phone(profile: PhoneProfile): VirtualCard {
    return rig.addCard({ layout: "tunion" }, { card: { phone: profile } });
  }

  for (const profile of PHONE_PROFILES) {
    it(`pays a ${profile.name} phone: DEBIT ${profile.processingMs[0x54]} ms with S(WTX), its own ATS`, async () => {
      const card = phone(profile);
      const wtxBefore = rig.emulator!.stats.wtxRequests;
      const logFrom = rig.terminalLog.length;
      rig.emulator!.place(card);
      const final = await payAndWait(rig, 150, nextOrder("PHONE"), 5000);
      rig.emulator!.remove(card);
      assert.equal(final?.event, "approved", JSON.stringify(final));
      assert.equal(card.state.applications[0]!.balance, 4850);
      assert.ok(rig.emulator!.stats.wtxRequests > wtxBefore, "the phone asked for more time during the tap");
      const line = rig.terminalLog.slice(logFrom).filter((l) => l.includes("bit-rate")).join("\n");
      if (profile.maxPpsKbps === 106) assert.match(line, /bit-rate 106 kbps: InPSL to 424 refused/);
      else assert.match(line, /bit-rate 424 kbps/);
      assert.deepEqual(await checkAfterFault(rig, card, 5000), []);
    });
  }

  it("a phone that leaves the field in the middle of any exchange and comes back by itself is paid or settled, never charged twice", async () => {
    const tally = new FaultTally("phone dropping out at every APDU of a purchase");
    for (const profile of [PHONE_SECURE_ELEMENT, PHONE_106_ONLY]) {
      for (const ins of [0xa4, 0x50, 0x54]) {
        for (const when of ["before", "after"] as const) {
          const card = phone({ ...profile, returnsAfterMs: 400 });
          card.armTear({ command: ins, when });
          const order = nextOrder("PHONE");
          rig.emulator!.place(card);
          const final = await payAndWait(rig, 200, order, 5000);
          let result = final?.event === "declined" ? `declined (${String(final.reason)})` : String(final?.event);
          // No retap: the phone comes back on its own, and the terminal, still looking for it, settles the purchase.
          if (final?.event === "unknown-outcome") result += ` -> ${String((await untilResolved(rig, order)).result)}`;
          // A payment declined before the phone is back: wait for it, so it is not in the field for the next case.
          const deadline = Date.now() + 10_000;
          while (card.exchanges.some((x) => x.torn) && !card.present && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
          if (card.present) rig.emulator!.remove(card);
          tally.add(`${profile.name} INS ${ins.toString(16)} dropped ${when}: ${result}`, await checkAfterFault(rig, card, 5000));
          if (ins === 0x54 && when === "after") assert.match(result, /^unknown-outcome -> approved/, `a phone dropped after it committed DEBIT is settled as debited: ${result}`);
        }
      }
    }
    console.log(`      ${tally.line()}`);
    assert.deepEqual(tally.violations, []);
  });
});
