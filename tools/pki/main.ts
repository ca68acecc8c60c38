/**
 * npm run pki -- --out <dir> [--terminal <12 hex digits> ...] [--host <name or IP> ...] [--operator <name> ...] [--days N]
 * Makes a development PKI (see index.ts): CA, server certificate, terminal certificates (CN = terminal ID), PEM and DER.
 */
import { parseArgs } from "node:util";
import { generateDevelopmentPki } from "./index";

const USAGE = "Usage: npm run pki -- --out <dir> [--terminal 001122334455 ...] [--host 127.0.0.1 ...] [--operator clearing ...] [--days 825]";

async function main(): Promise<void> {
  let options;
  try {
    options = parseArgs({
      strict: true, options: {
        out: { type: "string" }, terminal: { type: "string", multiple: true }, host: { type: "string", multiple: true },
        operator: { type: "string", multiple: true }, days: { type: "string" }, help: { type: "boolean", short: "h" },
      },
    }).values;
  } catch (error) {
    console.error(`${(error as Error).message}\n${USAGE}`);
    process.exit(2);
  }
  if (options.help) {
    console.log(USAGE);
    return;
  }
  if (!options.out) {
    console.error(`--out is required\n${USAGE}`);
    process.exit(2);
  }
  const days = options.days ? Number(options.days) : undefined;
  if (days !== undefined && (!Number.isInteger(days) || days < 1)) {
    console.error("--days must be a positive integer");
    process.exit(2);
  }
  const pki = await generateDevelopmentPki({
    dir: options.out, terminalIds: options.terminal ?? ["001122334455"],
    // Loopback always, so the development setup works on this machine; --host adds the names a real terminal will dial.
    serverHosts: ["127.0.0.1", "::1", "localhost", ...(options.host ?? [])], operators: options.operator ?? ["clearing"], days,
  });
  console.log(`CA          ${pki.ca.certPath}`);
  console.log(`server      ${pki.server.certPath}`);
  for (const [id, b] of Object.entries(pki.terminals)) console.log(`terminal    ${id}  ${b.certPath} (+ .der)`);
  for (const [cn, b] of Object.entries(pki.operators)) console.log(`operator    ${cn}  ${b.certPath}`);
  console.log(`rogue CA    ${pki.rogue.ca.certPath} (for tests only)`);
  console.log(`manifest    ${pki.manifestPath}`);
}

main().catch((e: Error & { code?: string }) => {
  console.error(`pki: ${e.code ? `${e.code}: ` : ""}${e.message}`);
  process.exit(1);
});
