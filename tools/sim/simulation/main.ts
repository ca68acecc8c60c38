/**
 * `npm start`: with no options, the whole system on this machine (front-ends, PKI, PN532 emulator with virtual
 * cards, the terminal and a scripted vending controller); with --pn532, the terminal on a PC with a real PN532
 * (hosts/node/main.ts).
 */
import { parseArgs } from "node:util";
import { runPcTerminal, StartupError } from "../../../hosts/node/main";
import { formatYuan } from "../../../modules/purse/amount";
import type { BasicDataMode } from "../../../modules/terminal-config/config";
import type { ControllerEvent } from "./controller-link";
import { DEFAULT_CARDS, Simulation } from "./index";
import { randomBytes } from "node:crypto";
import { hashPassword } from "../../frontend/operator/index";

/** `--opt -5` becomes `--opt=-5`, so parseArgs takes the number as the option's value. */
function joinNegativeValues(args: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const next = args[i + 1];
    if (a.startsWith("--") && !a.includes("=") && next !== undefined && /^-[0-9.]/.test(next)) {
      out.push(`${a}=${next}`);
      i++;
    } else {
      out.push(a);
    }
  }
  return out;
}

const HELP = `Usage:
  npm start [-- options]                      the whole system, simulated on this machine
  npm start -- --mdb                          a simulated vending machine speaking MDB to the terminal
  npm start -- --pn532 /dev/ttyUSB0 --frontend https://level1:8443 --cert terminal.crt.pem --key terminal.key.pem
             --ca ca.crt.pem --terminal-id 310001029313 [--controller /dev/ttyS1] [--journal terminal.journal]

Simulation (no --pn532): a level-1 and a level-2 front-end on 127.0.0.1 with a fresh development PKI, the PN532
emulator with virtual cards on a pty pair (socat) or an in-memory line, and the terminal serving scripted pay
requests through its controller port. It prints each APDU decoded, each front-end call and the timings.
  --json              one JSON object per transaction on stdout and nothing else (use npm start --silent)
  --strict            wait for the front-end's completion acknowledgement before approving
  --link pty|memory   how terminal, emulator and controller are linked (default: pty when socat is installed)
  --latency <ms>      one-way delay added to each front-end request and answer
  --esp32-tls         offer only what Moddable's TLS offers on the ESP32 (TLS 1.2, plain-RSA AES-CBC)
  --status-every <ms> how often the terminal sends its status report (default 300000; at start and on alerts too)
  --basic-data fci-first|read  file 0x15 from the FCI's 9F0C when it carries it (default, 3 APDUs a tap), or
                      always by READ BINARY (4 APDUs); docs/fci-fast-path.md
  --console           also serve the operator console (a one-time password is printed), report every 10 s unless
                      --status-every says otherwise, and keep running after the script until Ctrl-C

A terminal on a PC (--pn532):
  --pn532 <port>      the PN532's serial port, in HSU mode at 115200 baud
  --frontend <url>    the level-1 front-end (it serves the routing table)
  --cert, --key       the terminal's client certificate and key (PEM; the CN is the terminal ID)
  --ca                the CA that signed the front-ends' certificates (PEM)
  --terminal-id <id>  12 hex digits, equal to the certificate's CN
  --controller <port> the controller port's serial line (default: JSON lines on stdin/stdout)
  --mdb-port <tty>    controller "mdb": be the vending machine's MDB cashless device on this UART, through the
                      mark/space-parity helper (built with cc on first use; wiring: docs/guide/vending.md)
  --mdb-address 0x10|0x60  cashless device #1 (default) or #2;  --mdb-level 1|2|3  the reader's level (default 3)
  --mdb-link stream   the MDB port is a pty carrying docs/mdb.md §5 bytes (a VMC simulator or the harness), no helper
  --journal <file>    the journal (default: var/terminal.journal, git-ignored)
  --city-code <code>  the terminal's own city: its level-2 route is kept warm with level 1
  --strict, --esp32-tls, --status-every, --basic-data as above
  --recovery-window <ms>  how long to keep looking for a torn card within its payment (default 20000)
  --die-at-write <k>  test hook: SIGKILL this process just before the k-th journal write or erase lands (a power
                      cut at a chosen write, for the fault-injection suite)
  --help              this text
Exit status: 0 when every scripted purchase ended as scripted (simulation), 2 on bad options.`;

