// The layout the developers' docs draw is the tree as it is: every folder a newcomer would look for is in the map,
// every path the map names exists, and every file of src/ is named (the old map listed 9 of 15).
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";

const ROOT = path.resolve(import.meta.dirname, "../../..");
const LAYOUT = path.join(ROOT, "docs/develop/layout.md");

/** The paths the map's code block names: each line's first word, nested by its indentation. */
function mappedPaths(text: string): string[] {
  const block = /```\n([\s\S]*?)```/.exec(text);
  assert.ok(block, "docs/develop/layout.md has a code block with the map");
  const stack: { indent: number; dir: string }[] = [];
  const out: string[] = [];
  for (const line of block[1]!.split("\n")) {
    const m = /^( *)(\S+)/.exec(line);
    if (!m) continue;
    const indent = m[1]!.length;
    const name = m[2]!;
    while (stack.length && stack[stack.length - 1]!.indent >= indent) stack.pop();
    const parent = stack.length ? stack[stack.length - 1]!.dir : "";
    const full = parent + name;
    out.push(full.replace(/\/$/, ""));
    if (name.endsWith("/")) stack.push({ indent, dir: full });
  }
  return out;
}

function dirsUnder(rel: string): string[] {
  return readdirSync(path.join(ROOT, rel)).filter((n) => statSync(path.join(ROOT, rel, n)).isDirectory()).map((n) => `${rel}/${n}`);
}

describe("docs/develop/layout.md matches the tree", function () {
  const text = readFileSync(LAYOUT, "utf8");
  const paths = mappedPaths(text);

  it("names only paths that exist", function () {
    const missing = paths.filter((p) => !existsSync(path.join(ROOT, p)));
    assert.deepEqual(missing, [], `the map names paths that do not exist: ${missing.join(", ")}`);
  });

  it("names every folder of src, modules, hosts and tools (and the folders of tools/sim, tools/rigs, tools/frontend)", function () {
    const wanted = ["src", "modules", "hosts", "tools", "test", "docs",
      ...dirsUnder("modules"), ...dirsUnder("hosts"), ...dirsUnder("tools"),
      ...dirsUnder("tools/sim"), ...dirsUnder("tools/rigs"), ...dirsUnder("tools/frontend")];
    const absent = wanted.filter((w) => !paths.includes(w));
    assert.deepEqual(absent, [], `folders the map leaves out: ${absent.join(", ")}`);
  });

  it("names every file of src/", function () {
    const files = readdirSync(path.join(ROOT, "src")).filter((f) => f.endsWith(".ts"));
    const unnamed = files.filter((f) => !text.includes(f));
    assert.deepEqual(unnamed, [], `src files the layout does not name: ${unnamed.join(", ")}`);
  });
});
