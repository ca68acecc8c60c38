/**
 * Transit cards carried in a phone (a T-Union or city card in the phone's embedded secure element, or emulated by an
 * app through the phone's NFC controller): the same purse application, answering as a phone does. Slower commands,
 * with S(WTX) requests during DEBIT; a larger FWI; an ATS of their own; some stay at 106 kbps whatever their ATS says;
 * and the phone may leave the field in the middle of an exchange and come back. Where the numbers come from:
 * docs/phone-wallets.md (ISO 14443-4 rules and public descriptions, not a measured phone).
 */

export interface PhoneProfile {
  /** A short name for reports and the benchmark. */
  name: string;
  /** ATS without TL: T0, TA(1), TB(1) (FWI in the high nibble), TC(1), historical bytes. */
  ats: string;
  /** Card time per instruction byte, ms; an INS not listed takes `otherMs`. */
  processingMs: { readonly [ins: number]: number };
  otherMs: number;
  /** The highest bit rate the phone answers a PPS for, kbps (its ATS may offer more). */
  maxPpsKbps?: number;
  /** After leaving the field in a tear, the phone is back this long after, ms. */
  returnsAfterMs?: number;
}

/**
 * A purse in a phone's embedded secure element: FWI 9 (155 ms) instead of a plastic card's 8, DEBIT 300 ms so one
 * S(WTX) during it; 212 and 424 kbps offered and taken.
 */
export const PHONE_SECURE_ELEMENT: PhoneProfile = Object.freeze({
  name: "phone-se",
  ats: "7877910280",
  processingMs: Object.freeze({ 0xa4: 35, 0xb0: 30, 0xb2: 30, 0x5c: 30, 0x50: 45, 0x54: 300, 0x52: 300, 0x5a: 35, 0xc0: 20 }),
  otherMs: 30,
});

/** The same secure element at its slowest: DEBIT 400 ms, two S(WTX) requests. */
export const PHONE_SECURE_ELEMENT_SLOW: PhoneProfile = Object.freeze({
  ...PHONE_SECURE_ELEMENT,
  name: "phone-se-slow",
  processingMs: Object.freeze({ ...PHONE_SECURE_ELEMENT.processingMs, 0x54: 400, 0x52: 400 }),
});

/**
 * A phone whose ATS offers 212 and 424 kbps but which leaves a PPS above 106 unanswered (InPSL fails, the tap runs at
 * 106); FWI 7 (39 ms) with DEBIT 150 ms, so three S(WTX) requests.
 */
export const PHONE_106_ONLY: PhoneProfile = Object.freeze({
  name: "phone-106",
  ats: "78777002",
  processingMs: Object.freeze({ 0xa4: 25, 0xb0: 20, 0xb2: 20, 0x5c: 20, 0x50: 30, 0x54: 150, 0x52: 150, 0x5a: 25, 0xc0: 15 }),
  otherMs: 20,
  maxPpsKbps: 106,
});

export const PHONE_PROFILES: readonly PhoneProfile[] = Object.freeze([PHONE_SECURE_ELEMENT, PHONE_SECURE_ELEMENT_SLOW, PHONE_106_ONLY]);
