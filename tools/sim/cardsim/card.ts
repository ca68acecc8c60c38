/**
 * A virtual electronic-purse CPU card (PBOC / JT/T 978 EP application) that answers APDUs as a real card does.
 * It is the ground truth that the PN532 emulator hosts and that tests and the simulation pay with.
 */
import { randomBytes } from "node:crypto";
import { readFileSync, renameSync, writeFileSync } from "node:fs";
import { decodeCommand, encodeResponse, type CommandApdu } from "../../../modules/iso7816/apdu";
import { concatBytes, fromHex, readUint, toHex, uint32Bytes } from "../../../modules/bytes/bytes";
import { SW } from "../../../modules/iso7816/status";
import { encodeBalance } from "../../../modules/purse/amount";
import { decodeBcd, isValidDate, isValidTime } from "../../../modules/purse/bcd";
import { AID_CITY_UNION, AID_TUNION, SFI_BASIC_DATA, SFI_HOLDER_DATA, SFI_MANAGEMENT_DATA, SFI_TRANSACTION_LOG } from "../../../modules/purse/commands";
import {
  algorithmId, loadMac1, loadMac2, loadSessionKey, loadTac, macEquals, purchaseMac1, purchaseMac2, purchaseSessionKey, purchaseTac,
  type PurseAlgorithm,
} from "../../purse-crypto/index";
import { CodedError } from "../../../modules/errors/errors";

/** The card left the field: thrown instead of an answer, the way a reader sees a missing response. */
export class CardRemovedError extends CodedError {
  constructor(message = "card removed from the field") {
    super("CARD_REMOVED", message);
  }
}

export type TearWhen = "before" | "after";

/** Where to pull the card: before it processes a command (nothing happens), or after it commits but before it answers. */
export interface TearPoint {
  /** Instruction byte (0x54 = DEBIT) or a name. */
  command: number | "select" | "read" | "balance" | "init" | "debit" | "prove" | "credit";
  when: TearWhen;
  /** Pull on the n-th matching command (1 = the next one). */
  occurrence?: number;
}

const COMMAND_INS: { [name: string]: number } = { select: 0xa4, read: 0xb0, balance: 0x5c, init: 0x50, debit: 0x54, prove: 0x5a, credit: 0x52 };

export interface ApplicationState {
  layout: "tunion" | "cityunion";
  aid: string;
  algorithm: PurseAlgorithm;
  keyIndex: number;
  keyVersion: number;
  /** The card's own diversified purchase key (DPK) and TAC key (DTK), hex. */
  dpk: string;
  dtk: string;
  basicData: string;
  holderData: string;
  managementData: string;
  balance: number;
  overdraftLimit: number;
  /** The next EP offline transaction serial; INIT returns it and a successful DEBIT moves it on. */
  epSerial: number;
  /** Records of file 0x18, newest first, hex. */
  log: string[];
  /** What GET TRANSACTION PROVE can still give: the last purchase's serial, type, MAC2 and TAC. */
  lastTransaction: { epSerial: number; type: number; mac2: string; tac: string } | null;
  /** The card's diversified load key (DLK), hex; a card without one refuses INITIALIZE FOR LOAD (9403). */
  dlk?: string;
  /** The next online (load) serial; INITIALIZE FOR LOAD returns it and a CREDIT FOR LOAD moves it on. */
  onlineSerial?: number;
  /** What GET TRANSACTION PROVE type 02 can still give: the last load's online serial, the MAC2 it took, its TAC. */
  lastLoad?: { onlineSerial: number; mac2: string; tac: string } | null;
  /** The largest balance the purse may hold, fen: a load past it is refused (6985). */
  maxBalance?: number;
}

export interface CardState {
  uid: string;
  atqa: string;
  sak: number;
  /** ATS without its length byte TL. */
  ats: string;
  applications: ApplicationState[];
}

