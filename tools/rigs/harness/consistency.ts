/**
 * The money rule the fault-injection suite checks after every fault, from the three records that must agree: the
 * card (balance, EP serial, transaction log), the terminal's journal (nothing left open once recovery and delivery
 * are done) and the front-ends' journals (what was completed, voided, or left for reconciliation).
 */
import { readFileSync } from "node:fs";
import { fromHex, readUint32 } from "../../../modules/bytes/bytes";
import { crc32 } from "../../../modules/journal/crc32";
import { parseBasicData } from "../../../modules/purse/files";
import type { VirtualCard } from "../../sim/cardsim/card";
import type { RigPurchase } from "./rig";

export interface MoneyCheck {
  card: VirtualCard;
  /** The card's balance when it was issued. */
  initialBalance: number;
  /** Every purchase both front-ends hold (all cards). */
  purchases: { level: number; rows: RigPurchase[] }[];
  /**
   * The card's EP serial when it was issued. Given, the debits are every serial from it up to the card's counter (a
   * DEBIT moves the counter on, so each serial passed is one debit): for cards with more debits than their log holds.
   */
  initialSerial?: number;
}

export function cardAsn(card: VirtualCard): string {
  const app = card.state.applications[0]!;
  return parseBasicData(fromHex(app.basicData), app.layout).asn;
}

/**
 * Returns the violations (empty when the rule holds): no purchase lost (each debit in the card's log is a completed
 * purchase), none charged twice (each completed purchase is one debit; money out of the card equals money completed),
 * no TSN reused, no debit left open, nothing flagged.
 */
export function moneyViolations(check: MoneyCheck): string[] {
  const out: string[] = [];
  const app = check.card.state.applications[0]!;
  const asn = cardAsn(check.card);
  const rows = check.purchases.flatMap((p) => p.rows).filter((r) => r.asn === asn);
  // The log holds loads (refunds, type 02) too: purchases are the other records. A load moves the online serial, not
  // the EP (offline) serial, so the serial range counts purchases only.
  const purchaseLog = app.log.filter((l) => l.slice(18, 20) !== "02");
  const debited = check.initialSerial === undefined
    ? purchaseLog.map((l) => parseInt(l.slice(0, 4), 16)).sort((a, b) => a - b)
    : Array.from({ length: app.epSerial - check.initialSerial }, (_, i) => check.initialSerial! + i);
  const completed = rows.filter((r) => r.status === "completed");
  const completedSerials = completed.map((r) => r.ep_serial).sort((a, b) => a - b);
  if (JSON.stringify(completedSerials) !== JSON.stringify(debited)) {
    out.push(`card ${asn}: debits at EP serials [${debited}] but completed purchases at [${completedSerials}]`);
  }
  const loaded = app.log.filter((l) => l.slice(18, 20) === "02").reduce((n, l) => n + parseInt(l.slice(10, 18), 16), 0);
  const moved = check.initialBalance - app.balance + loaded;
  const settled = completed.reduce((n, r) => n + r.amount, 0);
  if (moved !== settled) out.push(`card ${asn}: ${moved} fen left the card, ${settled} fen completed`);
  // A debit left authorized or in reconciliation shows above as a debit with no completed purchase: the card moves
  // its serial on with each debit, so one serial is one debit and at most one completed purchase.
  for (const r of rows) if (r.status === "flagged") out.push(`card ${asn}: purchase ${r.id} flagged (MAC2 or TAC failed)`);
  for (const p of check.purchases) {
    // TSNs are counted per terminal.
    const tsns = p.rows.map((r) => `${r.terminal_id ?? ""}/${r.tsn}`);
    if (new Set(tsns).size !== tsns.length) out.push(`level ${p.level}: a TSN was handed out twice`);
  }
  return out;
}

/**
 * The final events of a payment (docs/reference/controller-port.md): each order the terminal takes gets exactly one.
 * `resolved` settles an `unknown-outcome` later; it is not a second final event.
 */
export const FINAL_EVENTS: ReadonlySet<string> = new Set(["approved", "declined", "unknown-outcome"]);

/** Events that say a payment is under way for their order (it must end in a final event). */
const PAYMENT_EVENTS = new Set(["waiting-for-card", "card-read", "reader-fault"]);

/**
 * The controller's rule, checked on what a controller heard (in order): every order gets exactly one final event, and
 * no `error` names an order whose payment is still under way (a controller that takes such an error as the end would
 * cancel a sale that then gets charged). A terminal that restarts (`ready`) mid-payment ends that payment without a
 * final event: its outcome comes later as `resolved`. An `error` naming an order that never started is the refusal
 * of that pay request (BUSY, BAD_AMOUNT...), which is all that order gets.
 */
export function finalEventViolations<E extends { event: string }>(heard: readonly E[]): string[] {
  const events = heard as readonly (E & { order?: unknown; code?: unknown })[];
  const out: string[] = [];
  const finals = new Map<string, number>();
  const open = new Set<string>();
  const refused = new Set<string>();
  for (const e of events) {
    if (e.event === "ready") {
      open.clear();
      continue;
    }
    if (typeof e.order !== "string") continue;
    const order = e.order;
    if (FINAL_EVENTS.has(e.event)) {
      const n = (finals.get(order) ?? 0) + 1;
      finals.set(order, n);
      open.delete(order);
      if (n === 2) out.push(`order ${order}: more than one final event (the second: ${e.event})`);
      if (refused.has(order)) out.push(`order ${order}: a final event (${e.event}) after an error refused the request`);
    } else if (PAYMENT_EVENTS.has(e.event)) {
      if (!finals.has(order)) open.add(order);
    } else if (e.event === "error") {
      if (open.has(order)) out.push(`order ${order}: an error (${String(e.code)}) while its payment was under way, before its final event`);
      else if (!finals.has(order)) refused.add(order);
    }
  }
  for (const order of open) out.push(`order ${order}: no final event`);
  return out;
}

