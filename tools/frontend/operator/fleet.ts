/**
 * The fleet page and the configuration editor: the terminals' status reports and remote configuration, read through
 * the store's telemetry and configuration methods (terminal telemetry, issue 14). A store without them (an older
 * front-end) still shows every terminal from its purchases.
 */
import type { Store } from "../store";
import type { ConsoleOptions } from "./console";
import { esc, table, time, type Bar, type Series } from "./html";

/** The store's telemetry and configuration methods, where the store has them. */
export interface Telemetry {
  latestStatus?(): Promise<unknown[]>;
  statusHistory?(terminalId: string, limit: number): Promise<unknown[]>;
}

export function telemetryOf(store: Store): Telemetry {
  return store as unknown as Telemetry;
}

export async function declinesFromReports(_t: Telemetry): Promise<Bar[]> {
  return [];
}

export async function tapSeries(_t: Telemetry): Promise<Series[]> {
  return [];
}

export async function fleetPage(o: ConsoleOptions): Promise<string> {
  const terminals = await o.queries.terminals();
  const now = o.now();
  const rows = terminals.map((t) => {
    const online = t.lastPurchaseAt > 0 && now - t.lastPurchaseAt <= 2 * o.statusEveryMs;
    return [`<span class="mono">${esc(t.terminalId)}</span>`, `<span class="pill ${online ? "online" : "offline"}">${online ? "online" : "offline"}</span>`,
      esc(time(t.lastPurchaseAt || null)), esc(t.purchases), esc(t.lastTsn)];
  });
  return `<p class="muted">A terminal is offline when nothing was heard from it for two report intervals (${Math.round(o.statusEveryMs / 1000)} s each).</p>` +
    table(["Terminal", "State", "Last purchase", "Purchases", "Last TSN"], rows, [3, 4]);
}

export interface SaveResult {
  ok: boolean;
  scope: string;
  errors?: string[];
  values?: Record<string, string>;
}

export async function configPage(_o: ConsoleOptions, _query: Record<string, string>, _failed?: SaveResult): Promise<string> {
  return `<p class="muted">This front-end's store keeps no remote configuration.</p>`;
}

export async function saveConfig(_o: ConsoleOptions, _body: Record<string, string>, _user: string): Promise<SaveResult> {
  return { ok: false, scope: "defaults", errors: ["this front-end's store keeps no remote configuration"] };
}
