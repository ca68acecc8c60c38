// libnfc, an independent PN532 client, against the emulator on a socat pty pair: if libnfc's strict frame checks,
// timeouts and open sequence accept it, the emulator speaks HSU the way the chip does.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { toHex } from "../../../modules/bytes/bytes";
import { hasCommand, PTY_INSTALL_HINT, createPtyPair, type PtyPair } from "../../../hosts/node/pty";
import { startEmulator, type Pn532Emulator } from "../../../tools/sim/pn532sim/index";
import { tunionCard } from "./helpers";

function run(command: string, args: string[], device: string, input?: string, timeout = 15_000): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env: { ...process.env, LIBNFC_DEVICE: `pn532_uart:${device}`, LIBNFC_LOG_LEVEL: "1" } });
    let out = "";
    child.stdout.on("data", (d: Buffer) => { out += d.toString(); });
    child.stderr.on("data", (d: Buffer) => { out += d.toString(); });
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${command} hung; output so far:\n${out}`));
    }, timeout);
    child.on("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
    child.stdin.end(input ?? "");
  });
}

/** libnfc prints bytes as "04  a1  b2 "; compare on single-spaced lower-case hex. */
function spaced(hex: string): string {
  return hex.toLowerCase().replace(/(..)(?!$)/g, "$1 ");
}

function normal(text: string): string {
  return text.replace(/[ \t]+/g, " ");
}

describe("libnfc accepts the PN532 emulator (pn532_uart over a socat pty)", function () {
  this.timeout(40_000);
  let pair: PtyPair | undefined;
  let emulator: Pn532Emulator | undefined;

  before(function () {
    const missing = ["socat", "nfc-list", "nfc-scan-device", "pn53x-tamashell"].filter((c) => !hasCommand(c));
    if (missing.length) {
      console.log(`      (skipped: ${missing.join(", ")} not installed; ${PTY_INSTALL_HINT})`);
      this.skip();
    }
  });
  afterEach(async () => {
    emulator?.close();
    emulator = undefined;
    await pair?.close();
    pair = undefined;
  });

  it("nfc-scan-device -v shows the chip as PN532 v1.6", async () => {
    pair = await createPtyPair();
    emulator = await startEmulator({ path: pair.device, cards: [] });
    const { code, out } = await run("nfc-scan-device", ["-v"], pair.host);
    assert.equal(code, 0, out);
    assert.match(out, /chip: PN532 v1\.6/);
    assert.match(out, /1 NFC device\(s\) found/);
  });

  it("nfc-list lists the virtual card: UID, ATQA, SAK and ATS, after libnfc's own open sequence", async () => {
    const card = tunionCard(100, "31415926535897932384");
    pair = await createPtyPair();
    emulator = await startEmulator({ path: pair.device, cards: [card] });
    const { code, out } = await run("nfc-list", ["-v"], pair.host);
    assert.equal(code, 0, out);
    const text = normal(out);
    assert.match(text, /NFC device: .* opened/);
    assert.match(text, /1 ISO14443A passive target\(s\) found/);
    assert.ok(text.includes(`ATQA (SENS_RES): ${spaced(toHex(card.atqa))}`), out);
    assert.ok(text.includes(`UID (NFCID1): ${spaced(toHex(card.uid))}`), out);
    assert.equal(toHex(card.uid), "04535897932384");
    assert.ok(text.includes(`SAK (SEL_RES): ${spaced(card.sak.toString(16).padStart(2, "0"))}`), out);
    assert.ok(text.includes(`ATS: ${spaced(toHex(card.ats))}`), out);
    assert.match(text, /Frame Waiting Time: 77\.33 ms/);
    // libnfc's open: SAMConfiguration, Diagnose, GetFirmwareVersion, SetParameters, Read/WriteRegister; then the
    // probes of every other modulation (FeliCa, B, B', SRx, CTx, iClass, Jewel, Barcode) found nothing.
    assert.deepEqual(emulator.received.slice(0, 6).map((c) => c.code), [0x14, 0x00, 0x02, 0x12, 0x06, 0x08]);
    assert.match(text, /0 Felica \(212 kbps\) passive target\(s\) found/);
    assert.match(text, /0 ISO14443B passive target\(s\) found/);
    assert.equal(emulator.received.at(-1)!.code, 0x16, "libnfc closed with PowerDown");
    assert.ok(emulator.asleep);
  });

  it("nfc-list with the card out of the field lists nothing; with it back, lists it (the chip woke from PowerDown)", async () => {
    const card = tunionCard();
    pair = await createPtyPair();
    emulator = await startEmulator({ path: pair.device, cards: [card] });
    emulator.remove(card);
    const empty = await run("nfc-list", ["-t", "1"], pair.host);
    assert.equal(empty.code, 0, empty.out);
    assert.doesNotMatch(empty.out, /ISO14443A passive target/);
    emulator.place(card);
    const again = await run("nfc-list", ["-t", "1"], pair.host);
    assert.match(normal(again.out), new RegExp(`UID \\(NFCID1\\): ${spaced(toHex(card.uid))}`));
    assert.ok(emulator.stats.wakeUps >= 1, "the second run woke the sleeping chip with 0x55");
  });

  it("pn53x-tamashell sends APDUs through InDataExchange: SELECT the EP application, GET BALANCE", async () => {
    const card = tunionCard(0x2710);
    pair = await createPtyPair();
    emulator = await startEmulator({ path: pair.device, cards: [card] });
    const script = [
      "4a 01 00",
      "40 01 00 a4 04 00 08 a0 00 00 06 32 01 01 05 00",
      "40 01 80 5c 00 02 04",
      "40 01 00 b0 95 00 1e",
      "ff",
      "02",
      "",
    ].join("\n");
    const { code, out } = await run("pn53x-tamashell", [], pair.host, script);
    assert.equal(code, 0, out);
    const rx = out.split("\n").filter((l) => l.startsWith("Rx:")).map((l) => l.slice(3).trim().replace(/\s+/g, ""));
    assert.equal(rx[0], "01" + "01" + "0344" + "20" + "07" + toHex(card.uid).toLowerCase() + "06" + "7577810280");
    assert.match(rx[1]!, /^006f.*9000$/);
    assert.equal(rx[2], "00" + "00002710" + "9000");
    assert.equal(rx[3], "00" + card.application("tunion").basicData.toLowerCase() + "9000");
    // An unknown command gets the error frame; libnfc reports an I/O error and carries on.
    assert.match(out, /Application level error detected/);
    assert.equal(rx[4], "Input/OutputError");
    assert.equal(rx[5], "32010607", "the next command after the error frame works");
    assert.deepEqual(card.exchanges.map((e) => e.command[1]), [0xa4, 0x5c, 0xb0]);
  });

  it("nfc-poll finds the card with InAutoPoll, checks presence, and reports its removal", async function () {
    if (!hasCommand("nfc-poll")) {
      console.log(`      (skipped: nfc-poll not installed; ${PTY_INSTALL_HINT})`);
      this.skip();
    }
    const card = tunionCard();
    pair = await createPtyPair();
    emulator = await startEmulator({ path: pair.device, cards: [card] });
    const polling = run("nfc-poll", [], pair.host);
    const em = emulator;
    const removal = setInterval(() => {
      if (em.received.some((c) => c.code === 0x42)) {
        clearInterval(removal);
        em.remove(card);
      }
    }, 50);
    const { code, out } = await polling;
    clearInterval(removal);
    assert.equal(code, 0, out);
    assert.ok(normal(out).includes(`UID (NFCID1): ${spaced(toHex(card.uid))}`), out);
    assert.match(out, /Waiting for card removing\.\.\.nfc_initiator_target_is_present: Target Released/);
    assert.ok(emulator.received.some((c) => c.code === 0x60), "nfc-poll used InAutoPoll");
  });
});
