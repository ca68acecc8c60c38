/**
 * The fleet page, the telemetry charts' data, and the configuration editor, over the store's status reports and
 * configuration scopes (tools/frontend/fleet/store.ts). Settings are checked with the terminals' own validator
 * (modules/terminal-config) before saving, so the editor shows every problem at once; the store checks again.
 */
import { SETTING_NAMES, settingErrors, type SettingName } from "../../../modules/terminal-config/config";
import type { StatusRow } from "../fleet/store";
import { FrontendError } from "../errors";
import type { Store } from "../storage/store";
import type { ConsoleOptions } from "./console-options";
import { esc, table, time, type Bar, type Series } from "./html";
import { certificatesByTerminal, certificatesSection, expiryCell } from "../terminals/pages";

/** Reasons a terminal reports at once: each is an alert until a later report says otherwise. */
const URGENT = new Set(["journal-fill", "completion-refused", "unresolved-reported", "reader-faults", "clock-skew", "config-refused"]);
const CLOCK_SKEW_MS = 2_000;

export interface Alert {
  level: "bad" | "warn";
  text: string;
}

export function alertsOf(row: StatusRow, online: boolean): Alert[] {
  const r = row.report;
  const alerts: Alert[] = [];
  if (!online) alerts.push({ level: "bad", text: "offline" });
  if (r.journal?.fillPercent > 80) alerts.push({ level: "bad", text: `journal ${r.journal.fillPercent}% full` });
  if (r.unresolved > 0) alerts.push({ level: "bad", text: `${r.unresolved} unresolved outcome(s)` });
  if (r.pendingCompletions > 0) alerts.push({ level: "warn", text: `${r.pendingCompletions} completion(s) waiting` });
  if (r.counts?.readerFaults > 0) alerts.push({ level: "warn", text: `${r.counts.readerFaults} reader fault(s)` });
  if (r.counts?.frontendErrors > 0) alerts.push({ level: "warn", text: `${r.counts.frontendErrors} front-end error(s)` });
  if (r.clockOffsetMs !== undefined && Math.abs(r.clockOffsetMs) > CLOCK_SKEW_MS) alerts.push({ level: "bad", text: `clock off by ${r.clockOffsetMs} ms` });
  if (r.config?.refused?.length) alerts.push({ level: "bad", text: `configuration refused: ${r.config.refused.map((x) => `${x.field} (${x.code})`).join(", ")}` });
  if (URGENT.has(r.reason) && !alerts.length) alerts.push({ level: "warn", text: `reported: ${r.reason}` });
  return alerts;
}

export function isOnline(row: StatusRow, now: number, everyMs: number): boolean {
  return now - row.receivedAt <= 2 * everyMs;
}

/** The interval a terminal reports at: what its configuration says, else the console's setting. */
async function intervalOf(o: ConsoleOptions, terminalId: string): Promise<number> {
  try {
    return (await o.store.fleet.effectiveConfig(terminalId)).settings.statusEveryMs ?? o.statusEveryMs;
  } catch {
    return o.statusEveryMs;
  }
}

