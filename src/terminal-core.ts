import { fromHex } from "../modules/bytes/bytes";
import type { Clock, Timers } from "../modules/device/types";
import { OwnedTimers } from "../modules/device/timers";
import { CodedError } from "../modules/errors/errors";
import type { FrontendClient, Route } from "../modules/frontend-client/client";
import type { Journal } from "../modules/journal/journal";
import type { BasicData } from "../modules/purse/files";
import { CITY_UNION_APPLICATION, PurseCard, TUNION_APPLICATION, type PurseApplication } from "../modules/purse/session";
import { describeCommand, describeResponse, tracingTransceiver } from "../modules/purse/trace";
import type { DeclineReason } from "./declines";
import { CompletionForwarder } from "./forwarder";
import type { PurchasePhase } from "./phases";
import type { CardReader } from "./reader";
import { PURCHASE_RECORD_BYTES, type IntentRecord, type OutcomeRecord } from "./records";
import { Refunds } from "./refund";
import { Routes } from "./routing";
import type { RemoteSettings, ResolvedConfig, TerminalConfig } from "./settings";
import type { HeapInfo } from "./telemetry";
import type { TerminalEvent, TerminalState } from "./terminal-events";

/**
 * What the terminal's parts share: its state, the card in the field (the purse over the reader, the wait for a card),
 * the journal's bookkeeping, the purchases whose outcome is unknown, the completion forwarders, and the timers it owns.
 * The façade (src/terminal.ts), the purchase, the recovery and the reports all work on one of these.
 */

export interface TerminalOptions {
  reader: CardReader;
  client: FrontendClient;
  journal: Journal;
  timers: Timers;
  clock: Clock;
  config: TerminalConfig;
  onEvent: (event: TerminalEvent) => void;
  /** A readable line per APDU and front-end call (the simulation's trace). */
  trace?: (line: string) => void;
  /** The XS heap and slots for the status report, where the host can tell (Moddable's Instrumentation). */
  heap?: () => HeapInfo | undefined;
}

const APPLICATIONS: { readonly [name: string]: PurseApplication } = Object.freeze({ tunion: TUNION_APPLICATION, cityunion: CITY_UNION_APPLICATION });

/** A payment refused before anything was at stake: the controller hears `declined`. */
export class Decline extends CodedError {
  constructor(readonly reason: DeclineReason, readonly detail = "", readonly extra: { balance?: number } = {}) {
    super("DECLINED", reason);
  }
}

/** A purchase whose DEBIT may have run: its intent is in the journal, its outcome is for the card to say. */
export interface Unresolved {
  seq: number;
  intent: IntentRecord;
  reported: boolean;
}

export class TerminalCore {
  readonly o: TerminalOptions;
  readonly settings: RemoteSettings;
  readonly emit: (event: TerminalEvent) => void;
  /** Every timer of the terminal itself (periodic jobs, reports of unresolved purchases, sleeps): cleared by close(). */
  readonly timers: OwnedTimers;
  readonly routes = new Routes();
  readonly forwarder: CompletionForwarder;
  readonly refunds: Refunds;
  readonly unresolved = new Map<string, Unresolved>();
  state: TerminalState = "starting";
  /** The purchase in progress (its phase is what `status` reports), and the order of the payment or refund. */
  tap: { phase: PurchasePhase } | undefined;
  order: string | undefined;
  cancelled = false;
  /** The card is let go after the final event, so the controller can ask for the next payment at once. */
  releasing: Promise<void> = Promise.resolve();

  constructor(o: TerminalOptions, settings: RemoteSettings, emit: (event: TerminalEvent) => void) {
    this.o = o;
    this.settings = settings;
    this.emit = emit;
    this.timers = new OwnedTimers(o.timers);
    this.forwarder = new CompletionForwarder({
      client: o.client,
      timers: o.timers,
      onDone: (seq, record, _answer, error) => {
        if (seq > 0) this.retire(seq);
        if (error) this.emit({ event: "error", code: "COMPLETION_REFUSED", message: `${record.purchaseId}: ${error.message}`, order: record.order });
      },
    });
    this.refunds = new Refunds({
      reader: o.reader, client: o.client, journal: o.journal, timers: o.timers, clock: o.clock,
      terminalId: this.config.terminalId, purse: () => this.purse({ apdus: 0, apduBytes: 0 }), read: (purse) => this.readForRecovery(purse),
      onEvent: (e) => this.emit(e), onError: (code, message) => this.emit({ event: "error", code, message }), trace: o.trace,
      cardWaitMs: o.config.refundCardWaitMs, detectIntervalMs: this.config.detectIntervalMs,
    });
  }

