/**
 * The emulator's time model (line, firmware, RF and card times) and the faults a test can inject into an exchange.
 */
import { CARD_PROCESSING_MS } from "../cardsim/card";

export interface EmulatorTiming {
  /** Line speed; sets byteTime unless that is given. */
  baud: number;
  /** ms per byte on the serial line (10 bits at 8N1); 0 sends at once. */
  byteTime: number;
  /** From the end of a command frame to the start of its ACK, ms (the UM allows up to 15). */
  ackDelay: number;
  /** Firmware time for a command that does not touch RF, ms. */
  commandDelay: number;
  /** One 106A activation with anticollision and RATS/ATS, ms. */
  activationDelay: number;
  /** One activation attempt that finds nothing, ms (InListPassiveTarget takes MxRtyPassiveActivation + 1 of them). */
  pollDelay: number;
  /** ms per byte over the air at 106 kbit/s (with parity, ISO-DEP framing). */
  rfByteTime: number;
  /** Fixed RF cost of one ISO-DEP round (PCB, CRC, frame delay), ms. */
  exchangeOverhead: number;
  /** Card processing time per APDU, ms: per INS, or a function of the APDU. Default CARD_PROCESSING_MS. */
  cardProcessing: { readonly [ins: number]: number } | ((apdu: Uint8Array) => number);
  /** Card processing for an INS missing from the table, ms. */
  defaultCardProcessing: number;
  /** How long the chip waits for a card that does not answer, ms (FWT from the ATS: 77 ms for FWI 8). */
  frameWaitingTime: number;
  /** Scales InAutoPoll's 150 ms period unit (tests shorten it). */
  pollPeriodUnit: number;
}

export function byteTimeFor(baud: number): number {
  return 10_000 / baud;
}

export const DEFAULT_TIMING: EmulatorTiming = Object.freeze({
  baud: 115200,
  byteTime: byteTimeFor(115200),
  ackDelay: 0.5,
  commandDelay: 0.5,
  activationDelay: 5,
  pollDelay: 2,
  rfByteTime: 0.085,
  exchangeOverhead: 0.5,
  cardProcessing: CARD_PROCESSING_MS,
  defaultCardProcessing: 15,
  frameWaitingTime: 77.3,
  pollPeriodUnit: 150,
});

/** Timing with every delay zero: for fuzzing and functional tests that do not care about the clock. */
export const INSTANT_TIMING: Partial<EmulatorTiming> = Object.freeze({
  byteTime: 0, ackDelay: 0, commandDelay: 0, activationDelay: 0, pollDelay: 0, rfByteTime: 0, exchangeOverhead: 0,
  cardProcessing: () => 0, defaultCardProcessing: 0, frameWaitingTime: 5,
});

interface FaultBase {
  /** Only frames with this command code (default: any). */
  command?: number;
  /** How many times it fires (default 1). */
  count?: number;
}

export type Fault =
  /** The ACK is lost on the line; the chip still answers. */
  | (FaultBase & { kind: "drop-ack" })
  /** The command frame is lost (or arrives garbled): no ACK, no answer; the host has to resend. */
  | (FaultBase & { kind: "drop-command" })
  /** The DCS of the response (or the LCS of the ACK) goes out wrong; a NACK gets the good frame. */
  | (FaultBase & { kind: "corrupt-checksum"; frame?: "response" | "ack" })
  /** The response comes `ms` later than it would. */
  | (FaultBase & { kind: "late"; ms: number })
  /** ACK, then never an answer. */
  | (FaultBase & { kind: "no-response" })
  /** Junk on the line before the ACK. */
  | (FaultBase & { kind: "garbage"; bytes?: Uint8Array })
  /**
   * The card leaves the field in an InDataExchange: "before" the card sees the APDU, or "after" it has processed
   * (committed) it but before its answer is out. The chip answers `status` (default 0x01, no answer from target).
   */
  | (FaultBase & { kind: "remove-card"; when?: "before" | "after"; status?: number })
  /** InDataExchange answered with this status byte and no data. */
  | (FaultBase & { kind: "status"; status: number });

