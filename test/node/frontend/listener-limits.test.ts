/**
 * Listener limits (tools/frontend/listen/limits.ts) against a half-open flood: 1,100 sockets that connect, send 3 bytes
 * of a TLS record header and then say nothing, from one address (127.0.0.2), kept up (a closed one is opened again)
 * against a front-end limited to 1,024 open files. With the defaults (10 s handshake timeout, 128 per address, 3/4 of
 * the descriptors in all) the terminals, from another address, keep paying: p99 within twice the quiet p99.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { writeFileSync } from "node:fs";
import { connect } from "node:net";
import path from "node:path";
import { clientFor, getFixture, killed, launchFrontend, level1Config, purchase, tunionCard, type Fixture } from "./support";
import { ensureDatabase } from "./postgres-support";
import type { FrontendConfig } from "../../../tools/frontend/config";

const FLOOD = 1100;
const PHASE_MS = 20_000;

function p99(ms: number[]): number {
  const sorted = [...ms].sort((a, b) => a - b);
  return sorted[Math.ceil(sorted.length * 0.99) - 1]!;
}

/**
 * The attacker, in its own process (as it would be on its own machine): opens `count` half-open sockets from
 * `localAddress` and keeps them up, a closed one opened again a second later; prints "up" once all were opened.
 */
const ATTACKER = `
const net = require("node:net");
const [port, count, localAddress] = process.argv.slice(1);
let opened = 0;
const one = () => {
  const socket = net.connect({ host: "127.0.0.1", port: Number(port), localAddress });
  socket.on("connect", () => { socket.write(Buffer.from([0x16, 0x03, 0x01])); if (++opened === Number(count)) console.log("up"); });
  socket.on("error", () => {});
  socket.on("close", () => setTimeout(one, 1000));
};
for (let i = 0; i < Number(count); i++) one();
`;

async function halfOpenFlood(port: number, count: number, localAddress: string): Promise<ChildProcess> {
  const attacker = spawn(process.execPath, ["-e", ATTACKER, String(port), String(count), localAddress], { stdio: ["ignore", "pipe", "inherit"] });
  await new Promise<void>((resolve, reject) => {
    attacker.stdout!.on("data", (d: Buffer) => { if (d.toString().includes("up")) resolve(); });
    attacker.on("exit", (code) => reject(new Error(`the attacker exited with ${code}`)));
  });
  return attacker;
}

describe("front-end listener limits: 1,100 half-open sockets against ulimit -n 1024", function () {
  this.timeout(300_000);
  let f: Fixture;
  let child: ChildProcess | undefined;
  let url = "";

  async function launch(name: string, listen: FrontendConfig["listen"]): Promise<void> {
    const config = level1Config(f, { listen: { host: "127.0.0.1", port: 0, ...listen }, log: { level: "warn", file: path.join(f.dir, `${name}-${process.pid}.log`) } });
    const configPath = path.join(f.dir, `${name}-${process.pid}-${Date.now()}.json`);
    writeFileSync(configPath, JSON.stringify(config));
    await ensureDatabase(config.database);
    ({ child, url } = await launchFrontend(configPath, [], undefined, {}, 1024));
  }

  before(async () => {
    f = await getFixture();
  });
  afterEach(async () => {
    if (child) await killed(child, "SIGTERM");
    child = undefined;
  });

  /**
   * Purchase latencies in ms over `forMs` (long enough to cross the 10 s handshake timeout, when the flood's held
   * sockets are closed and opened again), one every 20 ms (enough samples that the p99 is not one stray delay of a
   * busy machine); a fresh terminal connection (a TLS handshake) every 10.
   */
  async function pay(card: ReturnType<typeof tunionCard>, forMs: number): Promise<number[]> {
    const took: number[] = [];
    const end = Date.now() + forMs;
    while (Date.now() < end) {
      const client = clientFor(f, url);
      try {
        for (let j = 0; j < 10; j++) {
          const t0 = performance.now();
          await purchase(client, card, "tunion", 1);
          took.push(performance.now() - t0);
          await new Promise((r) => setTimeout(r, 20));
        }
      } finally {
        client.close();
      }
    }
    return took;
  }

  it("with the default limits, terminals keep paying: p99 within twice the quiet p99", async () => {
    await launch("limits-default", {});
    const card = tunionCard(f, { balance: 100_000 });
    await pay(card, 1000); // warm: the first purchases compile the code paths
    const quiet = await pay(card, PHASE_MS);
    const flood = await halfOpenFlood(Number(new URL(url).port), FLOOD, "127.0.0.2");
    try {
      const loud = await pay(card, PHASE_MS);
      const figures = { quietP99: Math.round(p99(quiet)), floodP99: Math.round(p99(loud)) };
      console.log(`      ${JSON.stringify(figures)}`);
      assert.ok(p99(loud) <= 2 * p99(quiet), `p99 under the flood ${figures.floodP99} ms, quiet ${figures.quietP99} ms`);
    } finally {
      await killed(flood);
    }
  });

  it("a socket that never finishes its handshake is closed after listen.handshakeTimeoutMs", async () => {
    await launch("limits-handshake", { handshakeTimeoutMs: 1000 });
    const socket = connect({ host: "127.0.0.1", port: Number(new URL(url).port) });
    const t0 = performance.now();
    await new Promise<void>((resolve) => socket.on("connect", () => { socket.write(Buffer.from([0x16, 0x03, 0x01])); resolve(); }));
    await new Promise<void>((resolve) => socket.on("close", () => resolve()).on("error", () => {}));
    const after = performance.now() - t0;
    assert.ok(after >= 900 && after < 30_000, `closed after ${Math.round(after)} ms`);
  });

  it("a second connection from an address at listen.maxConnectionsPerAddress is closed at once; other addresses still connect", async () => {
    await launch("limits-address", { maxConnectionsPerAddress: 1 });
    const port = Number(new URL(url).port);
    const first = connect({ host: "127.0.0.1", port, localAddress: "127.0.0.3" });
    await new Promise((r) => first.on("connect", r));
    try {
      const second = connect({ host: "127.0.0.1", port, localAddress: "127.0.0.3" });
      second.on("error", () => {});
      await new Promise<void>((resolve) => second.on("close", () => resolve()));
      const client = clientFor(f, url);
      try {
        assert.equal((await client.health()).status, "ok");
      } finally {
        client.close();
      }
    } finally {
      first.destroy();
    }
  });
});
