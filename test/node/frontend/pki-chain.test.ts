// The development PKI as the Moddable SDK's certificate code needs it (issue 11, item 1): Node's TLS server sends
// [leaf, CA], and the SDK reads the AuthorityKeyIdentifier of every certificate it is sent; a root without one made
// it throw inside its TCP callback and abort the VM. Every certificate must name its signer's key.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import forge from "node-forge";
import { generateDevelopmentPki, type CertificateBundle, type DevelopmentPki } from "../../../tools/pki/index";

function keyIds(bundle: CertificateBundle): { ski: string; aki: string | undefined } {
  const cert = forge.pki.certificateFromPem(bundle.certPem);
  const ski = (cert.getExtension("subjectKeyIdentifier") as { subjectKeyIdentifier: string }).subjectKeyIdentifier;
  const ext = cert.getExtension("authorityKeyIdentifier") as { value: string } | null;
  if (!ext) return { ski, aki: undefined };
  // AuthorityKeyIdentifier ::= SEQUENCE { keyIdentifier [0] IMPLICIT OCTET STRING OPTIONAL, ... }
  const seq = forge.asn1.fromDer(ext.value);
  const first = (seq.value as forge.asn1.Asn1[])[0];
  const aki = first && first.tagClass === forge.asn1.Class.CONTEXT_SPECIFIC && first.type === 0 ? forge.util.bytesToHex(first.value as string) : undefined;
  return { ski, aki };
}

describe("development PKI: chains the Moddable SDK accepts", function () {
  this.timeout(60_000);
  let dir: string;
  let pki: DevelopmentPki;
  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), "pki-chain-"));
    pki = await generateDevelopmentPki({ dir, terminalIds: ["0000000000A1"], rsaBits: 1024 });
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("both root CAs carry an AuthorityKeyIdentifier naming their own key", () => {
    for (const root of [pki.ca, pki.rogue.ca]) {
      const { ski, aki } = keyIds(root);
      assert.ok(aki, `${root.certPath} has no AuthorityKeyIdentifier`);
      assert.equal(aki, ski);
    }
  });

  it("every issued certificate's AuthorityKeyIdentifier is its CA's SubjectKeyIdentifier", () => {
    const caSki = keyIds(pki.ca).ski;
    for (const leaf of [pki.server, ...Object.values(pki.terminals)]) assert.equal(keyIds(leaf).aki, caSki, leaf.certPath);
    const rogueSki = keyIds(pki.rogue.ca).ski;
    for (const leaf of Object.values(pki.rogue.terminals)) assert.equal(keyIds(leaf).aki, rogueSki, leaf.certPath);
  });
});
