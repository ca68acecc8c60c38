/**
 * Harness scenarios: JSON or YAML files describing what a vending controller does (pay, cancel, status, raw lines),
 * what happens at the reader (cards tapped and removed, tears, PN532 faults) and what must come back (events with
 * chosen fields, card balances). Everything is checked when the file is read, so a run never starts on a typo.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { LineCounter, parseDocument } from "yaml";
import { PHONE_PROFILES } from "../../sim/cardsim/phone";
import type { Fault } from "../../sim/pn532sim/emulator";
import { CodedError } from "../../../modules/errors/errors";
import { decodeCommand, encodeCommand } from "../../../modules/mdb/commands";
import type { MdbReplies, MdbStep } from "./mdb";

export class ScenarioError extends CodedError {
  readonly file: string;
  constructor(file: string, message: string) {
    super("SCENARIO_INVALID", `${file}: ${message}`);
    this.file = file;
  }
}

export interface CardDefinition {
  layout: "tunion" | "cityunion";
  algorithm: "3des" | "sm4";
  /** Digits; a fresh unique one when absent, so a scenario can run again against the same front-end. */
  asn?: string;
  cityCode: string;
  balance: number;
  overdraftLimit?: number;
  epSerial?: number;
  keyIndex?: number;
  keyVersion?: number;
  startDate?: string;
  expiryDate?: string;
  enabled?: boolean;
  /** The card is in a phone: a profile of tools/sim/cardsim/phone.ts by name (docs/phone-wallets.md). */
  phone?: string;
  /** A phone that leaves the field in a tear is back by itself this long after, ms. */
  phoneReturnsAfterMs?: number;
}

export type Step =
  | { pay: { amount: number; order: string; timeoutMs?: number } }
  | { cancel: true }
  | { status: true }
  | { send: string }
  | { tap: string }
  | { remove: string }
  | { tear: { card: string; command: string | number; when: "before" | "after"; occurrence?: number } }
  | { fault: Fault }
  | { expect: { event: string; within?: number; [field: string]: unknown } }
  | { check: { card: string; balance?: number; epSerial?: number } }
  | { wait: number }
  | { reset: { command?: string; within?: number } }
  | { mdb: MdbStep };

export interface Scenario {
  name: string;
  file: string;
  description?: string;
  /** Default wait for each `expect`, ms. */
  timeoutMs: number;
  cards: { [name: string]: CardDefinition };
  steps: Step[];
  /** Where each step starts in the file (line numbers), for failure messages. */
  lines: number[];
}

/** Named profiles a scenario may start a card from (`profile: tunion-3des`), then override fields. */
export const CARD_PROFILES: { [name: string]: CardDefinition } = {
  "tunion-3des": { layout: "tunion", algorithm: "3des", cityCode: "1000", balance: 5000 },
  "city-sm4": { layout: "cityunion", algorithm: "sm4", cityCode: "4100", balance: 5000 },
};

const STEP_KINDS = ["pay", "cancel", "status", "send", "tap", "remove", "tear", "fault", "expect", "check", "wait", "reset", "mdb"] as const;
const FAULT_KINDS = ["drop-ack", "drop-command", "corrupt-checksum", "late", "no-response", "garbage", "remove-card", "status"];
const TEAR_COMMANDS = ["select", "read", "balance", "init", "debit", "prove"];

type Json = unknown;

function isObject(v: Json): v is { [k: string]: Json } {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Reads a scenario file: one scenario, or `{scenarios: [...]}` for several. */
export function loadScenarioFile(file: string): Scenario[] {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    throw new ScenarioError(file, `cannot read: ${(error as Error).message}`);
  }
  return parseScenarios(text, file);
}

