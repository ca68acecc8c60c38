/**
 * A real network for a fleet on one machine: network namespaces joined through a router namespace, with delay,
 * jitter, loss and partitions on the real packets between the terminals' side and the front-ends' side
 * (docs/network-impairment.md).
 *
 *   terminal namespaces (eth0 10.77.1.N) ── veth ── brT ┐                ┌ brF ── veth ── front-end namespace (eth0 10.77.0.1)
 *                                                      └ impairment (router namespace) ┘
 *
 * The impairment is the kernel's netem qdisc on a veth pair between the two bridges when the kernel has netem, and
 * otherwise tools/rigs/fleet/netimpair/relay.c: a small C program holding one TAP device on each bridge and moving frames
 * between them through a delay queue. Namespaces carry the run's prefix and pid, so leftovers of a crashed run are
 * found and removed by the next one.
 */
import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { CodedError } from "../../../modules/errors/errors";
import { hasCommand } from "../../../hosts/node/pty";

export class NetnsError extends CodedError {}

export const NETNS_PREFIX = "tfn";
export const FRONTEND_ADDRESS = "10.77.0.1";
const ROOT = path.resolve(import.meta.dirname, "../../..");
export const RELAY_SOURCE = path.join(ROOT, "tools/rigs/fleet/netimpair/relay.c");

export interface Impairment {
  /** One-way delay in each direction, ms (a round trip is twice this). */
  delayMs: number;
  /** Each frame's delay is drawn uniformly from delayMs ± jitterMs. */
  jitterMs: number;
  /** Probability, in percent, that a frame is dropped, in each direction. */
  lossPercent: number;
}

export const CLEAN: Impairment = { delayMs: 0, jitterMs: 0, lossPercent: 0 };

/** Why this machine cannot build the network (undefined when it can), with what to install. */
export function netnsUnavailable(): string | undefined {
  if (process.platform !== "linux") return "network namespaces need Linux";
  if (typeof process.getuid !== "function" || process.getuid() !== 0) return "network namespaces need root (run as root, or in a CI container)";
  if (!hasCommand("ip")) return "no `ip` command: apt-get install -y iproute2";
  const probe = `${NETNS_PREFIX}${process.pid}-probe`;
  const made = spawnSync("ip", ["netns", "add", probe], { encoding: "utf8" });
  if (made.status !== 0) return `ip netns add failed: ${made.stderr.trim()}`;
  spawnSync("ip", ["netns", "del", probe]);
  if (!kernelHasNetem() && !existsSync("/dev/net/tun")) return "neither the netem qdisc nor /dev/net/tun (TAP devices) is available";
  if (!kernelHasNetem() && !cCompiler()) return "the kernel has no netem qdisc and there is no C compiler for the relay: apt-get install -y gcc libc6-dev";
  return undefined;
}

export function cCompiler(): string | undefined {
  return ["cc", "gcc"].find(hasCommand);
}

let netemProbe: boolean | undefined;
/** Whether `tc qdisc ... netem` works, tried on the loopback of a throwaway namespace (never on the host's devices). */
export function kernelHasNetem(): boolean {
  if (netemProbe !== undefined) return netemProbe;
  if (!hasCommand("tc")) return (netemProbe = false);
  const probe = `${NETNS_PREFIX}${process.pid}-netem`;
  if (spawnSync("ip", ["netns", "add", probe]).status !== 0) return (netemProbe = false);
  try {
    netemProbe = spawnSync("ip", ["netns", "exec", probe, "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"]).status === 0;
  } finally {
    spawnSync("ip", ["netns", "del", probe]);
  }
  return netemProbe;
}

