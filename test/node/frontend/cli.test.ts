/**
 * The front-end's command line (issue 23, findings 10 and 11): real help per command, an unknown option named as such,
 * targeted edits of the operator accounts, and `init` for a real network: the host in the server certificate's SAN,
 * the listener and the routes where asked, and the ESP32's DER files from the same CA.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { checkServerIdentity, connect } from "node:tls";
import { loadConfigFile, startFrontend, type RunningFrontend } from "../../../tools/frontend/index";
import { verifyPassword } from "../../../tools/frontend/operator/index";

const root = path.resolve(import.meta.dirname, "../../..");
const MAIN = path.join(root, "tools/frontend/main.ts");

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function frontend(args: string[], env: Record<string, string> = {}, input?: string): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", MAIN, ...args], { cwd: root, env: { ...process.env, ...env }, stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => { stdout += d; });
    child.stderr.on("data", (d: Buffer) => { stderr += d; });
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(input ?? "");
  });
}

describe("frontend command line", function () {
  this.timeout(180_000);
  let dir = "";
  before(() => { dir = mkdtempSync(path.join(tmpdir(), "frontend-cli-")); });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("--help lists every command; <command> --help explains its options", async () => {
    const all = await frontend(["--help"]);
    assert.equal(all.code, 0, all.stderr);
    for (const c of ["serve", "settle", "keys", "init", "operator-add", "operator-passwd", "operator-remove", "operator-list"]) assert.match(all.stdout, new RegExp(`^  ${c} +\\S`, "m"), c);
    const init = await frontend(["init", "--help"]);
    assert.equal(init.code, 0, init.stderr);
    assert.match(init.stdout, /^Usage: npm run frontend -- init --dir <dir>/);
    for (const o of ["--dir", "--host", "--listen", "--terminal", "--esp32-certs"]) assert.match(init.stdout, new RegExp(`^  ${o} .+ {2}\\S`, "m"), o);
    const settle = await frontend(["settle", "-h"]);
    assert.match(settle.stdout, /--date <YYYYMMDD> +the business day, in China time/);
  });

  it("names an unknown option, a missing value and an unknown command", async () => {
    const bogus = await frontend(["--config", "x.json", "--bogus"]);
    assert.equal(bogus.code, 2);
    assert.match(bogus.stderr, /^frontend: unknown option --bogus\n/);
    const valued = await frontend(["settle", "--bogus", "1"]);
    assert.match(valued.stderr, /^frontend: unknown option --bogus\n/);
    assert.match(valued.stderr, /Usage: npm run frontend -- settle /);
    const missing = await frontend(["settle", "--config"]);
    assert.match(missing.stderr, /^frontend: --config needs a value\n/);
    const command = await frontend(["sette"]);
    assert.match(command.stderr, /^frontend: unknown command sette\n/);
  });

  it("operator-add, -list, -passwd and -remove edit operator.accounts and nothing else", async () => {
    const file = path.join(dir, "edit.json");
    // Hand-written formatting and other sections that a rewrite would change.
    const original = `{\n    "level": 1,   "name": "hand written",\n    "limits": {"maxAmount": 1e5},\n    "operator": { "port": 8445 }\n}\n`;
    writeFileSync(file, original);
    const add = await frontend(["operator-add", "--config", file, "--user", "alice"], {}, "first password\n");
    assert.equal(add.code, 0, add.stderr);
    const added = readFileSync(file, "utf8");
    assert.ok(added.startsWith(`{\n    "level": 1,   "name": "hand written",\n    "limits": {"maxAmount": 1e5},\n    "operator": { "port": 8445`), added);
    assert.equal((await frontend(["operator-add", "--config", file, "--user", "bob"], { OPERATOR_PASSWORD: "bob's password" })).code, 0);
    assert.equal((await frontend(["operator-add", "--config", file, "--user", "bob"], { OPERATOR_PASSWORD: "again password" })).code, 1, "an existing name is refused");
    assert.equal((await frontend(["operator-list", "--config", file])).stdout, "alice\nbob\n");
    const before = readFileSync(file, "utf8");
    assert.equal((await frontend(["operator-passwd", "--config", file, "--user", "alice"], { OPERATOR_PASSWORD: "second password" })).code, 0);
    const accounts = () => (JSON.parse(readFileSync(file, "utf8")) as { operator: { accounts: { user: string; password: string }[] } }).operator.accounts;
    const alice = accounts().find((a) => a.user === "alice")!;
    assert.equal(await verifyPassword("second password", alice.password), true);
    assert.equal(await verifyPassword("first password", alice.password), false);
    // Only alice's hash changed.
    const bobHash = accounts().find((a) => a.user === "bob")!.password;
    assert.ok(before.includes(bobHash));
    assert.equal((await frontend(["operator-remove", "--config", file, "--user", "bob"])).code, 0);
    assert.equal((await frontend(["operator-list", "--config", file])).stdout, "alice\n");
    assert.equal((await frontend(["operator-remove", "--config", file, "--user", "bob"])).code, 1, "no such operator");
    assert.ok(readFileSync(file, "utf8").startsWith(`{\n    "level": 1,   "name": "hand written",\n    "limits": {"maxAmount": 1e5},`));
  });

  describe("init --host 192.168.1.10 --listen 0.0.0.0", () => {
    let setup = "";
    let esp32 = "";
    let fe: RunningFrontend | undefined;
    before(async () => {
      setup = path.join(dir, "setup");
      esp32 = path.join(dir, "esp32-certs");
      const r = await frontend(["init", "--dir", setup, "--host", "192.168.1.10", "--host", "frontend.example", "--listen", "0.0.0.0", "--terminal", "310001029313", "--esp32-certs", esp32]);
      assert.equal(r.code, 0, r.stderr);
    });
    after(async () => { await fe?.close(); });

    it("puts the hosts in the server certificate's SAN", () => {
      const cert = new X509Certificate(readFileSync(path.join(setup, "pki/server.crt.pem")));
      assert.match(cert.subjectAltName ?? "", /IP Address:192\.168\.1\.10/);
      assert.match(cert.subjectAltName ?? "", /DNS:frontend\.example/);
      assert.equal(checkServerIdentity("192.168.1.10", { subject: {}, subjectaltname: cert.subjectAltName } as never), undefined);
    });

    it("listens on --listen and routes to the first --host", () => {
      const level1 = JSON.parse(readFileSync(path.join(setup, "level1.json"), "utf8"));
      const level2 = JSON.parse(readFileSync(path.join(setup, "level2.json"), "utf8"));
      assert.equal(level1.listen.host, "0.0.0.0");
      assert.equal(level2.listen.host, "0.0.0.0");
      assert.deepEqual(level1.routes.map((r: { url: string }) => r.url), ["https://192.168.1.10:8443", "https://192.168.1.10:8444"]);
    });

    it("writes the ESP32's DER files from the same CA as the front-end's", () => {
      const ca = new X509Certificate(readFileSync(path.join(esp32, "ca.der")));
      const terminal = new X509Certificate(readFileSync(path.join(esp32, "terminal.der")));
      const frontendCa = new X509Certificate(readFileSync(path.join(setup, "pki/ca.crt.pem")));
      assert.equal(ca.fingerprint256, frontendCa.fingerprint256);
      assert.ok(terminal.verify(ca.publicKey), "the terminal certificate is signed by that CA");
      assert.match(terminal.subject, /CN=310001029313/);
      assert.deepEqual(readFileSync(path.join(esp32, "terminalkey.der")), readFileSync(path.join(setup, "pki/terminals/310001029313.key.der")));
    });

    it("the front-end it configures accepts a terminal's handshake for the host on every address", async () => {
      const config = loadConfigFile(path.join(setup, "level1.json"));
      // Port 0: another test may hold 8443. The address stays 0.0.0.0, reached here through 127.0.0.1.
      fe = await startFrontend({ ...config, listen: { ...config.listen, port: 0 }, operator: undefined, log: { level: "silent" } });
      const pem = (p: string) => readFileSync(path.join(setup, "pki", p), "utf8");
      const authorized = await new Promise<boolean>((resolve, reject) => {
        const socket = connect({
          host: "127.0.0.1", port: fe!.port, ca: pem("ca.crt.pem"), cert: pem("terminals/310001029313.crt.pem"), key: pem("terminals/310001029313.key.pem"),
          // The board connects to 192.168.1.10: the certificate must be good for that name.
          checkServerIdentity: (_host, cert) => checkServerIdentity("192.168.1.10", cert),
        }, () => { resolve(socket.authorized); socket.end(); });
        socket.on("error", reject);
      });
      assert.equal(authorized, true);
    });
  });
});