export interface VirtualCardOptions {
  /** Where to keep the state across runs (JSON); written after every change. */
  persistPath?: string;
  /** Answer INIT with 61 0F and wait for GET RESPONSE, as some cards do (exercises 61xx handling). */
  getResponse?: boolean;
  /** Random source for INIT (tests fix it to reproduce vectors). */
  random?: () => Uint8Array;
  /**
   * What GET TRANSACTION PROVE type 02 (a load) answers in its first four bytes: "mac2" (default) the MAC2 the card
   * accepted; "zeros" 00000000, as card OSes do that keep no MAC2 for a load (docs/purse.md §9.1). The TAC follows.
   */
  loadProof?: "mac2" | "zeros";
}

interface PurchaseSession {
  app: ApplicationState;
  type: number;
  amount: number;
  terminalId: Uint8Array;
  epSerial: number;
  random: Uint8Array;
}

interface LoadSession {
  app: ApplicationState;
  amount: number;
  terminalId: Uint8Array;
  onlineSerial: number;
  random: Uint8Array;
  balance: number;
}

const LOG_DEPTH = 10;
const DEFAULT_MAX_BALANCE = 100_000_000;

/** Card processing times per command, from a real card's log (docs/purse.md §8). */
export const CARD_PROCESSING_MS: { readonly [ins: number]: number } = Object.freeze({
  0xa4: 15, 0xb0: 15, 0xb2: 15, 0x5c: 15, 0x50: 15, 0x54: 78, 0x52: 78, 0x5a: 15, 0xc0: 15,
});

export class VirtualCard {
  state: CardState;
  readonly #options: VirtualCardOptions;
  #present = true;
  #selected: ApplicationState | undefined;
  #session: PurchaseSession | undefined;
  #load: LoadSession | undefined;
  #pendingResponse: Uint8Array | undefined;
  #tears: (TearPoint & { seen: number })[] = [];
  /** Every APDU and its answer, for tests that check what went over the air. */
  readonly exchanges: { command: Uint8Array; response?: Uint8Array; torn?: TearWhen }[] = [];

  constructor(state: CardState, options: VirtualCardOptions = {}) {
    this.state = structuredClone(state);
    this.#options = options;
  }

  static load(path: string, options: VirtualCardOptions = {}): VirtualCard {
    const state = JSON.parse(readFileSync(path, "utf8")) as CardState;
    return new VirtualCard(state, { ...options, persistPath: path });
  }

  save(path = this.#options.persistPath): void {
    if (!path) return;
    const tmp = `${path}.tmp`;
    writeFileSync(tmp, JSON.stringify(this.state, null, 2));
    renameSync(tmp, path);
  }

  get uid(): Uint8Array { return fromHex(this.state.uid); }
  get atqa(): Uint8Array { return fromHex(this.state.atqa); }
  get sak(): number { return this.state.sak; }
  get ats(): Uint8Array { return fromHex(this.state.ats); }
  get present(): boolean { return this.#present; }

  /** Brings the card (back) into the field: a fresh activation, nothing selected, no purchase in progress. */
  place(): void {
    this.#present = true;
    this.#selected = undefined;
    this.#session = undefined;
    this.#load = undefined;
    this.#pendingResponse = undefined;
  }

  remove(): void {
    this.#present = false;
    this.#session = undefined;
  }

  armTear(point: TearPoint): void {
    this.#tears.push({ ...point, seen: 0 });
  }

  clearTears(): void {
    this.#tears = [];
  }

  application(layout: "tunion" | "cityunion"): ApplicationState {
    const app = this.state.applications.find((a) => a.layout === layout);
    if (!app) throw new Error(`card has no ${layout} application`);
    return app;
  }

  #tearFor(ins: number, when: TearWhen): boolean {
    for (const tear of this.#tears) {
      const wanted = typeof tear.command === "number" ? tear.command : COMMAND_INS[tear.command];
      if (wanted !== ins || tear.when !== when) continue;
      if (++tear.seen >= (tear.occurrence ?? 1)) {
        this.#tears.splice(this.#tears.indexOf(tear), 1);
        return true;
      }
    }
    return false;
  }

