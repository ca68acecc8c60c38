/** Personalisation: builds a card's applications and keys from issuer master keys, as a card bureau would. */
import { concatBytes, fromHex, toHex } from "../../../modules/bytes/bytes";
import { encodeBcd, encodeDate } from "../../../modules/purse/bcd";
import { AID_CITY_UNION, AID_TUNION } from "../../../modules/purse/commands";
import { diversifyKey, type MasterKeys, type PurseAlgorithm } from "../../purse-crypto/index";

export type { MasterKeys };
import type { ApplicationState, CardState } from "./card";

export interface ApplicationProfile {
  layout: "tunion" | "cityunion";
  algorithm: PurseAlgorithm;
  /** 20 digits for a T-Union ASN, 16 for a city card. */
  asn: string;
  /** 4 digits, e.g. "1000" (Beijing), "4100" (Changsha). */
  cityCode: string;
  masterKeys: MasterKeys;
  balance: number;
  overdraftLimit?: number;
  epSerial?: number;
  keyIndex?: number;
  keyVersion?: number;
  cardType?: number;
  startDate?: string;
  expiryDate?: string;
  /** City cards only: byte 8 of file 0x15; false makes an application that is not enabled. */
  enabled?: boolean;
}

export function issueApplication(p: ApplicationProfile): ApplicationState {
  const tunion = p.layout === "tunion";
  if (!/^[0-9]{4}$/.test(p.cityCode)) throw new Error(`city code must be 4 digits, got ${p.cityCode}`);
  if (!new RegExp(`^[0-9]{${tunion ? 20 : 16}}$`).test(p.asn)) throw new Error(`ASN must be ${tunion ? 20 : 16} digits`);
  const dates = concatBytes(encodeDate(p.startDate ?? "20240101"), encodeDate(p.expiryDate ?? "20391231"));
  const cardType = p.cardType ?? (tunion ? 0x02 : 0x01);
  const basic = tunion
    ? concatBytes(fromHex(`0101${p.cityCode}FFFFFFFF`), new Uint8Array([cardType, 0x01]), encodeBcd(p.asn), dates, new Uint8Array(2))
    : concatBytes(fromHex(p.cityCode), fromHex(p.cityCode), new Uint8Array(4), new Uint8Array([p.enabled === false ? 0 : 1, 0x01, 0, 0]),
      encodeBcd(p.asn), dates, new Uint8Array([cardType, 0]));
  const factor = basic.slice(12, 20);
  const holder = new Uint8Array(55);
  holder[0] = cardType;
  const management = tunion ? fromHex(`00000156${p.cityCode}${p.cityCode}000001`) : new Uint8Array(48);
  return {
    layout: p.layout,
    aid: toHex(tunion ? AID_TUNION : AID_CITY_UNION),
    algorithm: p.algorithm,
    keyIndex: p.keyIndex ?? 1,
    keyVersion: p.keyVersion ?? 1,
    dpk: toHex(diversifyKey(p.algorithm, p.masterKeys.purchase, factor)),
    dtk: toHex(diversifyKey(p.algorithm, p.masterKeys.tac, factor)),
    basicData: toHex(basic),
    holderData: toHex(holder),
    managementData: toHex(management),
    balance: p.balance,
    overdraftLimit: p.overdraftLimit ?? 0,
    epSerial: p.epSerial ?? 0,
    log: [],
    lastTransaction: null,
    ...(p.masterKeys.load ? { dlk: toHex(diversifyKey(p.algorithm, p.masterKeys.load, factor)), onlineSerial: 0, lastLoad: null } : {}),
  };
}

/** A whole card: one or two EP applications (a card carrying both answers to either AID) and its RF identity. */
export function issueCard(applications: ApplicationProfile[], uid?: string): CardState {
  if (!applications.length) throw new Error("a card needs at least one application");
  return {
    uid: uid ?? `04${applications[0]!.asn.slice(-12)}`,
    atqa: "0344",
    sak: 0x20,
    // TL is added by the reader; FSCI 5 (64 bytes), FWI 8 (77 ms), CID supported.
    ats: "7577810280",
    applications: applications.map(issueApplication),
  };
}
