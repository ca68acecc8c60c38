/**
 * A throwaway PostgreSQL cluster: initdb + pg_ctl from Debian's postgresql into a temp dir, listening on a free
 * loopback port, started once per process and stopped at its exit. As root the server runs as the `postgres` user
 * (PostgreSQL refuses to run as root). Used by the tests and by the front-end benchmark; never in production.
 */
import { execFile, execFileSync, spawnSync } from "node:child_process";
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";

export const POSTGRES_INSTALL = "apt-get install -y postgresql";

export interface Cluster {
  dir: string;
  port: number;
  /** postgres://postgres@127.0.0.1:port/postgres */
  url: string;
  /** Stops the server (fast shutdown: open connections are cut, as when a host dies). */
  stop(): void;
  /** Starts it again on the same port and data. */
  start(): void;
  /** The same two without blocking the event loop (a test that keeps serving load while the server is down). */
  stopAsync(): Promise<void>;
  startAsync(): Promise<void>;
}

function binDir(): string | undefined {
  const root = "/usr/lib/postgresql";
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root).filter((v) => existsSync(path.join(root, v, "bin", "initdb"))).sort((a, b) => Number(b) - Number(a));
  return versions[0] ? path.join(root, versions[0], "bin") : undefined;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

let cluster: Promise<Cluster | null> | undefined;
let skipReason = "";

/** Why the cluster could not start (for the skip message). */
export function postgresSkipReason(): string {
  return skipReason || `PostgreSQL not found (${POSTGRES_INSTALL})`;
}

/** The shared cluster, started on first use; null if PostgreSQL is not installed or cannot start. */
export function postgresCluster(): Promise<Cluster | null> {
  cluster ??= (async () => {
    const bin = binDir();
    if (!bin) {
      skipReason = `PostgreSQL is not installed: ${POSTGRES_INSTALL}`;
      return null;
    }
    const asRoot = process.getuid?.() === 0;
    const command = (tool: string, args: string[]): [string, string[]] =>
      asRoot ? ["runuser", ["-u", "postgres", "--", path.join(bin, tool), ...args]] : [path.join(bin, tool), args];
    const run = (tool: string, args: string[]) => {
      const r = spawnSync(...command(tool, args), { encoding: "utf8", timeout: 120_000 });
      if (r.status !== 0) throw new Error(`${tool} failed: ${r.stderr || r.stdout || r.error?.message}`);
    };
    const runAsync = (tool: string, args: string[]) => new Promise<void>((resolve, reject) => {
      execFile(...command(tool, args), { encoding: "utf8", timeout: 120_000 }, (error, stdout, stderr) => {
        if (error) reject(new Error(`${tool} failed: ${stderr || stdout || error.message}`));
        else resolve();
      });
    });
    const dir = mkdtempSync(path.join(tmpdir(), "pg-test-"));
    const data = path.join(dir, "data");
    try {
      if (asRoot) {
        const uid = Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8" }).trim());
        const gid = Number(execFileSync("id", ["-g", "postgres"], { encoding: "utf8" }).trim());
        chownSync(dir, uid, gid);
        chmodSync(dir, 0o700);
      }
      run("initdb", ["-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-instructions"]);
      const port = await freePort();
      // Durable like production (fsync on); the socket lives in the temp dir so no system directory is needed.
      const options = `-c listen_addresses=127.0.0.1 -c port=${port} -c unix_socket_directories=${dir} -c max_connections=200 -c shared_buffers=64MB`;
      const startArgs = ["-D", data, "-o", options, "-l", path.join(dir, "server.log"), "-w", "-t", "60", "start"];
      const stopArgs = ["-D", data, "-m", "fast", "-w", "-t", "60", "stop"];
      const start = () => run("pg_ctl", startArgs);
      const stop = () => run("pg_ctl", stopArgs);
      start();
      let running = true;
      process.once("exit", () => {
        if (running) try { stop(); } catch { /* already stopped */ }
        rmSync(dir, { recursive: true, force: true });
      });
      return {
        dir, port, url: `postgres://postgres@127.0.0.1:${port}/postgres`,
        stop: () => { stop(); running = false; },
        start: () => { start(); running = true; },
        stopAsync: async () => { await runAsync("pg_ctl", stopArgs); running = false; },
        startAsync: async () => { await runAsync("pg_ctl", startArgs); running = true; },
      };
    } catch (e) {
      skipReason = `PostgreSQL could not start (${(e as Error).message.split("\n")[0]}); ${POSTGRES_INSTALL}`;
      rmSync(dir, { recursive: true, force: true });
      return null;
    }
  })();
  return cluster;
}

