/**
 * Development PKI for the front-end's mutual TLS: a CA, server certificates and terminal certificates (CN = the
 * 12-digit terminal ID), plus a second, unrelated "rogue" CA that tests use to prove foreign certificates are refused.
 *
 * Made in-process (RSA keys from node:crypto, certificates from node-forge) so that `npm start` works on a machine with
 * only Node and npm. Everything is written as PEM and as DER, because the ESP32 build embeds DER.
 * RSA-2048 with SHA-256 throughout: Moddable's TLS client on the ESP32 handles RSA and not reliably ECDSA.
 */
import { generateKeyPair, randomBytes, createPrivateKey, X509Certificate } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import forge from "node-forge";
import { CodedError } from "../../modules/errors/errors";

const generateRsa = promisify(generateKeyPair);

export class PkiError extends CodedError {
  constructor(message: string) {
    super("PKI", message);
  }
}

/** A certificate and its private key, as PEM and DER, and where they were written. */
export interface CertificateBundle {
  commonName: string;
  certPem: string;
  keyPem: string;
  certDer: Uint8Array;
  /** PKCS#8 DER. */
  keyDer: Uint8Array;
  certPath: string;
  keyPath: string;
  certDerPath: string;
  keyDerPath: string;
}

export interface DevelopmentPkiOptions {
  /** Where to write the files (created if missing). */
  dir: string;
  /** Terminal IDs (12 hex digits) to issue client certificates for. */
  terminalIds?: string[];
  /** Names and addresses the server certificate is valid for. Default 127.0.0.1, ::1 and localhost. */
  serverHosts?: string[];
  /** Common names of operator clients (e.g. a clearing house pulling the settlement export). */
  operators?: string[];
  /** Terminal IDs to issue certificates for from the rogue CA as well (the same IDs by default). */
  rogueTerminalIds?: string[];
  /** Validity of the issued certificates in days. Default 825. */
  days?: number;
  /** RSA modulus size. Default 2048. */
  rsaBits?: number;
}

export interface DevelopmentPki {
  dir: string;
  ca: CertificateBundle;
  server: CertificateBundle;
  terminals: Record<string, CertificateBundle>;
  operators: Record<string, CertificateBundle>;
  rogue: { ca: CertificateBundle; terminals: Record<string, CertificateBundle> };
  /** pki.json: the same paths, for tools that only read files. */
  manifestPath: string;
}

export const TERMINAL_ID_PATTERN = /^[0-9A-Fa-f]{12}$/;

interface Issuer {
  cert: forge.pki.Certificate;
  key: forge.pki.rsa.PrivateKey;
}

interface KeyMaterial {
  forgePrivate: forge.pki.rsa.PrivateKey;
  forgePublic: forge.pki.rsa.PublicKey;
  keyPem: string;
  keyDer: Uint8Array;
}

async function newKey(bits: number): Promise<KeyMaterial> {
  // Native key generation: node-forge's pure-JS RSA would take seconds per key.
  const { privateKey } = await generateRsa("rsa", { modulusLength: bits, publicExponent: 0x10001 });
  const pkcs1 = privateKey.export({ type: "pkcs1", format: "pem" }).toString();
  const forgePrivate = forge.pki.privateKeyFromPem(pkcs1) as forge.pki.rsa.PrivateKey;
  const forgePublic = forge.pki.setRsaPublicKey(forgePrivate.n, forgePrivate.e);
  return {
    forgePrivate,
    forgePublic,
    keyPem: privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
    keyDer: new Uint8Array(privateKey.export({ type: "pkcs8", format: "der" })),
  };
}

function serialNumber(): string {
  // Positive, non-zero, 16 bytes: unique enough that two runs never collide at a verifier that caches by serial.
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0]! & 0x7f) | 0x01;
  return bytes.toString("hex");
}

function isIpAddress(host: string): boolean {
  return /^[0-9.]+$/.test(host) || host.includes(":");
}

type Profile = "ca" | "server" | "client";

