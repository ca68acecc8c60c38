import { ApduError } from "../iso7816/errors";
import { SW } from "../iso7816/status";
import { transmit, transmitOk, type Transceiver } from "../iso7816/transmit";
import {
  AID_CITY_UNION, AID_TUNION, SFI_BASIC_DATA, SFI_TRANSACTION_LOG, debitForPurchase, getBalance, getTransactionProve,
  initializeForPurchase, readBinary, readRecord, selectByName, type DebitForPurchaseRequest, type InitializeForPurchaseRequest,
  creditForLoad, initializeForLoad, type CreditForLoadRequest, type InitializeForLoadRequest,
} from "./commands";
import { PurseFormatError } from "./errors";
import { BASIC_DATA_LENGTH, parseBasicData, parseTransactionRecord, type BasicData, type BasicDataLayout, type TransactionRecord } from "./files";
import {
  parseBalance, parseDebitForPurchase, parseFci, parseInitializeForPurchase, parseTransactionProve,
  type DebitForPurchaseResponse, type FileControlInformation, type InitializeForPurchaseResponse, type TransactionProveResponse,
  parseCreditForLoad, parseInitializeForLoad, type InitializeForLoadResponse,
} from "./responses";

export interface PurseApplication {
  layout: BasicDataLayout;
  aid: Uint8Array;
}

export const TUNION_APPLICATION: PurseApplication = Object.freeze({ layout: "tunion", aid: AID_TUNION });
export const CITY_UNION_APPLICATION: PurseApplication = Object.freeze({ layout: "cityunion", aid: AID_CITY_UNION });

/** The FCI of a SELECT answer; one that does not parse is kept as `malformed`, since nothing depends on it (READ BINARY does the job). */
function fciOf(data: Uint8Array): FileControlInformation {
  try {
    return parseFci(data);
  } catch (error) {
    if (error instanceof PurseFormatError) return { malformed: error.message };
    throw error;
  }
}

/**
 * File 0x15 as the FCI's tag 9F0C carries it (docs/fci-fast-path.md): the 30 bytes parsed in `layout`, or the reason
 * they cannot stand in for READ BINARY (no FCI, no 9F0C, another length, fields that do not parse).
 */
export function basicDataFromFci(fci: FileControlInformation, layout: BasicDataLayout): { basic: BasicData } | { reason: string } {
  if (fci.malformed) return { reason: fci.malformed };
  const value = fci.issuerDiscretionary;
  if (!value) return { reason: "the FCI has no 9F0C" };
  if (value.length !== BASIC_DATA_LENGTH) return { reason: `9F0C holds ${value.length} bytes, not ${BASIC_DATA_LENGTH}` };
  try {
    return { basic: parseBasicData(value, layout) };
  } catch (error) {
    if (error instanceof PurseFormatError) return { reason: `9F0C: ${error.message}` };
    throw error;
  }
}

/** The electronic-purse commands of one card, over any transceiver (a PN532, a virtual card). */
export class PurseCard {
  readonly #card: Transceiver;
  application: PurseApplication | undefined;

  constructor(card: Transceiver) {
    this.#card = card;
  }

  /** Tries the applications in the configured order; a card without one (6A82) moves on to the next. */
  async selectApplication(order: readonly PurseApplication[]): Promise<{ application: PurseApplication; fci: FileControlInformation }> {
    let last: ApduError | undefined;
    for (const application of order) {
      const response = await transmit(this.#card, selectByName(application.aid));
      if (response.sw === SW.OK) {
        this.application = application;
        return { application, fci: fciOf(response.data) };
      }
      last = new ApduError(response.sw, "SELECT");
      if (response.sw !== SW.FILE_NOT_FOUND && response.sw !== SW.FUNCTION_NOT_SUPPORTED) throw last;
    }
    throw last ?? new ApduError(SW.FILE_NOT_FOUND, "SELECT");
  }

  async readBasicData(layout = this.application?.layout ?? "tunion"): Promise<BasicData> {
    const response = await transmitOk(this.#card, readBinary(SFI_BASIC_DATA, 0, 30), "READ BINARY 0x15");
    return parseBasicData(response.data, layout);
  }

  async getBalance(): Promise<number> {
    return parseBalance((await transmitOk(this.#card, getBalance(), "GET BALANCE")).data);
  }

  async initializeForPurchase(request: InitializeForPurchaseRequest): Promise<InitializeForPurchaseResponse> {
    const response = await transmitOk(this.#card, initializeForPurchase(request), "INITIALIZE FOR PURCHASE");
    return parseInitializeForPurchase(response.data);
  }

  async debitForPurchase(request: DebitForPurchaseRequest): Promise<DebitForPurchaseResponse> {
    const response = await transmitOk(this.#card, debitForPurchase(request), "DEBIT FOR PURCHASE");
    return parseDebitForPurchase(response.data);
  }

  async initializeForLoad(request: InitializeForLoadRequest): Promise<InitializeForLoadResponse> {
    const response = await transmitOk(this.#card, initializeForLoad(request), "INITIALIZE FOR LOAD");
    return parseInitializeForLoad(response.data);
  }

  async creditForLoad(request: CreditForLoadRequest): Promise<{ tac: Uint8Array }> {
    const response = await transmitOk(this.#card, creditForLoad(request), "CREDIT FOR LOAD");
    return parseCreditForLoad(response.data);
  }

  /** Returns undefined on 9406: the card has no MAC/TAC for that serial, so that transaction did not happen. */
  async getTransactionProve(transactionType: number, serial: number): Promise<TransactionProveResponse | undefined> {
    const response = await transmitOk(this.#card, getTransactionProve(transactionType, serial), "GET TRANSACTION PROVE", [SW.MAC_TAC_NOT_AVAILABLE]);
    if (response.sw === SW.MAC_TAC_NOT_AVAILABLE) return undefined;
    return parseTransactionProve(response.data);
  }

  /** Reads the transaction log, newest first, until the card says there are no more records. */
  async readTransactionLog(maxRecords = 10): Promise<TransactionRecord[]> {
    const records: TransactionRecord[] = [];
    for (let n = 1; n <= maxRecords; n++) {
      const response = await transmit(this.#card, readRecord(SFI_TRANSACTION_LOG, n, 23));
      if (response.sw === SW.RECORD_NOT_FOUND) break;
      if (response.sw !== SW.OK) throw new ApduError(response.sw, "READ RECORD 0x18");
      records.push(parseTransactionRecord(response.data));
    }
    return records;
  }
}
