import * as assert from "../lib/assert";
import { fromHex, toHex } from "../../modules/bytes/bytes";
import {
  ACK_FRAME, Command, ERROR_FRAME, PN532, Pn532AbortedError, Pn532ApplicationError, Pn532CardGoneError, Pn532ClosedError,
  Pn532FrameError, Pn532NoCardError, Pn532RfError, Pn532RfTimeoutError, Pn532StatusError, Pn532TimeoutError, TFI_PN532, WAKE_UP,
  encodeFrame, type PN532Options,
} from "../../modules/pn532/index";
import { ScriptedPeer, type ReceivedCommand } from "../lib/pn532-peer";
import { VirtualClock } from "../lib/virtual-clock";

const TARGET = fromHex("01 01 0344 20 07 04A1B2C3D4E5F6 06 7577810280");

function setup(options: Partial<PN532Options> = {}): { clock: VirtualClock; peer: ScriptedPeer; pn532: PN532 } {
  const clock = new VirtualClock();
  const peer = new ScriptedPeer(clock);
  const pn532 = new PN532({ serial: { io: peer.io, baud: 115200 }, timers: clock, ...options });
  return { clock, peer, pn532 };
}

/** A chip that has woken up already, so tests start from an idle, awake driver. */
async function awake(options: Partial<PN532Options> = {}) {
  const s = setup(options);
  await s.clock.run(s.pn532.samConfiguration());
  s.peer.commands = [];
  s.peer.frames = [];
  s.peer.written = [];
  return s;
}

function framesFrom(peer: ScriptedPeer): string[] {
  return peer.frames.map((f) => (f.kind === "information" ? toHex(f.data) : f.kind));
}

describe("pn532 driver: start-up and commands", () => {
  it("start(): HSU wake-up with SAMConfiguration, then firmware, parameters and bounded retries", async () => {
    const { clock, peer, pn532 } = setup();
    peer.onCommand = (c, p) => p.answer(c.code, c.code === Command.GetFirmwareVersion ? fromHex("32010607") : new Uint8Array(0));
    const firmware = await clock.run(pn532.start());
    assert.deepEqual(firmware, { ic: 0x32, version: 1, revision: 6, support: 7 });
    assert.hex(new Uint8Array(peer.written.slice(0, 26)), toHex(WAKE_UP) + "0000FF04FCD41401 14 03 00".replace(/ /g, "").slice(0, 20));
    assert.deepEqual(framesFrom(peer), ["140114", "02", "1214", "3205FF0102"]);
    assert.ok(peer.port!.options.format === "buffer" && peer.port!.options.baud === 115200);
  });
  it("answers GetFirmwareVersion, Diagnose, registers, RFConfiguration with the manual's bytes", async () => {
    const { clock, peer, pn532 } = await awake();
    peer.onCommand = (c, p) => {
      if (c.code === Command.Diagnose) p.answer(c.code, c.params);
      else if (c.code === Command.ReadRegister) p.answer(c.code, fromHex("8080"));
      else p.answer(c.code, new Uint8Array(0));
    };
    assert.hex(await clock.run(pn532.diagnose(0, fromHex("6C69626E6663"))), "006C69626E6663");
    assert.hex(await clock.run(pn532.readRegister([0x6302, 0x6303])), "8080");
    await clock.run(pn532.writeRegister([[0x6305, 0x40]]));
    await clock.run(pn532.setField(true));
    await clock.run(pn532.setTimings(0x0b, 0x0a));
    await clock.run(pn532.setMaxRetries(0, 1, 2));
    assert.deepEqual(framesFrom(peer), ["00006C69626E6663", "0663026303", "08630540", "320101", "3202000B0A", "3205000102"]);
  });
  it("keeps one command on the wire: the second frame goes out only after the first is answered", async () => {
    const { clock, peer, pn532 } = await awake();
    const seen: number[] = [];
    peer.onCommand = (c, p) => {
      seen.push(peer.commands.length);
      p.answer(c.code, new Uint8Array(0), 20);
    };
    const a = pn532.command(0x02);
    const b = pn532.command(0x04);
    await clock.advance(10);
    assert.equal(peer.commands.length, 1, "second command must wait");
    await clock.run(Promise.all([a, b]));
    assert.deepEqual(peer.commandCodes(), [0x02, 0x04]);
  });
});

