/**
 * Shared fixtures for the front-end tests: one development PKI and key stores per test run (in a temp dir), front-ends
 * started on 127.0.0.1 with a real SQLite file or a real PostgreSQL schema (describeEngines runs a suite on both), and a terminal stand-in that plays a purchase between a VirtualCard
 * and a front-end exactly as the protocol says (raw file 0x15 and INIT response in, MAC1 to the card, MAC2/TAC back).
 */
import assert from "node:assert/strict";
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fromHex, toHex, uint32Bytes } from "../../../modules/bytes/bytes";
import { encodeBcd } from "../../../modules/purse/bcd";
import { VirtualCard, issueCard, type ApplicationProfile, type MasterKeys } from "../../../tools/sim/cardsim/index";
import { FrontendClient } from "../../../tools/rigs/frontend/index";
import {
  readDevelopmentMasterKeys, startFrontend, writeDevelopmentKeyStore, type AuthorizeAnswer, type CompletionAnswer,
  type FrontendConfig, type RunningFrontend,
} from "../../../tools/frontend/index";
import { generateDevelopmentPki, type DevelopmentPki } from "../../../tools/pki/index";
import type { Pkcs11Settings } from "../../../tools/frontend/keys/pkcs11-settings";
import { initSoftHsmToken, softhsmMissing } from "../../../tools/frontend/keys/softhsm";
import { ensureDatabase, newPostgresUrl, postgresCluster, postgresSkipReason, type Cluster } from "./postgres-support";

export const T1 = "001122334455";
export const T2 = "310001029313";
export const OPERATOR = "clearing";

export interface Fixture {
  dir: string;
  pki: DevelopmentPki;
  level1Keys: string;
  level2Keys: string;
  master3des: MasterKeys;
  masterSm4: MasterKeys;
}

let fixture: Promise<Fixture> | undefined;
const started: RunningFrontend[] = [];

/** One PKI and key stores for the whole run: RSA-2048 keys take a moment to make. */
export function getFixture(): Promise<Fixture> {
  fixture ??= (async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "frontend-test-"));
    const pki = await generateDevelopmentPki({ dir: path.join(dir, "pki"), terminalIds: [T1, T2], operators: [OPERATOR], rogueTerminalIds: [T1] });
    const level1Keys = path.join(dir, "keys-level1.json");
    const level2Keys = path.join(dir, "keys-level2.json");
    writeDevelopmentKeyStore(level1Keys, { keySystem: "MOT", refs: [{ keyIndex: 1, keyVersion: 1, algorithm: "3des" }] });
    writeDevelopmentKeyStore(level2Keys, { keySystem: "4100", refs: [{ keyIndex: 1, keyVersion: 2, algorithm: "sm4" }] });
    process.once("exit", () => rmSync(dir, { recursive: true, force: true }));
    return {
      dir, pki, level1Keys, level2Keys,
      master3des: readDevelopmentMasterKeys(level1Keys, { keyIndex: 1, keyVersion: 1, algorithm: "3des" }),
      masterSm4: readDevelopmentMasterKeys(level2Keys, { keyIndex: 1, keyVersion: 2, algorithm: "sm4" }),
    };
  })();
  return fixture;
}

let dbCounter = 0;

export type Engine = "sqlite" | "postgres";
export const ENGINES: Engine[] = ["sqlite", "postgres"];
let engineCluster: Cluster | null = null;

/** Where the master keys are: the development file, or SoftHSM2 tokens through the key service (the same keys). */
export type KeyStoreKind = "file" | "pkcs11";
let keyStoreKind: KeyStoreKind = "file";
let pkcs11Fixture: Promise<{ level1: Pkcs11Settings; level2: Pkcs11Settings }> | undefined;
let pkcs11Settings: { level1: Pkcs11Settings; level2: Pkcs11Settings } | undefined;

/**
 * SoftHSM2 tokens "level1" and "level2" (a configuration of their own under the fixture's dir) holding the fixture's
 * master keys, imported by the key ceremony command, so cards issued from the key files pay with either store.
 */
