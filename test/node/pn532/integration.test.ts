// Serial-line integration: the PN532 driver talks through a socat pty pair to the emulator, which hosts virtual
// cards; the purse layer runs on top exactly as it does over a virtual card directly.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fromHex, toHex } from "../../../modules/bytes/bytes";
import { encodeCommand } from "../../../modules/iso7816/apdu";
import {
  PN532, Pn532AbortedError, Pn532CardGoneError, Pn532NoCardError, Pn532RfTimeoutError, Pn532TimeoutError,
} from "../../../modules/pn532/index";
import { PurseCard, TUNION_APPLICATION, getTransactionProve } from "../../../modules/purse/index";
import { purchaseMac1, purchaseMac2, purchaseSessionKey } from "../../../tools/purse-crypto/index";
import type { VirtualCard } from "../../../tools/sim/cardsim/card";
import { INSTANT_TIMING, PTY_INSTALL_HINT, createPtyPair, runScript } from "../../../tools/sim/pn532sim/index";
import { NodeSerial, nodeTimers } from "../../../hosts/node/serial";
import { until } from "../until";
import { EchoCard, hasSocat, memoryRig, ptyRig, tunionCard, within, type Rig, type RigOptions } from "./helpers";

const TERMINAL = fromHex("001122334455");

/** The front-end's part of a purchase, done here with the card's own key: MAC1 for the card, the MAC2 to expect. */
function authorize(card: VirtualCard, init: { random: Uint8Array; epSerial: number }, amount: number, tsn: number) {
  const app = card.application("tunion");
  const sessionKey = purchaseSessionKey(app.algorithm, fromHex(app.dpk), init.random, init.epSerial, tsn);
  const fields = { amount, type: 0x06, terminalId: TERMINAL, date: "20260115", time: "101500" };
  return { mac1: purchaseMac1(app.algorithm, sessionKey, fields), mac2: purchaseMac2(app.algorithm, sessionKey, amount), ...fields };
}

async function purchase(pn532: PN532, card: VirtualCard, amount: number, tsn: number) {
  const purse = new PurseCard(pn532);
  await purse.selectApplication([TUNION_APPLICATION]);
  const basic = await purse.readBasicData();
  const init = await purse.initializeForPurchase({ keyIndex: 1, amount, terminalId: TERMINAL });
  const auth = authorize(card, init, amount, tsn);
  const debit = await purse.debitForPurchase({ tsn, date: auth.date, time: auth.time, mac1: auth.mac1 });
  return { purse, basic, init, auth, debit };
}

