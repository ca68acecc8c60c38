/**
 * npm run pki -- --out <dir> [--terminal <12 hex digits> ...] [--host <name or IP> ...] [--operator <name> ...] [--days N]
 * Makes a development PKI (see index.ts): CA, server certificate, terminal certificates (CN = terminal ID), PEM and DER.
 * npm run pki -- sign-csr --ca-dir <dir> --csr <terminal.csr> --out <terminal.pem> [--days N]
 * npm run pki -- crl --ca-dir <dir> --out <crl.pem> [--serial HEX ...] [--days N]
 * The operator's CA at work (operator-ca.ts): a terminal's CSR signed (PEM, and DER beside it), a CRL issued.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { generateDevelopmentPki } from "./index";
import { loadCa, makeCrl, signTerminalCsr } from "./operator-ca";

const USAGE = `Usage: npm run pki -- --out <dir> [--terminal 001122334455 ...] [--host 127.0.0.1 ...] [--operator clearing ...] [--days 825]
       npm run pki -- sign-csr --ca-dir <dir> --csr terminal.csr --out terminal.pem [--days 825]   (also writes terminal.der)
       npm run pki -- crl --ca-dir <dir> --out crl.pem [--serial HEX ...] [--days 7]`;

function parse(args: string[], allowed: string[]): Record<string, string[]> {
  const options: Record<string, string[]> = {};
  for (let i = 0; i < args.length; i += 2) {
    const name = args[i]!;
    const value = args[i + 1];
    if (!allowed.includes(name) || value === undefined) {
      console.error(`bad argument ${name}\n${USAGE}`);
      process.exit(2);
    }
    (options[name.slice(2)] ??= []).push(value);
  }
  for (const name of ["ca-dir", "out"]) {
    if (!options[name]) {
      console.error(`--${name} is required\n${USAGE}`);
      process.exit(2);
    }
  }
  return options;
}

function signCsr(args: string[]): void {
  const o = parse(args, ["--ca-dir", "--csr", "--out", "--days"]);
  if (!o.csr) {
    console.error(`--csr is required\n${USAGE}`);
    process.exit(2);
  }
  const signed = signTerminalCsr(loadCa(o["ca-dir"]![0]!), readFileSync(o.csr[0]!, "utf8"), o.days ? Number(o.days[0]) : undefined);
  const out = o.out![0]!;
  const der = out.replace(/\.pem$/i, "") + ".der";
  writeFileSync(out, signed.certPem);
  writeFileSync(der, signed.certDer);
  console.log(JSON.stringify({ event: "signed", terminalId: signed.terminalId, serial: signed.serial, notAfter: signed.notAfter.toISOString(), pem: out, der }));
}

function crl(args: string[]): void {
  const o = parse(args, ["--ca-dir", "--out", "--serial", "--days"]);
  writeFileSync(o.out![0]!, makeCrl(loadCa(o["ca-dir"]![0]!), o.serial ?? [], o.days ? Number(o.days[0]) : undefined));
  console.log(JSON.stringify({ event: "crl", out: o.out![0], serials: o.serial ?? [] }));
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  if (args[0] === "sign-csr") return signCsr(args.slice(1));
  if (args[0] === "crl") return crl(args.slice(1));
  if (args.includes("--help") || args.includes("-h")) {
    console.log(USAGE);
    return;
  }
  const options: Record<string, string[]> = {};
  for (let i = 0; i < args.length; i += 2) {
    const name = args[i]!;
    const value = args[i + 1];
    if (!["--out", "--terminal", "--host", "--operator", "--days"].includes(name) || value === undefined) {
      console.error(`bad argument ${name}\n${USAGE}`);
      process.exit(2);
    }
    (options[name.slice(2)] ??= []).push(value);
  }
  if (!options.out) {
    console.error(`--out is required\n${USAGE}`);
    process.exit(2);
  }
  const days = options.days ? Number(options.days[0]) : undefined;
  if (days !== undefined && (!Number.isInteger(days) || days < 1)) {
    console.error("--days must be a positive integer");
    process.exit(2);
  }
  const pki = await generateDevelopmentPki({
    dir: options.out[0]!, terminalIds: options.terminal ?? ["001122334455"],
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
