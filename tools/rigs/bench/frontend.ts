/**
 * npm run bench:frontend [-- --seconds 5 --levels 64 --workers 1,2,4 --engines sqlite,postgres --terminals 4 --durability full
 *                          --postgres postgres://...]
 *
 * Load generator for the front-end (started here as its own process or processes, as in production): mutual TLS,
 * keep-alive, one connection per concurrent terminal, each running authorize + complete pairs back to back with its
 * own card. For each engine (SQLite, and PostgreSQL on a throwaway cluster unless --postgres names one) and each
 * worker count it prints one JSON line (pairs/s, pair latency p50/p99, per-request p50/p99, CPU of the server processes
 * and of this generator), with the engine's own ceiling for the same writes measured in the same run without HTTP,
 * TLS or cryptography, and the ratio to it; then a table. Not a test: figures depend on the machine.
 *
 * The generator plays the card with purse-crypto directly (no APDUs): it builds the INIT response, and answers with the
 * expected MAC2 from the authorization and a TAC made with the card's TAC key, so the server does its full work
 * (checks, TSN, journal, MAC1, MAC2 and TAC verification) while the generator stays cheap.
 */
import { parseArgs } from "node:util";
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { connect, type TLSSocket } from "node:tls";
import { concatBytes, fromHex, toHex } from "../../../modules/bytes/bytes";
import { encodeBalance } from "../../../modules/purse/amount";
import { encodeBcd, encodeDate } from "../../../modules/purse/bcd";
import { diversifyKey, purchaseTac } from "../../purse-crypto/index";
import pg from "pg";
import { cpus, loadavg } from "node:os";
import { openStore, readDevelopmentMasterKeys, writeDevelopmentKeyStore, type FrontendConfig } from "../../frontend/index";
import { postgresCluster, postgresSkipReason } from "../frontend/pg-cluster";
import { purchaseIdentifier } from "../../frontend/purchases/service";
import { generateDevelopmentPki, type DevelopmentPki } from "../../pki/index";
import { Progress } from "../progress";

const root = path.resolve(import.meta.dirname, "../../..");

const text = { type: "string" } as const;
const { values: given } = parseArgs({
  strict: true,
  options: {
    seconds: text, levels: text, terminals: text, durability: text, ciphers: text, tls: text, workers: text, engines: text,
    "profile-dir": text, postgres: text, profile: { type: "boolean" },
  },
});

function option(name: Exclude<keyof typeof given, "profile">, fallback: string): string {
  const value = given[name];
  return value !== undefined && value !== "" ? value : fallback;
}

const seconds = Number(option("seconds", "5"));
const levels = option("levels", "64").split(",").map(Number);
const terminalCount = Number(option("terminals", "4"));
const durability = option("durability", "full") as "full" | "normal";
const ciphers = option("ciphers", "");
const tlsMax = option("tls", "1.3") === "1.2" ? "TLSv1.2" : "TLSv1.3";

interface Response {
  status: number;
  body: string;
}

/** A minimal HTTP/1.1 keep-alive client on one TLS connection: one request at a time, Content-Length bodies. */
class Connection {
  readonly socket: TLSSocket;
  #buffer: Buffer = Buffer.alloc(0);
  #waiting: { resolve: (r: Response) => void; reject: (e: Error) => void } | undefined;
  readonly ready: Promise<void>;

