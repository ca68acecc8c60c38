/**
 * The operator console: its own Fastify instance on its own port, over TLS with the front-end's server certificate,
 * separate from the terminals' mutual-TLS listener. Server-rendered pages, `GET /metrics` and `GET /openapi.json`.
 *
 * Authentication (docs/operate-console.md): an operator logs in with a name and password checked against the
 * configuration's scrypt hashes (on threads of their own, behind the login limits of login-guard.ts) and gets an
 * HttpOnly, Secure, SameSite=Strict cookie naming a session kept in the database (sessions.ts); or presents an
 * operator client certificate (CN listed in `operators`). Anything else gets 401: JSON for the API,
 * the metrics and the OpenAPI document, the login page for a browser.
 */
import type { Socket } from "node:net";
import { checkListenLimits, guardServer, refusalLogger, serverOptions, type CheckedLimits } from "../listen/limits";
import type { TLSSocket } from "node:tls";
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import { fromHex } from "../../../modules/bytes/bytes";
import { parseBasicData } from "../../../modules/purse/files";
import { parseInitializeForPurchase } from "../../../modules/purse/responses";
import { FrontendError } from "../errors";
import { formatSettlement, type PurchaseService } from "../purchases/service";
import type { PurchaseRow, Store } from "../storage/store";
import { CLEAR_SESSION, readCookie, SESSION_COOKIE, sessionCookie, type Accounts, type Sessions } from "./auth";
import { barChart, chinaHour, CONSOLE_CSS, esc, lineChart, page, table, time, utcTime, yuan, type Bar } from "./html";
import type { AccountsFile } from "./accounts-file";
import { LoginGuard, type LoginLimits } from "./login-guard";
import { PasswordPool, PasswordPoolBusyError } from "./password-pool";
import type { FrontendMetrics } from "./metrics";
import type { ConsoleQueries, PurchaseQuery } from "./queries";
import { configPage, declinesFromReports, fleetPage, saveConfig, tapSeries, terminalPage } from "./fleet-pages";
import { registerRevokeRoute } from "../terminals/pages";
import type { ConsoleOptions } from "./console-options";

export type { ConsoleOptions };


const PUBLIC = new Set(["GET /login", "POST /login", "GET /console.css"]);
const DAY = /^[0-9]{8}$/;

/**
 * Sent with every console answer. The pages carry no script at all, so the policy allows none; styles come from
 * /console.css only. frame-ancestors 'none' and X-Frame-Options DENY: no other site can frame the console (a click
 * on a framed console could save a configuration). HSTS: the console is HTTPS only.
 */
export const SECURITY_HEADERS: Record<string, string> = {
  "content-security-policy": "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  "x-frame-options": "DENY",
  "x-content-type-options": "nosniff",
  "strict-transport-security": "max-age=31536000; includeSubDomains",
  // same-origin, not no-referrer: with no-referrer chromium sends "Origin: null" on the console's own form posts,
  // which the cross-site check refuses. Other sites still get no referrer.
  "referrer-policy": "same-origin",
  "cross-origin-opener-policy": "same-origin",
};

const operatorOf = new WeakMap<FastifyRequest, string>();

export function user(request: FastifyRequest): string {
  return operatorOf.get(request) ?? "";
}

function wantsHtml(request: FastifyRequest): boolean {
  const path = request.url.split("?")[0]!;
  if (path === "/metrics" || path === "/openapi.json" || path.startsWith("/api/") || path.endsWith(".csv")) return false;
  return String(request.headers.accept ?? "").includes("text/html");
}

function loginForm(name: string, next: string, error?: string): string {
  return page("Operator login", `<form class="login" method="post" action="/login">
${error ? `<div class="errors">${esc(error)}</div>` : ""}
<label>Operator <input name="user" autocomplete="username" required autofocus></label>
<label>Password <input name="password" type="password" autocomplete="current-password" required></label>
<input type="hidden" name="next" value="${esc(next)}"><button class="primary">Log in</button></form>`, { name });
}

