// docs/reference/settings.md is what `npm run docs:settings` makes of the one settings table, so its defaults and
// ranges are the ones the terminal and the front-end apply.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { SETTING_NAMES } from "../../../modules/terminal-config/config";
import { SETTINGS_DOC, settingsDoc } from "../../../tools/rigs/docs/settings";

describe("docs/reference/settings.md", function () {
  it("is the settings table as it is (npm run docs:settings writes it)", function () {
    assert.equal(readFileSync(SETTINGS_DOC, "utf8"), settingsDoc(), "run npm run docs:settings");
  });

  it("gives every setting a description", function () {
    const text = settingsDoc();
    for (const name of SETTING_NAMES) assert.match(text, new RegExp(`\\| \`${name}\` \\|[^\\n]*\\| [A-Z][^|]+ \\|\\n`), name);
  });
});
