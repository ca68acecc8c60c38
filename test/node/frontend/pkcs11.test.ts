/**
 * The PKCS#11 key store against SoftHSM2: the same answers as the file store for the same master keys (imported once),
 * keys generated in the token never readable, check values, retirement, and the configured KCVs checked at open.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import pkcs11js from "pkcs11js";
import { fromHex, toHex } from "../../../modules/bytes/bytes";
import { keyCheckValue, loadMac1, loadSessionKey, diversifyKey, purchaseTac } from "../../../tools/purse-crypto/index";
import { FileKeyStore, KEY_STORE_FORMAT, type KeyStoreFile, type MasterKeyRef } from "../../../tools/frontend/keys/keystore";
import {
  Pkcs11KeyStore, Token, createTokenKeys, importTokenKeys, listTokenKeys, retireTokenKeys, type Pkcs11Settings,
} from "../../../tools/frontend/keys/pkcs11";
import { initSoftHsmToken, softhsmMissing } from "../../../tools/frontend/keys/softhsm";

function cardKey(e: KeyStoreFile["keys"][number], master: string, c: { diversificationFactor: Uint8Array; issuerFactor: Uint8Array }): Uint8Array {
  const level = e.derivation === "two-level" ? diversifyKey(e.algorithm, fromHex(master), c.issuerFactor) : fromHex(master);
  return diversifyKey(e.algorithm, level, c.diversificationFactor);
}

const hex16 = () => randomBytes(16).toString("hex").toUpperCase();

describe("front-end: PKCS#11 key store (SoftHSM2)", function () {
  this.timeout(60_000);
  let dir: string;
  let settings: Pkcs11Settings;
  let file: KeyStoreFile;
  before(function () {
    const missing = softhsmMissing();
    if (missing) {
      console.log(`      skipped: ${missing}`);
      this.skip();
    }
    dir = mkdtempSync(path.join(tmpdir(), "pkcs11-test-"));
    settings = initSoftHsmToken(dir, "purse-test");
    file = {
      format: KEY_STORE_FORMAT, keySystem: "T",
      keys: [
        { keyIndex: 1, keyVersion: 1, algorithm: "3des", purchase: hex16(), tac: hex16(), load: hex16() },
        { keyIndex: 1, keyVersion: 2, algorithm: "3des", purchase: hex16(), tac: hex16(), derivation: "two-level" },
        { keyIndex: 1, keyVersion: 1, algorithm: "sm4", purchase: hex16(), tac: hex16(), load: hex16() },
      ],
    };
    const token = new Token(settings);
    try {
      importTokenKeys(token, file);
    } finally {
      token.close();
    }
  });
  after(() => { if (dir) rmSync(dir, { recursive: true, force: true }); });

  const card = (n: number) => ({ diversificationFactor: fromHex(`00000000000000${n.toString(16).padStart(2, "0")}`), issuerFactor: fromHex("4100FF0000000000") });
  const fields = { amount: 1234, type: 6, terminalId: fromHex("001122334455"), date: "20261126", time: "120000" };

  for (const sessionKeys of ["token", "key-service"] as const) it(`gives the file store's MAC1, MAC2, TAC verdicts and load MACs for the same imported keys (session keys and MACs: ${sessionKeys})`, () => {
    const hsm = new Pkcs11KeyStore({ ...settings, sessionKeys });
    const plain = new FileKeyStore(file);
    try {
      assert.deepEqual(new Set(hsm.describe().map((r) => JSON.stringify(r))), new Set(plain.describe().map((r) => JSON.stringify(r))));
      for (const e of file.keys) {
        const ref: MasterKeyRef = { keyIndex: e.keyIndex, keyVersion: e.keyVersion, algorithm: e.algorithm };
        for (let n = 1; n <= 3; n++) {
          const input = { random: randomBytes(4), epSerial: n * 7, tsn: 0x10000 + n, fields: { ...fields, amount: fields.amount * n } };
          const a = hsm.authorize(ref, card(n), input);
          const b = plain.authorize(ref, card(n), input);
          assert.equal(toHex(a.mac1), toHex(b.mac1), `MAC1 ${e.algorithm} v${e.keyVersion}`);
          assert.equal(toHex(a.mac2), toHex(b.mac2));
          // A TAC made by the file store's keys verifies in the token, a wrong one does not.
          const tac = purchaseTac(e.algorithm, cardKey(e, e.tac, card(n)), { ...input.fields, tsn: input.tsn });
          assert.deepEqual(hsm.verify(ref, card(n), input, { mac2: b.mac2, tac }), { mac2Valid: true, tacValid: true });
          assert.deepEqual(hsm.verify(ref, card(n), input, { mac2: new Uint8Array(4), tac: new Uint8Array(4) }), { mac2Valid: false, tacValid: false });
          assert.equal(hsm.has(ref), true);
          assert.equal(hsm.hasLoadKey(ref), plain.hasLoadKey(ref));
          if (!plain.hasLoadKey(ref)) continue;
          const load = { random: randomBytes(4), onlineSerial: n, balance: 500, fields: { amount: 300, type: 2, terminalId: fields.terminalId, date: "20261126", time: "120100" } };
          const dlk = cardKey(e, e.load!, card(n));
          const mac1 = loadMac1(e.algorithm, loadSessionKey(e.algorithm, dlk, load.random, load.onlineSerial), load.balance, load.fields);
          const x = hsm.authorizeLoad(ref, card(n), load, mac1);
          const y = plain.authorizeLoad(ref, card(n), load, mac1);
          assert.equal(x.mac1Valid, true);
          assert.equal(toHex(x.mac2!), toHex(y.mac2!));
          assert.deepEqual(hsm.authorizeLoad(ref, card(n), load, new Uint8Array(4)), { mac1Valid: false });
          assert.equal(hsm.verifyLoad(ref, card(n), load, new Uint8Array(4)), plain.verifyLoad(ref, card(n), load, new Uint8Array(4)));
        }
      }
      const details = hsm.details();
      assert.match(details.sm4, /wrapped/);
      const kcv = details.keys.find((k) => k.algorithm === "3des" && k.keyVersion === 1)!.kcv;
      assert.equal(kcv.purchase, toHex(keyCheckValue("3des", fromHex(file.keys[0]!.purchase))));
      assert.equal(details.keys.find((k) => k.algorithm === "sm4")!.kcv.tac, toHex(keyCheckValue("sm4", fromHex(file.keys[2]!.tac))));
    } finally {
      hsm.close();
    }
  });

  it("keys generated in the token are sensitive and not extractable, and no file under the token directory holds an imported key", () => {
    const token = new Token(settings);
    try {
      createTokenKeys(token, { keyIndex: 2, keyVersion: 1, algorithm: "3des" });
      const keys = listTokenKeys(token).filter((k) => k.ref.keyIndex === 2);
      assert.deepEqual(keys.map((k) => k.role), ["load", "purchase", "tac"]);
      for (const k of keys) {
        assert.match(k.kcv, /^[0-9A-F]{6}$/);
        const [sensitive, extractable] = token.p.C_GetAttributeValue(token.session, k.handle, [{ type: pkcs11js.CKA_SENSITIVE }, { type: pkcs11js.CKA_EXTRACTABLE }]);
        assert.equal(sensitive!.value!.toString("hex"), "01");
        assert.equal(extractable!.value!.toString("hex"), "00");
        assert.throws(() => token.p.C_GetAttributeValue(token.session, k.handle, [{ type: pkcs11js.CKA_VALUE }]), /ATTRIBUTE_SENSITIVE/);
      }
    } finally {
      token.close();
    }
    // SoftHSM2 encrypts private objects under the PIN-derived key: the clear key bytes appear in no token file.
    const tokenFiles = (d: string): string[] => readdirSync(d, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? tokenFiles(path.join(d, e.name)) : [path.join(d, e.name)]));
    const all = Buffer.concat(tokenFiles(path.join(dir, "tokens")).map((f) => readFileSync(f)));
    for (const e of file.keys) for (const v of [e.purchase, e.tac]) assert.equal(all.includes(Buffer.from(v, "hex")), false, "a master key in a token file");
  });

  it("checks configured KCVs at open, and a retired version is no longer served after a refresh", () => {
    const name = "1:1:3des";
    const kcv = { purchase: toHex(keyCheckValue("3des", fromHex(file.keys[0]!.purchase))), tac: toHex(keyCheckValue("3des", fromHex(file.keys[0]!.tac))) };
    assert.throws(() => new Pkcs11KeyStore({ ...settings, kcv: { [name]: { ...kcv, tac: "000000" } } }), /check value/);
    assert.throws(() => new Pkcs11KeyStore({ ...settings, kcv: { "9:9:3des": kcv } }), /no active keys 9:9:3des/);
    const hsm = new Pkcs11KeyStore({ ...settings, kcv: { [name]: kcv } });
    const token = new Token(settings);
    try {
      const ref: MasterKeyRef = { keyIndex: 1, keyVersion: 2, algorithm: "3des" };
      assert.equal(hsm.has(ref), true);
      assert.equal(retireTokenKeys(token, ref), 2);
      hsm.refresh();
      assert.equal(hsm.has(ref), false);
      assert.equal(hsm.has({ keyIndex: 1, keyVersion: 1, algorithm: "3des" }), true);
      assert.ok(listTokenKeys(token).some((k) => k.retired && k.ref.keyVersion === 2));
    } finally {
      token.close();
      hsm.close();
    }
  });
});