function duration(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.floor(s / 60)} min`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

/**
 * The saved configuration version beside the one in force (the version the terminal last reported running), and
 * "pending" until they match: a save reaches the terminal at its next status report and idle moment, not at once.
 */
export function configState(saved: number, inForce: number | undefined): string {
  const force = inForce === undefined ? "not reported" : String(inForce);
  const pending = inForce === undefined || inForce < saved;
  return `saved ${esc(saved)} · in force ${esc(force)}${pending ? ' · <span class="warn">pending</span>' : ""}`;
}

export async function fleetPage(o: ConsoleOptions): Promise<string> {
  const now = o.now();
  const reports = await o.store.fleet.latestStatus();
  const reported = new Set(reports.map((r) => r.terminalId));
  const terminals = await o.queries.terminals();
  const certificates = await certificatesByTerminal(o.store);
  const expiry = (id: string) => expiryCell(certificates.certs.get(id) ?? [], certificates.revocations.get(id) ?? [], now);
  let online = 0;
  let alerting = 0;
  const rows: string[][] = [];
  for (const row of reports) {
    const r = row.report;
    const up = isOnline(row, now, await intervalOf(o, row.terminalId));
    if (up) online++;
    const alerts = alertsOf(row, up);
    const cert = expiry(row.terminalId);
    if (cert.alert) alerts.push({ level: "warn", text: cert.alert });
    if (alerts.length) alerting++;
    const declines = Object.values(r.counts?.declines ?? {}).reduce((s, n) => s + n, 0);
    rows.push([
      `<a class="mono" href="/fleet/${esc(row.terminalId)}">${esc(row.terminalId)}</a>`,
      `<span class="pill ${up ? "online" : "offline"}">${up ? "online" : "offline"}</span>`,
      `${esc(time(row.receivedAt))}<br><span class="muted">${esc(r.reason)} #${esc(r.sequence)}</span>`,
      esc(r.firmware), esc(duration(r.uptimeMs)), esc(`${r.journal?.fillPercent ?? "?"}%`), esc(r.pendingCompletions), esc(r.unresolved),
      `${esc(r.counts?.approvals ?? 0)} / ${esc(declines)}`,
      r.tapToApprovedMs ? `${esc(r.tapToApprovedMs.p50)} / ${esc(r.tapToApprovedMs.p90)}` : "",
      esc(r.clockOffsetMs ?? ""), configState((await o.store.fleet.effectiveConfig(row.terminalId)).version, r.config?.version), cert.html,
      alerts.map((a) => `<span class="${a.level}">${esc(a.text)}</span>`).join("<br>"),
    ]);
  }
  for (const t of terminals) {
    if (reported.has(t.terminalId)) continue;
    const cert = expiry(t.terminalId);
    rows.push([`<span class="mono">${esc(t.terminalId)}</span>`, `<span class="pill offline">no report</span>`, `<span class="muted">last purchase ${esc(time(t.lastPurchaseAt || null))}</span>`,
      "", "", "", "", "", `${esc(t.purchases)} purchases`, "", "", "", cert.html, `<span class="warn">never reported</span>${cert.alert ? `<br><span class="warn">${esc(cert.alert)}</span>` : ""}`]);
  }
  const cards = `<div class="cards"><div class="card">Terminals<b>${rows.length}</b></div><div class="card">Online<b class="ok">${online}</b></div>` +
    `<div class="card">Offline<b class="${reports.length - online ? "bad" : ""}">${reports.length - online}</b></div><div class="card">With alerts<b class="${alerting ? "bad" : ""}">${alerting}</b></div></div>`;
  return `${cards}<p class="muted">Online: a report within two of the terminal's report intervals. Counts are since the terminal's previous report.</p>` +
    table(["Terminal", "State", "Last report", "Firmware", "Uptime", "Journal", "Completions waiting", "Unresolved", "Approved / declined", "Tap→approved p50 / p90 (ms)", "Clock offset (ms)", "Config", "Certificate expires", "Alerts"], rows, [6, 7, 10, 11]);
}

export async function terminalPage(o: ConsoleOptions, terminalId: string): Promise<string> {
  if (!/^[0-9A-F]{12}$/.test(terminalId)) throw new FrontendError("VALIDATION", 400, "a terminal ID is 12 hex digits");
  const history = await o.store.fleet.statusHistory(terminalId, 100);
  const effective = await o.store.fleet.effectiveConfig(terminalId);
  const latest = history[0];
  return `<p><a href="/config?scope=terminal:${esc(terminalId)}">Edit this terminal's configuration</a> · <a href="/purchases?terminal=${esc(terminalId)}">Its purchases</a></p>` +
    await certificatesSection(o.store, terminalId, o.now()) +
    `<h2>Configuration: ${configState(effective.version, latest?.report.config?.version)} (group ${esc(effective.group ?? "none")})</h2><pre class="mono">${esc(JSON.stringify(effective.settings, null, 2))}</pre>` +
    (latest ? `<h2>Latest report</h2><pre class="mono">${esc(JSON.stringify(latest.report, null, 2))}</pre>` : "<p class='muted'>No report yet.</p>") +
    `<h2>Reports</h2>` + table(["Received", "Reason", "Seq", "Approved", "Declines", "Tears", "Reader faults", "Waiting", "Unresolved", "Journal"], history.map((h) => [
      esc(time(h.receivedAt)), esc(h.report.reason), esc(h.report.sequence), esc(h.report.counts?.approvals), esc(JSON.stringify(h.report.counts?.declines ?? {})),
      esc(h.report.counts?.tears), esc(h.report.counts?.readerFaults), esc(h.report.pendingCompletions), esc(h.report.unresolved), esc(`${h.report.journal?.fillPercent}%`),
    ]));
}

