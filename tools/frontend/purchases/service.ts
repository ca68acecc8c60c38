/**
 * The front-end's purchases: authorization (checks, TSN, date/time, MAC1 and the expected MAC2), completion (MAC2 and
 * TAC verification), status, reconciliation of authorizations that never completed, and the settlement export.
 * HTTP-free: server.ts maps requests to these calls and FrontendError to 4xx answers.
 */
import { randomUUID } from "node:crypto";
import { fromHex, toHex } from "../../../modules/bytes/bytes";
import { parseBasicData, type BasicData } from "../../../modules/purse/files";
import { parseInitializeForPurchase, type InitializeForPurchaseResponse } from "../../../modules/purse/responses";
import { algorithmFromId, type PurchaseFields, type PurseAlgorithm } from "../../purse-crypto/index";
import { chinaDateTime } from "../../../modules/china-time/china-time";
import type { Application, FrontendConfig } from "../config";
import { decline, FrontendError, validation } from "../errors";
import type { Store } from "../storage/store";
import type { Outcome, PurchaseRow, PurchaseStatus } from "./rows";

export type { Outcome, PurchaseStatus };
import type { Authorization, AuthorizeRequest } from "../../../modules/frontend-client/client";
import type { CardKeyFactors, KeyStore, MasterKeyRef, PurchaseSessionInput } from "../keys/keystore";
import { TerminalLimits } from "../limits/service";
import { Hotlist } from "./hotlist";

// The wire shapes of an authorization are defined once, by the terminal's own client.
export type { AuthorizeRequest };
export type AuthorizeAnswer = Authorization;


export interface CompletionRequest {
  outcome: Outcome;
  mac2?: string;
  tac?: string;
}


export interface CompletionAnswer {
  purchaseId: string;
  status: PurchaseStatus;
  outcome: Outcome;
  tsn: number;
  mac2Valid?: boolean;
  tacValid?: boolean;
}

/** What GET /v1/purchases/{id} answers. */
export interface PurchaseView {
  purchaseId: string;
  status: PurchaseStatus;
  terminalId: string;
  tsn: number;
  order: string;
  amount: number;
  transactionType: number;
  application: Application;
  asn: string;
  epSerial: number;
  date: string;
  time: string;
  authorizedAt: string;
  outcome?: Outcome;
  completedAt?: string;
  reconciliationReason?: string;
  mac2Valid?: boolean;
  tacValid?: boolean;
}

/** One completed purchase as a clearing house needs it. */
export interface SettlementRecord {
  purchaseId: string;
  businessDay: string;
  terminalId: string;
  tsn: number;
  application: Application;
  issuer: string;
  cityCode: string;
  cardType: number;
  asn: string;
  epSerial: number;
  transactionType: number;
  amount: number;
  balanceBefore: number;
  date: string;
  time: string;
  tac: string;
  keyIndex: number;
  keyVersion: number;
  algorithm: PurseAlgorithm;
  order: string;
}

export const SETTLEMENT_FIELDS: (keyof SettlementRecord)[] = [
  "purchaseId", "businessDay", "terminalId", "tsn", "application", "issuer", "cityCode", "cardType", "asn", "epSerial",
  "transactionType", "amount", "balanceBefore", "date", "time", "tac", "keyIndex", "keyVersion", "algorithm", "order",
];


const SETTLED: ReadonlySet<PurchaseStatus> = new Set(["completed", "voided", "flagged"]);
export const MAX_TSN = 0xffffffff;

/** Who is calling, from the client certificate. */
export interface Client {
  commonName: string;
  kind: "terminal" | "operator" | "other";
}

/**
 * A UUID in the version-7 layout (48-bit milliseconds, then random): unguessable, and ordered by time so that new
 * purchases land at the end of the primary-key index instead of on a random page.
 */
export function purchaseIdentifier(epochMs: number): string {
  // randomUUID draws from a cached pool of random bytes; its first 48 bits are replaced by the time.
  const random = randomUUID();
  const t = (Math.max(0, Math.floor(epochMs)) % 2 ** 48).toString(16).padStart(12, "0");
  return `${t.slice(0, 8)}-${t.slice(8)}-7${random.slice(15)}`;
}

