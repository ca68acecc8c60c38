/**
 * Refunds after a failed vend, loaded back onto the card (docs/purse.md §2.9, §2.11, §4.8): the front-end checks the
 * card's load MAC1, makes MAC2 with the load key, and records the outcome. A refund is tied to its purchase (same
 * terminal, same card, at most its amount, at most once); when it cannot be loaded (card gone, no load key granted)
 * it is recorded as owed, for settlement. HTTP-free: server.ts maps requests to these calls.
 */
import { fromHex, toHex } from "../../../modules/bytes/bytes";
import { chinaDateTime } from "../../../modules/china-time/china-time";
import { TRANSACTION_TYPE_LOAD } from "../../../modules/purse/commands";
import { parseBasicData, type BasicData } from "../../../modules/purse/files";
import { parseInitializeForLoad, type InitializeForLoadResponse } from "../../../modules/purse/responses";
import type { RefundAuthorization, RefundAuthorizeRequest, RefundCompletion, RefundCompletionAnswer } from "../../../modules/frontend-client/refunds";
import { algorithmFromId, type PurseAlgorithm } from "../../purse-crypto/index";
import type { FrontendConfig } from "../config";
import { FrontendError, validation } from "../errors";
import type { CardKeyFactors, KeyStore, LoadSessionInput, MasterKeyRef } from "../keys/keystore";
import type { RefundRow, RefundStatus, RefundStore } from "./store";
import type { Client } from "../purchases/service";
import type { PurchaseRow, Store } from "../storage/store";

/** One refund as a clearing house needs it: credited ones with their TAC, and those owed to the cardholder. */
export interface RefundSettlementRecord {
  purchaseId: string;
  businessDay: string;
  status: RefundStatus;
  terminalId: string;
  application: string;
  asn: string;
  amount: number;
  transactionType: number;
  onlineSerial: number | null;
  date: string;
  time: string;
  tac: string | null;
  owedReason: string | null;
  order: string;
}

const SETTLED: ReadonlySet<RefundStatus> = new Set(["completed", "flagged", "owed"]);

function issuerFactor(basic: BasicData, raw: Uint8Array): Uint8Array {
  if (basic.layout === "tunion") return raw.slice(0, 8);
  return new Uint8Array([raw[2]!, raw[3]!, 0xff, 0, 0, 0, 0, 0]);
}

export class RefundService {
  readonly #store: Store;
  readonly #refunds: RefundStore;
  readonly #keys: KeyStore;
  readonly #now: () => number;
  readonly #log: (event: object, message: string) => void;

  constructor(config: FrontendConfig, store: Store, refunds: RefundStore, keys: KeyStore, log: (event: object, message: string) => void = () => {}) {
    this.#store = store;
    this.#refunds = refunds;
    this.#keys = keys;
    this.#now = config.clock ?? Date.now;
    this.#log = log;
  }

