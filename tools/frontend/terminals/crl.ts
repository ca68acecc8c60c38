/**
 * The serials a CRL lists (RFC 5280 section 5.1: CertificateList -> tbsCertList -> revokedCertificates, each entry's
 * first field the userCertificate serial). OpenSSL checks the CRL at each handshake; these serials let the front-end
 * also close the connections already open with a certificate the new CRL revokes.
 */
import forge from "node-forge";
import { normalSerial } from "./store";

const UNIVERSAL = forge.asn1.Class.UNIVERSAL;
const { SEQUENCE, UTCTIME, GENERALIZEDTIME, INTEGER } = forge.asn1.Type;

function serialsOfCrl(der: string): string[] {
  const list = forge.asn1.fromDer(der);
  const tbs = (list.value as forge.asn1.Asn1[])[0]!;
  const fields = tbs.value as forge.asn1.Asn1[];
  // version (optional INTEGER), signature, issuer, thisUpdate, nextUpdate (optional), revokedCertificates (optional)
  let i = fields[0]?.tagClass === UNIVERSAL && fields[0]?.type === INTEGER ? 3 : 2;
  while (i < fields.length && fields[i]!.tagClass === UNIVERSAL && (fields[i]!.type === UTCTIME || fields[i]!.type === GENERALIZEDTIME)) i++;
  const revoked = fields[i];
  if (!revoked || revoked.tagClass !== UNIVERSAL || revoked.type !== SEQUENCE) return [];
  return (revoked.value as forge.asn1.Asn1[]).map((entry) => {
    const serial = (entry.value as forge.asn1.Asn1[])[0]!;
    return normalSerial(forge.util.bytesToHex(serial.value as string) || "0");
  });
}

/** Every serial listed by the CRLs of a PEM text (one or more X509 CRL blocks). */
export function revokedSerials(pem: string): Set<string> {
  const serials = new Set<string>();
  for (const block of forge.pem.decode(pem)) {
    if (block.type !== "X509 CRL") continue;
    for (const s of serialsOfCrl(block.body)) serials.add(s);
  }
  return serials;
}