export function getPkcs11Fixture(f: Fixture): Promise<{ level1: Pkcs11Settings; level2: Pkcs11Settings }> {
  pkcs11Fixture ??= (async () => ({
    level1: { ...newToken(f, "level1", [f.level1Keys]), keySystem: "MOT" },
    level2: { ...newToken(f, "level2", [f.level2Keys]), keySystem: "4100" },
  }))();
  return pkcs11Fixture;
}

/** Runs `npm run frontend -- keys ...` (the key ceremony) on the token of settings; returns its output. */
export function keyCeremony(f: Fixture, settings: Pkcs11Settings, args: string[]): string {
  const configFile = path.join(f.dir, `ceremony-${settings.tokenLabel}.json`);
  writeFileSync(configFile, JSON.stringify(level1Config(f, { keyStore: { pkcs11: settings } })));
  return execFileSync(process.execPath, ["--import", "tsx", MAIN, "keys", ...args.slice(0, 1), "--config", configFile, ...args.slice(1)],
    { cwd: path.dirname(path.dirname(MAIN)), stdio: "pipe", encoding: "utf8" });
}

/** A new SoftHSM2 token (in the fixture's SoftHSM2 directory) with the keys of the given key files imported. */
export function newToken(f: Fixture, label: string, keyFiles: string[]): Pkcs11Settings {
  const settings = initSoftHsmToken(path.join(f.dir, "hsm"), label);
  for (const keyFile of keyFiles) keyCeremony(f, settings, ["import", "--from", keyFile]);
  return settings;
}

/** The key store of the suite running (set in its before hook). */
export function currentKeyStore(): KeyStoreKind {
  return keyStoreKind;
}

/** The key store the suite running uses, for the level-1 or level-2 fixture keys. */
function fixtureKeyStore(f: Fixture, level: 1 | 2): FrontendConfig["keyStore"] {
  if (keyStoreKind === "file") return level === 1 ? f.level1Keys : f.level2Keys;
  return { pkcs11: level === 1 ? pkcs11Settings!.level1 : pkcs11Settings!.level2 };
}

/**
 * Runs a suite once per storage engine (and, when keyStores lists more than the file, once per engine and key store).
 * The PostgreSQL run starts (once per process) a throwaway cluster and skips itself, with the install command, when
 * PostgreSQL is absent; the PKCS#11 run skips itself, with the install command, without SoftHSM2.
 */
export function describeEngines(title: string, body: (this: Mocha.Suite, engine: Engine) => void, only?: Engine[], keyStores: KeyStoreKind[] = ["file"]): void {
  for (const keys of keyStores) for (const engine of only ?? ENGINES) {
    describe(`${title} [${engine}${keys === "file" ? "" : `, ${keys}`}]`, function () {
      before(async function () {
        this.timeout(180_000);
        keyStoreKind = "file";
        if (keys === "pkcs11") {
          const missing = softhsmMissing();
          if (missing) {
            console.log(`      skipped: ${missing}`);
            this.skip();
          }
          pkcs11Settings = await getPkcs11Fixture(await getFixture());
          keyStoreKind = "pkcs11";
        }
        if (engine === "postgres") {
          const c = await postgresCluster();
          if (!c) {
            console.log(`      skipped: ${postgresSkipReason()}`);
            this.skip();
          }
          engineCluster = c;
        } else {
          engineCluster = null;
        }
      });
      after(() => { keyStoreKind = "file"; });
      body.call(this, engine);
    });
  }
}

/** The cluster of the PostgreSQL run in progress (for the tests that stop and start it). */
export function currentCluster(): Cluster | null {
  return engineCluster;
}

/** A new database for the engine of the suite running: a SQLite file, or a fresh PostgreSQL schema. */
export function newDatabasePath(f: Fixture): string {
  if (engineCluster) return newPostgresUrl(engineCluster);
  return path.join(f.dir, `journal-${process.pid}-${++dbCounter}.sqlite`);
}

/**
 * Suites about other subjects make authorizations faster than a terminal would: the per-terminal rate limit (default
 * 5 a second, bursts of 10; test/node/frontend/limits.test.ts) is lifted unless a test sets it.
 */
const UNTHROTTLED = { authorizationsPerSecond: 100_000, authorizationBurst: 100_000 };

