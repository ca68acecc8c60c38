// The C parts of the MDB link, compiled with the host's C compiler: the link core (modules/mdb/native, the code the
// ESP32's native module is built from, with its hardware layer for the ESP32 pins compile-checked where ESP-IDF
// is absent) and the PC's termios helper (modules/mdb/native/linux), whose unit tests use a pty. Then the helper itself
// over a socat pty pair, for what a pty can show: bytes from the bus reach the terminal in the §5 form (the line
// discipline's PARMRK doubling of a data FF proves the input flags), and the words the terminal sends leave as
// their data bytes. What a pty cannot show: the mode bit itself (no parity bit on a pty; Linux ptys even drop
// PARENB), so neither FF 00 b marking of a mode-bit byte nor the mark/space switch on transmit is seen here.
import { commandLength, MAX_BLOCK } from "../../../modules/mdb/commands";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { buildMdbHelper } from "../../../hosts/node/mdb-termios";
import { createPtyPair, hasCommand, hasSocat, PTY_INSTALL_HINT } from "../../../hosts/node/pty";
import { NodeSerial } from "../../../hosts/node/serial";
import { encodeWords, MODE } from "../../../modules/mdb/index";
import { holdsOpen, processState } from "../proc";
import { until } from "../until";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
const cc = ["cc", "gcc"].find(hasCommand);

/** Compiles C sources into `dir` and runs the program; it must print `expect`. */
function buildAndRun(dir: string, name: string, sources: string[], expect: RegExp, extra: string[] = []): void {
  const exe = path.join(dir, name);
  const build = spawnSync(cc!, ["-std=c99", "-Wall", "-Wextra", "-Werror", "-O1", ...extra, "-o", exe, ...sources.map((s) => path.join(root, s))], { encoding: "utf8" });
  assert.equal(build.status, 0, `build failed:\n${build.stderr}`);
  const run = spawnSync(exe, [], { encoding: "utf8" });
  assert.equal(run.status, 0, run.stdout + run.stderr);
  assert.match(run.stdout, expect);
}

describe("modules/mdb/native C code (host cc)", function () {
  this.timeout(60_000);
  let dir: string;
  before(function () {
    if (!cc) {
      console.log("      (skipped: no C compiler; apt-get install -y gcc)");
      this.skip();
    }
    dir = mkdtempSync(path.join(tmpdir(), "mdb-native-"));
  });
  after(() => dir && rmSync(dir, { recursive: true, force: true }));

  it("the link core compiles warning-free as C99 and passes its unit tests", () => {
    buildAndRun(dir, "link_test", ["modules/mdb/native/mdb_link.c", "modules/mdb/native/test/link_test.c"], /all checks passed/);
  });

  it("the C link core and modules/mdb/commands.ts agree on every command's length", () => {
    const exe = path.join(dir, "lengths_dump");
    const build = spawnSync(cc!, ["-std=c99", "-Wall", "-Wextra", "-Werror", "-O1", "-o", exe,
      path.join(root, "modules/mdb/native/mdb_link.c"), path.join(root, "modules/mdb/native/test/lengths_dump.c")], { encoding: "utf8" });
    assert.equal(build.status, 0, `build failed:\n${build.stderr}`);
    const fromC = spawnSync(exe, [], { encoding: "utf8", maxBuffer: 16 << 20 }).stdout.trim().split("\n").map(Number);
    const fromTs: number[] = [];
    const block = new Uint8Array(MAX_BLOCK);
    for (let first = 0; first < 8; first++) for (let sub = 0; sub < 256; sub++) for (let z3 = 0; z3 < 40; z3++) for (let seen = 1; seen <= 4; seen++) for (const expanded of [false, true]) {
      block[0] = 0x10 | first;
      block[1] = sub;
      block[2] = 0;
      block[3] = z3;
      fromTs.push(commandLength(block, seen, expanded));
    }
    assert.equal(fromC.length, fromTs.length);
    const first = fromTs.findIndex((n, i) => n !== fromC[i]);
    assert.equal(first, -1, `the tables differ at input ${first}: TypeScript ${fromTs[first]}, C ${fromC[first]}`);
  });

  it("the bit framing the ESP32 hardware layer bit-bangs passes its unit tests", () => {
    buildAndRun(dir, "bits_test", ["modules/mdb/native/mdb_bits.c", "modules/mdb/native/test/bits_test.c"], /bits: all checks passed/);
  });

  it("the termios helper's decoder, flags and pty byte path pass their unit tests", () => {
    buildAndRun(dir, "termios_test", ["modules/mdb/native/linux/mdb_termios.c", "modules/mdb/native/test/termios_test.c"], /termios: all checks passed/);
  });

  it("the helper carries bytes both ways over a pty pair", async function () {
    if (!hasSocat()) {
      console.log(`      (skipped: socat not installed; ${PTY_INSTALL_HINT})`);
      this.skip();
    }
    const helper = buildMdbHelper(dir);
    const pair = await createPtyPair();
    const fromHelper: number[] = [];
    const toTerminal: number[] = [];
    const bus = new NodeSerial({ path: pair.host, baud: 9600, format: "buffer", onReadable() {
      const d = bus.read();
      if (d) fromHelper.push(...new Uint8Array(d));
    } });
    await bus.opened;
    const child = spawn(helper, [pair.device], { stdio: ["pipe", "pipe", "pipe"] });
    child.stdout.on("data", (d: Buffer) => toTerminal.push(...d));
    try {
      // Open, set up (right after opening) and blocked in poll: until then, bytes sent to it would be lost.
      await until("the helper to open the pty and wait on it", () => holdsOpen(child.pid!, pair.device) && processState(child.pid!) === "S");
      // Bus -> terminal: the line discipline doubles a data FF (PARMRK with ISTRIP clear), which is the §5 form.
      bus.write(Uint8Array.of(0x12, 0xff, 0x34));
      await until("4 bytes at the terminal", () => toTerminal.length >= 4);
      assert.deepEqual(toTerminal, [0x12, 0xff, 0xff, 0x34]);
      // Terminal -> bus: a reply 05 FF + CHK (mode bit) in the §5 encoding leaves as its three data bytes.
      child.stdin.write(encodeWords([0x05, 0xff, MODE | 0x04]));
      await until("3 bytes on the bus", () => fromHelper.length >= 3);
      assert.deepEqual(fromHelper, [0x05, 0xff, 0x04]);
    } finally {
      child.stdin.end();
      child.kill();
      bus.close();
      await pair.close();
    }
  });
});
