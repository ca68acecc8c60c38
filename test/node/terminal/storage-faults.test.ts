import assert from "node:assert/strict";
import type { JournalStorage } from "../../../modules/journal/storage";
import { fromHex } from "../../../modules/bytes/bytes";
import { CodedError } from "../../../modules/errors/errors";
import { parseBasicData } from "../../../modules/purse/files";
import type { VirtualCard } from "../../../tools/sim/cardsim/card";
import type { ControllerEvent } from "../../../tools/sim/simulation/controller-link";
import { INSTANT_TIMING } from "../../../tools/sim/pn532sim/index";
import { LEVEL1_CITY, Simulation } from "../../../tools/sim/simulation/index";
import { until } from "../until";

// The journal's storage fails at one chosen write of a purchase while the terminal process keeps running (a flash
// write error, a full or failing SD card). Whatever write fails, a card that was debited is never answered
// `declined`: the purchase ends `approved`, or `unknown-outcome` and then settles from the card.

class StorageFault extends CodedError {
  constructor(n: number) {
    super("STORAGE_WRITE", `storage write ${n} failed`);
  }
}

/** Storage whose chosen writes (and erases) fail; `from` makes every write from then on fail until `heal()`. */
class FaultyStorage implements JournalStorage {
  writes = 0;
  failAt: number | undefined;
  failFrom: number | undefined;
  constructor(readonly inner: JournalStorage) {}
  get size() { return this.inner.size; }
  get blockSize() { return this.inner.blockSize; }
  read(offset: number, length: number) { return this.inner.read(offset, length); }
  write(offset: number, bytes: Uint8Array) {
    this.#check();
    this.inner.write(offset, bytes);
  }
  eraseBlock(block: number) {
    this.#check();
    this.inner.eraseBlock(block);
  }
  heal() {
    this.failAt = undefined;
    this.failFrom = undefined;
  }
  #check() {
    const n = ++this.writes;
    if (n === this.failAt || (this.failFrom !== undefined && n >= this.failFrom)) throw new StorageFault(n);
  }
}

describe("terminal: the journal's storage fails at a write while the process keeps running", function () {
  this.timeout(120_000);
  let sim: Simulation;
  let storage: FaultyStorage;
  let serial = 0;

  before(async () => {
    sim = await Simulation.start({ link: "memory", timing: INSTANT_TIMING, noTerminal: true });
    await sim.startTerminal({ recoveryWindowMs: 2000 }, (inner) => (storage = new FaultyStorage(inner)));
  });
  after(async () => {
    await sim?.close();
  });

  function card(): VirtualCard {
    const n = String(++serial).padStart(6, "0");
    return sim.addCard({ name: `faulty-${n}`, profiles: [{ layout: "tunion", algorithm: "3des", asn: `03101000000077${n}`, cityCode: LEVEL1_CITY, balance: 5000 }] });
  }

  /** Pays with the card held in the field until the payment has ended (a torn one settled), then takes it away. */
  async function pay(c: VirtualCard, order: string): Promise<ControllerEvent[]> {
    const events = await sim.pay(nameOf(c), 300, order, { keepCard: true, timeoutMs: 3000 });
    if (events.some((e) => e.event === "unknown-outcome")) {
      await sim.controller.next((e) => e.order === order && e.event === "resolved", 4000).catch(() => undefined);
    }
    sim.emulator.remove(c);
    await until("an idle terminal", () => sim.node.terminal.state === "idle");
    return sim.controller.events.filter((e) => e.order === order);
  }

  function nameOf(c: VirtualCard): string {
    for (const [name, v] of sim.cards) if (v === c) return name;
    throw new Error("unknown card");
  }

  /** What left the card is what the front-end completed for it, no more and no less. */
  async function assertMoney(c: VirtualCard, what: string): Promise<void> {
    await until("every completion delivered", () => sim.node.terminal.pendingCompletions === 0);
    const app = c.state.applications[0]!;
    const asn = parseBasicData(fromHex(app.basicData), app.layout).asn;
    const completed = sim.purchases(1).filter((r) => r.asn === asn && r.status === "completed");
    assert.equal(5000 - app.balance, completed.reduce((n, r) => n + r.amount, 0), `${what}: money moved equals money completed`);
  }

  it("fails each write of a purchase in turn: approved or unknown-then-settled, never declined after DEBIT", async () => {
    // Count the writes of one clean purchase first.
    const before = storage.writes;
    const clean = card();
    const events = await pay(clean, "SF-CLEAN");
    assert.equal(events.at(-1)?.event, "approved");
    const writes = storage.writes - before;
    assert.ok(writes >= 3, `a purchase writes its intent, its outcome and a retirement (saw ${writes})`);
    const seen = new Set<string>();
    for (let k = 1; k <= writes + 2; k++) {
      const c = card();
      storage.failAt = storage.writes + k;
      const order = `SF-${k}`;
      const got = await pay(c, order);
      storage.heal();
      const debited = c.state.applications[0]!.balance < 5000;
      const finals = got.filter((e) => e.event === "approved" || e.event === "declined" || e.event === "unknown-outcome");
      assert.equal(finals.length, 1, `write ${k}: one final event (${JSON.stringify(got.map((e) => e.event))})`);
      const final = finals[0]!;
      seen.add(String(final.event));
      if (debited) {
        assert.notEqual(final.event, "declined", `write ${k}: the card was debited but the controller was told declined`);
        if (final.event === "unknown-outcome") {
          const resolved = got.find((e) => e.event === "resolved");
          assert.equal(resolved?.result, "approved", `write ${k}: the torn purchase settles as approved from the card`);
        }
      } else {
        assert.notEqual(final.event, "approved", `write ${k}: approved without a debit`);
      }
      await assertMoney(c, `write ${k}`);
    }
    assert.ok(seen.has("unknown-outcome"), "some write fell after DEBIT (the case that used to say declined)");
  });

  it("storage dead from the outcome on: unknown-outcome, kept unresolved, settled once storage works again", async () => {
    const c = card();
    // Let the intent land, then fail everything: the outcome can never be written in this payment.
    const start = storage.writes;
    storage.failFrom = start + 2;
    const got = await pay(c, "SF-DEAD");
    const final = got.find((e) => e.event === "approved" || e.event === "declined" || e.event === "unknown-outcome");
    assert.equal(c.state.applications[0]!.balance, 4700, "the card was debited");
    assert.equal(final?.event, "unknown-outcome");
    assert.ok(!got.some((e) => e.event === "resolved"), "nothing can be settled while the outcome cannot be written");
    assert.equal(sim.node.terminal.unresolved, 1, "the purchase is kept unresolved");
    storage.heal();
    // The same card again: the torn purchase is settled first, from the card's counter and its TRANSACTION PROVE.
    const again = await pay(c, "SF-DEAD-2");
    assert.equal(sim.controller.events.find((e) => e.order === "SF-DEAD" && e.event === "resolved")?.result, "approved");
    assert.equal(again.at(-1)?.event, "approved");
    assert.equal(sim.node.terminal.unresolved, 0);
    await assertMoney(c, "dead storage");
  });
});