describe("pn532 driver: link faults", () => {
  it("resends a command the chip did not hear (no ACK, no answer), and succeeds on the resend", async () => {
    const { clock, peer, pn532 } = await awake({ ackTimeout: 15 });
    let n = 0;
    peer.onCommand = (c, p) => {
      if (n++ === 0) return;
      p.answer(c.code, fromHex("32010607"));
    };
    const started = clock.now();
    const fw = await clock.run(pn532.getFirmwareVersion());
    assert.equal(fw.ic, 0x32);
    assert.equal(peer.commands.length, 2);
    assert.equal(pn532.stats.resends, 1);
    assert.ok(clock.now() - started >= 15, "the resend waited for the ACK deadline");
  });
  it("after a resend succeeds, an ACK stops the other copy, and un-ACKed answers wait for a clean round", async () => {
    const { clock, peer, pn532 } = await awake({ ackTimeout: 15, responseTimeout: 50 });
    const controls: string[] = [];
    peer.onControl = (f) => controls.push(f.kind);
    let n = 0;
    peer.onCommand = (c, p) => {
      if (n++ === 0) return;
      p.answer(c.code, fromHex("32010607"));
    };
    await clock.run(pn532.getFirmwareVersion());
    assert.deepEqual(controls, ["ack"], "abort of the duplicate");
    // The next GetFirmwareVersion answered without ACK could be the duplicate's: resent, not taken.
    n = 0;
    peer.onCommand = (c, p) => {
      if (n++ === 0) p.send(encodeFrame(TFI_PN532, fromHex("03AABBCCDD")));
      else p.answer(c.code, fromHex("32010607"));
    };
    assert.equal((await clock.run(pn532.getFirmwareVersion())).ic, 0x32);
    assert.equal(n, 2);
    // One clean round with ACK, and answers without ACK are taken again.
    peer.onCommand = (c, p) => p.answer(c.code, fromHex("32010607"));
    await clock.run(pn532.getFirmwareVersion());
    peer.onCommand = (c, p) => p.send(encodeFrame(TFI_PN532, fromHex("0332010607")));
    const before = peer.commands.length;
    await clock.run(pn532.getFirmwareVersion());
    assert.equal(peer.commands.length, before + 1);
  });
  it("gives up with Pn532TimeoutError (phase ack) after ackRetries resends", async () => {
    const { clock, peer, pn532 } = await awake({ ackTimeout: 15, ackRetries: 2 });
    peer.onCommand = () => {};
    await assert.rejects(clock.run(pn532.getFirmwareVersion()), Pn532TimeoutError, (e) => e.phase === "ack" && e.code === "PN532_TIMEOUT");
    assert.equal(peer.commands.length, 3);
  });
  it("takes an answer whose ACK was lost, but not when it may belong to an earlier command given up on", async () => {
    const { clock, peer, pn532 } = await awake({ ackTimeout: 15, ackRetries: 0, responseTimeout: 50 });
    peer.onCommand = (c, p) => p.send(encodeFrame(TFI_PN532, fromHex("0332010607")));
    assert.equal((await clock.run(pn532.getFirmwareVersion())).ic, 0x32);
    assert.equal(peer.commands.length, 1);
    peer.onCommand = (c, p) => p.ack();
    await assert.rejects(clock.run(pn532.getFirmwareVersion()), Pn532TimeoutError);
    peer.onCommand = (c, p) => p.send(encodeFrame(TFI_PN532, fromHex("0332010607")));
    await assert.rejects(clock.run(pn532.getFirmwareVersion()), Pn532TimeoutError, (e) => e.phase === "ack");
  });
  it("takes the answer after a damaged ACK instead of running the command twice, unless an old answer may be due", async () => {
    const { clock, peer, pn532 } = await awake({ ackTimeout: 15, responseTimeout: 100 });
    const badAck = fromHex("0000FF00FE00");
    peer.onCommand = (c, p) => {
      p.send(badAck);
      p.send(encodeFrame(TFI_PN532, new Uint8Array([c.code + 1, 0x00, 0x90, 0x00])), 1);
    };
    assert.hex(await clock.run(pn532.command(0x40, fromHex("01"))), "009000");
    assert.equal(peer.commands.length, 1, "no resend");
    // After a command with the same code timed out, an unacknowledged answer could be its late one. A card command
    // is not resent either (the card may have run it): the caller gets a typed error and the card's state is unknown.
    peer.onCommand = (c, p) => p.ack();
    await assert.rejects(clock.run(pn532.command(0x40, fromHex("01"))), Pn532TimeoutError);
    let n = 0;
    peer.onCommand = (c, p) => {
      if (n++ === 0) {
        p.send(badAck);
        p.send(encodeFrame(TFI_PN532, new Uint8Array([c.code + 1, 0x00, 0x6a, 0x82])), 1);
      } else p.answer(c.code, fromHex("009000"));
    };
    await assert.rejects(clock.run(pn532.command(0x40, fromHex("01"))), Pn532TimeoutError, (e) => e.phase === "ack");
    assert.equal(n, 1, "not resent");
    // A repeatable command in the same spot is resent, and its answer after the resend's ACK taken.
    peer.onCommand = (c, p) => p.ack();
    await assert.rejects(clock.run(pn532.command(0x02)), Pn532TimeoutError);
    n = 0;
    peer.onCommand = (c, p) => {
      if (n++ === 0) {
        p.send(badAck);
        p.send(encodeFrame(TFI_PN532, fromHex("03AABBCCDD")), 1);
      } else p.answer(c.code, fromHex("32010607"));
    };
    assert.hex(await clock.run(pn532.command(0x02)), "32010607");
    assert.equal(n, 2, "resent once");
  });
  it("aborts a late command with an ACK frame and reports Pn532TimeoutError (phase response)", async () => {
    const { clock, peer, pn532 } = await awake({ responseTimeout: 100 });
    peer.onCommand = (c, p) => p.answer(c.code, new Uint8Array(0), 500);
    const controls: string[] = [];
    peer.onControl = (f) => controls.push(f.kind);
    await assert.rejects(clock.run(pn532.command(0x02)), Pn532TimeoutError, (e) => e.phase === "response");
    assert.deepEqual(controls, ["ack"]);
    // This peer ignores the abort, so the late D5 03 arrives while the next command waits: it must not be taken for
    // that command's answer.
    peer.onCommand = (c, p) => p.answer(c.code, fromHex("00"), 600);
    const next = pn532.command(0x04, new Uint8Array(0), { timeout: 1000 });
    await clock.advance(450);
    assert.equal(pn532.state, "response");
    const status = await clock.run(next);
    assert.hex(status, "00");
  });
  it("NACKs a damaged response and takes the resent one", async () => {
    const { clock, peer, pn532 } = await awake();
    const good = encodeFrame(TFI_PN532, fromHex("0332010607"));
    const bad = good.slice();
    bad[bad.length - 2] ^= 0x55;
    peer.onCommand = (c, p) => {
      p.ack();
      p.send(bad, 1);
    };
    peer.onControl = (f, p) => {
      if (f.kind === "nack") p.send(good, 1);
    };
    assert.hex(await clock.run(pn532.command(0x02)), "32010607");
    assert.equal(pn532.stats.nacks, 1);
  });
  it("gives up with Pn532FrameError when every resent response is damaged", async () => {
    const { clock, peer, pn532 } = await awake({ nackRetries: 2 });
    const bad = encodeFrame(TFI_PN532, fromHex("0332010607"));
    bad[bad.length - 2] ^= 1;
    peer.onCommand = (c, p) => {
      p.ack();
      p.send(bad, 1);
    };
    peer.onControl = (f, p) => {
      if (f.kind === "nack") p.send(bad, 1);
    };
    await assert.rejects(clock.run(pn532.command(0x02)), Pn532FrameError, (e) => e.code === "PN532_FRAME");
    assert.equal(pn532.stats.nacks, 2);
  });
  it("maps the error frame to Pn532ApplicationError", async () => {
    const { clock, peer, pn532 } = await awake();
    peer.onCommand = (c, p) => {
      p.ack();
      p.send(ERROR_FRAME, 1);
    };
    await assert.rejects(clock.run(pn532.command(0xff)), Pn532ApplicationError, (e) => e.code === "PN532_APPLICATION_ERROR" && e.command === 0xff);
  });
  it("survives garbage and a stray ACK before the real answer", async () => {
    const { clock, peer, pn532 } = await awake();
    peer.onCommand = (c, p) => {
      p.send(fromHex("306172FF00FF1200"));
      p.answer(c.code, fromHex("32010607"), 2);
    };
    assert.hex(await clock.run(pn532.command(0x02)), "32010607");
  });
  it("close() rejects the command in flight and everything queued with Pn532ClosedError", async () => {
    const { clock, peer, pn532 } = await awake();
    peer.onCommand = () => {};
    const a = pn532.command(0x02);
    const b = pn532.command(0x04);
    a.catch(() => {});
    b.catch(() => {});
    await clock.advance(1);
    pn532.close();
    await assert.rejects(a, Pn532ClosedError);
    await assert.rejects(b, Pn532ClosedError);
    await assert.rejects(pn532.command(0x02), { code: "PN532_CLOSED" });
    assert.ok(peer.closed);
    assert.equal(clock.pending, 0, "no timer left behind");
  });
});

