import assert from "node:assert/strict";
import { fromHex } from "../../../modules/bytes/bytes";
import { parseBasicData } from "../../../modules/purse/files";
import { hasSocat } from "../../../hosts/node/pty";
import type { ApplicationState, VirtualCard, VirtualCardOptions } from "../../../tools/sim/cardsim/card";
import { INSTANT_TIMING } from "../../../tools/sim/pn532sim/index";
import { HOTLISTED_ASN, LEVEL1_CITY, LEVEL2_CITY, Simulation, TERMINAL_ID, type CardSpec } from "../../../tools/sim/simulation/index";

// The FCI fast path (docs/fci-fast-path.md): file 0x15 from tag 9F0C of SELECT's answer, READ BINARY only when the FCI
// does not carry it, on the whole system (controller port -> terminal -> PN532 emulator -> front-ends over TLS).

const link = hasSocat() ? "pty" : "memory";
const READ_BINARY = 0xb0;

/** The instruction bytes the card received, in order, but for a SELECT of the application it lacks (6A82). */
function instructions(card: VirtualCard): number[] {
  const lacking = (x: VirtualCard["exchanges"][number]) => x.command[1] === 0xa4 && x.response?.[0] === 0x6a && x.response[1] === 0x82;
  return card.exchanges.filter((x) => !lacking(x)).map((x) => x.command[1]!);
}

function asnOf(app: ApplicationState): string {
  return parseBasicData(fromHex(app.basicData), app.layout).asn;
}

/** File 0x15 with bytes 12..19 (the diversification factor, the ASN's right 8 bytes) replaced by `factor`. */
function withFactor(app: ApplicationState, factor: string): string {
  return app.basicData.slice(0, 24) + factor + app.basicData.slice(40);
}

