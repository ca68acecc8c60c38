// Status words seen on PBOC / JT/T 978 electronic-purse cards (docs/purse.md §5).

export const SW = Object.freeze({
  OK: 0x9000,
  FILE_INVALIDATED: 0x6283,
  WRONG_LENGTH: 0x6700,
  INCOMPATIBLE_FILE: 0x6981,
  SECURITY_NOT_SATISFIED: 0x6982,
  AUTH_BLOCKED: 0x6983,
  CONDITIONS_NOT_SATISFIED: 0x6985,
  SM_MAC_INCORRECT: 0x6988,
  FUNCTION_NOT_SUPPORTED: 0x6a81,
  FILE_NOT_FOUND: 0x6a82,
  RECORD_NOT_FOUND: 0x6a83,
  WRONG_P1P2: 0x6a86,
  DATA_NOT_FOUND: 0x6a88,
  INS_NOT_SUPPORTED: 0x6d00,
  CLA_NOT_SUPPORTED: 0x6e00,
  INSUFFICIENT_BALANCE_ED: 0x9301,
  MAC_INVALID: 0x9302,
  APPLICATION_LOCKED: 0x9303,
  INSUFFICIENT_BALANCE: 0x9401,
  COUNTER_AT_MAXIMUM: 0x9402,
  KEY_INDEX_NOT_SUPPORTED: 0x9403,
  MAC_TAC_NOT_AVAILABLE: 0x9406,
} as const);

// Frozen so that a preloaded build keeps these tables in flash.
const NAMES: { readonly [sw: number]: string } = Object.freeze({
  0x9000: "success",
  0x6283: "selected file invalidated",
  0x6700: "wrong length",
  0x6981: "command incompatible with file structure",
  0x6982: "security status not satisfied",
  0x6983: "authentication method blocked",
  0x6985: "conditions of use not satisfied",
  0x6988: "secure-messaging MAC incorrect",
  0x6a81: "function not supported",
  0x6a82: "file or application not found",
  0x6a83: "record not found",
  0x6a86: "incorrect P1/P2",
  0x6a88: "referenced data not found",
  0x6d00: "instruction not supported",
  0x6e00: "class not supported",
  0x9301: "insufficient balance",
  0x9302: "MAC invalid",
  0x9303: "application permanently locked",
  0x9401: "insufficient balance",
  0x9402: "transaction counter at maximum",
  0x9403: "key index not supported",
  0x9406: "MAC/TAC not available",
});

export function statusName(sw: number): string {
  const known = NAMES[sw];
  if (known) return known;
  const sw1 = sw >> 8;
  if (sw1 === 0x61) return `${sw & 0xff} more bytes available`;
  if (sw1 === 0x6c) return `wrong Le, exact length ${sw & 0xff}`;
  if (sw1 === 0x62 || sw1 === 0x63) return "warning";
  if (sw1 === 0x64 || sw1 === 0x65) return "execution error";
  return "unknown status";
}