let values: ReturnType<typeof parse>["values"];
function parse() {
  return parseArgs({
    // A negative number after an option is its value, not an option of its own (`--latency -5`).
    args: joinNegativeValues(process.argv.slice(2)),
    options: {
      json: { type: "boolean" }, strict: { type: "boolean" }, link: { type: "string" }, latency: { type: "string" },
      "esp32-tls": { type: "boolean" }, pn532: { type: "string" }, frontend: { type: "string" }, cert: { type: "string" },
      key: { type: "string" }, ca: { type: "string" }, "terminal-id": { type: "string" }, controller: { type: "string" },
      "mdb-port": { type: "string" }, "mdb-link": { type: "string" }, "mdb-address": { type: "string" }, "mdb-level": { type: "string" },
      journal: { type: "string" }, "city-code": { type: "string" }, help: { type: "boolean" }, mdb: { type: "boolean" }, "recovery-window": { type: "string" }, "die-at-write": { type: "string" },
      "status-every": { type: "string" }, "basic-data": { type: "string" },
      console: { type: "boolean" },
    },
    strict: true,
  });
}
try {
  values = parse().values;
} catch (error) {
  console.error(`${(error as Error).message}\n\n${HELP}`);
  process.exit(2);
}
if (values.help) {
  console.log(HELP);
  process.exit(0);
}
if (values.link && values.link !== "pty" && values.link !== "memory") {
  console.error(`--link takes pty or memory\n\n${HELP}`);
  process.exit(2);
}
const latency = values.latency === undefined ? undefined : Number(values.latency);
if (latency !== undefined && !(latency >= 0 && latency <= 10_000)) {
  console.error(`--latency takes a one-way delay in milliseconds, 0..10000 (got ${values.latency})`);
  process.exit(2);
}
const statusEveryMs = values["status-every"] === undefined ? undefined : Number(values["status-every"]);
if (statusEveryMs !== undefined && !(Number.isInteger(statusEveryMs) && statusEveryMs >= 1000 && statusEveryMs <= 86_400_000)) {
  console.error(`--status-every takes milliseconds, 1000..86400000 (got ${values["status-every"]})\n\n${HELP}`);
  process.exit(2);
}
const basicData = values["basic-data"] as BasicDataMode | undefined;
if (basicData !== undefined && basicData !== "fci-first" && basicData !== "read") {
  console.error(`--basic-data takes fci-first or read (got ${basicData})\n\n${HELP}`);
  process.exit(2);
}

/**
 * stdout closed under us (`npm start --silent -- --json | head -2`): nobody reads any more, so the run ends here,
 * cleanly, with exit status 0 as for SIGPIPE-aware tools, after the cleanups stop what this process started (the
 * socat children of the pty pairs above all, which would otherwise outlive it). Without a listener, Node would throw
 * the EPIPE from the next write and skip every cleanup.
 */
const whenStdoutGone: (() => unknown)[] = [];
let stdoutGone = false;
process.stdout.on("error", (error: NodeJS.ErrnoException) => {
  if (stdoutGone) return; // later writes fail too, on the stream already given up
  if (error.code !== "EPIPE") throw error;
  stdoutGone = true;
  // With no cleanup registered (--mdb: the demo closes its own simulation when its script ends), the run goes on unheard.
  if (whenStdoutGone.length) void Promise.allSettled(whenStdoutGone.map(async (cleanup) => cleanup())).then(() => process.exit(0));
});

/** `fn` run once, however many times the result is asked for (a close from the EPIPE path and from `finally`). */
function once<T>(fn: () => Promise<T>): () => Promise<T> {
  let result: Promise<T> | undefined;
  return () => (result ??= fn());
}

if (values.pn532) await realTerminal();
else if (values.mdb) {
  const code = await (await import("./mdb-demo")).runMdbDemo({ link: values.link as "pty" | "memory" | undefined });
  process.exit(stdoutGone ? 0 : code);
}
else await simulate();

