/**
 * The terminal's HTTPS on the ESP32: one ECMA-419 HTTP client (Moddable's `embedded:network/http/client`) per
 * front-end origin over Moddable's TLS socket, with the terminal's client certificate, kept open between requests so
 * a tap never pays for a handshake. A client that fails or times out is dropped; the next request opens a new one
 * (and counts a handshake).
 */
import { concatBytes } from "../../modules/bytes/bytes";
import { NetworkError, type HttpRequest, type HttpResponse, type HttpsConnection, type HttpsConnector, type Timers } from "../../modules/device/types";

// What the connector uses of Moddable's HTTP client, written structurally so that this file needs no Moddable module:
// main.ts hands it the real class (checked there against the SDK's typings), the device tests a stand-in.

export interface HTTPRequest {
  read(byteLength?: number): ArrayBuffer | undefined;
  write(data: Uint8Array | undefined): unknown;
}

export interface HTTPRequestOptions {
  method: string;
  path: string;
  headers: Map<string, string>;
  onWritable?(this: HTTPRequest, count: number): void;
  /** Moddable's client passes the response headers (lower-case names) as a Map after the status. */
  onHeaders?(this: HTTPRequest, status: number, headers: Map<String, string>): void;
  onReadable?(this: HTTPRequest, count: number): void;
  onDone?(this: HTTPRequest, error: Error | null): void;
}

export interface HTTPClient {
  request(options: HTTPRequestOptions): HTTPRequest;
  close(): void;
}

export interface HTTPClientOptions {
  host: string;
  port: number;
  dns: unknown;
  socket: unknown;
  onError?: (error?: unknown) => void;
}

export interface EspHttpsOptions {
  /** `device.network.https`: the client class, DNS and TLS socket of the host. */
  https: { io: new (options: HTTPClientOptions) => HTTPClient; dns?: unknown; socket: { io: unknown; TCP: { io: unknown }; secure?: object } };
  /** CA, client certificate and key (DER), TLS version: Moddable's SSL session options (moddable-extra.d.ts). */
  tls: object;
  timers: Timers;
}

/** What the TLS socket uses of the ECMA-419 TCP socket it is given as `TCP: {io}`. */
export interface TcpSocket {
  read(count?: unknown): unknown;
  write(data: unknown): unknown;
  close(): void;
}
export interface TcpOptions {
  onReadable?(count: number): void;
  onWritable?(count: number): void;
  onError?(error?: unknown): void;
  [option: string]: unknown;
}
export type TcpClass = new (options: TcpOptions) => TcpSocket;

/**
 * The TCP class handed to the SDK's TLS socket, with every callback guarded. The SDK's TLS and certificate code runs
 * inside the TCP callbacks and throws there on a failed server-certificate check ("certificate: auth err") or a chain
 * it cannot parse; an exception that escapes a callback into native code aborts the whole VM, i.e. reboots the
 * terminal (docs/moddable.md, "TLS failures do not reach onError"). Here the throw closes the socket and is reported to
 * `onFault` instead; a closed socket delivers nothing more. The TLS socket keeps its own `readable`/`writable`
 * counters on this object, which is why it is a plain extensible object.
 */
