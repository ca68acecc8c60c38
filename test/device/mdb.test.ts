import * as assert from "../lib/assert";
import {
  BREAK, CashlessDevice, MODE, MdbCommandError, MdbWireError, PeripheralLink, WordDecoder, classifyResponse,
  decodeCommand, encodeCommand, encodeWords, type Command, type VendRequest,
} from "../../modules/mdb/index";
import { VmcMaster } from "../../tools/sim/vmc/master";

interface Rig {
  vmc: VmcMaster;
  link: PeripheralLink;
  device: CashlessDevice;
  calls: string[];
  faults: Error[];
}

/** The VMC simulator and the reader over an in-memory line of 9-bit words. */
function rig(options: { level?: number; address?: number; refunds?: boolean; strictReplies?: boolean } = {}): Rig {
  const calls: string[] = [];
  const faults: Error[] = [];
  const address = options.address ?? 0x10;
  let vmc!: VmcMaster;
  let device!: CashlessDevice;
  const link = new PeripheralLink({
    address,
    send: (words) => { for (const w of words) vmc.receive(w); },
    onCommand: (block, direct) => device.command(block, direct),
    onDelivered: (n) => device.delivered(n),
    onBusReset: () => device.busReset(),
  });
  vmc = new VmcMaster({ address, strictReplies: options.strictReplies, transmit: (words) => { for (const w of words) link.receive(w); } });
  device = new CashlessDevice({
    port: link, level: options.level ?? 3, refunds: options.refunds ?? true, maxResponseSeconds: 30,
    serial: "TERMINAL0001", events: {
      onVendRequest: (v: VendRequest) => calls.push(`vend ${v.price} ${v.item}${v.selectionFirst ? " first" : ""}`),
      onVendCancel: (v) => calls.push(`cancel ${v.item}`),
      onVendResult: (v, ok, byReset) => calls.push(`result ${v.item} ${ok}${byReset ? " reset" : ""}`),
      onSessionEnd: () => calls.push("end"),
      onFault: (e) => faults.push(e),
    },
  });
  return { vmc, link, device, calls, faults };
}

/** A session begun with 9.00 of funds and VEND REQUEST 3.00 for `item`, which the reader approves. */
async function approvedVend(r: Rig, item = 1): Promise<void> {
  r.device.beginSession(900);
  await r.vmc.pollUntil("begin-session");
  await r.vmc.send({ kind: "vend-request", price: 300, item });
  r.device.approve(300);
  await r.vmc.pollUntil("vend-approved");
}

function kinds(a: Awaited<ReturnType<VmcMaster["send"]>>): string {
  return a.kind === "data" ? a.replies.map((r) => r.kind).join(",") : a.kind;
}

describe("mdb wire encoding (docs/mdb.md §5)", async () => {
  it("escapes FF, marks mode-bit words and breaks, and decodes them back in any pieces", async () => {
    const words = [MODE | 0x12, 0x12, 0xff, MODE | 0xff, 0x00, BREAK, MODE | 0x00];
    const bytes = encodeWords(words);
    assert.hex(bytes, "FF0012 12 FFFF FF00FF 00 FF01 FF0000".replace(/ /g, ""));
    const got: number[] = [];
    const d = new WordDecoder({ onWord: (w) => got.push(w) });
    for (const b of bytes) d.push(Uint8Array.of(b));
    assert.deepEqual(got, words);
  });
  it("a broken escape is a typed error and the byte after it still counts", async () => {
    const got: number[] = [];
    const errors: MdbWireError[] = [];
    new WordDecoder({ onWord: (w) => got.push(w), onError: (e) => errors.push(e) }).push(Uint8Array.of(0xff, 0x12, 0x34));
    assert.deepEqual(got, [0x12, 0x34]);
    assert.equal(errors[0]!.code, "MDB_WIRE");
  });
  it("ACK/RET/NAK are told apart by set bits", async () => {
    assert.equal(classifyResponse(0x00), "ack");
    assert.equal(classifyResponse(0x01), "ack");
    assert.equal(classifyResponse(0xaa), "ret");
    assert.equal(classifyResponse(0xab), "ret");
    assert.equal(classifyResponse(0xff), "nak");
    assert.equal(classifyResponse(0x03), "nak");
  });
});