  /** The settings in force now. */
  get config(): ResolvedConfig {
    return this.settings.current;
  }

  /** Read through a method so that TypeScript does not narrow the state across awaits. */
  isClosed(): boolean {
    return this.state === "closed";
  }

  enter(tap: { phase: PurchasePhase }, phase: PurchasePhase): void {
    tap.phase = phase;
    this.o.trace?.(`  phase: ${phase}`);
  }

  retire(seq: number): void {
    try {
      this.o.journal.retire(seq);
    } catch (error) {
      this.emit({ event: "error", code: "JOURNAL_RETIRE", message: `record ${seq} stays until the next start: ${(error as Error).message}` });
    }
  }

  /** A completion that has no journal record behind it (nothing to retire when it is acknowledged). */
  deliver(record: OutcomeRecord): void {
    void this.forwarder.enqueue(-1, record);
  }

  /** Room for this purchase's intent and outcome, with an outcome's worth kept back for every torn purchase. */
  hasRoomForPurchase(): boolean {
    const records = 2 + this.unresolved.size;
    const sizes: number[] = [];
    for (let i = 0; i < records; i++) sizes.push(PURCHASE_RECORD_BYTES);
    return this.o.journal.hasRoomFor(...sizes);
  }

  async waitForCard(deadline: number): Promise<boolean> {
    for (;;) {
      if (this.cancelled) return false;
      const left = deadline - this.timers.now();
      if (left <= 0) return false;
      try {
        await this.o.reader.detect({ timeout: left, interval: this.config.detectIntervalMs });
        return !this.cancelled;
      } catch (error) {
        const code = error instanceof CodedError ? error.code : undefined;
        if (code === "PN532_NO_CARD" || code === "PN532_ABORTED" || this.cancelled) return false;
        // A reader fault while polling: report it and keep polling until the deadline, at a gentler pace.
        this.emit({ event: "error", code: code ?? "READER", message: (error as Error).message, order: this.order });
        await this.timers.sleep(200);
      }
    }
  }

  /** The card's purse over the reader, counting the tap's APDUs and tracing them. */
  purse(tap: { apdus: number; apduBytes: number }): PurseCard {
    const trace = this.o.trace;
    const reader = this.o.reader;
    const counting = {
      transceive: async (apdu: Uint8Array) => {
        tap.apdus++;
        tap.apduBytes += apdu.length;
        const response = await reader.transceive(apdu);
        tap.apduBytes += response.length;
        return response;
      },
    };
    if (!trace) return new PurseCard(counting);
    return new PurseCard(tracingTransceiver(counting, (line) => {
      trace(`  -> ${describeCommand(line.command)}`);
      trace(line.response ? `  <- ${describeResponse(line.command, line.response)} (${line.ms.toFixed(1)} ms)` : `  <- no answer: ${(line.error as Error)?.message}`);
    }, () => this.timers.now()));
  }

  /** The applications in the order the settings in force prefer. */
  applications(): PurseApplication[] {
    return this.config.applicationOrder.map((name) => APPLICATIONS[name]!);
  }

  async readForRecovery(purse: PurseCard): Promise<BasicData> {
    const { application } = await purse.selectApplication(this.applications());
    return purse.readBasicData(application.layout);
  }

  /** The card's EP serial now, from an INITIALIZE FOR PURCHASE of nothing (it changes nothing on the card). */
  async currentSerial(purse: PurseCard, route: Route | undefined): Promise<number> {
    const init = await purse.initializeForPurchase({ keyIndex: route?.keyIndex ?? 1, amount: 0, terminalId: fromHex(this.config.terminalId) });
    return init.epSerial;
  }
}
