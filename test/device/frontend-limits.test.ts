import * as assert from "../lib/assert";
import { frontendRefusal } from "../../src/declines";
import type { TerminalEvent } from "../../src/terminal";
import { MAC2, start } from "../lib/terminal-rig";

// The front-end's per-terminal limits and a revoked certificate answer the authorization with a 4xx (429
// RATE_LIMITED with Retry-After, 422 DAILY_LIMIT, 403 TERMINAL_REVOKED). All come before the terminal's DEBIT: the
// payment is declined, the card is never debited, and no completion is owed. Unit test on the device interfaces, so
// it runs under mocha and inside XS; the real front-end's answers are tested in test/node/frontend/limits.test.ts.

const REFUSALS = [
  { status: 429, code: "RATE_LIMITED", reason: "rate-limited" },
  { status: 422, code: "DAILY_LIMIT", reason: "daily-limit" },
  { status: 403, code: "TERMINAL_REVOKED", reason: "terminal-revoked" },
] as const;

describe("front-end limits on the terminal (unit)", () => {
  for (const refusal of REFUSALS) {
    it(`${refusal.status} ${refusal.code} on authorization is a decline (${refusal.reason}) and nothing is debited`, async () => {
      const s = await start();
      let authorizations = 0;
      s.fe.script = (r) => {
        if (r.path === "/v1/routes") return { status: 200, body: { version: 1, routes: [{ cityCode: "*", application: "tunion", level: 1, url: "https://fe.test", keyIndex: 1 }] } };
        if (r.path === "/v1/purchases") {
          authorizations++;
          if (authorizations === 1) return { status: refusal.status, body: { error: { code: refusal.code, message: "refused" } } };
          return { status: 201, body: { purchaseId: "P-2", tsn: 2, date: "20261201", time: "120000", mac1: "01020304", mac2: MAC2 } };
        }
        return { status: 200, body: { status: "completed" } };
      };
      await s.clock.run(s.running.terminal.pay({ amount: 300, order: `L-${refusal.code}` }));
      const final = s.events.find((e) => e.event === "declined" || e.event === "approved" || e.event === "unknown-outcome");
      assert.equal(final?.event, "declined", `the payment ends declined (${JSON.stringify(final)})`);
      assert.equal((final as Extract<TerminalEvent, { event: "declined" }>).reason, refusal.reason);
      assert.equal(s.card.debits, 0, "DEBIT never ran");
      await s.clock.advance(5_000);
      assert.equal(s.running.terminal.pendingCompletions, 0, "no completion is owed for a refused authorization");
      assert.ok(!s.fe.requests.some((r) => r.path.endsWith("/completion")), "nothing to complete");
      // The next payment, once the front-end admits it again, is approved.
      await s.clock.run(s.running.terminal.pay({ amount: 300, order: `M-${refusal.code}` }));
      assert.ok(s.events.some((e) => e.event === "approved"), "the next payment goes through");
      assert.equal(s.card.debits, 1);
      s.running.close();
    });
  }

  it("maps each limit code to its own decline reason, and an unknown code to frontend-refused", () => {
    for (const refusal of REFUSALS) assert.equal(frontendRefusal(refusal.code), refusal.reason);
    assert.equal(frontendRefusal("SOMETHING_NEW"), "frontend-refused");
  });
});
