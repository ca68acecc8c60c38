/**
 * npm run openapi [-- --check]
 * Starts a level-1 front-end (throwaway PKI, key store and SQLite file, port 0), takes the OpenAPI document its routes
 * produce and writes it to docs/openapi.json; with --check, exits 1 when the committed file differs.
 */
import { parseArgs } from "node:util";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { generateDevelopmentPki } from "../../pki/index";
import { writeDevelopmentKeyStore } from "../../frontend/keys/keystore";
import { startFrontend } from "../../frontend/app";
import { openApiText } from "../../frontend/operator/openapi";

export const OPENAPI_FILE = path.resolve(import.meta.dirname, "../../../docs/openapi.json");

/** The document a level-1 front-end serves (level 1 has every route the protocol has). */
export async function generateOpenApi(): Promise<string> {
  const dir = mkdtempSync(path.join(tmpdir(), "openapi-"));
  try {
    // 1024-bit keys: these certificates only let the server start, nobody connects.
    const pki = await generateDevelopmentPki({ dir: path.join(dir, "pki"), terminalIds: [], operators: [], rsaBits: 1024 });
    const keyStore = path.join(dir, "keys.json");
    writeDevelopmentKeyStore(keyStore);
    const frontend = await startFrontend({
      level: 1, listen: { host: "127.0.0.1", port: 0 }, tls: { cert: pki.server.certPem, key: pki.server.keyPem, clientCa: pki.ca.certPem },
      database: path.join(dir, "openapi.sqlite"), keyStore, cities: [{ cityCode: "*" }], log: { level: "silent" },
    });
    try {
      await frontend.app.ready();
      return openApiText(frontend.app);
    } finally {
      await frontend.close();
    }
  } finally {
    // frontend.close() has waited for the journal's checkpoint thread, so nothing writes here any more.
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const text = await generateOpenApi();
  if (parseArgs({ strict: true, options: { check: { type: "boolean" } } }).values.check) {
    let committed = "";
    try { committed = readFileSync(OPENAPI_FILE, "utf8"); } catch { /* missing counts as different */ }
    if (committed !== text) {
      console.error(`${path.relative(process.cwd(), OPENAPI_FILE)} differs from the routes' schemas: run npm run openapi`);
      process.exit(1);
    }
    console.log(`${path.relative(process.cwd(), OPENAPI_FILE)} is up to date`);
    return;
  }
  writeFileSync(OPENAPI_FILE, text);
  console.log(`wrote ${path.relative(process.cwd(), OPENAPI_FILE)}`);
}

if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(import.meta.filename)) {
  main().catch((e: Error) => {
    console.error(`openapi: ${e.message}`);
    process.exit(1);
  });
}