function makeCertificate(commonName: string, key: KeyMaterial, profile: Profile, days: number, issuer: Issuer | null, hosts: string[] = []): forge.pki.Certificate {
  const cert = forge.pki.createCertificate();
  cert.publicKey = key.forgePublic;
  cert.serialNumber = serialNumber();
  const notBefore = new Date(Date.now() - 24 * 3600_000); // a day of slack for terminals whose clock is behind
  cert.validity.notBefore = notBefore;
  cert.validity.notAfter = new Date(notBefore.getTime() + (days + 1) * 24 * 3600_000);
  const subject = [
    { shortName: "C", value: "CN" },
    { shortName: "O", value: profile === "ca" ? "Transit Terminal Development PKI" : "Transit Terminal" },
    { shortName: "CN", value: commonName },
  ];
  cert.setSubject(subject);
  cert.setIssuer(issuer ? issuer.cert.subject.attributes : subject);
  const extensions: object[] = [];
  if (profile === "ca") {
    extensions.push({ name: "basicConstraints", cA: true, pathLenConstraint: 0, critical: true });
    extensions.push({ name: "keyUsage", keyCertSign: true, cRLSign: true, critical: true });
  } else {
    extensions.push({ name: "basicConstraints", cA: false, critical: true });
    // Plain RSA key exchange (what the ESP32 client uses) needs keyEncipherment; ECDHE and TLS 1.3 need digitalSignature.
    extensions.push({ name: "keyUsage", digitalSignature: true, keyEncipherment: true, critical: true });
    extensions.push({ name: "extKeyUsage", serverAuth: profile === "server", clientAuth: profile === "client" });
  }
  if (profile === "server") {
    extensions.push({
      name: "subjectAltName",
      altNames: hosts.map((h) => (isIpAddress(h) ? { type: 7, ip: h } : { type: 2, value: h })),
    });
  }
  extensions.push({ name: "subjectKeyIdentifier" });
  // Every certificate, the self-signed root included, names its signer's key. Node sends the chain [leaf, CA]; the
  // Moddable SDK's certificate code (the ESP32's TLS) reads the AKI of each certificate it is sent and, when a root has
  // none, throws inside its TCP callback, which aborts the VM (docs/moddable.md, "Certificates").
  const signer = issuer ? issuer.cert : cert;
  extensions.push({ name: "authorityKeyIdentifier", keyIdentifier: signer.generateSubjectKeyIdentifier().getBytes() });
  cert.setExtensions(extensions);
  cert.sign(issuer ? issuer.key : key.forgePrivate, forge.md.sha256.create());
  return cert;
}

function certificateDer(cert: forge.pki.Certificate): Uint8Array {
  return new Uint8Array(Buffer.from(forge.asn1.toDer(forge.pki.certificateToAsn1(cert)).getBytes(), "binary"));
}

function writeBundle(dir: string, baseName: string, commonName: string, cert: forge.pki.Certificate, key: KeyMaterial): CertificateBundle {
  mkdirSync(dir, { recursive: true });
  const bundle: CertificateBundle = {
    commonName,
    certPem: forge.pki.certificateToPem(cert),
    keyPem: key.keyPem,
    certDer: certificateDer(cert),
    keyDer: key.keyDer,
    certPath: path.join(dir, `${baseName}.crt.pem`),
    keyPath: path.join(dir, `${baseName}.key.pem`),
    certDerPath: path.join(dir, `${baseName}.crt.der`),
    keyDerPath: path.join(dir, `${baseName}.key.der`),
  };
  writeFileSync(bundle.certPath, bundle.certPem);
  writeFileSync(bundle.keyPath, bundle.keyPem, { mode: 0o600 });
  writeFileSync(bundle.certDerPath, bundle.certDer);
  writeFileSync(bundle.keyDerPath, bundle.keyDer, { mode: 0o600 });
  return bundle;
}

async function issue(dir: string, baseName: string, commonName: string, profile: Profile, days: number, bits: number, issuer: Issuer | null, hosts?: string[]) {
  const key = await newKey(bits);
  const cert = makeCertificate(commonName, key, profile, days, issuer, hosts);
  return { bundle: writeBundle(dir, baseName, commonName, cert, key), issuer: { cert, key: key.forgePrivate } as Issuer };
}

