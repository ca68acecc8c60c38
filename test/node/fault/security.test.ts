import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import path from "node:path";
import { hasSocat } from "../../../hosts/node/pty";
import { toHex } from "../../../modules/bytes/bytes";
import type { HostedCard } from "../../../tools/sim/pn532sim/emulator";
import { VirtualCard } from "../../../tools/sim/cardsim/card";
import { FrontendClient, FrontendHttpError } from "../../../tools/rigs/frontend/index";
import { cardAsn } from "../../../tools/rigs/harness/consistency";
import { checkAfterFault, nextOrder, payAndWait, retapUntilResolved, untilSettled } from "../../../tools/rigs/harness/faults";
import { RIG_TERMINAL_ID, Rig } from "../../../tools/rigs/harness/rig";
import { INSTANT_TIMING } from "../../../tools/sim/pn532sim/index";

// Attacks, each refused, each through the real pieces: the terminal process over ptys, the front-ends over mutual
// TLS with the development PKI (and its rogue CA), SQLite journals, virtual cards from the front-end's master keys.

/** A counterfeit card: a real purse whose DEBIT answer has its MAC2 or its TAC replaced on the way out. */
class ForgingCard implements HostedCard {
  constructor(readonly inner: VirtualCard, readonly forge: "mac2" | "tac") {}
  get uid() { return this.inner.uid; }
  get atqa() { return this.inner.atqa; }
  get sak() { return this.inner.sak; }
  get ats() { return this.inner.ats; }
  get present() { return this.inner.present; }
  place(): void { this.inner.place(); }
  remove(): void { this.inner.remove(); }
  process(apdu: Uint8Array): Uint8Array {
    const answer = this.inner.process(apdu);
    if (apdu[1] === 0x54 && answer.length === 10) {
      // TAC (4) then MAC2 (4) then SW.
      const at = this.forge === "tac" ? 0 : 4;
      for (let i = at; i < at + 4; i++) answer[i]! ^= 0x5a;
    }
    return answer;
  }
}

function cardAnswers(card: VirtualCard, ins: number): Uint8Array[] {
  return card.exchanges.filter((x) => x.command[1] === ins && x.response).map((x) => x.response!.slice(0, -2));
}

