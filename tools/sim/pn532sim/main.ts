/**
 * Plays a PN532 on a serial port: `tsx tools/sim/pn532sim/main.ts --port <path> [--card <state.json>]... [--script <json>]`.
 * With a USB serial adapter wired to a terminal's UART, the terminal cannot tell it from the chip; on a pty it serves
 * the driver or libnfc. Cards persist their state to their JSON files. stdin takes `place N`, `remove N`, `status`.
 */
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { VirtualCard } from "../cardsim/card";
import { INSTANT_TIMING, runScript, startEmulator, type ScriptStep } from "./index";

const USAGE = "usage: tsx tools/sim/pn532sim/main.ts --port <path> [--baud 115200] [--card <state.json>]... [--absent N]... [--script <steps.json>] [--instant] [--verbose]";
function usage(problem?: string): never {
  console.error(problem ? `pn532sim: ${problem}\n${USAGE}` : USAGE);
  process.exit(2);
}

function parse() {
  try {
    return parseArgs({
      strict: true, options: {
        port: { type: "string" }, baud: { type: "string" }, card: { type: "string", multiple: true }, absent: { type: "string", multiple: true },
        script: { type: "string" }, instant: { type: "boolean" }, verbose: { type: "boolean" },
      },
    }).values;
  } catch (error) {
    return usage((error as Error).message);
  }
}
const values = parse();
const port = values.port ?? usage("--port is required");
const baud = Number(values.baud ?? 115200);
if (!Number.isInteger(baud) || baud <= 0) usage(`--baud takes a line rate (got ${values.baud})`);
const cardPaths = values.card ?? [];
const absent = new Set((values.absent ?? []).map(Number));
const script: ScriptStep[] = values.script ? JSON.parse(readFileSync(values.script, "utf8")) as ScriptStep[] : [];
const instant = !!values.instant;
const verbose = !!values.verbose;

const cards = cardPaths.map((p) => VirtualCard.load(p));
cards.forEach((c, i) => (absent.has(i) ? c.remove() : c.place()));
const emulator = await startEmulator({
  path: port, baud, cards, timing: instant ? INSTANT_TIMING : { baud },
  log: verbose ? (line) => console.error(`pn532sim: ${line}`) : undefined,
});
console.error(`pn532sim: PN532 v1.6 on ${port} at ${baud} baud, ${cards.length} card(s)`);
const scripted = runScript(emulator, script);

const rl = createInterface({ input: process.stdin });
rl.on("line", (line) => {
  const [cmd, n] = line.trim().split(/\s+/);
  try {
    if (cmd === "place") emulator.place(Number(n));
    else if (cmd === "remove") emulator.remove(Number(n));
    else if (cmd === "status") console.log(JSON.stringify({ cards: emulator.cards.map((c, i) => ({ i, uid: c.uid, present: c.present })), stats: emulator.stats }));
    else if (cmd) console.error(`pn532sim: unknown command ${cmd}`);
  } catch (error) {
    console.error(`pn532sim: ${(error as Error).message}`);
  }
});

const stop = () => {
  scripted.cancel();
  rl.close();
  emulator.close();
  process.exit(0);
};
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