function targetPeer(peer: ScriptedPeer, exchange: (c: ReceivedCommand, p: ScriptedPeer) => void): void {
  peer.onCommand = (c, p) => {
    if (c.code === Command.InListPassiveTarget) p.answer(c.code, TARGET);
    else if (c.code === Command.InDataExchange) exchange(c, p);
    else p.answer(c.code, c.code === Command.InRelease || c.code === Command.InDeselect ? fromHex("00") : new Uint8Array(0));
  };
}

/** INITIALIZE FOR PURCHASE (docs/purse.md), key 1, 1.00 yuan, terminal 112233445566. */
const INIT = fromHex("805001020B01000000641122334455660F");

/** A card whose every INIT draws a new random, as a real purse does: the answer tells which execution it came from. */
function initAnswer(execution: number): Uint8Array {
  return fromHex(`00 0000 0000138800 0001 000000 01 00 ${(0xa0 + execution).toString(16)}A1A2A3 9000`);
}

function answerFrame(code: number, data: Uint8Array): Uint8Array {
  const body = new Uint8Array(1 + data.length);
  body[0] = code + 1;
  body.set(data, 1);
  return encodeFrame(TFI_PN532, body);
}

function exchanges(peer: ScriptedPeer): number {
  return peer.commands.filter((c) => c.code === Command.InDataExchange).length;
}