  /** Processes one APDU synchronously; throws CardRemovedError when the card is out of the field or torn. */
  process(command: Uint8Array): Uint8Array {
    if (!this.#present) throw new CardRemovedError();
    const entry: { command: Uint8Array; response?: Uint8Array; torn?: TearWhen } = { command: command.slice() };
    this.exchanges.push(entry);
    const ins = command.length > 1 ? command[1]! : -1;
    if (this.#tearFor(ins, "before")) {
      entry.torn = "before";
      this.remove();
      throw new CardRemovedError("card pulled before it processed the command");
    }
    const response = this.#dispatch(command);
    if (this.#tearFor(ins, "after")) {
      entry.torn = "after";
      this.remove();
      throw new CardRemovedError("card pulled after it processed the command");
    }
    entry.response = response;
    return response;
  }

  async transceive(command: Uint8Array): Promise<Uint8Array> {
    return this.process(command);
  }

  #dispatch(bytes: Uint8Array): Uint8Array {
    let c: CommandApdu;
    try {
      c = decodeCommand(bytes);
    } catch {
      return encodeResponse(undefined, SW.WRONG_LENGTH);
    }
    if (c.ins !== 0xc0) this.#pendingResponse = undefined;
    if (c.cla === 0x00) {
      switch (c.ins) {
        case 0xa4: return this.#select(c);
        case 0xb0: return this.#readBinary(c);
        case 0xb2: return this.#readRecord(c);
        case 0xc0: return this.#getResponse(c);
        default: return encodeResponse(undefined, SW.INS_NOT_SUPPORTED);
      }
    }
    if (c.cla === 0x80) {
      switch (c.ins) {
        case 0x5c: return this.#getBalance(c);
        case 0x50: return c.p1 === 0x00 ? this.#initializeLoad(c) : this.#initialize(c);
        case 0x52: return this.#credit(c);
        case 0x54: return this.#debit(c);
        case 0x5a: return this.#prove(c);
        default: return encodeResponse(undefined, SW.INS_NOT_SUPPORTED);
      }
    }
    return encodeResponse(undefined, SW.CLA_NOT_SUPPORTED);
  }

