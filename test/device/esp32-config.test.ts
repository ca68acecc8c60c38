import * as assert from "../lib/assert";
import { ConfigError, readSettings } from "../../hosts/esp32/config";

// mc/config as the manifest gives it, and as the mcconfig command line overrides it (every override is a string).
const MANIFEST = {
  terminalId: "310001029313", level1Url: "https://frontend.example:8443", strict: "false", firmware: "0.1.0", cityCode: "",
  warmCityCodes: "", pn532_rates: "921600", nfc_max_kbps: 424, sntp: "pool.ntp.org,time.google.com",
  dns: "1.1.1.1,8.8.8.8", pn532_port: 2, pn532_rx: 16, pn532_tx: 17, pn532_baud: 115200, controller_port: 1, controller_rx: 26,
  controller_tx: 27, controller_baud: 115200, indicator: "led", led_pin: 2, buzzer_pin: 4, red_pin: "", green_pin: "", blue_pin: "",
  indicator_active_low: "false", journal_partition: "journal", ca_der: "ca.der", client_der: "terminal.der", key_der: "terminalkey.der",
};

describe("ESP32 settings from mc/config", () => {
  it("reads the manifest's defaults", () => {
    const s = readSettings(MANIFEST);
    assert.deepEqual(s.pn532, { port: 2, receive: 16, transmit: 17, baud: 115200 });
    assert.deepEqual(s.controller, { port: 1, receive: 26, transmit: 27, baud: 115200 });
    assert.deepEqual(s.indicator, { pins: { led: 2, buzzer: 4 }, activeLow: false });
    assert.deepEqual(s.terminal, { terminalId: "310001029313", level1Url: "https://frontend.example:8443", strict: false, firmware: "0.1.0" });
    assert.deepEqual(s.sntpHosts, ["pool.ntp.org", "time.google.com"]);
    assert.equal(s.journalPartition, "journal");
    assert.deepEqual(s.certificates, { ca: "ca.der", client: "terminal.der", key: "terminalkey.der" });
  });

  it("takes command-line overrides, which arrive as strings", () => {
    const s = readSettings({ ...MANIFEST, pn532_rx: "4", pn532_tx: "5", strict: "true", indicator: "rgb", red_pin: "21", green_pin: "22",
      blue_pin: "23", buzzer_pin: "", indicator_active_low: "true" });
    assert.deepEqual(s.pn532, { port: 2, receive: 4, transmit: 5, baud: 115200 });
    assert.equal(s.terminal.strict, true);
    assert.deepEqual(s.indicator, { pins: { red: 21, green: 22, blue: 23, buzzer: undefined }, activeLow: true });
    assert.equal(readSettings({ ...MANIFEST, indicator: "none" }).indicator, undefined);
  });

  it("refuses what would fail later on the device, naming the key", () => {
    assert.throws(() => readSettings({ ...MANIFEST, pn532_rx: "sixteen" }), ConfigError, (e) => /pn532_rx/.test(e.message));
    assert.throws(() => readSettings({ ...MANIFEST, indicator: "rgb" }), ConfigError, (e) => /red_pin/.test(e.message));
    assert.throws(() => readSettings({ ...MANIFEST, indicator: "lcd" }), ConfigError);
    assert.throws(() => readSettings({ ...MANIFEST, controller_port: "2" }), ConfigError, (e) => /different UARTs/.test(e.message));
    assert.throws(() => readSettings({ ...MANIFEST, terminalId: undefined }), { code: "BAD_CONFIG" });
  });
  it("the warm routes: the terminal's own city and more city codes, none by default", () => {
    const s = readSettings({ ...MANIFEST, cityCode: "3100", warmCityCodes: "1000, 2900" });
    assert.equal(s.terminal.cityCode, "3100");
    assert.deepEqual(s.terminal.warmCityCodes, ["1000", "2900"]);
    const d = readSettings(MANIFEST).terminal;
    assert.equal(d.cityCode, undefined);
    assert.equal(d.warmCityCodes, undefined);
    assert.throws(() => readSettings({ ...MANIFEST, cityCode: "310" }), ConfigError, (e) => /cityCode/.test(e.message));
    assert.throws(() => readSettings({ ...MANIFEST, cityCode: "3100,1000" }), ConfigError, (e) => /warmCityCodes/.test(e.message));
    assert.throws(() => readSettings({ ...MANIFEST, warmCityCodes: "1000,beijing" }), ConfigError, (e) => /warmCityCodes/.test(e.message));
  });

  it("the line rates: the PN532 UART rates to raise to and the highest NFC bit rate", () => {
    assert.deepEqual(readSettings(MANIFEST).pn532Line, { baudRates: [921600], maxBitRate: 424 });
    assert.deepEqual(readSettings({ ...MANIFEST, pn532_rates: "460800,921600", nfc_max_kbps: "212" }).pn532Line, { baudRates: [921600, 460800], maxBitRate: 212 });
    // "" keeps the line at pn532_baud, as a host that lists no rates does.
    assert.deepEqual(readSettings({ ...MANIFEST, pn532_rates: "" }).pn532Line.baudRates, []);
    assert.throws(() => readSettings({ ...MANIFEST, pn532_rates: "500000" }), ConfigError, (e) => /pn532_rates/.test(e.message));
    assert.throws(() => readSettings({ ...MANIFEST, nfc_max_kbps: "848" }), ConfigError, (e) => /nfc_max_kbps/.test(e.message));
  });

  it("controller mdb: the MDB pins, address and level instead of the controller UART", () => {
    const s = readSettings({ ...MANIFEST, controller: "mdb", mdb_rx: "32", mdb_tx: "33", mdb_address: "96", mdb_level: "2" });
    assert.equal(s.controller, undefined);
    assert.deepEqual(s.mdb, { receive: 32, transmit: 33, address: 0x60, level: 2 });
    assert.equal(readSettings(MANIFEST).mdb, undefined);
    assert.throws(() => readSettings({ ...MANIFEST, controller: "mdb" }), ConfigError, (e) => /mdb_rx/.test(e.message));
    assert.throws(() => readSettings({ ...MANIFEST, controller: "mdb", mdb_rx: "32", mdb_tx: "33", mdb_address: "17" }), ConfigError);
    assert.throws(() => readSettings({ ...MANIFEST, controller: "mdb", mdb_rx: "16", mdb_tx: "33" }), ConfigError, (e) => /PN532/.test(e.message));
    assert.throws(() => readSettings({ ...MANIFEST, controller: "vdi" }), ConfigError);
  });
});
