/**
 * The base of every error the project throws: a stable `code` that callers and logs can rely on, and a class that
 * callers test with `instanceof`.
 *
 * `name` is defined as an own property, never assigned: Moddable's runtime freezes the primordials, Error.prototype
 * included, and assigning an inherited read-only property throws there ("set name: not writable").
 */
export class CodedError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
    Object.defineProperty(this, "name", { value: new.target.name, writable: true, configurable: true, enumerable: false });
  }
}