describe("mdb command codec (docs/mdb.md §3)", async () => {
  it("encodes and decodes every command in 16-bit and expanded form", async () => {
    const commands: Command[] = [
      { kind: "reset" }, { kind: "poll" }, { kind: "setup-config", vmcLevel: 3, columns: 16, rows: 2, displayType: 1 },
      { kind: "vend-request", price: 350, item: 12 }, { kind: "vend-cancel" }, { kind: "vend-success", item: 12 },
      { kind: "vend-failure" }, { kind: "session-complete" }, { kind: "negative-vend", value: 100, item: 3 },
      { kind: "reader-disable" }, { kind: "reader-enable" }, { kind: "reader-cancel" },
      { kind: "data-entry-response", keys: Uint8Array.of(0x31, 0x32, 0, 0, 0, 0, 0, 0) },
      { kind: "revalue-request", amount: 500 }, { kind: "revalue-limit-request" },
      { kind: "request-id", manufacturer: "VMC", serial: "000000000042", model: "SIMULATOR   ", version: 0x0102 },
      { kind: "read-user-file", file: 1 }, { kind: "write-user-file", file: 2, data: Uint8Array.of(1, 2, 3) },
      { kind: "write-time-date", time: { year: 26, month: 12, day: 1, hour: 23, minute: 5, second: 9, dayOfWeek: 2, week: 49, dst: false, holiday: undefined } },
      { kind: "optional-features", bits: 0x22 },
    ];
    for (const expanded of [false, true]) {
      for (const c of [...commands, { kind: "setup-prices", max: 900, min: 100, ...(expanded ? { currency: 0x1156 } : {}) } as Command,
        { kind: "cash-sale", price: 200, item: 7, ...(expanded ? { currency: 0x1156 } : {}) } as Command]) {
        assert.deepEqual(decodeCommand(encodeCommand(0x60, c, expanded), expanded), c, `${c.kind} expanded=${expanded}`);
      }
    }
    assert.hex(encodeCommand(0x10, { kind: "vend-request", price: 350, item: 12 }, false), "1300015E000C");
    assert.hex(encodeCommand(0x10, { kind: "vend-request", price: 350, item: 12 }, true), "13000000015E000C");
  });
  it("a wrong length or an unknown command is a typed error", async () => {
    for (const bad of ["", "16", "1309", "1300015E", "17F0"]) {
      const block = Uint8Array.from((bad.match(/../g) ?? []).map((h) => parseInt(h, 16)));
      try {
        decodeCommand(block, false);
        throw new Error(`accepted ${bad}`);
      } catch (e) {
        assert.ok(e instanceof MdbCommandError, `${bad}: ${(e as Error).message}`);
        assert.equal(e.code, "MDB_COMMAND");
      }
    }
  });
});

