/**
 * What the operator side adds to a front-end (server.ts calls these): the OpenAPI document and the metrics hooks on
 * the terminals' listener, and, when the configuration has `operator`, the console on its own port.
 *
 * With --workers every worker runs its own console on the shared operator port. A session cookie is valid in all of
 * them (the sessions are in the database; on SQLite the workers reach them through the primary), and `/metrics` in any worker answers the aggregate of all
 * workers and of the primary's journal (prom-client's AggregatorRegistry, asked for over the cluster channel).
 */
import cluster from "node:cluster";
import type { Socket } from "node:net";
import { randomBytes } from "node:crypto";
import { AggregatorRegistry, Registry } from "prom-client";
import type { FastifyInstance, FastifyRequest } from "fastify";
import { readPem, type FrontendConfig } from "../config";
import type { PurchaseService } from "../purchases/service";
import { PostgresStore, SqliteStore, type Store } from "../storage/store";
import { AccountsFile } from "./accounts-file";
import { Sessions } from "./auth";
import { checkOperatorConfig, secretBytes } from "./config";
import { startConsole } from "./console";
import { checkListenLimits } from "../listen/limits";
import { waitingPerTerminal } from "./fleet-pages";
import { createMetrics, journalMetrics, type FrontendMetrics, type MetricSources } from "./metrics";
import { openApiText, registerOpenApi } from "./openapi";
import { ConsoleQueries } from "./queries";

export { hashPassword, verifyPassword } from "./auth";
export type { OperatorConfig } from "./config";

/** The environment variable the primary of --workers hands its session secret down in. */
export const SESSION_SECRET_ENV = "FRONTEND_SESSION_SECRET";

export interface OperatorSide {
  metrics: FrontendMetrics;
  noteError(request: FastifyRequest, code: string): void;
  /** Starts the console (when configured) once the terminals' listener is up. */
  start(service: PurchaseService): Promise<void>;
  /** Hands in a console connection accepted by the primary of --workers (a no-op without a console). */
  accept(socket: Socket): void;
  /** The console's URL and port, once started (undefined without `operator` in the configuration). */
  readonly url: string | undefined;
  readonly port: number | undefined;
  close(): Promise<void>;
}

const inWorker = () => cluster.isWorker && process.env.FRONTEND_WORKER === "1";

/** Call right after creating the terminals' Fastify instance, before its routes (so they are in the OpenAPI document). */
export async function prepareOperator(app: FastifyInstance, config: FrontendConfig, store: Store): Promise<OperatorSide> {
  const operator = config.operator ? checkOperatorConfig(config.operator) : undefined;
  await registerOpenApi(app);
  const sources: MetricSources = {};
  const metrics = createMetrics(sources);
  metrics.instrument(app, "terminal");
  if (store instanceof SqliteStore) metrics.watchJournal(store.journal);
  if (inWorker()) {
    // The worker's side of the aggregation: its registry answers the primary's requests (the constructor adds the listener).
    AggregatorRegistry.setRegistries([metrics.registry]);
    new AggregatorRegistry();
  }
  app.get("/openapi.json", { schema: { hide: true } }, async (_request, reply) => reply.type("application/json").send(openApiText(app)));

  let queries: ConsoleQueries | undefined;
  let running: { url: string; port: number; accept(socket: Socket): void; close(): Promise<void> } | undefined;
  return {
    metrics,
    noteError: metrics.noteError,
    accept(socket) { if (running) running.accept(socket); else socket.destroy(); },
    get url() { return running?.url; },
    get port() { return running?.port; },
    async start(service) {
      if (!operator || !config.operator) return;
      queries = store instanceof SqliteStore ? ConsoleQueries.sqlite(store.journal.db)
        : store instanceof PostgresStore ? ConsoleQueries.postgres(store.pool) : ConsoleQueries.sqliteFile(config.database);
      const q = queries;
      sources.attention = async () => ({ ...(await q.attentionCounts()) });
      sources.waiting = () => waitingPerTerminal(store);
      // Sessions live in the database (operator/sessions.ts); sessionSecret is still checked but no longer signs anything.
      if (config.operator.sessionSecret) secretBytes(config.operator.sessionSecret);
      const sessions = new Sessions(store.operatorSessions, operator.accounts, operator.sessionMs, config.clock ?? Date.now);
      void store.operatorSessions.pruneSessions((config.clock ?? Date.now)()).catch(() => undefined);
      const certificateOperators = config.operator.clientCertificates === false ? null : new Set(config.operators ?? []);
      running = await startConsole({
        name: config.name ?? `level-${config.level}`,
        tls: { cert: readPem(config.tls.cert, "tls.cert"), key: readPem(config.tls.key, "tls.key"), ca: readPem(config.tls.clientCa, "tls.clientCa") },
        host: operator.host, port: operator.port, accounts: operator.accounts, sessions, certificateOperators,
        store, queries: q, service, metrics, openApi: () => openApiText(app), statusEveryMs: operator.statusEveryMs, now: config.clock ?? Date.now,
        logLevel: config.log?.level ?? "info", logFile: config.log?.file, loginLimits: operator.loginLimits, passwordThreads: operator.passwordThreads,
        accountsFile: config.operator.accountsFile ? new AccountsFile(config.operator.accountsFile, operator.accounts, (m) => process.emitWarning(m)) : undefined,
        limits: checkListenLimits(config.listen),
        acceptsHandedConnections: inWorker(),
        metricsText: inWorker() ? askPrimaryForMetrics : () => metrics.registry.metrics(),
      });
    },
    async close() {
      await running?.close();
      queries?.close();
    },
  };
}

let metricsRequests = 0;

/** A worker's /metrics: the primary gathers every worker's registry and its own. */
function askPrimaryForMetrics(): Promise<string> {
  return new Promise((resolve, reject) => {
    const id = ++metricsRequests;
    const onMessage = (m: { kind?: string; id?: number; text?: string; error?: string }) => {
      if (m?.kind !== "metrics-reply" || m.id !== id) return;
      clearTimeout(timer);
      process.off("message", onMessage);
      if (m.error !== undefined) reject(new Error(m.error));
      else resolve(m.text ?? "");
    };
    const timer = setTimeout(() => {
      process.off("message", onMessage);
      reject(new Error("the primary did not answer the metrics request in 10 s"));
    }, 10_000);
    process.on("message", onMessage);
    process.send!({ kind: "metrics-request", id });
  });
}

/**
 * The primary's side of --workers metrics: its own registry (the SQLite journal's commit batches and fsyncs when it
 * holds the journal) and the answer to a worker's request.
 */
export function primaryMetrics(store: Store | undefined): { answer(message: unknown, reply: (m: object) => void): boolean } {
  const registry = new Registry();
  if (store instanceof SqliteStore) journalMetrics(registry)(store.journal);
  const aggregator = new AggregatorRegistry();
  return {
    answer(message, reply) {
      const m = message as { kind?: string; id?: number };
      if (m?.kind !== "metrics-request") return false;
      Promise.all([aggregator.clusterMetrics(), registry.metrics()]).then(
        ([workers, own]) => reply({ kind: "metrics-reply", id: m.id, text: `${workers}${workers.endsWith("\n") || !workers ? "" : "\n"}${own}` }),
        (e: Error) => reply({ kind: "metrics-reply", id: m.id, error: e.message }),
      );
      return true;
    },
  };
}

export function newSessionSecret(): string {
  return randomBytes(32).toString("hex");
}
