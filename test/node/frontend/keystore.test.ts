import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { spawnSync } from "node:child_process";
import { pathToFileURL } from "node:url";
import Database from "better-sqlite3";
import { fromHex, toHex } from "../../../modules/bytes/bytes";
import { diversifyKey, purchaseMac1, purchaseMac2, purchaseSessionKey, purchaseTac } from "../../../tools/purse-crypto/index";
import {
  FileKeyStore, Journal, KeyStoreError, SCHEMA_VERSION, checkConfig, chinaDateTime, loadConfigFile, readDevelopmentMasterKeys, writeDevelopmentKeyStore,
  ConfigError, type KeyStoreFile,
} from "../../../tools/frontend/index";

const MK = "11223344556677888877665544332211";
const MTK = "00112233445566778899AABBCCDDEEFF";

describe("front-end: key store, journal, configuration, clock", () => {
  let dir: string;
  before(() => { dir = mkdtempSync(path.join(tmpdir(), "frontend-unit-")); });
  // Every journal here is awaited closed (its checkpoint worker included), so nothing writes into dir while it goes.
  after(() => rmSync(dir, { recursive: true, force: true }));

  const file = (extra: Partial<KeyStoreFile["keys"][number]> = {}): KeyStoreFile => ({
    format: "purse-keystore/1", keySystem: "TEST", keys: [{ keyIndex: 1, keyVersion: 1, algorithm: "3des", purchase: MK, tac: MTK, ...extra }],
  });

  it("makes MAC1 and the expected MAC2 with the card key Div(MK, ASN8), and checks MAC2 and TAC", () => {
    const store = new FileKeyStore(file());
    const factor = fromHex("0000000000000001");
    const dpk = diversifyKey("3des", fromHex(MK), factor);
    const fields = { amount: 0x1000, type: 6, terminalId: fromHex("001122334455"), date: "20120229", time: "135100" };
    const input = { random: fromHex("11223344"), epSerial: 0, tsn: 1, fields };
    const ref = { keyIndex: 1, keyVersion: 1, algorithm: "3des" as const };
    const macs = store.authorize(ref, { diversificationFactor: factor, issuerFactor: new Uint8Array(8) }, input);
    const session = purchaseSessionKey("3des", dpk, input.random, 0, 1);
    assert.equal(toHex(macs.mac1), toHex(purchaseMac1("3des", session, fields)));
    assert.equal(toHex(macs.mac2), toHex(purchaseMac2("3des", session, 0x1000)));
    const tac = purchaseTac("3des", diversifyKey("3des", fromHex(MTK), factor), { ...fields, tsn: 1 });
    assert.deepEqual(store.verify(ref, { diversificationFactor: factor, issuerFactor: new Uint8Array(8) }, input, { mac2: macs.mac2, tac }), { mac2Valid: true, tacValid: true });
    assert.deepEqual(store.verify(ref, { diversificationFactor: factor, issuerFactor: new Uint8Array(8) }, input, { mac2: macs.mac2, tac: new Uint8Array(4) }), { mac2Valid: true, tacValid: false });
    assert.equal(store.has(ref), true);
    assert.equal(store.has({ ...ref, keyVersion: 2 }), false);
    assert.throws(() => store.authorize({ ...ref, algorithm: "sm4" }, { diversificationFactor: factor, issuerFactor: new Uint8Array(8) }, input), { code: "KEY_NOT_FOUND" });
  });

  it("two-level derivation goes through the issuer factor first", () => {
    const store = new FileKeyStore(file({ derivation: "two-level" }));
    const factor = fromHex("4990600000000006");
    const issuer = fromHex("4100FF0000000000");
    const dpk = diversifyKey("3des", diversifyKey("3des", fromHex(MK), issuer), factor);
    const fields = { amount: 5, type: 6, terminalId: fromHex("001122334455"), date: "20261126", time: "101010" };
    const macs = store.authorize({ keyIndex: 1, keyVersion: 1, algorithm: "3des" }, { diversificationFactor: factor, issuerFactor: issuer }, { random: fromHex("01020304"), epSerial: 9, tsn: 77, fields });
    assert.equal(toHex(macs.mac1), toHex(purchaseMac1("3des", purchaseSessionKey("3des", dpk, fromHex("01020304"), 9, 77), fields)));
  });

  it("refuses bad key files without quoting the keys, and never serialises them", () => {
    const secret = "ABCDEF0123456789ABCDEF012345678";
    const bad = file({ purchase: secret });
    assert.throws(() => new FileKeyStore(bad), (e: unknown) => e instanceof KeyStoreError && !e.message.includes(secret));
    assert.throws(() => new FileKeyStore({ ...file(), format: "other" as never }), KeyStoreError);
    assert.throws(() => new FileKeyStore({ ...file(), keys: [...file().keys, ...file().keys] }), /duplicate/);
    assert.throws(() => new FileKeyStore(file({ keyIndex: 256 })), KeyStoreError);
    const store = new FileKeyStore(file());
    const shown = JSON.stringify(store) + String(store) + JSON.stringify(store.describe());
    assert.ok(!shown.includes(MK) && !shown.includes(MTK));
  });

  it("writes a development key store with fresh keys and reads them back for card issuance", () => {
    const p = path.join(dir, "keys.json");
    const written = writeDevelopmentKeyStore(p, { keySystem: "DEV", refs: [{ keyIndex: 1, keyVersion: 1, algorithm: "3des" }, { keyIndex: 2, keyVersion: 3, algorithm: "sm4" }] });
    assert.equal(written.keys.length, 2);
    assert.notEqual(toHex(written.keys[0]!.masterKeys.purchase), toHex(written.keys[1]!.masterKeys.purchase));
    const back = readDevelopmentMasterKeys(p, { keyIndex: 2, keyVersion: 3, algorithm: "sm4" });
    assert.equal(toHex(back.tac), toHex(written.keys[1]!.masterKeys.tac));
    assert.equal(FileKeyStore.load(p).describe().length, 2);
  });

  it("the journal migrates a new file to the current schema once, in WAL mode, syncing the WAL itself", async () => {
    const p = path.join(dir, "j.sqlite");
    const j = new Journal(p);
    assert.equal(j.db.pragma("journal_mode", { simple: true }), "wal");
    // SQLite appends without syncing (NORMAL) because the journal fsyncs the WAL before any answer leaves.
    assert.equal(j.syncsWal, true);
    assert.equal(j.db.pragma("synchronous", { simple: true }), 1);
    assert.equal(j.db.pragma("user_version", { simple: true }), SCHEMA_VERSION);
    j.write(() => j.db.prepare("INSERT INTO terminals VALUES ('001122334455', 5)").run());
    await j.close();
    const again = new Journal(p);
    assert.equal(again.syncsWal, true, "an existing database gets its WAL synced too");
    assert.deepEqual(again.db.prepare("SELECT * FROM terminals").all(), [{ terminal_id: "001122334455", last_tsn: 5 }]);
    await again.close();
    const newer = new Database(p);
    newer.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    newer.close();
    assert.throws(() => new Journal(p), /newer/);
  });

  it("group commit: writes become visible to other connections only once durable() resolves", async () => {
    const p = path.join(dir, "g.sqlite");
    const j = new Journal(p);
    const other = new Database(p, { readonly: true });
    const unsynced = new Journal(path.join(dir, "n.sqlite"), "normal");
    assert.equal(unsynced.syncsWal, false);
    assert.equal(unsynced.db.pragma("synchronous", { simple: true }), 1);
    await unsynced.close();
    j.write(() => j.db.prepare("INSERT INTO terminals VALUES ('A', 1)").run());
    j.write(() => j.db.prepare("INSERT INTO terminals VALUES ('B', 1)").run());
    assert.equal((other.prepare("SELECT COUNT(*) AS n FROM terminals").get() as { n: number }).n, 0);
    await j.durable();
    assert.equal((other.prepare("SELECT COUNT(*) AS n FROM terminals").get() as { n: number }).n, 2);
    assert.equal(j.commits, 1, "both writes in one commit");
    // A write that throws is undone alone; the batch goes on.
    assert.throws(() => j.write(() => { j.db.prepare("INSERT INTO terminals VALUES ('C', 1)").run(); throw new Error("no"); }));
    j.write(() => j.db.prepare("INSERT INTO terminals VALUES ('D', 1)").run());
    await j.durable();
    assert.deepEqual((other.prepare("SELECT terminal_id FROM terminals ORDER BY 1").all() as { terminal_id: string }[]).map((r) => r.terminal_id), ["A", "B", "D"]);
    other.close();
    await j.close();
  });

  it("close() resolves once the checkpoint worker is gone: a journal closed and removed at once is not made again", async () => {
    const p = path.join(dir, "gone.sqlite");
    const j = new Journal(p);
    // Closed and removed before the worker has likely even started; a late worker must not create an empty database.
    const closed = j.close();
    for (const f of [p, `${p}-wal`, `${p}-shm`]) rmSync(f, { force: true });
    await closed;
    assert.deepEqual(readdirSync(dir).filter((f) => f.startsWith("gone.sqlite")), []);
  });

  it("a process whose last work is awaiting close() ends normally once the worker has gone (not exit 13, unsettled)", () => {
    // Nothing else keeps this child's event loop alive, so an unref'd worker would let Node end with the await pending.
    const journal = pathToFileURL(path.resolve(import.meta.dirname, "../../../tools/frontend/storage/journal.ts")).href;
    const script = `import { Journal } from ${JSON.stringify(journal)};
      const j = new Journal(${JSON.stringify(path.join(dir, "alone.sqlite"))});
      await new Promise((r) => setTimeout(r, 50));
      await j.close();
      console.log("closed");`;
    const r = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { encoding: "utf8", timeout: 60_000 });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), "closed");
  });

  it("configuration files: relative paths, and clear errors", () => {
    const p = path.join(dir, "fe.json");
    writeFileSync(p, JSON.stringify({ level: 2, tls: { cert: "s.pem", key: "k.pem", clientCa: "ca.pem" }, database: "db/x.sqlite", keyStore: "keys.json", cities: [{ cityCode: "4100" }] }));
    const c = loadConfigFile(p);
    assert.equal(c.database, path.join(dir, "db/x.sqlite"));
    assert.equal(c.tls.clientCa, path.join(dir, "ca.pem"));
    assert.throws(() => checkConfig({ ...c, level: 3 as never }), ConfigError);
    assert.throws(() => checkConfig({ ...c, cities: [] }), /cities/);
    assert.throws(() => checkConfig({ ...c, cities: [{ cityCode: "41" }] }), /city code/);
    assert.throws(() => checkConfig({ ...c, limits: { maxAmount: 0 } }), /maxAmount/);
    assert.throws(() => checkConfig({ ...c, hotlist: ["12"] }), /hotlist/);
  });

  it("China Standard Time is UTC+8 with no daylight saving", () => {
    assert.deepEqual(chinaDateTime(Date.parse("2026-11-26T15:59:59Z")), { date: "20261126", time: "235959" });
    assert.deepEqual(chinaDateTime(Date.parse("2026-11-26T16:00:00Z")), { date: "20261127", time: "000000" });
    assert.deepEqual(chinaDateTime(Date.parse("2024-02-28T20:00:00Z")), { date: "20240229", time: "040000" });
    assert.deepEqual(chinaDateTime(Date.parse("2026-07-01T00:00:00Z")), { date: "20260701", time: "080000" });
  });
});
