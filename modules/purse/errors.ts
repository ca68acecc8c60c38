import { CodedError } from "../errors/errors";

/** Bytes from a card, or arguments for one, that do not fit the electronic-purse formats. */
export class PurseFormatError extends CodedError {
  constructor(message: string) {
    super("PURSE_FORMAT", message);
  }
}