/** Only a local path is followed after login (never another site). */
function safeNext(next: unknown): string {
  return typeof next === "string" && /^\/(?![/\\])[^\s]*$/.test(next) && next !== "/login" ? next : "/";
}

const status = (s: string) => `<span class="${s === "completed" ? "ok" : s === "flagged" || s === "reconciliation" ? "bad" : "muted"}">${esc(s)}</span>`;

function purchaseRows(rows: PurchaseRow[]): string[][] {
  return rows.map((r) => [
    `<a href="/purchases/${esc(r.id)}" class="mono">${esc(r.id.slice(0, 13))}…</a>`, esc(r.date), `<span title="${esc(utcTime(r.authorized_at))}">${esc(time(r.authorized_at))}</span>`, `<span class="mono">${esc(r.terminal_id)}</span>`,
    esc(r.tsn), esc(r.order_no), `<span class="mono">${esc(r.asn)}</span>`, esc(yuan(r.amount)), status(r.status) + (r.needs_review ? ' <span class="warn">review</span>' : ""),
  ]);
}
const PURCHASE_HEADERS = ["Purchase", "Business day", "Authorized (China time)", "Terminal", "TSN", "Order", "ASN", "Amount (yuan)", "Status"];

export async function startConsole(o: ConsoleOptions): Promise<{ app: FastifyInstance; url: string; port: number; accept(socket: Socket): void; close(): Promise<void> }> {
  const limits = o.limits ?? checkListenLimits();
  const timeouts = serverOptions(limits);
  const app = Fastify({
    https: {
      ...timeouts.https,
      cert: o.tls.cert, key: o.tls.key, ca: o.tls.ca, minVersion: "TLSv1.2",
      // A certificate is asked for but not required: operators without one log in with a password.
      requestCert: o.certificateOperators !== null, rejectUnauthorized: false,
    },
    // The same log as the terminals' listener (the audit of logins goes there too).
    logger: { level: o.logLevel, ...(o.logFile ? { file: o.logFile } : {}), redact: ["req.headers.cookie"] },
    bodyLimit: 65_536,
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false } },
    return503OnClosing: true,
    forceCloseConnections: true,
    keepAliveTimeout: timeouts.keepAliveTimeout,
    requestTimeout: timeouts.requestTimeout,
  });
  guardServer(app.server, limits, refusalLogger((fields, message) => app.log.warn(fields, message)));
  app.removeContentTypeParser("text/plain");
  app.addContentTypeParser("application/x-www-form-urlencoded", { parseAs: "string" }, (_request, body, done) => {
    done(null, Object.fromEntries(new URLSearchParams(body as string)));
  });
  o.metrics.instrument(app, "operator");
  const pool = new PasswordPool(o.passwordThreads ?? 1);
  const guard = new LoginGuard(o.loginLimits, o.now);

  app.addHook("onRequest", async (request, reply) => {
    reply.headers(SECURITY_HEADERS);
    o.accountsFile?.refresh();
    const path = request.url.split("?")[0]!;
    if (request.method === "POST") {
      // SameSite=Strict already keeps other sites' forms out; an Origin that is not ours is refused as well.
      const origin = request.headers.origin;
      if (origin && origin !== `https://${request.headers.host}`) return reply.code(403).send({ error: { code: "BAD_ORIGIN", message: "cross-site request refused" } });
    }
    if (PUBLIC.has(`${request.method} ${path}`)) return;
    let who = await o.sessions.verify(readCookie(request.headers.cookie, SESSION_COOKIE));
    if (!who && o.certificateOperators) {
      const socket = request.raw.socket as TLSSocket;
      const cn = socket.authorized ? socket.getPeerCertificate?.()?.subject?.CN : undefined;
      if (typeof cn === "string" && o.certificateOperators.has(cn)) who = `${cn} (certificate)`;
    }
    if (who) {
      operatorOf.set(request, who);
      return;
    }
    if (wantsHtml(request)) return reply.code(401).type("text/html; charset=utf-8").send(loginForm(o.name, request.method === "GET" ? request.url : "/"));
    return reply.code(401).header("www-authenticate", 'Cookie realm="operator console"').send({ error: { code: "UNAUTHENTICATED", message: "log in at /login or present an operator certificate" } });
  });

  app.setErrorHandler((err: Error & { statusCode?: number; code?: string; validation?: unknown }, request, reply) => {
    const statusCode = err instanceof FrontendError ? err.statusCode : err.validation ? 400 : err.statusCode && err.statusCode < 500 ? err.statusCode : 500;
    const code = err instanceof FrontendError ? err.code : err.validation ? "VALIDATION" : statusCode < 500 ? "BAD_REQUEST" : "INTERNAL";
    if (statusCode >= 500) request.log.error({ err }, "console error");
    const message = statusCode >= 500 && !(err instanceof FrontendError) ? "internal error" : err.message;
    if (wantsHtml(request)) return reply.code(statusCode).type("text/html; charset=utf-8").send(page("Error", `<div class="errors">${esc(code)}: ${esc(message)}</div>`, { user: user(request), name: o.name }));
    return reply.code(statusCode).send({ error: { code, message } });
  });
  app.setNotFoundHandler((request, reply) => reply.code(404).send({ error: { code: "NOT_FOUND", message: `no route ${request.method} ${request.url.split("?")[0]}` } }));

  const html = (reply: FastifyReply, request: FastifyRequest, title: string, body: string) =>
    reply.type("text/html; charset=utf-8").send(page(title, body, { path: request.url.split("?")[0], user: user(request), name: o.name }));

  app.get("/console.css", async (_request, reply) => reply.type("text/css; charset=utf-8").header("cache-control", "max-age=3600").send(CONSOLE_CSS));

  app.get("/login", async (request, reply) => reply.type("text/html; charset=utf-8").send(loginForm(o.name, safeNext((request.query as { next?: string }).next))));

  app.post<{ Body: { user?: string; password?: string; next?: string } }>("/login", {
    schema: { body: { type: "object", required: ["user", "password"], properties: { user: { type: "string", maxLength: 64 }, password: { type: "string", maxLength: 1024 }, next: { type: "string", maxLength: 2048 } } } },
  }, async (request, reply) => {
    const address = request.ip;
    const name = request.body.user ?? "";
    const next = safeNext(request.body.next);
    const refuse = (code: 429 | 401, retryAfterMs: number, text: string) => {
      if (code === 429) reply.header("retry-after", String(Math.max(1, Math.ceil(retryAfterMs / 1000))));
      return reply.code(code).type("text/html; charset=utf-8").send(loginForm(o.name, next, text));
    };
    // Locked out, or this address already has its checks queued: refused before any password is looked at.
    const refusal = guard.check(address, name);
    if (refusal) {
      // One line per lockout, not per attempt: a flood must not turn into a flood of log writes. The answer is held
      // (tarpit): a client that waits for it cannot make more than a few attempts a second.
      if (refusal.first) request.log.warn({ audit: "operator-login", outcome: refusal.reason, address, user: name, lockedBy: refusal.key, retryAfterMs: refusal.retryAfterMs }, "operator login refused (further refusals of this lockout are not logged)");
      if (!(await guard.tarpit(address, refusal))) reply.header("connection", "close");
      return refuse(429, refusal.retryAfterMs, refusal.reason === "locked" ? "Too many failed logins: try again later." : "Busy: try again in a moment.");
    }
    guard.begin(address);
    let who: string | null;
    try {
      who = await o.accounts.check(name, request.body.password ?? "", pool);
    } catch (e) {
      if (!(e instanceof PasswordPoolBusyError)) throw e;
      request.log.warn({ audit: "operator-login", outcome: "busy", address, user: name }, "operator login refused");
      return refuse(429, 1000, "Busy: try again in a moment.");
    } finally {
      guard.end(address);
    }
    if (!who) {
      const lockMs = guard.failed(address, name);
      request.log.warn({ audit: "operator-login", outcome: "wrong-password", address, user: name, ...(lockMs ? { lockedForMs: lockMs } : {}) }, "operator login refused");
      return refuse(401, 0, "Wrong operator name or password.");
    }
    guard.succeeded(address, who);
    request.log.info({ audit: "operator-login", outcome: "ok", address, operator: who }, "operator logged in");
    return reply.code(303).header("set-cookie", sessionCookie(await o.sessions.issue(who), Math.floor(o.sessions.lifetimeMs / 1000))).header("location", next).send();
  });

  app.post("/logout", async (request, reply) => {
    await o.sessions.end(readCookie(request.headers.cookie, SESSION_COOKIE));
    request.log.info({ audit: "operator-logout", operator: user(request) }, "operator logged out");
    return reply.code(303).header("set-cookie", CLEAR_SESSION).header("location", "/login").send();
  });

  app.get("/metrics", async (_request, reply) => reply.type("text/plain; version=0.0.4; charset=utf-8").send(await o.metricsText()));
  app.get("/openapi.json", async (_request, reply) => reply.type("application/json").send(o.openApi()));

  app.get("/", async (request, reply) => html(reply, request, "Fleet", await fleetPage(o)));
  app.get<{ Params: { id: string } }>("/fleet/:id", async (request, reply) =>
    html(reply, request, `Terminal ${request.params.id.toUpperCase()}`, await terminalPage(o, request.params.id.toUpperCase())));
  registerRevokeRoute(app, o.store, user, o.now);

  app.get<{ Querystring: Record<string, string> }>("/purchases", {
    schema: {
      querystring: {
        type: "object", additionalProperties: false,
        properties: {
          order: { type: "string", maxLength: 32 }, asn: { type: "string", pattern: "^([0-9]{0,20})$" }, terminal: { type: "string", pattern: "^([0-9A-Fa-f]{12})?$" },
          day: { type: "string", pattern: "^([0-9]{8})?$" }, status: { type: "string", enum: ["", "authorized", "completed", "voided", "flagged", "reconciliation"] },
        },
      },
    },
  }, async (request, reply) => {
    const q = request.query;
    const query: PurchaseQuery = { order: q.order || undefined, asn: q.asn || undefined, terminal: q.terminal || undefined, day: q.day || undefined, status: q.status || undefined };
    const rows = await o.queries.search(query);
    const field = (name: string, label: string, extra = "") => `<label>${label}<input name="${name}" value="${esc(q[name] ?? "")}" ${extra}></label>`;
    const statuses = ["", "authorized", "completed", "voided", "flagged", "reconciliation"].map((s) => `<option${q.status === s ? " selected" : ""}>${s}</option>`).join("");
    const form = `<form class="inline" method="get">${field("order", "Order")}${field("asn", "ASN", 'size="22"')}${field("terminal", "Terminal", 'size="14"')}${field("day", "Business day (YYYYMMDD, China time)", 'size="10"')}
<label>Status<select name="status">${statuses}</select></label><button class="primary">Search</button></form>`;
    return html(reply, request, "Purchases", `${form}<p class="muted">${rows.length} purchase(s), newest first${rows.length >= 100 ? " (first 100)" : ""}.</p>${table(PURCHASE_HEADERS, purchaseRows(rows), [4, 7])}`);
  });

  app.get<{ Params: { id: string } }>("/purchases/:id", { schema: { params: { type: "object", properties: { id: { type: "string", maxLength: 64 } } } } }, async (request, reply) => {
    const r = await o.queries.purchase(request.params.id);
    if (!r) throw new FrontendError("PURCHASE_NOT_FOUND", 404, `no purchase ${request.params.id}`);
    const events = await o.queries.eventsOf(r.id);
    return html(reply, request, `Purchase ${r.id}`, purchaseDetail(r) + `<h2>Events</h2>` + table(["At", "Kind", "Detail"], events.map((e) => [esc(time(Number(e.at))), esc(e.kind), `<code>${esc(e.detail)}</code>`])));
  });

  app.get("/attention", async (request, reply) => {
    const rows = await o.queries.attention();
    const counts = await o.queries.attentionCounts();
    const sweeps = await o.queries.events(["reconciliation", "flagged", "conflicting-completion"], 50);
    const cards = `<div class="cards"><div class="card">Flagged<b class="${counts.flagged ? "bad" : ""}">${counts.flagged}</b></div><div class="card">Reconciliation<b class="${counts.reconciliation ? "bad" : ""}">${counts.reconciliation}</b></div>` +
      `<div class="card">Marked for review<b>${counts.review}</b></div><div class="card">Awaiting completion<b>${counts.authorized}</b></div></div>`;
    const sweepForm = `<form method="post" action="/attention/sweep"><button class="primary">Run the reconciliation sweep now</button> <span class="muted">(it also runs on its timer; authorizations without a completion for ${Math.round(o.service.reconciliationTimeoutMs / 1000)} s are marked)</span></form>`;
    const notice = (request.query as { swept?: string }).swept !== undefined ? `<div class="notice">The sweep marked ${esc((request.query as { swept: string }).swept)} authorization(s).</div>` : "";
    return html(reply, request, "Flagged and unresolved purchases", `${notice}${cards}${table(PURCHASE_HEADERS, purchaseRows(rows), [4, 7])}<h2>Reconciliation and verification events</h2>${sweepForm}` +
      table(["At", "Event", "Purchase", "Terminal", "TSN", "Amount (yuan)", "Detail"], sweeps.map((e) => [esc(time(e.at)), esc(e.kind), `<a class="mono" href="/purchases/${esc(e.purchase_id)}">${esc(e.purchase_id.slice(0, 13))}…</a>`,
        `<span class="mono">${esc(e.terminal_id)}</span>`, esc(e.tsn), esc(yuan(Number(e.amount ?? 0))), `<code>${esc(e.detail)}</code>`]), [4, 5]));
  });

  app.post("/attention/sweep", async (request, reply) => {
    const marked = await o.service.sweepReconciliation();
    request.log.info({ operator: user(request), marked }, "reconciliation sweep run by an operator");
    return reply.code(303).header("location", `/attention?swept=${marked}`).send();
  });

  app.get("/settlement", async (request, reply) => {
    const days = await o.queries.days();
    return html(reply, request, "Settlement", `<form class="inline" method="get" action="/settlement/day"><label>Business day (YYYYMMDD)<input name="day" pattern="[0-9]{8}" required></label><button class="primary">Show</button></form>` +
      table(["Business day", "Purchases", "Total (yuan)", "Download"], days.map((d) => [`<a href="/settlement/${esc(d.day)}">${esc(d.day)}</a>`, esc(d.count), esc(yuan(d.amount)),
        `<a href="/settlement/${esc(d.day)}.csv" download>CSV</a>`]), [1, 2]));
  });

  app.get<{ Querystring: { day?: string } }>("/settlement/day", async (request, reply) => {
    const day = request.query.day ?? "";
    if (!DAY.test(day)) throw new FrontendError("VALIDATION", 400, "the business day is YYYYMMDD");
    return reply.code(303).header("location", `/settlement/${day}`).send();
  });

  app.get<{ Params: { file: string } }>("/settlement/:file", { schema: { params: { type: "object", properties: { file: { type: "string", pattern: "^[0-9]{8}(\\.csv)?$" } } } } }, async (request, reply) => {
    const day = request.params.file.slice(0, 8);
    const records = await o.service.settlement(day);
    if (request.params.file.endsWith(".csv")) {
      request.log.info({ businessDay: day, records: records.length, operator: user(request) }, "settlement exported");
      return reply.type("text/csv; charset=utf-8").header("content-disposition", `attachment; filename="settlement-${day}.csv"`).send(formatSettlement(records, "csv"));
    }
    const total = records.reduce((s, r) => s + r.amount, 0);
    return html(reply, request, `Settlement ${day}`, `<p>${records.length} completed purchase(s), ${esc(yuan(total))} yuan. <a href="/settlement/${day}.csv" download>Download CSV</a></p>` +
      table(["Terminal", "TSN", "Time", "Application", "ASN", "EP serial", "Amount (yuan)", "TAC", "Order"], records.map((r) => [
        `<span class="mono">${esc(r.terminalId)}</span>`, esc(r.tsn), esc(`${r.date} ${r.time}`), esc(r.application), `<span class="mono">${esc(r.asn)}</span>`, esc(r.epSerial), esc(yuan(r.amount)), `<code>${esc(r.tac)}</code>`, esc(r.order),
      ]), [1, 5, 6]));
  });

  app.get("/charts", async (request, reply) => {
    const now = o.now();
    const since = Math.floor(now / 3600_000) * 3600_000 - 23 * 3600_000;
    const hours = await o.queries.perHour(since);
    const byHour = new Map(hours.map((h) => [h.hour, h.count]));
    const bars: Bar[] = [];
    for (let h = since / 3600_000; h <= Math.floor(now / 3600_000); h++) bars.push({ label: `${String(chinaHour(h * 3600_000)).padStart(2, "0")}:00`, value: byHour.get(h) ?? 0 });
    const declines: Bar[] = await declinesFromReports(o.store, since);
    // The front-end's own count of the declines it gave, when the terminals' reports hold none yet.
    const own = (await o.metrics.registry.getSingleMetric("frontend_authorizations_total")?.get())?.values ?? [];
    const fromFrontend: Bar[] = own.filter((v) => v.labels.outcome !== "approved").map((v) => ({ label: String(v.labels.outcome), value: v.value }));
    const tap = await tapSeries(o.store, since);
    const body = `<div class="charts">
<figure><figcaption>Purchases per hour (completed, last 24 h, China time)</figcaption>${barChart(bars, { label: "purchases per hour" })}</figure>
<figure><figcaption>Declines by reason (terminals' reports, last 24 h)</figcaption>${barChart(declines, { label: "declines by reason", color: "#b3261e" })}</figure>
<figure><figcaption>Declines by reason (this front-end since its start)</figcaption>${barChart(fromFrontend, { label: "front-end declines by reason", color: "#8a5a00" })}</figure>
<figure><figcaption>Tap to approved over time (ms, terminals' reports, last 24 h)</figcaption>${lineChart(tap, { label: "tap to approved", unit: "" })}</figure>
</div>`;
    return html(reply, request, "Charts", body);
  });

  app.get("/config", async (request, reply) => html(reply, request, "Configuration", await configPage(o, request.query as Record<string, string>)));
  app.post<{ Body: Record<string, string> }>("/config", async (request, reply) => {
    const result = await saveConfig(o, request.body ?? {}, user(request));
    if (result.ok) return reply.code(303).header("location", `/config?scope=${encodeURIComponent(result.scope)}&saved=1`).send();
    return reply.code(422).type("text/html; charset=utf-8").send(page("Configuration", await configPage(o, { scope: result.scope }, result), { path: "/config", user: user(request), name: o.name }));
  });

  if (o.acceptsHandedConnections) await app.ready();
  else await app.listen({ host: o.host, port: o.port });
  const address = app.server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  return {
    app, port, url: `https://${o.host.includes(":") ? `[${o.host}]` : o.host}:${port}`,
    accept: (socket) => { app.server.emit("connection", socket); },
    close: async () => {
      // Not listening (handed connections): Fastify closes only the connections of a server it listened with.
      if (o.acceptsHandedConnections) app.server.closeAllConnections();
      await app.close();
      await pool.close();
    },
  };
}

