/**
 * `npm run frontend -- init --dir <d>` with SoftHSM2 installed: the master keys are made inside tokens under <d>/hsm,
 * no key file is written, the configurations carry the keys' check values, the ceremony lists them, and the level-1
 * front-end starts from its configuration and serves.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { FrontendClient } from "../../../tools/rigs/frontend/index";
import { softhsmMissing } from "../../../tools/frontend/keys/softhsm";
import { killed, launchFrontend } from "./support";

const MAIN = path.resolve(import.meta.dirname, "../../../tools/frontend/main.ts");
const cli = (...args: string[]) => execFileSync(process.execPath, ["--import", "tsx", MAIN, ...args], { cwd: path.dirname(MAIN), encoding: "utf8", stdio: "pipe" });

describe("front-end: init with SoftHSM2", function () {
  this.timeout(180_000);
  let dir: string;
  before(function () {
    const missing = softhsmMissing();
    if (missing) {
      console.log(`      skipped: ${missing}`);
      this.skip();
    }
    dir = mkdtempSync(path.join(tmpdir(), "frontend-init-"));
  });
  after(() => { if (dir) rmSync(dir, { recursive: true, force: true }); });

  it("makes the master keys inside tokens, writes no key file, and the level-1 front-end starts from its configuration", async () => {
    cli("init", "--dir", dir);
    assert.equal(existsSync(path.join(dir, "keys-level1.json")) || existsSync(path.join(dir, "keys-level2.json")), false);
    const files = (d: string): string[] => readdirSync(d, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? files(path.join(d, e.name)) : [path.join(d, e.name)]));
    for (const file of files(dir).filter((f) => f.endsWith(".json"))) {
      assert.doesNotMatch(readFileSync(file, "utf8"), /"(purchase|tac|load)": "[0-9A-Fa-f]{32}"/, `${file} holds a key`);
    }
    const config = JSON.parse(readFileSync(path.join(dir, "level1.json"), "utf8")) as { keyStore: { pkcs11: { kcv: Record<string, { purchase: string }> } }; listen: object; operator: object };
    const kcv = config.keyStore.pkcs11.kcv["1:1:3des"]!;
    const listed = cli("keys", "list", "--config", path.join(dir, "level1.json"));
    assert.match(listed, new RegExp(`1:1:3des\\tpurchase\\tKCV ${kcv.purchase}\\tactive`));
    // Ports of its own for the test (init writes the well-known ones).
    writeFileSync(path.join(dir, "level1.json"), JSON.stringify({ ...config, listen: { host: "127.0.0.1", port: 0 }, operator: { ...config.operator, port: 0 } }));
    const { child, url } = await launchFrontend(path.join(dir, "level1.json"));
    try {
      const pem = (name: string) => readFileSync(path.join(dir, "pki", name), "utf8");
      const client = new FrontendClient(url, { ca: pem("ca.crt.pem"), cert: pem("terminals/001122334455.crt.pem"), key: pem("terminals/001122334455.key.pem") });
      try {
        const health = await client.health();
        assert.equal(health.keys, 1);
        assert.equal(health.keySystem, "MOT");
      } finally {
        client.close();
      }
    } finally {
      await killed(child, "SIGTERM");
    }
  });
});
