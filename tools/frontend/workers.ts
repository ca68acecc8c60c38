/**
 * `--workers N`: N front-end processes (node:cluster) sharing one listening port; the primary hands each new TLS
 * connection to a worker in turn.
 *
 * - PostgreSQL: every worker opens its own pool; the database keeps the money rules between them (store.ts).
 * - SQLite: one writer. The primary holds the only connection (the group-committing journal) and the workers reach it
 *   over the cluster's IPC channel: Store calls and their answers, batched per event-loop turn (CallBatch). A batch of the primary's group
 *   commit then covers the requests of every worker, and nothing but the primary ever writes the file.
 *
 * The primary owns the listening sockets (the terminals' and the console's) and hands each connection to a ready
 * worker (listen/handoff.ts): while a worker is replaced, even the last one, connections wait in the primary instead
 * of being refused.
 *
 * A worker that dies is replaced. The requests it held lose their TLS connection, which the terminal treats as
 * "outcome unknown, retry" (modules/frontend-client): an authorization it had already recorded stays in the database
 * and, never completed, is marked for reconciliation by the sweep. Nothing acknowledged is lost.
 */
import cluster, { type Worker } from "node:cluster";
import { isPkcs11KeyStore, type FrontendConfig } from "./config";
import { startKeyService } from "./keys/open";
import { ConnectionHandoff, takeHandedConnections } from "./listen/handoff";
import { checkListenLimits } from "./listen/limits";
import { checkOperatorConfig } from "./operator/config";
import { FrontendError } from "./errors";
import { FLEET_METHODS, type FleetStore } from "./fleet/store";
import { LIMIT_METHODS, type LimitsStore } from "./limits/store";
import { TERMINAL_METHODS, type TerminalsStore } from "./terminals/store";
import { SESSION_METHODS, type SessionStore } from "./operator/sessions";
import { startFrontend, type RunningFrontend } from "./app";
import { newSessionSecret, primaryMetrics, SESSION_SECRET_ENV } from "./operator/index";
import { isPostgresUrl, openStore, type PurchaseInsert, type PurchaseRow, type SettleValues, type Store } from "./storage/store";

/** The Store methods a worker may call in the primary. */
const METHODS = ["spent", "reserveTsn", "reserveTsnUnlessSpent", "insert", "get", "settle", "markConflict", "sweep", "settlement",
  ...FLEET_METHODS, ...TERMINAL_METHODS, ...LIMIT_METHODS, ...SESSION_METHODS] as const;
type Method = (typeof METHODS)[number];

/** The feature stores a Store holds as fields, and which of them answers a method (the rest are the Store's own). */
const PART_OF = new Map<string, "fleet" | "terminals" | "limits" | "operatorSessions">([
  ...FLEET_METHODS.map((m) => [m, "fleet"] as const), ...TERMINAL_METHODS.map((m) => [m, "terminals"] as const), ...LIMIT_METHODS.map((m) => [m, "limits"] as const),
  ...SESSION_METHODS.map((m) => [m, "operatorSessions"] as const),
]);

interface Call {
  kind: "store-call";
  id: number;
  method: Method;
  args: unknown[];
}

interface Reply {
  kind: "store-reply";
  id: number;
  value?: unknown;
  error?: { code?: string; statusCode?: number; message: string };
}

/**
 * Calls and replies travel in batches: every call a worker makes in one turn of its event loop goes in one message,
 * and the primary answers every call that finished in one of its turns in one message per worker. Under load this
 * turns a few messages per request into a few per turn, which is what the one IPC loop of the primary can keep up with.
 */
interface CallBatch {
  kind: "store-calls";
  calls: Call[];
}

interface ReplyBatch {
  kind: "store-replies";
  replies: Reply[];
}

/** The primary's key service socket, handed to the workers it forks. */
const KEY_SOCKET_ENV = "FRONTEND_KEY_SOCKET";

/** How long a worker waits for the writer's answer before failing the request as retryable. */
const CALL_TIMEOUT_MS = 10_000;

