/// <reference path="../esp32/moddable-extra.d.ts" />
/**
 * The terminal on Moddable's Linux runtime (mcconfig -m -p lin, run by mcsim): the ESP32's assembly and connector
 * over the SDK's own serial, TCP, TLS, HTTP client, timers and files. What differs from hosts/esp32/main.ts is only
 * what a PC differs in: serial ports are pty paths, the journal is a file, the clock is already set (no SNTP), and
 * the two Linux-only workarounds (write-budget.ts, sigpipe.c).
 */
import TCP from "embedded:io/socket/tcp";
import UDP from "embedded:io/socket/udp";
import Serial from "embedded:io/serial";
import TLSSocket from "embedded:io/socket/tcp/tls";
import HTTPClient from "embedded:network/http/client";
import Resolver from "embedded:network/dns/resolver/udp";
import config from "mc/config";
import { File } from "file";
import Time from "time";
import Timer from "timer";
import ignoreSigpipe from "hosts/lin/sigpipe";
import { EspHttpsConnector, type TcpClass } from "../esp32/https";
import { moddableTimers, startWithRetry } from "../esp32/start";
import { assembleTerminal } from "../../src/assemble";
import { readLinSettings } from "./config";
import { FileJournalStorage } from "./file-storage";
import { budgetedTcp } from "./write-budget";
import { linSerial } from "./lin-serial";
import { XsMemory } from "./memory";
import { timedTls } from "./tls-timing";

ignoreSigpipe();

const timers = moddableTimers;

const MEMORY_SAMPLE_MS = 50;

// The figures `npm run moddable` prints: one line per terminal event, chunks and slots sampled in between. One
// sampler for the process, whatever number of start attempts.
const memory = new XsMemory();
if (memory.available) Timer.repeat(() => memory.sample(), MEMORY_SAMPLE_MS);
const IDLE_FIGURE_MS = 5_000;
let idleTerminal: { readonly state: string } | undefined;
let idleTimer: Timer | undefined;

function readDer(path: string): ArrayBuffer {
  const file = new File(path);
  try {
    return file.read(ArrayBuffer);
  } finally {
    file.close();
  }
}

const serial = linSerial(Serial as never);

async function main(): Promise<void> {
  // `settings_file` (mcconfig ... settings_file=/path.json): a JSON object of the same keys, read at start, so one
  // build runs against any rig (pty paths, ports and certificates are made fresh per run).
  const raw = { ...(config as Record<string, unknown>) };
  if (typeof raw.settings_file === "string" && raw.settings_file) {
    const file = new File(raw.settings_file);
    try {
      Object.assign(raw, JSON.parse(file.read(String)) as Record<string, unknown>);
    } finally {
      file.close();
    }
  }
  const settings = readLinSettings(raw);
  const c = settings.certificates;
  const connector = new EspHttpsConnector({
    https: {
      io: HTTPClient,
      dns: { io: Resolver, servers: settings.dnsServers, socket: { io: UDP } },
      socket: { io: timedTls(TLSSocket as never, () => Time.ticks, (ms) => trace(`tls-handshake {"ms":${ms}}\n`)), TCP: { io: budgetedTcp(TCP as unknown as TcpClass) } },
    },
    tls: {
      certificate: readDer(c.ca), clientCertificates: [readDer(c.client)], clientKey: readDer(c.key),
      protocolVersion: 0x0303, cache: false, verify: true,
    },
    timers,
  });
  const running = await assembleTerminal({
    pn532: { io: serial, path: settings.pn532.device, baud: settings.pn532.baud },
    controller: { io: serial, path: settings.controller.device, baud: settings.controller.baud },
    connector,
    storage: new FileJournalStorage(settings.journal),
    timers,
    clock: { now: () => Date.now() },
    trace: (line) => trace(`${line}\n`),
  }, settings.terminal, (event) => {
    if (memory.available) trace(`xs-memory ${JSON.stringify(memory.figure(event.event))}\n`);
  });
  // The idle figures, as found and after a collection: between payments, every IDLE_FIGURE_MS (one timer for the process,
  // whatever the start attempts).
  idleTerminal = running.terminal;
  idleTimer ??= memory.available ? Timer.repeat(() => {
    if (idleTerminal?.state !== "idle") return;
    trace(`xs-memory ${JSON.stringify(memory.figure("idle"))}\n`);
    trace(`xs-memory ${JSON.stringify(memory.liveFigure("idle-live"))}\n`);
  }, IDLE_FIGURE_MS) : undefined;
  trace(`terminal ${settings.terminal.terminalId} ready: ${running.terminal.routes?.routes.length ?? 0} routes\n`);
}

startWithRetry(main);
