/**
 * The front-end's command line: `npm run frontend -- [command] [options]`; `--help` lists the commands and
 * `<command> --help` explains one. The key ceremony is `keys create|import|list|retire` (keys/ceremony-cli.ts). Options are parsed with node:util parseArgs (strict: an unknown option is an error).
 */
import { parseArgs, type ParseArgsConfig } from "node:util";
import { mkdirSync, writeFileSync } from "node:fs";
import { isIP } from "node:net";
import path from "node:path";
import { generateDevelopmentPki } from "../pki/index";
import { loadConfigFile, type FrontendConfig } from "./config";
import { openDatabase } from "./storage/journal";
import { writeDevelopmentKeyStore, type MasterKeyRef } from "./keys/keystore";
import { startFrontend } from "./app";
import { isWorker, runPrimary, runWorker } from "./workers";
import { formatSettlement, settlementFromDatabase, settlementRecords, type SettlementRecord } from "./purchases/service";
import { isPostgresUrl, PostgresStore } from "./storage/store";
import { addOperator, changePassword, listOperators, removeOperator } from "./operator/accounts-cli";
import { Token, createTokenKeys, type KeyListing } from "./keys/pkcs11";
import { initSoftHsmToken, softhsmMissing } from "./keys/softhsm";
import { CeremonyUsageError, keyCeremony, parseKeyRef } from "./keys/ceremony-cli";
import { revokeFromCli } from "./terminals/cli";
import { backupSqlite, migrateDatabase } from "./storage/backup";
import { CodedError } from "../../modules/errors/errors";

class UsageError extends CodedError {
  constructor(message: string, options?: { cause: string }) {
    super("USAGE", message);
    if (options) Object.defineProperty(this, "cause", { value: options.cause });
  }
}

type Options = ParseArgsConfig["options"] & object;
type Values = Record<string, string | string[] | boolean | undefined>;

interface Command {
  /** One line for the command list. */
  summary: string;
  /** The synopsis after `npm run frontend --`. */
  usage: string;
  /** What each option means, in the order shown. */
  help: [string, string][];
  /** More text after the options. */
  notes?: string;
  options: Options;
  run(values: Values): Promise<void> | void;
}

const CONFIG: [string, string] = ["--config <file>", "the front-end's JSON configuration (docs/operate.md)"];
const USER: [string, string] = ["--user <name>", "the operator's name: 1 to 64 letters, digits, '.', '_' or '-'"];
const PASSWORD_NOTE = "The password is read from the first line of stdin, or from OPERATOR_PASSWORD; never from the command line.";

function text(values: Values, name: string, required = true): string | undefined {
  const v = values[name];
  if (v === undefined && required) throw new UsageError(`--${name} is required`);
  return Array.isArray(v) ? v[v.length - 1] : (v as string | undefined);
}

function list(values: Values, name: string): string[] | undefined {
  const v = values[name];
  return v === undefined ? undefined : Array.isArray(v) ? v : [v as string];
}