describe("mdb cashless device against the VMC simulator (in-memory line)", async () => {
  for (const level of [1, 2, 3] as const) {
    it(`initialises at VMC level ${level} with the formats of that level`, async () => {
      const r = rig();
      const { config, id } = await r.vmc.init(level, 0x22);
      assert.equal(config.level, 3);
      assert.equal(config.currency, 0x1156);
      assert.equal(config.maxResponse, 30);
      assert.equal(id.serial, "TERMINAL0001");
      assert.equal(id.options, level === 3 ? 0x22 : undefined);
      assert.equal(r.device.state, "enabled");
      assert.equal(r.device.expanded, level === 3);
      r.device.beginSession(1234, 0xa1b2c3d4);
      const begin = (await r.vmc.pollUntil("begin-session"))[0]!;
      assert.deepEqual(begin.kind === "begin-session" && begin.funds, 1234);
      if (level >= 2) assert.equal(begin.kind === "begin-session" && begin.mediaId, 0xa1b2c3d4);
    });
  }

  it("card first: BEGIN SESSION, VEND REQUEST ACKed at once, APPROVED on a later POLL, SUCCESS, END SESSION", async () => {
    const r = rig({ level: 2 });
    await r.vmc.init(2);
    assert.ok(r.device.beginSession(2000, 1));
    assert.equal(kinds(await r.vmc.send({ kind: "poll" })), "begin-session");
    assert.equal(kinds(await r.vmc.send({ kind: "vend-request", price: 350, item: 12 })), "ack");
    assert.deepEqual(r.calls, ["vend 350 12"]);
    assert.equal(kinds(await r.vmc.send({ kind: "poll" })), "ack", "nothing yet while the purchase runs");
    assert.ok(r.device.approve(350));
    const a = await r.vmc.send({ kind: "poll" });
    assert.equal(kinds(a), "vend-approved");
    assert.equal(a.kind === "data" && a.replies[0]!.kind === "vend-approved" && a.replies[0]!.amount, 350);
    await r.vmc.send({ kind: "vend-success", item: 12 });
    // Multivend: a second vend in the same session.
    await r.vmc.send({ kind: "vend-request", price: 100, item: 3 });
    r.device.deny();
    assert.equal(kinds(await r.vmc.send({ kind: "poll" })), "vend-denied");
    assert.equal(kinds(await r.vmc.send({ kind: "session-complete" })), "end-session", "END SESSION is the direct reply");
    assert.equal(kinds(await r.vmc.send({ kind: "poll" })), "ack");
    assert.equal(r.device.state, "enabled");
    assert.deepEqual(r.calls, ["vend 350 12", "result 12 true", "vend 100 3", "end"]);
    assert.equal(r.faults.length, 0);
  });

  it("selection first (level 3, Always Idle): VEND REQUEST from Enabled, the card pays later", async () => {
    const r = rig();
    await r.vmc.init(3, 0x20);
    assert.ok(r.device.alwaysIdle);
    assert.equal(r.device.expanded, false);
    await r.vmc.send({ kind: "vend-request", price: 250, item: 5 });
    assert.deepEqual(r.calls, ["vend 250 5 first"]);
    assert.equal(r.device.state, "vend");
    r.device.approve(250);
    assert.equal(kinds(await r.vmc.send({ kind: "poll" })), "vend-approved");
    await r.vmc.send({ kind: "vend-success", item: 5 });
    assert.equal(kinds(await r.vmc.send({ kind: "session-complete" })), "end-session");
  });

  it("VEND CANCEL before the answer is VEND DENIED, and a late approve() says the vend is gone", async () => {
    const r = rig();
    await r.vmc.init(3, 0x20);
    await r.vmc.send({ kind: "vend-request", price: 250, item: 5 });
    assert.equal(kinds(await r.vmc.send({ kind: "vend-cancel" })), "vend-denied", "VEND DENIED is the direct reply");
    assert.equal(kinds(await r.vmc.send({ kind: "poll" })), "ack", "and is not sent twice");
    assert.equal(r.device.approve(250), false);
    assert.deepEqual(r.calls, ["vend 250 5 first", "cancel 5"]);
  });

  for (const level of [1, 2, 3] as const) {
    it(`direct replies at VMC level ${level}: a strict VMC gets READER CONFIG, PERIPHERAL ID, END SESSION, VEND DENIED at once`, async () => {
      const r = rig({ strictReplies: true });
      const strict = r.vmc;
      const { config, id } = await strict.init(level, 0x20);
      assert.equal(config.level, 3);
      assert.equal(id.options, level === 3 ? 0x22 : undefined, "PERIPHERAL ID in the VMC level's length");
      r.device.beginSession(900);
      await strict.pollUntil("begin-session");
      await strict.send({ kind: "vend-request", price: 300, item: 2 });
      assert.equal(kinds(await strict.send({ kind: "poll" })), "ack", "VEND REQUEST keeps ACK-then-POLL: its answer is not ready");
      assert.equal(kinds(await strict.send({ kind: "vend-cancel" })), "vend-denied");
      assert.equal(kinds(await strict.send({ kind: "session-complete" })), "end-session");
      assert.equal(r.device.state, "enabled");
      assert.deepEqual(strict.replyForms, { direct: 4, deferred: 0 });
      assert.deepEqual(r.calls, ["vend 300 2", "cancel 2", "end"]);
      assert.equal(r.faults.length, 0);
    });
  }

  it("a strict VMC refuses a deferred reply with a typed error; a repeated command gets the unacknowledged direct reply again", async () => {
    const r = rig({ strictReplies: true });
    const strict = r.vmc;
    await strict.init(3);
    // SESSION COMPLETE outside a session is ACKed (a harmless repeat, docs/mdb.md §6): no END SESSION is due.
    try {
      await strict.send({ kind: "session-complete" });
      throw new Error("a deferred reply was accepted");
    } catch (e) {
      assert.equal((e as { code?: string }).code, "MDB_DEFERRED_REPLY");
    }
    // Initialise again, losing the VMC's ACK of READER CONFIG: the repeated SETUP gets it again, and runs once.
    await r.vmc.send({ kind: "reset" });
    await r.vmc.pollUntil("just-reset");
    const setup = { kind: "setup-config", vmcLevel: 3, columns: 0, rows: 0, displayType: 0 } as const;
    assert.equal(kinds(await r.vmc.send(setup, "no-ack")), "reader-config");
    assert.equal(kinds(await r.vmc.send(setup)), "reader-config");
    assert.equal(r.link.stats.duplicates, 1);
    assert.equal(kinds(await r.vmc.send({ kind: "poll" })), "ack");
    // NAKed, a direct reply goes on the next POLL.
    assert.equal(kinds(await r.vmc.send({ kind: "request-id", manufacturer: "VMC", serial: "000000000042", model: "SIMULATOR", version: 0x0100 }, "nak")), "peripheral-id");
    assert.equal(kinds(await r.vmc.send({ kind: "poll" })), "peripheral-id");
    assert.equal(kinds(await r.vmc.send({ kind: "poll" })), "ack");
  });

  it("native link race: VEND DENIED went out directly as the device approved; the approval is withdrawn, the debit owed back", async () => {
    const r = rig();
    await r.vmc.init(3, 0x20);
    await r.vmc.send({ kind: "vend-request", price: 250, item: 5 });
    assert.ok(r.device.approve(250));
    // As the ESP32's link reports it: VEND CANCEL, answered with the VEND DENIED primed before the approval.
    r.device.command(Uint8Array.of(0x13, 0x01), true);
    assert.deepEqual(r.calls, ["vend 250 5 first", "result 5 false reset"]);
    assert.equal(r.device.state, "idle");
    assert.equal(kinds(await r.vmc.send({ kind: "poll" })), "ack", "no VEND APPROVED after the VMC's VEND DENIED");
  });

  it("a reply that is not ready is deferred: REQUEST ID before SETUP config is ACKed and PERIPHERAL ID comes on a POLL", async () => {
    const r = rig();
    await r.vmc.send({ kind: "reset" });
    await r.vmc.pollUntil("just-reset");
    assert.equal(kinds(await r.vmc.send({ kind: "request-id", manufacturer: "VMC", serial: "000000000042", model: "SIMULATOR", version: 0x0100 })), "ack");
    assert.equal(kinds(await r.vmc.send({ kind: "poll" })), "peripheral-id");
    assert.equal(r.vmc.replyForms.deferred, 1);
  });

  it("a lost ACK: the reader repeats its data on the next POLL; RET resends at once; a NAK keeps it", async () => {
    const r = rig();
    await r.vmc.init(3);
    r.device.beginSession(500);
    assert.equal(kinds(await r.vmc.send({ kind: "poll" }, "no-ack")), "begin-session");
    assert.equal(kinds(await r.vmc.send({ kind: "poll" }, "nak")), "begin-session");
    assert.equal(kinds(await r.vmc.send({ kind: "poll" }, "ret")), "begin-session");
    assert.equal(kinds(await r.vmc.send({ kind: "poll" })), "ack", "delivered once ACKed");
    assert.ok(r.link.stats.resends >= 1);
  });

  it("a repeated command whose ACK was lost runs once; the same command after delivered data runs again", async () => {
    const r = rig();
    await r.vmc.init(3);
    r.device.beginSession(900);
    await r.vmc.pollUntil("begin-session");
    await r.vmc.send({ kind: "vend-request", price: 300, item: 1 });
    await r.vmc.send({ kind: "poll" });
    await r.vmc.send({ kind: "vend-request", price: 300, item: 1 });
    assert.deepEqual(r.calls, ["vend 300 1"]);
    assert.equal(r.link.stats.duplicates, 1);
    r.device.deny();
    await r.vmc.pollUntil("vend-denied");
    await r.vmc.send({ kind: "vend-request", price: 300, item: 1 });
    assert.deepEqual(r.calls, ["vend 300 1", "vend 300 1"], "a customer's retry after DENIED is a new vend");
    assert.equal(r.faults.length, 0);
  });

  it("a corrupted CHK, a foreign address and noise get silence, never NAK", async () => {
    const r = rig();
    await r.vmc.init(3);
    assert.equal((await r.vmc.send({ kind: "poll" }, "bad-chk")).kind, "silence");
    assert.equal(r.link.stats.badChecksums, 1);
    assert.equal((await r.vmc.sendWords(Uint16Array.of(MODE | 0x0a, 0x0a))).kind, "silence", "changer POLL");
    assert.equal((await r.vmc.sendWords(Uint16Array.of(0x13, 0x00, 0x55, 0xff))).kind, "silence", "data without an address");
    assert.equal(kinds(await r.vmc.send({ kind: "poll" })), "ack");
  });

  it("out of sequence: ACK, do not act, 0B with the state at levels 2/3 and bare 0B at level 1", async () => {
    for (const level of [1, 3] as const) {
      const r = rig();
      await r.vmc.init(level);
      await r.vmc.send({ kind: "vend-success", item: 1 });
      const a = await r.vmc.send({ kind: "poll" });
      assert.deepEqual(a.kind === "data" && a.replies, [level === 1 ? { kind: "out-of-sequence" } : { kind: "out-of-sequence", state: 3 }]);
      assert.equal(r.calls.length, 0);
    }
  });

  it("VEND FAILURE: silence while the refund runs, then ACK (refunded) or 0A C0 (lost)", async () => {
    for (const ok of [true, false]) {
      const r = rig();
      await r.vmc.init(3);
      await approvedVend(r);
      await r.vmc.send({ kind: "vend-failure" });
      assert.deepEqual(r.calls, ["vend 300 1", "result 1 false"]);
      assert.equal((await r.vmc.send({ kind: "poll" })).kind, "silence");
      r.device.refunded(ok);
      const a = await r.vmc.send({ kind: "poll" });
      assert.deepEqual(a.kind === "data" ? a.replies : a.kind, ok ? "ack" : [{ kind: "malfunction", code: 0xc0 }]);
    }
  });

  it("RESET after VEND APPROVED counts as success; RESET before the answer cancels; a bus reset is a RESET", async () => {
    const r = rig();
    await r.vmc.init(3);
    await approvedVend(r);
    await r.vmc.send({ kind: "reset" });
    assert.deepEqual(r.calls, ["vend 300 1", "result 1 true reset"]);
    await r.vmc.init(3);
    r.device.beginSession(900);
    await r.vmc.pollUntil("begin-session");
    await r.vmc.send({ kind: "vend-request", price: 300, item: 2 });
    await r.vmc.sendWords(Uint16Array.of(BREAK));
    assert.equal(r.device.state, "inactive");
    assert.deepEqual(r.calls.slice(2), ["vend 300 2", "cancel 2"]);
    assert.equal(kinds(await r.vmc.send({ kind: "poll" })), "just-reset");
  });

  it("READER DISABLE during a session lets it finish, then the reader is Disabled; READER CANCEL is CANCELLED", async () => {
    const r = rig({ address: 0x60 });
    await r.vmc.init(2);
    await r.vmc.send({ kind: "reader-cancel" });
    assert.equal(kinds(await r.vmc.send({ kind: "poll" })), "cancelled");
    r.device.beginSession(100);
    await r.vmc.pollUntil("begin-session");
    await r.vmc.send({ kind: "reader-disable" });
    assert.equal(r.device.state, "idle");
    await r.vmc.send({ kind: "session-complete" });
    await r.vmc.pollUntil("end-session");
    assert.equal(r.device.state, "disabled");
    assert.equal(r.device.beginSession(100), false);
    await r.vmc.send({ kind: "reader-enable" });
    assert.equal(r.device.state, "enabled");
  });
});