describe("pn532 driver: a card command is never run twice unseen (issue 10)", () => {
  it("host stalls while the ACK and the INIT answer wait unread: the late timer reads them, nothing is resent", async () => {
    const { clock, peer, pn532 } = await awake({ ackTimeout: 50 });
    peer.onCommand = (c, p) => {
      const execution = exchanges(p);
      // The host's loop is held for 245 ms (an RSA handshake) just after the frame left; the chip's ACK and answer
      // come meanwhile and sit in the receive buffer; the host's read callback runs only after its due timers.
      clock.set(() => {
        clock.stall(245);
        p.stage(ACK_FRAME);
        p.stage(answerFrame(c.code, initAnswer(execution)));
        p.send(new Uint8Array(0));
      }, 0);
    };
    const answer = await clock.run(pn532.inDataExchange(1, INIT));
    assert.equal(exchanges(peer), 1, "INIT ran once on the card");
    assert.hex(answer, toHex(initAnswer(1).subarray(1)));
    assert.equal(pn532.stats.resends, 0);
  });
  it("host stalls and the bytes arrive only after the late timer: the wait starts again instead of a resend", async () => {
    const { clock, peer, pn532 } = await awake({ ackTimeout: 50 });
    peer.onCommand = (c, p) => {
      const execution = exchanges(p);
      clock.set(() => {
        clock.stall(245);
        p.send(ACK_FRAME, 10);
        p.send(answerFrame(c.code, initAnswer(execution)), 30);
      }, 0);
    };
    const answer = await clock.run(pn532.inDataExchange(1, INIT));
    assert.equal(exchanges(peer), 1);
    assert.hex(answer, toHex(initAnswer(1).subarray(1)));
    assert.equal(pn532.stats.stalls, 1, "the late timer was seen as a stall");
    // The same for a command that may be resent: a stall alone does not resend it.
    peer.onCommand = (c, p) => clock.set(() => {
      clock.stall(245);
      p.answer(c.code, fromHex("32010607"), 10);
    }, 0);
    assert.equal((await clock.run(pn532.getFirmwareVersion())).ic, 0x32);
    assert.equal(pn532.stats.resends, 0);
  });
  it("a response timer that fires late after a stall takes the answer already received (DEBIT not turned into a timeout)", async () => {
    const { clock, peer, pn532 } = await awake({ exchangeTimeout: 1000 });
    peer.onCommand = (c, p) => {
      p.ack();
      clock.set(() => {
        clock.stall(3000);
        p.stage(answerFrame(c.code, fromHex("00 11223344 55667788 9000")));
        p.send(new Uint8Array(0));
      }, 1);
    };
    assert.hex(await clock.run(pn532.inDataExchange(1, fromHex("805401000F0000002A20261201083000AABBCCDD08"))), "11223344556677889000");
    assert.equal(pn532.stats.aborts, 0);
  });
  it("DEBIT is never sent twice: lost ACK, lost ACK and answer, lost frame", async () => {
    const { clock, peer, pn532 } = await awake({ ackTimeout: 15, exchangeTimeout: 200 });
    const debit = fromHex("805401000F0000002A20261201083000AABBCCDD08");
    const controls: string[] = [];
    peer.onControl = (f) => controls.push(f.kind);
    // Only the ACK is lost; the answer comes after the ACK deadline and is taken.
    peer.onCommand = (c, p) => p.send(answerFrame(c.code, fromHex("00 11223344 55667788 9000")), 60);
    assert.hex(await clock.run(pn532.inDataExchange(1, debit)), "11223344556677889000");
    assert.equal(exchanges(peer), 1);
    // ACK and answer lost (or the frame never arrived): a typed error, the chip told to stop, and no second frame.
    peer.onCommand = () => {};
    await assert.rejects(clock.run(pn532.inDataExchange(1, debit)), Pn532TimeoutError, (e) => e.phase === "ack");
    assert.equal(exchanges(peer), 2);
    assert.deepEqual(controls, ["ack"]);
    peer.onCommand = (c, p) => p.ack();
    await assert.rejects(clock.run(pn532.inDataExchange(1, debit)), Pn532TimeoutError, (e) => e.phase === "response");
    assert.equal(exchanges(peer), 3);
    assert.equal(pn532.stats.resends, 0);
  });
  it("after an unavoidable resend, the answer before the resend's ACK is an earlier copy's and is not kept", async () => {
    const { clock, peer, pn532 } = await awake({ ackTimeout: 15 });
    let n = 0;
    peer.onCommand = (c, p) => {
      if (n++ === 0) p.send(answerFrame(c.code, fromHex("AABBCCDD")), 20);
      else {
        p.ack(10);
        p.send(answerFrame(c.code, fromHex("32010607")), 11);
      }
    };
    assert.equal((await clock.run(pn532.getFirmwareVersion())).ic, 0x32);
    assert.equal(n, 2);
  });
});

