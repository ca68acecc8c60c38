/**
 * The hotlist, matched on what the card keys are bound to. A card's purchase key is diversified from file 0x15 bytes
 * 12..19, the ASN's right 8 bytes, its last 16 digits (docs/purse.md §6.2; the issuer factor of two-level
 * diversification does not hold the ASN either). A T-Union ASN has 4 digits more (bytes 10..11) that no key binds: a
 * hotlisted card that reports other leading digits still gets a MAC1 its own key accepts. So a listed ASN refuses
 * every card with the same factor (docs/fci-fast-path.md, "The hotlist").
 */
import { readFileSync } from "node:fs";
import { toHex } from "../../../modules/bytes/bytes";
import type { BasicData } from "../../../modules/purse/files";
import { ConfigError } from "../config";

/** The digits of the diversification factor: 8 BCD bytes. */
const FACTOR_DIGITS = 16;

export interface HotlistMatch {
  /** The ASN as listed. */
  listed: string;
  /** The factor both share, 16 digits. */
  factor: string;
  /** False when the card's ASN differs from the listed one in digits that no key binds. */
  exact: boolean;
}

export class Hotlist {
  /** Listed ASNs by their factor; several listed ASNs with one factor are one card to the key system. */
  readonly #byFactor = new Map<string, string[]>();

  constructor(asns: readonly string[], file?: string) {
    for (const asn of asns) this.#add(asn, "hotlist");
    if (!file) return;
    const lines = readFileSync(file, "utf8").split("\n");
    lines.forEach((line, i) => {
      const asn = line.replace(/#.*/, "").trim();
      if (asn) this.#add(asn, `${file} line ${i + 1}`);
    });
  }

  /** The cards listed, as the key system tells them apart: one per factor. */
  get size(): number {
    return this.#byFactor.size;
  }

  #add(asn: string, where: string): void {
    // 16 digits: a city card's ASN (all of it the factor); 20: a T-Union ASN; 17..19: a T-Union number as printed,
    // its leading zeros dropped. Fewer digits name no factor.
    if (!/^[0-9]{16,20}$/.test(asn)) throw new ConfigError(`${where}: a hotlisted ASN is 16 to 20 digits, got ${JSON.stringify(asn)}`);
    const factor = asn.slice(-FACTOR_DIGITS);
    const listed = this.#byFactor.get(factor);
    if (listed) listed.push(asn);
    else this.#byFactor.set(factor, [asn]);
  }

  /** The listed ASN whose card keys this card's would be, if any. */
  match(basic: BasicData): HotlistMatch | undefined {
    const factor = toHex(basic.diversificationFactor);
    const listed = this.#byFactor.get(factor);
    if (listed === undefined) return undefined;
    // Exact whatever leading zeros the list kept (a T-Union number is printed without its leading 0).
    const digits = basic.asn.replace(/^0+/, "");
    const exact = listed.find((asn) => asn.replace(/^0+/, "") === digits);
    return { listed: exact ?? listed[0]!, factor, exact: exact !== undefined };
  }
}
