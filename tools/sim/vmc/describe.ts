// MDB commands and reader messages as one readable line each, for the simulation's log:
// "-> VEND REQUEST price 3.50 item 12", "<- VEND APPROVED 3.50".
import type { Command } from "../../../modules/mdb/commands";
import type { Reply } from "../../../modules/mdb/replies";

/** Wire money as yuan with the reader's scale and decimals (fen: scale 1, decimals 2). */
function money(n: number, scale: number, decimals: number): string {
  return ((n * scale) / 10 ** decimals).toFixed(decimals);
}

export function describeCommand(c: Command, scale = 1, decimals = 2): string {
  const m = (n: number) => money(n, scale, decimals);
  switch (c.kind) {
    case "setup-config": return `SETUP CONFIG level ${c.vmcLevel} display ${c.columns}x${c.rows}`;
    case "setup-prices": return `SETUP MAX/MIN PRICE ${m(c.max)}/${m(c.min)}`;
    case "vend-request": return `VEND REQUEST price ${m(c.price)} item ${c.item}`;
    case "vend-success": return `VEND SUCCESS item ${c.item}`;
    case "cash-sale": return `CASH SALE ${m(c.price)} item ${c.item}`;
    case "negative-vend": return `NEGATIVE VEND ${m(c.value)} item ${c.item}`;
    case "revalue-request": return `REVALUE REQUEST ${m(c.amount)}`;
    case "request-id": return `EXPANSION REQUEST ID ${c.manufacturer.trim()} ${c.model.trim()}`;
    case "optional-features": return `EXPANSION OPTIONAL FEATURES 0x${c.bits.toString(16).padStart(8, "0")}`;
    default: return c.kind.replace(/-/g, " ").toUpperCase();
  }
}

export function describeReply(r: Reply, scale = 1, decimals = 2): string {
  const m = (n: number) => money(n, scale, decimals);
  switch (r.kind) {
    case "reader-config": return `READER CONFIG level ${r.level} currency ${r.currency.toString(16)} Z7 ${r.maxResponse}s misc 0x${r.misc.toString(16)}`;
    case "begin-session": return `BEGIN SESSION funds ${r.funds === 0xffff || r.funds === 0xffffffff ? "unknown" : m(r.funds)}`;
    case "vend-approved": return `VEND APPROVED ${m(r.amount)}`;
    case "peripheral-id": return `PERIPHERAL ID ${r.manufacturer} ${r.serial} ${r.model.trim()}${r.options === undefined ? "" : ` options 0x${r.options.toString(16)}`}`;
    case "malfunction": return `MALFUNCTION 0x${r.code.toString(16).toUpperCase()}${r.code >> 4 === 0xc ? " (refund failed)" : ""}`;
    case "out-of-sequence": return `COMMAND OUT OF SEQUENCE${r.state === undefined ? "" : ` state ${r.state}`}`;
    case "revalue-limit": return `REVALUE LIMIT ${m(r.amount)}`;
    default: return r.kind.replace(/-/g, " ").toUpperCase();
  }
}
