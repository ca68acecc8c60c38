/** Command codes and parameter values from UM0701 §7, and the decoders for their answers. */
import { Pn532FrameError } from "./errors";

export const Command = Object.freeze({
  Diagnose: 0x00,
  GetFirmwareVersion: 0x02,
  GetGeneralStatus: 0x04,
  ReadRegister: 0x06,
  WriteRegister: 0x08,
  SetSerialBaudRate: 0x10,
  SetParameters: 0x12,
  SAMConfiguration: 0x14,
  PowerDown: 0x16,
  RFConfiguration: 0x32,
  InDataExchange: 0x40,
  InCommunicateThru: 0x42,
  InDeselect: 0x44,
  InListPassiveTarget: 0x4a,
  InPSL: 0x4e,
  InRelease: 0x52,
  InAutoPoll: 0x60,
});

/**
 * Commands that reach the card: run again after a lost ACK they would run again on the card (a second INITIALIZE
 * with a new random, a second DEBIT). InPSL changes the card's bit rate, also not to be repeated blindly.
 */
export const CARD_COMMANDS: readonly number[] = Object.freeze([Command.InDataExchange, Command.InCommunicateThru, Command.InPSL]);

/** InPSL BRit/BRti codes by bit rate in kbps (docs/pn532.md). */
export const BIT_RATE_CODES: { readonly [kbps: number]: number } = Object.freeze({ 106: 0x00, 212: 0x01, 424: 0x02 });

/**
 * Bit rates (kbps) an ISO 14443-4 card accepts in both directions, from its ATS (without TL): TA(1), present when T0
 * bit 5 is set, has DS in bits 7..5 and DR in bits 3..1 for 212/424/848, and bit 8 set when both directions must match
 * (docs/pn532.md). 106 is always there.
 */
export function atsBitRates(ats: Uint8Array | undefined): number[] {
  const rates = [106];
  if (!ats || ats.length < 2 || !(ats[0]! & 0x10)) return rates;
  const ta = ats[1]!;
  const ds = (ta >> 4) & 0x07;
  const dr = ta & 0x07;
  const both = ds & dr;
  if (both & 0x01) rates.push(212);
  if (both & 0x02) rates.push(424);
  if (both & 0x04) rates.push(848);
  return rates;
}

/** SetSerialBaudRate BR codes by line rate (docs/pn532.md). */
export const SERIAL_BAUD_CODES: { readonly [baud: number]: number } = Object.freeze({
  9600: 0x00, 19200: 0x01, 38400: 0x02, 57600: 0x03, 115200: 0x04, 230400: 0x05, 460800: 0x06, 921600: 0x07, 1288000: 0x08,
});

/** RFConfiguration items. */
export const RfItem = Object.freeze({ Field: 0x01, VariousTimings: 0x02, MaxRtyCOM: 0x04, MaxRetries: 0x05 });

/** SetParameters flag bits. */
export const Param = Object.freeze({
  NADUsed: 0x01, DIDUsed: 0x02, AutomaticATR_RES: 0x04, AutomaticRATS: 0x10, ISO14443_4_PICC: 0x20, RemovePrePostAmble: 0x40,
});

/** InListPassiveTarget BrTy. */
export const BaudModulation = Object.freeze({ TypeA106: 0x00, FeliCa212: 0x01, FeliCa424: 0x02, TypeB106: 0x03, Jewel106: 0x04 });

/** Status byte bits next to the error code. */
export const STATUS_MI = 0x40;
export const STATUS_NAD = 0x80;
/** InDataExchange Tg bit: more pieces of this block follow (host-side chaining). */
export const TG_MI = 0x40;

export interface FirmwareVersion {
  ic: number;
  version: number;
  revision: number;
  /** b0 ISO14443A, b1 ISO14443B, b2 ISO18092. */
  support: number;
}

/** An ISO 14443-A target as InListPassiveTarget / InAutoPoll report it. */
export interface TargetA {
  tg: number;
  /** SENS_RES in the order the PN532 gives it (nfc-list prints it the same way). */
  atqa: Uint8Array;
  sak: number;
  uid: Uint8Array;
  /** ATS without its length byte TL; present when the PN532 ran RATS (SAK bit 0x20 and fAutomaticRATS). */
  ats?: Uint8Array;
}

export function decodeFirmwareVersion(data: Uint8Array): FirmwareVersion {
  if (data.length < 4) throw new Pn532FrameError("GetFirmwareVersion answer shorter than 4 bytes");
  return { ic: data[0]!, version: data[1]!, revision: data[2]!, support: data[3]! };
}

/** Reads one 106A target at `offset`; returns it with the offset after it. */
export function decodeTargetA(data: Uint8Array, offset: number, last: boolean): { target: TargetA; next: number } {
  let i = offset;
  if (data.length < i + 5) throw new Pn532FrameError("106A target data truncated");
  const tg = data[i++]!;
  const atqa = data.slice(i, i + 2);
  i += 2;
  const sak = data[i++]!;
  const uidLength = data[i++]!;
  if (data.length < i + uidLength) throw new Pn532FrameError("106A target UID truncated");
  const uid = data.slice(i, i + uidLength);
  i += uidLength;
  const target: TargetA = { tg, atqa, sak, uid };
  const remaining = data.length - i;
  // The ATS carries no marker of its own: SAK says the card speaks ISO 14443-4, and TL must fit what is left
  // (a second target starts with Tg = 2, which a one-byte-short TL check alone would not rule out).
  if ((sak & 0x20) && remaining > 0) {
    const tl = data[i]!;
    if (tl >= 1 && tl <= remaining && (last || remaining > tl)) {
      target.ats = data.slice(i + 1, i + tl);
      i += tl;
    }
  }
  return { target, next: i };
}

export function decodeListPassiveTarget(data: Uint8Array): TargetA[] {
  if (data.length < 1) throw new Pn532FrameError("InListPassiveTarget answer is empty");
  const count = data[0]!;
  if (count > 2) throw new Pn532FrameError(`InListPassiveTarget reported ${count} targets`);
  const targets: TargetA[] = [];
  let offset = 1;
  for (let n = 0; n < count; n++) {
    const { target, next } = decodeTargetA(data, offset, n === count - 1);
    targets.push(target);
    offset = next;
  }
  return targets;
}

export interface PolledTarget {
  /** InAutoPoll type code (0x10 MIFARE, 0x20 ISO14443-4A, 0x00 generic 106...). */
  type: number;
  /** Decoded for the 106A types; the raw target data otherwise. */
  target?: TargetA;
  data: Uint8Array;
}

const TYPE_A: readonly number[] = Object.freeze([0x00, 0x10, 0x20]);

export function decodeAutoPoll(data: Uint8Array): PolledTarget[] {
  if (data.length < 1) throw new Pn532FrameError("InAutoPoll answer is empty");
  const count = data[0]!;
  const out: PolledTarget[] = [];
  let i = 1;
  for (let n = 0; n < count; n++) {
    if (data.length < i + 2) throw new Pn532FrameError("InAutoPoll target truncated");
    const type = data[i]!;
    const length = data[i + 1]!;
    if (data.length < i + 2 + length) throw new Pn532FrameError("InAutoPoll target data truncated");
    const raw = data.slice(i + 2, i + 2 + length);
    const polled: PolledTarget = { type, data: raw };
    if (TYPE_A.includes(type)) polled.target = decodeTargetA(raw, 0, true).target;
    out.push(polled);
    i += 2 + length;
  }
  return out;
}
