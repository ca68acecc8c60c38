import assert from "node:assert/strict";
import { X509Certificate, createPrivateKey } from "node:crypto";
import { readFileSync } from "node:fs";
import { connect, type ConnectionOptions, type TLSSocket } from "node:tls";
import type { RunningFrontend } from "../../../tools/frontend/index";
import { checkKeyPair } from "../../../tools/pki/index";
import { OPERATOR, T1, T2, clientFor, getFixture, level1Config, start, stopAll, type Fixture, describeEngines } from "./support";

interface Attempt {
  ok: boolean;
  protocol?: string | null;
  cipher?: string;
  status?: string;
  error?: string;
}

/** A TLS connection with the given client options, then GET /v1/health over it as raw HTTP/1.1. */
function attempt(f: Fixture, port: number, options: ConnectionOptions): Promise<Attempt> {
  return new Promise((resolve) => {
    let socket: TLSSocket;
    let settled = false;
    const done = (a: Attempt) => {
      if (settled) return;
      settled = true;
      socket.destroy();
      resolve(a);
    };
    socket = connect({ host: "127.0.0.1", port, ca: f.pki.ca.certPem, servername: "localhost", ...options }, () => {
      socket.write("GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    });
    let data = "";
    socket.setEncoding("utf8");
    socket.on("data", (d: string) => {
      data += d;
      if (data.includes("\r\n\r\n")) done({ ok: true, protocol: socket.getProtocol(), cipher: socket.getCipher()?.standardName, status: data.split("\r\n")[0] });
    });
    socket.on("error", (e: Error & { code?: string }) => done({ ok: false, error: e.code ?? e.message }));
    socket.on("close", () => done({ ok: false, error: "closed without an answer" }));
    socket.setTimeout(5000, () => done({ ok: false, error: "timeout" }));
  });
}

describeEngines("front-end: mutual TLS", function () {
  this.timeout(30_000);
  let f: Fixture;
  let fe: RunningFrontend;
  let terminal: ConnectionOptions;

  before(async () => {
    f = await getFixture();
    fe = await start(level1Config(f));
    terminal = { cert: f.pki.terminals[T1]!.certPem, key: f.pki.terminals[T1]!.keyPem };
  });
  after(stopAll);

  for (const [cipher, standard] of [
    ["AES128-SHA256", "TLS_RSA_WITH_AES_128_CBC_SHA256"], ["AES128-SHA", "TLS_RSA_WITH_AES_128_CBC_SHA"],
    ["AES256-SHA", "TLS_RSA_WITH_AES_256_CBC_SHA"], ["AES256-SHA256", "TLS_RSA_WITH_AES_256_CBC_SHA256"],
  ] as const) {
    it(`accepts a client limited to TLS 1.2 and ${cipher} (what Moddable's TLS offers on the ESP32)`, async () => {
      const a = await attempt(f, fe.port, { ...terminal, minVersion: "TLSv1.2", maxVersion: "TLSv1.2", ciphers: cipher });
      assert.deepEqual(a, { ok: true, protocol: "TLSv1.2", cipher: standard, status: "HTTP/1.1 200 OK" });
    });
  }

  it("speaks TLS 1.3 to a modern client and prefers ECDHE on TLS 1.2", async () => {
    const modern = await attempt(f, fe.port, terminal);
    assert.equal(modern.ok, true, modern.error);
    assert.equal(modern.protocol, "TLSv1.3");
    const tls12 = await attempt(f, fe.port, { ...terminal, maxVersion: "TLSv1.2" });
    assert.equal(tls12.protocol, "TLSv1.2");
    assert.match(tls12.cipher ?? "", /^TLS_ECDHE_RSA_WITH_AES_128_GCM/);
  });

  it("refuses a client without a certificate (TLS 1.3 and 1.2)", async () => {
    const a13 = await attempt(f, fe.port, {});
    assert.equal(a13.ok, false);
    assert.match(a13.error ?? "", /CERTIFICATE_REQUIRED|ECONNRESET|closed/);
    const a12 = await attempt(f, fe.port, { maxVersion: "TLSv1.2", ciphers: "AES128-SHA256" });
    assert.equal(a12.ok, false);
    assert.match(a12.error ?? "", /HANDSHAKE_FAILURE|ECONNRESET|closed/);
  });

  it("refuses a terminal certificate from another CA, even with the right terminal ID", async () => {
    const rogue = f.pki.rogue.terminals[T1]!;
    assert.equal(new X509Certificate(rogue.certPem).subject.includes(`CN=${T1}`), true);
    for (const maxVersion of ["TLSv1.3", "TLSv1.2"] as const) {
      const a = await attempt(f, fe.port, { cert: rogue.certPem, key: rogue.keyPem, maxVersion });
      assert.equal(a.ok, false, `rogue certificate accepted over ${maxVersion}`);
      assert.match(a.error ?? "", /UNKNOWN_CA|ECONNRESET|closed|BAD_CERTIFICATE/);
    }
    // The high-level client sees the same refusal.
    const c = clientFor(f, fe.url, T1, { rogue: true });
    try {
      await assert.rejects(c.health());
    } finally {
      c.close();
    }
  });

  it("refuses TLS 1.1 and a client that trusts another CA refuses the server", async () => {
    const old = await attempt(f, fe.port, { ...terminal, minVersion: "TLSv1", maxVersion: "TLSv1.1", ciphers: "AES128-SHA:@SECLEVEL=0" });
    assert.equal(old.ok, false);
    assert.match(old.error ?? "", /ALERT_PROTOCOL_VERSION/, "the server's alert, not a client-side refusal");
    const wrongTrust = await attempt(f, fe.port, { ...terminal, ca: f.pki.rogue.ca.certPem });
    assert.equal(wrongTrust.ok, false);
    assert.match(wrongTrust.error ?? "", /SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER/);
  });

  it("keeps serving after refused handshakes", async () => {
    await Promise.all(Array.from({ length: 10 }, () => attempt(f, fe.port, {})));
    const ok = await attempt(f, fe.port, terminal);
    assert.equal(ok.status, "HTTP/1.1 200 OK");
  });

  it("the development PKI: RSA-2048 certificates, CN = terminal ID, PEM and DER, the right key usages", () => {
    const ca = new X509Certificate(f.pki.ca.certPem);
    assert.equal(ca.ca, true);
    const server = new X509Certificate(f.pki.server.certPem);
    assert.equal(server.publicKey.asymmetricKeyDetails?.modulusLength, 2048);
    assert.equal(server.publicKey.asymmetricKeyType, "rsa");
    assert.ok(server.verify(ca.publicKey));
    assert.match(server.subjectAltName ?? "", /IP Address:127\.0\.0\.1/);
    assert.ok(server.checkHost("localhost"));
    assert.deepEqual(server.keyUsage, ["1.3.6.1.5.5.7.3.1"]);
    for (const id of [T1, T2]) {
      const b = f.pki.terminals[id]!;
      const der = new X509Certificate(readFileSync(b.certDerPath));
      assert.equal(der.fingerprint256, new X509Certificate(b.certPem).fingerprint256, "DER and PEM are the same certificate");
      assert.ok(der.subject.split("\n").includes(`CN=${id}`));
      assert.ok(der.checkIssued(ca) && der.verify(ca.publicKey));
      assert.deepEqual(der.keyUsage, ["1.3.6.1.5.5.7.3.2"]);
      assert.ok(checkKeyPair(b.certPem, b.keyPem));
      assert.equal(createPrivateKey({ key: readFileSync(b.keyDerPath), format: "der", type: "pkcs8" }).asymmetricKeyDetails?.modulusLength, 2048);
    }
    assert.ok(new X509Certificate(f.pki.operators[OPERATOR]!.certPem).subject.includes(`CN=${OPERATOR}`));
    assert.equal(new X509Certificate(f.pki.rogue.terminals[T1]!.certPem).checkIssued(ca), false);
    const manifest = JSON.parse(readFileSync(f.pki.manifestPath, "utf8")) as { terminals: Record<string, { certDer: string }> };
    assert.equal(manifest.terminals[T1]!.certDer, f.pki.terminals[T1]!.certDerPath);
  });
});