describe("mdb: a VMC RESET at every step of a session", () => {
  // Steps of a card-first session; a RESET lands after step k. The vend runs at most once, an approved vend is a
  // success (kept debit) and an unapproved one a cancel, and the reader comes back through the init sequence.
  const steps: ((r: Rig) => Promise<unknown> | unknown)[] = [
    (r) => r.device.beginSession(900),
    (r) => r.vmc.pollUntil("begin-session"),
    (r) => r.vmc.send({ kind: "vend-request", price: 300, item: 1 }),
    (r) => r.vmc.send({ kind: "poll" }),
    (r) => r.device.approve(300),
    (r) => r.vmc.pollUntil("vend-approved"),
    (r) => r.vmc.send({ kind: "vend-success", item: 1 }),
    (r) => r.vmc.send({ kind: "session-complete" }),
    (r) => r.vmc.pollUntil("end-session"),
  ];
  for (let k = 0; k <= steps.length; k++) {
    it(`RESET after step ${k}`, async () => {
      const r = rig();
      await r.vmc.init(3);
      for (let i = 0; i < k; i++) await steps[i]!(r);
      await r.vmc.send({ kind: "reset" });
      assert.equal(r.device.state, "inactive");
      const vends = r.calls.filter((c) => c.startsWith("vend ")).length;
      assert.ok(vends <= 1);
      const expected = k < 3 ? [] : k < 5 ? ["vend 300 1", "cancel 1"] : k < 6 ? ["vend 300 1", "result 1 false reset"]
        : k < 7 ? ["vend 300 1", "result 1 true reset"]
        : ["vend 300 1", "result 1 true"].concat(k >= 8 ? ["end"] : []);
      assert.deepEqual(r.calls, expected);
      await r.vmc.init(3);
      assert.equal(r.device.state, "enabled");
      assert.equal(r.faults.length, 0);
    });
  }
});

