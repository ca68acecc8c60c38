/**
 * Runs inside XS: a `device` provider whose serial lines and HTTPS exchanges are forwarded to the Node parent, and
 * whose timers run on a clock the parent advances. It plays the part Moddable's native classes play on the ESP32:
 * an outgoing write is a synchronous host call (issueCommand), incoming bytes and HTTP answers arrive when the
 * parent calls handleCommand (a "tick"), like interrupts handed to the JS thread between turns.
 */
import {
  NetworkError, type HttpRequest, type HttpResponse, type HttpsConnection, type HttpsConnector, type SerialClass,
  type SerialOptions, type SerialPort, type Timers,
} from "../../modules/device/types";
import { decodeUtf8, encodeUtf8, fromHex, toHex } from "../../modules/bytes/bytes";
import { TimerQueue } from "./timer-queue";

declare const issueCommand: (message: ArrayBuffer) => ArrayBuffer;

export type Outgoing =
  | { k: "serial"; port: string; hex: string }
  | { k: "http"; id: number; origin: string; method: string; path: string; hex: string; timeout: number }
  | { k: "warm"; id: number; origin: string; timeout: number }
  | { k: "close"; origin: string }
  | { k: "next"; at: number | null }
  | { k: "trace"; line: string }
  | { k: "digital"; pin: number; value: number }
  | { k: "ready" }
  | { k: "fatal"; message: string }
  /** A journal write or erase that landed on the worker's flash (the parent keeps the image a restart starts from). */
  | { k: "flash"; offset: number; hex: string }
  | { k: "flash-erase"; offset: number; length: number }
  /** The power died just before a journal write: the parent kills the worker, and nothing after this goes out. */
  | { k: "power-cut" };

export type Incoming =
  | { k: "serial"; port: string; hex: string }
  | { k: "http"; id: number; status?: number; hex?: string; date?: string; error?: string; handshakes: number; connected: boolean };

export function send(message: Outgoing): void {
  issueCommand(encodeUtf8(JSON.stringify(message)).buffer as ArrayBuffer);
}

export function decodeCommand(bytes: ArrayBuffer): unknown {
  return JSON.parse(decodeUtf8(new Uint8Array(bytes)));
}

// ---- time ----

/** Moddable's Timer.set/clear and Time.ticks, on the parent's clock. */
export class ParentClock extends TimerQueue {
  #wall = 0;

  /** Wall-clock ms (what SNTP gives the ESP32). */
  wall(): number {
    return this.#wall;
  }

  advanceTo(now: number, wall: number): void {
    this.#wall = wall;
    this.moveTo(now);
  }

  /** Fires due timers one at a time, letting promise jobs run between them as Moddable's event loop does. */
  async fireDue(): Promise<void> {
    for (let due = this.takeDue(this.now()); due; due = this.takeDue(this.now())) {
      due.callback();
      for (let i = 0; i < 16; i++) await Promise.resolve();
    }
  }
}

// ---- serial ----

const lines = new Map<string, BridgeSerialPort>();

class BridgeSerialPort implements SerialPort {
  readonly #name: string;
  readonly #options: SerialOptions;
  #inbox: Uint8Array[] = [];
  #available = 0;
  #closed = false;

  constructor(name: string, options: SerialOptions) {
    this.#name = name;
    this.#options = options;
    lines.get(name)?.close();
    lines.set(name, this);
  }

  receive(bytes: Uint8Array): void {
    if (this.#closed) return;
    this.#inbox.push(bytes);
    this.#available += bytes.length;
    this.#options.onReadable?.call(this, this.#available);
  }

  read(): ArrayBuffer | undefined {
    if (!this.#available) return undefined;
    const out = new Uint8Array(this.#available);
    let at = 0;
    for (const c of this.#inbox) {
      out.set(c, at);
      at += c.length;
    }
    this.#inbox = [];
    this.#available = 0;
    return out.buffer;
  }

  write(data: ArrayBuffer | Uint8Array): void {
    if (this.#closed) throw new Error("serial port is closed");
    send({ k: "serial", port: this.#name, hex: toHex(data instanceof Uint8Array ? data : new Uint8Array(data)) });
  }

  close(): void {
    this.#closed = true;
    this.#inbox = [];
    this.#available = 0;
    if (lines.get(this.#name) === this) lines.delete(this.#name);
  }
}

/** The serial class for one named line of the parent ("pn532", "controller"). */
export function bridgeSerial(name: string): SerialClass {
  return class extends BridgeSerialPort {
    constructor(options: SerialOptions) {
      super(name, options);
    }
  };
}

// ---- HTTPS ----

interface Waiting { resolve: (r: HttpResponse) => void; reject: (e: Error) => void; timer: unknown; connection: BridgeConnection }

const waiting = new Map<number, Waiting>();
let lastId = 0;

class BridgeConnection implements HttpsConnection {
  readonly origin: string;
  handshakes = 0;
  connected = false;
  readonly #timers: Timers;

  constructor(origin: string, timers: Timers) {
    this.origin = origin;
    this.#timers = timers;
  }

  async warm(timeout: number): Promise<void> {
    if (this.connected) return;
    await this.#exchange(timeout, (id) => send({ k: "warm", id, origin: this.origin, timeout }));
  }

  request(request: HttpRequest): Promise<HttpResponse> {
    return this.#exchange(request.timeout, (id) => send({
      k: "http", id, origin: this.origin, method: request.method, path: request.path, hex: request.body ? toHex(request.body) : "",
      timeout: request.timeout,
    }));
  }

  close(): void {
    send({ k: "close", origin: this.origin });
    this.connected = false;
  }

  #exchange(timeout: number, start: (id: number) => void): Promise<HttpResponse> {
    const id = ++lastId;
    return new Promise((resolve, reject) => {
      // The parent enforces the deadline too; this one holds even if the parent never answers.
      const timer = this.#timers.set(() => {
        waiting.delete(id);
        reject(new NetworkError(`${this.origin}: no answer in ${timeout} ms`));
      }, timeout + 1000);
      waiting.set(id, { resolve, reject, timer, connection: this });
      start(id);
    });
  }
}

export class BridgeConnector implements HttpsConnector {
  readonly #timers: Timers;
  constructor(timers: Timers) {
    this.#timers = timers;
  }
  connect(origin: string): HttpsConnection {
    return new BridgeConnection(origin, this.#timers);
  }
}

/** Hands one parent delivery to the line or the request it is for. */
export function deliver(message: Incoming, timers: Timers): void {
  if (message.k === "serial") {
    lines.get(message.port)?.receive(fromHex(message.hex));
    return;
  }
  const w = waiting.get(message.id);
  if (!w) return;
  waiting.delete(message.id);
  timers.clear(w.timer);
  w.connection.handshakes = message.handshakes;
  w.connection.connected = message.connected;
  if (message.error !== undefined) w.reject(new NetworkError(message.error));
  else w.resolve({ status: message.status ?? 0, body: fromHex(message.hex ?? ""), ...(message.date ? { date: message.date } : {}) });
}
