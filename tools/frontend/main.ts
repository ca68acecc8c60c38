/**
 * npm run frontend -- --config <file> [--workers N]      run a front-end (level 1 or 2) until SIGINT/SIGTERM; N processes
 * npm run frontend -- settle --config <file> --date YYYYMMDD [--format jsonl|csv] [--out <file>]
 * npm run frontend -- keys --out <file> [--key-system NAME] [--key INDEX:VERSION:ALG ...]
 * npm run frontend -- init --dir <dir>                     a development setup: PKI, key stores, level-1 and level-2 configs
 * npm run frontend -- backup --config <file> --out <file>  a consistent copy of a live SQLite journal (PostgreSQL: pg_dump)
 * npm run frontend -- migrate --config <file>              applies the schema migrations and exits
 * npm run frontend -- operator-add --config <file> --user NAME   adds (or replaces) an operator console account; the
 *                                                          password is read from stdin (or OPERATOR_PASSWORD)
 */
import { writeFileSync } from "node:fs";
import path from "node:path";
import { generateDevelopmentPki } from "../pki/index";
import { loadConfigFile, type FrontendConfig } from "./config";
import { openDatabase } from "./storage/journal";
import { writeDevelopmentKeyStore, type MasterKeyRef } from "./keys/keystore";
import { startFrontend } from "./app";
import { isWorker, runPrimary, runWorker } from "./workers";
import { formatSettlement, settlementFromDatabase, settlementRecords, type SettlementRecord } from "./purchases/service";
import { isPostgresUrl, PostgresStore } from "./storage/store";
import { addOperator } from "./operator/accounts-cli";
import { backupSqlite, migrateDatabase } from "./storage/backup";

const USAGE = `Usage:
  npm run frontend -- --config <file> [--workers N]
  npm run frontend -- settle --config <file> --date YYYYMMDD [--format jsonl|csv] [--out <file>]
  npm run frontend -- keys --out <file> [--key-system NAME] [--key INDEX:VERSION:3des|sm4 ...]
  npm run frontend -- init --dir <dir> [--terminal <12 hex digits> ...]
  npm run frontend -- operator-add --config <file> --user NAME     (password on stdin or in OPERATOR_PASSWORD)
  npm run frontend -- backup --config <file> --out <file>          (SQLite; PostgreSQL: pg_dump, see docs/operate.md)
  npm run frontend -- migrate --config <file>`;

class UsageError extends Error {}

function parseArgs(argv: string[]): { command: string; options: Map<string, string[]> } {
  let command = "serve";
  const options = new Map<string, string[]>();
  let i = 0;
  if (argv[0] && !argv[0].startsWith("--")) command = argv[i++]!;
  for (; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--help" || arg === "-h") {
      options.set("help", []);
      continue;
    }
    if (!arg.startsWith("--")) throw new UsageError(`unexpected argument ${arg}`);
    const value = argv[++i];
    if (value === undefined) throw new UsageError(`${arg} needs a value`);
    options.set(arg.slice(2), [...(options.get(arg.slice(2)) ?? []), value]);
  }
  return { command, options };
}

function one(options: Map<string, string[]>, name: string, required = true): string | undefined {
  const v = options.get(name);
  if (!v && required) throw new UsageError(`--${name} is required`);
  return v?.[v.length - 1];
}