function issuerFactor(basic: BasicData, raw: Uint8Array): Uint8Array {
  if (basic.layout === "tunion") return raw.slice(0, 8);
  return new Uint8Array([raw[2]!, raw[3]!, 0xff, 0, 0, 0, 0, 0]);
}

export class PurchaseService {
  readonly #config: FrontendConfig;
  readonly #store: Store;
  readonly #keys: KeyStore;
  readonly #now: () => number;
  readonly #maxAmount: number;
  readonly #hotlist: Hotlist;
  readonly #cardTypes: Set<number> | null;
  readonly #timeoutMs: number;
  readonly #log: (event: object, message: string) => void;
  readonly #limits: TerminalLimits;

  constructor(config: FrontendConfig, store: Store, keys: KeyStore, log: (event: object, message: string) => void = () => {}) {
    this.#config = config;
    this.#store = store;
    this.#keys = keys;
    this.#now = config.clock ?? Date.now;
    this.#maxAmount = config.limits?.maxAmount ?? 100_000;
    this.#hotlist = new Hotlist(config.hotlist ?? [], config.hotlistFile);
    this.#cardTypes = config.acceptedCardTypes ? new Set(config.acceptedCardTypes) : null;
    this.#timeoutMs = config.reconciliationTimeoutMs ?? 600_000;
    this.#log = log;
    this.#limits = new TerminalLimits(config, store);
  }

  get reconciliationTimeoutMs(): number {
    return this.#timeoutMs;
  }

