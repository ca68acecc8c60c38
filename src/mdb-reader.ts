/**
 * The terminal as a whole MDB cashless reader (docs/mdb.md §9): the CashlessDevice on its link, the vends that run
 * the terminal's purchase (./mdb-cashless), and the card-first session. Card first: while the reader is Enabled it
 * looks for a card; a tap is read without charging it (SELECT, READ 0x15, GET BALANCE) and begins the session with
 * the balance as funds available; VEND REQUEST then pays with that card only, still in the field. Selection first
 * (level 3 Always Idle) works beside it: a VEND REQUEST in Enabled stops the card search and waits for the tap.
 *
 * - The same card, left in the field after END SESSION, does not begin a new session until it has been seen gone.
 * - A session with no VEND REQUEST for `sessionTimeoutMs` ends with SESSION CANCEL REQUEST, as readers do.
 * - READER CANCEL stops the read in progress (the device answers CANCELLED); the search goes on.
 * - close() stops the search and clears its timers.
 */
import { CashlessDevice, type CashlessOptions } from "../modules/mdb/cashless";
import type { TimeDate } from "../modules/mdb/commands";
import type { FramePort } from "../modules/mdb/link";
import { OwnedTimers } from "../modules/device/timers";
import type { Timers } from "../modules/device/types";
import { MdbCashless, type MdbCashlessOptions } from "./mdb-cashless";
import type { CardReading, PayRequest, TerminalEvent, TerminalState } from "./terminal";

/** What the link below the device calls; the link is the device's FramePort. */
export interface MdbLinkHandlers {
  /** `direct`: the link answered it with the primed reply (modules/mdb/link.ts), not with an ACK. */
  onCommand(block: Uint8Array, direct: boolean): void;
  onDelivered(length: number): void;
  onBusReset(): void;
}

export interface MdbTerminal {
  readonly state: TerminalState;
  pay(request: PayRequest): Promise<void>;
  cancel(): boolean;
  readCard(request: { timeoutMs: number }): Promise<CardReading | undefined>;
}

export interface MdbReaderOptions {
  /** Opens the link (modules/mdb StreamLink, PeripheralLink, or the native core) with the device's handlers. */
  link(handlers: MdbLinkHandlers): FramePort;
  terminal: MdbTerminal;
  timers: Timers;
  /** READER CONFIG and EXPANSION ID settings (level, Z7, multivend, manufacturer, serial, version...). */
  device?: Omit<CashlessOptions, "port" | "events">;
  /** Begin sessions with a tap (default true); false leaves only selection first. */
  cardFirst?: boolean;
  /** How long the customer has to tap after a selection first VEND REQUEST, ms. */
  tapTimeoutMs?: number;
  /** A session without a VEND REQUEST for this long is cancelled by the reader, ms (default 60 s). */
  sessionTimeoutMs?: number;
  /** How long each card search waits before it counts the field as empty, ms. */
  searchMs?: number;
  onRefundOwed?: MdbCashlessOptions["onRefundOwed"];
  /** Refunds onto the card after VEND FAILURE (the terminal, src/refund.ts); without them a failed vend is owed. */
  refunds?: MdbCashlessOptions["refunds"];
  /** The VMC's clock (EXPANSION WRITE TIME/DATE), for the log or to check the terminal's own. */
  onTimeDate?(time: TimeDate): void;
  trace?(line: string): void;
}

export class MdbReader {
  readonly device: CashlessDevice;
  readonly cashless: MdbCashless;
  readonly port: FramePort;
  readonly #o: MdbReaderOptions;
  #search: Promise<void> | undefined;
  #searching = false;
  #session: { asn: string } | undefined;
  /** A card that ended a session and has not been seen gone since. */
  #lastAsn: string | undefined;
  #sessionTimer: unknown;
  #closed = false;
  /** The session timer and the search's pauses: close() clears them and ends a pause at once. */
  readonly #timers: OwnedTimers;