export function level1Config(f: Fixture, overrides: Partial<FrontendConfig> = {}): FrontendConfig {
  return {
    name: "test-level-1", level: 1, listen: { host: "127.0.0.1", port: 0 },
    tls: { cert: f.pki.server.certPath, key: f.pki.server.keyPath, clientCa: f.pki.ca.certPath },
    database: newDatabasePath(f), keyStore: fixtureKeyStore(f, 1), cities: [{ cityCode: "*", applications: ["tunion"] }],
    operators: [OPERATOR], log: { level: "silent" },
    routes: [
      { cityCode: "*", application: "tunion", level: 1, url: "https://127.0.0.1:8443", keyIndex: 1 },
      { cityCode: "4100", application: "cityunion", level: 2, url: "https://127.0.0.1:8444", keyIndex: 1 },
    ],
    routesVersion: 3,
    ...overrides,
    limits: { ...UNTHROTTLED, ...overrides.limits },
  };
}

export function level2Config(f: Fixture, overrides: Partial<FrontendConfig> = {}): FrontendConfig {
  return {
    name: "test-level-2", level: 2, listen: { host: "127.0.0.1", port: 0 },
    tls: { cert: f.pki.server.certPath, key: f.pki.server.keyPath, clientCa: f.pki.ca.certPath },
    database: newDatabasePath(f), keyStore: fixtureKeyStore(f, 2), cities: [{ cityCode: "4100", applications: ["cityunion"] }],
    operators: [OPERATOR], log: { level: "silent" },
    ...overrides,
    limits: { ...UNTHROTTLED, ...overrides.limits },
  };
}

export async function start(config: FrontendConfig): Promise<RunningFrontend> {
  await ensureDatabase(config.database);
  const fe = await startFrontend(config);
  started.push(fe);
  return fe;
}

export async function stopAll(): Promise<void> {
  await Promise.all(started.splice(0).map((fe) => fe.close()));
}

export function clientFor(f: Fixture, url: string, who: string = T1, opts: { rogue?: boolean } = {}): FrontendClient {
  const bundle = opts.rogue ? f.pki.rogue.terminals[who] : (f.pki.terminals[who] ?? f.pki.operators[who]);
  assert.ok(bundle, `no certificate for ${who}`);
  return new FrontendClient(url, { ca: f.pki.ca.certPem, cert: bundle.certPem, key: bundle.keyPem });
}

let asnCounter = 0;

/** A T-Union card (3DES, level 1) or a city card (SM4, level 2) issued from the fixture's master keys. */
export function tunionCard(f: Fixture, profile: Partial<ApplicationProfile> = {}): VirtualCard {
  const asn = `0310${String(++asnCounter).padStart(16, "0")}`;
  return new VirtualCard(issueCard([{ layout: "tunion", algorithm: "3des", asn, cityCode: "1000", masterKeys: f.master3des, balance: 10_000, ...profile }]));
}

export function cityCard(f: Fixture, profile: Partial<ApplicationProfile> = {}): VirtualCard {
  const asn = `4100${String(++asnCounter).padStart(12, "0")}`;
  return new VirtualCard(issueCard([{ layout: "cityunion", algorithm: "sm4", asn, cityCode: "4100", masterKeys: f.masterSm4, balance: 10_000, keyVersion: 2, ...profile }]));
}

const AIDS = { tunion: "A000000632010105", cityunion: "A00000000386980701" };

function apdu(card: VirtualCard, hex: string): Uint8Array {
  const r = card.process(fromHex(hex));
  const sw = toHex(r.slice(-2));
  if (sw !== "9000") throw Object.assign(new Error(`card answered ${sw} to ${hex.slice(0, 8)}`), { sw });
  return r.slice(0, -2);
}

export interface CardSession {
  layout: "tunion" | "cityunion";
  basicData: string;
  initResponse: string;
}

