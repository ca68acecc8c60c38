import { statusName } from "./status";
import { toHex } from "./hex";

/** A command or response that does not follow ISO/IEC 7816-4 encoding. */
export class ApduFormatError extends Error {
  readonly code = "APDU_FORMAT";
  constructor(message: string) {
    super(message);
    this.name = "ApduFormatError";
  }
}

/** The card answered with a status word other than the one the caller can accept. */
export class ApduError extends Error {
  readonly code = "APDU_STATUS";
  readonly sw: number;
  readonly command: string;
  constructor(sw: number, command = "") {
    super(`${command ? command + ": " : ""}card answered ${toHex(new Uint8Array([sw >> 8, sw & 0xff]))} (${statusName(sw)})`);
    this.name = "ApduError";
    this.sw = sw;
    this.command = command;
  }
}

/** The card kept asking for GET RESPONSE / re-issue beyond any sane bound: it is answering garbage. */
export class ApduProtocolError extends Error {
  readonly code = "APDU_PROTOCOL";
  constructor(message: string) {
    super(message);
    this.name = "ApduProtocolError";
  }
}