export function guardedTcp(TCP: TcpClass, onFault: (error: unknown) => void): TcpClass {
  return class GuardedTcp implements TcpSocket {
    readonly #socket: TcpSocket;
    #closed = false;
    constructor(options: TcpOptions) {
      const guard = <A extends unknown[]>(fn: ((...args: A) => void) | undefined) =>
        fn && ((...args: A) => {
          if (this.#closed) return;
          try {
            fn(...args);
          } catch (error) {
            this.close();
            onFault(error);
          }
        });
      this.#socket = new TCP({ ...options, onReadable: guard(options.onReadable), onWritable: guard(options.onWritable), onError: guard(options.onError) });
    }
    read(count?: unknown): unknown {
      return this.#socket.read(count);
    }
    write(data: unknown): unknown {
      return this.#socket.write(data);
    }
    close(): void {
      if (this.#closed) return;
      this.#closed = true;
      try {
        this.#socket.close();
      } catch {
        // Already closed by the peer or the SDK.
      }
    }
  };
}

type State = "closed" | "open" | "failed";

class EspHttpsConnection implements HttpsConnection {
  readonly origin: string;
  handshakes = 0;
  readonly #host: string;
  readonly #port: number;
  readonly #options: EspHttpsOptions;
  #client: HTTPClient | undefined;
  #state: State = "closed";
  #fail: ((error: Error) => void) | undefined;

  constructor(origin: string, options: EspHttpsOptions) {
    this.origin = origin;
    const match = /^https:\/\/([^/:]+)(?::([0-9]+))?$/.exec(origin);
    if (!match) throw new NetworkError(`not an https origin: ${origin}`);
    this.#host = match[1]!;
    this.#port = match[2] ? Number(match[2]) : 443;
    this.#options = options;
  }

  get connected(): boolean {
    return this.#state === "open";
  }

  async warm(timeout: number): Promise<void> {
    if (this.connected) return;
    const r = await this.request({ method: "GET", path: "/v1/health", timeout });
    if (r.status >= 500) throw new NetworkError(`${this.origin} is not healthy (HTTP ${r.status})`);
  }

  request(request: HttpRequest): Promise<HttpResponse> {
    return new Promise((resolve, reject) => {
      const timers = this.#options.timers;
      let settled = false;
      let status = 0;
      let date: string | undefined;
      const chunks: Uint8Array[] = [];
      const finish = (error: Error | undefined) => {
        if (settled) return;
        settled = true;
        timers.clear(timer);
        if (this.#fail === fail) this.#fail = undefined;
        if (error) {
          // The connection's state is unknown after a failure: start the next request on a new one.
          this.#drop();
          reject(error);
          return;
        }
        resolve({ status, body: concatBytes(...chunks), ...(date ? { date } : {}) });
      };
      const fail = (error: Error) => finish(error);
      const timer = timers.set(() => finish(new NetworkError(`${request.method} ${this.origin}${request.path}: no answer in ${request.timeout} ms`)), request.timeout);
      let client: HTTPClient;
      try {
        client = this.#open();
      } catch (error) {
        finish(new NetworkError(`${this.origin}: ${(error as Error).message}`));
        return;
      }
      this.#fail = fail;
      // The client writes the request line and `host` itself.
      const headers = new Map<string, string>([["accept", "application/json"]]);
      const body = request.body && request.body.length ? request.body : undefined;
      let sent = 0;
      if (body) {
        headers.set("content-type", "application/json");
        headers.set("content-length", String(body.length));
      }
      client.request({
        method: request.method, path: request.path, headers,
        // Called only when there is a body (content-length > 0), with the room there is; the client counts the
        // content-length down and moves on to the response by itself once the last byte is written.
        onWritable(this: HTTPRequest, count: number) {
          if (!body || sent >= body.length) return;
          const n = Math.min(count, body.length - sent);
          this.write(body.subarray(sent, sent + n));
          sent += n;
        },
        onHeaders(this: HTTPRequest, code: number, headers: Map<String, string>) {
          status = code;
          date = headers?.get?.("date");
        },
        onReadable(this: HTTPRequest, count: number) {
          const bytes = this.read(count);
          if (bytes) chunks.push(new Uint8Array(bytes));
        },
        onDone: (error: Error | null) => {
          finish(error ? new NetworkError(`${request.method} ${this.origin}${request.path}: ${error.message || "connection failed"}`) : undefined);
        },
      });
    });
  }

  close(): void {
    this.#drop();
  }

  #open(): HTTPClient {
    if (this.#client && this.#state === "open") return this.#client;
    this.#drop();
    const https = this.#options.https;
    // The SDK reports some TLS failures by throwing inside its TCP callbacks and others (a refused client certificate)
    // not at all: the guard turns the first into a NetworkError now, the request's own deadline ends the second.
    const failed = (reason: string) => {
      if (this.#client !== client) return;
      this.#state = "failed";
      this.#fail?.(new NetworkError(`${this.origin}: ${reason}`));
    };
    // The TLS socket passes its own options through to the TCP constructor; this layer only wraps the callbacks.
    const TCP = guardedTcp(https.socket.TCP.io as TcpClass, (error) => failed(`TLS failed: ${error instanceof Error ? error.message : String(error)}`));
    const client: HTTPClient = new https.io({
      ...https,
      host: this.#host,
      port: this.#port,
      dns: https.dns,
      socket: { ...https.socket, TCP: { ...https.socket.TCP, io: TCP }, secure: { ...https.socket.secure, ...this.#options.tls } },
      onError: () => failed("connection failed"),
    });
    this.#client = client;
    this.#state = "open";
    this.handshakes++;
    return client;
  }

  #drop(): void {
    const client = this.#client;
    this.#client = undefined;
    this.#state = "closed";
    try {
      client?.close();
    } catch {
      // Already closed by the client itself.
    }
  }
}

export class EspHttpsConnector implements HttpsConnector {
  readonly #options: EspHttpsOptions;
  constructor(options: EspHttpsOptions) {
    this.#options = options;
  }
  connect(origin: string): HttpsConnection {
    return new EspHttpsConnection(origin, this.#options);
  }
}
