import { CodedError } from "../modules/errors/errors";
import type { Application } from "../modules/frontend-client/client";
import type { StatusReason } from "../modules/frontend-client/status";
import type { Journal } from "../modules/journal/journal";
import type { DeclineReason } from "./declines";
import type { PurchasePhase } from "./phases";
import type { RefundEvent } from "./refund";

/**
 * What the terminal tells its controller: the events of a payment, a refund, a configuration and a status, the
 * requests it takes, and the one way they reach the controller (telemetry sees each event first).
 */

export interface PayRequest {
  amount: number;
  order: string;
  timeoutMs?: number;
  /** Only this card may pay (an MDB session begun by its tap): another card is refused before INIT. */
  asn?: string;
}

/** What readCard() found: a card's balance without charging it, or why the card cannot pay. */
export type CardReading =
  | { kind: "card"; asn: string; cityCode: string; application: Application; balance: number }
  | { kind: "refused"; reason: DeclineReason; asn?: string; detail?: string };

export interface PurchaseTimings {
  /** From the card answering detection to the approval, ms. */
  tapMs: number;
  authorizeMs: number;
  apdus: number;
  /** Bytes of every command and response APDU of the tap (the PN532 frames around them come on top). */
  apduBytes: number;
  roundTrips: number;
  handshakes: number;
}

export type TerminalEvent =
  | { event: "ready"; terminalId: string; routes: number; unresolved: number; pendingCompletions: number }
  | { event: "waiting-for-card"; order: string; amount: number }
  | { event: "card-read"; order: string; asn: string; cityCode: string; application: Application }
  | { event: "approved"; order: string; amount: number; purchaseId: string; tsn: number; tac: string; asn: string; cityCode: string;
      application: Application; level: number; balanceBefore: number; balanceAfter: number; acknowledged?: boolean; timings: PurchaseTimings }
  | { event: "declined"; order: string; reason: DeclineReason; amount?: number; asn?: string; cityCode?: string; balance?: number; detail?: string }
  | { event: "unknown-outcome"; order: string; purchaseId: string; asn: string; detail?: string }
  | { event: "resolved"; order: string; purchaseId: string; result: "approved" | "declined" | "unresolvable"; tac?: string }
  | { event: "error"; code: string; message: string; order?: string }
  | { event: "message"; text: string }
  | { event: "config"; version: number; applied: boolean; refused?: string[] }
  | RefundEvent
  | { event: "status"; state: TerminalState; phase?: PurchasePhase; order?: string; unresolved: number; pendingCompletions: number;
      journal: ReturnType<Journal["stats"]>; routesVersion?: number | string };

export type TerminalState = "starting" | "idle" | "waiting-for-card" | "processing" | "recovering" | "closed";

export class TerminalError extends CodedError {
  constructor(code: string, message: string) {
    super(code, message);
  }
}

/** The refusal of a request the terminal cannot take in its state. */
export function busyError(state: TerminalState, doing: string): TerminalError {
  return new TerminalError(state === "starting" ? "NOT_READY" : state === "closed" ? "CLOSED" : "BUSY", `cannot ${doing} while ${state}`);
}

/** Every event goes past telemetry (which may raise an alert report) and then to the controller. */
export function eventSink(observe: (event: TerminalEvent) => StatusReason | undefined, report: (reason: StatusReason) => void,
  onEvent: (event: TerminalEvent) => void): (event: TerminalEvent) => void {
  return (event) => {
    const alert = observe(event);
    if (alert) report(alert);
    try {
      onEvent(event);
    } catch {
      // A controller that throws must not break a purchase in progress.
    }
  };
}
