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
  onHeaders?(this: HTTPRequest, status: number): void;
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
  https: { io: new (options: HTTPClientOptions) => HTTPClient; dns?: unknown; socket: { io: unknown; TCP: unknown; secure?: object } };
  /** CA, client certificate and key (DER), TLS version: Moddable's SSL session options (moddable-extra.d.ts). */
  tls: object;
  timers: Timers;
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
        resolve({ status, body: concatBytes(...chunks) });
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
        onHeaders(this: HTTPRequest, code: number) {
          status = code;
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
    const client = new https.io({
      ...https,
      host: this.#host,
      port: this.#port,
      dns: https.dns,
      socket: { ...https.socket, secure: { ...https.socket.secure, ...this.#options.tls } },
      onError: () => {
        if (this.#client !== client) return;
        this.#state = "failed";
        this.#fail?.(new NetworkError(`${this.origin}: connection failed`));
      },
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
