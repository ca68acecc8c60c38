/**
 * The front-end's Prometheus metrics (prom-client), one registry per front-end so that several in one process (the
 * tests, the simulation) keep theirs apart. Counters are fed by Fastify hooks on the terminals' listener and by the
 * journal's commit observer; the gauges that describe the database (purchases needing attention, completions waiting
 * per terminal) are read from the store when scraped, so every process of --workers reports the same value and the
 * aggregate takes the maximum instead of the sum.
 */
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { FastifyInstance, FastifyRequest } from "fastify";
import type { Journal, JournalObserver } from "../storage/journal";

export interface FrontendMetrics {
  registry: Registry;
  /** Adds the request, authorization and completion hooks to a listener's Fastify instance. */
  instrument(app: FastifyInstance, listener: "terminal" | "operator"): void;
  /** Called by the error handler with the front-end's code for a refused request. */
  noteError(request: FastifyRequest, code: string): void;
  /** Watches a SQLite journal's commits (batch sizes, fsync time). */
  watchJournal(journal: Journal): void;
}

const started = new WeakMap<FastifyRequest, bigint>();
const errors = new WeakMap<FastifyRequest, string>();

/** Metrics of the journal alone: the primary of --workers with SQLite holds the journal but serves no requests. */
export function journalMetrics(registry: Registry): (journal: Journal) => void {
  const batch = new Histogram({
    name: "frontend_journal_commit_batch_writes", help: "Writes covered by one commit (group commit batch size)", registers: [registry],
    buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512],
  });
  const fsync = new Histogram({
    name: "frontend_journal_fsync_seconds", help: "Time of one fsync of the SQLite WAL", registers: [registry],
    buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1],
  });
  return (journal) => {
    const observer: JournalObserver = {
      committed: (writes) => batch.observe(writes),
      synced: (seconds) => fsync.observe(seconds),
    };
    journal.observer = observer;
  };
}

export interface MetricSources {
  /** Purchases needing attention, by kind (console queries). */
  attention?: () => Promise<Record<string, number>>;
  /** Completions waiting per terminal, from the latest status reports. */
  waiting?: () => Promise<{ terminalId: string; waiting: number }[]>;
}

export function createMetrics(sources: MetricSources = {}): FrontendMetrics {
  const registry = new Registry();
  const requests = new Counter({
    name: "frontend_http_requests_total", help: "HTTP requests answered, by listener, route and status", registers: [registry],
    labelNames: ["listener", "method", "route", "status"] as const,
  });
  const latency = new Histogram({
    name: "frontend_http_request_duration_seconds", help: "Time to answer an HTTP request, by listener and route", registers: [registry],
    labelNames: ["listener", "method", "route"] as const,
    buckets: [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5],
  });
  const authorizations = new Counter({
    name: "frontend_authorizations_total", help: "Authorizations by outcome: approved, or the decline or error code", registers: [registry],
    labelNames: ["outcome"] as const,
  });
  const completions = new Counter({
    name: "frontend_completions_total", help: "Completions by the purchase status they led to (completed, voided, flagged, reconciliation) or the error code", registers: [registry],
    labelNames: ["outcome"] as const,
  });
  new Gauge({
    name: "frontend_purchases_attention", help: "Purchases that need a person: flagged, in reconciliation, marked for review", registers: [registry],
    labelNames: ["kind"] as const, aggregator: "max",
    async collect() {
      if (!sources.attention) return;
      const counts = await sources.attention();
      for (const [kind, n] of Object.entries(counts)) this.set({ kind }, n);
    },
  });
  new Gauge({
    name: "frontend_terminal_completions_waiting", help: "Completions a terminal holds unsent, from its latest status report", registers: [registry],
    labelNames: ["terminal"] as const, aggregator: "max",
    async collect() {
      if (!sources.waiting) return;
      this.reset();
      for (const r of await sources.waiting()) this.set({ terminal: r.terminalId }, r.waiting);
    },
  });
  // Registered only by a process that holds a journal: with --workers the primary's are the only ones.
  let watch: ((journal: Journal) => void) | undefined;

  return {
    registry,
    noteError: (request, code) => { errors.set(request, code); },
    watchJournal: (journal) => { (watch ??= journalMetrics(registry))(journal); },
    instrument(app, listener) {
      app.addHook("onRequest", async (request) => { started.set(request, process.hrtime.bigint()); });
      app.addHook("onResponse", async (request, reply) => {
        // The route's pattern, never the raw URL: purchase IDs would make a label per purchase.
        const route = request.routeOptions.url ?? "unmatched";
        const t0 = started.get(request);
        if (t0 !== undefined) latency.observe({ listener, method: request.method, route }, Number(process.hrtime.bigint() - t0) / 1e9);
        requests.inc({ listener, method: request.method, route, status: String(reply.statusCode) });
        if (listener !== "terminal" || request.method !== "POST") return;
        if (route === "/v1/purchases") authorizations.inc({ outcome: reply.statusCode === 201 ? "approved" : errors.get(request) ?? `http-${reply.statusCode}` });
        else if (route === "/v1/purchases/:purchaseId/completion" && reply.statusCode !== 200) completions.inc({ outcome: errors.get(request) ?? `http-${reply.statusCode}` });
      });
      if (listener === "terminal") {
        app.addHook("preSerialization", async (request, reply, payload: unknown) => {
          if (request.routeOptions.url === "/v1/purchases/:purchaseId/completion" && reply.statusCode === 200) {
            const status = (payload as { status?: unknown })?.status;
            completions.inc({ outcome: typeof status === "string" ? status : "unknown" });
          }
          return payload;
        });
      }
    },
  };
}