/** Reports of every terminal since `sinceMs` (the telemetry charts). */
async function recentReports(store: Store, sinceMs: number): Promise<StatusRow[]> {
  const out: StatusRow[] = [];
  for (const latest of await store.fleet.latestStatus()) {
    for (const row of await store.fleet.statusHistory(latest.terminalId, 500)) if (row.receivedAt >= sinceMs) out.push(row);
  }
  return out.sort((a, b) => a.receivedAt - b.receivedAt);
}

export async function declinesFromReports(store: Store, sinceMs: number): Promise<Bar[]> {
  const sums = new Map<string, number>();
  for (const row of await recentReports(store, sinceMs)) {
    for (const [reason, n] of Object.entries(row.report.counts?.declines ?? {})) sums.set(reason, (sums.get(reason) ?? 0) + n);
  }
  return [...sums].sort((a, b) => b[1] - a[1]).map(([label, value]) => ({ label, value }));
}

export async function tapSeries(store: Store, sinceMs: number): Promise<Series[]> {
  const p50: Series = { name: "p50", color: "#2f6f9f", points: [] };
  const p90: Series = { name: "p90", color: "#b3261e", points: [] };
  for (const row of await recentReports(store, sinceMs)) {
    const t = row.report.tapToApprovedMs;
    if (!t) continue;
    p50.points.push({ x: row.receivedAt, y: t.p50 });
    p90.points.push({ x: row.receivedAt, y: t.p90 });
  }
  return p50.points.length ? [p50, p90] : [];
}

/** Completions waiting per terminal from the latest reports (the metrics gauge). */
export async function waitingPerTerminal(store: Store): Promise<{ terminalId: string; waiting: number }[]> {
  return (await store.fleet.latestStatus()).map((r) => ({ terminalId: r.terminalId, waiting: r.report.pendingCompletions ?? 0 }));
}

// ---- the configuration editor ----

const NUMBER_SETTINGS = new Set<SettingName>(["maxAmount", "strictTimeoutMs", "recoveryWindowMs", "reportUnresolvedAfterMs", "routesRefreshMs", "keepWarmMs", "statusEveryMs"]);
const HELP: Partial<Record<SettingName, string>> = {
  maxAmount: "fen; a larger purchase is declined with amount-over-limit", applicationOrder: "tunion,cityunion", strict: "wait for the completion's acknowledgement",
  message: "text on the indicator or display", basicData: "fci-first or read (file 0x15 from the FCI, or always READ BINARY)",
};

export interface SaveResult {
  ok: boolean;
  scope: string;
  errors?: string[];
  form?: Record<string, string>;
}

/** The form's text fields as settings: an empty field is not set in this scope (it inherits). */
export function settingsFromForm(body: Record<string, string>): Record<string, unknown> {
  const values: Record<string, unknown> = {};
  for (const name of SETTING_NAMES) {
    const text = (body[name] ?? "").trim();
    if (text === "") continue;
    // Text that is not a whole number stays text: the validator refuses it with the field's name.
    if (NUMBER_SETTINGS.has(name)) values[name] = /^-?[0-9]{1,16}$/.test(text) ? Number(text) : text;
    else if (name === "strict") values[name] = text === "true" ? true : text === "false" ? false : text;
    else if (name === "applicationOrder") values[name] = text.split(",").map((s) => s.trim()).filter(Boolean);
    else values[name] = body[name];
  }
  return values;
}

export async function saveConfig(o: ConsoleOptions, body: Record<string, string>, actor: string): Promise<SaveResult> {
  const scope = String(body.scope ?? "");
  const values = settingsFromForm(body);
  const errors = settingErrors(values).map((e) => `${e.message} (${e.code})`);
  if (errors.length) return { ok: false, scope, errors, form: body };
  const expected = /^[0-9]+$/.test(body.version ?? "") ? Number(body.version) : undefined;
  try {
    await o.store.fleet.putConfigScope(scope, values, actor, expected);
    if (scope.startsWith("terminal:") && body.group !== undefined) {
      const terminalId = scope.slice(9);
      const group = body.group.trim() || null;
      const current = (await o.store.fleet.terminalGroups()).find((g) => g.terminalId === terminalId.toUpperCase())?.group ?? null;
      if (group !== current) await o.store.fleet.setTerminalGroup(terminalId, group, actor);
    }
  } catch (e) {
    if (e instanceof FrontendError && e.statusCode < 500) return { ok: false, scope, errors: [`${e.message} (${e.code})`], form: body };
    throw e;
  }
  return { ok: true, scope };
}