  #served(basic: BasicData): boolean {
    return this.#config.cities.some((c) => (c.cityCode === "*" || c.cityCode.toUpperCase() === basic.cityCode) &&
      (!c.applications || c.applications.includes(basic.layout)));
  }

  async authorize(req: AuthorizeRequest, client: Client): Promise<AuthorizeAnswer> {
    const terminalId = req.terminalId.toUpperCase();
    if (client.kind !== "terminal") throw new FrontendError("CLIENT_NOT_ALLOWED", 403, "only terminals may authorize purchases");
    if (terminalId !== client.commonName) throw new FrontendError("TERMINAL_MISMATCH", 403, `terminal ID ${terminalId} is not the one in the client certificate`);
    if (!Number.isInteger(req.amount) || req.amount < 1) throw validation("amount must be a positive whole number of fen");
    if (req.amount > this.#maxAmount) throw decline("AMOUNT_OVER_LIMIT", `amount ${req.amount} is over the limit of ${this.#maxAmount} fen per purchase`);
    this.#limits.checkAmount(req.amount);
    // The rate is of real time (monotonic), not the configured clock, which tests move and a wall clock can jump.
    this.#limits.admit(terminalId, performance.now());
    const rawBasic = fromHex(req.basicData);
    const rawInit = fromHex(req.initResponse);
    let basic: BasicData;
    let init: InitializeForPurchaseResponse;
    try {
      basic = parseBasicData(rawBasic, req.application);
      init = parseInitializeForPurchase(rawInit);
    } catch (e) {
      throw new FrontendError("CARD_DATA_INVALID", 400, (e as Error).message);
    }
    if (!this.#served(basic)) throw decline("CITY_NOT_SERVED", `city ${basic.cityCode} (${basic.layout}) is not served by this front-end`);
    if (!basic.enabled) throw decline("CARD_NOT_ENABLED", "the application is not enabled");
    if (this.#cardTypes && !this.#cardTypes.has(basic.cardType)) throw decline("CARD_TYPE_NOT_ACCEPTED", `card type ${basic.cardType} is not accepted here`);
    const hot = this.#hotlist.match(basic);
    if (hot) {
      // Matched on the key diversification factor (./hotlist.ts): an ASN that differs from the listed one only in
      // digits no key binds is the listed card to the key system, and is said so in the log.
      this.#log({ terminalId, asn: basic.asn, hotlisted: hot.listed, factor: hot.factor, exact: hot.exact },
        hot.exact ? `card ${basic.asn} refused: hotlisted`
          : `card ${basic.asn} refused: its key diversification factor ${hot.factor} is that of hotlisted ASN ${hot.listed} (only digits no key binds differ)`);
      throw decline("CARD_HOTLISTED", "the card is on the hotlist");
    }
    const now = this.#now();
    const { date, time } = chinaDateTime(now);
    if (basic.startDate > date) throw decline("CARD_NOT_YET_VALID", `the card is valid from ${basic.startDate}`);
    if (basic.expiryDate < date) throw decline("CARD_EXPIRED", `the card expired on ${basic.expiryDate}`);
    if (init.balance + init.overdraftLimit < req.amount) throw decline("INSUFFICIENT_BALANCE", "balance and overdraft limit do not cover the amount");
    let algorithm: PurseAlgorithm;
    try {
      algorithm = algorithmFromId(init.algorithmId);
    } catch (e) {
      throw decline("ALGORITHM_NOT_SUPPORTED", (e as Error).message);
    }
    const ref: MasterKeyRef = { keyIndex: req.keyIndex, keyVersion: init.keyVersion, algorithm };
    if (!this.#keys.has(ref)) throw decline("KEY_NOT_FOUND", `no master key for key index ${ref.keyIndex}, version ${ref.keyVersion}, ${algorithm}`);
    // The replay check and the TSN in one storage call. The TSN is spent whether or not the rest succeeds: a TSN is
    // never handed out twice, gaps are harmless.
    const tsn = await this.#store.reserveTsnUnlessSpent(terminalId, basic.layout, basic.asn, init.epSerial);
    if (tsn === undefined) {
      throw new FrontendError("REPLAY", 409, `EP serial ${init.epSerial} of this card was already used by a completed purchase`);
    }
    if (tsn > MAX_TSN) throw new FrontendError("TSN_EXHAUSTED", 503, `terminal ${terminalId} has used every TSN`);
    const terminalBytes = fromHex(terminalId);
    const input: PurchaseSessionInput = {
      random: init.random, epSerial: init.epSerial, tsn,
      fields: { amount: req.amount, type: req.transactionType, terminalId: terminalBytes, date, time },
    };
    const macs = await this.#keys.authorize(ref, this.#factors(basic, rawBasic), input);
    const purchaseId = purchaseIdentifier(now);
    // Within the terminal's daily ceiling, checked by the database in the insert's own transaction (limits/store.ts).
    await this.#limits.record([purchaseId, terminalId, tsn, req.order, basic.layout, req.transactionType, req.amount, ref.keyIndex, ref.keyVersion,
      algorithm, basic.issuer, basic.cityCode, basic.cardType, basic.asn, init.epSerial, init.balance, init.overdraftLimit,
      toHex(rawBasic), toHex(rawInit), date, time, now]);
    this.#log({ purchaseId, terminalId, tsn, amount: req.amount, asn: basic.asn, epSerial: init.epSerial }, "purchase authorized");
    return { purchaseId, tsn, date, time, mac1: toHex(macs.mac1), mac2: toHex(macs.mac2) };
  }

  #factors(basic: BasicData, raw: Uint8Array): CardKeyFactors {
    return { diversificationFactor: basic.diversificationFactor, issuerFactor: issuerFactor(basic, raw) };
  }

  async #row(purchaseId: string, client: Client): Promise<PurchaseRow> {
    const row = await this.#store.get(purchaseId);
    if (!row) throw new FrontendError("PURCHASE_NOT_FOUND", 404, `no purchase ${purchaseId}`);
    if (client.kind !== "operator" && row.terminal_id !== client.commonName) {
      throw new FrontendError("TERMINAL_MISMATCH", 403, "the purchase belongs to another terminal");
    }
    return row;
  }

  /** The answer for a completion that was already recorded: the same one again, or 409 for a different one. */
  async #repeat(row: PurchaseRow, canonical: string): Promise<CompletionAnswer | null> {
    const recorded = row.completion !== null && (SETTLED.has(row.status) || row.status === "reconciliation");
    if (recorded && row.completion === canonical) {
      await this.#store.durable();
      return JSON.parse(row.answer!) as CompletionAnswer;
    }
    if (!SETTLED.has(row.status)) return null;
    // Never dropped: a conflicting report may mean money moved after all, so it is kept and the purchase marked for review.
    await this.#store.markConflict(row.id, this.#now(), canonical);
    throw new FrontendError("ALREADY_SETTLED", 409, `purchase is already ${row.status} with a different completion`);
  }

  async complete(purchaseId: string, body: CompletionRequest, client: Client): Promise<CompletionAnswer> {
    if (client.kind !== "terminal") throw new FrontendError("CLIENT_NOT_ALLOWED", 403, "only terminals may complete purchases");
    const outcome = body.outcome;
    if (outcome === "debited" && (body.mac2 === undefined || body.tac === undefined)) throw validation("a debited completion needs mac2 and tac");
    if (outcome !== "debited" && (body.mac2 !== undefined || body.tac !== undefined)) throw validation(`a ${outcome} completion carries no mac2 or tac`);
    const canonical = JSON.stringify(outcome === "debited" ? { outcome, mac2: body.mac2!.toUpperCase(), tac: body.tac!.toUpperCase() } : { outcome });
    const row = await this.#row(purchaseId, client);
    const earlier = await this.#repeat(row, canonical);
    if (earlier) return earlier;
    let verdict: { mac2Valid: boolean; tacValid: boolean } | undefined;
    if (outcome === "debited") {
      const rawBasic = fromHex(row.basic_data);
      const basic = parseBasicData(rawBasic, row.application);
      const init = parseInitializeForPurchase(fromHex(row.init_response));
      const fields: PurchaseFields = { amount: row.amount, type: row.transaction_type, terminalId: fromHex(row.terminal_id), date: row.date, time: row.time };
      try {
        verdict = await this.#keys.verify({ keyIndex: row.key_index, keyVersion: row.key_version, algorithm: row.algorithm }, this.#factors(basic, rawBasic),
          { random: init.random, epSerial: init.epSerial, tsn: row.tsn, fields }, { mac2: fromHex(body.mac2!), tac: fromHex(body.tac!) });
      } catch (e) {
        // A key service that could not answer decides nothing: the terminal retries (503), nothing is flagged.
        if (e instanceof FrontendError && e.statusCode === 503) throw e;
        // The key went away (or the key store failed) since the authorization: money may have moved all the same, so
        // the completion is recorded as unverified rather than refused.
        this.#log({ purchaseId, code: (e as { code?: string }).code }, "completion could not be verified");
        verdict = { mac2Valid: false, tacValid: false };
      }
    }
    const now = this.#now();
    let status: PurchaseStatus;
    if (outcome === "debited") status = verdict!.mac2Valid && verdict!.tacValid ? "completed" : "flagged";
    else status = outcome === "not-debited" ? "voided" : "reconciliation";
    const answer: CompletionAnswer = { purchaseId, status, outcome, tsn: row.tsn };
    if (verdict) Object.assign(answer, verdict);
    // The row holds the completion; the event log keeps what needs a person: failed verification, unknown outcomes.
    const recorded = await this.#store.settle(purchaseId, {
      status, outcome, mac2: outcome === "debited" ? body.mac2!.toUpperCase() : null, tac: outcome === "debited" ? body.tac!.toUpperCase() : null,
      mac2Valid: verdict ? Number(verdict.mac2Valid) : null, tacValid: verdict ? Number(verdict.tacValid) : null,
      completion: canonical, answer: JSON.stringify(answer), completedAt: SETTLED.has(status) ? now : null,
      reason: status === "reconciliation" ? "outcome-unknown" : null, review: status === "flagged", at: now,
      event: status === "flagged" || status === "reconciliation" ? status : null,
    });
    if (!recorded) {
      // Another completion of the same purchase landed while the key store worked (here or in another process).
      return (await this.#repeat((await this.#store.get(purchaseId))!, canonical))!;
    }
    if (status === "voided") {
      // Nothing was debited: the amount goes back to the terminal's daily ceiling.
      await this.#limits.release(row.terminal_id, row.date, row.amount).catch((e: Error) => this.#log({ purchaseId, err: e.message }, "daily total not released"));
    }
    if (answer.status === "flagged") this.#log({ purchaseId, terminalId: row.terminal_id, tsn: row.tsn, ...verdict }, "completion failed verification: flagged");
    return answer;
  }

  async view(purchaseId: string, client: Client): Promise<PurchaseView> {
    const row = await this.#row(purchaseId, client);
    await this.#store.durable();
    const v: PurchaseView = {
      purchaseId: row.id, status: row.status, terminalId: row.terminal_id, tsn: row.tsn, order: row.order_no, amount: row.amount,
      transactionType: row.transaction_type, application: row.application, asn: row.asn, epSerial: row.ep_serial, date: row.date, time: row.time,
      authorizedAt: new Date(row.authorized_at).toISOString(),
    };
    if (row.outcome) v.outcome = row.outcome;
    if (row.completed_at !== null) v.completedAt = new Date(row.completed_at).toISOString();
    if (row.reconciliation_reason) v.reconciliationReason = row.reconciliation_reason;
    if (row.mac2_valid !== null) v.mac2Valid = row.mac2_valid === 1;
    if (row.tac_valid !== null) v.tacValid = row.tac_valid === 1;
    return v;
  }

  /** Marks authorizations older than the reconciliation timeout; returns how many. */
  async sweepReconciliation(): Promise<number> {
    const now = this.#now();
    const marked = await this.#store.sweep(now - this.#timeoutMs, now);
    if (marked) this.#log({ count: marked }, "authorizations without completion marked for reconciliation");
    return marked;
  }

  /** Completed purchases of one business day (the CST transaction date), ordered by terminal and TSN. */
  async settlement(businessDay: string): Promise<SettlementRecord[]> {
    return settlementRecords(await this.#store.settlement(businessDay), businessDay);
  }
}