  constructor(port: number, pki: DevelopmentPki, terminalId: string) {
    const bundle = pki.terminals[terminalId]!;
    this.socket = connect({
      host: "127.0.0.1", port, servername: "localhost", ca: pki.ca.certPem, cert: bundle.certPem, key: bundle.keyPem,
      maxVersion: tlsMax, ...(ciphers ? { ciphers } : {}),
    });
    this.socket.setNoDelay(true);
    this.ready = new Promise((resolve, reject) => {
      this.socket.once("secureConnect", () => resolve());
      this.socket.once("error", reject);
    });
    this.socket.on("data", (chunk: Buffer) => this.#onData(chunk));
    this.socket.on("error", (e) => this.#fail(e));
    this.socket.on("close", () => this.#fail(new Error("connection closed")));
  }

  #fail(e: Error): void {
    const w = this.#waiting;
    this.#waiting = undefined;
    w?.reject(e);
  }

  #onData(chunk: Buffer): void {
    this.#buffer = this.#buffer.length ? Buffer.concat([this.#buffer, chunk]) : chunk;
    const headerEnd = this.#buffer.indexOf("\r\n\r\n");
    if (headerEnd < 0) return;
    const head = this.#buffer.toString("latin1", 0, headerEnd);
    const m = /\r\ncontent-length:\s*(\d+)/i.exec(head);
    const length = m ? Number(m[1]) : 0;
    if (this.#buffer.length < headerEnd + 4 + length) return;
    const body = this.#buffer.toString("utf8", headerEnd + 4, headerEnd + 4 + length);
    this.#buffer = this.#buffer.subarray(headerEnd + 4 + length);
    const w = this.#waiting;
    this.#waiting = undefined;
    w?.resolve({ status: Number(head.slice(9, 12)), body });
  }

  request(method: string, url: string, body?: string): Promise<Response> {
    return new Promise((resolve, reject) => {
      this.#waiting = { resolve, reject };
      const payload = body ?? "";
      this.socket.write(`${method} ${url} HTTP/1.1\r\nHost: 127.0.0.1\r\n${body !== undefined ? `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(payload)}\r\n` : ""}\r\n${payload}`);
    });
  }
}

/** A card as the generator plays it: its file 0x15, its TAC key, and its EP serial moving on with every purchase. */
class Card {
  basicData = "";
  dtk: Uint8Array = new Uint8Array(16);
  epSerial = 0;
  constructor(private readonly tacMaster: Uint8Array) {
    this.#reissue();
  }

  #reissue(): void {
    const asn = `0310${BigInt(`0x${randomBytes(8).toString("hex")}`).toString().padStart(20, "0").slice(-16)}`;
    const basic = concatBytes(fromHex("01011000FFFFFFFF0201"), encodeBcd(asn), encodeDate("20240101"), encodeDate("20391231"), new Uint8Array(2));
    this.basicData = toHex(basic);
    this.dtk = diversifyKey("3des", this.tacMaster, basic.slice(12, 20));
    this.epSerial = 0;
  }

  initResponse(): string {
    if (this.epSerial >= 0xfffe) this.#reissue();
    return toHex(concatBytes(encodeBalance(100_000_000), new Uint8Array([this.epSerial >> 8, this.epSerial & 0xff, 0, 0, 0, 1, 0]), randomBytes(4)));
  }
}

function percentile(sorted: number[], p: number): number {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

function processCpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime + stime in clock ticks (100 Hz)
}

const workerCounts = option("workers", "1,2,4").split(",").map(Number);
const engines = option("engines", "sqlite,postgres").split(",") as ("sqlite" | "postgres")[];
const round = (n: number) => Math.round(n * 100) / 100;

interface Setup {
  dir: string;
  pki: DevelopmentPki;
  keys: string;
  tacMaster: Uint8Array;
  terminalIds: string[];
}

