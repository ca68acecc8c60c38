/**
 * `npm run cards -- issue` (main.ts): a virtual card's file for the PN532 emulator, personalised from a development
 * key store's master keys, so that a front-end holding that key store authorizes its purchases.
 */
import { randomInt } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { CodedError } from "../../../modules/errors/errors";
import { readDevelopmentMasterKeys, type KeyStoreFile } from "../../frontend/keys/keystore";
import type { PurseAlgorithm } from "../../purse-crypto/index";
import { VirtualCard } from "./card";
import { issueCard, type ApplicationProfile } from "./issue";

export class CardsUsageError extends CodedError {
  constructor(message: string) {
    super("CARDS_USAGE", message);
  }
}

export const CARDS_HELP = `Usage: npm run cards -- issue --keystore <file> --out <card.json> [options]

Writes a virtual card for the PN532 emulator, its keys diversified from the key store's master keys.
  --keystore <file>         a development key file (npm run frontend -- keys --out writes one; format purse-keystore/1)
  --out <card.json>         the card file to write (refused if it exists, unless --force)
  --balance <fen>           the purse balance in fen (default 5000, that is 50.00 yuan)
  --layout tunion|cityunion a T-Union card (default) or a city card
  --city <code>             the card's city code, 4 digits (default 1000); it picks the front-end level
  --algorithm 3des|sm4      the purse algorithm (default: 3des for T-Union, sm4 for a city card)
  --asn <digits>            the card number (default: random; 20 digits for T-Union, 16 for a city card)
  --key-index <n>           the purchase key index and version the card uses (default 1 and 1)
  --key-version <n>
  --expiry <YYYYMMDD>       the application's expiry date (default 20391231)
  --force                   overwrite --out
Then: tsx tools/sim/pn532sim/main.ts --port <serial> --card <card.json>`;

export interface IssueOptions {
  keystore: string;
  out: string;
  balance: number;
  layout: "tunion" | "cityunion";
  city: string;
  algorithm: PurseAlgorithm;
  asn: string;
  keyIndex: number;
  keyVersion: number;
  expiryDate?: string;
  force: boolean;
}

function integer(name: string, text: string | undefined, fallback: number, min: number, max: number): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!/^[0-9]+$/.test(text) || n < min || n > max) throw new CardsUsageError(`--${name} takes a whole number ${min}..${max} (got ${text})`);
  return n;
}

/** Reads `issue`'s options; a bad one is a CardsUsageError naming it. */
export function parseIssueOptions(args: string[]): IssueOptions {
  const { values } = parseArgs({
    args, strict: true, options: {
      keystore: { type: "string" }, out: { type: "string" }, balance: { type: "string" }, layout: { type: "string" },
      city: { type: "string" }, algorithm: { type: "string" }, asn: { type: "string" }, "key-index": { type: "string" },
      "key-version": { type: "string" }, expiry: { type: "string" }, force: { type: "boolean" },
    },
  });
  if (!values.keystore || !values.out) throw new CardsUsageError("issue needs --keystore <file> and --out <card.json>");
  const layout = values.layout ?? "tunion";
  if (layout !== "tunion" && layout !== "cityunion") throw new CardsUsageError(`--layout takes tunion or cityunion (got ${layout})`);
  const city = values.city ?? "1000";
  if (!/^[0-9]{4}$/.test(city)) throw new CardsUsageError(`--city takes a 4-digit city code (got ${city})`);
  const algorithm = values.algorithm ?? (layout === "tunion" ? "3des" : "sm4");
  if (algorithm !== "3des" && algorithm !== "sm4") throw new CardsUsageError(`--algorithm takes 3des or sm4 (got ${algorithm})`);
  // A T-Union ASN starts 0310 and the city code; a city card's starts with its city code. The rest is random.
  const serial = () => String(randomInt(1e12)).padStart(12, "0");
  const asn = values.asn ?? (layout === "tunion" ? `0310${city}${serial()}` : `${city}${serial()}`);
  if (!new RegExp(`^[0-9]{${layout === "tunion" ? 20 : 16}}$`).test(asn)) {
    throw new CardsUsageError(`--asn takes ${layout === "tunion" ? 20 : 16} digits for a ${layout} card (got ${asn})`);
  }
  if (values.expiry !== undefined && !/^20[0-9]{2}(0[1-9]|1[0-2])(0[1-9]|[12][0-9]|3[01])$/.test(values.expiry)) {
    throw new CardsUsageError(`--expiry takes a date YYYYMMDD (got ${values.expiry})`);
  }
  return {
    keystore: values.keystore, out: values.out, layout, city, algorithm, asn, force: !!values.force, expiryDate: values.expiry,
    balance: integer("balance", values.balance, 5000, 0, 99_999_999),
    keyIndex: integer("key-index", values["key-index"], 1, 0, 255), keyVersion: integer("key-version", values["key-version"], 1, 0, 255),
  };
}

/** Personalises the card from the key store and writes its file; returns the card. */
export function issueCardFile(o: IssueOptions): VirtualCard {
  if (existsSync(o.out) && !o.force) throw new CardsUsageError(`${o.out} exists (--force overwrites it)`);
  const ref = { keyIndex: o.keyIndex, keyVersion: o.keyVersion, algorithm: o.algorithm };
  // A card holds one-level keys, Div(MK, ASN); a two-level entry would make a card its own front-end refuses.
  const entry = (JSON.parse(readFileSync(o.keystore, "utf8")) as KeyStoreFile).keys
    ?.find((k) => k.keyIndex === ref.keyIndex && k.keyVersion === ref.keyVersion && k.algorithm === ref.algorithm);
  if (entry?.derivation === "two-level") throw new CardsUsageError(`key ${o.keyIndex}/${o.keyVersion}/${o.algorithm} in ${o.keystore} is two-level; only one-level keys can be issued here`);
  const profile: ApplicationProfile = {
    layout: o.layout, algorithm: o.algorithm, asn: o.asn, cityCode: o.city, balance: o.balance, keyIndex: o.keyIndex,
    keyVersion: o.keyVersion, expiryDate: o.expiryDate, masterKeys: readDevelopmentMasterKeys(o.keystore, ref),
  };
  const card = new VirtualCard(issueCard([profile]));
  card.save(o.out);
  return card;
}
