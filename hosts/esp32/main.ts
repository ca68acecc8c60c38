/// <reference path="./moddable-extra.d.ts" />
/**
 * The terminal on the ESP32. Moddable's networking host has joined Wi-Fi (mcconfig ssid=... password=...) before
 * this module runs. It sets the clock by SNTP (certificate validity needs it before the first TLS handshake), then
 * gives the same assembly the XS test runs (./terminal) Moddable's serial, HTTPS, flash, timers and digital pins.
 */
import device from "embedded:provider/builtin";
import TCP from "embedded:io/socket/tcp";
import UDP from "embedded:io/socket/udp";
import TLSSocket from "embedded:io/socket/tcp/tls";
import HTTPClient from "embedded:network/http/client";
import Resolver from "embedded:network/dns/resolver/udp";
import config from "mc/config";
import Instrumentation from "instrumentation";
import Resource from "Resource";
import SNTP from "sntp";
import Time from "time";
import Timer from "timer";
import type { SerialClass } from "../../modules/device/types";
import type { DigitalClass } from "../../src/indicator";
import { readSettings, type Esp32Settings } from "./config";
import { FlashJournalStorage } from "./flash-storage";
import { EspHttpsConnector } from "./https";
import { moddableTimers, startWithRetry } from "./start";
import { assembleTerminal, type TerminalMdb } from "../../src/assemble";
import MdbLink from "mdb-link";

const timers = moddableTimers;

const SNTP_TIMEOUT_MS = 15_000;

/** Resolves once SNTP has set the clock; each server gets SNTP_TIMEOUT_MS, then the next one is asked. */
function setClock(hosts: string[], attempt = 0): Promise<void> {
  return new Promise((resolve) => {
    const host = hosts[attempt % hosts.length]!;
    let done = false;
    const next = () => {
      if (done) return;
      done = true;
      Timer.clear(timeout);
      trace(`SNTP ${host}: no time, trying again\n`);
      Timer.set(() => void setClock(hosts, attempt + 1).then(resolve), 1000);
    };
    const timeout = Timer.set(next, SNTP_TIMEOUT_MS);
    new SNTP({ host }, (message, value) => {
      if (done) return;
      if (message === SNTP.time && value !== undefined) {
        done = true;
        Timer.clear(timeout);
        Time.set(value);
        resolve();
      } else if (message === SNTP.error) {
        next();
      }
    });
  });
}

function https(settings: Esp32Settings): EspHttpsConnector {
  const dns = { io: Resolver, servers: settings.dnsServers, socket: { io: UDP } };
  const c = settings.certificates;
  return new EspHttpsConnector({
    https: { io: HTTPClient, dns, socket: { io: TLSSocket, TCP: { io: TCP } } },
    tls: {
      certificate: new Resource(c.ca), clientCertificates: [new Resource(c.client)], clientKey: new Resource(c.key),
      protocolVersion: 0x0303, cache: false, verify: true,
    },
    timers,
  });
}

/** controller "mdb": the native link (hosts/esp32/mdb-link.js) under the terminal's MDB reader. */
function nativeMdb(pins: NonNullable<Esp32Settings["mdb"]>, terminalId: string): TerminalMdb {
  let link: MdbLink | undefined;
  return {
    link: (h) => (link = new MdbLink({
      receive: pins.receive, transmit: pins.transmit, address: pins.address,
      onCommand: (block, direct) => h.onCommand(new Uint8Array(block), direct), onDelivered: (n) => h.onDelivered(n), onBusReset: () => h.onBusReset(),
    })),
    close: () => link?.close(),
    reader: { device: { level: pins.level, serial: terminalId, manufacturer: "OTT", model: "TRANSIT-MDB" } },
  };
}

async function main(): Promise<void> {
  const settings = readSettings(config as Record<string, unknown>);
  await setClock(settings.sntpHosts);
  trace(`clock set: ${new Date().toISOString()}\n`);
  const serial = device.io.Serial as unknown as SerialClass;
  const digital = device.io.Digital;
  const running = await assembleTerminal({
    // The UART may be reopened at the listed rates (the driver raises the line to the fastest the chip takes).
    pn532: { io: serial, ...settings.pn532, rates: settings.pn532Line.baudRates },
    pn532Line: settings.pn532Line,
    controller: settings.controller && { io: serial, ...settings.controller },
    mdb: settings.mdb && nativeMdb(settings.mdb, settings.terminal.terminalId),
    connector: https(settings),
    storage: new FlashJournalStorage(settings.journalPartition),
    timers,
    clock: { now: () => Date.now() },
    indicator: settings.indicator && { io: digital as unknown as DigitalClass, mode: digital.Output, ...settings.indicator },
    trace: (line) => trace(`${line}\n`),
    heap: xsHeap,
  }, settings.terminal);
  trace(`terminal ${settings.terminal.terminalId} ready: ${running.terminal.routes?.routes.length ?? 0} routes\n`);
}

const SLOTS = Instrumentation.map("XS Slot Heap Used");
const CHUNKS = Instrumentation.map("XS Chunk Heap Used");

/** The XS heap for the status reports, from Moddable's instrumentation (docs/telemetry.md). */
function xsHeap(): { usedBytes?: number; slotBytes?: number; chunkBytes?: number } | undefined {
  const slotBytes = Instrumentation.get(SLOTS);
  const chunkBytes = Instrumentation.get(CHUNKS);
  if (slotBytes === undefined && chunkBytes === undefined) return undefined;
  return { usedBytes: (slotBytes ?? 0) + (chunkBytes ?? 0), ...(slotBytes === undefined ? {} : { slotBytes }), ...(chunkBytes === undefined ? {} : { chunkBytes }) };
}

startWithRetry(main);