async function realTerminal(): Promise<void> {
  const missing = ["frontend", "cert", "key", "ca", "terminal-id"].filter((k) => !values[k as keyof typeof values]);
  if (missing.length) {
    console.error(`--pn532 needs --${missing.join(", --")}\n\n${HELP}`);
    process.exit(2);
  }
  const log = (line: string) => process.stderr.write(`${line}\n`);
  const dieAt = values["die-at-write"] === undefined ? undefined : Number(values["die-at-write"]);
  const recoveryWindowMs = values["recovery-window"] === undefined ? undefined : Number(values["recovery-window"]);
  if ((dieAt !== undefined && !(Number.isInteger(dieAt) && dieAt > 0)) || (recoveryWindowMs !== undefined && !(recoveryWindowMs >= 0))) {
    console.error(`--die-at-write takes a write number (1, 2, ...), --recovery-window milliseconds\n\n${HELP}`);
    process.exit(2);
  }
  const mdbAddress = values["mdb-address"] === undefined ? 0x10 : Number(values["mdb-address"]);
  const mdbLevel = values["mdb-level"] === undefined ? 3 : Number(values["mdb-level"]);
  if ((mdbAddress !== 0x10 && mdbAddress !== 0x60) || ![1, 2, 3].includes(mdbLevel)) {
    console.error(`--mdb-address takes 0x10 or 0x60, --mdb-level 1, 2 or 3\n\n${HELP}`);
    process.exit(2);
  }
  let stop: () => void;
  try {
    stop = await runPcTerminal({
      pn532: values.pn532!, frontend: values.frontend!, cert: values.cert!, key: values.key!, ca: values.ca!, terminalId: values["terminal-id"]!,
      controller: values.controller, journal: values.journal, strict: values.strict, esp32Tls: values["esp32-tls"], recoveryWindowMs,
      cityCode: values["city-code"], dieAtWrite: dieAt, statusEveryMs, basicData,
      mdb: values["mdb-port"] ? { tty: values["mdb-port"], address: mdbAddress, level: mdbLevel, link: values["mdb-link"] === "stream" ? "stream" : "termios" } : undefined,
    }, log);
  } catch (error) {
    if (error instanceof StartupError) {
      console.error(error.message);
      process.exit(error.exitCode);
    }
    throw error;
  }
  log(`terminal ${values["terminal-id"]} ready on ${values.pn532}; controller on ${values.controller ?? "stdin/stdout"}`
    + (values["mdb-port"] ? `; MDB cashless device 0x${mdbAddress.toString(16)} on ${values["mdb-port"]}` : ""));
  const end = () => {
    stop();
    process.exit(0);
  };
  whenStdoutGone.push(stop);
  process.on("SIGINT", end);
  process.on("SIGTERM", end);
}

interface Scripted {
  card: string;
  amount: number;
  expect: "approved" | "declined";
  reason?: string;
}