function suite(kind: "pty" | "memory") {
  const make = (options: RigOptions) => (kind === "pty" ? ptyRig(options) : memoryRig(options));
  return function (this: Mocha.Suite) {
    let rig: Rig | undefined;
    before(function () {
      if (kind === "pty" && !hasSocat()) {
        this.skip();
      }
    });
    afterEach(async () => {
      await rig?.close();
      rig = undefined;
    });

    it("start() wakes the chip and reads PN532 v1.6; detect() activates the card (ATQA, SAK, UID, ATS)", async () => {
      const card = tunionCard();
      rig = await make({ cards: [card] });
      const firmware = await within(3000, rig.pn532.start());
      assert.deepEqual(firmware, { ic: 0x32, version: 1, revision: 6, support: 7 });
      assert.equal(rig.emulator.received[0]!.code, 0x14);
      const target = await within(3000, rig.pn532.detect({ timeout: 500 }));
      assert.equal(toHex(target.uid), toHex(card.uid));
      assert.equal(toHex(target.atqa), "0344");
      assert.equal(target.sak, 0x20);
      assert.equal(toHex(target.ats!), "7577810280");
    });

    it("the purse over the PN532: SELECT, READ 0x15, INIT, DEBIT, GET TRANSACTION PROVE", async () => {
      const card = tunionCard(10_000);
      rig = await make({ cards: [card] });
      await rig.pn532.start();
      await rig.pn532.detect({ timeout: 500 });
      const { purse, basic, init, auth, debit } = await within(5000, purchase(rig.pn532, card, 1234, 7));
      assert.equal(basic.cityCode, "1000");
      assert.equal(basic.asn, "10000000000000000001");
      assert.equal(init.balance, 10_000);
      assert.equal(toHex(debit.mac2), toHex(auth.mac2));
      assert.equal(card.application("tunion").balance, 10_000 - 1234);
      const prove = await purse.getTransactionProve(0x06, init.epSerial + 1);
      assert.ok(prove);
      assert.equal(toHex(prove.mac2), toHex(debit.mac2));
      assert.equal(toHex(prove.tac), toHex(debit.tac));
      assert.equal(await purse.getBalance(), 10_000 - 1234);
    });

    it("long APDUs: 261 bytes out and 258 in, in extended frames, then with MI chaining both ways", async () => {
      const echo = new EchoCard();
      const card = tunionCard();
      rig = await make({ cards: [echo, card], emulator: { timing: { cardProcessing: () => 1 } } });
      await rig.pn532.start();
      await rig.pn532.inListPassiveTarget(1, echo.uid);
      const long = new Uint8Array(261).map((_, i) => (i * 13) & 0xff);
      long.set([0x00, 0xd6, 0x00, 0x00, 0xff], 0);
      const r1 = await within(3000, rig.pn532.transceive(long));
      assert.equal(toHex(r1), toHex(long.subarray(5, 260)) + "9000");
      assert.equal(toHex(echo.commands.at(-1)!), toHex(long));
      const r2 = await within(3000, rig.pn532.transceive(fromHex("00B0000000")));
      assert.equal(r2.length, 258);
      assert.equal(toHex(r2.subarray(254)), "FEFF9000");
      // The purse card too takes a 261-byte SELECT (it has no such AID): the whole APDU reached it intact.
      await rig.pn532.inListPassiveTarget(1, card.uid);
      const select = encodeCommand({ cla: 0, ins: 0xa4, p1: 4, p2: 0, data: new Uint8Array(255).fill(0xa0), le: 256 });
      assert.equal(select.length, 261);
      assert.equal(toHex(await rig.pn532.transceive(select)), "6A82");
      assert.equal(toHex(card.exchanges.at(-1)!.command), toHex(select));
      await rig.close();

      rig = await make({ cards: [echo], emulator: { maxDataIn: 64, timing: { cardProcessing: () => 1 } }, driver: { maxDataOut: 100 } });
      await rig.pn532.start();
      await rig.pn532.detect();
      const r3 = await within(3000, rig.pn532.transceive(long));
      assert.equal(toHex(r3), toHex(long.subarray(5, 260)) + "9000");
      const r4 = await within(3000, rig.pn532.transceive(fromHex("00B0000000")));
      assert.equal(r4.length, 258);
      const tgs = rig.emulator.received.filter((c) => c.code === 0x40).map((c) => [c.params[0], c.params.length - 1]);
      // Out: 100 + 100 + 61 with MI on the first two; in: 257 bytes fetched as 64 + 4 x 40 01, then 258 likewise.
      assert.deepEqual(tgs, [[0x41, 100], [0x41, 100], [0x01, 61], [1, 0], [1, 0], [1, 0], [1, 0], [1, 5], [1, 0], [1, 0], [1, 0], [1, 0]]);
    });

    it("faults that a retry cures: lost ACK, damaged ACK, lost command, damaged response, garbage, a late but timely answer", async () => {
      const card = tunionCard();
      rig = await make({ cards: [card], driver: { ackTimeout: 30 } });
      const { pn532, emulator } = rig;
      await pn532.start();
      await pn532.detect({ timeout: 500 });
      const select = encodeCommand({ cla: 0, ins: 0xa4, p1: 4, p2: 0, data: TUNION_APPLICATION.aid, le: 256 });
      const expect = async (what: string) => {
        const r = await within(3000, pn532.transceive(select), what);
        assert.equal(toHex(r.subarray(r.length - 2)), "9000", what);
      };
      // A lost or damaged ACK followed by the answer: the answer is taken, and the card does not run the command twice.
      // (Chip commands before this point may have been resent on a loaded machine, whose ACK can be late for real:
      // only the card commands below must not be.)
      const resendsBefore = pn532.stats.resends;
      emulator.injectFault({ kind: "drop-ack", command: 0x40 });
      let before = card.exchanges.length;
      await expect("drop-ack");
      emulator.injectFault({ kind: "corrupt-checksum", frame: "ack", command: 0x40 });
      await expect("corrupt ack");
      assert.equal(pn532.stats.resends, resendsBefore, "InDataExchange is never resent");
      assert.equal(card.exchanges.length, before + 2);
      // A lost command frame: no ACK, so the driver resends it (a command that does not reach the card; card
      // commands are never resent, see the next test).
      emulator.injectFault({ kind: "drop-command", command: 0x02 });
      assert.equal((await within(3000, pn532.getFirmwareVersion(), "drop-command")).ic, 0x32);
      assert.ok(pn532.stats.resends >= resendsBefore + 1, "the lost GetFirmwareVersion was resent");
      // The ACK lost and the answer damaged: the damaged answer is NACKed and the good copy taken, still no resend.
      emulator.injectFault({ kind: "drop-ack", command: 0x40 });
      emulator.injectFault({ kind: "corrupt-checksum", command: 0x40 });
      before = card.exchanges.length;
      await expect("drop-ack + corrupt response");
      assert.equal(card.exchanges.length, before + 1);
      assert.equal(emulator.stats.nacksReceived, 1);
      emulator.injectFault({ kind: "corrupt-checksum", command: 0x40 });
      await expect("corrupt response");
      assert.equal(pn532.stats.nacks, 2);
      assert.equal(emulator.stats.nacksReceived, 2);
      emulator.injectFault({ kind: "garbage", command: 0x40 });
      await expect("garbage");
      emulator.injectFault({ kind: "late", ms: 200, command: 0x40 });
      await expect("late");
      assert.equal(emulator.pendingFaults, 0);
    });

    it("faults that end in a typed error, never a hang; the link works again afterwards", async () => {
      const card = tunionCard();
      rig = await make({ cards: [card], driver: { ackTimeout: 30, exchangeTimeout: 300 } });
      const { pn532, emulator } = rig;
      await pn532.start();
      await pn532.detect({ timeout: 500 });
      // Chip commands so far may have been resent on a loaded machine; card commands from here on must not be.
      const resendsBefore = pn532.stats.resends;
      // Likewise a chip command of the start-up may have timed out (and been aborted) on a loaded machine.
      const abortsBefore = emulator.stats.aborts;
      const select = encodeCommand({ cla: 0, ins: 0xa4, p1: 4, p2: 0, data: TUNION_APPLICATION.aid, le: 256 });
      emulator.injectFault({ kind: "late", ms: 1000, command: 0x40 });
      await assert.rejects(within(3000, pn532.transceive(select)), (e) => e instanceof Pn532TimeoutError && e.phase === "response");
      emulator.injectFault({ kind: "no-response", command: 0x40 });
      await assert.rejects(within(3000, pn532.transceive(select)), (e) => e instanceof Pn532TimeoutError && e.phase === "response");
      // The second abort's ACK may still be on its way to the emulator: wait for it, not for a fixed time.
      await until("the second abort at the emulator", () => emulator.stats.aborts >= abortsBefore + 2, 3000).catch(() => {});
      assert.equal(emulator.stats.aborts - abortsBefore, 2, "each timeout told the chip with an ACK");
      // A lost card command is not resent (had only its ACK been lost, the card would run it twice): a typed error.
      emulator.injectFault({ kind: "drop-command", command: 0x40, count: 10 });
      const exchanges = card.exchanges.length;
      await assert.rejects(within(3000, pn532.transceive(select)), (e) => e instanceof Pn532TimeoutError && e.phase === "ack");
      assert.equal(pn532.stats.resends, resendsBefore);
      assert.equal(card.exchanges.length, exchanges);
      emulator.clearFaults();
      emulator.injectFault({ kind: "status", status: 0x2b });
      await assert.rejects(within(3000, pn532.transceive(select)), Pn532CardGoneError);
      await assert.rejects(pn532.transceive(select), Pn532NoCardError, "card gone drops the target");
      await pn532.detect({ timeout: 500 });
      const r = await within(3000, pn532.transceive(select));
      assert.equal(toHex(r.subarray(r.length - 2)), "9000");
    });

    it("card pulled in the middle of DEBIT: typed error, and GET TRANSACTION PROVE recovers the purchase", async () => {
      const card = tunionCard(5000);
      rig = await make({ cards: [card], driver: { exchangeTimeout: 1000 } });
      const { pn532, emulator } = rig;
      await pn532.start();
      await pn532.detect({ timeout: 500 });
      const purse = new PurseCard(pn532);
      await purse.selectApplication([TUNION_APPLICATION]);
      const init = await purse.initializeForPurchase({ keyIndex: 1, amount: 300, terminalId: TERMINAL });
      const auth = authorize(card, init, 300, 42);
      emulator.injectFault({ kind: "remove-card", command: 0x40, when: "after" });
      await assert.rejects(within(3000, purse.debitForPurchase({ tsn: 42, date: auth.date, time: auth.time, mac1: auth.mac1 })), Pn532RfTimeoutError);
      assert.equal(card.present, false);
      assert.equal(card.application("tunion").balance, 4700, "the card committed before it left");
      await assert.rejects(within(2000, pn532.detect({ timeout: 200, interval: 50 })), Pn532NoCardError);
      emulator.place(card);
      await pn532.detect({ timeout: 500 });
      await purse.selectApplication([TUNION_APPLICATION]);
      const again = await purse.initializeForPurchase({ keyIndex: 1, amount: 1, terminalId: TERMINAL });
      assert.equal(again.epSerial, init.epSerial + 1, "the serial moved: the DEBIT happened");
      const prove = await within(3000, pn532.transceive(encodeCommand(getTransactionProve(0x06, again.epSerial))));
      assert.equal(toHex(prove.subarray(0, 4)), toHex(auth.mac2));
      // And a card that leaves before it sees the command: nothing happens on the card.
      emulator.injectFault({ kind: "remove-card", command: 0x40, when: "before" });
      await assert.rejects(within(3000, purse.getBalance()), { code: "PN532_RF_TIMEOUT" });
      assert.equal(card.application("tunion").balance, 4700);
    });

    it("a host that stalls for 250 ms after each card command leaves INIT and DEBIT run once each, and the purchase good", async () => {
      const card = tunionCard(5000);
      const ins = (c: Uint8Array) => (c[0] === 0x80 ? c[1] : -1);
      let stalls = 0;
      const trace = (direction: "out" | "in", bytes: Uint8Array) => {
        // InDataExchange frames carrying INIT (80 50) or DEBIT (80 54): hold the whole process as a TLS handshake would.
        if (direction !== "out" || bytes.length < 10 || bytes[5] !== 0xd4 || bytes[6] !== 0x40 || bytes[8] !== 0x80) return;
        if (bytes[9] !== 0x50 && bytes[9] !== 0x54) return;
        stalls++;
        const until = performance.now() + 250;
        while (performance.now() < until) { /* the stall */ }
      };
      rig = await make({ cards: [card], driver: { trace } });
      await rig.pn532.start();
      await rig.pn532.detect({ timeout: 500 });
      const resendsBefore = rig.pn532.stats.resends;
      const { auth, debit } = await within(5000, purchase(rig.pn532, card, 300, 7));
      assert.equal(stalls, 2);
      assert.equal(toHex(debit.mac2), toHex(auth.mac2), "MAC1 was made over the card's current random");
      assert.equal(card.exchanges.filter((e) => ins(e.command) === 0x50).length, 1, "INIT ran once");
      assert.equal(card.exchanges.filter((e) => ins(e.command) === 0x54).length, 1, "DEBIT ran once");
      assert.equal(card.application("tunion").balance, 4700);
      assert.equal(rig.pn532.stats.resends, resendsBefore);
    });

    it("DEBIT never runs twice on the card, whatever the line loses", async () => {
      const card = tunionCard(5000);
      rig = await make({ cards: [card], driver: { ackTimeout: 30, exchangeTimeout: 300 } });
      const { pn532, emulator } = rig;
      const debits = () => card.exchanges.filter((e) => e.command[0] === 0x80 && e.command[1] === 0x54).length;
      await pn532.start();
      await pn532.detect({ timeout: 500 });
      const resendsBefore = pn532.stats.resends;
      const faults = [
        { kind: "drop-ack" }, { kind: "corrupt-checksum", frame: "ack" }, { kind: "no-response" }, { kind: "late", ms: 1000 },
        { kind: "corrupt-checksum" }, { kind: "drop-command" },
      ] as const;
      let balance = 5000;
      for (const [i, fault] of faults.entries()) {
        const purse = new PurseCard(pn532);
        await purse.selectApplication([TUNION_APPLICATION]);
        const init = await purse.initializeForPurchase({ keyIndex: 1, amount: 100, terminalId: TERMINAL });
        const auth = authorize(card, init, 100, 100 + i);
        const before = debits();
        // The fault hits the next InDataExchange: the DEBIT.
        emulator.injectFault({ ...fault, command: 0x40 });
        await within(3000, purse.debitForPurchase({ tsn: 100 + i, date: auth.date, time: auth.time, mac1: auth.mac1 })).catch(() => {});
        // Every fault but a dropped command lets the DEBIT reach the card once; wait for that before counting.
        await until(`the DEBIT under ${fault.kind} to reach the card`, () => emulator.pendingFaults === 0 && (fault.kind === "drop-command" || debits() > before));
        assert.ok(debits() - before <= 1, `${fault.kind}: DEBIT ran ${debits() - before} times`);
        balance -= 100 * (debits() - before);
        assert.equal(card.application("tunion").balance, balance, fault.kind);
        emulator.clearFaults();
      }
      assert.equal(pn532.stats.resends, resendsBefore, "card commands are never resent");
    });

    it("detection never blocks the event loop, finds a card placed by a script, and can be aborted", async () => {
      const card = tunionCard();
      card.remove();
      // A loaded machine can keep the emulator's ACK past the chip's 50 ms; what is tested here is the detection.
      rig = await make({ cards: [card], driver: { ackTimeout: 500 } });
      const { pn532, emulator } = rig;
      await pn532.start();
      let ticks = 0;
      const ticker = setInterval(() => ticks++, 10);
      try {
        const t0 = performance.now();
        await assert.rejects(within(3000, pn532.detect({ timeout: 400, interval: 50 })), Pn532NoCardError);
        const elapsed = performance.now() - t0;
        assert.ok(elapsed >= 400, `detect gave up after ${elapsed} ms`);
        // A blocked loop would run no tick at all until detection ended; a loaded one still runs some.
        assert.ok(ticks >= 5, `the event loop ran only ${ticks} ticks during detection`);
        const script = runScript(emulator, [{ at: 250, action: "place", card: 0 }]);
        const t1 = performance.now();
        const target = await within(3000, pn532.detect({ timeout: 2000, interval: 50 }));
        assert.equal(toHex(target.uid), toHex(card.uid));
        assert.ok(performance.now() - t1 >= 200);
        await script.done;
        emulator.remove(0);
        const pending = pn532.detect({ timeout: 10_000, interval: 50 });
        setTimeout(() => pn532.abort(), 150);
        await assert.rejects(within(3000, pending), Pn532AbortedError);
        // With unbounded retries the chip only ACKs and waits; abort (an ACK frame) frees it.
        await pn532.setMaxRetries(0xff, 0x01, 0xff);
        const forever = pn532.inListPassiveTarget(1);
        setTimeout(() => pn532.abort(), 150);
        await assert.rejects(within(3000, forever), Pn532AbortedError);
        await until("the emulator to take the abort", () => emulator.stats.aborts > 0);
        assert.equal(emulator.stats.aborts, 1);
        const fw = await within(3000, pn532.getFirmwareVersion());
        assert.equal(fw.ic, 0x32);
      } finally {
        clearInterval(ticker);
      }
    });

    it("InAutoPoll: finds a card that arrives while it polls; abort() cancels an endless poll", async () => {
      const card = tunionCard();
      card.remove();
      rig = await make({ cards: [card], emulator: { timing: { pollPeriodUnit: 20 } } });
      const { pn532, emulator } = rig;
      await pn532.start();
      setTimeout(() => emulator.place(card), 150);
      const polled = await within(3000, pn532.inAutoPoll(0x14, 2, [0x20, 0x10]));
      assert.equal(polled[0]!.type, 0x20);
      assert.equal(toHex(polled[0]!.target!.uid), toHex(card.uid));
      assert.equal(pn532.target, polled[0]!.target);
      assert.equal(toHex((await pn532.transceive(fromHex("00A4040008A00000063201010500"))).slice(-2)), "9000");
      emulator.remove(card);
      const endless = pn532.inAutoPoll(0xff, 1, [0x20]);
      setTimeout(() => pn532.abort(), 100);
      await assert.rejects(within(3000, endless), Pn532AbortedError);
      await until("the emulator to take the abort", () => emulator.stats.aborts > 0);
      assert.equal(emulator.stats.aborts, 1);
    });

    it("PowerDown, then the next command wakes the chip with 55 55 00.. and SAMConfiguration", async () => {
      rig = await make({ cards: [tunionCard()] });
      const { pn532, emulator } = rig;
      await pn532.start();
      assert.equal(await pn532.powerDown(), 0);
      await until("the emulator to power down", () => emulator.asleep);
      const wakes = emulator.stats.wakeUps;
      const fw = await within(3000, pn532.getFirmwareVersion());
      assert.equal(fw.version, 1);
      assert.equal(emulator.stats.wakeUps, wakes + 1);
      assert.deepEqual(emulator.received.slice(-3).map((c) => c.code), [0x16, 0x14, 0x02]);
      const target = await pn532.detect({ timeout: 500 });
      assert.equal(target.sak, 0x20);
    });
  };
}

