/** Bytes from a card, or arguments for one, that do not fit the electronic-purse formats. */
export class PurseFormatError extends Error {
  readonly code = "PURSE_FORMAT";
  constructor(message: string) {
    super(message);
    this.name = "PurseFormatError";
  }
}
