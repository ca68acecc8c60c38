/**
 * What the MDB cashless device (cashless.ts) and the application say to each other: the device's states, a vend
 * request, the events the application hears and the options it starts the device with (docs/mdb.md §6).
 */
import type { TimeDate } from "./commands";
import type { FramePort } from "./link";

export type State = "inactive" | "disabled" | "enabled" | "idle" | "vend" | "revalue" | "negative-vend";

export interface VendRequest {
  price: number;
  item: number;
  /** True when the VMC asked before any card (Always Idle, level 3): the customer taps next. */
  selectionFirst: boolean;
}

export interface CashlessEvents {
  onVendRequest(vend: VendRequest): void;
  /** VEND CANCEL before an answer, or RESET during a vend not yet approved. */
  onVendCancel(vend: VendRequest): void;
  /**
   * VEND SUCCESS (success true), VEND FAILURE (false: a refund is due; answer with refunded()), or a RESET
   * (byReset) after VEND APPROVED reached the VMC, which counts as success, or before it did (false: the debit is
   * owed back; no refunded() call, the VMC has forgotten the vend).
   */
  onVendResult(vend: VendRequest, success: boolean, byReset: boolean): void;
  onSessionEnd?(): void;
  onEnabled?(enabled: boolean): void;
  onReaderCancel?(): void;
  onReset?(previous: State): void;
  onTimeDate?(time: TimeDate): void;
  onCashSale?(price: number, item: number): void;
  /** A command that could not be decoded, or one out of sequence: for the log. */
  onFault?(error: Error): void;
}

export interface CashlessOptions {
  port: FramePort;
  events: CashlessEvents;
  /** The reader's level, 1-3. */
  level?: number;
  /** ISO 4217 numeric code (156 = CNY); sent as BCD with the leading 1 (0x1156). */
  currency?: number;
  /** Fen per wire unit (X of READER CONFIG); decimals Y position the VMC's display point. */
  scale?: number;
  decimals?: number;
  /** Z7: the longest, in seconds, the reader needs to answer (card read + online round trip). */
  maxResponseSeconds?: number;
  multivend?: boolean;
  refunds?: boolean;
  cashSale?: boolean;
  /** Level 3 options offered in PERIPHERAL ID (OPTION_*); the VMC enables a subset with 17 04. */
  options?: number;
  manufacturer?: string;
  serial?: string;
  model?: string;
  /** Two BCD bytes, e.g. 0x0100 for 1.00. */
  version?: number;
}
