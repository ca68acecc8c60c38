/**
 * `npm run harness -- --controller <port> [--pn532-port <port>] [--keys <keystore.json>] <scenario files...>`:
 * drives a terminal's controller port, optionally plays the PN532 to it, runs the scenarios and reports.
 */
import { parseArgs } from "node:util";
import type { MdbReplies } from "./mdb";
import { runHarness } from "./runner";
import { loadScenarioFile, ScenarioError, type Scenario } from "./scenario";
import { HarnessPortError } from "./serial";

const HELP = `Usage: npm run harness -- --controller <port> [options] <scenario.yaml|.json ...>

  --controller <port>   the terminal's controller port (its UART through a USB serial adapter, or a pty)
  --pn532-port <port>   play the PN532 to the terminal on this port, with the scenarios' virtual cards
  --mdb-port <port>     play the vending machine (MDB VMC) on the terminal's MDB port, for the scenarios' mdb steps
                        (a tty carrying docs/mdb.md §5 bytes: the terminal runs with --mdb-port <other end> --mdb-link stream)
  --mdb-replies <modes> the VMC's reply modes, each MDB scenario runs once per mode: strict (refuses a deferred answer
                        to SETUP config, REQUEST ID, SESSION COMPLETE, VEND CANCEL), either (takes both); default strict,either
  --keys <file>         the front-end's development key store: virtual cards are issued from its master keys
  --out <dir>           where junit.xml, summary.txt and logs/ go (default harness-results)
  --baud <n>            both ports' speed (default 115200)
  --instant             the emulated PN532 answers without modelled delays
  --ready-timeout <ms>  how long to wait for the device to answer before the first scenario (default 15000)
  --help                this text
Exit status: 0 every scenario passed, 1 a scenario failed, 2 bad options, a port that cannot be opened, or a
scenario file that does not parse.`;

function usage(message: string): never {
  process.stderr.write(`harness: ${message}\n\n${HELP}\n`);
  process.exit(2);
}

let parsed: ReturnType<typeof parse>;
function parse() {
  return parseArgs({
    allowPositionals: true,
    strict: true,
    options: {
      controller: { type: "string" }, "pn532-port": { type: "string" }, "mdb-port": { type: "string" }, "mdb-replies": { type: "string" }, keys: { type: "string" }, out: { type: "string" },
      baud: { type: "string" }, instant: { type: "boolean" }, "ready-timeout": { type: "string" }, help: { type: "boolean" },
    },
  });
}
try {
  parsed = parse();
} catch (error) {
  usage((error as Error).message);
}
const { values, positionals } = parsed;
if (values.help) {
  process.stdout.write(`${HELP}\n`);
  process.exit(0);
}
if (!values.controller) usage("--controller <port> is required");
if (!positionals.length) usage("give at least one scenario file");
const baud = values.baud === undefined ? 115200 : Number(values.baud);
if (!Number.isInteger(baud) || baud <= 0) usage("--baud takes a whole number");
const readyTimeoutMs = values["ready-timeout"] === undefined ? undefined : Number(values["ready-timeout"]);
if (readyTimeoutMs !== undefined && !(readyTimeoutMs > 0)) usage("--ready-timeout takes milliseconds");

const mdbReplies = (values["mdb-replies"] ?? "strict,either").split(",").map((m) => m.trim());
if (!mdbReplies.length || mdbReplies.some((m) => m !== "strict" && m !== "either")) usage("--mdb-replies takes strict, either or strict,either");

const scenarios: Scenario[] = [];
try {
  for (const file of positionals) scenarios.push(...loadScenarioFile(file));
} catch (error) {
  if (error instanceof ScenarioError) {
    process.stderr.write(`harness: scenario does not parse: ${error.message}\n`);
    process.exit(2);
  }
  throw error;
}

try {
  const run = await runHarness({
    controller: values.controller, pn532Port: values["pn532-port"], mdbPort: values["mdb-port"], mdbReplies: mdbReplies as MdbReplies[], keys: values.keys, scenarios, out: values.out ?? "harness-results",
    baud, instant: values.instant, readyTimeoutMs, print: (line) => process.stdout.write(`${line}\n`),
  });
  process.stdout.write(`\n${run.summary}JUnit XML: ${run.junitPath}\nsummary: ${run.summaryPath}\n`);
  process.exit(run.exitCode);
} catch (error) {
  if (error instanceof HarnessPortError) {
    process.stderr.write(`harness: ${error.message}\n`);
    process.exit(2);
  }
  throw error;
}
