/**
 * `npm run cards -- issue`: a card file made from a key store is one the emulator loads (tools/sim/pn532sim/main.ts
 * --card, over a pty pair) and that pays: MAC1 comes from the front-end's own key store code holding the same keys,
 * the card's MAC2 and TAC check out there, and the emulator writes the new balance back to the file.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fromHex } from "../../../modules/bytes/bytes";
import { PN532 } from "../../../modules/pn532/index";
import { PurseCard, TUNION_APPLICATION } from "../../../modules/purse/index";
import { NodeSerial, nodeTimers } from "../../../hosts/node/serial";
import { createPtyPair, hasSocat, PTY_INSTALL_HINT } from "../../../hosts/node/pty";
import { FileKeyStore, writeDevelopmentKeyStore, type KeyStoreFile } from "../../../tools/frontend/keys/keystore";
import { until } from "../until";
import { within } from "../pn532/helpers";

const root = path.resolve(import.meta.dirname, "../../..");
const cards = (...args: string[]) =>
  spawnSync(process.execPath, ["--import", "tsx", path.join(root, "tools/sim/cardsim/main.ts"), ...args], { cwd: root, encoding: "utf8", timeout: 60_000 });

describe("npm run cards (card files for the emulator)", function () {
  this.timeout(60_000);
  let dir: string;
  let keystore: string;
  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), "cards-cli-"));
    keystore = path.join(dir, "keys-level1.json");
    writeDevelopmentKeyStore(keystore, { keySystem: "MOT", refs: [{ keyIndex: 1, keyVersion: 1, algorithm: "3des" }] });
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("issues a T-Union card the emulator loads and a purchase authorized from the same key store debits", async function () {
    if (!hasSocat()) {
      console.log(`      (skipped: socat not installed; ${PTY_INSTALL_HINT})`);
      this.skip();
    }
    const file = path.join(dir, "card.json");
    const issued = cards("issue", "--keystore", keystore, "--out", file, "--balance", "900", "--layout", "tunion", "--city", "1000");
    assert.equal(issued.status, 0, issued.stderr);
    assert.match(issued.stderr, /wrote .*card\.json: tunion card 03101000\d{12}, city 1000, 3des/);

    const pair = await createPtyPair();
    const emulator = spawn(process.execPath, ["--import", "tsx", "tools/sim/pn532sim/main.ts", "--port", pair.device, "--card", file],
      { cwd: root, stdio: ["pipe", "pipe", "pipe"] });
    let log = "";
    emulator.stderr.on("data", (d: Buffer) => { log += d.toString(); });
    const exited = new Promise((ok) => emulator.once("exit", ok));
    const pn532 = new PN532({ serial: { io: NodeSerial, path: pair.host, baud: 115200 }, timers: nodeTimers, ackTimeout: 500 });
    try {
      await until("the emulator to start with the card", () => {
        if (emulator.exitCode !== null) throw new Error(`the emulator exited: ${log}`);
        return log.includes("1 card(s)");
      });
      await within(3000, pn532.start());
      await within(3000, pn532.detect({ timeout: 1000 }));
      const purse = new PurseCard(pn532);
      await purse.selectApplication([TUNION_APPLICATION]);
      const basic = await purse.readBasicData();
      const terminalId = fromHex("001122334455");
      const init = await purse.initializeForPurchase({ keyIndex: 1, amount: 250, terminalId });
      assert.equal(init.balance, 900);
      // What the front-end does: MAC1 from its key store, then the card's MAC2 and TAC checked with it.
      const keys = new FileKeyStore(JSON.parse(readFileSync(keystore, "utf8")) as KeyStoreFile);
      const ref = { keyIndex: 1, keyVersion: 1, algorithm: "3des" as const };
      const factors = { diversificationFactor: basic.diversificationFactor, issuerFactor: new Uint8Array(8) };
      const input = { random: init.random, epSerial: init.epSerial, tsn: 7, fields: { amount: 250, type: 0x06, terminalId, date: "20261207", time: "120000" } };
      const { mac1 } = await keys.authorize(ref, factors, input);
      const debit = await purse.debitForPurchase({ tsn: 7, date: input.fields.date, time: input.fields.time, mac1 });
      assert.deepEqual(await keys.verify(ref, factors, input, debit), { mac2Valid: true, tacValid: true });
      await until("the emulator to save the card's new balance", () =>
        (JSON.parse(readFileSync(file, "utf8")) as { applications: { balance: number }[] }).applications[0]!.balance === 650);
    } finally {
      pn532.close();
      emulator.kill("SIGTERM");
      await exited;
      await pair.close();
    }
  });

  it("issues a city card with the algorithm and ASN asked for", () => {
    const sm4 = path.join(dir, "keys-level2.json");
    writeDevelopmentKeyStore(sm4, { keySystem: "4100", refs: [{ keyIndex: 1, keyVersion: 1, algorithm: "sm4" }] });
    const file = path.join(dir, "city.json");
    const r = cards("issue", "--keystore", sm4, "--out", file, "--layout", "cityunion", "--city", "4100", "--asn", "4100000012345678");
    assert.equal(r.status, 0, r.stderr);
    const card = JSON.parse(readFileSync(file, "utf8")) as { applications: { layout: string; algorithm: string; balance: number; basicData: string }[] };
    assert.deepEqual([card.applications[0]!.layout, card.applications[0]!.algorithm, card.applications[0]!.balance], ["cityunion", "sm4", 5000]);
    assert.match(card.applications[0]!.basicData, /4100000012345678/);
  });

  it("refuses bad input with a clear message: missing options, a key the store lacks, an existing file", () => {
    const missing = cards("issue", "--out", path.join(dir, "x.json"));
    assert.equal(missing.status, 2);
    assert.match(missing.stderr, /needs --keystore/);
    const noKey = cards("issue", "--keystore", keystore, "--out", path.join(dir, "y.json"), "--layout", "cityunion");
    assert.equal(noKey.status, 1);
    assert.match(noKey.stderr, /no entry 1\/1\/sm4/);
    const badCity = cards("issue", "--keystore", keystore, "--out", path.join(dir, "z.json"), "--city", "10");
    assert.equal(badCity.status, 2);
    assert.match(badCity.stderr, /--city takes a 4-digit city code/);
    const twice = path.join(dir, "twice.json");
    assert.equal(cards("issue", "--keystore", keystore, "--out", twice).status, 0);
    const again = cards("issue", "--keystore", keystore, "--out", twice);
    assert.equal(again.status, 2);
    assert.match(again.stderr, /exists \(--force overwrites it\)/);
    assert.equal(cards("issue", "--keystore", keystore, "--out", twice, "--force").status, 0);
    const unknown = cards("mint");
    assert.equal(unknown.status, 2);
    assert.match(unknown.stderr, /unknown command mint/);
  });
});