export function parseScenarios(text: string, file: string): Scenario[] {
  const ext = path.extname(file).toLowerCase();
  let data: Json;
  const lineCounter = new LineCounter();
  let doc: ReturnType<typeof parseDocument> | undefined;
  if (ext === ".json") {
    try {
      data = JSON.parse(text);
    } catch (error) {
      throw new ScenarioError(file, `not valid JSON: ${(error as Error).message}`);
    }
  } else if (ext === ".yaml" || ext === ".yml") {
    doc = parseDocument(text, { lineCounter, prettyErrors: false });
    if (doc.errors.length) {
      const e = doc.errors[0]!;
      const at = lineCounter.linePos(e.pos[0]);
      throw new ScenarioError(file, `line ${at.line}, column ${at.col}: not valid YAML: ${e.message.split("\n")[0]}`);
    }
    data = doc.toJS();
  } else {
    throw new ScenarioError(file, "a scenario file must end in .json, .yaml or .yml");
  }
  const list = isObject(data) && Array.isArray(data.scenarios) ? data.scenarios : [data];
  const stepLines = (index: number, count: number): number[] => {
    // The line of each step in a YAML file: found through the document's nodes, 0 when unknown (JSON).
    if (!doc) return new Array<number>(count).fill(0);
    const prefix = isObject(data) && Array.isArray(data.scenarios) ? ["scenarios", index, "steps"] : ["steps"];
    const out: number[] = [];
    for (let i = 0; i < count; i++) {
      const node = doc.getIn([...prefix, i], true) as { range?: [number, number, number] } | undefined;
      out.push(node?.range ? lineCounter.linePos(node.range[0]).line : 0);
    }
    return out;
  };
  return list.map((raw, i) => checkScenario(raw, file, list.length > 1 ? `scenario ${i + 1}` : "scenario", stepLines(i, isObject(raw) && Array.isArray(raw.steps) ? raw.steps.length : 0)));
}

function checkScenario(raw: Json, file: string, where: string, lines: number[]): Scenario {
  const fail = (message: string): never => {
    throw new ScenarioError(file, `${where}: ${message}`);
  };
  if (!isObject(raw)) return fail("must be an object with name and steps");
  for (const key of Object.keys(raw)) {
    if (!["name", "description", "timeoutMs", "cards", "steps"].includes(key)) fail(`unknown field "${key}" (name, description, timeoutMs, cards, steps)`);
  }
  if (typeof raw.name !== "string" || !raw.name.trim()) fail("needs a name");
  const name = raw.name as string;
  where = `scenario "${name}"`;
  const timeoutMs = raw.timeoutMs ?? 10_000;
  if (typeof timeoutMs !== "number" || !(timeoutMs > 0)) fail("timeoutMs must be a positive number of ms");
  const cards: { [name: string]: CardDefinition } = {};
  if (raw.cards !== undefined) {
    if (!isObject(raw.cards)) fail("cards must map names to card definitions");
    for (const [cardName, def] of Object.entries(raw.cards as object)) cards[cardName] = checkCard(def, (m) => fail(`card "${cardName}": ${m}`));
  }
  if (!Array.isArray(raw.steps) || !raw.steps.length) fail("needs a non-empty list of steps");
  const steps = (raw.steps as Json[]).map((s, i) => checkStep(s, cards, (m) => fail(`step ${i + 1}${lines[i] ? ` (line ${lines[i]})` : ""}: ${m}`)));
  return { name, file, description: typeof raw.description === "string" ? raw.description : undefined, timeoutMs: timeoutMs as number, cards, steps, lines };
}