/** The worker's side: a Store whose every call is answered by the primary's store. */
export class IpcStore implements Store {
  readonly engine = "sqlite" as const;
  readonly schemaVersion: number;
  /** The fleet's methods, each one message to the primary (undefined answers travel as null). */
  readonly fleet: FleetStore = this.#forward(FLEET_METHODS) as unknown as FleetStore;
  readonly terminals: TerminalsStore = this.#forward(TERMINAL_METHODS) as unknown as TerminalsStore;
  readonly limits: LimitsStore = this.#forward(LIMIT_METHODS) as unknown as LimitsStore;
  /** The console's sessions, likewise. */
  readonly operatorSessions: SessionStore = this.#forward(SESSION_METHODS) as unknown as SessionStore;
  commits = 0;
  committedWrites = 0;
  #next = 0;
  readonly #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  #outbox: Call[] = [];
  readonly #onMessage = (batch: ReplyBatch) => {
    if (batch?.kind !== "store-replies") return;
    for (const m of batch.replies) {
      const p = this.#pending.get(m.id);
      if (!p) continue;
      this.#pending.delete(m.id);
      clearTimeout(p.timer);
      if (m.error) p.reject(m.error.code && m.error.statusCode ? new FrontendError(m.error.code, m.error.statusCode, m.error.message) : new Error(m.error.message));
      else p.resolve(m.value);
    }
  };
  readonly #flush = () => {
    const calls = this.#outbox;
    this.#outbox = [];
    const batch: CallBatch = { kind: "store-calls", calls };
    process.send!(batch, undefined, undefined, (error: Error | null) => {
      if (!error) return;
      for (const call of calls) {
        const p = this.#pending.get(call.id);
        if (!p) continue;
        this.#pending.delete(call.id);
        clearTimeout(p.timer);
        p.reject(new FrontendError("JOURNAL_UNAVAILABLE", 503, `journal writer unreachable: ${error.message}`));
      }
    });
  };

  constructor(schemaVersion: number) {
    this.schemaVersion = schemaVersion;
    process.on("message", this.#onMessage);
  }

  #forward(methods: readonly Method[]): Record<string, (...args: unknown[]) => Promise<unknown>> {
    return Object.fromEntries(methods.map((m) => [m, (...args: unknown[]) => this.#call(m, args)]));
  }

  #call<T>(method: Method, args: unknown[]): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const id = ++this.#next;
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new FrontendError("JOURNAL_UNAVAILABLE", 503, `journal writer did not answer ${method} in ${CALL_TIMEOUT_MS} ms`));
      }, CALL_TIMEOUT_MS);
      this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
      if (!this.#outbox.length) setImmediate(this.#flush);
      this.#outbox.push({ kind: "store-call", id, method, args });
    });
  }

  spent(application: string, asn: string, epSerial: number): Promise<boolean> { return this.#call("spent", [application, asn, epSerial]); }
  reserveTsn(terminalId: string): Promise<number> { return this.#call("reserveTsn", [terminalId]); }
  async reserveTsnUnlessSpent(terminalId: string, application: string, asn: string, epSerial: number): Promise<number | undefined> {
    return (await this.#call<number | null>("reserveTsnUnlessSpent", [terminalId, application, asn, epSerial])) ?? undefined;
  }
  insert(values: PurchaseInsert): Promise<void> { return this.#call("insert", [values]); }
  async get(id: string): Promise<PurchaseRow | undefined> { return (await this.#call<PurchaseRow | null>("get", [id])) ?? undefined; }
  settle(id: string, values: SettleValues): Promise<boolean> { return this.#call("settle", [id, values]); }
  markConflict(id: string, at: number, completion: string): Promise<void> { return this.#call("markConflict", [id, at, completion]); }
  sweep(before: number, at: number): Promise<number> { return this.#call("sweep", [before, at]); }
  settlement(businessDay: string): Promise<PurchaseRow[]> { return this.#call("settlement", [businessDay]); }
  /** Each call is answered after the primary's store made it durable. */
  async durable(): Promise<void> {}

  async close(): Promise<void> {
    process.off("message", this.#onMessage);
    for (const [id, p] of this.#pending) {
      clearTimeout(p.timer);
      p.reject(new FrontendError("JOURNAL_UNAVAILABLE", 503, "worker closing"));
      this.#pending.delete(id);
    }
  }
}


export interface ClusterEvents {
  /** The first worker listens (the port all of them share). */
  listening(port: number, url: string, operatorUrl?: string): void;
  /** A worker died and a new one is starting in its place. */
  replaced?(pid: number, code: number | null, signal: string | null): void;
}

/** The primary: starts the workers (and for SQLite, the one journal writer), replaces the ones that die. */
export async function runPrimary(config: FrontendConfig, workers: number, events: ClusterEvents): Promise<{ close(): Promise<void>; workers(): number[] }> {
  const sqlite = !isPostgresUrl(config.database);
  // One key service for every worker: the token is opened once, in its own process (docs/keys.md).
  const keyService = isPkcs11KeyStore(config.keyStore)
    ? await startKeyService(config.keyStore.pkcs11, (level, fields, message) => process.stderr.write(`${JSON.stringify({ level, ...fields, msg: message })}\n`))
    : undefined;
  const store = sqlite ? await openStore(config.database, { durability: config.durability ?? "full" }) : undefined;
  let stopping = false;
  let announced = false;
  // The terminals' port is the primary's own for its whole life (port 0: an ephemeral one, chosen once).
  const host = config.listen?.host ?? "127.0.0.1";
  const limits = checkListenLimits(config.listen);
  const handoff = new ConnectionHandoff("terminal", limits.maxConnections, limits.handshakeTimeoutMs);
  // The console's port likewise, when there is a console.
  const operator = config.operator ? checkOperatorConfig(config.operator) : undefined;
  const consoleHandoff = operator ? new ConnectionHandoff("operator", limits.maxConnections, limits.handshakeTimeoutMs) : undefined;
  const urlOf = (h: string, p: number) => `https://${h.includes(":") ? `[${h}]` : h}:${p}`;
  let port: number;
  let operatorUrl: string | undefined;
  try {
    port = await handoff.listen(host, config.listen?.port ?? 8443);
    if (operator && consoleHandoff) operatorUrl = urlOf(operator.host, await consoleHandoff.listen(operator.host, operator.port));
  } catch (e) {
    await handoff.close();
    await consoleHandoff?.close();
    await store?.close();
    await keyService?.close();
    throw e;
  }
  const url = urlOf(host, port);
  const outboxes = new Map<Worker, Reply[]>();
  const metrics = primaryMetrics(store);
  // One signing key for the operator console's session cookies, so a login is valid in every worker.
  const sessionSecret = config.operator?.sessionSecret ?? newSessionSecret();
  const serve = (worker: Worker) => {
    worker.on("message", (m: CallBatch | { kind: "listening"; port: number; url: string; operatorUrl?: string }) => {
      if (metrics.answer(m, (r) => { if (worker.isConnected()) worker.send(r, undefined, () => {}); })) return;
      if (m?.kind === "listening") {
        handoff.ready(worker);
        consoleHandoff?.ready(worker);
        if (!announced) {
          announced = true;
          events.listening(port, url, operatorUrl);
        }
        return;
      }
      if (m?.kind !== "store-calls" || !store) return;
      for (const call of m.calls) {
        if (!METHODS.includes(call.method)) continue;
        const part = PART_OF.get(call.method);
        const target: object = part ? store[part] : store;
        const method = (target as Record<string, (...a: unknown[]) => Promise<unknown>>)[call.method]!;
        method.apply(target, call.args).then(
          (value) => reply(worker, { kind: "store-reply", id: call.id, value: value ?? null }),
          (e: Error & { code?: string; statusCode?: number }) => reply(worker, { kind: "store-reply", id: call.id, error: { code: e.code, statusCode: e.statusCode, message: e.message } }),
        );
      }
    });
  };
  const reply = (worker: Worker, r: Reply) => {
    let outbox = outboxes.get(worker);
    if (!outbox) {
      outboxes.set(worker, outbox = []);
      setImmediate(() => {
        outboxes.delete(worker);
        const batch: ReplyBatch = { kind: "store-replies", replies: outbox! };
        // A worker that died meanwhile: its terminal lost the connection and retries; the write itself is kept.
        if (worker.isConnected()) worker.send(batch, undefined, () => {});
      });
    }
    outbox.push(r);
  };
  const fork = () => serve(cluster.fork({ FRONTEND_WORKER: "1", FRONTEND_SCHEMA: String(store?.schemaVersion ?? 0), [SESSION_SECRET_ENV]: sessionSecret, ...(keyService ? { [KEY_SOCKET_ENV]: keyService.socketPath } : {}) }));
  cluster.on("exit", (worker, code, signal) => {
    handoff.gone(worker);
    consoleHandoff?.gone(worker);
    if (stopping) return;
    events.replaced?.(worker.process.pid ?? 0, code, signal);
    fork();
  });
  for (let i = 0; i < workers; i++) fork();
  return {
    workers: () => Object.values(cluster.workers ?? {}).map((w) => w!.process.pid!),
    close: async () => {
      stopping = true;
      await handoff.close();
      await consoleHandoff?.close();
      const all = Object.values(cluster.workers ?? {}).filter((w): w is Worker => !!w);
      await Promise.all(all.map((w) => new Promise<void>((resolve) => {
        const timer = setTimeout(() => { w.process.kill("SIGKILL"); }, 10_000);
        w.once("exit", () => { clearTimeout(timer); resolve(); });
        w.process.kill("SIGTERM");
      })));
      await store?.close();
      await keyService?.close();
    },
  };
}

/** A worker: one front-end taking the connections the primary hands it; SQLite through the primary, PostgreSQL with its own pool. */
export async function runWorker(config: FrontendConfig): Promise<RunningFrontend> {
  const sqlite = !isPostgresUrl(config.database);
  const store = sqlite ? new IpcStore(Number(process.env.FRONTEND_SCHEMA)) : undefined;
  const keyServiceSocket = process.env[KEY_SOCKET_ENV];
  const frontend = await startFrontend(config, { ...store ? { store } : {}, ...(keyServiceSocket ? { keyServiceSocket } : {}), acceptsHandedConnections: true });
  takeHandedConnections({ terminal: frontend.accept, operator: (socket) => frontend.operator.accept(socket) });
  process.send!({ kind: "listening", port: frontend.port, url: frontend.url, operatorUrl: frontend.operator.url });
  return frontend;
}

export const isWorker = (): boolean => cluster.isWorker && process.env.FRONTEND_WORKER === "1";