async function serve(values: Values): Promise<void> {
  const config = loadConfigFile(text(values, "config")!);
  const workers = Number(text(values, "workers", false) ?? 0);
  if (!Number.isInteger(workers) || workers < 0 || workers > 64) throw new UsageError("--workers must be 0 to 64");
  if (isWorker()) {
    const frontend = await runWorker(config);
    const stop = () => { frontend.close().then(() => process.exit(0), () => process.exit(1)); };
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
    return;
  }
  if (workers > 0) {
    const primary = await runPrimary(config, workers, {
      listening: (port, url, operatorUrl) => process.stdout.write(`${JSON.stringify({ event: "listening", url, port, level: config.level, pid: process.pid, workers, ...(operatorUrl ? { operatorUrl } : {}) })}\n`),
      replaced: (pid, code, signal) => process.stdout.write(`${JSON.stringify({ event: "worker-replaced", pid, code, signal })}\n`),
    });
    const stop = () => { primary.close().then(() => process.exit(0), () => process.exit(1)); };
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
    return;
  }
  const frontend = await startFrontend(config);
  // One machine-readable line for whoever started the process (the crash test and the simulation read it).
  process.stdout.write(`${JSON.stringify({ event: "listening", url: frontend.url, port: frontend.port, level: config.level, pid: process.pid, ...(frontend.operator.url ? { operatorUrl: frontend.operator.url } : {}) })}\n`);
  const stop = () => {
    frontend.close().then(() => process.exit(0), () => process.exit(1));
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
}

async function settle(values: Values): Promise<void> {
  const config = loadConfigFile(text(values, "config")!);
  const day = text(values, "date")!;
  if (!/^[0-9]{8}$/.test(day)) throw new UsageError("--date must be YYYYMMDD");
  const format = text(values, "format", false) ?? "jsonl";
  if (format !== "jsonl" && format !== "csv") throw new UsageError("--format must be jsonl or csv");
  let records: SettlementRecord[];
  if (isPostgresUrl(config.database)) {
    const store = await PostgresStore.open(config.database, { poolSize: 1 });
    try {
      records = settlementRecords(await store.settlement(day), day);
    } finally {
      await store.close();
    }
  } else {
    const db = openDatabase(config.database, "full", true);
    try {
      records = settlementFromDatabase(db, day);
    } finally {
      db.close();
    }
  }
  const output = formatSettlement(records, format);
  const out = text(values, "out", false);
  if (out) writeFileSync(out, output);
  else process.stdout.write(output);
}

function keys(values: Values): void {
  const out = text(values, "out")!;
  const refs = list(values, "key")?.map(parseKeyRef);
  const result = writeDevelopmentKeyStore(out, { keySystem: text(values, "key-system", false), refs });
  console.log(`wrote ${result.keys.length} master key pairs (${result.keys.map((k) => `${k.keyIndex}:${k.keyVersion}:${k.algorithm}`).join(", ")}) to ${out}`);
}

/** Where the ESP32 build reads its certificates (manifest.json build TERMINAL_CERTS). */
export const ESP32_CERTS_DIR = path.resolve(import.meta.dirname, "../../build/esp32-certs");

const urlHost = (host: string) => (isIP(host) === 6 ? `[${host}]` : host);

/**
 * The master keys of a development setup: made inside SoftHSM2 tokens when it is installed (no key in any file under
 * dir; the configurations list their check values), else development key files, with a note why.
 */
function initKeyStores(dir: string): { level1: FrontendConfig["keyStore"]; level2: FrontendConfig["keyStore"]; what: string } {
  const missing = softhsmMissing();
  if (missing) {
    writeDevelopmentKeyStore(path.join(dir, "keys-level1.json"), { keySystem: "MOT", refs: [{ keyIndex: 1, keyVersion: 1, algorithm: "3des" }] });
    writeDevelopmentKeyStore(path.join(dir, "keys-level2.json"), { keySystem: "4100", refs: [{ keyIndex: 1, keyVersion: 1, algorithm: "sm4" }] });
    return { level1: "keys-level1.json", level2: "keys-level2.json", what: `development key files keys-level1.json (3DES), keys-level2.json (SM4) because ${missing}` };
  }
  const hsm = path.join(dir, "hsm");
  // Both tokens exist before the module is first initialised in this process (SoftHSM2 lists tokens at that moment).
  const tokens = [initSoftHsmToken(hsm, "level1"), initSoftHsmToken(hsm, "level2")];
  const refs: MasterKeyRef[] = [{ keyIndex: 1, keyVersion: 1, algorithm: "3des" }, { keyIndex: 1, keyVersion: 1, algorithm: "sm4" }];
  const [level1, level2] = tokens.map((settings, i) => {
    const token = new Token(settings);
    let made: KeyListing[];
    try {
      made = createTokenKeys(token, refs[i]!);
    } finally {
      token.close();
    }
    const kcv = { [`${refs[i]!.keyIndex}:${refs[i]!.keyVersion}:${refs[i]!.algorithm}`]: Object.fromEntries(made.map((k) => [k.role, k.kcv])) as { purchase: string; tac: string; load?: string } };
    const rel = (p?: string) => (p ? path.relative(dir, p) : undefined);
    return { pkcs11: { module: settings.module, tokenLabel: settings.tokenLabel, pinFile: rel(settings.pinFile), softhsm2Conf: rel(settings.softhsm2Conf), keySystem: i ? "4100" : "MOT", kcv } };
  });
  return { level1: level1!, level2: level2!, what: "SoftHSM2 tokens level1 (3DES) and level2 (SM4) in hsm/ with keys made inside them (their KCVs in the configs)" };
}

async function init(values: Values): Promise<void> {
  const dir = path.resolve(text(values, "dir")!);
  const terminals = list(values, "terminal") ?? ["001122334455"];
  const hosts = list(values, "host") ?? [];
  // The terminals reach the front-end at the first --host; it listens there unless --listen says otherwise.
  const routeHost = hosts[0] ?? "127.0.0.1";
  const listen = text(values, "listen", false) ?? (hosts.length === 0 ? "127.0.0.1" : isIP(routeHost) ? routeHost : "0.0.0.0");
  if (!isIP(listen)) throw new UsageError(`--listen must be an IP address, got ${listen}`);
  const esp32Dir = path.resolve(text(values, "esp32-certs", false) ?? ESP32_CERTS_DIR);
  const serverHosts = [...new Set(["127.0.0.1", "::1", "localhost", ...hosts])];
  const pki = await generateDevelopmentPki({ dir: path.join(dir, "pki"), terminalIds: terminals, operators: ["clearing"], serverHosts });
  const keyStores = initKeyStores(dir);
  const tls = { cert: "pki/server.crt.pem", key: "pki/server.key.pem", clientCa: "pki/ca.crt.pem" };
  const level1Url = `https://${urlHost(routeHost)}:8443`;
  const level1: FrontendConfig = {
    name: "level-1", level: 1, listen: { host: listen, port: 8443 }, tls, database: "level1.sqlite", keyStore: keyStores.level1,
    cities: [{ cityCode: "*", applications: ["tunion"] }], operators: ["clearing"], limits: { maxAmount: 100000 },
    routesVersion: 1,
    operator: { port: 8445, accounts: [] },
    routes: [
      { cityCode: "*", application: "tunion", level: 1, url: level1Url, keyIndex: 1 },
      { cityCode: "4100", application: "cityunion", level: 2, url: `https://${urlHost(routeHost)}:8444`, keyIndex: 1 },
    ],
  };
  const level2: FrontendConfig = {
    name: "level-2-4100", level: 2, listen: { host: listen, port: 8444 }, tls, database: "level2.sqlite", keyStore: keyStores.level2,
    cities: [{ cityCode: "4100", applications: ["cityunion"] }], operators: ["clearing"], limits: { maxAmount: 100000 },
  };
  writeFileSync(path.join(dir, "level1.json"), `${JSON.stringify(level1, null, 2)}\n`);
  writeFileSync(path.join(dir, "level2.json"), `${JSON.stringify(level2, null, 2)}\n`);
  // One PKI for both: the ESP32 build takes the same CA and the first terminal's certificate and PKCS#8 key, as DER.
  const board = pki.terminals[terminals[0]!.toUpperCase()]!;
  mkdirSync(esp32Dir, { recursive: true });
  writeFileSync(path.join(esp32Dir, "ca.der"), pki.ca.certDer);
  writeFileSync(path.join(esp32Dir, "terminal.der"), board.certDer);
  writeFileSync(path.join(esp32Dir, "terminalkey.der"), board.keyDer, { mode: 0o600 });
  console.log([
    `development setup in ${dir}:`,
    `  PKI in pki/ (server certificate for ${serverHosts.join(", ")}; terminals ${Object.keys(pki.terminals).join(", ")}; operator clearing)`,
    `  ${keyStores.what}`,
    `  level1.json and level2.json listening on ${listen}:8443 and :8444, routes to ${urlHost(routeHost)}`,
    `  ESP32 certificates for terminal ${board.commonName} in ${esp32Dir} (ca.der, terminal.der, terminalkey.der)${esp32Dir === ESP32_CERTS_DIR ? "" : `: build with TERMINAL_CERTS=${esp32Dir}`}`,
    `  flash with: mcconfig -d -m -p esp32 terminalId=${board.commonName} level1Url=${level1Url}`,
    `add a console operator with: npm run frontend -- operator-add --config ${path.join(dir, "level1.json")} --user NAME`,
  ].join("\n"));
}

const COMMANDS: Record<string, Command> = {
  serve: {
    summary: "run a front-end (the default command)",
    usage: "[serve] --config <file> [--workers N]",
    help: [CONFIG, ["--workers <N>", "N worker processes share the ports (0 to 64; default 0: one process)"]],
    notes: "Runs until SIGINT or SIGTERM. Prints one JSON line {\"event\":\"listening\",...} once it listens.",
    options: { config: { type: "string" }, workers: { type: "string" } },
    run: serve,
  },
  settle: {
    summary: "export a business day's completed purchases",
    usage: "settle --config <file> --date YYYYMMDD [--format jsonl|csv] [--out <file>]",
    help: [CONFIG, ["--date <YYYYMMDD>", "the business day, in China time (UTC+8)"], ["--format <jsonl|csv>", "default jsonl; in CSV a cell that starts with =, +, -, @, tab or CR gets a leading '"],
      ["--out <file>", "write there instead of stdout"]],
    notes: "Safe while the front-end runs.",
    options: { config: { type: "string" }, date: { type: "string" }, format: { type: "string" }, out: { type: "string" } },
    run: settle,
  },
  keys: {
    summary: "write a development key file (master keys in clear: development only; see keys create)",
    usage: "keys --out <file> [--key-system NAME] [--key INDEX:VERSION:3des|sm4 ...]",
    help: [["--out <file>", "the key store file to write"], ["--key-system <name>", "a name for logs and health"], ["--key <INDEX:VERSION:ALG>", "a master key pair to make (repeatable)"]],
    options: { out: { type: "string" }, "key-system": { type: "string" }, key: { type: "string", multiple: true } },
    run: keys,
  },
  "keys create": {
    summary: "make a master key pair inside the PKCS#11 token of a configuration (the key ceremony)",
    usage: "keys create --config <file> --key INDEX:VERSION:3des|sm4 [--derivation one-level|two-level] [--no-load-key yes]",
    help: [CONFIG, ["--key <INDEX:VERSION:ALG>", "the key index, version and algorithm"], ["--derivation <kind>", "one-level (default) or two-level card keys"],
      ["--no-load-key yes", "make no master load key (cards of this version cannot be refunded onto)"]],
    notes: "Prints the new keys' check values (KCV), never a key. See docs/keys.md.",
    options: { config: { type: "string" }, key: { type: "string" }, derivation: { type: "string" }, "no-load-key": { type: "string" } },
    run: (v) => keyCeremony("create", (n, required = true) => text(v, n, required)),
  },
  "keys import": {
    summary: "import the master keys of a development key file into the token, once",
    usage: "keys import --config <file> --from <key store JSON>",
    help: [CONFIG, ["--from <file>", "a key store file (it holds keys in clear: destroy it afterwards)"]],
    options: { config: { type: "string" }, from: { type: "string" } },
    run: (v) => keyCeremony("import", (n, required = true) => text(v, n, required)),
  },
  "keys list": {
    summary: "list the token's master keys with their check values",
    usage: "keys list --config <file>",
    help: [CONFIG],
    options: { config: { type: "string" } },
    run: (v) => keyCeremony("list", (n, required = true) => text(v, n, required)),
  },
  "keys retire": {
    summary: "retire a key version: cards of that version are refused, newer versions keep paying",
    usage: "keys retire --config <file> --key INDEX:VERSION:3des|sm4",
    help: [CONFIG, ["--key <INDEX:VERSION:ALG>", "the version to retire"]],
    options: { config: { type: "string" }, key: { type: "string" } },
    run: (v) => keyCeremony("retire", (n, required = true) => text(v, n, required)),
  },
  init: {
    summary: "make a development setup: PKI, key stores, level-1 and level-2 configurations, ESP32 certificates",
    usage: "init --dir <dir> [--host <name or address> ...] [--listen <address>] [--terminal <12 hex digits> ...] [--esp32-certs <dir>]",
    help: [["--dir <dir>", "where to write the setup"], ["--host <host>", "a name or address terminals reach the front-end at: in the server certificate, and the routes point to the first (repeatable)"],
      ["--listen <address>", "the address to listen on (default: the first --host if it is an address, 0.0.0.0 for a name, else 127.0.0.1)"],
      ["--terminal <id>", "a terminal ID to issue a certificate for (repeatable; default 001122334455)"],
      ["--esp32-certs <dir>", `where to write ca.der, terminal.der and terminalkey.der for the ESP32 build (default ${path.relative(process.cwd(), ESP32_CERTS_DIR) || "."})`]],
    notes: "A development setup: make your own PKI and keys for production (docs/operate.md).",
    options: { dir: { type: "string" }, host: { type: "string", multiple: true }, listen: { type: "string" }, terminal: { type: "string", multiple: true }, "esp32-certs": { type: "string" } },
    run: init,
  },
  revoke: {
    summary: "revoke a terminal's certificates (or one of them): running front-ends refuse it and close its connections within a second",
    usage: "revoke --config <file> --terminal <12 hex digits> [--serial HEX] [--reason TEXT]",
    help: [CONFIG, ["--terminal <id>", "the terminal ID (its certificate's CN)"], ["--serial <hex>", "revoke only this certificate (the old one after a renewal)"],
      ["--reason <text>", "recorded with the revocation"]],
    notes: "Recorded in the database on both engines; see docs/certificates.md.",
    options: { config: { type: "string" }, terminal: { type: "string" }, serial: { type: "string" }, reason: { type: "string" } },
    run: async (v) => {
      const r = await revokeFromCli(text(v, "config")!, text(v, "terminal")!, text(v, "serial", false), text(v, "reason", false));
      console.log(JSON.stringify({ event: "revoked", terminalId: r.terminalId, serial: r.serial ?? "all", version: r.id, reason: r.reason }));
    },
  },
  backup: {
    summary: "copy a live SQLite journal consistently (its online backup API), checked before it is put in place",
    usage: "backup --config <file> --out <file>",
    help: [CONFIG, ["--out <file>", "where the copy goes"]],
    notes: "Safe while the front-end runs. PostgreSQL: use pg_dump (docs/operate.md).",
    options: { config: { type: "string" }, out: { type: "string" } },
    run: async (v) => {
      const out = path.resolve(text(v, "out")!);
      const copy = await backupSqlite(loadConfigFile(text(v, "config")!).database, out);
      console.log(JSON.stringify({ event: "backup", out, pages: copy.pages, schemaVersion: copy.schemaVersion }));
    },
  },
  migrate: {
    summary: "apply the schema migrations and exit (an upgrade step; a starting front-end also does it)",
    usage: "migrate --config <file>",
    help: [CONFIG],
    options: { config: { type: "string" } },
    run: async (v) => {
      const schemaVersion = await migrateDatabase(loadConfigFile(text(v, "config")!).database);
      console.log(JSON.stringify({ event: "migrated", schemaVersion }));
    },
  },
  "operator-add": {
    summary: "add a console operator",
    usage: "operator-add --config <file> --user <name>",
    help: [CONFIG, USER],
    notes: `${PASSWORD_NOTE} Only operator.accounts in the file changes; a running front-end picks it up within a second.`,
    options: { config: { type: "string" }, user: { type: "string" } },
    run: (v) => addOperator(text(v, "config")!, text(v, "user")!),
  },
  "operator-passwd": {
    summary: "change a console operator's password and end their sessions",
    usage: "operator-passwd --config <file> --user <name>",
    help: [CONFIG, USER],
    notes: PASSWORD_NOTE,
    options: { config: { type: "string" }, user: { type: "string" } },
    run: (v) => changePassword(text(v, "config")!, text(v, "user")!),
  },
  "operator-remove": {
    summary: "remove a console operator and end their sessions",
    usage: "operator-remove --config <file> --user <name>",
    help: [CONFIG, USER],
    options: { config: { type: "string" }, user: { type: "string" } },
    run: (v) => removeOperator(text(v, "config")!, text(v, "user")!),
  },
  "operator-list": {
    summary: "list the console operators, one a line",
    usage: "operator-list --config <file>",
    help: [CONFIG],
    options: { config: { type: "string" } },
    run: (v) => listOperators(text(v, "config")!),
  },
};

function commandHelp(name: string, c: Command): string {
  const width = Math.max(...c.help.map(([o]) => o.length), "--help".length);
  const lines = [...c.help, ["--help", "show this help"] as [string, string]].map(([o, d]) => `  ${o.padEnd(width)}  ${d}`);
  return `Usage: npm run frontend -- ${c.usage}\n\n${c.summary[0]!.toUpperCase()}${c.summary.slice(1)}.\n\nOptions:\n${lines.join("\n")}${c.notes ? `\n\n${c.notes}` : ""}\n`;
}

export function overallHelp(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((n) => n.length));
  return `Usage: npm run frontend -- [command] [options]\n\nCommands:\n${Object.entries(COMMANDS).map(([n, c]) => `  ${n.padEnd(width)}  ${c.summary}`).join("\n")}\n\n` +
    "`npm run frontend -- <command> --help` explains a command and its options.\n";
}