export function settlementRecords(rows: unknown[], businessDay: string): SettlementRecord[] {
  return (rows as PurchaseRow[]).map((r) => ({
    purchaseId: r.id, businessDay, terminalId: r.terminal_id, tsn: r.tsn, application: r.application, issuer: r.issuer, cityCode: r.city_code,
    cardType: r.card_type, asn: r.asn, epSerial: r.ep_serial, transactionType: r.transaction_type, amount: r.amount, balanceBefore: r.balance,
    date: r.date, time: r.time, tac: r.tac!, keyIndex: r.key_index, keyVersion: r.key_version, algorithm: r.algorithm, order: r.order_no,
  }));
}

/**
 * A cell a spreadsheet would read as a formula (a leading =, +, -, @, tab or CR; OWASP "CSV injection") gets a leading
 * apostrophe, which spreadsheets show as text. The order number comes from the terminal, or the vending controller
 * behind it, so it is not ours to trust. Only the CSV is changed: the JSONL keeps every value as it is.
 */
export function neutraliseFormula(text: string): string {
  return /^[=+\-@\t\r]/.test(text) ? `'${text}` : text;
}

function csvField(value: unknown): string {
  // A number (a negative balance before) is a value, not a formula; text is what a terminal chose.
  const text = typeof value === "string" ? neutraliseFormula(value) : String(value);
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

export function formatSettlement(records: SettlementRecord[], format: "jsonl" | "csv"): string {
  if (format === "jsonl") return records.map((r) => `${JSON.stringify(r)}\n`).join("");
  const lines = [SETTLEMENT_FIELDS.join(",")];
  for (const r of records) lines.push(SETTLEMENT_FIELDS.map((f) => csvField(r[f])).join(","));
  return `${lines.join("\r\n")}\r\n`;
}

/** Reads a business day's settlement straight from a journal file (the `settle` command; safe while the server runs). */
export function settlementFromDatabase(db: import("better-sqlite3").Database, businessDay: string): SettlementRecord[] {
  return settlementRecords(db.prepare("SELECT * FROM purchases WHERE date = ? AND status = 'completed' ORDER BY terminal_id, tsn").all(businessDay), businessDay);
}