/** Starts a front-end process (with --workers N when N > 1) and returns its port. */
async function launch(s: Setup, database: string, workers: number): Promise<{ child: ChildProcess; port: number }> {
  const config: FrontendConfig = {
    name: "bench", level: 1, listen: { host: "127.0.0.1", port: 0 },
    tls: { cert: s.pki.server.certPath, key: s.pki.server.keyPath, clientCa: s.pki.ca.certPath },
    database, durability, keyStore: s.keys, cities: [{ cityCode: "*" }],
    limits: { maxAmount: 100_000 }, log: { level: "warn", file: path.join(s.dir, "frontend.log") },
  };
  const configPath = path.join(s.dir, `frontend-${Date.now()}.json`);
  writeFileSync(configPath, JSON.stringify(config));
  const profile = given.profile ? ["--cpu-prof", `--cpu-prof-dir=${path.resolve(option("profile-dir", "var/profile"))}`] : [];
  const args = [...profile, "--import", "tsx", path.join(root, "tools/frontend/main.ts"), "--config", configPath, ...(workers > 1 ? ["--workers", String(workers)] : [])];
  const child = spawn(process.execPath, args, { cwd: root, stdio: ["ignore", "pipe", "inherit"] });
  const port = await new Promise<number>((resolve, reject) => {
    let out = "";
    child.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      const line = out.split("\n").find((l) => l.startsWith("{\"event\":\"listening\""));
      if (line) resolve((JSON.parse(line) as { port: number }).port);
    });
    child.once("exit", (code) => reject(new Error(`front-end exited with ${code}`)));
  });
  // Every worker must be listening before the measurement: give the later ones a moment after the first.
  if (workers > 1) await new Promise((r) => setTimeout(r, 3000));
  return { child, port };
}

/** CPU of a process and its children (the workers), from /proc. */
function treeCpuSeconds(pid: number): number {
  let total = processCpuSeconds(pid);
  try {
    for (const child of readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean)) total += processCpuSeconds(Number(child));
  } catch { /* gone */ }
  return total;
}

async function measure(s: Setup, port: number, pid: number, concurrency: number): Promise<Record<string, number>> {
  const { terminalIds, pki, tacMaster } = s;
  const connections = Array.from({ length: concurrency }, (_, i) => new Connection(port, pki, terminalIds[i % terminalIds.length]!));
  await Promise.all(connections.map((c) => c.ready));
  const pairLatencies: number[] = [];
  const authLatencies: number[] = [];
  const completeLatencies: number[] = [];
  let errors = 0;
  let measuring = false;
  let stop = false;
  const worker = async (conn: Connection, terminalId: string) => {
    const card = new Card(tacMaster);
    while (!stop) {
      const t0 = performance.now();
      const amount = 100;
      const body = JSON.stringify({ terminalId, order: "BENCH", amount, keyIndex: 1, transactionType: 6, application: "tunion", basicData: card.basicData, initResponse: card.initResponse() });
      const a = await conn.request("POST", "/v1/purchases", body);
      const t1 = performance.now();
      if (a.status !== 201) {
        errors++;
        card.epSerial++;
        continue;
      }
      const answer = JSON.parse(a.body) as { purchaseId: string; tsn: number; date: string; time: string; mac2: string };
      const tac = purchaseTac("3des", card.dtk, { amount, type: 6, terminalId: fromHex(terminalId), date: answer.date, time: answer.time, tsn: answer.tsn });
      card.epSerial++;
      const c = await conn.request("POST", `/v1/purchases/${answer.purchaseId}/completion`, JSON.stringify({ outcome: "debited", mac2: answer.mac2, tac: toHex(tac) }));
      const t2 = performance.now();
      if (c.status !== 200 || !c.body.includes("\"completed\"")) {
        errors++;
        continue;
      }
      if (measuring) {
        pairLatencies.push(t2 - t0);
        authLatencies.push(t1 - t0);
        completeLatencies.push(t2 - t1);
      }
    }
  };
  const running = connections.map((c, i) => worker(c, terminalIds[i % terminalIds.length]!));
  await new Promise((r) => setTimeout(r, 1000)); // warm-up: JIT, TLS sessions, database cache
  measuring = true;
  const cpuServer0 = treeCpuSeconds(pid);
  const cpuSelf0 = process.cpuUsage();
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  measuring = false;
  const elapsed = (performance.now() - t0) / 1000;
  const cpuServer = (treeCpuSeconds(pid) - cpuServer0) / elapsed;
  const self = process.cpuUsage(cpuSelf0);
  stop = true;
  await Promise.all(running);
  for (const c of connections) c.socket.destroy();
  const sortedPairs = pairLatencies.sort((x, y) => x - y);
  const sortedAuth = authLatencies.sort((x, y) => x - y);
  const sortedComplete = completeLatencies.sort((x, y) => x - y);
  return {
    concurrency, pairs: sortedPairs.length, pairsPerSecond: Math.round(sortedPairs.length / elapsed),
    pairP50Ms: round(percentile(sortedPairs, 50)), pairP99Ms: round(percentile(sortedPairs, 99)),
    authorizeP50Ms: round(percentile(sortedAuth, 50)), authorizeP99Ms: round(percentile(sortedAuth, 99)),
    completeP50Ms: round(percentile(sortedComplete, 50)), completeP99Ms: round(percentile(sortedComplete, 99)),
    errors, serverCpu: round(cpuServer), generatorCpu: round((self.user + self.system) / 1e6 / elapsed),
  };
}