/**
 * Makes a whole development PKI in `dir`:
 *   ca.crt.pem / ca.crt.der / ca.key.pem         the CA that signs the server and terminal certificates
 *   server.crt.pem / server.key.pem (+ .der)      the front-end's certificate for serverHosts
 *   terminals/<ID>.crt.pem / .key.pem (+ .der)   one client certificate per terminal, CN = the terminal ID
 *   operators/<CN>.crt.pem / .key.pem (+ .der)   operator clients (settlement export)
 *   rogue/ca.crt.pem, rogue/terminals/<ID>...    an unrelated CA and terminal certificates it signed
 *   pki.json                                      the paths above
 */
export async function generateDevelopmentPki(options: DevelopmentPkiOptions): Promise<DevelopmentPki> {
  const dir = path.resolve(options.dir);
  const days = options.days ?? 825;
  const bits = options.rsaBits ?? 2048;
  const terminalIds = (options.terminalIds ?? []).map((id) => id.toUpperCase());
  for (const id of terminalIds) if (!TERMINAL_ID_PATTERN.test(id)) throw new PkiError(`terminal ID "${id}" must be 12 hex digits`);
  const rogueIds = (options.rogueTerminalIds ?? terminalIds).map((id) => id.toUpperCase());
  const operators = options.operators ?? [];
  for (const cn of operators) if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(cn) || TERMINAL_ID_PATTERN.test(cn)) throw new PkiError(`operator name "${cn}" is not a valid name`);
  const hosts = options.serverHosts ?? ["127.0.0.1", "::1", "localhost"];
  mkdirSync(dir, { recursive: true });

  const ca = await issue(dir, "ca", "Transit Terminal Development CA", "ca", days * 4, bits, null);
  const server = await issue(dir, "server", hosts.find((h) => !isIpAddress(h)) ?? hosts[0] ?? "localhost", "server", days, bits, ca.issuer, hosts);
  const terminals: Record<string, CertificateBundle> = {};
  await Promise.all(terminalIds.map(async (id) => {
    terminals[id] = (await issue(path.join(dir, "terminals"), id, id, "client", days, bits, ca.issuer)).bundle;
  }));
  const operatorBundles: Record<string, CertificateBundle> = {};
  await Promise.all(operators.map(async (cn) => {
    operatorBundles[cn] = (await issue(path.join(dir, "operators"), cn, cn, "client", days, bits, ca.issuer)).bundle;
  }));
  const rogueCa = await issue(path.join(dir, "rogue"), "ca", "Transit Terminal Development CA", "ca", days, bits, null);
  const rogueTerminals: Record<string, CertificateBundle> = {};
  await Promise.all(rogueIds.map(async (id) => {
    rogueTerminals[id] = (await issue(path.join(dir, "rogue", "terminals"), id, id, "client", days, bits, rogueCa.issuer)).bundle;
  }));

  const pki: DevelopmentPki = {
    dir, ca: ca.bundle, server: server.bundle, terminals, operators: operatorBundles,
    rogue: { ca: rogueCa.bundle, terminals: rogueTerminals }, manifestPath: path.join(dir, "pki.json"),
  };
  const paths = (b: CertificateBundle) => ({ commonName: b.commonName, cert: b.certPath, key: b.keyPath, certDer: b.certDerPath, keyDer: b.keyDerPath });
  const manifest = {
    format: "transit-dev-pki/1",
    ca: paths(pki.ca),
    server: { ...paths(pki.server), hosts },
    terminals: Object.fromEntries(Object.entries(terminals).map(([id, b]) => [id, paths(b)])),
    operators: Object.fromEntries(Object.entries(operatorBundles).map(([cn, b]) => [cn, paths(b)])),
    rogue: { ca: paths(rogueCa.bundle), terminals: Object.fromEntries(Object.entries(rogueTerminals).map(([id, b]) => [id, paths(b)])) },
  };
  writeFileSync(pki.manifestPath, `${JSON.stringify(manifest, null, 2)}\n`);
  return pki;
}

/** A quick self-check for callers that load PEM from elsewhere: the certificate parses and its key matches. */
export function checkKeyPair(certPem: string, keyPem: string): boolean {
  try {
    return new X509Certificate(certPem).checkPrivateKey(createPrivateKey(keyPem));
  } catch {
    return false;
  }
}
