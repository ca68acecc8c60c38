/**
 * The purchase `npm start` runs until the terminal lands: virtual cards pay, and the purse cryptography plays the
 * consumption front-end (it makes MAC1 and checks MAC2 and TAC), with every APDU printed and decoded.
 */
import { randomBytes } from "node:crypto";
import { performance } from "node:perf_hooks";
import { ApduError } from "../../modules/iso7816/errors";
import { toHex } from "../../modules/iso7816/hex";
import { formatYuan } from "../../modules/purse/amount";
import { CITY_UNION_APPLICATION, PurseCard, TUNION_APPLICATION } from "../../modules/purse/session";
import { describeCommand, describeResponse, tracingTransceiver, type TraceLine } from "../../modules/purse/trace";
import { VirtualCard, issueCard, type MasterKeys } from "../cardsim/index";
import {
  algorithmFromId, diversifyKey, macEquals, purchaseMac1, purchaseMac2, purchaseSessionKey, purchaseTac,
} from "../purse-crypto/index";

const HELP = `Usage: npm start [-- --json] [-- --help]

Runs electronic-purse purchases between virtual cards (tools/cardsim) and the purse cryptography standing in for
the consumption front-end, and prints every APDU decoded.
  --json   print one JSON object per transaction on stdout, nothing else
  --help   this text
Exits 0 when every scripted purchase ended as scripted.`;

class Decline extends Error {
  constructor(readonly reason: string) {
    super(reason);
  }
}

const args = process.argv.slice(2);
if (args.includes("--help")) {
  console.log(HELP);
  process.exit(0);
}
const unknown = args.filter((a) => a !== "--json");
if (unknown.length) {
  console.error(`unknown option ${unknown[0]}\n\n${HELP}`);
  process.exit(2);
}
const json = args.includes("--json");
const say = (text: string) => { if (!json) console.log(text); };

const master: MasterKeys = { purchase: new Uint8Array(randomBytes(16)), tac: new Uint8Array(randomBytes(16)) };
const terminalId = new Uint8Array([0x31, 0x00, 0x01, 0x02, 0x93, 0x13]);

/** Today in China Standard Time, as the front-end's clock would give it. */
function chinaNow(): { date: string; time: string } {
  const cst = new Date(Date.now() + 8 * 3600_000).toISOString();
  return { date: cst.slice(0, 10).replace(/-/g, ""), time: cst.slice(11, 19).replace(/:/g, "") };
}

const scripted = [
  { name: "3DES T-Union card", expect: "approved", amount: 350,
    card: issueCard([{ layout: "tunion", algorithm: "3des", asn: "03101000000000000123", cityCode: "1000", masterKeys: master, balance: 5000 }]) },
  { name: "SM4 city card", expect: "approved", amount: 200,
    card: issueCard([{ layout: "cityunion", algorithm: "sm4", asn: "4100000089999985", cityCode: "4100", masterKeys: master, balance: 1280 }]) },
  { name: "card with too little money", expect: "declined", amount: 500,
    card: issueCard([{ layout: "tunion", algorithm: "3des", asn: "03101000000000000456", cityCode: "1000", masterKeys: master, balance: 120 }]) },
  { name: "expired card", expect: "declined", amount: 100,
    card: issueCard([{ layout: "tunion", algorithm: "3des", asn: "03101000000000000789", cityCode: "1000", masterKeys: master, balance: 900, expiryDate: "20241231" }]) },
];

let tsn = 0;
let asScripted = 0;
for (const [index, script] of scripted.entries()) {
  const card = new VirtualCard(script.card);
  const started = performance.now();
  const order = `ORDER-${String(index + 1).padStart(4, "0")}`;
  const record: Record<string, unknown> = { order, card: script.name, amount: script.amount };
  say(`\n== ${order}: ${formatYuan(script.amount)} yuan, ${script.name}`);
  const traced = tracingTransceiver(card, (line: TraceLine) => {
    say(`  -> ${describeCommand(line.command)}\n     ${toHex(line.command, " ")}`);
    if (line.response) say(`  <- ${describeResponse(line.command, line.response)}\n     ${toHex(line.response, " ")}`);
    else say(`  <- no answer: ${String(line.error)}`);
  }, () => performance.now());
  const purse = new PurseCard(traced);
  try {
    const { application } = await purse.selectApplication([TUNION_APPLICATION, CITY_UNION_APPLICATION]);
    const basic = await purse.readBasicData(application.layout);
    Object.assign(record, { asn: basic.asn, cityCode: basic.cityCode, application: application.layout });
    const now = chinaNow();
    if (basic.expiryDate < now.date || basic.startDate > now.date) throw new Decline(basic.expiryDate < now.date ? "card-expired" : "card-not-yet-valid");
    const init = await purse.initializeForPurchase({ keyIndex: 1, amount: script.amount, terminalId });
    record.balanceBefore = init.balance;
    if (init.balance + init.overdraftLimit < script.amount) throw new Decline("insufficient-balance");
    // The front-end's part: TSN, date and time, the card's keys from the master keys, MAC1 and the expected MAC2.
    const alg = algorithmFromId(init.algorithmId);
    tsn++;
    const dpk = diversifyKey(alg, master.purchase, basic.diversificationFactor);
    const sessionKey = purchaseSessionKey(alg, dpk, init.random, init.epSerial, tsn);
    const fields = { amount: script.amount, type: 0x06, terminalId, date: now.date, time: now.time };
    const mac1 = purchaseMac1(alg, sessionKey, fields);
    say(`  front-end: ${alg.toUpperCase()} card, TSN ${tsn}, ${now.date} ${now.time}, MAC1 ${toHex(mac1)}`);
    const debit = await purse.debitForPurchase({ tsn, date: now.date, time: now.time, mac1 });
    const mac2Ok = macEquals(debit.mac2, purchaseMac2(alg, sessionKey, script.amount));
    const tacOk = macEquals(debit.tac, purchaseTac(alg, diversifyKey(alg, master.tac, basic.diversificationFactor), { ...fields, tsn }));
    say(`  front-end: MAC2 ${mac2Ok ? "verified" : "WRONG"}, TAC ${tacOk ? "verified" : "WRONG"}`);
    if (!mac2Ok || !tacOk) throw new Error("the card's proof did not verify");
    Object.assign(record, { result: "approved", tsn, tac: toHex(debit.tac), balanceAfter: init.balance - script.amount, level: null });
  } catch (error) {
    if (error instanceof Decline) record.result = "declined", record.reason = error.reason;
    else if (error instanceof ApduError && error.sw === 0x9401) record.result = "declined", record.reason = "insufficient-balance";
    else record.result = "error", record.reason = String(error);
  }
  record.ms = Math.round((performance.now() - started) * 100) / 100;
  if (record.result === script.expect) asScripted++;
  if (json) console.log(JSON.stringify(record));
  else say(`  => ${String(record.result).toUpperCase()}${record.reason ? ` (${String(record.reason)})` : ""}` +
    `${record.balanceAfter !== undefined ? `, balance ${formatYuan(record.balanceBefore as number)} -> ${formatYuan(record.balanceAfter as number)}` : ""}`);
}

say(`\n${asScripted} of ${scripted.length} purchases ended as scripted.`);
process.exit(asScripted === scripted.length ? 0 : 1);