async function serve(options: Map<string, string[]>): Promise<void> {
  const config = loadConfigFile(one(options, "config")!);
  const workers = Number(one(options, "workers", false) ?? 0);
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

async function settle(options: Map<string, string[]>): Promise<void> {
  const config = loadConfigFile(one(options, "config")!);
  const day = one(options, "date")!;
  if (!/^[0-9]{8}$/.test(day)) throw new UsageError("--date must be YYYYMMDD");
  const format = one(options, "format", false) ?? "jsonl";
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
  const text = formatSettlement(records, format);
  const out = one(options, "out", false);
  if (out) writeFileSync(out, text);
  else process.stdout.write(text);
}

function parseRef(text: string): MasterKeyRef {
  const m = /^([0-9]{1,3}):([0-9]{1,3}):(3des|sm4)$/.exec(text);
  if (!m || Number(m[1]) > 255 || Number(m[2]) > 255) throw new UsageError(`--key must be INDEX:VERSION:3des|sm4, got ${text}`);
  return { keyIndex: Number(m[1]), keyVersion: Number(m[2]), algorithm: m[3] as "3des" | "sm4" };
}

function keys(options: Map<string, string[]>): void {
  const out = one(options, "out")!;
  const refs = options.get("key")?.map(parseRef);
  const result = writeDevelopmentKeyStore(out, { keySystem: one(options, "key-system", false), refs });
  console.log(`wrote ${result.keys.length} master key pairs (${result.keys.map((k) => `${k.keyIndex}:${k.keyVersion}:${k.algorithm}`).join(", ")}) to ${out}`);
}

async function init(options: Map<string, string[]>): Promise<void> {
  const dir = path.resolve(one(options, "dir")!);
  const terminals = options.get("terminal") ?? ["001122334455"];
  const pki = await generateDevelopmentPki({ dir: path.join(dir, "pki"), terminalIds: terminals, operators: ["clearing"] });
  writeDevelopmentKeyStore(path.join(dir, "keys-level1.json"), { keySystem: "MOT", refs: [{ keyIndex: 1, keyVersion: 1, algorithm: "3des" }] });
  writeDevelopmentKeyStore(path.join(dir, "keys-level2.json"), { keySystem: "4100", refs: [{ keyIndex: 1, keyVersion: 1, algorithm: "sm4" }] });
  const tls = { cert: "pki/server.crt.pem", key: "pki/server.key.pem", clientCa: "pki/ca.crt.pem" };
  const level1: FrontendConfig = {
    name: "level-1", level: 1, listen: { host: "127.0.0.1", port: 8443 }, tls, database: "level1.sqlite", keyStore: "keys-level1.json",
    cities: [{ cityCode: "*", applications: ["tunion"] }], operators: ["clearing"], limits: { maxAmount: 100000 },
    routesVersion: 1,
    operator: { port: 8445, accounts: [] },
    routes: [
      { cityCode: "*", application: "tunion", level: 1, url: "https://127.0.0.1:8443", keyIndex: 1 },
      { cityCode: "4100", application: "cityunion", level: 2, url: "https://127.0.0.1:8444", keyIndex: 1 },
    ],
  };
  const level2: FrontendConfig = {
    name: "level-2-4100", level: 2, listen: { host: "127.0.0.1", port: 8444 }, tls, database: "level2.sqlite", keyStore: "keys-level2.json",
    cities: [{ cityCode: "4100", applications: ["cityunion"] }], operators: ["clearing"], limits: { maxAmount: 100000 },
  };
  writeFileSync(path.join(dir, "level1.json"), `${JSON.stringify(level1, null, 2)}\n`);
  writeFileSync(path.join(dir, "level2.json"), `${JSON.stringify(level2, null, 2)}\n`);
  console.log(`development setup in ${dir}: PKI (${Object.keys(pki.terminals).join(", ")}, operator clearing), keys-level1.json (3DES), keys-level2.json (SM4), level1.json, level2.json; add a console operator with: npm run frontend -- operator-add --config ${path.join(dir, "level1.json")} --user NAME`);
}

async function main(): Promise<void> {
  const { command, options } = parseArgs(process.argv.slice(2));
  if (options.has("help")) {
    console.log(USAGE);
    return;
  }
  switch (command) {
    case "serve": return serve(options);
    case "settle": return settle(options);
    case "keys": return keys(options);
    case "init": return init(options);
    case "operator-add": return addOperator(one(options, "config")!, one(options, "user")!);
    case "backup": {
      const out = path.resolve(one(options, "out")!);
      const copy = await backupSqlite(loadConfigFile(one(options, "config")!).database, out);
      console.log(JSON.stringify({ event: "backup", out, pages: copy.pages, schemaVersion: copy.schemaVersion }));
      return;
    }
    case "migrate": {
      const schemaVersion = await migrateDatabase(loadConfigFile(one(options, "config")!).database);
      console.log(JSON.stringify({ event: "migrated", schemaVersion }));
      return;
    }
    default: throw new UsageError(`unknown command ${command}`);
  }
}

main().catch((e: Error & { code?: string }) => {
  if (e instanceof UsageError) {
    console.error(`${e.message}\n\n${USAGE}`);
    process.exit(2);
  }
  console.error(`frontend: ${e.code ? `${e.code}: ` : ""}${e.message}`);
  process.exit(1);
});
