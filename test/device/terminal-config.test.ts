// The settings validator the terminal and the front-end share: every field by type, range and name, errors typed
// with a code and the field. Runs under mocha and inside XS (device code).
import * as assert from "../lib/assert";
import { checkSettings, mergeSettings, MESSAGE_MAX_LENGTH, SettingError, settingDefaults, settingErrors } from "../../modules/terminal-config/config";

function refused(value: unknown): [string, string][] {
  return settingErrors(value).map((e) => [e.code, e.field]);
}

describe("terminal settings validator", () => {
  it("accepts every setting at the edges of its range", () => {
    const good = {
      maxAmount: 1, applicationOrder: ["cityunion"], strict: true, strictTimeoutMs: 100, recoveryWindowMs: 600_000,
      reportUnresolvedAfterMs: 1000, routesRefreshMs: 86_400_000, keepWarmMs: 1000, statusEveryMs: 1000, message: "x".repeat(MESSAGE_MAX_LENGTH),
      basicData: "read",
    };
    assert.deepEqual(settingErrors(good), []);
    assert.deepEqual(checkSettings(good), good);
    assert.deepEqual(checkSettings({ maxAmount: 0xffffffff, applicationOrder: ["tunion", "cityunion"], message: "" }),
      { maxAmount: 0xffffffff, applicationOrder: ["tunion", "cityunion"], message: "" });
  });

  it("refuses each bad field with its code and name", () => {
    assert.deepEqual(refused({ maxAmount: 0 }), [["CONFIG_RANGE", "maxAmount"]]);
    assert.deepEqual(refused({ maxAmount: 0x100000000 }), [["CONFIG_RANGE", "maxAmount"]]);
    assert.deepEqual(refused({ maxAmount: 2.5 }), [["CONFIG_TYPE", "maxAmount"]]);
    assert.deepEqual(refused({ maxAmount: "100" }), [["CONFIG_TYPE", "maxAmount"]]);
    assert.deepEqual(refused({ maxAmount: Number.NaN }), [["CONFIG_TYPE", "maxAmount"]]);
    assert.deepEqual(refused({ applicationOrder: "tunion" }), [["CONFIG_TYPE", "applicationOrder"]]);
    assert.deepEqual(refused({ applicationOrder: [] }), [["CONFIG_RANGE", "applicationOrder"]]);
    assert.deepEqual(refused({ applicationOrder: ["tunion", "tunion"] }), [["CONFIG_RANGE", "applicationOrder"]]);
    assert.deepEqual(refused({ applicationOrder: ["visa"] }), [["CONFIG_RANGE", "applicationOrder"]]);
    assert.deepEqual(refused({ strict: 1 }), [["CONFIG_TYPE", "strict"]]);
    assert.deepEqual(refused({ strictTimeoutMs: 99 }), [["CONFIG_RANGE", "strictTimeoutMs"]]);
    assert.deepEqual(refused({ statusEveryMs: 86_400_001 }), [["CONFIG_RANGE", "statusEveryMs"]]);
    assert.deepEqual(refused({ keepWarmMs: "1000" }), [["CONFIG_TYPE", "keepWarmMs"]]);
    assert.deepEqual(refused({ message: 5 }), [["CONFIG_TYPE", "message"]]);
    assert.deepEqual(refused({ message: "x".repeat(MESSAGE_MAX_LENGTH + 1) }), [["CONFIG_RANGE", "message"]]);
    assert.deepEqual(refused({ message: "line\u0007" }), [["CONFIG_RANGE", "message"]]);
    assert.deepEqual(refused({ basicData: "fci" }), [["CONFIG_RANGE", "basicData"]]);
    assert.deepEqual(refused({ basicData: true }), [["CONFIG_TYPE", "basicData"]]);
    assert.deepEqual(settingErrors({ basicData: "fci-first" }), []);
    assert.equal(settingDefaults().basicData, "fci-first");
    assert.deepEqual(refused({ toString: 1 }), [["CONFIG_UNKNOWN_KEY", "toString"]]);
    assert.deepEqual(refused({ __proto__x: 1, level1Url: "https://x" }), [["CONFIG_UNKNOWN_KEY", "__proto__x"], ["CONFIG_UNKNOWN_KEY", "level1Url"]]);
    for (const v of [null, undefined, 3, "x", [], true]) assert.deepEqual(refused(v), [["CONFIG_NOT_OBJECT", "settings"]]);
    let error: unknown;
    try {
      checkSettings({ strict: "no" });
    } catch (e) {
      error = e;
    }
    assert.ok(error instanceof SettingError);
    assert.equal((error as SettingError).code, "CONFIG_TYPE");
    assert.equal((error as SettingError).field, "strict");
  });

  it("layers defaults, group and terminal key by key", () => {
    assert.deepEqual(mergeSettings({ maxAmount: 1, message: "a" }, { maxAmount: 2 }, { message: "b" }), { maxAmount: 2, message: "b" });
  });
});
