// The C link core (native/mdb) compiled with the host's C compiler and its unit tests run: the code the ESP32's
// native module is built from, checked on every `npm test`.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { hasCommand } from "../../hosts/node/pty";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

describe("native/mdb C link core (host cc)", function () {
  this.timeout(60_000);
  const cc = ["cc", "gcc"].find(hasCommand);
  before(function () {
    if (!cc) {
      console.log("      (skipped: no C compiler; apt-get install -y gcc)");
      this.skip();
    }
  });
  it("compiles warning-free as C99 and passes its unit tests", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "mdb-native-"));
    try {
      const exe = path.join(dir, "link_test");
      const build = spawnSync(cc!, ["-std=c99", "-Wall", "-Wextra", "-Werror", "-O1", "-o", exe,
        path.join(root, "native/mdb/mdb_link.c"), path.join(root, "native/mdb/test/link_test.c")], { encoding: "utf8" });
      assert.equal(build.status, 0, `build failed:\n${build.stderr}`);
      const run = spawnSync(exe, [], { encoding: "utf8" });
      assert.equal(run.status, 0, run.stdout + run.stderr);
      assert.match(run.stdout, /all checks passed/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
