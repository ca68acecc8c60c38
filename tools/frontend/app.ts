/**
 * The HTTPS server: Fastify with JSON-schema validation and pino logs, mutual TLS (TLS 1.2 and 1.3, client
 * certificates required and checked against the terminal CA), and every refusal as {error: {code, message}} with a 4xx.
 */
import type { TLSSocket } from "node:tls";
import Fastify, { LogController, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import { checkConfig, ConfigError, readPem, type FrontendConfig } from "./config";
import { ERROR_CODES, FrontendError } from "./errors";
import { registerFleetRoutes } from "./fleet/routes";
import { openStore, type Store } from "./storage/store";
import type { KeyStore } from "./keys/keystore";
import { openKeyStore, type KeyLog } from "./keys/open";
import { pathToFileURL } from "node:url";
import path from "node:path";
import { prepareOperator, type OperatorSide } from "./operator/index";
import { PurchaseService, type Client } from "./purchases/service";
import { registerPurchases } from "./purchases/routes";
import { registerRefunds } from "./refunds/routes";
import { readCrl, TerminalCertificates } from "./terminals/service";
import type { Socket } from "node:net";
import { checkListenLimits, guardServer, refusalLogger, serverOptions, type ConnectionGate } from "./listen/limits";

/**
 * Modern suites first (the server's order wins), then the plain-RSA AES-CBC suites that Moddable's TLS on the ESP32
 * offers: TLS_RSA_WITH_AES_128_CBC_SHA256 and the other three.
 */
export const TLS_CIPHERS = [
  "TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256",
  "ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-RSA-CHACHA20-POLY1305",
  "ECDHE-RSA-AES128-SHA256", "ECDHE-RSA-AES256-SHA384",
  "AES128-SHA256", "AES256-SHA256", "AES128-SHA", "AES256-SHA",
].join(":");

const TERMINAL_CN = /^[0-9A-F]{12}$/;

function errorBody(code: string, message: string) {
  return { error: { code, message } };
}

/** The front-end's code for a Fastify or validation error (all of them are the client's fault: 4xx). */
function mapError(err: FastifyError): { status: number; code: string; message: string } {
  if (err instanceof FrontendError) return { status: err.statusCode, code: err.code, message: err.message };
  if (err.validation) return { status: 400, code: "VALIDATION", message: `${err.validationContext ?? "request"}: ${err.message}` };
  switch (err.code) {
    case "FST_ERR_CTP_BODY_TOO_LARGE": return { status: 413, code: "BODY_TOO_LARGE", message: err.message };
    case "FST_ERR_CTP_INVALID_MEDIA_TYPE": return { status: 415, code: "UNSUPPORTED_MEDIA_TYPE", message: "send application/json" };
    case "FST_ERR_CTP_EMPTY_JSON_BODY":
    case "FST_ERR_CTP_INVALID_JSON_BODY": return { status: 400, code: "MALFORMED_JSON", message: err.message };
    case "FST_ERR_CTP_INVALID_CONTENT_LENGTH": return { status: 400, code: "VALIDATION", message: err.message };
    default: break;
  }
  if (err instanceof SyntaxError) return { status: 400, code: "MALFORMED_JSON", message: err.message };
  const status = err.statusCode;
  if (status !== undefined && status >= 400 && status < 500) return { status, code: "BAD_REQUEST", message: err.message };
  return { status: 500, code: "INTERNAL", message: "internal error" };
}

export interface RunningFrontend {
  /** https://host:port */
  url: string;
  port: number;
  host: string;
  app: FastifyInstance;
  service: PurchaseService;
  /** The storage engine (SQLite journal or PostgreSQL pool). */
  store: Store;
  /** The operator side: metrics, and the console's URL when `operator` is configured. */
  operator: OperatorSide;
  /** Runs the reconciliation sweep now (it also runs on a timer). */
  sweepReconciliation(): Promise<number>;
  /** The terminals' listener's connection counts (listen.maxConnections and the per-address cap). */
  connections: ConnectionGate;
  /** Hands in a connection accepted elsewhere (the primary of --workers, with StartOptions.acceptsHandedConnections). */
  accept(socket: Socket): void;
  close(): Promise<void>;
}

/** A hook a rig adds to the server (config.plugins, or StartOptions.plugins in-process). */
export type FrontendPlugin = (app: FastifyInstance) => void | Promise<void>;

export interface StartOptions {
  /** A store to use instead of opening config.database (a worker of --workers reaching the single SQLite writer). */
  store?: Store;
  /** Plugins passed in by an in-process caller, registered after config.plugins. */
  plugins?: FrontendPlugin[];
  /** The socket of a key service already running (the primary's, shared by every worker) for a PKCS#11 key store. */
  keyServiceSocket?: string;
  /**
   * Do not listen: connections are accepted by the primary of --workers, which owns the listening socket for the
   * front-end's whole life, and handed in with accept().
   */
  acceptsHandedConnections?: boolean;
}

async function loadPlugins(paths: readonly string[]): Promise<FrontendPlugin[]> {
  const plugins: FrontendPlugin[] = [];
  for (const p of paths) {
    const loaded = (await import(pathToFileURL(path.resolve(p)).href)) as { default?: unknown };
    if (typeof loaded.default !== "function") throw new ConfigError(`plugin ${p} has no default export function`);
    plugins.push(loaded.default as FrontendPlugin);
  }
  return plugins;
}

export async function startFrontend(input: FrontendConfig, options: StartOptions = {}): Promise<RunningFrontend> {
  const config = checkConfig(input);
  const cert = readPem(config.tls.cert, "tls.cert");
  const key = readPem(config.tls.key, "tls.key");
  const clientCa = readPem(config.tls.clientCa, "tls.clientCa");
  const operators = new Set(config.operators ?? []);
  const log = config.log ?? {};
  const limits = checkListenLimits(config.listen);
  const timeouts = serverOptions(limits);
  // The context's options: a CRL reload (terminals/service.ts) makes a new context from the same ones.
  const tlsContext = { cert, key, ca: clientCa, minVersion: "TLSv1.2", maxVersion: "TLSv1.3", ciphers: TLS_CIPHERS, honorCipherOrder: true } as const;
  const app = Fastify({
    https: {
      ...timeouts.https,
      ...tlsContext, ...(config.tls.crl ? { crl: readCrl(config.tls.crl) } : {}),
      requestCert: true, rejectUnauthorized: true,
    },
    logger: { level: log.level ?? "info", ...(log.file ? { file: log.file } : {}), redact: ["req.headers.authorization"] },
    logController: new LogController({ disableRequestLogging: log.requests === false }),
    bodyLimit: config.limits?.bodyLimit ?? 4096,
    // Types are checked, never coerced ("100" is not an amount), and unknown fields are refused, not silently dropped.
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, allErrors: false, useDefaults: false } },
    return503OnClosing: true,
    forceCloseConnections: true,
    keepAliveTimeout: timeouts.keepAliveTimeout,
    requestTimeout: timeouts.requestTimeout,
  });
  const keyLog: KeyLog = (level, fields, message) => app.log[level](fields, message);
  let keys: Awaited<ReturnType<typeof openKeyStore>>;
  try {
    keys = await openKeyStore(config, { keyServiceSocket: options.keyServiceSocket, log: keyLog });
  } catch (e) {
    await app.close();
    throw e;
  }
  const keyStore: KeyStore = keys.keyStore;
  const keySystem = keys.keySystem;
  const connections = guardServer(app.server, limits, refusalLogger((fields, message) => app.log.warn(fields, message)));
  let store: Store;
  try {
    store = options.store ?? await openStore(config.database, { durability: config.durability ?? "full" });
  } catch (e) {
    await keys.close();
    await app.close();
    throw e;
  }
  app.log.info({ engine: store.engine, schemaVersion: store.schemaVersion }, `storage: ${store.engine}, schema version ${store.schemaVersion}`);
  const service = new PurchaseService(config, store, keyStore, (event, message) => app.log.info(event, message));
  let operator: OperatorSide;
  try {
    operator = await prepareOperator(app, config, store);
  } catch (e) {
    if (!options.store) await store.close();
    await keys.close();
    await app.close();
    throw e;
  }

  const identities = new WeakMap<object, Client>();
  function clientOf(request: FastifyRequest): Client {
    const socket = request.raw.socket as TLSSocket;
    let client = identities.get(socket);
    if (!client) {
      const cn = socket.getPeerCertificate?.()?.subject?.CN;
      const commonName = typeof cn === "string" ? cn : "";
      const upper = commonName.toUpperCase();
      client = TERMINAL_CN.test(upper) ? { commonName: upper, kind: "terminal" } : { commonName, kind: operators.has(commonName) ? "operator" : "other" };
      identities.set(socket, client);
    }
    return client;
  }

  app.server.on("tlsClientError", (err: Error & { code?: string }) => {
    app.log.warn({ code: err.code, reason: err.message }, "TLS handshake refused");
  });

  try {
    for (const plugin of [...await loadPlugins(config.plugins ?? []), ...options.plugins ?? []]) await plugin(app);
  } catch (e) {
    await operator.close();
    if (!options.store) await store.close();
    await keys.close();
    await app.close();
    throw e;
  }

  // Revoked terminals are refused before any route, and their open connections closed (docs/certificates.md).
  const certificates = new TerminalCertificates(app, {
    store, tls: tlsContext, crlFile: config.tls.crl, now: config.clock ?? Date.now, log: (event, message) => app.log.info(event, message),
  });

  // JSON only: Fastify also parses text/plain by default, which would turn a wrong content type into a 400.
  app.removeContentTypeParser("text/plain");

  app.setErrorHandler((err: FastifyError, request: FastifyRequest, reply: FastifyReply) => {
    const mapped = mapError(err);
    operator.noteError(request, mapped.code);
    if (mapped.status >= 500 && !(err instanceof FrontendError)) request.log.error({ err }, "unexpected error");
    else request.log.info({ code: mapped.code }, "request refused");
    if (err instanceof FrontendError && err.headers) reply.headers(err.headers);
    return reply.code(mapped.status).type("application/json").send(errorBody(mapped.code, mapped.message));
  });
  app.setNotFoundHandler((request, reply) => reply.code(404).send(errorBody("NOT_FOUND", `no route ${request.method} ${request.url.split("?")[0]}`)));

  registerPurchases(app, { service, clientOf });

  registerRefunds(app, { config, store, keyStore, clientOf, log: (event, message) => app.log.info(event, message) });

  app.get("/v1/routes", async () => {
    if (config.level !== 1) throw new FrontendError("ROUTES_NOT_SERVED", 404, "the routing table is served by the level-1 front-end");
    return { version: config.routesVersion ?? 1, routes: (config.routes ?? []).map((r) => ({ cityCode: r.cityCode, application: r.application, level: r.level, url: r.url, keyIndex: r.keyIndex })) };
  });

  registerFleetRoutes(app, store, clientOf);

  app.get("/v1/health", async () => ({
    status: "ok", name: config.name ?? `level-${config.level}`, level: config.level, keySystem,
    keys: keyStore.describe().length, engine: store.engine, schemaVersion: store.schemaVersion, commits: store.commits, committedWrites: store.committedWrites, uptimeSeconds: Math.round(process.uptime()),
  }));

  const sweepEvery = config.reconciliationSweepMs ?? Math.max(50, Math.min(service.reconciliationTimeoutMs / 4, 30_000));
  const sweeper = setInterval(() => {
    service.sweepReconciliation().catch((e: Error) => app.log.error({ err: e }, "reconciliation sweep failed"));
  }, sweepEvery);
  sweeper.unref();

  const host = config.listen?.host ?? "127.0.0.1";
  try {
    await certificates.start();
    if (options.acceptsHandedConnections) await app.ready();
    else await app.listen({ host, port: config.listen?.port ?? 8443 });
    await operator.start(service);
  } catch (e) {
    clearInterval(sweeper);
    certificates.close();
    await operator.close();
    await store.close();
    await keys.close();
    await app.close();
    throw e;
  }
  const address = app.server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  app.log.info({ frontendLevel: config.level, keySystem, keys: keyStore.describe().length, cities: config.cities.map((c) => c.cityCode) }, "front-end ready");
  let closed: Promise<void> | undefined;
  return {
    url: `https://${host.includes(":") ? `[${host}]` : host}:${port}`,
    port, host, app, service, store, operator,
    sweepReconciliation: () => service.sweepReconciliation(),
    connections,
    accept: (socket) => { app.server.emit("connection", socket); },
    close: () => {
      closed ??= (async () => {
        clearInterval(sweeper);
        certificates.close();
        await operator.close();
        // Not listening (handed connections): Fastify closes only the connections of a server it listened with.
        if (options.acceptsHandedConnections) app.server.closeAllConnections();
        await app.close();
        await store.close();
        await keys.close();
      })();
      return closed;
    },
  };
}

export { ERROR_CODES };
