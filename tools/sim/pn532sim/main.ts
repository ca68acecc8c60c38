/**
 * Plays a PN532 on a serial port: `tsx tools/sim/pn532sim/main.ts --port <path> [--card <state.json>]... [--script <json>]`.
 * With a USB serial adapter wired to a terminal's UART, the terminal cannot tell it from the chip; on a pty it serves
 * the driver or libnfc. Cards persist their state to their JSON files. stdin takes `place N`, `remove N`, `status`.
 */
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { VirtualCard } from "../cardsim/card";
import { INSTANT_TIMING, runScript, startEmulator, type ScriptStep } from "./index";

function usage(): never {
  console.error("usage: tsx tools/sim/pn532sim/main.ts --port <path> [--baud 115200] [--card <state.json>]... [--absent N]... [--script <steps.json>] [--instant] [--verbose]");
  process.exit(2);
}

const args = process.argv.slice(2);
let port: string | undefined;
let baud = 115200;
const cardPaths: string[] = [];
const absent = new Set<number>();
let script: ScriptStep[] = [];
let instant = false;
let verbose = false;
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  const value = () => args[++i] ?? usage();
  if (a === "--port") port = value();
  else if (a === "--baud") baud = Number(value());
  else if (a === "--card") cardPaths.push(value());
  else if (a === "--absent") absent.add(Number(value()));
  else if (a === "--script") script = JSON.parse(readFileSync(value(), "utf8")) as ScriptStep[];
  else if (a === "--instant") instant = true;
  else if (a === "--verbose") verbose = true;
  else usage();
}
if (!port) usage();

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