function ip(args: string[]): void {
  const r = spawnSync("ip", args, { encoding: "utf8" });
  if (r.status !== 0) throw new NetnsError("IP_FAILED", `ip ${args.join(" ")}: ${(r.stderr || r.stdout).trim()}`);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** The namespaces of this process's runs that exist now (none once every FleetNetwork is closed). */
export function ownNamespaces(): string[] {
  const list = spawnSync("ip", ["netns", "list"], { encoding: "utf8" }).stdout ?? "";
  return list.split("\n").map((l) => l.split(" ")[0]!).filter((n) => n.startsWith(`${NETNS_PREFIX}${process.pid}-`));
}

/** Removes namespaces a run that is no longer alive left behind (its processes inside are killed first). */
export function removeLeftovers(): string[] {
  const list = spawnSync("ip", ["netns", "list"], { encoding: "utf8" }).stdout ?? "";
  const removed: string[] = [];
  for (const line of list.split("\n")) {
    const name = line.split(" ")[0]!;
    const m = new RegExp(`^${NETNS_PREFIX}(\\d+)-`).exec(name);
    if (!m || alive(Number(m[1]))) continue;
    deleteNamespace(name);
    removed.push(name);
  }
  return removed;
}

function deleteNamespace(name: string): void {
  const pids = (spawnSync("ip", ["netns", "pids", name], { encoding: "utf8" }).stdout ?? "").split(/\s+/).filter(Boolean).map(Number);
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
  spawnSync("ip", ["netns", "del", name]);
}

/** The relay's control line: one command, one JSON answer line. */
class RelayControl {
  readonly #child: ChildProcess;
  readonly #waiting: { resolve: (line: string) => void; reject: (e: Error) => void }[] = [];
  #text = "";
  #ended = false;
  readonly ready: Promise<void>;

  constructor(child: ChildProcess) {
    this.#child = child;
    let stderr = "";
    let readyResolve!: () => void;
    let readyReject!: (e: Error) => void;
    let isReady = false;
    this.ready = new Promise((resolve, reject) => {
      readyResolve = resolve;
      readyReject = reject;
    });
    child.stderr!.on("data", (d: Buffer) => { stderr += d.toString(); });
    child.stdout!.on("data", (d: Buffer) => {
      this.#text += d.toString();
      const lines = this.#text.split("\n");
      this.#text = lines.pop()!;
      for (const line of lines) {
        if (!isReady && line === "ready") {
          isReady = true;
          readyResolve();
        } else {
          this.#waiting.shift()?.resolve(line);
        }
      }
    });
    child.once("exit", (code, signal) => {
      this.#ended = true;
      const error = new NetnsError("RELAY_EXITED", `the impairment relay ended (${code ?? signal}): ${stderr.trim()}`);
      readyReject(error);
      for (const w of this.#waiting.splice(0)) w.reject(error);
    });
  }

  command(line: string): Promise<string> {
    if (this.#ended) return Promise.reject(new NetnsError("RELAY_EXITED", "the impairment relay has ended"));
    return new Promise((resolve, reject) => {
      this.#waiting.push({ resolve, reject });
      this.#child.stdin!.write(`${line}\n`);
    });
  }

  async close(): Promise<void> {
    if (this.#ended) return;
    const exited = new Promise<void>((resolve) => this.#child.once("exit", () => resolve()));
    this.#child.stdin!.end();
    const timer = setTimeout(() => this.#child.kill("SIGKILL"), 5000);
    await exited;
    clearTimeout(timer);
  }
}

export interface FleetNetworkOptions {
  /** How many terminal namespaces (each gets 10.77.1.N). */
  terminalNamespaces: number;
  /** Where the relay is built. */
  dir: string;
  impairment?: Impairment;
  /** "auto" (default): netem when the kernel has it, the relay otherwise. FLEET_IMPAIRMENT overrides. */
  mode?: "auto" | "netem" | "relay";
  /** Seed of the relay's random draws (loss, jitter), for a reproducible run. */
  seed?: number;
}

export class FleetNetwork {
  readonly router: string;
  readonly frontend: string;
  readonly terminals: string[];
  readonly mode: "netem" | "relay";
  readonly frontendAddress = FRONTEND_ADDRESS;
  #relay: RelayControl | undefined;
  #impairment: Impairment = CLEAN;
  #partitioned = false;
  #closed = false;

  private constructor(options: FleetNetworkOptions) {
    const base = `${NETNS_PREFIX}${process.pid}-${Math.random().toString(36).slice(2, 6)}`;
    this.router = `${base}-r`;
    this.frontend = `${base}-f`;
    this.terminals = Array.from({ length: options.terminalNamespaces }, (_, i) => `${base}-t${i}`);
    const wanted = process.env.FLEET_IMPAIRMENT ?? options.mode ?? "auto";
    this.mode = wanted === "relay" ? "relay" : wanted === "netem" ? "netem" : kernelHasNetem() ? "netem" : "relay";
  }

  /** Builds the namespaces, bridges and impairment; removes all of it again if any step fails. */
  static async create(options: FleetNetworkOptions): Promise<FleetNetwork> {
    if (options.terminalNamespaces < 1 || options.terminalNamespaces > 200) throw new NetnsError("BAD_OPTIONS", "1..200 terminal namespaces");
    removeLeftovers();
    const net = new FleetNetwork(options);
    try {
      await net.#build(options);
    } catch (error) {
      await net.close();
      throw error;
    }
    return net;
  }

  /** The address of terminal namespace i. */
  terminalAddress(i: number): string {
    return `10.77.1.${i + 1}`;
  }

  async #build(options: FleetNetworkOptions): Promise<void> {
    const r = this.router;
    for (const ns of [r, this.frontend, ...this.terminals]) {
      ip(["netns", "add", ns]);
      ip(["-n", ns, "link", "set", "lo", "up"]);
    }
    ip(["-n", r, "link", "add", "brT", "type", "bridge"]);
    ip(["-n", r, "link", "add", "brF", "type", "bridge"]);
    ip(["-n", r, "link", "add", "f0", "type", "veth", "peer", "name", "eth0", "netns", this.frontend]);
    ip(["-n", r, "link", "set", "f0", "master", "brF"]);
    ip(["-n", this.frontend, "addr", "add", `${FRONTEND_ADDRESS}/16`, "dev", "eth0"]);
    ip(["-n", this.frontend, "link", "set", "eth0", "up"]);
    for (const [i, ns] of this.terminals.entries()) {
      ip(["-n", r, "link", "add", `t${i}`, "type", "veth", "peer", "name", "eth0", "netns", ns]);
      ip(["-n", r, "link", "set", `t${i}`, "master", "brT"]);
      ip(["-n", r, "link", "set", `t${i}`, "up"]);
      ip(["-n", ns, "addr", "add", `${this.terminalAddress(i)}/16`, "dev", "eth0"]);
      ip(["-n", ns, "link", "set", "eth0", "up"]);
    }
    if (this.mode === "netem") {
      // xT leaves toward the terminals' bridge, xF toward the front-ends': netem on each egress delays one direction.
      ip(["-n", r, "link", "add", "xT", "type", "veth", "peer", "name", "xF"]);
      ip(["-n", r, "link", "set", "xT", "master", "brF"]);
      ip(["-n", r, "link", "set", "xF", "master", "brT"]);
      for (const dev of ["xT", "xF"]) {
        ip(["-n", r, "link", "set", dev, "up"]);
        const q = spawnSync("ip", ["netns", "exec", r, "tc", "qdisc", "add", "dev", dev, "root", "netem", "delay", "0ms"], { encoding: "utf8" });
        if (q.status !== 0) throw new NetnsError("NETEM_FAILED", `tc qdisc add netem: ${q.stderr.trim()}`);
      }
    } else {
      const cc = cCompiler();
      if (!cc) throw new NetnsError("NO_COMPILER", "no C compiler for the relay: apt-get install -y gcc libc6-dev");
      const exe = path.join(options.dir, "netimpair-relay");
      const build = spawnSync(cc, ["-std=c99", "-Wall", "-Wextra", "-Werror", "-O2", "-o", exe, RELAY_SOURCE], { encoding: "utf8" });
      if (build.status !== 0) throw new NetnsError("RELAY_BUILD", `the relay did not build:\n${build.stderr}`);
      const child = spawn("ip", ["netns", "exec", r, exe, "tapT", "tapF", "0", "0", "0", String(options.seed ?? 1)], { stdio: ["pipe", "pipe", "pipe"] });
      this.#relay = new RelayControl(child);
      await this.#relay.ready;
      ip(["-n", r, "link", "set", "tapT", "master", "brT"]);
      ip(["-n", r, "link", "set", "tapF", "master", "brF"]);
      for (const tap of ["tapT", "tapF"]) {
        // A longer queue before the relay reads: a burst waits instead of being dropped where no counter of ours sees it.
        ip(["-n", r, "link", "set", tap, "txqueuelen", "10000"]);
        ip(["-n", r, "link", "set", tap, "up"]);
      }
    }
    for (const dev of ["brT", "brF", "f0"]) ip(["-n", r, "link", "set", dev, "up"]);
    await this.impair(options.impairment ?? CLEAN);
  }

  get impairment(): Impairment {
    return this.#impairment;
  }

  async impair(impairment: Impairment): Promise<void> {
    const { delayMs, jitterMs, lossPercent } = impairment;
    if (!(delayMs >= 0 && jitterMs >= 0 && jitterMs <= delayMs && lossPercent >= 0 && lossPercent <= 100)) {
      throw new NetnsError("BAD_IMPAIRMENT", `delay ${delayMs} ms, jitter ${jitterMs} ms (at most the delay), loss ${lossPercent} % (0..100)`);
    }
    this.#impairment = { ...impairment };
    await this.#apply();
  }

  /** Cuts (or heals) the link both ways: every frame is dropped, those already queued too. */
  async partition(on: boolean): Promise<void> {
    this.#partitioned = on;
    await this.#apply();
  }

  async #apply(): Promise<void> {
    const { delayMs, jitterMs, lossPercent } = this.#impairment;
    if (this.#relay) {
      expectOk(await this.#relay.command(`set ${delayMs} ${jitterMs} ${lossPercent}`));
      expectOk(await this.#relay.command(`partition ${this.#partitioned ? "on" : "off"}`));
      return;
    }
    for (const dev of ["xT", "xF"]) {
      const args = ["netns", "exec", this.router, "tc", "qdisc", "change", "dev", dev, "root", "netem", "delay", `${delayMs}ms`];
      if (jitterMs) args.push(`${jitterMs}ms`);
      args.push("loss", `${this.#partitioned ? 100 : lossPercent}%`);
      const q = spawnSync("ip", args, { encoding: "utf8" });
      if (q.status !== 0) throw new NetnsError("NETEM_FAILED", `tc qdisc change: ${q.stderr.trim()}`);
    }
  }

  /**
   * The relay's frame counters, with the frames the kernel dropped before the relay could read them (the TAP
   * device's tx_dropped: a full queue on a starved machine); netem: the qdiscs' statistics as tc prints them.
   */
  async stats(): Promise<unknown> {
    if (this.#relay) {
      const stats = JSON.parse(await this.#relay.command("stats")) as { aToB: Record<string, number>; bToA: Record<string, number> };
      const dropped = (tap: string) => Number(spawnSync("ip", ["netns", "exec", this.router, "cat", `/sys/class/net/${tap}/statistics/tx_dropped`],
        { encoding: "utf8" }).stdout.trim() || 0);
      stats.aToB.kernelDropped = dropped("tapT");
      stats.bToA.kernelDropped = dropped("tapF");
      return stats;
    }
    return spawnSync("ip", ["netns", "exec", this.router, "tc", "-s", "qdisc", "show"], { encoding: "utf8" }).stdout;
  }

  /** TCP segments sent and retransmitted by the stack of a namespace (its /proc/net/snmp). */
  tcpCounters(ns: string): { outSegs: number; retransSegs: number } {
    const text = spawnSync("ip", ["netns", "exec", ns, "cat", "/proc/net/snmp"], { encoding: "utf8" }).stdout ?? "";
    const lines = text.split("\n").filter((l) => l.startsWith("Tcp:"));
    const names = lines[0]?.split(/\s+/) ?? [];
    const values = lines[1]?.split(/\s+/) ?? [];
    const get = (n: string) => Number(values[names.indexOf(n)] ?? 0);
    return { outSegs: get("OutSegs"), retransSegs: get("RetransSegs") };
  }

  /** Spawns a command inside a namespace. */
  spawnIn(ns: string, command: string, args: string[], options: SpawnOptions = {}): ChildProcess {
    return spawn("ip", ["netns", "exec", ns, command, ...args], options);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#relay?.close();
    for (const ns of [...this.terminals, this.frontend, this.router]) deleteNamespace(ns);
  }
}

function expectOk(line: string): void {
  if (!line.includes("\"ok\":true")) throw new NetnsError("RELAY_REFUSED", `the relay refused a command: ${line}`);
}