describe("terminal: file 0x15 from the FCI (basicData fci-first)", function () {
  this.timeout(120_000);
  let sim: Simulation;
  let serial = 0;
  let order = 0;
  const next = () => `FCI-${++order}`;

  before(async () => {
    sim = await Simulation.start({ link, timing: INSTANT_TIMING });
  });
  after(async () => {
    await sim?.close();
  });

  function add(layout: "tunion" | "cityunion", options: VirtualCardOptions = {}, asn?: string): { name: string; card: VirtualCard } {
    const n = String(++serial).padStart(6, "0");
    const spec: CardSpec = layout === "tunion"
      ? { name: `t-${n}`, profiles: [{ layout, algorithm: "3des", asn: asn ?? `03101000000000${n}`, cityCode: LEVEL1_CITY, balance: 5000 }], options }
      : { name: `c-${n}`, profiles: [{ layout, algorithm: "sm4", asn: asn ?? `${LEVEL2_CITY}000000${n}`, cityCode: LEVEL2_CITY, balance: 5000 }], options };
    return { name: spec.name, card: sim.addCard(spec) };
  }

  for (const layout of ["tunion", "cityunion"] as const) {
    it(`pays a ${layout} card in 3 APDUs: SELECT, INITIALIZE, DEBIT (no READ BINARY)`, async () => {
      const { name, card } = add(layout);
      const events = await sim.pay(name, 120, next());
      const approved = events.find((e) => e.event === "approved");
      assert.ok(approved, JSON.stringify(events.at(-1)));
      assert.deepEqual(instructions(card), [0xa4, 0x50, 0x54]);
      assert.equal((approved.timings as { apdus: number }).apdus, card.exchanges.length);
      assert.equal(approved.asn, asnOf(card.state.applications[0]!));
      assert.equal(card.state.applications[0]!.balance, 4880);
    });
  }

  it("falls back to READ BINARY for a card whose FCI has no 9F0C, and pays", async () => {
    const { name, card } = add("tunion", { fciBasicData: null });
    const events = await sim.pay(name, 50, next());
    assert.ok(events.some((e) => e.event === "approved"), JSON.stringify(events.at(-1)));
    assert.deepEqual(instructions(card), [0xa4, READ_BINARY, 0x50, 0x54]);
  });

  const malformed: [string, (app: ApplicationState) => string][] = [
    ["29 bytes", (app) => app.basicData.slice(0, 58)],
    ["31 bytes", (app) => `${app.basicData}00`],
    ["30 bytes whose expiry date is not a date", (app) => app.basicData.slice(0, 48) + "20991399" + app.basicData.slice(56)],
    ["30 bytes whose ASN is not BCD", (app) => withFactor(app, "AAAAAAAAAAAAAAAA")],
  ];
  for (const [what, fci] of malformed) {
    it(`falls back to READ BINARY when 9F0C holds ${what}, and pays with the file's data`, async () => {
      const { name, card } = add("cityunion", { fciBasicData: fci });
      const events = await sim.pay(name, 50, next());
      const approved = events.find((e) => e.event === "approved");
      assert.ok(approved, JSON.stringify(events.at(-1)));
      assert.deepEqual(instructions(card), [0xa4, READ_BINARY, 0x50, 0x54]);
      assert.equal(approved.asn, asnOf(card.state.applications[0]!));
    });
  }

  it("a card whose FCI lies about its ASN is refused at DEBIT (MAC1 invalid) and nothing is charged", async () => {
    const { name, card } = add("tunion", { fciBasicData: (app) => withFactor(app, "1000000000777777") });
    const app = card.state.applications[0]!;
    const events = await sim.pay(name, 200, next());
    const final = events.at(-1)!;
    assert.equal(final.event, "declined", JSON.stringify(final));
    assert.equal(final.reason, "card-refused");
    // The card checked MAC1 with its own key and refused: DEBIT answered 9302, nothing moved.
    const debit = card.exchanges.find((x) => x.command[1] === 0x54)!;
    assert.equal(Buffer.from(debit.response!.slice(-2)).toString("hex"), "9302");
    assert.equal(app.balance, 5000);
    assert.equal(app.log.length, 0);
    // The front-end authorized the ASN the FCI named, and heard that nothing was debited.
    const claimed = parseBasicData(fromHex(withFactor(app, "1000000000777777")), "tunion").asn;
    await waitFor(() => sim.purchases(1).some((r) => r.asn === claimed && r.status !== "authorized"));
    const row = sim.purchases(1).find((r) => r.asn === claimed)!;
    assert.notEqual(row.status, "completed");
    assert.equal(row.outcome, "not-debited");
    assert.ok(!sim.purchases(1).some((r) => r.asn === asnOf(app)), "nothing was authorized for the card's real ASN");
  });

  it("a hotlisted card whose FCI names another ASN gets past the hotlist check but is refused at DEBIT, uncharged", async () => {
    const { name, card } = add("tunion", { fciBasicData: (app) => withFactor(app, "1000000000000998") }, HOTLISTED_ASN);
    const events = await sim.pay(name, 200, next());
    const final = events.at(-1)!;
    assert.equal(final.event, "declined", JSON.stringify(final));
    assert.equal(final.reason, "card-refused");
    assert.equal(card.state.applications[0]!.balance, 5000);
    // The same card telling the truth in its FCI meets the hotlist.
    const honest = add("tunion", {}, HOTLISTED_ASN);
    const again = (await sim.pay(honest.name, 200, next())).at(-1)!;
    assert.equal(again.reason, "card-hotlisted");
  });

  it("a hotlisted card that changes only the leading digits of its ASN (FCI or file 0x15) is refused CARD_HOTLISTED, uncharged", async () => {
    // Bytes 10..11 of file 0x15, the ASN's first 4 digits, are in no key's diversification factor: without the
    // factor match this card's MAC1 would be valid and the debit would go through (docs/fci-fast-path.md).
    const leading = (app: ApplicationState) => app.basicData.slice(0, 20) + "1234" + app.basicData.slice(24);
    const liar = add("tunion", { fciBasicData: leading }, HOTLISTED_ASN);
    // The same card with the leading digits changed in its file too: READ BINARY tells the same story.
    const reissued = add("tunion", { fciBasicData: null }, `1234${HOTLISTED_ASN.slice(4)}`);
    for (const { name, card } of [liar, reissued]) {
      const events = await sim.pay(name, 200, next());
      const final = events.at(-1)!;
      assert.equal(final.event, "declined", JSON.stringify(final));
      assert.equal(final.reason, "card-hotlisted");
      assert.equal(events.find((e) => e.event === "card-read")?.asn, `1234${HOTLISTED_ASN.slice(4)}`, "the ASN the card reported");
      const app = card.state.applications[0]!;
      assert.equal(app.balance, 5000);
      assert.equal(app.log.length, 0);
      assert.ok(!card.exchanges.some((x) => x.command[1] === 0x54), "no DEBIT was sent");
    }
  });

  it("the remote configuration switches the mode: basicData read gives 4 APDUs, fci-first 3 again", async () => {
    const scope = `terminal:${TERMINAL_ID}`;
    for (const [mode, expected] of [["read", [0xa4, READ_BINARY, 0x50, 0x54]], ["fci-first", [0xa4, 0x50, 0x54]]] as const) {
      await sim.level1.store.fleet.putConfigScope(scope, { basicData: mode }, "fci test");
      await sim.node.terminal.refreshRoutes();
      await waitFor(() => sim.node.terminal.settings.basicData === mode);
      const { name, card } = add("tunion");
      const events = await sim.pay(name, 10, next());
      assert.ok(events.some((e) => e.event === "approved"), JSON.stringify(events.at(-1)));
      assert.deepEqual(instructions(card), expected, `with basicData ${mode}`);
    }
  });

  async function waitFor(check: () => boolean, ms = 10_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!check()) {
      if (Date.now() > deadline) throw new Error("timed out");
      await new Promise((r) => setTimeout(r, 20));
    }
  }
});

describe("terminal: file 0x15 always by READ BINARY (basicData read)", function () {
  this.timeout(120_000);
  let sim: Simulation;

  before(async () => {
    sim = await Simulation.start({ link, timing: INSTANT_TIMING, terminal: { basicData: "read" } });
  });
  after(async () => {
    await sim?.close();
  });

  it("reads file 0x15 even though the FCI carries it: 4 APDUs", async () => {
    const card = sim.addCard({ name: "read-mode", profiles: [{ layout: "tunion", algorithm: "3des", asn: "03101000000000424242", cityCode: LEVEL1_CITY, balance: 800 }] });
    const events = await sim.pay("read-mode", 100, "READ-1");
    const approved = events.find((e) => e.event === "approved");
    assert.ok(approved, JSON.stringify(events.at(-1)));
    assert.deepEqual(card.exchanges.map((x) => x.command[1]), [0xa4, READ_BINARY, 0x50, 0x54]);
    assert.equal((approved.timings as { apdus: number }).apdus, 4);
  });
});
