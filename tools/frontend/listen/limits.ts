/**
 * Listener limits for the terminals' and the console's TLS listeners: a connection that never finishes its TLS
 * handshake, or never sends its request, must not hold a file descriptor for long, and no one source address (nor all
 * of them together) may take every descriptor the process has. Both listeners take the same `listen` settings; each
 * counts its own connections, and with --workers each worker counts its own.
 */
import { readFileSync } from "node:fs";
import type { Server as HttpsServer } from "node:https";
import type { Socket } from "node:net";

export interface ListenLimits {
  /** A connection must finish its TLS handshake in this time. Default 10 s (Node's own default is 120 s). */
  handshakeTimeoutMs?: number;
  /** Open connections at most, all addresses together. Default 3/4 of the process's file-descriptor limit, at most 8192. */
  maxConnections?: number;
  /** Open connections at most from one source address. Default 128 (terminals behind one NAT share an address). */
  maxConnectionsPerAddress?: number;
  /** A kept-alive connection with no request for this long is closed. Default 75 s (longer than a terminal's keep-warm). */
  idleTimeoutMs?: number;
  /** A request's headers must arrive within this time of its first byte. Default 10 s. */
  headersTimeoutMs?: number;
  /** A whole request (headers and body) must arrive within this time. Default 30 s. */
  requestTimeoutMs?: number;
}

export type CheckedLimits = Required<ListenLimits>;

export class ListenLimitsError extends Error {
  readonly code = "CONFIG";
}

/** The soft RLIMIT_NOFILE from /proc (Linux); undefined elsewhere. */
function openFilesLimit(): number | undefined {
  try {
    const line = readFileSync("/proc/self/limits", "utf8").split("\n").find((l) => l.startsWith("Max open files"));
    const soft = Number(line?.split(/\s{2,}/)[1]);
    return Number.isInteger(soft) && soft > 0 ? soft : undefined;
  } catch {
    return undefined;
  }
}

export function defaultMaxConnections(): number {
  const nofile = openFilesLimit() ?? 1024;
  return Math.max(16, Math.min(8192, Math.floor(nofile * 0.75)));
}

const NAMES: (keyof ListenLimits)[] = ["handshakeTimeoutMs", "maxConnections", "maxConnectionsPerAddress", "idleTimeoutMs", "headersTimeoutMs", "requestTimeoutMs"];

/** Checks the limits in `listen` and fills the defaults. */
export function checkListenLimits(l: ListenLimits = {}): CheckedLimits {
  for (const name of NAMES) {
    const v = l[name];
    if (v !== undefined && (!Number.isInteger(v) || v < 1)) throw new ListenLimitsError(`listen.${name} must be a positive integer`);
  }
  const checked: CheckedLimits = {
    handshakeTimeoutMs: l.handshakeTimeoutMs ?? 10_000,
    maxConnections: l.maxConnections ?? defaultMaxConnections(),
    maxConnectionsPerAddress: l.maxConnectionsPerAddress ?? 128,
    idleTimeoutMs: l.idleTimeoutMs ?? 75_000,
    headersTimeoutMs: l.headersTimeoutMs ?? 10_000,
    requestTimeoutMs: l.requestTimeoutMs ?? 30_000,
  };
  if (checked.headersTimeoutMs > checked.requestTimeoutMs) throw new ListenLimitsError("listen.headersTimeoutMs must not exceed listen.requestTimeoutMs");
  return checked;
}

/** The parts of the limits that are options of https.createServer (Fastify's `https` and server options). */
export function serverOptions(l: CheckedLimits) {
  return {
    https: { handshakeTimeout: l.handshakeTimeoutMs },
    keepAliveTimeout: l.idleTimeoutMs,
    requestTimeout: l.requestTimeoutMs,
  };
}

export interface ConnectionGate {
  /** Connections open now. */
  readonly open: number;
  /** Connections refused so far by a cap. */
  readonly refused: number;
}

/**
 * Applies the rest to a server: the headers timeout, and the two caps. The caps are checked on every connection
 * (accepted by the server's own listen or handed in with emit("connection")) before TLS is wrapped around it: the
 * server's own connection listeners (the TLS one) are moved behind the gate, so a refused connection is destroyed
 * at once and costs neither a TLS socket nor a handshake, which is what keeps a flood of them cheap.
 */
export function guardServer(server: HttpsServer, l: CheckedLimits, onRefused: (address: string, reason: string) => void): ConnectionGate {
  server.headersTimeout = l.headersTimeoutMs;
  let open = 0;
  let refused = 0;
  const perAddress = new Map<string, number>();
  const behind = server.listeners("connection") as ((socket: Socket) => void)[];
  server.removeAllListeners("connection");
  server.on("connection", (socket: Socket) => {
    const address = socket.remoteAddress ?? "";
    const mine = perAddress.get(address) ?? 0;
    const reason = open >= l.maxConnections ? "maxConnections" : mine >= l.maxConnectionsPerAddress ? "maxConnectionsPerAddress" : undefined;
    if (reason) {
      refused++;
      socket.destroy();
      onRefused(address, reason);
      return;
    }
    open++;
    perAddress.set(address, mine + 1);
    socket.once("close", () => {
      open--;
      const left = (perAddress.get(address) ?? 1) - 1;
      if (left > 0) perAddress.set(address, left);
      else perAddress.delete(address);
    });
    for (const listener of behind) listener.call(server, socket);
  });
  return { get open() { return open; }, get refused() { return refused; } };
}

/**
 * Logs refusals at most once per `everyMs` with the count since the last line: a flood of refused connections must
 * not turn into a flood of log lines.
 */
export function refusalLogger(log: (fields: object, message: string) => void, everyMs = 10_000): (address: string, reason: string) => void {
  let last = 0;
  let since = 0;
  return (address, reason) => {
    since++;
    const now = Date.now();
    if (now - last < everyMs) return;
    log({ address, reason, refusedSinceLastLine: since }, "connection refused by a listener limit");
    last = now;
    since = 0;
  };
}