  constructor(o: MdbReaderOptions) {
    this.#o = o;
    this.#timers = new OwnedTimers(o.timers);
    this.port = o.link({
      onCommand: (b, direct) => this.device.command(b, direct),
      onDelivered: (n) => this.device.delivered(n),
      onBusReset: () => this.device.busReset(),
    });
    this.device = new CashlessDevice({
      ...o.device,
      port: this.port,
      events: {
        onVendRequest: (v) => {
          const asn = v.selectionFirst ? undefined : this.#session?.asn;
          void this.#stopSearch().then(() => {
            // A VEND CANCEL or RESET may have come while the search stopped: the device has answered it already.
            if (this.device.vend === v && !this.#closed) this.cashless.vendRequest(v, asn);
          });
        },
        onVendCancel: () => this.cashless.vendCancel(),
        onVendResult: (_v, ok, byReset) => {
          this.cashless.vendResult(ok, byReset);
          if (this.device.state === "idle") this.#armSessionTimer();
        },
        onSessionEnd: () => {
          this.#clearSessionTimer();
          if (this.#session) this.#lastAsn = this.#session.asn;
          this.#session = undefined;
          this.#startSearch();
        },
        onEnabled: (enabled) => (enabled ? this.#startSearch() : void this.#stopSearch()),
        onReaderCancel: () => void this.#o.terminal.cancel(),
        onReset: () => {
          this.#clearSessionTimer();
          // The session's card, still in the field after a RESET, waits to be taken away like one after END SESSION.
          if (this.#session) this.#lastAsn = this.#session.asn;
          this.#session = undefined;
          void this.#stopSearch();
        },
        onTimeDate: (t) => this.#o.onTimeDate?.(t),
        onFault: (e) => this.#o.trace?.(`MDB: ${e.message}`),
      },
    });
    this.cashless = new MdbCashless({
      device: this.device, terminal: o.terminal, refunds: o.refunds, tapTimeoutMs: o.tapTimeoutMs, onRefundOwed: o.onRefundOwed, trace: o.trace,
    });
  }

  /** The card of the session now, if a tap began one. */
  get sessionCard(): string | undefined {
    return this.#session?.asn;
  }

  /** The terminal's events (its onEvent). */
  event(e: TerminalEvent): void {
    // A card that paid a selection first vend is the one in the field afterwards: no new session for it either.
    if (e.event === "card-read") this.#lastAsn = e.asn;
    this.cashless.event(e);
  }

  close(): void {
    this.#closed = true;
    this.#clearSessionTimer();
    this.#timers.close();
    void this.#stopSearch();
  }

  #startSearch(): void {
    if (this.#o.cardFirst === false || this.#searching || this.#closed || this.device.state !== "enabled") return;
    this.#searching = true;
    const previous = this.#search ?? Promise.resolve();
    const run = previous.then(() => this.#searchLoop());
    this.#search = run;
    void run.finally(() => {
      if (this.#search === run) this.#search = undefined;
    });
  }

  /** Ends the search; resolves once the terminal is free of it. */
  async #stopSearch(): Promise<void> {
    this.#searching = false;
    this.#o.terminal.cancel();
    await this.#search;
  }

  async #searchLoop(): Promise<void> {
    const terminal = this.#o.terminal;
    while (this.#searching && !this.#closed && this.device.state === "enabled") {
      if (terminal.state !== "idle") {
        // Starting up, or settling a torn purchase: the search waits its turn.
        await this.#timers.sleep(100);
        continue;
      }
      let reading: CardReading | undefined;
      try {
        reading = await terminal.readCard({ timeoutMs: this.#o.searchMs ?? 1000 });
      } catch (error) {
        this.#o.trace?.(`MDB card search: ${(error as Error).message}`);
        await this.#timers.sleep(200);
        continue;
      }
      if (!reading) {
        if (this.#searching) this.#lastAsn = undefined; // the field was empty: the last card has gone
        continue;
      }
      if (!this.#searching || this.#closed) return;
      if (reading.asn !== undefined && reading.asn === this.#lastAsn) {
        await this.#timers.sleep(300);
        continue;
      }
      if (reading.kind === "refused") {
        // No session for a card that cannot pay (expired, no e-purse...): wait for it to be taken away.
        this.#o.trace?.(`MDB: card ${reading.asn ?? "?"} cannot pay (${reading.reason}); no session`);
        this.#lastAsn = reading.asn;
        await this.#timers.sleep(300);
        continue;
      }
      if (this.device.beginSession(reading.balance, mediaId(reading.asn))) {
        this.#o.trace?.(`MDB: card ${reading.asn} begins a session, funds ${reading.balance} fen`);
        this.#session = { asn: reading.asn };
        this.#searching = false;
        this.#armSessionTimer();
        return;
      }
    }
    this.#searching = false;
  }

  #armSessionTimer(): void {
    this.#clearSessionTimer();
    if (!this.#session || this.#closed) return;
    this.#sessionTimer = this.#timers.set(() => {
      this.#sessionTimer = undefined;
      // A vend in progress is not interrupted (docs/mdb.md §6): the session gets another period after it.
      if (this.device.state === "vend") this.#armSessionTimer();
      else if (this.device.cancelSession()) this.#o.trace?.("MDB: session timed out; SESSION CANCEL REQUEST");
    }, this.#o.sessionTimeoutMs ?? 60_000);
  }

  #clearSessionTimer(): void {
    if (this.#sessionTimer === undefined) return;
    this.#timers.clear(this.#sessionTimer);
    this.#sessionTimer = undefined;
  }
}

/** BEGIN SESSION's media ID: the ASN's last 8 digits as a number (the VMC logs it; FFFFFFFF means unknown). */
function mediaId(asn: string): number {
  const n = Number.parseInt(asn.slice(-8), 10);
  return Number.isInteger(n) && n >= 0 && n < 0xffffffff ? n : 0xffffffff;
}