describe("fault injection: security cases, each refused", function () {
  this.timeout(120_000);
  let rig: Rig;
  let client: FrontendClient;

  before(async function () {
    if (!hasSocat()) this.skip();
    rig = await Rig.start({ attach: true, proxies: true, timing: INSTANT_TIMING });
    assert.equal(await rig.startTerminal(), "ready");
    const t = rig.pki.terminals[RIG_TERMINAL_ID]!;
    // The host-side client talks to the level-1 front-end directly, with the terminal's own certificate.
    client = new FrontendClient(`https://127.0.0.1:${new URL(rig.proxies[1]!.url).port}`, { ca: rig.pki.ca.certPem, cert: t.certPem, key: t.keyPem });
  });
  after(async () => {
    client?.close();
    await rig?.close();
  });

  async function rows(card: VirtualCard) {
    const asn = cardAsn(card);
    return [...await rig.purchases(1), ...await rig.purchases(2)].filter((r) => r.asn === asn);
  }

  async function pay(card: HostedCard, amount = 300) {
    rig.emulator!.place(card);
    const final = await payAndWait(rig, amount, nextOrder("SEC"));
    rig.emulator!.remove(card);
    await untilSettled(rig);
    return final!;
  }

  it("a forged MAC2: the terminal does not approve, the front-end flags it, nothing is settled", async () => {
    const inner = rig.addCard({}, { inEmulator: false });
    const forger = new ForgingCard(inner, "mac2");
    rig.emulator!.addCard(forger, false);
    const final = await pay(forger);
    assert.equal(final.event, "declined");
    assert.equal(final.reason, "mac2-mismatch");
    const [row] = await rows(inner);
    assert.equal(row?.status, "flagged", "the front-end checked MAC2 itself");
    const view = await client.purchase(row!.id);
    assert.equal(view.mac2Valid, false);
  });

  it("a forged TAC: the front-end flags the purchase (flagged is never settled)", async () => {
    const inner = rig.addCard({}, { inEmulator: false });
    const forger = new ForgingCard(inner, "tac");
    rig.emulator!.addCard(forger, false);
    await pay(forger);
    const [row] = await rows(inner);
    assert.equal(row?.status, "flagged");
    const view = await client.purchase(row!.id);
    assert.equal(view.mac2Valid, true);
    assert.equal(view.tacValid, false);
  });

  it("a replayed completion changes nothing; one replayed onto another purchase is flagged", async () => {
    const card = rig.addCard();
    const first = await pay(card);
    assert.equal(first.event, "approved");
    const purchaseId = String(first.purchaseId);
    const [tac, mac2] = ((a) => [toHex(a.slice(0, 4)), toHex(a.slice(4, 8))])(cardAnswers(card, 0x54)[0]!);
    const again = await client.complete(purchaseId, { outcome: "debited", mac2, tac });
    assert.equal(again.status, "completed");
    assert.equal((await rows(card)).filter((r) => r.status === "completed").length, 1, "the replay did not settle twice");
    await assert.rejects(client.complete(purchaseId, { outcome: "not-debited" }), (e: unknown) => e instanceof FrontendHttpError && e.code === "ALREADY_SETTLED");
    assert.equal((await rows(card))[0]!.status, "completed");
    // The same proof on a purchase the card never made: an authorization made now, the card out of reach.
    const other = rig.addCard();
    const torn = nextOrder("SEC");
    other.armTear({ command: "debit", when: "before" });
    rig.emulator!.place(other);
    const unknown = await payAndWait(rig, 300, torn);
    assert.equal(unknown?.event, "unknown-outcome");
    const replayed = await client.complete(String(unknown!.purchaseId), { outcome: "debited", mac2, tac });
    assert.equal(replayed.status, "flagged");
    // The card comes back: the terminal finds its serial unmoved and reports not-debited, which the front-end
    // refuses for a purchase it already flagged; the flag stays.
    await retapUntilResolved(rig, other, torn);
    rig.emulator!.remove(other);
    await untilSettled(rig);
    assert.equal((await rows(other))[0]!.status, "flagged");
    assert.equal((await rows(other)).filter((r) => r.status === "completed").length, 0);
  });

  it("an authorization replayed with an old EP serial is refused (REPLAY), by the front-end and at the terminal", async () => {
    const card = rig.addCard();
    const image = structuredClone(card.state);
    assert.equal((await pay(card)).event, "approved");
    // File 0x15 as the terminal sent it (from the FCI, docs/fci-fast-path.md: the same bytes READ BINARY gives).
    const basic = card.state.applications[0]!.basicData;
    const init = toHex(cardAnswers(card, 0x50)[0]!);
    await assert.rejects(client.authorize({ terminalId: RIG_TERMINAL_ID, order: "REPLAY-1", amount: 300, keyIndex: 1, transactionType: 6, application: "tunion", basicData: basic, initResponse: init }),
      (e: unknown) => e instanceof FrontendHttpError && e.status === 409 && e.code === "REPLAY");
    // A card restored from an image taken before the purchase: its EP serial was already spent.
    const clone = new VirtualCard(image);
    rig.emulator!.addCard(clone, false);
    const final = await pay(clone);
    assert.equal(final.event, "declined");
    assert.equal(final.reason, "replay");
    assert.equal(clone.state.applications[0]!.balance, 5000);
    assert.deepEqual(await checkAfterFault(rig, card, 5000), []);
  });

  it("a client certificate from another CA, or none, is refused in the handshake; a terminal using one cannot pay", async () => {
    const rogue = rig.pki.rogue.terminals[RIG_TERMINAL_ID]!;
    const direct = `https://127.0.0.1:${new URL(rig.proxies[1]!.url).port}`;
    for (const tls of [{ ca: rig.pki.ca.certPem, cert: rogue.certPem, key: rogue.keyPem }, { ca: rig.pki.ca.certPem }]) {
      const c = new FrontendClient(direct, tls);
      try {
        await assert.rejects(c.health(), (e: unknown) => !(e instanceof FrontendHttpError));
      } finally {
        c.close();
      }
    }
    await rig.killTerminal("SIGTERM");
    const journal = path.join(rig.dir, "rogue.journal");
    try {
      await rig.startTerminal({ args: ["--cert", rogue.certPath, "--key", rogue.keyPath, "--journal", journal] });
      const card = rig.addCard();
      const final = await pay(card);
      assert.equal(final.event, "declined");
      assert.ok(final.reason === "no-route" || final.reason === "frontend-unavailable", String(final.reason));
      assert.deepEqual(await rows(card), []);
    } finally {
      await rig.killTerminal("SIGTERM");
      rmSync(journal, { force: true });
      await rig.startTerminal();
    }
  });

  it("a terminal ID that is not the certificate's is refused (TERMINAL_MISMATCH)", async () => {
    await assert.rejects(client.authorize({ terminalId: "001122334455", order: "X", amount: 1, keyIndex: 1, transactionType: 6, application: "tunion", basicData: "00".repeat(30), initResponse: "00".repeat(15) }),
      (e: unknown) => e instanceof FrontendHttpError && e.status === 403 && e.code === "TERMINAL_MISMATCH");
    await rig.killTerminal("SIGTERM");
    try {
      await rig.startTerminal({ args: ["--terminal-id", "001122334455"] });
      const card = rig.addCard();
      const final = await pay(card);
      assert.equal(final.event, "declined");
      assert.equal(final.reason, "terminal-mismatch");
      assert.deepEqual(await rows(card), []);
      assert.equal(card.state.applications[0]!.balance, 5000);
    } finally {
      await rig.killTerminal("SIGTERM");
      await rig.startTerminal();
    }
  });

  it("an amount tampered with on the way to the front-end: the card refuses MAC1, nothing is charged", async () => {
    const proxy = rig.proxies[1]!;
    proxy.rewrite = (_n, method, p, body) => {
      if (method !== "POST" || p !== "/v1/purchases") return body;
      const request = JSON.parse(body.toString()) as { amount: number };
      request.amount = 3;
      return Buffer.from(JSON.stringify(request));
    };
    try {
      const card = rig.addCard();
      const final = await pay(card, 300);
      assert.equal(final.event, "declined");
      assert.equal(final.reason, "card-refused");
      assert.equal(card.state.applications[0]!.balance, 5000);
      assert.equal(card.state.applications[0]!.epSerial, 0);
      const [row] = await rows(card);
      assert.equal(row?.amount, 3, "the front-end saw the tampered amount");
      assert.equal(row?.status, "voided");
    } finally {
      proxy.rewrite = undefined;
    }
  });
});