describe("pn532 integration over a pty pair (socat)", function () {
  before(function () {
    if (!hasSocat()) {
      console.log(`      (skipped: socat not installed; ${PTY_INSTALL_HINT})`);
      this.skip();
    }
  });
  suite("pty").call(this);
});

describe("pn532 integration over an in-memory line (no pty tool needed)", function () {
  suite("memory").call(this);
  it("runs with instant timing too", async () => {
    const card = tunionCard();
    const rig = await memoryRig({ cards: [card], emulator: { timing: INSTANT_TIMING } });
    try {
      await rig.pn532.start();
      await rig.pn532.detect();
      const { debit, auth } = await purchase(rig.pn532, card, 10, 1);
      assert.equal(toHex(debit.mac2), toHex(auth.mac2));
    } finally {
      await rig.close();
    }
  });
});

describe("pn532 emulator command line (tsx tools/sim/pn532sim/main.ts --port <pty> --card <state.json>)", function () {
  this.timeout(30_000);
  before(function () {
    if (!hasSocat()) {
      console.log(`      (skipped: socat not installed; ${PTY_INSTALL_HINT})`);
      this.skip();
    }
  });
  it("serves the driver on a pty and persists the card's state after a purchase", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "pn532sim-cli-"));
    const file = path.join(dir, "card.json");
    const card = tunionCard(900);
    card.save(file);
    const pair = await createPtyPair();
    const child = spawn(process.execPath, ["--import", "tsx", "tools/sim/pn532sim/main.ts", "--port", pair.device, "--card", file, "--verbose"], {
      stdio: ["pipe", "pipe", "pipe"],
    });
    let log = "";
    let out = "";
    child.stderr.on("data", (d: Buffer) => { log += d.toString(); });
    child.stdout.on("data", (d: Buffer) => { out += d.toString(); });
    const exited = new Promise((r) => child.once("exit", r));
    // A child process on a busy CI machine can be slow to ACK; wait longer than the manual's 15 ms before resending.
    const pn532 = new PN532({ serial: { io: NodeSerial, path: pair.host, baud: 115200 }, timers: nodeTimers, ackTimeout: 500 });
    let passed = false;
    try {
      await until("the emulator to start", () => {
        if (child.exitCode !== null) throw new Error(`emulator exited: ${log}`);
        return log.includes("pn532sim: PN532 v1.6 on");
      });
      await within(3000, pn532.start());
      await within(3000, pn532.detect({ timeout: 500 }));
      const { debit, auth } = await within(5000, purchase(pn532, card, 250, 9));
      assert.equal(toHex(debit.mac2), toHex(auth.mac2));
      const saved = JSON.parse(readFileSync(file, "utf8")) as { applications: { balance: number }[] };
      assert.equal(saved.applications[0]!.balance, 650);
      // stdin controls the field: take the card out, and the driver finds nothing.
      child.stdin.write("remove 0\nstatus\n");
      await until("the emulator to report the card out of the field", () => out.includes('"present":false'));
      await assert.rejects(within(3000, pn532.detect({ timeout: 200 })), Pn532NoCardError);
      passed = true;
    } finally {
      if (!passed) console.log(`      emulator log:\n${log}`);
      pn532.close();
      child.kill("SIGTERM");
      await exited;
      await pair.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
