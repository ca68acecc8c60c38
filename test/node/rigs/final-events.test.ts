import assert from "node:assert/strict";
import { finalEventViolations } from "../../../tools/rigs/harness/consistency";

// The controller's rule the fault suite checks after every fault (checkAfterFault): exactly one final event per order,
// and no error naming an order whose payment is under way.

describe("harness: exactly one final event per order", () => {
  const ready = { event: "ready" };

  it("flags the stream of issue 24: an error naming the order, then card-read and approved", () => {
    const heard = [
      ready,
      { event: "waiting-for-card", order: "T2" },
      { event: "error", code: "PN532_TIMEOUT", message: "no ACK", order: "T2" },
      { event: "card-read", order: "T2" },
      { event: "approved", order: "T2" },
    ];
    assert.deepEqual(finalEventViolations(heard), ["order T2: an error (PN532_TIMEOUT) while its payment was under way, before its final event"]);
    // The same payment with the fault as a reader-fault holds.
    heard[2] = { event: "reader-fault", code: "PN532_TIMEOUT", message: "no ACK", order: "T2" };
    assert.deepEqual(finalEventViolations(heard), []);
  });

  it("flags a second final event and a payment that never ended while the terminal lived", () => {
    assert.deepEqual(finalEventViolations([
      { event: "waiting-for-card", order: "A" }, { event: "declined", order: "A" }, { event: "approved", order: "A" },
      { event: "waiting-for-card", order: "B" },
    ]), ["order A: more than one final event (the second: approved)", "order B: no final event"]);
  });

  it("holds for a restart mid-payment, a refused request, and errors after the final event", () => {
    assert.deepEqual(finalEventViolations([
      ready,
      { event: "waiting-for-card", order: "K" }, { event: "card-read", order: "K" },
      // The power died after DEBIT: no final event; the card settles it after the restart.
      ready,
      { event: "resolved", order: "K", result: "approved" },
      { event: "waiting-for-card", order: "P" }, { event: "approved", order: "P" },
      { event: "error", code: "COMPLETION_REFUSED", order: "P" },
      { event: "error", code: "BUSY", order: "Q" },
      { event: "declined", order: "R", reason: "amount-over-limit" },
    ]), []);
  });
});
