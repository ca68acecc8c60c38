import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { FrontendClient } from "../../../tools/rigs/frontend/index";
import { loadCa, makeCrl, signTerminalCsr } from "../../../tools/pki/operator-ca";
import { normalSerial } from "../../../tools/frontend/terminals/store";
import { liveConnection } from "./live-connection";
import { clientFor, describeEngines, getFixture, level1Config, OPERATOR, purchase, start, stopAll, T1, T2, tunionCard, type Fixture } from "./support";

const PKI_MAIN = path.resolve(import.meta.dirname, "../../../tools/pki/main.ts");

function opensslMissing(): string | undefined {
  return spawnSync("openssl", ["version"]).status === 0 ? undefined : "openssl not installed (apt-get install openssl)";
}

/** A key and CSR made by openssl, as a device would make them: the key never leaves this directory. */
function opensslCsr(dir: string, name: string, subject: string): { keyPath: string; csrPath: string } {
  const keyPath = path.join(dir, `${name}.key.pem`);
  const csrPath = path.join(dir, `${name}.csr`);
  execFileSync("openssl", ["req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", keyPath, "-subj", subject, "-out", csrPath], { stdio: "ignore" });
  return { keyPath, csrPath };
}

async function until(what: string, check: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** The error code of a request, or undefined (a connection closed under it by the revocation counts as not yet). */
const refusedCode = async (client: FrontendClient) => {
  try {
    return ((await client.raw("GET", "/v1/health")).json as { error?: { code?: string } } | undefined)?.error?.code;
  } catch {
    return undefined;
  }
};

describe("pki sign-csr", function () {
  this.timeout(60_000);

  it("refuses a CSR whose CN is not a terminal ID, and one whose signature does not verify", async function () {
    const missing = opensslMissing();
    if (missing) return this.skip();
    const f = await getFixture();
    const ca = loadCa(f.pki.dir);
    const bad = opensslCsr(f.dir, "not-a-terminal", "/CN=vending-7");
    assert.throws(() => signTerminalCsr(ca, readFileSync(bad.csrPath, "utf8")), /CN must be a terminal ID/);
    // One bit of the signature flipped (its last byte, inside the base64 of the BIT STRING's end).
    const good = readFileSync(opensslCsr(f.dir, "tampered", `/CN=${T2}`).csrPath, "utf8");
    const der = Buffer.from(good.replace(/-----[^-]+-----|\s/g, ""), "base64");
    der[der.length - 1]! ^= 0x01;
    const tampered = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString("base64").replace(/(.{64})/g, "$1\n")}\n-----END CERTIFICATE REQUEST-----\n`;
    assert.throws(() => signTerminalCsr(ca, tampered), /signature does not verify/);
  });
});

describeEngines("terminal certificates: issuance from a CSR, renewal, one serial revoked", function () {
  this.timeout(120_000);
  afterEach(stopAll);

  it("a terminal pays with a certificate signed from its openssl CSR; while it renews both certificates pay; revoking the old serial leaves the new one", async function () {
    const missing = opensslMissing();
    if (missing) return this.skip();
    const f = await getFixture();
    const fe = await start(level1Config(f));
    const { keyPath, csrPath } = opensslCsr(f.dir, `renewed-${process.pid}`, `/CN=${T1.toLowerCase()}`);
    const out = path.join(f.dir, `renewed-${process.pid}.pem`);
    const signed = JSON.parse(execFileSync(process.execPath, ["--import", "tsx", PKI_MAIN, "sign-csr", "--ca-dir", f.pki.dir, "--csr", csrPath, "--out", out, "--days", "20"], { encoding: "utf8" })) as { serial: string; der: string };
    const renewedPem = readFileSync(out, "utf8");
    assert.deepEqual(new Uint8Array(readFileSync(signed.der)), new Uint8Array(new X509Certificate(renewedPem).raw), "the DER beside the PEM is the same certificate");
    const renewed = new FrontendClient(fe.url, { ca: f.pki.ca.certPem, cert: renewedPem, key: readFileSync(keyPath, "utf8") });
    const old = clientFor(f, fe.url, T1);
    try {
      assert.equal((await purchase(renewed, tunionCard(f), "tunion", 120, T1)).completion.status, "completed", "the new certificate pays");
      assert.equal((await purchase(old, tunionCard(f), "tunion", 130, T1)).completion.status, "completed", "the old one still pays");
      const oldSerial = normalSerial(new X509Certificate(f.pki.terminals[T1]!.certPem).serialNumber);
      await until("both certificates recorded", async () => (await fe.store.terminals.certificates(T1)).length === 2);
      const seen = await fe.store.terminals.certificates(T1);
      assert.deepEqual(seen.map((c) => c.serial).sort(), [normalSerial(signed.serial), oldSerial].sort());
      const newer = seen.find((c) => c.serial === normalSerial(signed.serial))!;
      assert.ok(Math.abs(newer.notAfter - Date.parse(new X509Certificate(renewedPem).validTo)) < 1000, "notAfter recorded");

      await fe.store.terminals.revoke(T1, oldSerial, "renewed", "test", Date.now());
      await until("the old certificate refused", async () => (await refusedCode(old)) === "TERMINAL_REVOKED");
      assert.equal((await purchase(renewed, tunionCard(f), "tunion", 140, T1)).completion.status, "completed", "the renewed certificate pays on");
    } finally {
      renewed.close();
      old.close();
    }
  });
});

describe("a CRL from the operator's CA (tls.crl)", function () {
  this.timeout(60_000);
  afterEach(stopAll);

  async function handshakeRefused(f: Fixture, url: string, who: string): Promise<boolean> {
    try {
      await liveConnection(f, url, who);
      return false;
    } catch {
      return true;
    }
  }

  it("is honoured at the handshake and reloaded when the file changes: listed connections close, others pay", async () => {
    const f = await getFixture();
    const ca = loadCa(f.pki.dir);
    const crlPath = path.join(f.dir, `crl-${process.pid}.pem`);
    writeFileSync(crlPath, makeCrl(ca, []));
    const fe = await start(level1Config(f, { tls: { cert: f.pki.server.certPath, key: f.pki.server.keyPath, clientCa: f.pki.ca.certPath, crl: crlPath } }));
    const t2 = await liveConnection(f, fe.url, T2);
    const t1 = clientFor(f, fe.url, T1);
    try {
      assert.equal((await purchase(t1, tunionCard(f), "tunion", 100, T1)).completion.status, "completed");
      const t2Serial = new X509Certificate(f.pki.terminals[T2]!.certPem).serialNumber;
      writeFileSync(crlPath, makeCrl(ca, [t2Serial]));
      await Promise.race([t2.closedAt, new Promise((_, reject) => setTimeout(() => reject(new Error("T2's connection stayed open after the CRL listed it")), 10_000))]);
      assert.ok(await handshakeRefused(f, fe.url, T2), "a new handshake with the listed certificate is refused");
      assert.equal((await purchase(t1, tunionCard(f), "tunion", 100, T1)).completion.status, "completed", "others keep paying");
      // A broken file is not loaded: the CRL in force stays.
      writeFileSync(crlPath, "not a CRL");
      await new Promise((resolve) => setTimeout(resolve, 1000));
      assert.ok(await handshakeRefused(f, fe.url, T2), "still refused after a broken CRL file");
      const fresh = clientFor(f, fe.url, T1);
      try {
        assert.equal((await fresh.health()).status, "ok", "a new connection of another terminal is accepted");
      } finally {
        fresh.close();
      }
    } finally {
      t1.close();
      t2.socket.destroy();
    }
  });
});

describeEngines("operator console: certificate expiry and the revoke button", function () {
  this.timeout(120_000);
  afterEach(stopAll);

  it("flags a certificate that expires within 30 days, and revokes a terminal from its page with an audit row", async function () {
    const missing = opensslMissing();
    if (missing) return this.skip();
    const f = await getFixture();
    const fe = await start(level1Config(f, { operator: { port: 0, accounts: [] } }));
    const SHORT = "A1B2C3D4E5F6";
    const { keyPath, csrPath } = opensslCsr(f.dir, `short-${process.pid}`, `/CN=${SHORT}`);
    const signed = signTerminalCsr(loadCa(f.pki.dir), readFileSync(csrPath, "utf8"), 20);
    const short = new FrontendClient(fe.url, { ca: f.pki.ca.certPem, cert: signed.certPem, key: readFileSync(keyPath, "utf8") });
    const t1 = clientFor(f, fe.url, T1);
    const operator = f.pki.operators[OPERATOR]!;
    const web = new FrontendClient(fe.operator.url!, { ca: f.pki.ca.certPem, cert: operator.certPem, key: operator.keyPem });
    try {
      await purchase(short, tunionCard(f), "tunion", 100, SHORT);
      await purchase(t1, tunionCard(f), "tunion", 100, T1);
      await until("both terminals' certificates recorded", async () => (await fe.store.terminals.certificates()).length >= 2);
      const fleet = await web.raw("GET", "/", undefined, { accept: "text/html" });
      assert.equal(fleet.status, 200);
      assert.match(fleet.text, /Certificate expires/);
      assert.match(fleet.text, /certificate expires in (19|20) days/, "the 20-day certificate is flagged");
      assert.equal(fleet.text.match(/certificate expires in/g)?.length, 1, "the 825-day one is not");

      const page = await web.raw("GET", `/fleet/${T1}`, undefined, { accept: "text/html" });
      assert.match(page.text, /id="revoke-form"/);
      const posted = await web.raw("POST", `/fleet/${T1}/revoke`, "serial=&reason=machine+stolen", { "content-type": "application/x-www-form-urlencoded", accept: "text/html" });
      assert.equal(posted.status, 303, posted.text);
      await until("the terminal refused", async () => (await refusedCode(t1)) === "TERMINAL_REVOKED");
      assert.equal((await purchase(short, tunionCard(f), "tunion", 100, SHORT)).completion.status, "completed", "another terminal pays");
      const audit = await fe.store.fleet.configAudit({ scope: `terminal:${T1}` });
      const row = audit.find((a) => a.kind === "revoke");
      assert.ok(row, `a revoke row in the audit: ${JSON.stringify(audit)}`);
      assert.equal(row.actor, `${OPERATOR} (certificate)`);
      assert.match((await web.raw("GET", `/fleet/${T1}`, undefined, { accept: "text/html" })).text, /This terminal is revoked/);
    } finally {
      short.close();
      t1.close();
      web.close();
    }
  });
});