  #fci(app: ApplicationState): Uint8Array {
    const aid = fromHex(app.aid);
    const basic = fromHex(app.basicData);
    const a5 = concatBytes(new Uint8Array([0x9f, 0x08, 0x01, 0x02, 0x9f, 0x0c, basic.length]), basic);
    const inner = concatBytes(new Uint8Array([0x84, aid.length]), aid, new Uint8Array([0xa5, a5.length]), a5);
    return concatBytes(new Uint8Array([0x6f, inner.length]), inner);
  }

  #select(c: CommandApdu): Uint8Array {
    this.#session = undefined;
    this.#load = undefined;
    const data = c.data ?? new Uint8Array(0);
    if (c.p1 === 0x04) {
      const aid = toHex(data);
      const app = this.state.applications.find((a) => a.aid === aid);
      if (!app) return encodeResponse(undefined, SW.FILE_NOT_FOUND);
      this.#selected = app;
      return encodeResponse(this.#fci(app), SW.OK);
    }
    if (c.p1 === 0x00 && data.length === 2) {
      const fid = (data[0]! << 8) | data[1]!;
      if (fid === 0x3f00) {
        this.#selected = undefined;
        return encodeResponse(undefined, SW.OK);
      }
      if (fid === 0x1001 && this.state.applications.length) {
        this.#selected = this.state.applications[0]!;
        return encodeResponse(this.#fci(this.#selected), SW.OK);
      }
      return encodeResponse(undefined, SW.FILE_NOT_FOUND);
    }
    return encodeResponse(undefined, SW.WRONG_P1P2);
  }

  #readBinary(c: CommandApdu): Uint8Array {
    const app = this.#selected;
    if (!app) return encodeResponse(undefined, SW.FILE_NOT_FOUND);
    if (!(c.p1 & 0x80)) return encodeResponse(undefined, SW.INCOMPATIBLE_FILE);
    const sfi = c.p1 & 0x1f;
    const file = sfi === SFI_BASIC_DATA ? app.basicData : sfi === SFI_HOLDER_DATA ? app.holderData : sfi === SFI_MANAGEMENT_DATA ? app.managementData : undefined;
    if (file === undefined) return encodeResponse(undefined, SW.FILE_NOT_FOUND);
    const content = fromHex(file);
    if (c.p2 > content.length) return encodeResponse(undefined, SW.WRONG_P1P2);
    const available = content.length - c.p2;
    const le = c.le ?? 256;
    if (le !== 256 && le > available) return encodeResponse(undefined, 0x6c00 | available);
    return encodeResponse(content.slice(c.p2, c.p2 + Math.min(le, available)), SW.OK);
  }

  #readRecord(c: CommandApdu): Uint8Array {
    const app = this.#selected;
    if (!app) return encodeResponse(undefined, SW.FILE_NOT_FOUND);
    if (c.p2 !== ((SFI_TRANSACTION_LOG << 3) | 4)) return encodeResponse(undefined, SW.FILE_NOT_FOUND);
    const record = app.log[c.p1 - 1];
    if (c.p1 < 1 || record === undefined) return encodeResponse(undefined, SW.RECORD_NOT_FOUND);
    return encodeResponse(fromHex(record), SW.OK);
  }

  #getResponse(c: CommandApdu): Uint8Array {
    const pending = this.#pendingResponse;
    this.#pendingResponse = undefined;
    if (!pending) return encodeResponse(undefined, SW.CONDITIONS_NOT_SATISFIED);
    const le = c.le ?? 256;
    if (le !== 256 && le !== pending.length) return encodeResponse(undefined, 0x6c00 | pending.length);
    return encodeResponse(pending, SW.OK);
  }

  #getBalance(c: CommandApdu): Uint8Array {
    const app = this.#selected;
    if (!app) return encodeResponse(undefined, SW.CONDITIONS_NOT_SATISFIED);
    if (c.p1 !== 0x00 || c.p2 !== 0x02) return encodeResponse(undefined, SW.WRONG_P1P2);
    return encodeResponse(encodeBalance(app.balance), SW.OK);
  }

  #initialize(c: CommandApdu): Uint8Array {
    this.#session = undefined;
    this.#load = undefined;
    const app = this.#selected;
    if (!app) return encodeResponse(undefined, SW.CONDITIONS_NOT_SATISFIED);
    if ((c.p1 !== 0x01 && c.p1 !== 0x03) || c.p2 !== 0x02) return encodeResponse(undefined, SW.WRONG_P1P2);
    const data = c.data;
    if (!data || data.length !== 11) return encodeResponse(undefined, SW.WRONG_LENGTH);
    if (data[0] !== app.keyIndex) return encodeResponse(undefined, SW.KEY_INDEX_NOT_SUPPORTED);
    if (app.epSerial >= 0xffff) return encodeResponse(undefined, SW.COUNTER_AT_MAXIMUM);
    const amount = readUint(data, 1, 4);
    if (app.balance + app.overdraftLimit < amount) return encodeResponse(undefined, SW.INSUFFICIENT_BALANCE);
    const random = this.#options.random ? this.#options.random() : new Uint8Array(randomBytes(4));
    this.#session = { app, type: c.p1 === 0x03 ? 0x09 : 0x06, amount, terminalId: data.slice(5, 11), epSerial: app.epSerial, random };
    const body = concatBytes(
      encodeBalance(app.balance),
      new Uint8Array([app.epSerial >> 8, app.epSerial & 0xff]),
      new Uint8Array([(app.overdraftLimit >> 16) & 0xff, (app.overdraftLimit >> 8) & 0xff, app.overdraftLimit & 0xff]),
      new Uint8Array([app.keyVersion, algorithmId(app.algorithm)]),
      random,
    );
    if (this.#options.getResponse) {
      this.#pendingResponse = body;
      return encodeResponse(undefined, 0x6100 | body.length);
    }
    return encodeResponse(body, SW.OK);
  }

  #debit(c: CommandApdu): Uint8Array {
    const session = this.#session;
    this.#session = undefined;
    this.#load = undefined;
    if (!session || session.app !== this.#selected) return encodeResponse(undefined, SW.CONDITIONS_NOT_SATISFIED);
    if (c.p1 !== 0x01 || c.p2 !== 0x00) return encodeResponse(undefined, SW.WRONG_P1P2);
    const data = c.data;
    if (!data || data.length !== 15) return encodeResponse(undefined, SW.WRONG_LENGTH);
    const app = session.app;
    const tsn = readUint(data, 0, 4);
    let date: string;
    let time: string;
    try {
      date = decodeBcd(data.slice(4, 8));
      time = decodeBcd(data.slice(8, 11));
    } catch {
      return encodeResponse(undefined, 0x6a80);
    }
    if (!isValidDate(date) || !isValidTime(time)) return encodeResponse(undefined, 0x6a80);
    const mac1 = data.slice(11, 15);
    const dpk = fromHex(app.dpk);
    const sessionKey = purchaseSessionKey(app.algorithm, dpk, session.random, session.epSerial, tsn);
    const fields = { amount: session.amount, type: session.type, terminalId: session.terminalId, date, time };
    if (!macEquals(purchaseMac1(app.algorithm, sessionKey, fields), mac1)) return encodeResponse(undefined, SW.MAC_INVALID);
    const mac2 = purchaseMac2(app.algorithm, sessionKey, session.amount);
    const tac = purchaseTac(app.algorithm, fromHex(app.dtk), { ...fields, tsn });
    // The commit: balance, counter, log and the proof for GET TRANSACTION PROVE change together.
    app.balance -= session.amount;
    app.epSerial = session.epSerial + 1;
    const record = concatBytes(
      new Uint8Array([session.epSerial >> 8, session.epSerial & 0xff]),
      new Uint8Array([(app.overdraftLimit >> 16) & 0xff, (app.overdraftLimit >> 8) & 0xff, app.overdraftLimit & 0xff]),
      uint32Bytes(session.amount), new Uint8Array([session.type]), session.terminalId, data.slice(4, 11),
    );
    app.log.unshift(toHex(record));
    app.log.length = Math.min(app.log.length, LOG_DEPTH);
    app.lastTransaction = { epSerial: session.epSerial, type: session.type, mac2: toHex(mac2), tac: toHex(tac) };
    this.save();
    return encodeResponse(concatBytes(tac, mac2), SW.OK);
  }

  /** INITIALIZE FOR LOAD (P1 = 00): the card answers balance, online serial, key version, algorithm, random and its MAC1. */
  #initializeLoad(c: CommandApdu): Uint8Array {
    this.#session = undefined;
    this.#load = undefined;
    const app = this.#selected;
    if (!app) return encodeResponse(undefined, SW.CONDITIONS_NOT_SATISFIED);
    if (c.p2 !== 0x02) return encodeResponse(undefined, SW.WRONG_P1P2);
    const data = c.data;
    if (!data || data.length !== 11) return encodeResponse(undefined, SW.WRONG_LENGTH);
    if (!app.dlk || data[0] !== app.keyIndex) return encodeResponse(undefined, SW.KEY_INDEX_NOT_SUPPORTED);
    const onlineSerial = app.onlineSerial ?? 0;
    if (onlineSerial >= 0xffff) return encodeResponse(undefined, SW.COUNTER_AT_MAXIMUM);
    const amount = readUint(data, 1, 4);
    if (app.balance + amount > (app.maxBalance ?? DEFAULT_MAX_BALANCE)) return encodeResponse(undefined, SW.CONDITIONS_NOT_SATISFIED);
    const random = this.#options.random ? this.#options.random() : new Uint8Array(randomBytes(4));
    const terminalId = data.slice(5, 11);
    const sessionKey = loadSessionKey(app.algorithm, fromHex(app.dlk), random, onlineSerial);
    const mac1 = loadMac1(app.algorithm, sessionKey, app.balance, { amount, type: 0x02, terminalId });
    this.#load = { app, amount, terminalId, onlineSerial, random, balance: app.balance };
    const body = concatBytes(encodeBalance(app.balance), new Uint8Array([onlineSerial >> 8, onlineSerial & 0xff, app.keyVersion, algorithmId(app.algorithm)]),
      random, mac1);
    return encodeResponse(body, SW.OK);
  }

  /** CREDIT FOR LOAD: checks the front-end's MAC2, then credits, moves the online serial on, logs, and answers the TAC. */
  #credit(c: CommandApdu): Uint8Array {
    const load = this.#load;
    this.#load = undefined;
    this.#session = undefined;
    if (!load || load.app !== this.#selected) return encodeResponse(undefined, SW.CONDITIONS_NOT_SATISFIED);
    if (c.p1 !== 0x00 || c.p2 !== 0x00) return encodeResponse(undefined, SW.WRONG_P1P2);
    const data = c.data;
    if (!data || data.length !== 11) return encodeResponse(undefined, SW.WRONG_LENGTH);
    let date: string;
    let time: string;
    try {
      date = decodeBcd(data.slice(0, 4));
      time = decodeBcd(data.slice(4, 7));
    } catch {
      return encodeResponse(undefined, 0x6a80);
    }
    if (!isValidDate(date) || !isValidTime(time)) return encodeResponse(undefined, 0x6a80);
    const app = load.app;
    const sessionKey = loadSessionKey(app.algorithm, fromHex(app.dlk!), load.random, load.onlineSerial);
    const fields = { amount: load.amount, type: 0x02, terminalId: load.terminalId, date, time };
    const mac2 = data.slice(7, 11);
    if (!macEquals(loadMac2(app.algorithm, sessionKey, fields), mac2)) return encodeResponse(undefined, SW.MAC_INVALID);
    const balanceAfter = load.balance + load.amount;
    const tac = loadTac(app.algorithm, fromHex(app.dtk), { ...fields, balanceAfter, onlineSerial: load.onlineSerial });
    // The commit: balance, online serial, log and the proof for GET TRANSACTION PROVE change together.
    app.balance = balanceAfter;
    app.onlineSerial = load.onlineSerial + 1;
    const record = concatBytes(new Uint8Array([load.onlineSerial >> 8, load.onlineSerial & 0xff]),
      new Uint8Array([(app.overdraftLimit >> 16) & 0xff, (app.overdraftLimit >> 8) & 0xff, app.overdraftLimit & 0xff]),
      uint32Bytes(load.amount), new Uint8Array([0x02]), load.terminalId, data.slice(0, 7));
    app.log.unshift(toHex(record));
    app.log.length = Math.min(app.log.length, LOG_DEPTH);
    app.lastLoad = { onlineSerial: load.onlineSerial, mac2: toHex(mac2), tac: toHex(tac) };
    this.save();
    return encodeResponse(tac, SW.OK);
  }

  #prove(c: CommandApdu): Uint8Array {
    const app = this.#selected;
    if (!app) return encodeResponse(undefined, SW.CONDITIONS_NOT_SATISFIED);
    const data = c.data;
    if (!data || data.length !== 2) return encodeResponse(undefined, SW.WRONG_LENGTH);
    const serial = readUint(data, 0, 2);
    if (c.p2 === 0x02) {
      // A load is proven by the online serial: the MAC2 the card accepted and the TAC it made (docs/purse.md §2.7).
      const load = app.lastLoad;
      if (!load || load.onlineSerial + 1 !== serial || (app.onlineSerial ?? 0) !== serial) return encodeResponse(undefined, SW.MAC_TAC_NOT_AVAILABLE);
      const first = this.#options.loadProof === "zeros" ? new Uint8Array(4) : fromHex(load.mac2);
      return encodeResponse(concatBytes(first, fromHex(load.tac)), SW.OK);
    }
    const last = app.lastTransaction;
    // Asked with the card's current counter: the proof belongs to the transaction that used serial - 1.
    if (!last || last.type !== c.p2 || last.epSerial + 1 !== serial || app.epSerial !== serial) {
      return encodeResponse(undefined, SW.MAC_TAC_NOT_AVAILABLE);
    }
    return encodeResponse(concatBytes(fromHex(last.mac2), fromHex(last.tac)), SW.OK);
  }
}

export { AID_CITY_UNION, AID_TUNION };