function purchaseDetail(r: PurchaseRow): string {
  const facts: [string, string][] = [
    ["Status", status(r.status) + (r.needs_review ? ' <span class="warn">marked for review</span>' : "")],
    ["Terminal / TSN", `<span class="mono">${esc(r.terminal_id)}</span> / ${esc(r.tsn)}`], ["Order", esc(r.order_no)],
    ["Amount", `${esc(yuan(r.amount))} yuan (${esc(r.amount)} fen), transaction type ${esc(r.transaction_type)}`],
    ["Business day (China)", esc(r.date)], ["Authorized", `${esc(time(r.authorized_at))} <span class="muted">(${esc(utcTime(r.authorized_at))})</span>`],
    ["Card date/time (China)", esc(`${r.date} ${r.time}`)],
    ["Completed", r.completed_at ? `${esc(time(r.completed_at))} <span class="muted">(${esc(utcTime(r.completed_at))})</span>` : ""], ["Outcome", esc(r.outcome ?? "")], ["Reconciliation reason", esc(r.reconciliation_reason ?? "")],
  ];
  const card: [string, string][] = [
    ["Application", esc(r.application)], ["Issuer", `<span class="mono">${esc(r.issuer)}</span>`], ["City", esc(r.city_code)], ["Card type", esc(r.card_type)],
    ["ASN", `<span class="mono">${esc(r.asn)}</span>`],
  ];
  try {
    const basic = parseBasicData(fromHex(r.basic_data), r.application);
    card.push(["Valid", esc(`${basic.startDate} – ${basic.expiryDate}`)], ["Application version", esc(basic.applicationVersion)]);
  } catch (e) {
    card.push(["File 0x15", `<span class="bad">${esc((e as Error).message)}</span>`]);
  }
  card.push(["File 0x15 (READ BINARY)", `<code>${esc(r.basic_data)}</code>`]);
  const apdu: [string, string][] = [];
  try {
    const init = parseInitializeForPurchase(fromHex(r.init_response));
    apdu.push(["Balance before", `${esc(yuan(init.balance))} yuan`], ["Overdraft limit", `${esc(yuan(init.overdraftLimit))} yuan`], ["EP serial", esc(init.epSerial)],
      ["Key version / algorithm", `${esc(init.keyVersion)} / ${esc(r.algorithm)} (id ${esc(init.algorithmId)})`], ["Card random", `<code>${esc(Buffer.from(init.random).toString("hex").toUpperCase())}</code>`]);
  } catch (e) {
    apdu.push(["INITIALIZE FOR PURCHASE", `<span class="bad">${esc((e as Error).message)}</span>`]);
  }
  apdu.push(["INITIALIZE FOR PURCHASE answer", `<code>${esc(r.init_response)}</code>`], ["Key index", esc(r.key_index)],
    ["MAC2 (card)", `<code>${esc(r.mac2 ?? "")}</code> ${r.mac2_valid === null ? "" : r.mac2_valid ? '<span class="ok">verified</span>' : '<span class="bad">does not verify</span>'}`],
    ["TAC", `<code>${esc(r.tac ?? "")}</code> ${r.tac_valid === null ? "" : r.tac_valid ? '<span class="ok">verified</span>' : '<span class="bad">does not verify</span>'}`]);
  const dl = (rows: [string, string][]) => table(["", ""], rows.map(([k, v]) => [esc(k), v]));
  return `<h2>Purchase</h2>${dl(facts)}<h2>Card (file 0x15)</h2>${dl(card)}<h2>APDU exchange (INITIALIZE FOR PURCHASE, DEBIT FOR PURCHASE)</h2>${dl(apdu)}`;
}
