import { hexByte } from "../bytes/bytes";
import { CodedError } from "../errors/errors";

/**
 * Typed failures of the PN532 link and of the chip's status byte. Callers branch on `code`, never on message text:
 * the purse layer treats PN532_CARD_GONE and PN532_RF_TIMEOUT as a possible tear, the rest as reader faults.
 */

export class Pn532Error extends CodedError {
  constructor(code: string, message: string) {
    super(code, message);
  }
}

/** No ACK after every resend, or no response frame before the deadline. */
export class Pn532TimeoutError extends Pn532Error {
  readonly phase: "ack" | "response";
  readonly command: number;
  constructor(command: number, phase: "ack" | "response", ms: number) {
    super("PN532_TIMEOUT", `PN532 command 0x${hexByte(command)}: no ${phase === "ack" ? "ACK" : "response"} within ${ms} ms`);
    this.phase = phase;
    this.command = command;
  }
}

/** A response frame kept arriving damaged after every NACK, or it was not the answer the command calls for. */
export class Pn532FrameError extends Pn532Error {
  constructor(message: string) {
    super("PN532_FRAME", message);
  }
}

/** The chip answered with the syntax-error frame (TFI 7F): unknown command or bad parameters. */
export class Pn532ApplicationError extends Pn532Error {
  readonly command: number;
  constructor(command: number) {
    super("PN532_APPLICATION_ERROR", `PN532 rejected command 0x${hexByte(command)} (error frame)`);
    this.command = command;
  }
}

/** A non-zero status byte (bits 5..0). Subclasses cover the codes a caller acts on differently. */
export class Pn532StatusError extends Pn532Error {
  readonly status: number;
  readonly command: number;
  constructor(command: number, status: number, code = "PN532_STATUS", what = statusText(status)) {
    super(code, `PN532 command 0x${hexByte(command)}: status 0x${hexByte(status)} (${what})`);
    this.status = status;
    this.command = command;
  }
}

/** Status 0x01: the target did not answer in time (it may have left the field mid-exchange). */
export class Pn532RfTimeoutError extends Pn532StatusError {
  constructor(command: number, status = 0x01) {
    super(command, status, "PN532_RF_TIMEOUT");
  }
}

/** Status 0x29, 0x2A, 0x2B: the activated card is no longer the one in the field, or is gone. */
export class Pn532CardGoneError extends Pn532StatusError {
  constructor(command: number, status: number) {
    super(command, status, "PN532_CARD_GONE");
  }
}

/** Status 0x02..0x06, 0x0B, 0x13: the RF exchange itself broke (CRC, parity, framing, protocol). */
export class Pn532RfError extends Pn532StatusError {
  constructor(command: number, status: number) {
    super(command, status, "PN532_RF_ERROR");
  }
}

/** Nothing in the field answered the poll, or an exchange was asked for with no activated target. */
export class Pn532NoCardError extends Pn532Error {
  constructor(message = "no card in the field") {
    super("PN532_NO_CARD", message);
  }
}

/** The caller (or close) cancelled the command; the chip was told with an ACK frame. */
export class Pn532AbortedError extends Pn532Error {
  constructor(message = "PN532 command aborted") {
    super("PN532_ABORTED", message);
  }
}

export class Pn532ClosedError extends Pn532Error {
  constructor() {
    super("PN532_CLOSED", "PN532 driver is closed");
  }
}

/** The serial line refused our bytes (output buffer full, port gone). */
export class Pn532IoError extends Pn532Error {
  constructor(message: string) {
    super("PN532_IO", message);
  }
}

/** A parameter outside what the chip or the frame format can carry (an APDU too long, a bad target number). */
export class Pn532ParameterError extends Pn532Error {
  constructor(message: string) {
    super("PN532_PARAMETER", message);
  }
}

const STATUS_TEXT: { readonly [status: number]: string } = Object.freeze({
  0x01: "target did not answer", 0x02: "RF CRC error", 0x03: "RF parity error", 0x04: "wrong bit count in anticollision",
  0x05: "MIFARE framing error", 0x06: "bit collision in anticollision", 0x07: "communication buffer too small",
  0x09: "RF buffer overflow", 0x0a: "RF field not switched on in time", 0x0b: "RF protocol error", 0x0d: "overheating",
  0x0e: "internal buffer overflow", 0x10: "invalid parameter", 0x12: "DEP command not supported", 0x13: "RF data format error",
  0x14: "MIFARE authentication error", 0x23: "UID check byte wrong", 0x25: "DEP invalid state", 0x26: "operation not allowed",
  0x27: "command not acceptable in the current context", 0x29: "target released", 0x2a: "card exchanged",
  0x2b: "card disappeared", 0x2c: "NFCID3 mismatch", 0x2d: "over-current", 0x2e: "NAD missing",
});

export function statusText(status: number): string {
  return STATUS_TEXT[status] ?? "unknown status";
}

/** The typed error for a status byte, or undefined for success. Bits 7 (NAD) and 6 (MI) are not part of the code. */
export function statusError(command: number, statusByte: number): Pn532StatusError | undefined {
  const status = statusByte & 0x3f;
  switch (status) {
    case 0x00: return undefined;
    case 0x01: return new Pn532RfTimeoutError(command, status);
    case 0x29: case 0x2a: case 0x2b: return new Pn532CardGoneError(command, status);
    case 0x02: case 0x03: case 0x04: case 0x05: case 0x06: case 0x0b: case 0x13: return new Pn532RfError(command, status);
    default: return new Pn532StatusError(command, status);
  }
}

