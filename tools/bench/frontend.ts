/**
 * npm run bench:frontend [-- --seconds 5 --levels 1,8,32,64 --terminals 4 --durability full]
 *
 * Load generator for one front-end process (started here as its own process, as in production): mutual TLS, keep-alive,
 * one connection per concurrent terminal, each running authorize + complete pairs back to back with its own card.
 * Prints one JSON line per concurrency level (pairs/s, pair latency p50/p99, per-request p50/p99, CPU of the server and
 * of this generator) and a summary. Not a test: figures depend on the machine.
 *
 * The generator plays the card with purse-crypto directly (no APDUs): it builds the INIT response, and answers with the
 * expected MAC2 from the authorization and a TAC made with the card's TAC key, so the server does its full work
 * (checks, TSN, journal, MAC1, MAC2 and TAC verification) while the generator stays cheap.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { connect, type TLSSocket } from "node:tls";
import { concatBytes, fromHex, toHex } from "../../modules/bytes/bytes";
import { encodeBalance } from "../../modules/purse/amount";
import { encodeBcd, encodeDate } from "../../modules/purse/bcd";
import { diversifyKey, purchaseTac } from "../purse-crypto/index";
import { readDevelopmentMasterKeys, writeDevelopmentKeyStore, type FrontendConfig } from "../frontend/index";
import { generateDevelopmentPki, type DevelopmentPki } from "../pki/index";

const root = path.resolve(import.meta.dirname, "../..");

function option(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}

const seconds = Number(option("seconds", "5"));
const levels = option("levels", "1,8,32,64").split(",").map(Number);
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

async function main(): Promise<void> {
  const dir = mkdtempSync(path.join(tmpdir(), "bench-frontend-"));
  let child: ChildProcess | undefined;
  try {
    const terminalIds = Array.from({ length: terminalCount }, (_, i) => `0099000000${String(i).padStart(2, "0")}`);
    const pki = await generateDevelopmentPki({ dir: path.join(dir, "pki"), terminalIds, rogueTerminalIds: [] });
    const keys = path.join(dir, "keys.json");
    writeDevelopmentKeyStore(keys, { keySystem: "BENCH", refs: [{ keyIndex: 1, keyVersion: 1, algorithm: "3des" }] });
    const tacMaster = readDevelopmentMasterKeys(keys, { keyIndex: 1, keyVersion: 1, algorithm: "3des" }).tac;
    const config: FrontendConfig = {
      name: "bench", level: 1, listen: { host: "127.0.0.1", port: 0 },
      tls: { cert: pki.server.certPath, key: pki.server.keyPath, clientCa: pki.ca.certPath },
      database: path.join(dir, "journal.sqlite"), durability, keyStore: keys, cities: [{ cityCode: "*" }],
      limits: { maxAmount: 100_000 }, log: { level: "warn", file: path.join(dir, "frontend.log") },
    };
    const configPath = path.join(dir, "frontend.json");
    writeFileSync(configPath, JSON.stringify(config));
    const profile = process.argv.includes("--profile") ? ["--cpu-prof", `--cpu-prof-dir=${path.resolve(option("profile-dir", "var/profile"))}`] : [];
    child = spawn(process.execPath, [...profile, "--import", "tsx", path.join(root, "tools/frontend/main.ts"), "--config", configPath], { cwd: root, stdio: ["ignore", "pipe", "inherit"] });
    const port = await new Promise<number>((resolve, reject) => {
      let out = "";
      child!.stdout!.on("data", (d: Buffer) => {
        out += d.toString();
        const line = out.split("\n").find((l) => l.startsWith("{\"event\":\"listening\""));
        if (line) resolve((JSON.parse(line) as { port: number }).port);
      });
      child!.once("exit", (code) => reject(new Error(`front-end exited with ${code}`)));
    });
    const pid = child.pid!;
    console.error(`front-end pid ${pid} on port ${port}; durability ${durability}; ${seconds} s per level; TLS max ${tlsMax}${ciphers ? `, ciphers ${ciphers}` : ""}`);

    const results: Record<string, unknown>[] = [];
    for (const concurrency of levels) {
      const connections = Array.from({ length: concurrency }, (_, i) => new Connection(port, pki, terminalIds[i % terminalIds.length]!));
      const probe = new Connection(port, pki, terminalIds[0]!);
      await Promise.all([...connections, probe].map((c) => c.ready));
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
      await new Promise((r) => setTimeout(r, 1000)); // warm-up: JIT, TLS sessions, SQLite cache
      measuring = true;
      const health0 = JSON.parse((await probe.request("GET", "/v1/health")).body) as { commits: number; committedWrites: number };
      const cpuServer0 = processCpuSeconds(pid);
      const cpuSelf0 = process.cpuUsage();
      const t0 = performance.now();
      await new Promise((r) => setTimeout(r, seconds * 1000));
      measuring = false;
      const elapsed = (performance.now() - t0) / 1000;
      const cpuServer = (processCpuSeconds(pid) - cpuServer0) / elapsed;
      const self = process.cpuUsage(cpuSelf0);
      stop = true;
      await Promise.all(running);
      const health1 = JSON.parse((await probe.request("GET", "/v1/health")).body) as { commits: number; committedWrites: number };
      const commits = health1.commits - health0.commits;
      for (const c of [...connections, probe]) c.socket.destroy();
      const sortedPairs = pairLatencies.sort((x, y) => x - y);
      const sortedAuth = authLatencies.sort((x, y) => x - y);
      const sortedComplete = completeLatencies.sort((x, y) => x - y);
      const round = (n: number) => Math.round(n * 100) / 100;
      const result = {
        concurrency, pairs: sortedPairs.length, pairsPerSecond: Math.round(sortedPairs.length / elapsed),
        pairP50Ms: round(percentile(sortedPairs, 50)), pairP99Ms: round(percentile(sortedPairs, 99)),
        authorizeP50Ms: round(percentile(sortedAuth, 50)), authorizeP99Ms: round(percentile(sortedAuth, 99)),
        completeP50Ms: round(percentile(sortedComplete, 50)), completeP99Ms: round(percentile(sortedComplete, 99)),
        errors, commitsPerSecond: Math.round(commits / elapsed), writesPerCommit: round((health1.committedWrites - health0.committedWrites) / Math.max(1, commits)),
        serverCpu: round(cpuServer), generatorCpu: round((self.user + self.system) / 1e6 / elapsed),
      };
      results.push(result);
      console.log(JSON.stringify(result));
    }
    const best = results.reduce((a, b) => ((b.pairsPerSecond as number) > (a.pairsPerSecond as number) ? b : a));
    console.error(`best: ${best.pairsPerSecond as number} pairs/s at concurrency ${best.concurrency as number} (p99 ${best.pairP99Ms as number} ms); ` +
      `server CPU ${best.serverCpu as number} cores, generator CPU ${best.generatorCpu as number} cores, on ${(await import("node:os")).cpus().length} cores`);
  } finally {
    if (child && child.exitCode === null) {
      child.kill("SIGTERM");
      await new Promise((r) => child!.once("exit", r));
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e: Error) => {
  console.error(`bench: ${e.message}`);
  process.exit(1);
});
