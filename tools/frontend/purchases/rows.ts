/** A purchase as the database keeps it, on either engine: its row, its status and outcome, and how a new one is inserted. */
import type { Application } from "../config";
import type { PurseAlgorithm } from "../../purse-crypto/index";

export type Outcome = "debited" | "not-debited" | "unknown";

export type PurchaseStatus = "authorized" | "completed" | "voided" | "flagged" | "reconciliation";

export interface PurchaseRow {
  id: string;
  terminal_id: string;
  tsn: number;
  order_no: string;
  application: Application;
  transaction_type: number;
  amount: number;
  key_index: number;
  key_version: number;
  algorithm: PurseAlgorithm;
  issuer: string;
  city_code: string;
  card_type: number;
  asn: string;
  ep_serial: number;
  balance: number;
  overdraft_limit: number;
  basic_data: string;
  init_response: string;
  date: string;
  time: string;
  authorized_at: number;
  status: PurchaseStatus;
  outcome: Outcome | null;
  mac2: string | null;
  tac: string | null;
  mac2_valid: number | null;
  tac_valid: number | null;
  completion: string | null;
  answer: string | null;
  completed_at: number | null;
  reconciliation_reason: string | null;
  needs_review: number;
}

/** A new authorization's values, in the order of INSERT_COLUMNS. */
export type PurchaseInsert = [
  id: string, terminalId: string, tsn: number, order: string, application: string, transactionType: number, amount: number,
  keyIndex: number, keyVersion: number, algorithm: string, issuer: string, cityCode: string, cardType: number, asn: string,
  epSerial: number, balance: number, overdraftLimit: number, basicData: string, initResponse: string, date: string, time: string,
  authorizedAt: number,
];

export const INSERT_COLUMNS = "id, terminal_id, tsn, order_no, application, transaction_type, amount, key_index, key_version, algorithm, issuer, " +
  "city_code, card_type, asn, ep_serial, balance, overdraft_limit, basic_data, init_response, date, time, authorized_at";
/** Records an authorization (`?` placeholders, in the order of PurchaseInsert). */
export const INSERT_PURCHASE_SQL = `INSERT INTO purchases (${INSERT_COLUMNS}, status) VALUES (${Array(22).fill("?").join(", ")}, 'authorized')`;
