/**
 * The key service (tools/frontend/keys/service.ts) in a real deployment shape: `--workers 2` on SQLite with the master
 * keys in a SoftHSM2 token.
 * - one key service for both workers, its socket 0600;
 * - no master key byte in an HTTP worker: a heap snapshot (--heapsnapshot-signal) and the whole process memory
 *   (/proc/PID/mem) of a worker under load are searched; the same search finds the keys in a worker using the file store;
 * - the key service SIGKILLed in the middle of an authorization and of a completion: the terminal gets a retryable 503,
 *   nothing is flagged, the service is restarted and the retries pay; card and database agree;
 * - key rotation: a version imported while running pays alongside the old one, the old one is retired while purchases run.
 */
import assert from "node:assert/strict";
import { execFileSync, type ChildProcess } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync, openSync, readSync, closeSync } from "node:fs";
import path from "node:path";
import { toHex } from "../../../modules/bytes/bytes";
import { FrontendHttpError, type FrontendClient } from "../../../tools/rigs/frontend/index";
import { cardAsn } from "../../../tools/rigs/harness/consistency";
import { readDevelopmentMasterKeys, writeDevelopmentKeyStore, type MasterKeyRef } from "../../../tools/frontend/index";
import type { Pkcs11Settings } from "../../../tools/frontend/keys/pkcs11-settings";
import { softhsmMissing } from "../../../tools/frontend/keys/softhsm";
import type { VirtualCard } from "../../../tools/sim/cardsim/index";
import {
  T1, authorizeBody, clientFor, debitCard, getFixture, initCard, keyCeremony, killed, launchFrontend, level1Config, newToken, purchase, tunionCard,
  type Fixture,
} from "./support";
import { ensureDatabase, readRows } from "./postgres-support";