describe("pn532 driver: line rate", () => {
  const answerAll = (c: ReceivedCommand, p: ScriptedPeer) =>
    p.answer(c.code, c.code === Command.GetFirmwareVersion ? fromHex("32010607") : c.code === Command.Diagnose ? c.params : new Uint8Array(0));
  it("SetSerialBaudRate: answer, host ACK, the port reopened at 921,600, then a Diagnose echo", async () => {
    const clock = new VirtualClock();
    const peer = new ScriptedPeer(clock);
    const pn532 = new PN532({ serial: { io: peer.io, baud: 115200, rates: [921600] }, timers: clock });
    const seen: string[] = [];
    peer.onControl = (f) => seen.push(f.kind);
    peer.onCommand = (c, p) => {
      seen.push(`${c.code.toString(16)}@${p.port!.options.baud}`);
      answerAll(c, p);
    };
    await clock.run(pn532.start());
    assert.equal(pn532.baud, 921600);
    assert.equal(peer.port!.options.baud, 921600);
    assert.deepEqual(seen, ["14@115200", "2@115200", "12@115200", "32@115200", "10@115200", "ack", "0@921600"]);
    assert.hex(peer.commands.find((c) => c.code === Command.SetSerialBaudRate)!.params, "07");
  });
  it("no echo at the new rate: back to 115,200 with a wake-up, and an event says so", async () => {
    const clock = new VirtualClock();
    const peer = new ScriptedPeer(clock);
    const events: string[] = [];
    const pn532 = new PN532({ serial: { io: peer.io, baud: 115200, rates: [921600] }, timers: clock, responseTimeout: 100, onLine: (e) => events.push(e.kind) });
    peer.onCommand = (c, p) => {
      // A chip that answers the switch but stays at 115,200: nothing it hears at 921,600 makes sense to it.
      if (p.port!.options.baud !== 115200) return;
      answerAll(c, p);
    };
    await clock.run(pn532.start());
    assert.equal(pn532.baud, 115200);
    assert.deepEqual(events, ["fallback"]);
    const wakeUps = peer.written.filter((b, i, all) => b === 0x55 && all[i + 1] === 0x55).length;
    assert.equal(wakeUps, 2, "the start-up wake-up and the one after the fallback");
  });
  it("a host that lists no other rate stays at 115,200 and never sends SetSerialBaudRate", async () => {
    const { clock, peer, pn532 } = setup();
    peer.onCommand = answerAll;
    await clock.run(pn532.start());
    assert.equal(pn532.baud, 115200);
    assert.ok(!peer.commands.some((c) => c.code === Command.SetSerialBaudRate));
  });
});