  /** The purchase a refund is for: it must exist and be this terminal's. */
  async #purchase(purchaseId: string, client: Client): Promise<PurchaseRow> {
    if (client.kind !== "terminal") throw new FrontendError("CLIENT_NOT_ALLOWED", 403, "only terminals may refund");
    const row = await this.#store.get(purchaseId);
    if (!row) throw new FrontendError("PURCHASE_NOT_FOUND", 404, `no purchase ${purchaseId}`);
    if (row.terminal_id !== client.commonName) throw new FrontendError("TERMINAL_MISMATCH", 403, "the purchase belongs to another terminal");
    return row;
  }

  /** Checks the card's MAC1 of INITIALIZE FOR LOAD and answers the MAC2 for CREDIT FOR LOAD. */
  async authorize(req: RefundAuthorizeRequest, client: Client): Promise<RefundAuthorization> {
    const terminalId = req.terminalId.toUpperCase();
    if (client.kind === "terminal" && terminalId !== client.commonName) throw new FrontendError("TERMINAL_MISMATCH", 403, `terminal ID ${terminalId} is not the one in the client certificate`);
    const purchase = await this.#purchase(req.purchaseId, client);
    if (!Number.isInteger(req.amount) || req.amount < 1) throw validation("amount must be a positive whole number of fen");
    const rawBasic = fromHex(req.basicData);
    let basic: BasicData;
    let init: InitializeForLoadResponse;
    try {
      basic = parseBasicData(rawBasic, req.application);
      init = parseInitializeForLoad(fromHex(req.initResponse));
    } catch (e) {
      throw new FrontendError("CARD_DATA_INVALID", 400, (e as Error).message);
    }
    if (basic.asn !== purchase.asn || basic.layout !== purchase.application) {
      throw new FrontendError("REFUND_CARD_MISMATCH", 409, "a refund goes back onto the card that paid");
    }
    if (purchase.status === "voided") throw new FrontendError("REFUND_NOT_ALLOWED", 409, "the purchase was not debited");
    if (req.amount > purchase.amount) throw new FrontendError("REFUND_OVER_AMOUNT", 422, `a refund is at most the purchase's ${purchase.amount} fen`);
    let algorithm: PurseAlgorithm;
    try {
      algorithm = algorithmFromId(init.algorithmId);
    } catch (e) {
      throw new FrontendError("ALGORITHM_NOT_SUPPORTED", 422, (e as Error).message);
    }
    const ref: MasterKeyRef = { keyIndex: req.keyIndex, keyVersion: init.keyVersion, algorithm };
    if (!this.#keys.authorizeLoad || !this.#keys.hasLoadKey?.(ref)) {
      throw new FrontendError("LOAD_KEY_NOT_GRANTED", 422, `the key system grants no load key for key index ${ref.keyIndex}, version ${ref.keyVersion}, ${algorithm}`);
    }
    if (await this.#refunds.credited(basic.layout, basic.asn, init.onlineSerial)) {
      throw new FrontendError("REPLAY", 409, `online serial ${init.onlineSerial} of this card was already credited`);
    }
    const existing = await this.#refunds.get(req.purchaseId);
    if (existing && !(existing.status === "authorized" && existing.online_serial === init.onlineSerial && existing.amount === req.amount)) {
      throw new FrontendError("ALREADY_REFUNDED", 409, `the purchase already has a refund (${existing.status})`);
    }
    const now = this.#now();
    const { date, time } = chinaDateTime(now);
    const input: LoadSessionInput = {
      random: init.random, onlineSerial: init.onlineSerial, balance: init.balance,
      fields: { amount: req.amount, type: TRANSACTION_TYPE_LOAD, terminalId: fromHex(terminalId), date, time },
    };
    const factors: CardKeyFactors = { diversificationFactor: basic.diversificationFactor, issuerFactor: issuerFactor(basic, rawBasic) };
    const made = await this.#keys.authorizeLoad(ref, factors, input, init.mac1);
    if (!made.mac1Valid || !made.mac2) throw new FrontendError("MAC1_INVALID", 422, "the card's load MAC1 does not verify: no MAC2 is made");
    const mac2 = toHex(made.mac2);
    if (existing) {
      // The first answer was lost: the card was not credited (its online serial has not moved), so a fresh MAC2 for
      // the card's fresh random replaces the old one, which no card session can use any more.
      const again = await this.#refunds.reauthorize(req.purchaseId, init.onlineSerial, { balance: init.balance, initResponse: toHex(init.raw), date, time, mac2 });
      if (!again) throw new FrontendError("ALREADY_REFUNDED", 409, "the purchase's refund moved on meanwhile");
    } else {
      const inserted = await this.#refunds.insert({
        purchaseId: req.purchaseId, terminalId, order: purchase.order_no, amount: req.amount, keyIndex: ref.keyIndex, keyVersion: ref.keyVersion,
        algorithm, onlineSerial: init.onlineSerial, balance: init.balance, basicData: toHex(rawBasic), initResponse: toHex(init.raw), date, time, mac2,
        status: "authorized", completion: null, answer: null, owedReason: null, createdAt: now, application: basic.layout, asn: basic.asn,
      });
      if (!inserted) throw new FrontendError("ALREADY_REFUNDED", 409, "the purchase already has a refund");
    }
    this.#log({ purchaseId: req.purchaseId, terminalId, amount: req.amount, asn: basic.asn, onlineSerial: init.onlineSerial }, "refund authorized");
    return { purchaseId: req.purchaseId, onlineSerial: init.onlineSerial, date, time, mac2 };
  }

  /**
   * The refund's outcome: credited (TAC checked), not credited (owed), or unknown (for reconciliation). Idempotent.
   * A credited load recovered by its TAC alone (`proof: "tac"`: the card's proof did not show our MAC2) is decided
   * the same way, by the TAC: valid = completed, no reconciliation; bad = flagged (docs/purse.md §9.1).
   */
  async complete(purchaseId: string, body: RefundCompletion, client: Client): Promise<RefundCompletionAnswer> {
    const purchase = await this.#purchase(purchaseId, client);
    const outcome = body.outcome;
    if (outcome === "credited" && typeof body.tac !== "string") throw validation("a credited refund needs its tac");
    if (outcome !== "credited" && "tac" in body && body.tac !== undefined) throw validation(`a ${outcome} refund carries no tac`);
    if (outcome === "credited" && body.proof !== undefined && body.proof !== "tac") throw validation("proof is \"tac\" or absent");
    const byTac = outcome === "credited" && body.proof === "tac";
    if (outcome === "not-credited" && (!Number.isInteger(body.amount) || body.amount < 1)) throw validation("a refund not credited names its amount");
    const canonical = JSON.stringify(outcome === "credited" ? { outcome, tac: body.tac.toUpperCase(), ...(byTac ? { proof: "tac" } : {}) }
      : outcome === "not-credited" ? { outcome, amount: body.amount, reason: body.reason } : { outcome });
    let row = await this.#refunds.get(purchaseId);
    if (!row && outcome !== "not-credited") throw new FrontendError("REFUND_NOT_FOUND", 404, `no refund of purchase ${purchaseId} was authorized`);
    if (!row && outcome === "not-credited") {
      // Never authorized (the card had gone, or no load key): the refund is owed. The INSERT itself keeps it to the
      // purchase's amount and to one per purchase.
      const now = this.#now();
      const { date, time } = chinaDateTime(now);
      const answer: RefundCompletionAnswer = { purchaseId, status: "owed", outcome, amount: body.amount };
      const inserted = await this.#refunds.insert({
        purchaseId, terminalId: purchase.terminal_id, order: purchase.order_no, amount: body.amount, keyIndex: null, keyVersion: null, algorithm: null,
        onlineSerial: null, balance: null, basicData: null, initResponse: null, date, time, mac2: null, status: "owed", completion: canonical,
        answer: JSON.stringify(answer), owedReason: body.reason, createdAt: now, application: purchase.application, asn: purchase.asn,
      });
      if (inserted) {
        this.#log({ purchaseId, amount: body.amount, reason: body.reason }, "refund owed");
        return answer;
      }
      if (purchase.status === "voided") throw new FrontendError("REFUND_NOT_ALLOWED", 409, "the purchase was not debited");
      row = await this.#refunds.get(purchaseId);
      if (!row) throw new FrontendError("REFUND_NOT_ALLOWED", 409, "the refund does not match its purchase");
    }
    const earlier = this.#repeat(row!, canonical);
    if (earlier) return earlier;
    const r = row!;
    let status: RefundStatus;
    let tacValid: boolean | undefined;
    if (outcome === "credited") {
      tacValid = await this.#verify(r, body.tac);
      status = tacValid ? "completed" : "flagged";
    } else if (outcome === "not-credited") {
      if (body.amount !== r.amount) throw validation(`the refund was authorized for ${r.amount} fen`);
      status = "owed";
    } else status = "reconciliation";
    const answer: RefundCompletionAnswer = { purchaseId, status, outcome, amount: r.amount, ...(tacValid === undefined ? {} : { tacValid }) };
    const now = this.#now();
    const done = await this.#refunds.settle(purchaseId, {
      status, tac: outcome === "credited" ? body.tac.toUpperCase() : null, tacValid: tacValid === undefined ? null : Number(tacValid),
      completion: canonical, answer: JSON.stringify(answer), owedReason: outcome === "not-credited" ? body.reason : null,
      completedAt: SETTLED.has(status) ? now : null,
    });
    if (!done) {
      const again = this.#repeat((await this.#refunds.get(purchaseId))!, canonical);
      if (again) return again;
      throw new FrontendError("ALREADY_SETTLED", 409, "the refund was settled meanwhile");
    }
    this.#log({ purchaseId, status, amount: r.amount, ...(byTac ? { proof: "tac" } : {}) }, byTac ? `refund ${status} by its TAC (the card's proof had no MAC2)` : `refund ${status}`);
    return answer;
  }

  /** The answer for a completion already recorded: the same one again, or 409 for a different one once settled. */
  #repeat(row: RefundRow, canonical: string): RefundCompletionAnswer | undefined {
    if (row.completion === canonical && row.answer) return JSON.parse(row.answer) as RefundCompletionAnswer;
    if (SETTLED.has(row.status)) throw new FrontendError("ALREADY_SETTLED", 409, `the refund is already ${row.status} with a different completion`);
    return undefined;
  }

  async #verify(r: RefundRow, tac: string): Promise<boolean> {
    if (!this.#keys.verifyLoad || r.key_index === null || r.key_version === null || r.algorithm === null || r.basic_data === null || r.init_response === null) return false;
    const rawBasic = fromHex(r.basic_data);
    const basic = parseBasicData(rawBasic, r.application);
    const init = parseInitializeForLoad(fromHex(r.init_response));
    try {
      return await this.#keys.verifyLoad({ keyIndex: r.key_index, keyVersion: r.key_version, algorithm: r.algorithm },
        { diversificationFactor: basic.diversificationFactor, issuerFactor: issuerFactor(basic, rawBasic) },
        { random: init.random, onlineSerial: init.onlineSerial, balance: init.balance,
          fields: { amount: r.amount, type: TRANSACTION_TYPE_LOAD, terminalId: fromHex(r.terminal_id), date: r.date, time: r.time } }, fromHex(tac));
    } catch {
      // The key went away since the authorization: the card may hold the money all the same, so it is flagged, not refused.
      return false;
    }
  }

  async view(purchaseId: string, client: Client): Promise<RefundCompletionAnswer & { onlineSerial: number | null }> {
    await this.#purchase(purchaseId, client);
    const r = await this.#refunds.get(purchaseId);
    if (!r) throw new FrontendError("REFUND_NOT_FOUND", 404, `no refund of purchase ${purchaseId}`);
    await this.#store.durable();
    const outcome = r.completion ? (JSON.parse(r.completion) as { outcome: RefundCompletionAnswer["outcome"] }).outcome : undefined;
    return { purchaseId, status: r.status, amount: r.amount, onlineSerial: r.online_serial, ...(outcome ? { outcome } : {}) } as RefundCompletionAnswer & { onlineSerial: number | null };
  }

  async settlement(businessDay: string): Promise<RefundSettlementRecord[]> {
    return (await this.#refunds.settlement(businessDay)).map((r) => ({
      purchaseId: r.purchase_id, businessDay, status: r.status, terminalId: r.terminal_id, application: r.application, asn: r.asn, amount: r.amount,
      transactionType: TRANSACTION_TYPE_LOAD, onlineSerial: r.online_serial, date: r.date, time: r.time, tac: r.tac, owedReason: r.owed_reason, order: r.order_no,
    }));
  }
}