async function until<T>(what: string, probe: () => T | undefined | Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The processes whose parent is pid, with their command lines. */
function children(pid: number): Array<{ pid: number; args: string }> {
  let out = "";
  try {
    out = execFileSync("ps", ["-o", "pid=,args=", "--ppid", String(pid)], { encoding: "utf8" });
  } catch {
    return []; // ps exits 1 when there are none
  }
  return out.trim().split("\n").filter(Boolean).map((l) => {
    const m = /^\s*([0-9]+)\s+(.*)$/.exec(l)!;
    return { pid: Number(m[1]), args: m[2]! };
  });
}

/** Bytes received and not yet read by the Unix sockets of a process (ss's Recv-Q). */
function unreadBytes(pid: number): number {
  const out = execFileSync("ss", ["-xpn"], { encoding: "utf8" });
  return out.split("\n").filter((l) => l.includes(`pid=${pid},`)).reduce((n, l) => n + Number(l.trim().split(/\s+/)[2] ?? 0), 0);
}

const keyServices = (primary: number) => children(primary).filter((c) => c.args.includes("keys/service.ts"));
const workers = (primary: number) => children(primary).filter((c) => !c.args.includes("keys/service.ts"));

/** Every readable private mapping of a process (its heaps, stacks, buffers' backing stores), concatenated. */
function processMemory(pid: number): Buffer[] {
  const parts: Buffer[] = [];
  const fd = openSync(`/proc/${pid}/mem`, "r");
  try {
    for (const line of readFileSync(`/proc/${pid}/maps`, "utf8").split("\n")) {
      const m = /^([0-9a-f]+)-([0-9a-f]+) r..p [0-9a-f]+ [0-9a-f:]+ ([0-9]+)\s*(.*)$/.exec(line);
      if (!m || m[4]!.startsWith("[v") || (m[3] !== "0" && !m[4]!.startsWith("["))) continue; // anonymous memory only
      const start = BigInt(`0x${m[1]}`);
      const size = Number(BigInt(`0x${m[2]}`) - start);
      if (size > 1 << 30) continue;
      const b = Buffer.alloc(size);
      try {
        readSync(fd, b, 0, size, start);
        parts.push(b);
      } catch {
        // a guard page
      }
    }
  } finally {
    closeSync(fd);
  }
  return parts;
}

function heapSnapshotOf(pid: number, dir: string): string {
  const before = new Set(readdirSync(dir));
  process.kill(pid, "SIGUSR2");
  return path.join(dir, (() => {
    const deadline = Date.now() + 60_000;
    for (;;) {
      const made = readdirSync(dir).filter((n) => n.endsWith(".heapsnapshot") && !before.has(n));
      // Written in one go by the worker: done once its size stops changing.
      if (made.length) {
        const file = path.join(dir, made[0]!);
        const size = statSync(file).size;
        execFileSync("sleep", ["1"]);
        if (size > 0 && statSync(file).size === size) return made[0]!;
      }
      if (Date.now() > deadline) throw new Error("no heap snapshot written");
      execFileSync("sleep", ["0.2"]);
    }
  })());
}

/** Master key bytes found in the worker's heap snapshot or memory: [] when none. */
function keysIn(pid: number, dir: string, keys: Uint8Array[]): string[] {
  const found: string[] = [];
  const snapshot = readFileSync(heapSnapshotOf(pid, dir), "latin1");
  const memory = processMemory(pid);
  for (const k of keys) {
    const hex = toHex(k);
    if (snapshot.includes(hex) || snapshot.includes(hex.toLowerCase())) found.push(`${hex} as text in the heap snapshot`);
    if (memory.some((m) => m.includes(Buffer.from(k)))) found.push(`${hex} as bytes in the process memory`);
  }
  return found;
}

async function retrying<T>(what: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await what();
    } catch (e) {
      if (e instanceof FrontendHttpError && e.status < 500) throw e;
      if (attempt >= 100) throw e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

describe("front-end: the key service (--workers 2, SQLite, SoftHSM2)", function () {
  this.timeout(300_000);
  let f: Fixture;
  let settings: Pkcs11Settings;
  let primary: ChildProcess | undefined;
  let filePrimary: ChildProcess | undefined;
  let url = "";
  let database = "";
  let snapshots = "";
  const masters: Uint8Array[] = [];

  before(async function () {
    const missing = softhsmMissing();
    if (missing) {
      console.log(`      skipped: ${missing}`);
      this.skip();
    }
    f = await getFixture();
    settings = { ...newToken(f, `ks-${process.pid}`, [f.level1Keys]), keySystem: "MOT" };
    const m = f.master3des;
    masters.push(m.purchase, m.tac, m.load!);
    snapshots = path.join(f.dir, `snapshots-${process.pid}`);
    mkdirSync(snapshots, { recursive: true });
    const config = level1Config(f, { keyStore: { pkcs11: settings }, log: { level: "warn", file: path.join(f.dir, `ks-${process.pid}.log`) } });
    database = config.database;
    const configPath = path.join(f.dir, `ks-${process.pid}.json`);
    writeFileSync(configPath, JSON.stringify(config));
    await ensureDatabase(database);
    const running = await launchFrontend(configPath, ["--workers", "2"], undefined, { NODE_OPTIONS: `--heapsnapshot-signal=SIGUSR2 --diagnostic-dir=${snapshots}` });
    primary = running.child;
    url = running.url;
  });
  after(async () => {
    if (primary) await killed(primary, "SIGTERM");
    if (filePrimary) await killed(filePrimary, "SIGTERM");
  });

  async function pay(card: VirtualCard, amount: number): Promise<void> {
    const client = clientFor(f, url, T1);
    try {
      const r = await retrying(() => purchase(client, card, "tunion", amount));
      assert.equal(r.completion.status, "completed");
    } finally {
      client.close();
    }
  }

  it("both workers share one key service, on a socket only its user can open", async () => {
    await until("two workers", () => (workers(primary!.pid!).length === 2 ? true : undefined));
    const services = keyServices(primary!.pid!);
    assert.equal(services.length, 1, JSON.stringify(children(primary!.pid!)));
    const socket = services[0]!.args.split(" ").pop()!;
    assert.equal(statSync(socket).mode & 0o777, 0o600);
    for (const w of workers(primary!.pid!)) assert.equal(keyServices(w.pid).length, 0, "a worker started a key service of its own");
    const cards = [tunionCard(f), tunionCard(f), tunionCard(f)];
    await Promise.all(cards.map((c, i) => pay(c, 100 + i)));
  });

  it("no master key byte in an HTTP worker under load (heap snapshot and process memory); the file store's worker has them", async () => {
    const load = Promise.all([0, 1, 2, 3].map(async () => { for (let i = 0; i < 5; i++) await pay(tunionCard(f), 10); }));
    await new Promise((r) => setTimeout(r, 300));
    for (const w of workers(primary!.pid!)) assert.deepEqual(keysIn(w.pid, snapshots, masters), [], `worker ${w.pid}`);
    await load;
    // The same search finds the keys where they are: a worker of a front-end on the development key file.
    const config = level1Config(f, { log: { level: "silent" } });
    const configPath = path.join(f.dir, `ks-file-${process.pid}.json`);
    writeFileSync(configPath, JSON.stringify(config));
    await ensureDatabase(config.database);
    const running = await launchFrontend(configPath, ["--workers", "1"], undefined, { NODE_OPTIONS: `--heapsnapshot-signal=SIGUSR2 --diagnostic-dir=${snapshots}` });
    filePrimary = running.child;
    const [w] = await until("the file store's worker", () => (workers(filePrimary!.pid!).length ? workers(filePrimary!.pid!) : undefined));
    const client = clientFor(f, running.url, T1);
    try {
      await purchase(client, tunionCard(f), "tunion", 10);
    } finally {
      client.close();
    }
    assert.ok(keysIn(w!.pid, snapshots, masters).some((s) => s.includes("process memory")), "the search found no key in a worker that holds them");
  });

  /** SIGSTOPs the key service, starts request, SIGKILLs the service while it holds the request; returns the request's error. */
  async function killedMidRequest(request: () => Promise<unknown>): Promise<unknown> {
    const [service] = keyServices(primary!.pid!);
    assert.ok(service, "no key service");
    process.kill(service.pid, "SIGSTOP");
    const outcome = request().then(() => undefined, (e: unknown) => e);
    // The request is in the middle once its bytes wait, unread, in one of the stopped key service's sockets.
    await until("the request to reach the stopped key service", () => (unreadBytes(service.pid) > 0 ? true : undefined));
    process.kill(service.pid, "SIGKILL");
    const error = await outcome;
    await until("a new key service", () => (keyServices(primary!.pid!).some((s) => s.pid !== service.pid) ? true : undefined));
    return error;
  }

  it("the key service SIGKILLed in the middle of an authorization and of a completion: 503, restarted, retries pay, money agrees", async () => {
    const card = tunionCard(f, { balance: 5000 });
    const asn = cardAsn(card);
    const client = clientFor(f, url, T1);
    try {
      // An authorization whose MAC1 was being made: 503, no MAC1, nothing debited.
      const session = initCard(card, "tunion", 300);
      const error = await killedMidRequest(() => client.authorize(authorizeBody(session, 300) as never));
      assert.ok(error instanceof FrontendHttpError && error.status === 503 && error.code === "KEY_SERVICE_UNAVAILABLE", String(error));
      // The terminal starts again with a fresh INIT (the card's session is gone with the connection).
      const answer = await retrying(() => client.authorize(authorizeBody(initCard(card, "tunion", 300), 300) as never));
      const proof = debitCard(card, answer);
      // A completion whose MAC2 and TAC were being checked: 503, not a "flagged" verdict.
      const lost = await killedMidRequest(() => client.complete(answer.purchaseId, { outcome: "debited", ...proof }));
      assert.ok(lost instanceof FrontendHttpError && lost.status === 503, String(lost));
      const done = await retrying(() => client.complete(answer.purchaseId, { outcome: "debited", ...proof }));
      assert.equal(done.status, "completed");
      assert.deepEqual([done.mac2Valid, done.tacValid], [true, true]);
    } finally {
      client.close();
    }
    const rows = await readRows<{ status: string; amount: number }>(database, "SELECT status, amount FROM purchases WHERE asn = ?", [asn]);
    assert.equal(rows.filter((r) => r.status === "flagged").length, 0, JSON.stringify(rows));
    const completed = rows.filter((r) => r.status === "completed").reduce((n, r) => n + r.amount, 0);
    assert.equal(completed, 5000 - card.state.applications[0]!.balance, JSON.stringify(rows));
    assert.equal(completed, 300);
  });

  it("key rotation: version 2 imported while running pays beside version 1; version 1 retired while version-2 purchases run", async () => {
    const v2: MasterKeyRef = { keyIndex: 1, keyVersion: 2, algorithm: "3des" };
    const v2File = path.join(f.dir, `v2-${process.pid}.json`);
    writeDevelopmentKeyStore(v2File, { keySystem: "MOT", refs: [v2] });
    const v2Keys = readDevelopmentMasterKeys(v2File, v2);
    const v2Card = () => tunionCard(f, { keyVersion: 2, masterKeys: v2Keys });
    const client = clientFor(f, url, T1);
    try {
      await assert.rejects(purchase(client, v2Card(), "tunion", 10), (e: unknown) => e instanceof FrontendHttpError && e.code === "KEY_NOT_FOUND");
    } finally {
      client.close();
    }
    keyCeremony(f, settings, ["import", "--from", v2File]);
    // The key service reads the token again within a second; the workers learn the new version from it.
    await until("version 2 to be served", async () => {
      const c = clientFor(f, url, T1);
      try {
        await purchase(c, v2Card(), "tunion", 10);
        return true;
      } catch (e) {
        if (e instanceof FrontendHttpError && e.code === "KEY_NOT_FOUND") return undefined;
        throw e;
      } finally {
        c.close();
      }
    });
    await pay(tunionCard(f), 10); // version 1 still pays
    let stop = false;
    let paid = 0;
    const running = (async () => {
      while (!stop) {
        await pay(v2Card(), 20);
        paid++;
      }
    })();
    await until("a version-2 purchase before the retirement", () => (paid > 0 ? true : undefined));
    const listed = keyCeremony(f, settings, ["retire", "--key", "1:1:3des"]);
    assert.match(listed, /retired 3 keys of 1:1:3des/);
    await until("version 1 to be refused", async () => {
      const c = clientFor(f, url, T1);
      try {
        await purchase(c, tunionCard(f), "tunion", 10);
        return undefined;
      } catch (e) {
        return e instanceof FrontendHttpError && e.code === "KEY_NOT_FOUND" ? true : undefined;
      } finally {
        c.close();
      }
    });
    const before = paid;
    await until("version-2 purchases after the retirement", () => (paid > before + 2 ? true : undefined));
    stop = true;
    await running;
    const list = keyCeremony(f, settings, ["list"]);
    assert.match(list, /1:1:3des\tpurchase\tKCV [0-9A-F]{6}\tretired/);
    assert.match(list, /1:2:3des\tpurchase\tKCV [0-9A-F]{6}\tactive/);
    assert.doesNotMatch(list, new RegExp(toHex(v2Keys.purchase), "i"));
  });
});
