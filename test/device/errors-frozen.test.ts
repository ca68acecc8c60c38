// Every error class the project throws, constructed on primordials frozen as the Moddable runtime freezes them.
// SDK behaviour: Error.prototype is frozen there, so `this.name = "X"` in a subclass constructor throws
// "set name: not writable" instead of building the error (issue 11, item 2). Under mocha the primordials are not
// frozen; inside XS the test runner (test/xs/harness.ts) freezes them first, so a class that assigns `name` fails here.
import * as assert from "../lib/assert";
import { CodedError } from "../../modules/errors/errors";
import { NetworkError } from "../../modules/device/types";
import { Pn532Error } from "../../modules/pn532/errors";
import { PowerCut } from "../../modules/journal/storage";
import { JournalError, JournalFullError } from "../../modules/journal/journal";
import { FrontendDeclineError, FrontendProtocolError, FrontendUnavailableError } from "../../modules/frontend-client/client";
import { PurseFormatError } from "../../modules/purse/errors";
import { ApduError, ApduFormatError, ApduProtocolError } from "../../modules/iso7816/errors";
import { TerminalError } from "../../src/terminal";
import { ConfigError } from "../../hosts/esp32/config";
import { SettingError } from "../../modules/terminal-config/config";

declare const issueCommand: unknown;
const insideXs = typeof issueCommand === "function";

describe("error classes on frozen primordials (Moddable)", () => {
  it("inside XS the runner has frozen Error.prototype, as the Moddable runtime does", () => {
    if (!insideXs) return; // mocha on Node: the primordials are Node's own
    assert.ok(Object.isFrozen(Error.prototype), "Error.prototype is not frozen: the XS runner no longer locks primordials");
    class Assigning extends Error {
      constructor() {
        super("x");
        // The bug class this lockdown exists for.
        (this as { name: string }).name = "Assigning";
      }
    }
    assert.throws(() => new Assigning(), TypeError);
  });

  const cases: [string, () => CodedError][] = [
    ["NetworkError", () => new NetworkError("refused")],
    ["Pn532Error", () => new Pn532Error("TIMEOUT", "no ACK")],
    ["PowerCut", () => new PowerCut()],
    ["JournalError", () => new JournalError("bad block")],
    ["JournalFullError", () => new JournalFullError()],
    ["FrontendDeclineError", () => new FrontendDeclineError(402, "INSUFFICIENT_FUNDS", "declined")],
    ["SettingError", () => new SettingError("CONFIG_RANGE", "maxAmount", "too large")],
    ["FrontendUnavailableError", () => new FrontendUnavailableError("down")],
    ["FrontendProtocolError", () => new FrontendProtocolError("bad json")],
    ["PurseFormatError", () => new PurseFormatError("short")],
    ["ApduError", () => new ApduError(0x6a82)],
    ["ApduFormatError", () => new ApduFormatError("short")],
    ["ApduProtocolError", () => new ApduProtocolError("bad")],
    ["TerminalError", () => new TerminalError("BUSY", "busy")],
    ["ConfigError", () => new ConfigError("bad key")],
  ];
  for (const [name, make] of cases) {
    it(`${name} constructs, with its name and a code`, () => {
      const error = make();
      assert.ok(error instanceof CodedError && error instanceof Error);
      assert.equal(error.name, name);
      assert.equal(typeof error.code, "string");
      assert.ok(error.code.length > 0);
    });
  }
});
