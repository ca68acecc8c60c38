import { ApduFormatError } from "./errors";

/** A short command APDU (ISO/IEC 7816-4 §5.1). `le` is the expected length, 1..256; absent means none expected. */
export interface CommandApdu {
  cla: number;
  ins: number;
  p1: number;
  p2: number;
  data?: Uint8Array;
  le?: number;
}

export interface ResponseApdu {
  data: Uint8Array;
  sw: number;
}

function checkByte(name: string, value: number): void {
  if (!Number.isInteger(value) || value < 0 || value > 255) throw new ApduFormatError(`${name} must be a byte, got ${value}`);
}

/** Encodes cases 1 to 4 with short Lc and Le. */
export function encodeCommand(command: CommandApdu): Uint8Array {
  checkByte("CLA", command.cla);
  checkByte("INS", command.ins);
  checkByte("P1", command.p1);
  checkByte("P2", command.p2);
  const data = command.data;
  if (data && data.length > 255) throw new ApduFormatError(`command data of ${data.length} bytes needs extended length`);
  const le = command.le;
  if (le !== undefined && (!Number.isInteger(le) || le < 1 || le > 256)) throw new ApduFormatError(`Le must be 1..256, got ${le}`);
  const hasData = data !== undefined && data.length > 0;
  const out = new Uint8Array(4 + (hasData ? 1 + data.length : 0) + (le !== undefined ? 1 : 0));
  out[0] = command.cla;
  out[1] = command.ins;
  out[2] = command.p1;
  out[3] = command.p2;
  let offset = 4;
  if (hasData) {
    out[offset++] = data.length;
    out.set(data, offset);
    offset += data.length;
  }
  if (le !== undefined) out[offset] = le & 0xff; // 256 is encoded as 00
  return out;
}

/** Decodes a short command APDU, telling the four cases apart by length as ISO/IEC 7816-3 §12.1.3 does. */
export function decodeCommand(bytes: Uint8Array): CommandApdu {
  if (bytes.length < 4) throw new ApduFormatError(`command APDU of ${bytes.length} bytes is shorter than its header`);
  const command: CommandApdu = { cla: bytes[0]!, ins: bytes[1]!, p1: bytes[2]!, p2: bytes[3]! };
  if (bytes.length === 4) return command;
  const first = bytes[4]!;
  if (bytes.length === 5) {
    command.le = first === 0 ? 256 : first;
    return command;
  }
  if (first === 0) throw new ApduFormatError("extended-length command APDUs are not supported");
  if (bytes.length === 5 + first) {
    command.data = bytes.slice(5, 5 + first);
    return command;
  }
  if (bytes.length === 6 + first) {
    command.data = bytes.slice(5, 5 + first);
    const le = bytes[5 + first]!;
    command.le = le === 0 ? 256 : le;
    return command;
  }
  throw new ApduFormatError(`command APDU length ${bytes.length} does not match Lc ${first}`);
}

export function decodeResponse(bytes: Uint8Array): ResponseApdu {
  if (bytes.length < 2) throw new ApduFormatError(`response APDU of ${bytes.length} bytes has no status word`);
  const end = bytes.length - 2;
  return { data: bytes.slice(0, end), sw: (bytes[end]! << 8) | bytes[end + 1]! };
}

export function encodeResponse(data: Uint8Array | undefined, sw: number): Uint8Array {
  const length = data ? data.length : 0;
  const out = new Uint8Array(length + 2);
  if (data) out.set(data);
  out[length] = (sw >> 8) & 0xff;
  out[length + 1] = sw & 0xff;
  return out;
}