describe("pn532 driver: targets and InDataExchange", () => {
  it("InListPassiveTarget 106A decodes ATQA, SAK, UID and the ATS without TL", async () => {
    const { clock, peer, pn532 } = await awake();
    targetPeer(peer, () => {});
    const [t] = await clock.run(pn532.inListPassiveTarget());
    assert.ok(t);
    assert.equal(t.tg, 1);
    assert.hex(t.atqa, "0344");
    assert.equal(t.sak, 0x20);
    assert.hex(t.uid, "04A1B2C3D4E5F6");
    assert.hex(t.ats!, "7577810280");
    assert.equal(toHex(peer.commands[0]!.params), "0100");
  });
  it("transceive(): one APDU as 40 01 <APDU>; status codes become typed errors", async () => {
    const { clock, peer, pn532 } = await awake();
    let status = 0x00;
    targetPeer(peer, (c, p) => p.answer(c.code, status ? new Uint8Array([status]) : fromHex("00 9000")));
    await assert.rejects(pn532.transceive(fromHex("00A4040000")), Pn532NoCardError);
    await clock.run(pn532.inListPassiveTarget());
    assert.hex(await clock.run(pn532.transceive(fromHex("00A40400 07 D2760000850101 00"))), "9000");
    assert.equal(toHex(peer.commands[1]!.params), "0100A4040007D276000085010100");
    status = 0x01;
    await assert.rejects(clock.run(pn532.transceive(fromHex("0084000008"))), Pn532RfTimeoutError, (e) => e.code === "PN532_RF_TIMEOUT" && e.status === 1);
    status = 0x13;
    await assert.rejects(clock.run(pn532.transceive(fromHex("0084000008"))), Pn532RfError, (e) => e.code === "PN532_RF_ERROR");
    status = 0x27;
    await assert.rejects(clock.run(pn532.transceive(fromHex("0084000008"))), Pn532StatusError, (e) => e.code === "PN532_STATUS" && e.status === 0x27);
    assert.ok(pn532.target, "the target stays after errors that do not say the card is gone");
    status = 0x2b;
    await assert.rejects(clock.run(pn532.transceive(fromHex("0084000008"))), Pn532CardGoneError, (e) => e.code === "PN532_CARD_GONE");
    assert.equal(pn532.target, undefined);
    status = 0x29;
    await clock.run(pn532.inListPassiveTarget());
    await assert.rejects(clock.run(pn532.transceive(fromHex("0084000008"))), { code: "PN532_CARD_GONE" });
  });
  it("a 261-byte APDU goes in one extended frame; a 258-byte answer comes back in one", async () => {
    const { clock, peer, pn532 } = await awake();
    const apdu = new Uint8Array(261).map((_, i) => i & 0xff);
    const answer = new Uint8Array(258).map((_, i) => (i * 7) & 0xff);
    targetPeer(peer, (c, p) => p.answer(c.code, new Uint8Array([0, ...answer])));
    await clock.run(pn532.inListPassiveTarget());
    peer.written = [];
    const r = await clock.run(pn532.transceive(apdu));
    assert.hex(r, toHex(answer));
    assert.hex(new Uint8Array(peer.written.slice(0, 8)), "0000FFFFFF0108F7");
    const f = peer.frames[peer.frames.length - 1]!;
    assert.ok(f.kind === "information" && f.extended && f.data.length === 263);
  });
  it("MI chaining both ways: DataOut in pieces with Tg bit 6, an MI answer fetched with bare 40 01", async () => {
    const { clock, peer, pn532 } = await awake({ maxDataOut: 100 });
    const apdu = new Uint8Array(261).map((_, i) => (i * 3) & 0xff);
    const answer = new Uint8Array(258).map((_, i) => (i * 5) & 0xff);
    const pieces: Uint8Array[] = [];
    let sent = 0;
    targetPeer(peer, (c, p) => {
      pieces.push(c.params);
      if (c.params[0] === 0x41) return p.answer(c.code, fromHex("00"));
      const size = Math.min(120, answer.length - sent);
      const more = sent + size < answer.length;
      p.answer(c.code, new Uint8Array([more ? 0x40 : 0x00, ...answer.subarray(sent, sent + size)]));
      sent += size;
    });
    await clock.run(pn532.inListPassiveTarget());
    assert.hex(await clock.run(pn532.transceive(apdu)), toHex(answer));
    assert.deepEqual(pieces.map((p) => [p[0], p.length - 1]), [[0x41, 100], [0x41, 100], [0x01, 61], [0x01, 0], [0x01, 0]]);
    const joined = new Uint8Array(261);
    joined.set(pieces[0]!.subarray(1), 0);
    joined.set(pieces[1]!.subarray(1), 100);
    joined.set(pieces[2]!.subarray(1), 200);
    assert.hex(joined, toHex(apdu));
  });
});

