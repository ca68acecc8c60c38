import * as assert from "../lib/assert";
import { ConfigError, readSettings } from "../../hosts/esp32/config";

// mc/config as the manifest gives it, and as the mcconfig command line overrides it (every override is a string).
const MANIFEST = {
  terminalId: "310001029313", level1Url: "https://frontend.example:8443", strict: "false", firmware: "0.1.0", sntp: "pool.ntp.org,time.google.com",
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
