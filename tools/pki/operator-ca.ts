/**
 * The operator's CA at work on a fleet (docs/certificates.md): signing a terminal's certificate signing request, so
 * the terminal's private key never leaves the device, and issuing a CRL of revoked terminal certificates.
 * The CA directory is the one `npm run pki` writes: ca.crt.pem and ca.key.pem.
 */
import { sign } from "node:crypto";
import { readFileSync } from "node:fs";
import path from "node:path";
import forge from "node-forge";
import { certificateDer, makeCertificate, PkiError, TERMINAL_ID_PATTERN, type Issuer } from "./index";

/** The smallest RSA modulus accepted in a CSR. */
const MIN_RSA_BITS = 2048;

export function loadCa(caDir: string): Issuer & { certPem: string; keyPem: string } {
  let certPem: string;
  let keyPem: string;
  try {
    certPem = readFileSync(path.join(caDir, "ca.crt.pem"), "utf8");
    keyPem = readFileSync(path.join(caDir, "ca.key.pem"), "utf8");
  } catch (e) {
    throw new PkiError(`cannot read the CA (ca.crt.pem, ca.key.pem) in ${caDir}: ${(e as Error).message}`);
  }
  return { cert: forge.pki.certificateFromPem(certPem), key: forge.pki.privateKeyFromPem(keyPem) as forge.pki.rsa.PrivateKey, certPem, keyPem };
}

export interface SignedTerminal {
  terminalId: string;
  /** Upper-case hex. */
  serial: string;
  certPem: string;
  /** DER, what an ESP32 build embeds (mcconfig). */
  certDer: Uint8Array;
  notAfter: Date;
}

/**
 * Checks a terminal's CSR (PEM) and signs a client certificate for it: the CSR's signature must verify with its own
 * key (the terminal holds that key), its key must be RSA of at least 2048 bits, and its CN must be a terminal ID.
 */
export function signTerminalCsr(ca: Issuer, csrPem: string, days = 825): SignedTerminal {
  if (!Number.isInteger(days) || days < 1 || days > 3650) throw new PkiError("--days must be 1 to 3650");
  let csr: ReturnType<typeof forge.pki.certificationRequestFromPem>;
  try {
    csr = forge.pki.certificationRequestFromPem(csrPem);
  } catch (e) {
    throw new PkiError(`not a PEM certificate request with an RSA key: ${(e as Error).message}`);
  }
  let verified = false;
  try {
    verified = csr.verify();
  } catch { /* a signature that does not parse does not verify */ }
  if (!verified) throw new PkiError("the CSR's signature does not verify with its public key");
  const publicKey = csr.publicKey as forge.pki.rsa.PublicKey | null;
  if (!publicKey?.n || publicKey.n.bitLength() < MIN_RSA_BITS) throw new PkiError(`the CSR's key must be RSA of at least ${MIN_RSA_BITS} bits`);
  const cn = csr.subject.getField("CN")?.value;
  if (typeof cn !== "string" || !TERMINAL_ID_PATTERN.test(cn)) throw new PkiError(`the CSR's CN must be a terminal ID (12 hex digits), got ${JSON.stringify(cn ?? null)}`);
  const terminalId = cn.toUpperCase();
  // Only the key and the CN are taken from the request: the profile (client, key usages, validity) is the CA's.
  const cert = makeCertificate(terminalId, { forgePublic: publicKey, forgePrivate: ca.key }, "client", days, ca);
  return {
    terminalId, serial: cert.serialNumber.toUpperCase(), certPem: forge.pki.certificateToPem(cert), certDer: certificateDer(cert), notAfter: cert.validity.notAfter,
  };
}

function utcTime(date: Date): forge.asn1.Asn1 {
  return forge.asn1.create(forge.asn1.Class.UNIVERSAL, forge.asn1.Type.UTCTIME, false, forge.asn1.dateToUtcTime(date));
}

/**
 * A version-2 CRL (RFC 5280 section 5) signed by the CA with SHA-256, listing the given serials (hex), valid for
 * `days`. No extensions: OpenSSL (the front-end's TLS) needs none to check a certificate against it.
 */
export function makeCrl(ca: Issuer & { keyPem: string }, serials: readonly string[], days = 7, now = new Date()): string {
  const { asn1 } = forge;
  const U = asn1.Class.UNIVERSAL;
  const sha256WithRsa = asn1.create(U, asn1.Type.SEQUENCE, true, [
    asn1.create(U, asn1.Type.OID, false, asn1.oidToDer(forge.pki.oids.sha256WithRSAEncryption!).getBytes()),
    asn1.create(U, asn1.Type.NULL, false, ""),
  ]);
  const entries = serials.map((s) => {
    const hex = s.replace(/:/g, "");
    if (!/^[0-9A-Fa-f]{1,64}$/.test(hex)) throw new PkiError(`a serial is hex digits, got ${s}`);
    // A DER INTEGER is signed: a leading byte of 0x80 or more needs a zero before it.
    const even = hex.length % 2 ? `0${hex}` : hex;
    const bytes = parseInt(even.slice(0, 2), 16) >= 0x80 ? `00${even}` : even;
    return asn1.create(U, asn1.Type.SEQUENCE, true, [asn1.create(U, asn1.Type.INTEGER, false, forge.util.hexToBytes(bytes)), utcTime(now)]);
  });
  const tbs = asn1.create(U, asn1.Type.SEQUENCE, true, [
    asn1.create(U, asn1.Type.INTEGER, false, asn1.integerToDer(1).getBytes()),
    sha256WithRsa,
    forge.pki.distinguishedNameToAsn1(ca.cert.subject),
    utcTime(now),
    utcTime(new Date(now.getTime() + days * 24 * 3600_000)),
    ...(entries.length ? [asn1.create(U, asn1.Type.SEQUENCE, true, entries)] : []),
  ]);
  const tbsDer = Buffer.from(asn1.toDer(tbs).getBytes(), "binary");
  const signature = sign("sha256", tbsDer, ca.keyPem);
  const list = asn1.create(U, asn1.Type.SEQUENCE, true, [
    tbs, sha256WithRsa, asn1.create(U, asn1.Type.BITSTRING, false, `\u0000${signature.toString("binary")}`),
  ]);
  const der = asn1.toDer(list).getBytes();
  return forge.pem.encode({ type: "X509 CRL", body: der });
}