async function simulate(): Promise<void> {
  const json = !!values.json;
  const say = (line: string) => {
    if (!json) console.log(line);
  };
  const started = performance.now();
  // A password for this run only: the console's accounts live in the simulation's throwaway configuration.
  const password = values.console ? randomBytes(12).toString("base64url") : "";
  const reportEveryMs = statusEveryMs ?? (values.console ? 10_000 : undefined);
  const sim = await Simulation.start({
    link: values.link as "pty" | "memory" | undefined, latencyMs: latency, esp32Ciphers: values["esp32-tls"],
    terminal: { strict: values.strict, ...(reportEveryMs ? { statusEveryMs: reportEveryMs } : {}), ...(basicData ? { basicData } : {}) }, trace: say,
    ...(values.console ? { operator: { port: 0, accounts: [{ user: "operator", password: hashPassword(password) }], statusEveryMs: reportEveryMs } } : {}),
  });
  const close = once(() => sim.close());
  whenStdoutGone.push(close);
  let ok = 0;
  const script: Scripted[] = [
    { card: DEFAULT_CARDS[0]!.name, amount: 350, expect: "approved" },
    { card: DEFAULT_CARDS[1]!.name, amount: 200, expect: "approved" },
    { card: DEFAULT_CARDS[0]!.name, amount: 120, expect: "approved" },
    { card: DEFAULT_CARDS[2]!.name, amount: 500, expect: "declined", reason: "insufficient-balance" },
    { card: DEFAULT_CARDS[3]!.name, amount: 100, expect: "declined", reason: "card-expired" },
  ];
  try {
    for (const spec of DEFAULT_CARDS) sim.addCard(spec);
    say(`Simulated system up in ${Math.round(performance.now() - started)} ms: level-1 front-end ${sim.level1.url}, level-2 front-end ${sim.level2.url},`);
    say(`PN532 emulator and controller port on ${sim.linkKind === "pty" ? "pty pairs (socat)" : `in-memory lines (${values.link === "memory" ? "--link memory" : "no socat found"}: same bytes, no tty)`}, terminal ${"310001029313"}${values.strict ? " in strict mode" : ""}.`);
    for (const [i, s] of script.entries()) {
      const order = `ORDER-${String(i + 1).padStart(4, "0")}`;
      say(`\n== ${order}: ${formatYuan(s.amount)} yuan, ${s.card}`);
      const events = await sim.pay(s.card, s.amount, order);
      const final = events.find((e) => e.event === "approved" || e.event === "declined" || e.event === "unknown-outcome");
      const asExpected = final?.event === s.expect && (!s.reason || final.reason === s.reason);
      if (asExpected) ok++;
      const record = transaction(order, s, events);
      if (json) console.log(JSON.stringify(record));
      else say(`  => ${String(final?.event).toUpperCase()}${final?.reason ? ` (${String(final.reason)})` : ""}` +
        (final?.event === "approved" ? `, balance ${formatYuan(Number(final.balanceBefore))} -> ${formatYuan(Number(final.balanceAfter))}, ` +
          `TSN ${String(final.tsn)}, TAC ${String(final.tac)}, level ${String(final.level)}, tap-to-approved ${fmtMs(final)} ms, ` +
          `handshakes on the tap path ${String((final.timings as { handshakes: number }).handshakes)}` : "") +
        (asExpected ? "" : `  [expected ${s.expect}${s.reason ? ` (${s.reason})` : ""}]`));
    }
    // Completions are sent after approval; wait until the front-ends have them all before the summary.
    for (let i = 0; i < 100 && sim.node.terminal.pendingCompletions > 0; i++) await new Promise((r) => setTimeout(r, 20));
    say(`\nSummary: ${ok} of ${script.length} purchases ended as scripted; completions still pending: ${sim.node.terminal.pendingCompletions}.`);
    const latest = (await sim.level1.store.fleet.latestStatus())[0];
    if (latest) {
      const r = latest.report;
      say(`Status report at the level-1 front-end: terminal ${r.terminalId}, firmware ${r.firmware}, report ${r.sequence} (${r.reason}), ` +
        `journal ${r.journal.fillPercent} % full, configuration version ${r.config.version}.`);
    }
    if (values.console) {
      // On stderr, so that --json keeps stdout to the transactions.
      console.error(`\nOperator console: ${sim.level1.operator.url} (user operator, password ${password}; the development CA is not known to your browser).`);
      console.error(`The terminal reports every ${Math.round(reportEveryMs! / 1000)} s. Ctrl-C stops everything.`);
      await new Promise<void>((resolve) => { process.once("SIGINT", resolve); process.once("SIGTERM", resolve); });
    }
  } finally {
    await close();
  }
  if (stdoutGone) return; // the EPIPE path ends the process
  process.exit(ok === script.length ? 0 : 1);
}

function fmtMs(e: ControllerEvent): string {
  return (e.timings as { tapMs: number }).tapMs.toFixed(1);
}

function transaction(order: string, s: Scripted, events: ControllerEvent[]): Record<string, unknown> {
  const read = events.find((e) => e.event === "card-read");
  const final = events.find((e) => e.event === "approved" || e.event === "declined" || e.event === "unknown-outcome") ?? { event: "none" };
  return {
    order, result: final.event, reason: final.reason ?? null, amount: s.amount,
    balanceBefore: final.balanceBefore ?? final.balance ?? null, balanceAfter: final.balanceAfter ?? null,
    asn: read?.asn ?? null, cityCode: read?.cityCode ?? null, application: read?.application ?? null, level: final.level ?? null,
    tsn: final.tsn ?? null, tac: final.tac ?? null, purchaseId: final.purchaseId ?? null, timings: final.timings ?? null,
  };
}
