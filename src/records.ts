import type { Journal, JournalRecord } from "../modules/journal/journal";
import { decodeUtf8, encodeUtf8 } from "../modules/bytes/bytes";
import type { Application, Completion, RoutingTable } from "../modules/frontend-client/client";
import type { TerminalSettings } from "../modules/terminal-config/config";
import { readRefundRecord, type RefundRecord } from "./refund-records";
import type { CardMovement } from "./card-movement";

export type { CardMovement };

/**
 * What the terminal writes to its journal. Each record is one JSON object; a purchase's intent goes down before
 * DEBIT is sent, its outcome after, and each record is retired once nothing depends on it any more.
 */

/** Everything needed to finish a purchase whose DEBIT may or may not have happened, written before DEBIT. */
export interface IntentRecord extends CardMovement {
  k: "intent";
  /** The EP serial INIT gave: the card's counter moves past it only if the debit happened. */
  epSerial: number;
  balance: number;
  tsn: number;
  mac2: string;
}

/** A completion to deliver to the front-end, in order, until it is acknowledged. */
export interface OutcomeRecord {
  k: "outcome";
  purchaseId: string;
  url: string;
  order: string;
  completion: Completion;
}

export interface RoutesRecord {
  k: "routes";
  table: RoutingTable;
}

/** The remote configuration accepted last (already validated), so a restart without network keeps it. */
export interface ConfigRecord {
  k: "config";
  version: number;
  settings: TerminalSettings;
}

export type TerminalRecord = IntentRecord | OutcomeRecord | RoutesRecord | ConfigRecord | RefundRecord;

export function writeRecord(journal: Journal, record: TerminalRecord): number {
  return journal.append(encodeUtf8(JSON.stringify(record)));
}

/**
 * Reads a recovered record. Anything that is not whole and one of ours (a future version, a record from a bug) is
 * skipped, not fatal, and never half-trusted: every field the terminal acts on is checked here.
 */
export function readRecord(record: JournalRecord): TerminalRecord | undefined {
  let value: unknown;
  try {
    value = JSON.parse(decodeUtf8(record.payload));
  } catch {
    return undefined;
  }
  if (!value || typeof value !== "object") return undefined;
  const r = value as { [key: string]: unknown };
  const str = (k: string) => typeof r[k] === "string";
  const int = (k: string) => Number.isInteger(r[k]) && (r[k] as number) >= 0;
  if (r.k === "intent") {
    const ok = str("purchaseId") && str("url") && str("order") && int("amount") && str("asn") && (r.application === "tunion" || r.application === "cityunion") &&
      int("epSerial") && Number.isInteger(r.balance) && int("tsn") && str("mac2") && typeof r.at === "number" && Number.isFinite(r.at);
    return ok ? (value as IntentRecord) : undefined;
  }
  if (r.k === "outcome") {
    const c = r.completion as { outcome?: unknown; mac2?: unknown; tac?: unknown } | null;
    const completionOk = !!c && typeof c === "object" && (c.outcome === "not-debited" || c.outcome === "unknown" ||
      (c.outcome === "debited" && typeof c.mac2 === "string" && typeof c.tac === "string"));
    return str("purchaseId") && str("url") && str("order") && completionOk ? (value as OutcomeRecord) : undefined;
  }
  if (r.k === "refund-intent" || r.k === "refund-credit" || r.k === "refund-outcome") return readRefundRecord(r);
  if (r.k === "routes") {
    const t = r.table as { routes?: unknown } | null;
    const ok = !!t && typeof t === "object" && Array.isArray(t.routes) && t.routes.every((x: unknown) => {
      const route = x as { [key: string]: unknown } | null;
      return !!route && typeof route.cityCode === "string" && typeof route.url === "string" && Number.isInteger(route.keyIndex) &&
        Number.isInteger(route.level) && (route.application === "tunion" || route.application === "cityunion");
    });
    return ok ? (value as RoutesRecord) : undefined;
  }
  if (r.k === "config") {
    // The settings themselves are checked by the terminal with the same validator the front-end uses.
    const s = r.settings;
    return int("version") && !!s && typeof s === "object" && !Array.isArray(s) ? (value as ConfigRecord) : undefined;
  }
  return undefined;
}

/** Bytes one purchase can need in the journal: its intent and outcome records, with room for long fields. */
export const PURCHASE_RECORD_BYTES = 512;