function checkCard(def: Json, fail: (m: string) => never): CardDefinition {
  if (!isObject(def)) return fail("must be an object");
  const { profile, ...fields } = def;
  let base: Partial<CardDefinition> = {};
  if (profile !== undefined) {
    if (typeof profile !== "string" || !CARD_PROFILES[profile]) fail(`unknown profile ${JSON.stringify(profile)} (${Object.keys(CARD_PROFILES).join(", ")})`);
    base = CARD_PROFILES[profile as string]!;
  }
  const card = { ...base, ...fields } as { [k: string]: Json };
  const allowed = ["layout", "algorithm", "asn", "cityCode", "balance", "overdraftLimit", "epSerial", "keyIndex", "keyVersion", "startDate", "expiryDate", "enabled",
    "phone", "phoneReturnsAfterMs"];
  for (const key of Object.keys(card)) if (!allowed.includes(key)) fail(`unknown field "${key}"`);
  if (card.layout !== "tunion" && card.layout !== "cityunion") fail("layout must be tunion or cityunion");
  if (card.algorithm !== "3des" && card.algorithm !== "sm4") fail("algorithm must be 3des or sm4");
  if (typeof card.cityCode !== "string" || !/^[0-9]{4}$/.test(card.cityCode)) fail("cityCode must be 4 digits, as a string");
  if (!Number.isInteger(card.balance) || (card.balance as number) < 0) fail("balance must be whole fen");
  const digits = card.layout === "tunion" ? 20 : 16;
  if (card.asn !== undefined && (typeof card.asn !== "string" || !new RegExp(`^[0-9]{${digits}}$`).test(card.asn))) fail(`asn must be ${digits} digits, as a string`);
  for (const date of ["startDate", "expiryDate"]) {
    if (card[date] !== undefined && (typeof card[date] !== "string" || !/^[0-9]{8}$/.test(card[date] as string))) fail(`${date} must be YYYYMMDD, as a string`);
  }
  for (const n of ["overdraftLimit", "epSerial", "keyIndex", "keyVersion"]) {
    if (card[n] !== undefined && (!Number.isInteger(card[n]) || (card[n] as number) < 0)) fail(`${n} must be a whole number`);
  }
  if (card.enabled !== undefined && typeof card.enabled !== "boolean") fail("enabled must be true or false");
  const phones = PHONE_PROFILES.map((p) => p.name);
  if (card.phone !== undefined && !phones.includes(card.phone as string)) fail(`phone must be one of ${phones.join(", ")}`);
  if (card.phoneReturnsAfterMs !== undefined && (card.phone === undefined || !Number.isInteger(card.phoneReturnsAfterMs) || (card.phoneReturnsAfterMs as number) < 0)) {
    fail("phoneReturnsAfterMs takes whole milliseconds, for a card with a phone profile");
  }
  return card as unknown as CardDefinition;
}

