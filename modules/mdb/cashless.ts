/**
 * The MDB cashless device (reader) state machine (docs/mdb.md §6): Inactive, Disabled, Enabled, Session Idle,
 * Vend, Revalue, Negative Vend. It takes whole command blocks from a link (modules/mdb/link.ts or the native core),
 * keeps the queue of poll messages and arms the next POLL's reply through the FramePort. The application (the
 * terminal) hears about sessions and vends through the `events` callbacks and answers with beginSession(),
 * approve(), deny(), refunded()... All amounts here are fen; the wire numbers are fen / scale.
 */
import { decodeCommand, type Command } from "./commands";
import type { CashlessEvents, CashlessOptions, State, VendRequest } from "./session";

export type { CashlessEvents, CashlessOptions, State, VendRequest };
import { MdbCommandError, MdbParameterError, MdbStateError } from "./errors";
import { DIRECT_REQUEST_ID, DIRECT_SESSION_COMPLETE, DIRECT_SETUP_CONFIG, DIRECT_VEND_CANCEL, type FramePort } from "./link";
import {
  END_SESSION, MISC_CASH_SALE, MISC_MULTIVEND, MISC_REFUNDS, OPTION_32BIT, OPTION_ALWAYS_IDLE, OPTION_MULTI_CURRENCY, REFUND_FAILED,
  SESSION_CANCEL_REQUEST, VEND_APPROVED, VEND_DENIED, bcdCurrency, encodeReply, type Format, type Reply,
} from "./replies";

/** The codes COMMAND OUT OF SEQUENCE carries at levels 2 and 3. */
const STATE_CODE: { readonly [s in State]: number } = Object.freeze({
  inactive: 1, disabled: 2, enabled: 3, idle: 4, vend: 5, revalue: 6, "negative-vend": 7,
});

interface Pending { bytes: Uint8Array }

const NOTHING = new Uint8Array(0);
const END_SESSION_BYTES = Uint8Array.of(END_SESSION);
const VEND_DENIED_BYTES = Uint8Array.of(VEND_DENIED);

export class CashlessDevice {
  readonly #port: FramePort;
  readonly #events: CashlessEvents;
  readonly level: number;
  readonly #currency: number;
  readonly #scale: number;
  readonly #decimals: number;
  readonly #z7: number;
  readonly #misc: number;
  readonly #offered: number;
  readonly #id: { manufacturer: string; serial: string; model: string; version: number };
  #state: State = "inactive";
  #vmcLevel = 1;
  #enabledOptions = 0;
  #expanded = false;
  #outbox: Pending[] = [];
  readonly #armBuffer = new Uint8Array(35);
  #vend: VendRequest | undefined;
  #answered = false;
  #approved = false;
  /** The VMC ACKed the VEND APPROVED: only then may it have dispensed. */
  #approvalDelivered = false;
  #disableAfterSession = false;
  #refundPending = false;
  /** SETUP config was seen since the last reset: the VMC's level, which PERIPHERAL ID's length follows, is known. */
  #setupSeen = false;
  /** READER CONFIG and PERIPHERAL ID as they go out (the latter for the VMC level it was made for). */
  readonly #readerConfig: Uint8Array;
  #peripheralId: Uint8Array = NOTHING;
  #peripheralIdLevel = 0;
  /** The VMC's identity from REQUEST ID, and its price range (fen). */
  vmc: { manufacturer?: string; serial?: string; model?: string; maxPrice?: number; minPrice?: number; columns: number; rows: number } = { columns: 0, rows: 0 };

