// The harness as the vending machine: the Node host terminal in its own process with its MDB port on a socat pty
// (--mdb-port ... --mdb-link stream), front-ends in their own processes; `npm run harness` (its CLI) plays the VMC
// on the other end of that pty and the PN532 with virtual cards, running tools/rigs/harness/scenarios/mdb at VMC levels
// 1 to 3, each scenario with a strict VMC (direct replies only) and with one that takes either form.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { createPtyPair, hasSocat, PTY_INSTALL_HINT, type PtyPair } from "../../../hosts/node/pty";
import { Rig } from "../../../tools/rigs/harness/rig";
import { parseScenarios } from "../../../tools/rigs/harness/scenario";
import { holdsOpen } from "../proc";
import { until } from "../until";

const ROOT = path.resolve(import.meta.dirname, "../../..");
const MDB_SCENARIOS = path.join(ROOT, "tools/rigs/harness/scenarios/mdb");
const files = () => readdirSync(MDB_SCENARIOS).filter((f) => /\.(ya?ml|json)$/.test(f)).map((f) => path.join(MDB_SCENARIOS, f));

describe("harness: MDB scenarios", function () {
  this.timeout(180_000);
  let rig: Rig;
  let mdb: PtyPair;
  let out: string;

  it("reads the MDB scenarios", () => {
    for (const f of files()) assert.ok(parseScenarios(readFileSync(f, "utf8"), f).length >= 1, f);
    assert.throws(() => parseScenarios("name: x\nsteps:\n  - mdb: { init: 4 }\n", "t.yaml"), /mdb.init is the VMC level/);
    assert.throws(() => parseScenarios("name: x\nsteps:\n  - mdb: { send: { kind: dance } }\n", "t.yaml"), /mdb.send must be an MDB command/);
  });

  describe("against the Node host terminal", () => {
    before(async function () {
      if (!hasSocat()) {
        console.log(`      (skipped: socat not installed; ${PTY_INSTALL_HINT})`);
        this.skip();
      }
      rig = await Rig.start();
      mdb = await createPtyPair();
      out = mkdtempSync(path.join(tmpdir(), "harness-mdb-"));
    });
    after(async () => {
      await rig?.close();
      await mdb?.close();
      if (out) rmSync(out, { recursive: true, force: true });
    });

    it("plays the VMC and the PN532; every MDB scenario passes", async () => {
      // The harness opens its ends first, then the terminal starts (its PN532 must answer at start-up).
      const child = spawn(process.execPath, ["--import", "tsx", path.join(ROOT, "tools/rigs/harness/main.ts"),
        "--controller", rig.controllerPair.device, "--pn532-port", rig.pn532Pair.device, "--mdb-port", mdb.device, "--keys", rig.keysPath,
        "--ready-timeout", "60000", "--out", out, ...files()], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (d: Buffer) => { stdout += d.toString(); });
      child.stderr.on("data", (d: Buffer) => { stderr += d.toString(); });
      const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
      // It probes the PN532 port, then opens the MDB port and last the PN532 port for good: both open means it is ready.
      await until("the harness to open its MDB and PN532 ports", () => {
        if (child.exitCode !== null) throw new Error(`the harness exited: ${stdout}\n${stderr}`);
        return holdsOpen(child.pid!, mdb.device) && holdsOpen(child.pid!, rig.pn532Pair.device);
      }, 60_000);
      const started = await rig.startTerminal({ args: ["--mdb-port", mdb.host, "--mdb-link", "stream"] });
      assert.equal(started, "ready", rig.terminalLog.slice(-20).join("\n"));
      const code = await exited;
      assert.equal(code, 0, `${stdout}\n${stderr}\n${rig.terminalLog.slice(-30).join("\n")}`);
      // 4 scenarios (VMC levels 1, 2, 3 and 3 selection first), each with a strict VMC and with one taking either form.
      assert.match(stdout, /8 scenarios: 8 passed, 0 failed, 0 errors/);
      assert.equal(new Set(stdout.match(/PASS .*\[strict VMC\]/g) ?? []).size, 4);
      const logs = readdirSync(path.join(out, "logs")).map((l) => readFileSync(path.join(out, "logs", l), "utf8"));
      assert.ok(logs.some((l) => l.includes("mdb <- VEND APPROVED 3.50")));
      // The reader answered directly: END SESSION and VEND DENIED came with their commands, not on a later POLL.
      assert.ok(logs.some((l) => l.includes("mdb <- END SESSION (direct reply)")));
      assert.ok(logs.some((l) => l.includes("mdb <- VEND DENIED (direct reply)")));
    });
  });
});