/**
 * The engine's own ceiling for the same durable writes: per pair, the TSN upsert, the purchase INSERT and the
 * completion UPDATE, through the store (better-sqlite3 with the journal's group commit, or pg's pool), with the same
 * concurrency and no HTTP, TLS or cryptography.
 */
async function ceiling(database: string, concurrency: number): Promise<Record<string, number>> {
  const store = await openStore(database, { durability, poolSize: 16 });
  const latencies: number[] = [];
  let stop = false;
  let measuring = false;
  let serial = 0;
  const loop = async (w: number) => {
    const terminalId = `00CE11${String(w).padStart(6, "0")}`;
    while (!stop) {
      const t0 = performance.now();
      const tsn = await store.reserveTsn(terminalId);
      const id = purchaseIdentifier(Date.now());
      const n = ++serial;
      await store.insert([id, terminalId, tsn, "BENCH", "tunion", 6, 100, 1, 1, "3des", "issuer", "1000", 2, `0310${String(n).padStart(16, "0")}`, 0,
        100_000_000, 0, "00", "00", "20261126", "120000", Date.now()]);
      const answer = JSON.stringify({ purchaseId: id, status: "completed" });
      await store.settle(id, { status: "completed", outcome: "debited", mac2: "00000000", tac: "00000000", mac2Valid: 1, tacValid: 1,
        completion: answer, answer, completedAt: Date.now(), reason: null, review: false, at: Date.now(), event: null });
      if (measuring) latencies.push(performance.now() - t0);
    }
  };
  const running = Array.from({ length: concurrency }, (_, w) => loop(w));
  await new Promise((r) => setTimeout(r, 1000));
  measuring = true;
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  measuring = false;
  const elapsed = (performance.now() - t0) / 1000;
  stop = true;
  await Promise.all(running);
  await store.close();
  const sorted = latencies.sort((x, y) => x - y);
  return { pairsPerSecond: Math.round(sorted.length / elapsed), pairP50Ms: round(percentile(sorted, 50)), pairP99Ms: round(percentile(sorted, 99)) };
}