  constructor(o: CashlessOptions) {
    this.#port = o.port;
    this.#events = o.events;
    this.level = o.level ?? 3;
    if (this.level < 1 || this.level > 3) throw new MdbParameterError("MDB reader level is 1, 2 or 3");
    this.#currency = bcdCurrency(o.currency ?? 156);
    this.#scale = o.scale ?? 1;
    this.#decimals = o.decimals ?? 2;
    if (!(this.#scale >= 1 && this.#scale <= 255 && Number.isInteger(this.#scale))) throw new MdbParameterError("scale is 1..255");
    this.#z7 = o.maxResponseSeconds ?? 30;
    if (!(this.#z7 >= 1 && this.#z7 <= 255)) throw new MdbParameterError("maxResponseSeconds is 1..255");
    this.#misc = (o.refunds ?? true ? MISC_REFUNDS : 0) | (o.multivend ?? true ? MISC_MULTIVEND : 0) | (o.cashSale ? MISC_CASH_SALE : 0);
    this.#offered = this.level >= 3 ? (o.options ?? (OPTION_32BIT | OPTION_ALWAYS_IDLE)) : 0;
    this.#id = {
      manufacturer: o.manufacturer ?? "OTT", serial: o.serial ?? "000000000001", model: o.model ?? "TRANSIT-MDB", version: o.version ?? 0x0100,
    };
    this.#readerConfig = encodeReply({ kind: "reader-config", level: this.level, currency: this.#currency, scale: this.#scale, decimals: this.#decimals,
      maxResponse: this.#z7, misc: this.#misc }, this.format);
    this.#queue({ kind: "just-reset" });
    this.#primeDirect();
  }

  get state(): State { return this.#state; }
  get vmcLevel(): number { return this.#vmcLevel; }
  get expanded(): boolean { return this.#expanded; }
  get alwaysIdle(): boolean { return (this.#enabledOptions & OPTION_ALWAYS_IDLE) !== 0; }
  get multivend(): boolean { return (this.#misc & MISC_MULTIVEND) !== 0; }
  get vend(): VendRequest | undefined { return this.#vend; }
  /** Messages not yet ACKed by the VMC. */
  get queued(): number { return this.#outbox.length; }

  get format(): Format {
    return { level: Math.min(this.level, this.#vmcLevel), vmcLevel: this.#vmcLevel, expanded: this.#expanded };
  }

  /** A card was read: funds in fen (undefined = unknown). Only from Enabled; returns false when not possible now. */
  beginSession(funds: number | undefined, mediaId?: number): boolean {
    if (this.#state !== "enabled") return false;
    const top = this.#expanded ? 0xfffffffe : 0xfffe;
    const wire = funds === undefined ? top + 1 : Math.min(Math.floor(funds / this.#scale), top);
    this.#queue({ kind: "begin-session", funds: wire, mediaId: mediaId ?? 0xffffffff, payType: 0, payData: 0, currency: this.#currency,
      cardOptions: this.#misc & MISC_REFUNDS ? 0x02 : 0 });
    this.#state = "idle";
    this.#primeDirect();
    return true;
  }

  /** The vend was paid: `amount` fen actually charged. False when the vend was cancelled meanwhile (refund it). */
  approve(amount: number): boolean {
    if (this.#state !== "vend" || this.#answered) return false;
    const wire = amount / this.#scale;
    if (!Number.isInteger(wire) || wire < 0 || wire > (this.#expanded ? 0xffffffff : 0xffff)) {
      throw new MdbParameterError(`amount ${amount} fen does not fit the VEND APPROVED format`);
    }
    this.#answered = true;
    this.#approved = true;
    this.#queue({ kind: "vend-approved", amount: wire });
    this.#primeDirect();
    return true;
  }

  /** Nothing was charged: VEND DENIED. False when there is no vend waiting for an answer. */
  deny(): boolean {
    if (this.#state !== "vend" || this.#answered) return false;
    this.#queue({ kind: "vend-denied" });
    this.#afterVend();
    this.#primeDirect();
    return true;
  }

  /** The card was taken away, or the reader's own session timeout: ask the VMC to end the session. */
  cancelSession(): boolean {
    if (this.#state !== "idle") return false;
    this.#queue({ kind: "session-cancel-request" });
    return true;
  }

  /** The refund after VEND FAILURE is settled: true = back on the card; false = lost (0A C0 at levels 2/3). */
  refunded(ok: boolean): void {
    if (!this.#refundPending) throw new MdbStateError(this.#state, "no refund pending");
    this.#refundPending = false;
    if (!ok && this.format.level >= 2) this.#queue({ kind: "malfunction", code: REFUND_FAILED });
    this.#port.hold(false);
    this.#primeDirect();
  }

  /** Asks the VMC for its clock (levels 2/3); the answer comes as onTimeDate. */
  requestTimeDate(): boolean {
    if (this.format.level < 2 || this.#state === "inactive") return false;
    this.#queue({ kind: "time-date-request" });
    return true;
  }

  /**
   * From the link: a command block. `direct`: the link already answered it with the reply primed for it (READER
   * CONFIG, PERIPHERAL ID, END SESSION, VEND DENIED), so that message is not queued again.
   */
  command(block: Uint8Array, direct: boolean): void {
    let c: Command;
    try {
      c = decodeCommand(block, this.#expanded);
    } catch (error) {
      this.#events.onFault?.(error as Error);
      this.#primeDirect();
      return;
    }
    this.#handle(c, block, direct);
    this.#primeDirect();
  }

  /** From the link: the VMC ACKed `length` bytes from the head of the queue. */
  delivered(length: number): void {
    let left = length;
    while (left > 0 && this.#outbox.length) {
      const m = this.#outbox.shift()!;
      if (m.bytes[0] === VEND_APPROVED && this.#approved) this.#approvalDelivered = true;
      left -= m.bytes.length;
    }
    this.#rearm();
  }

  /** From the link: a bus reset, as RESET. */
  busReset(): void {
    this.#reset();
    this.#primeDirect();
  }

  /**
   * Primes the link's direct replies for the state the device is in now (docs/mdb.md §2.1): each is a message that
   * is ready and that the command would get here. What is not primed is ACKed and queued for a POLL as before.
   */
  #primeDirect(): void {
    const s = this.#state;
    const session = s === "idle" || s === "vend" || s === "revalue" || s === "negative-vend";
    this.#port.prime(DIRECT_SETUP_CONFIG, session ? NOTHING : this.#readerConfig);
    this.#port.prime(DIRECT_REQUEST_ID, session || !this.#setupSeen ? NOTHING : this.#identity());
    // While a refund runs its result comes first (POLLs are held silent until then): END SESSION waits behind it.
    this.#port.prime(DIRECT_SESSION_COMPLETE, s === "idle" && !this.#refundPending ? END_SESSION_BYTES : NOTHING);
    this.#port.prime(DIRECT_VEND_CANCEL, s === "vend" && !this.#answered ? VEND_DENIED_BYTES : NOTHING);
  }

  /** PERIPHERAL ID for the VMC's level (option bits only for a level-3 VMC), made again only when that changes. */
  #identity(): Uint8Array {
    if (this.#peripheralIdLevel !== this.#vmcLevel) {
      this.#peripheralId = encodeReply({ kind: "peripheral-id", ...this.#id, options: this.#offered }, this.format);
      this.#peripheralIdLevel = this.#vmcLevel;
    }
    return this.#peripheralId;
  }

  /** A message for the VMC: queued for a POLL unless the link already sent it as the direct reply. */
  #answer(direct: boolean, r: Reply): void {
    if (!direct) this.#queue(r);
  }

  #handle(c: Command, block: Uint8Array, direct: boolean): void {
    const s = this.#state;
    const session = s === "idle" || s === "vend" || s === "revalue" || s === "negative-vend";
    switch (c.kind) {
      case "reset": return this.#reset();
      case "poll": return;
      case "setup-config":
        if (session) return this.#outOfSequence(block);
        this.#vmcLevel = Math.max(1, Math.min(3, c.vmcLevel));
        this.vmc.columns = c.columns;
        this.vmc.rows = c.rows;
        this.#setupSeen = true;
        if (!direct) this.#queueBytes(this.#readerConfig);
        if (s === "inactive") this.#state = "disabled";
        return;
      case "setup-prices":
        if (session) return this.#outOfSequence(block);
        this.vmc.maxPrice = c.max * this.#scale;
        this.vmc.minPrice = c.min * this.#scale;
        return;
      case "request-id":
        if (session) return this.#outOfSequence(block);
        this.vmc.manufacturer = c.manufacturer;
        this.vmc.serial = c.serial;
        this.vmc.model = c.model;
        if (!direct) this.#queueBytes(this.#identity());
        return;
      case "optional-features":
        if (session || this.#vmcLevel < 3 || this.level < 3) return this.#outOfSequence(block);
        this.#enabledOptions = c.bits & this.#offered;
        this.#expanded = (this.#enabledOptions & (OPTION_32BIT | OPTION_MULTI_CURRENCY)) !== 0;
        this.#port.setExpanded(this.#expanded);
        return;
      case "write-time-date": this.#events.onTimeDate?.(c.time); return;
      case "read-user-file": case "write-user-file": case "data-entry-response": return; // obsolete / not offered
      case "reader-enable":
        if (s === "disabled") {
          this.#state = "enabled";
          this.#events.onEnabled?.(true);
        } else if (s === "inactive") this.#outOfSequence(block);
        else this.#disableAfterSession = false; // a repeat, or during a session: nothing to change
        return;
      case "reader-disable":
        if (s === "enabled") {
          this.#state = "disabled";
          this.#events.onEnabled?.(false);
        } else if (session) this.#disableAfterSession = true; // the session finishes first
        return;
      case "reader-cancel":
        if (s !== "enabled") return this.#outOfSequence(block);
        this.#queue({ kind: "cancelled" });
        this.#events.onReaderCancel?.();
        return;
      case "vend-request": {
        const selectionFirst = s === "enabled" && this.alwaysIdle;
        if (s !== "idle" && !selectionFirst) return this.#outOfSequence(block);
        this.#vend = { price: c.price * this.#scale, item: c.item, selectionFirst };
        this.#answered = false;
        this.#approved = false;
        this.#state = "vend";
        this.#events.onVendRequest(this.#vend);
        return;
      }
      case "vend-cancel":
        if (direct && s === "vend" && this.#approved && !this.#approvalDelivered) {
          // The native link answered VEND DENIED before this machine's approval could unprime it: the VMC takes the
          // vend as denied, so the approval is withdrawn and the debit is owed back, as after a RESET before it.
          const vend = this.#vend!;
          this.#outbox = this.#outbox.filter((m) => m.bytes[0] !== VEND_APPROVED);
          this.#rearm();
          this.#afterVend();
          this.#events.onVendResult(vend, false, true);
          return;
        }
        if (s !== "vend" || this.#answered) return this.#outOfSequence(block);
        this.#answer(direct, { kind: "vend-denied" });
        this.#events.onVendCancel(this.#vend!);
        this.#afterVend();
        return;
      case "vend-success":
      case "vend-failure": {
        if (s !== "vend" || !this.#approved) return this.#outOfSequence(block);
        const vend = this.#vend!;
        this.#afterVend();
        if (c.kind === "vend-failure" && this.#misc & MISC_REFUNDS) {
          // Silence on POLL tells the VMC the refund is in progress; refunded() ends it.
          this.#refundPending = true;
          this.#port.hold(true);
        }
        this.#events.onVendResult(vend, c.kind === "vend-success", false);
        return;
      }
      case "session-complete":
        if (s === "idle") {
          // A SESSION CANCEL REQUEST not yet delivered is moot once the session ends.
          this.#outbox = this.#outbox.filter((m) => m.bytes[0] !== SESSION_CANCEL_REQUEST);
          if (direct) this.#rearm();
          this.#answer(direct, { kind: "end-session" });
          this.#state = this.#disableAfterSession ? "disabled" : "enabled";
          this.#disableAfterSession = false;
          this.#events.onSessionEnd?.();
        } else if (session) this.#outOfSequence(block);
        return; // in Enabled: a repeat, accepted
      case "cash-sale": this.#events.onCashSale?.(c.price * this.#scale, c.item); return;
      case "negative-vend":
        // Not offered: the answer is a denial, the state is kept (docs/mdb.md §6.3).
        if (s !== "idle") return this.#outOfSequence(block);
        this.#queue({ kind: "vend-denied" });
        return;
      case "revalue-request":
      case "revalue-limit-request":
        if (s !== "idle" || this.format.level < 2) return this.#outOfSequence(block);
        this.#queue({ kind: "revalue-denied" });
        return;
    }
  }

  #afterVend(): void {
    this.#state = "idle";
    this.#vend = undefined;
    this.#answered = false;
    this.#approved = false;
    this.#approvalDelivered = false;
  }

  #reset(): void {
    const previous = this.#state;
    const vend = this.#vend;
    const approved = this.#approved;
    const delivered = this.#approvalDelivered;
    this.#state = "inactive";
    this.#afterVend();
    this.#state = "inactive";
    this.#setupSeen = false;
    this.#enabledOptions = 0;
    this.#expanded = false;
    this.#disableAfterSession = false;
    this.#outbox = [];
    this.#port.setExpanded(false);
    if (this.#refundPending) {
      // The refund carries on in the application; the VMC has forgotten the vend.
      this.#refundPending = false;
      this.#port.hold(false);
    }
    this.#queue({ kind: "just-reset" });
    if (vend && previous === "vend") {
      // Approved and seen by the VMC: a success (docs/mdb.md §6). Approved but never delivered: the VMC cannot
      // have dispensed, so the debit is owed back, as after a failure (no answer is due to the VMC).
      if (approved) this.#events.onVendResult(vend, delivered, true);
      else this.#events.onVendCancel(vend);
    }
    this.#events.onReset?.(previous);
  }

  #outOfSequence(block: Uint8Array): void {
    this.#events.onFault?.(new MdbCommandError(block, `out of sequence in state ${this.#state}`));
    this.#queue({ kind: "out-of-sequence", state: STATE_CODE[this.#state] });
  }

  #queue(r: Reply): void {
    this.#queueBytes(encodeReply(r, this.format));
  }

  #queueBytes(bytes: Uint8Array): void {
    this.#outbox.push({ bytes });
    this.#rearm();
  }

  /** Arms as many whole queued messages as fit one block (35 data bytes + CHK). */
  #rearm(): void {
    let n = 0;
    for (const m of this.#outbox) {
      if (n + m.bytes.length > this.#armBuffer.length) break;
      this.#armBuffer.set(m.bytes, n);
      n += m.bytes.length;
    }
    this.#port.arm(this.#armBuffer.subarray(0, n));
  }
}