function checkStep(raw: Json, cards: { [name: string]: CardDefinition }, fail: (m: string) => never): Step {
  if (!isObject(raw)) return fail(`must be an object with one of ${STEP_KINDS.join(", ")}`);
  const keys = Object.keys(raw);
  if (keys.length !== 1 || !(STEP_KINDS as readonly string[]).includes(keys[0]!)) fail(`must have exactly one of ${STEP_KINDS.join(", ")}; got ${keys.join(", ") || "nothing"}`);
  const kind = keys[0] as (typeof STEP_KINDS)[number];
  const v = raw[kind];
  const card = (name: Json): string => {
    if (typeof name !== "string" || !cards[name]) fail(`no card named ${JSON.stringify(name)} in cards`);
    return name as string;
  };
  switch (kind) {
    case "pay": {
      if (!isObject(v)) return fail("pay needs {amount, order}");
      if (!Number.isInteger(v.amount)) fail("pay.amount must be whole fen");
      if (typeof v.order !== "string") fail("pay.order must be a string");
      if (v.timeoutMs !== undefined && typeof v.timeoutMs !== "number") fail("pay.timeoutMs must be a number");
      return { pay: { amount: v.amount as number, order: v.order as string, ...(v.timeoutMs !== undefined ? { timeoutMs: v.timeoutMs as number } : {}) } };
    }
    case "cancel":
    case "status":
      if (v !== true && v !== null) fail(`${kind} takes true`);
      return kind === "cancel" ? { cancel: true } : { status: true };
    case "send":
      if (typeof v !== "string") fail("send takes the raw line to write");
      return { send: v as string };
    case "tap":
      return { tap: card(v) };
    case "remove":
      return { remove: card(v) };
    case "tear": {
      if (!isObject(v)) return fail("tear needs {card, command, when}");
      card(v.card);
      if (!(typeof v.command === "number" || TEAR_COMMANDS.includes(v.command as string))) fail(`tear.command must be an INS byte or one of ${TEAR_COMMANDS.join(", ")}`);
      if (v.when !== "before" && v.when !== "after") fail("tear.when must be before or after");
      if (v.occurrence !== undefined && !(Number.isInteger(v.occurrence) && (v.occurrence as number) >= 1)) fail("tear.occurrence must be 1 or more");
      return { tear: v as never };
    }
    case "fault": {
      if (!isObject(v) || !FAULT_KINDS.includes(v.kind as string)) return fail(`fault.kind must be one of ${FAULT_KINDS.join(", ")}`);
      if (v.kind === "late" && typeof v.ms !== "number") fail("a late fault needs ms");
      if (v.kind === "status" && !Number.isInteger(v.status)) fail("a status fault needs status (a byte)");
      if (v.command !== undefined && !Number.isInteger(v.command)) fail("fault.command must be a PN532 command code (e.g. 0x40)");
      return { fault: v as unknown as Fault };
    }
    case "expect": {
      if (!isObject(v) || typeof v.event !== "string") return fail("expect needs at least {event}");
      if (v.within !== undefined && typeof v.within !== "number") fail("expect.within must be ms");
      return { expect: v as { event: string } };
    }
    case "check": {
      if (!isObject(v)) return fail("check needs {card, balance?, epSerial?}");
      card(v.card);
      if (v.balance === undefined && v.epSerial === undefined) fail("check needs balance or epSerial");
      return { check: v as { card: string } };
    }
    case "wait":
      if (typeof v !== "number" || v < 0 || v > 600_000) fail("wait takes ms (0..600000)");
      return { wait: v as number };
    case "mdb": {
      if (!isObject(v)) return fail("mdb takes {init}, {send} or {expect}");
      if ("init" in v) {
        if (![1, 2, 3].includes(v.init as number)) fail("mdb.init is the VMC level: 1, 2 or 3");
        if (v.options !== undefined && !Number.isInteger(v.options)) fail("mdb.options is a number (the 17 04 option bits)");
      } else if ("send" in v) {
        try {
          if (!isObject(v.send) || typeof v.send.kind !== "string") throw new Error("no kind");
          // Encoded and read back: an unknown kind or a missing field does not survive the round trip.
          const block = encodeCommand(0x10, v.send as never, false);
          if (decodeCommand(block, false).kind !== v.send.kind || block.some((b) => !Number.isInteger(b))) throw new Error("not a command");
        } catch {
          fail("mdb.send must be an MDB command, e.g. {kind: vend-request, price: 350, item: 12}");
        }
      } else if (typeof v.expect !== "string") fail("mdb takes {init}, {send} or {expect}");
      return { mdb: v as unknown as MdbStep };
    }
    case "reset": {
      if (v === true || v === null) return { reset: {} };
      if (!isObject(v) || (v.command !== undefined && typeof v.command !== "string")) return fail("reset takes true or {command, within}");
      return { reset: v as { command?: string } };
    }
  }
  return fail("unreachable");
}

/** Each scenario with mdb steps once per reply mode (its name says which); the others once, as they are. */
export function withReplyModes(scenarios: readonly Scenario[], modes: readonly MdbReplies[]): { scenario: Scenario; replies?: MdbReplies }[] {
  return scenarios.flatMap((scenario) => !modes.length || !scenario.steps.some((s) => "mdb" in s) ? [{ scenario }]
    : modes.map((replies) => ({ scenario: { ...scenario, name: `${scenario.name} [${replies === "strict" ? "strict VMC" : "VMC taking either reply form"}]` }, replies })));
}
