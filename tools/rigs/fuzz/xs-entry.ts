// Inside XS: runs every fuzz target and sends each report to the Node parent (tools/rigs/fuzz/main.ts).
import { fuzz, fuzzTargets } from "./targets";

declare const issueCommand: (message: ArrayBuffer) => unknown;
declare const FUZZ_INPUTS: number;

function send(message: object): void {
  const text = JSON.stringify(message);
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i) & 0xff;
  issueCommand(bytes.buffer);
}

void (async () => {
  for (const [index, target] of fuzzTargets().entries()) {
    // XS in xsnap has no clock of its own for the guest; the parent times each report between messages.
    send({ kind: "report", report: await fuzz(target, FUZZ_INPUTS, 0xf00d + index, () => 0) });
  }
  send({ kind: "done" });
})();
