/**
 * Typed failures of the MDB link and of the cashless device. Callers branch on `code`, never on message text.
 * No `name` is assigned: Moddable freezes Error.prototype, so an inherited property cannot be set on an instance.
 */

import { CodedError } from "../errors/errors";

/** The base of the MDB errors: the project's one coded error. */
export class MdbError extends CodedError {}

/** The 8-bit encoding of the 9-bit words was broken (an escape byte followed by something undefined). */
export class MdbWireError extends MdbError {
  readonly byte: number;
  constructor(byte: number) {
    super("MDB_WIRE", `MDB wire encoding: escape FF followed by 0x${hex2(byte)} (docs/mdb.md §5)`);
    this.byte = byte;
  }
}

/** A whole, checksummed block that is not a command of the cashless command set, or has the wrong length. */
export class MdbCommandError extends MdbError {
  readonly block: Uint8Array;
  constructor(block: Uint8Array, why: string) {
    super("MDB_COMMAND", `MDB command ${hexBytes(block)}: ${why}`);
    this.block = block.slice();
  }
}

/** A reader message that does not parse (the VMC simulator's side): unknown code or cut short. */
export class MdbReplyError extends MdbError {
  readonly bytes: Uint8Array;
  constructor(bytes: Uint8Array, why: string) {
    super("MDB_REPLY", `MDB reply ${hexBytes(bytes)}: ${why}`);
    this.bytes = bytes.slice();
  }
}

/** The application asked the device for something its state does not allow (approve with no vend pending...). */
export class MdbStateError extends MdbError {
  readonly state: string;
  constructor(state: string, what: string) {
    super("MDB_STATE", `MDB cashless device in state ${state}: ${what}`);
    this.state = state;
  }
}

/** An option or an amount the MDB formats cannot carry (an address other than 0x10/0x60, money beyond 16 bits...). */
export class MdbParameterError extends MdbError {
  constructor(message: string) {
    super("MDB_PARAMETER", message);
  }
}

export function hex2(n: number): string {
  const digits = "0123456789ABCDEF";
  return digits[(n >> 4) & 15]! + digits[n & 15]!;
}

export function hexBytes(bytes: Uint8Array): string {
  let out = "";
  for (let i = 0; i < bytes.length; i++) out += (i ? " " : "") + hex2(bytes[i]!);
  return out;
}