async function main(): Promise<void> {
  const dir = mkdtempSync(path.join(tmpdir(), "bench-frontend-"));
  const children: ChildProcess[] = [];
  try {
    const terminalIds = Array.from({ length: terminalCount }, (_, i) => `0099000000${String(i).padStart(2, "0")}`);
    const pki = await generateDevelopmentPki({ dir: path.join(dir, "pki"), terminalIds, rogueTerminalIds: [] });
    const keys = path.join(dir, "keys.json");
    writeDevelopmentKeyStore(keys, { keySystem: "BENCH", refs: [{ keyIndex: 1, keyVersion: 1, algorithm: "3des" }] });
    const tacMaster = readDevelopmentMasterKeys(keys, { keyIndex: 1, keyVersion: 1, algorithm: "3des" }).tac;
    const setup: Setup = { dir, pki, keys, tacMaster, terminalIds };
    let pgUrl = option("postgres", "");
    if (engines.includes("postgres") && !pgUrl) {
      const cluster = await postgresCluster();
      if (!cluster) console.error(`PostgreSQL skipped: ${postgresSkipReason()}`);
      else pgUrl = cluster.url;
    }
    let schema = 0;
    const databaseFor = async (engine: "sqlite" | "postgres"): Promise<string | undefined> => {
      if (engine === "sqlite") return path.join(dir, `journal-${++schema}.sqlite`);
      if (!pgUrl) return undefined;
      const name = `bench_${process.pid}_${++schema}`;
      const admin = new pg.Client({ connectionString: pgUrl });
      await admin.connect();
      await admin.query(`CREATE SCHEMA ${name}`);
      await admin.end();
      return `${pgUrl}${pgUrl.includes("?") ? "&" : "?"}options=${encodeURIComponent(`-c search_path=${name}`)}`;
    };
    console.error(`durability ${durability}; ${seconds} s per run; TLS max ${tlsMax}${ciphers ? `, ciphers ${ciphers}` : ""}; ${cpus().length} cores`);
    const table: string[] = [];
    // Each point: the engine's ceiling at a concurrency, then one run per worker count.
    const progress = new Progress("front-end benchmark runs", { total: engines.length * levels.length * (1 + workerCounts.length) });
    const report = (line: string) => progress.around(() => console.log(line));
    for (const engine of engines) {
      const ceilingDb = await databaseFor(engine);
      if (!ceilingDb) continue;
      for (const concurrency of levels) {
        const ref = await ceiling(ceilingDb, concurrency);
        progress.tick(1, `${engine}, ${concurrency} connections`);
        report(JSON.stringify({ engine, kind: "ceiling", concurrency, ...ref }));
        for (const workers of workerCounts) {
          const database = (await databaseFor(engine))!;
          const { child, port } = await launch(setup, database, workers);
          children.push(child);
          const result = await measure(setup, port, child.pid!, concurrency);
          child.kill("SIGTERM");
          await new Promise((r) => child.once("exit", r));
          const ratio = round(result.pairsPerSecond! / Math.max(1, ref.pairsPerSecond!));
          progress.tick(1, `${engine}, ${workers} worker(s), ${concurrency} connections`);
          report(JSON.stringify({ engine, workers, ...result, ceilingPairsPerSecond: ref.pairsPerSecond, ratioToCeiling: ratio }));
          // The load average at the end of the run: on a shared machine the figures are only as good as this is low.
          const load = loadavg()[0]!.toFixed(1);
          table.push(`| ${engine} | ${workers} | ${concurrency} | ${result.pairsPerSecond} | ${result.pairP50Ms} | ${result.pairP99Ms} | ${ref.pairsPerSecond} | ${Math.round(ratio * 100)} % | ${result.serverCpu} | ${Math.round(result.pairsPerSecond! / Math.max(0.01, result.serverCpu!))} | ${result.errors} | ${load} |`);
        }
      }
    }
    progress.finish();
    // Pairs per CPU-second of the server's processes: what a pair costs, which other load on the machine changes less
    // than it changes pairs/s.
    console.error(["| engine | workers | connections | pairs/s | p50 ms | p99 ms | engine ceiling pairs/s | ratio | server CPU (cores) | pairs per server CPU-second | errors | load avg (1 min) |",
      "|---|---|---|---|---|---|---|---|---|---|---|---|", ...table].join("\n"));
    console.error(`load average at the end: ${loadavg().map((l) => l.toFixed(1)).join(", ")} (1, 5, 15 min) on ${cpus().length} cores`);
  } finally {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e: Error) => {
  console.error(`bench: ${e.message}`);
  process.exit(1);
});
