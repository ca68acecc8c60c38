import { statusName } from "./status";
import { toHex } from "../bytes/bytes";
import { CodedError } from "../errors/errors";

/** A command or response that does not follow ISO/IEC 7816-4 encoding. */
export class ApduFormatError extends CodedError {
  constructor(message: string) {
    super("APDU_FORMAT", message);
  }
}

/** The card answered with a status word other than the one the caller can accept. */
export class ApduError extends CodedError {
  readonly sw: number;
  readonly command: string;
  constructor(sw: number, command = "") {
    super("APDU_STATUS", `${command ? command + ": " : ""}card answered ${toHex(new Uint8Array([sw >> 8, sw & 0xff]))} (${statusName(sw)})`);
    this.sw = sw;
    this.command = command;
  }
}

/** The card kept asking for GET RESPONSE / re-issue beyond any sane bound: it is answering garbage. */
export class ApduProtocolError extends CodedError {
  constructor(message: string) {
    super("APDU_PROTOCOL", message);
  }
}
