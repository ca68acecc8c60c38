// The house rules a reviewer would otherwise check by hand: small device files, imports that point one way, and a
// deployable front-end that carries nothing of the test rigs.
import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";

const ROOT = path.resolve(import.meta.dirname, "../../..");

function filesUnder(rel: string, ext = /\.(ts|mjs|js)$/): string[] {
  const out: string[] = [];
  for (const name of readdirSync(path.join(ROOT, rel))) {
    const child = `${rel}/${name}`;
    if (statSync(path.join(ROOT, child)).isDirectory()) out.push(...filesUnder(child, ext));
    else if (ext.test(name) && !name.endsWith(".d.ts")) out.push(child);
  }
  return out;
}

/** Where each relative import of a file points, as a path from the repository root. */
function importsOf(file: string): string[] {
  const text = readFileSync(path.join(ROOT, file), "utf8");
  const out: string[] = [];
  for (const m of text.matchAll(/(?:from|import)\s*\(?\s*["']([^"']+)["']/g)) {
    const spec = m[1]!;
    out.push(spec.startsWith(".") ? path.posix.normalize(path.posix.join(path.posix.dirname(file), spec)) : spec);
  }
  return out;
}

describe("house rules", function () {
  it("no file in src/ or modules/ is over 400 lines", function () {
    const long = [...filesUnder("src"), ...filesUnder("modules")]
      .map((f) => ({ f, n: (readFileSync(path.join(ROOT, f), "utf8").match(/\n/g) ?? []).length }))
      .filter(({ n }) => n > 400);
    assert.deepEqual(long, []);
  });

  it("device code (src/, modules/) imports neither Node, nor hosts/, nor tools/", function () {
    const bad = [...filesUnder("src"), ...filesUnder("modules")].flatMap((f) => importsOf(f)
      .filter((i) => i.startsWith("node:") || i.startsWith("hosts/") || i.startsWith("tools/") || i.startsWith("test/"))
      .map((i) => `${f} -> ${i}`));
    assert.deepEqual(bad, []);
  });

  it("the deployable front-end imports nothing of the rigs, the simulators or the tests", function () {
    const bad = filesUnder("tools/frontend").flatMap((f) => importsOf(f)
      .filter((i) => i.startsWith("tools/rigs") || i.startsWith("tools/sim") || i.startsWith("test/"))
      .map((i) => `${f} -> ${i}`));
    assert.deepEqual(bad, []);
  });

  it("simulators do not import the rigs, and shared libraries import neither", function () {
    const bad = [...filesUnder("tools/sim"), ...filesUnder("tools/pki"), ...filesUnder("tools/purse-crypto")].flatMap((f) => importsOf(f)
      .filter((i) => i.startsWith("tools/rigs") || (!f.startsWith("tools/sim") && i.startsWith("tools/sim")))
      .map((i) => `${f} -> ${i}`));
    assert.deepEqual(bad, []);
  });
});
