// Runs the fuzz bundle inside the XS engine and prints each report as a JSON line. Plain JavaScript: xsnap's Node API
// wants SES (@endo/init), which hardens this process's globals, so it runs in a child process of its own.
import "@endo/init";
import { xsnap } from "@agoric/xsnap";
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";

const decoder = new TextDecoder();
let last = performance.now();
let done = false;
const worker = await xsnap({
  os: os.type(), spawn, fs: { ...fs, ...fs.promises }, name: "xs-fuzz", stdout: "inherit", stderr: "inherit", meteringLimit: 0,
  handleCommand: async (bytes) => {
    const message = JSON.parse(decoder.decode(bytes));
    const now = performance.now();
    if (message.kind === "report") process.stdout.write(JSON.stringify({ ...message.report, ms: Math.round(now - last) }) + "\n");
    if (message.kind === "done") done = true;
    last = now;
    return new Uint8Array(0);
  },
});
await worker.evaluate(fs.readFileSync(process.argv[2], "utf8"));
await worker.close().catch(() => {});
process.exit(done ? 0 : 3);