describe("mdb parsers fuzzed: no crash, typed errors, nothing runs twice", async () => {
  function random(seed: number): () => number {
    let s = seed >>> 0;
    return () => {
      s = (s * 1664525 + 1013904223) >>> 0;
      return s / 2 ** 32;
    };
  }
  it("random bytes into the wire decoder and random words into the link and device never throw", async () => {
    // The device must still answer a well-formed POLL afterwards: the noise cannot wedge the link.
    const rnd = random(13);
    const r = rig();
    await r.vmc.init(3, 0x22);
    const d = new WordDecoder({ onWord: (w) => r.link.receive(w), onError: () => undefined });
    for (let i = 0; i < 3000; i++) {
      const n = 1 + Math.floor(rnd() * 12);
      const bytes = new Uint8Array(n);
      for (let j = 0; j < n; j++) bytes[j] = rnd() < 0.15 ? 0xff : rnd() < 0.3 ? (0x10 + Math.floor(rnd() * 8)) : Math.floor(rnd() * 256);
      d.push(bytes);
    }
    d.reset();
    await r.vmc.send({ kind: "reset" });
    assert.equal(kinds(await r.vmc.send({ kind: "poll" })), "just-reset");
  });
  it("random checksummed blocks: every decode failure is MdbCommandError; a vend runs once per accepted request", async () => {
    const rnd = random(99);
    let thrown = 0;
    for (let i = 0; i < 5000; i++) {
      const n = 1 + Math.floor(rnd() * 14);
      const block = new Uint8Array(n);
      block[0] = 0x10 | Math.floor(rnd() * 8);
      for (let j = 1; j < n; j++) block[j] = rnd() < 0.5 ? Math.floor(rnd() * 8) : Math.floor(rnd() * 256);
      try {
        decodeCommand(block, rnd() < 0.5);
      } catch (e) {
        thrown++;
        assert.ok(e instanceof MdbCommandError, (e as Error).message);
      }
    }
    assert.ok(thrown > 0);
    // Repeat each command at random (lost ACKs): the device sees each vend request once.
    const r = rig();
    await r.vmc.init(3);
    let vends = 0;
    for (let i = 0; i < 200; i++) {
      r.device.beginSession(10000);
      await r.vmc.pollUntil("begin-session");
      await r.vmc.send({ kind: "vend-request", price: 10, item: i });
      vends++;
      while (rnd() < 0.5) await r.vmc.send({ kind: "vend-request", price: 10, item: i });
      r.device.approve(10);
      await r.vmc.pollUntil("vend-approved");
      await r.vmc.send({ kind: "vend-success", item: i });
      while (rnd() < 0.3) await r.vmc.send({ kind: "vend-success", item: i });
      await r.vmc.send({ kind: "session-complete" });
      await r.vmc.pollUntil("end-session");
    }
    assert.equal(r.calls.filter((c) => c.startsWith("vend ")).length, vends);
    assert.equal(r.calls.filter((c) => c.startsWith("result ")).length, vends);
    assert.equal(r.faults.length, 0);
  });
});