/** Turns parseArgs' errors into ours: "unknown option --bogus", "--config needs a value". */
function parse(name: string, c: Command, args: string[]): Values {
  try {
    return parseArgs({ args, options: { ...c.options, help: { type: "boolean", short: "h" } }, strict: true, allowPositionals: false }).values as Values;
  } catch (e) {
    const error = e as Error & { code?: string };
    const option = /'(-[^' ]+)/.exec(error.message)?.[1];
    if (error.code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") throw new UsageError(`unknown option ${option ?? error.message}`, { cause: name });
    if (error.code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE") throw new UsageError(`${option ?? "an option"} needs a value`, { cause: name });
    if (error.code === "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL") throw new UsageError(`unexpected argument ${/'([^']*)'/.exec(error.message)?.[1] ?? ""}`.trim(), { cause: name });
    throw error;
  }
}

async function main(argv: string[]): Promise<void> {
  let name = "serve";
  let args = argv;
  if (argv[0] !== undefined && !argv[0].startsWith("-")) {
    name = argv[0];
    args = argv.slice(1);
    // The key ceremony's commands are two words: keys create|import|list|retire.
    if (name === "keys" && args[0] !== undefined && COMMANDS[`keys ${args[0]}`]) {
      name = `keys ${args[0]}`;
      args = args.slice(1);
    }
  } else if (argv.length === 0 || argv.every((a) => a === "--help" || a === "-h")) {
    process.stdout.write(overallHelp());
    return;
  }
  const command = COMMANDS[name];
  if (!command) throw new UsageError(`unknown command ${name}`);
  const values = parse(name, command, args);
  if (values.help) {
    process.stdout.write(commandHelp(name, command));
    return;
  }
  await command.run(values);
}

main(process.argv.slice(2)).catch((e: Error & { code?: string }) => {
  if (e instanceof UsageError || e instanceof CeremonyUsageError) {
    const name = typeof e.cause === "string" ? e.cause : undefined;
    console.error(`frontend: ${e.message}\n\n${name ? `Usage: npm run frontend -- ${COMMANDS[name]!.usage}\n(npm run frontend -- ${name} --help for more)` : overallHelp()}`);
    process.exit(2);
  }
  console.error(`frontend: ${e.code ? `${e.code}: ` : ""}${e.message}`);
  process.exit(1);
});

