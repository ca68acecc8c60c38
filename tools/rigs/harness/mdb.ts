/**
 * The harness as the vending machine (docs/mdb.md §7): `mdb` steps play the VMC on the device's MDB port, a tty
 * carrying the docs/mdb.md §5 encoding, through the VMC simulator. Steps:
 *   mdb: { init: 3, options: 0x20 }                        RESET and the initialisation at that VMC level
 *   mdb: { send: { kind: vend-request, price: 350, item: 12 } }   one command; the reader must ACK it, or answer
 *                                                  SETUP config, REQUEST ID, SESSION COMPLETE, VEND CANCEL directly
 *   mdb: { expect: vend-approved, amount: 350, within: 10000 }    that message if it came as the direct reply, else
 *                                                  POLL every 25 ms until it comes
 * Waiting for VEND APPROVED and getting VEND DENIED (or the reverse) fails at once. Every scenario with mdb steps runs
 * with the VMC in each reply mode (withReplyModes): strict, where an ACK to one of those four commands fails the step
 * with MDB_DEFERRED_REPLY, and either, which takes both forms (docs/mdb.md §2.1).
 */
import type { Command } from "../../../modules/mdb/commands";
import type { Reply } from "../../../modules/mdb/replies";
import { directSlot } from "../../../modules/mdb/link";
import { encodeCommand } from "../../../modules/mdb/commands";
import type { Scenario } from "./scenario";
import { describeCommand, describeReply } from "../../sim/vmc/describe";
import { openStreamVmc, type StreamVmc } from "../../sim/vmc/stream";
import { CodedError } from "../../../modules/errors/errors";

export type MdbStep =
  | { init: 1 | 2 | 3; options?: number }
  | { send: Command }
  | { expect: Reply["kind"]; within?: number; [field: string]: unknown };

const OPPOSITE: { [kind: string]: string } = { "vend-approved": "vend-denied", "vend-denied": "vend-approved" };

export class MdbStepFailure extends CodedError {
  constructor(message: string) {
    super("MDB_STEP_FAILED", message);
  }
}

export type MdbReplies = "strict" | "either";

/** Each scenario with mdb steps once per reply mode (its name says which); the others once, as they are. */
export function withReplyModes(scenarios: readonly Scenario[], modes: readonly MdbReplies[]): { scenario: Scenario; replies?: MdbReplies }[] {
  return scenarios.flatMap((scenario) => !modes.length || !scenario.steps.some((s) => "mdb" in s) ? [{ scenario }]
    : modes.map((replies) => ({ scenario: { ...scenario, name: `${scenario.name} [${replies === "strict" ? "strict VMC" : "VMC taking either reply form"}]` }, replies })));
}

/** Opens the VMC side. Replies are waited for up to 1 s: a pty on a loaded machine is no 5 ms medium (bench:mdb). */
export function openHarnessVmc(port: string): Promise<StreamVmc> {
  return openStreamVmc(port, { replyTimeoutMs: 1000 });
}

export async function runMdbStep(step: MdbStep, side: StreamVmc | undefined, note: (line: string) => void, defaultMs: number): Promise<void> {
  if (!side) throw new Error("this step plays the VMC: run with --mdb-port");
  const vmc = side.vmc;
  if ("init" in step) {
    const init = step as { init: 1 | 2 | 3; options?: number };
    const { config, id } = await vmc.init(init.init, init.options ?? 0);
    note(`mdb: ${describeReply(config)}; ${describeReply(id)}`);
    return;
  }
  if ("send" in step) {
    const command = (step as { send: Command }).send;
    note(`mdb -> ${describeCommand(command)}`);
    const a = await vmc.send(command);
    const direct = directSlot(encodeCommand(vmc.address, command, vmc.format.expanded)) >= 0;
    if (a.kind === "data" && direct) for (const r of a.replies) note(`mdb <- ${describeReply(r)} (direct reply)`);
    else if (a.kind !== "ack") throw new MdbStepFailure(`${describeCommand(command)} got ${a.kind}, expected ACK`);
    return;
  }
  const want = step as { expect: Reply["kind"]; within?: number; [field: string]: unknown };
  const until = Date.now() + (want.within ?? defaultMs);
  // A direct reply already brought it (END SESSION to SESSION COMPLETE...).
  const claimed = vmc.claim(want.expect);
  if (claimed && found(want, claimed, () => undefined)) return;
  while (Date.now() < until) {
    const a = await vmc.send({ kind: "poll" });
    if (a.kind === "data" && found(want, a.replies, (r) => note(`mdb <- ${describeReply(r)}`))) return;
    await new Promise((res) => setTimeout(res, 25));
  }
  throw new MdbStepFailure(`no ${want.expect} within ${want.within ?? defaultMs} ms`);
}

/** Whether the messages hold the one expected, with its fields; its opposite or a field that differs fails the step. */
function found(want: { expect: Reply["kind"]; [field: string]: unknown }, replies: readonly Reply[], seen: (r: Reply) => void): boolean {
  for (const r of replies) {
    seen(r);
    if (r.kind === OPPOSITE[want.expect]) throw new MdbStepFailure(`got ${describeReply(r)}, expected ${want.expect}`);
    if (r.kind !== want.expect) continue;
    for (const [k, v] of Object.entries(want)) {
      if (k === "expect" || k === "within") continue;
      if ((r as Record<string, unknown>)[k] !== v) throw new MdbStepFailure(`${describeReply(r)}: ${k} is ${String((r as Record<string, unknown>)[k])}, expected ${String(v)}`);
    }
    return true;
  }
  return false;
}