/** A refund as the front-end holds it (tools/frontend/refunds/store.ts). */
export interface RefundRowView {
  purchase_id: string;
  status: string;
  amount: number;
  purchase_amount: number;
  online_serial: number | null;
  tac: string | null;
  tac_valid: number | null;
}

/**
 * The money rule for refunds, once the terminal has settled everything: every load on the card is one completed
 * refund with a valid TAC at the same online serial (nothing refunded twice, none lost), every completed refund is a
 * load on the card, no refund is over its purchase or left open, and each refunded purchase was completed.
 * `expected` names the purchases a refund was asked for: each must end completed or owed.
 */
export function refundViolations(card: VirtualCard, refunds: RefundRowView[], purchases: RigPurchase[], expected: string[]): string[] {
  const out: string[] = [];
  const app = card.state.applications[0]!;
  const asn = cardAsn(card);
  const loads = app.log.filter((l) => l.slice(18, 20) === "02").map((l) => ({ serial: parseInt(l.slice(0, 4), 16), amount: parseInt(l.slice(10, 18), 16) }));
  const ours = refunds.filter((r) => purchases.some((p) => p.id === r.purchase_id && p.asn === asn));
  const completed = ours.filter((r) => r.status === "completed");
  const serials = (xs: { serial: number }[]) => JSON.stringify(xs.map((x) => x.serial).sort((a, b) => a - b));
  if (serials(loads) !== serials(completed.map((r) => ({ serial: r.online_serial ?? -1 })))) {
    out.push(`card ${asn}: loads at online serials ${serials(loads)} but completed refunds at ${serials(completed.map((r) => ({ serial: r.online_serial ?? -1 })))}`);
  }
  if ((app.onlineSerial ?? 0) !== loads.length) out.push(`card ${asn}: online serial ${app.onlineSerial} after ${loads.length} loads`);
  const credited = loads.reduce((n, l) => n + l.amount, 0);
  const refunded = completed.reduce((n, r) => n + r.amount, 0);
  if (credited !== refunded) out.push(`card ${asn}: ${credited} fen loaded onto the card, ${refunded} fen in completed refunds`);
  for (const r of ours) {
    if (r.amount > r.purchase_amount) out.push(`refund ${r.purchase_id}: ${r.amount} fen for a purchase of ${r.purchase_amount}`);
    if (r.status === "completed" && r.tac_valid !== 1) out.push(`refund ${r.purchase_id}: completed without a valid TAC`);
    if (r.status !== "completed" && r.status !== "owed") out.push(`refund ${r.purchase_id}: left ${r.status}`);
    const p = purchases.find((x) => x.id === r.purchase_id);
    if (p && p.status !== "completed") out.push(`refund ${r.purchase_id}: its purchase is ${p.status}`);
  }
  for (const id of expected) if (!ours.some((r) => r.purchase_id === id)) out.push(`refund of ${id}: not at the front-end (neither completed nor owed)`);
  return out;
}

/**
 * Authorizations of this card still only authorized: neither completed, voided, nor marked for reconciliation. Once a
 * card's debits all match completed purchases (moneyViolations), these are authorizations whose DEBIT never happened.
 */
export function openAuthorizations(card: VirtualCard, purchases: { rows: RigPurchase[] }[]): RigPurchase[] {
  const asn = cardAsn(card);
  return purchases.flatMap((p) => p.rows).filter((r) => r.asn === asn && r.status === "authorized");
}

// ---- the terminal journal's bytes (modules/journal/journal.ts: blocks with a 16-byte header, then records) ----

export interface RawRecord {
  block: number;
  /** Offset of the record in the file. */
  offset: number;
  length: number;
  seq: number;
  live: boolean;
  payload: Uint8Array;
}

const BLOCK_MAGIC = 0x544a3032;
const HEADER = 16;

/** Every whole, valid record in a journal file, read independently of the Journal class (so it can check it). */
export function scanJournalFile(path: string, blockSize = 4096): RawRecord[] {
  const bytes = new Uint8Array(readFileSync(path));
  const out: RawRecord[] = [];
  for (let block = 0; block * blockSize < bytes.length; block++) {
    const base = block * blockSize;
    if (readUint32(bytes, base) !== BLOCK_MAGIC || readUint32(bytes, base + 12) !== crc32(bytes, base, base + 12)) continue;
    let at = base + HEADER;
    while (at + 12 <= base + blockSize && bytes[at] === 0xa5) {
      const length = (bytes[at + 2]! << 8) | bytes[at + 3]!;
      const end = at + 12 + length;
      if (end > base + blockSize) break;
      const crc = (crc32(bytes, at + 2, end - 4) ^ crc32(new Uint8Array([0xa5]))) >>> 0;
      if (crc !== readUint32(bytes, end - 4)) break;
      out.push({ block, offset: at, length: end - at, seq: readUint32(bytes, at + 4), live: bytes[at + 1] === 0xff, payload: bytes.slice(at + 8, end - 4) });
      at = end;
    }
  }
  return out.sort((a, b) => a.seq - b.seq);
}

/** The record kind a terminal wrote ("intent", "outcome", "routes"), from its JSON payload. */
export function recordKind(record: RawRecord): string {
  try {
    return String((JSON.parse(new TextDecoder().decode(record.payload)) as { k?: unknown }).k);
  } catch {
    return "?";
  }
}
