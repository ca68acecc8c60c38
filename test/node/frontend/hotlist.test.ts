import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fromHex } from "../../../modules/bytes/bytes";
import { parseBasicData } from "../../../modules/purse/files";
import { ConfigError } from "../../../tools/frontend/config";
import { Hotlist } from "../../../tools/frontend/purchases/hotlist";

// The hotlist matched on the key diversification factor, file 0x15 bytes 12..19 (docs/fci-fast-path.md, "The
// hotlist"), in both layouts (docs/purse.md §3.1, §3.2). The purchases end to end: purchases.test.ts, fci.test.ts.

/** File 0x15, T-Union layout: issuer, type 02, version 01, the 20-digit ASN, dates, 2 issuer-defined bytes. */
const tunion = (asn: string) => parseBasicData(fromHex(`01011000FFFFFFFF0201${asn}2020010120991231` + "0000"), "tunion");
/** File 0x15, city-card layout: issuer, city 4100, industry, reserved, enabled, version, reserved, the 16-digit ASN. */
const city = (asn: string) => parseBasicData(fromHex(`073141000000000001010000${asn}2020010120991231` + "0000"), "cityunion");

describe("front-end hotlist (by key diversification factor)", () => {
  it("a listed T-Union ASN refuses any T-Union ASN with its last 16 digits, and says whether the match was exact", () => {
    const list = new Hotlist(["03101000000000000999"]);
    assert.deepEqual(list.match(tunion("03101000000000000999")), { listed: "03101000000000000999", factor: "1000000000000999", exact: true });
    assert.deepEqual(list.match(tunion("98761000000000000999")), { listed: "03101000000000000999", factor: "1000000000000999", exact: false });
    assert.equal(list.match(tunion("03101000000000000998")), undefined, "a change in the bound digits is another card");
    assert.equal(list.match(tunion("03111000000000000999"))?.exact, false);
    // Two listed ASNs with one factor: each matches itself exactly, any other with that factor by the factor.
    const both = new Hotlist(["03101000000000000999", "12341000000000000999"]);
    assert.equal(both.match(tunion("03101000000000000999"))?.exact, true);
    assert.equal(both.match(tunion("12341000000000000999"))?.exact, true);
    assert.equal(both.match(tunion("55551000000000000999"))?.exact, false);
  });

  it("a city card's ASN is its factor: a listed city ASN refuses it, and a T-Union card with the same factor", () => {
    const list = new Hotlist(["4100000089999985"]);
    assert.equal(list.match(city("4100000089999985"))?.exact, true);
    assert.equal(list.match(city("4100000089999986")), undefined);
    assert.deepEqual(list.match(tunion("03104100000089999985")), { listed: "4100000089999985", factor: "4100000089999985", exact: false });
    // And the other way: a listed T-Union ASN refuses the city card whose 16 digits are its factor.
    assert.equal(new Hotlist(["03104100000089999985"]).match(city("4100000089999985"))?.exact, false);
  });

  it("a T-Union number as printed (the leading 0 dropped) matches the card exactly", () => {
    assert.equal(new Hotlist(["3101000000000000999"]).match(tunion("03101000000000000999"))?.exact, true);
  });

  it("reads the hotlist file (comments, blank lines) and refuses a line that is not 16 to 20 digits, naming the line", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "hotlist-"));
    try {
      const file = path.join(dir, "hotlist.txt");
      writeFileSync(file, "# lost cards\n\n03101000000000000999  # reported 2026-12-01\n4100000089999985\n");
      const list = new Hotlist([], file);
      assert.equal(list.size, 2);
      assert.equal(list.match(tunion("55551000000000000999"))?.listed, "03101000000000000999");
      writeFileSync(file, "03101000000000000999\n0310-1000\n");
      assert.throws(() => new Hotlist([], file), (e: unknown) => e instanceof ConfigError && /hotlist\.txt line 2: .*16 to 20 digits/.test(e.message));
      assert.throws(() => new Hotlist(["12"]), ConfigError);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
