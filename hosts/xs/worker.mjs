// The XS purchase's worker process: runs one bundle in an xsnap worker and relays between it and the Node parent
// (hosts/xs/parent.ts) over the IPC channel. It only relays: the emulator, the front-ends and TLS stay in the parent,
// because xsnap's Node API wants SES (@endo/init), which hardens this process's globals.
import "@endo/init";
import { xsnap } from "@agoric/xsnap";
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
let outbox = [];
let worker;

async function handle(message) {
  if (message.t === "load") {
    worker = await xsnap({
      os: os.type(), spawn, fs: { ...fs, ...fs.promises }, name: "xs-purchase", stdout: "inherit", stderr: "inherit",
      meteringLimit: 0,
      handleCommand: async (bytes) => {
        outbox.push(JSON.parse(decoder.decode(bytes)));
        return new Uint8Array(0);
      },
    });
    const outcome = await worker.evaluate(fs.readFileSync(message.bundle, "utf8"));
    return { meter: outcome.meterUsage, outputs: outbox.splice(0) };
  }
  if (message.t === "cmd") {
    const outcome = await worker.issueCommand(encoder.encode(JSON.stringify(message.body)));
    return { meter: outcome.meterUsage, outputs: outbox.splice(0) };
  }
  if (message.t === "snapshot") {
    // The size of a heap snapshot: XS writes the slots and chunks in use, so it sees array and string storage too.
    let bytes = 0;
    for await (const chunk of worker.makeSnapshotStream("soak")) bytes += chunk.length;
    return { bytes };
  }
  if (message.t === "close") {
    await worker?.close().catch(() => {});
    setImmediate(() => process.exit(0));
    return {};
  }
  throw new Error(`unknown message ${message.t}`);
}

let queue = Promise.resolve();
process.on("message", (message) => {
  queue = queue.then(() => handle(message)).then(
    (answer) => process.send({ id: message.id, ok: true, ...answer }),
    (error) => process.send({ id: message.id, ok: false, error: String((error && error.stack) || error) }),
  );
});
process.on("disconnect", () => {
  worker?.terminate?.();
  process.exit(0);
});
