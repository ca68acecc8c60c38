/**
 * npm run pki -- --out <dir> [--terminal <12 hex digits> ...] [--host <name or IP> ...] [--operator <name> ...] [--days N]
 * Makes a development PKI (see index.ts): CA, server certificate, terminal certificates (CN = terminal ID), PEM and DER.
 * npm run pki -- sign-csr --ca-dir <dir> --csr <terminal.csr> --out <terminal.pem> [--days N]
 * npm run pki -- crl --ca-dir <dir> --out <crl.pem> [--serial HEX ...] [--days N]
 * The operator's CA at work (operator-ca.ts): a terminal's CSR signed (PEM, and DER beside it), a CRL issued.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { generateDevelopmentPki } from "./index";
import { loadCa, makeCrl, signTerminalCsr } from "./operator-ca";

const USAGE = `Usage: npm run pki -- --out <dir> [--terminal 001122334455 ...] [--host 127.0.0.1 ...] [--operator clearing ...] [--days 825]
       npm run pki -- sign-csr --ca-dir <dir> --csr terminal.csr --out terminal.pem [--days 825]   (also writes terminal.der)
       npm run pki -- crl --ca-dir <dir> --out crl.pem [--serial HEX ...] [--days 7]`;

type Options = { [name: string]: string | string[] | boolean | undefined };

function parse(args: string[], options: Record<string, { type: "string" | "boolean"; multiple?: boolean; short?: string }>, required: string[] = []): Options {
  let values: Options;
  try {
    values = parseArgs({ args, strict: true, options: { ...options, help: { type: "boolean", short: "h" } } }).values as Options;
  } catch (error) {
    console.error(`${(error as Error).message}\n${USAGE}`);
    process.exit(2);
  }
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  for (const name of required) {
    if (values[name] === undefined) {
      console.error(`--${name} is required\n${USAGE}`);
      process.exit(2);
    }
  }
  return values;
}

function daysOf(value: unknown): number | undefined {
  const days = value === undefined ? undefined : Number(value);
  if (days !== undefined && (!Number.isInteger(days) || days < 1)) {
    console.error("--days must be a positive integer");
    process.exit(2);
  }
  return days;
}

function signCsr(args: string[]): void {
  const o = parse(args, { "ca-dir": { type: "string" }, csr: { type: "string" }, out: { type: "string" }, days: { type: "string" } }, ["ca-dir", "csr", "out"]);
  const signed = signTerminalCsr(loadCa(o["ca-dir"] as string), readFileSync(o.csr as string, "utf8"), daysOf(o.days));
  const out = o.out as string;
  const der = `${out.replace(/\.pem$/i, "")}.der`;
  writeFileSync(out, signed.certPem);
  writeFileSync(der, signed.certDer);
  console.log(JSON.stringify({ event: "signed", terminalId: signed.terminalId, serial: signed.serial, notAfter: signed.notAfter.toISOString(), pem: out, der }));
}

function crl(args: string[]): void {
  const o = parse(args, { "ca-dir": { type: "string" }, out: { type: "string" }, serial: { type: "string", multiple: true }, days: { type: "string" } }, ["ca-dir", "out"]);
  const serials = (o.serial as string[] | undefined) ?? [];
  writeFileSync(o.out as string, makeCrl(loadCa(o["ca-dir"] as string), serials, daysOf(o.days)));
  console.log(JSON.stringify({ event: "crl", out: o.out, serials }));
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  if (args[0] === "sign-csr") return signCsr(args.slice(1));
  if (args[0] === "crl") return crl(args.slice(1));
  const options = parse(args, {
    out: { type: "string" }, terminal: { type: "string", multiple: true }, host: { type: "string", multiple: true },
    operator: { type: "string", multiple: true }, days: { type: "string" },
  }, ["out"]);
  const pki = await generateDevelopmentPki({
    dir: options.out as string, terminalIds: (options.terminal as string[] | undefined) ?? ["001122334455"],
    // Loopback always, so the development setup works on this machine; --host adds the names a real terminal will dial.
    serverHosts: ["127.0.0.1", "::1", "localhost", ...((options.host as string[] | undefined) ?? [])],
    operators: (options.operator as string[] | undefined) ?? ["clearing"], days: daysOf(options.days),
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
