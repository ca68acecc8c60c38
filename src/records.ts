import type { Journal, JournalRecord } from "../modules/journal/journal";
import { decodeUtf8, encodeUtf8 } from "../modules/bytes/bytes";
import type { Application, Completion, RoutingTable } from "../modules/frontend-client/client";

/**
 * What the terminal writes to its journal. Each record is one JSON object; a purchase's intent goes down before
 * DEBIT is sent, its outcome after, and each record is retired once nothing depends on it any more.
 */

/** Everything needed to finish a purchase whose DEBIT may or may not have happened, written before DEBIT. */
export interface IntentRecord {
  k: "intent";
  purchaseId: string;
  url: string;
  order: string;
  amount: number;
  asn: string;
  application: Application;
  /** The EP serial INIT gave: the card's counter moves past it only if the debit happened. */
  epSerial: number;
  balance: number;
  tsn: number;
  mac2: string;
  at: number;
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

export type TerminalRecord = IntentRecord | OutcomeRecord | RoutesRecord;

export function writeRecord(journal: Journal, record: TerminalRecord): number {
  return journal.append(encodeUtf8(JSON.stringify(record)));
}

/** Reads a recovered record; anything that is not one of ours (a future version, say) is skipped, not fatal. */
export function readRecord(record: JournalRecord): TerminalRecord | undefined {
  try {
    const value = JSON.parse(decodeUtf8(record.payload)) as TerminalRecord;
    if (value && (value.k === "intent" || value.k === "outcome" || value.k === "routes")) return value;
  } catch {
    // A record we cannot read cannot be acted on; the owner reports how many it skipped.
  }
  return undefined;
}

/** Bytes one purchase can need in the journal: its intent and outcome records, with room for long fields. */
export const PURCHASE_RECORD_BYTES = 512;