function settingField(name: SettingName, value: string): string {
  if (name === "strict") {
    return `<label>${name}<select name="strict">${["", "true", "false"].map((v) => `<option value="${v}"${v === value ? " selected" : ""}>${v || "(inherit)"}</option>`).join("")}</select></label>`;
  }
  const size = name === "message" ? 40 : name === "applicationOrder" ? 18 : 12;
  return `<label>${name}${HELP[name] ? ` <span class="muted">${esc(HELP[name])}</span>` : ""}<input name="${name}" value="${esc(value)}" size="${size}" placeholder="(inherit)"></label>`;
}

const shown = (v: unknown): string => (v === undefined ? "" : Array.isArray(v) ? v.join(",") : String(v));

export async function configPage(o: ConsoleOptions, query: Record<string, string>, failed?: SaveResult): Promise<string> {
  const scopeName = failed?.scope ?? query.scope ?? "defaults";
  const scope = await o.store.fleet.getConfigScope(scopeName);
  const scopes = await o.store.fleet.configScopes();
  const groups = await o.store.fleet.terminalGroups();
  const known = new Set(scopes.map((s) => s.scope));
  const terminals = new Set([...(await o.store.fleet.latestStatus()).map((r) => r.terminalId), ...(await o.queries.terminals()).map((t) => t.terminalId), ...groups.map((g) => g.terminalId)]);
  const links = ["defaults", ...[...new Set(scopes.map((s) => s.scope).filter((s) => s.startsWith("group:")))],
    ...[...terminals].sort().map((t) => `terminal:${t}`)].map((s) => {
    const current = s === scope.scope;
    return `<a href="/config?scope=${encodeURIComponent(s)}"${current ? ' class="bad"' : ""}>${esc(s)}</a>${known.has(s) ? "" : ' <span class="muted">(empty)</span>'}`;
  });
  const form = failed?.form;
  const fields = SETTING_NAMES.map((name) => settingField(name, form ? form[name] ?? "" : shown(scope.settings[name]))).join("");
  const isTerminal = scope.scope.startsWith("terminal:");
  const group = isTerminal ? groups.find((g) => `terminal:${g.terminalId}` === scope.scope)?.group ?? "" : "";
  const groupField = isTerminal ? `<label>group <span class="muted">(empty: none)</span><input name="group" value="${esc(form?.group ?? group)}" size="12"></label>` : "";
  const notice = query.saved ? `<div class="notice">Saved ${esc(scope.scope)}: version ${esc(scope.version)}.</div>` : "";
  const errors = failed?.errors?.length ? `<div class="errors"><strong>Not saved:</strong><ul>${failed.errors.map((e) => `<li>${esc(e)}</li>`).join("")}</ul></div>` : "";
  let effective = "";
  if (isTerminal) {
    const e = await o.store.fleet.effectiveConfig(scope.scope.slice(9));
    const reported = (await o.store.fleet.statusHistory(scope.scope.slice(9), 1))[0]?.report.config?.version;
    effective = `<h2>Saved for the terminal (defaults → group → terminal): ${configState(e.version, reported)}</h2><pre class="mono">${esc(JSON.stringify(e.settings, null, 2))}</pre>`;
  }
  const audit = await o.store.fleet.configAudit({ scope: scope.scope, limit: 50 });
  const auditTable = table(["When", "Who", "What", "Version", "Old", "New"], audit.map((a) => [
    esc(time(a.at)), esc(a.actor), esc(a.kind), esc(a.version), `<code>${esc(JSON.stringify(a.old))}</code>`, `<code>${esc(JSON.stringify(a.new))}</code>`,
  ]));
  return `<p>${links.join(" · ")}</p>${notice}${errors}
<h2>${esc(scope.scope)} <span class="muted">version ${esc(scope.version)}${scope.updatedBy ? `, by ${esc(scope.updatedBy)} at ${esc(time(scope.updatedAt))}` : ""}</span></h2>
<form class="inline" method="post" action="/config" id="config-form"><input type="hidden" name="scope" value="${esc(scope.scope)}"><input type="hidden" name="version" value="${esc(scope.version)}">
${fields}${groupField}<button class="primary">Save</button></form>
<form class="inline" method="get" action="/config"><label>Open scope <input name="scope" placeholder="group:NAME or terminal:ID"></label><button>Open</button></form>
${effective}<h2>Audit</h2>${auditTable}`;
}