describe("pn532 driver: card detection and power", () => {
  it("detect() polls with bounded retries and sleeps between polls until the card comes", async () => {
    const { clock, peer, pn532 } = await awake();
    let polls = 0;
    peer.onCommand = (c, p) => {
      if (c.code !== Command.InListPassiveTarget) return p.answer(c.code, new Uint8Array(0));
      polls++;
      p.answer(c.code, polls < 4 ? fromHex("00") : TARGET, 5);
    };
    const start = clock.now();
    const t = await clock.run(pn532.detect({ timeout: 5000, interval: 100 }));
    assert.hex(t.uid, "04A1B2C3D4E5F6");
    assert.equal(polls, 4);
    assert.equal(toHex(peer.commands[0]!.frame.kind === "information" ? peer.commands[0]!.frame.data : new Uint8Array(0)), "3205FF0102");
    assert.ok(clock.now() - start >= 300, "three sleeps of 100 ms");
    assert.equal(pn532.target, t);
  });
  it("detect() ends with Pn532NoCardError at its deadline", async () => {
    const { clock, peer, pn532 } = await awake();
    peer.onCommand = (c, p) => p.answer(c.code, c.code === Command.InListPassiveTarget ? fromHex("00") : new Uint8Array(0), 3);
    await assert.rejects(clock.run(pn532.detect({ timeout: 1000, interval: 100 })), Pn532NoCardError, (e) => e.code === "PN532_NO_CARD");
    assert.ok(clock.now() >= 1000 && clock.now() < 1200);
  });
  it("abort() cancels a detection in its sleep and one in flight (sending an ACK to the chip)", async () => {
    const { clock, peer, pn532 } = await awake();
    peer.onCommand = (c, p) => p.answer(c.code, c.code === Command.InListPassiveTarget ? fromHex("00") : new Uint8Array(0), 3);
    const d1 = pn532.detect({ timeout: 10_000, interval: 500 });
    d1.catch(() => {});
    await clock.advance(200);
    pn532.abort();
    await assert.rejects(d1, Pn532AbortedError);
    peer.onCommand = (c, p) => (c.code === Command.InListPassiveTarget ? p.ack() : p.answer(c.code, new Uint8Array(0)));
    const controls: string[] = [];
    peer.onControl = (f) => controls.push(f.kind);
    const d2 = pn532.detect({ timeout: 10_000 });
    d2.catch(() => {});
    await clock.advance(50);
    assert.equal(pn532.state, "response");
    pn532.abort();
    await assert.rejects(d2, { code: "PN532_ABORTED" });
    assert.deepEqual(controls, ["ack"]);
    assert.equal(clock.pending, 0);
  });
  it("after PowerDown the next command wakes the chip with 55 55 00.. and SAMConfiguration first", async () => {
    const { clock, peer, pn532 } = await awake();
    peer.onCommand = (c, p) => p.answer(c.code, c.code === Command.PowerDown ? fromHex("00") : new Uint8Array(0));
    assert.equal(await clock.run(pn532.powerDown()), 0);
    peer.written = [];
    await clock.run(pn532.command(Command.GetFirmwareVersion));
    assert.hex(new Uint8Array(peer.written.slice(0, 16)), toHex(WAKE_UP));
    assert.deepEqual(peer.commandCodes(), [0x16, 0x14, 0x02]);
  });
  it("InAutoPoll decodes the polled ISO14443-4A target", async () => {
    const { clock, peer, pn532 } = await awake();
    peer.onCommand = (c, p) => p.answer(c.code, fromHex("01 20 12" + "01 0344 20 07 04A1B2C3D4E5F6 06 7577810280"));
    const polled = await clock.run(pn532.inAutoPoll(0x14, 2, [0x20, 0x10]));
    assert.equal(polled.length, 1);
    assert.equal(polled[0]!.type, 0x20);
    assert.hex(polled[0]!.target!.ats!, "7577810280");
    assert.equal(toHex(peer.commands[0]!.params), "14022010");
  });
  it("abort with nothing in flight writes nothing", async () => {
    const { peer, pn532 } = await awake();
    pn532.abort();
    assert.equal(peer.written.length, 0);
    assert.hex(ACK_FRAME, "0000FF00FF00");
  });
});