/** SELECT, READ BINARY 0x15 and INITIALIZE FOR PURCHASE on the card, as the terminal does; returns the raw answers. */
export function initCard(card: VirtualCard, layout: "tunion" | "cityunion", amount: number, terminalId = T1, opts: { keyIndex?: number; compound?: boolean } = {}): CardSession {
  card.place();
  const aid = AIDS[layout];
  apdu(card, `00A40400${(aid.length / 2).toString(16).padStart(2, "0")}${aid}00`);
  const basic = apdu(card, "00B095001E");
  const init = apdu(card, `8050${opts.compound ? "03" : "01"}020B${(opts.keyIndex ?? 1).toString(16).padStart(2, "0")}${toHex(uint32Bytes(amount))}${terminalId}0F`);
  return { layout, basicData: toHex(basic), initResponse: toHex(init) };
}

/** DEBIT FOR PURCHASE with the front-end's answer; returns the card's MAC2 and TAC. */
export function debitCard(card: VirtualCard, answer: AuthorizeAnswer): { mac2: string; tac: string } {
  const data = toHex(uint32Bytes(answer.tsn)) + toHex(encodeBcd(answer.date)) + toHex(encodeBcd(answer.time)) + answer.mac1;
  const r = apdu(card, `805401000F${data}08`);
  return { tac: toHex(r.slice(0, 4)), mac2: toHex(r.slice(4, 8)) };
}

export function authorizeBody(session: CardSession, amount: number, terminalId = T1, extra: Record<string, unknown> = {}) {
  return {
    terminalId, order: `ORDER-${Math.random().toString(36).slice(2, 10)}`, amount, keyIndex: 1, transactionType: 6,
    application: session.layout, basicData: session.basicData, initResponse: session.initResponse, ...extra,
  };
}

/** A whole purchase: INIT on the card, authorize, DEBIT with MAC1, complete with the card's MAC2 and TAC. */
export async function purchase(client: FrontendClient, card: VirtualCard, layout: "tunion" | "cityunion", amount: number, terminalId = T1):
  Promise<{ answer: AuthorizeAnswer; proof: { mac2: string; tac: string }; completion: CompletionAnswer; session: CardSession }> {
  const session = initCard(card, layout, amount, terminalId);
  const answer = await client.authorize(authorizeBody(session, amount, terminalId) as never);
  const proof = debitCard(card, answer);
  const completion = await client.complete(answer.purchaseId, { outcome: "debited", ...proof });
  return { answer, proof, completion, session };
}

/** Today in China Standard Time, YYYYMMDD. */
export function chinaToday(now = Date.now()): string {
  return new Date(now + 8 * 3600_000).toISOString().slice(0, 10).replace(/-/g, "");
}

const MAIN = path.resolve(import.meta.dirname, "../../../tools/frontend/main.ts");

/**
 * Starts `npm run frontend -- --config <file> [args]` as its own process and waits for its "listening" line.
 * `openFiles`: start it under `ulimit -n` that many (through sh; the process is the front-end itself, by exec).
 */
export function launchFrontend(configPath: string, args: string[] = [], onLine?: (line: string) => void, env: NodeJS.ProcessEnv = {}, openFiles?: number): Promise<{ child: ChildProcess; url: string }> {
  return new Promise((resolve, reject) => {
    const argv = ["--import", "tsx", MAIN, "--config", configPath, ...args];
    const [command, commandArgs] = openFiles === undefined ? [process.execPath, argv]
      : ["sh", ["-c", `ulimit -n ${openFiles} && exec "$0" "$@"`, process.execPath, ...argv]];
    const child = spawn(command, commandArgs,
      { cwd: path.dirname(path.dirname(MAIN)), stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env } });
    let out = "";
    let err = "";
    let listening = false;
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`front-end did not start: ${err}`));
    }, 60_000);
    child.stderr!.on("data", (d: Buffer) => {
      err += d.toString();
      if (process.env.FRONTEND_STDERR) process.stderr.write(d);
    });
    child.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      const lines = out.split("\n");
      out = lines.pop()!;
      for (const line of lines) {
        onLine?.(line);
        if (!listening && line.startsWith("{\"event\":\"listening\"")) {
          listening = true;
          clearTimeout(timer);
          resolve({ child, url: (JSON.parse(line) as { url: string }).url });
        }
      }
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      if (!listening) reject(new Error(`front-end exited with ${code}: ${err}`));
    });
  });
}

export function killed(child: ChildProcess, signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once("exit", () => resolve());
    child.kill(signal);
  });
}
