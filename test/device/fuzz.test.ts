import * as assert from "../lib/assert";
import { fuzz, fuzzTargets } from "../../tools/rigs/fuzz/targets";

// The fast run of `npm run fuzz`: every parser of outside bytes, 20,000 inputs each, under mocha and inside XS.
// Only typed errors may come out, and no promise may hang.

const INPUTS = 20_000;

describe("fuzzing every parser of outside input (fast run; npm run fuzz does 1,000,000 each)", () => {
  for (const [index, target] of fuzzTargets().entries()) {
    it(`${target.name}: ${INPUTS} inputs, only typed errors, no hang`, async () => {
      const report = await fuzz(target, INPUTS, 0xf00d + index, () => 0);
      assert.equal(report.findingCount, 0, `${target.name}: ${JSON.stringify(report.findings)}`);
      assert.ok(report.accepted + report.typedErrors === INPUTS, "every input was run");
      assert.ok(report.accepted > 0, `${target.name} accepted no input at all`);
    });
  }
});
