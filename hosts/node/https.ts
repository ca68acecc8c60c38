/**
 * The terminal's HTTPS on Node: one kept-alive mutual-TLS connection per front-end origin (node:https with a
 * one-socket agent), with the handshakes counted, in the HttpsConnection shape device code expects.
 */
import { Agent, request as httpsRequest } from "node:https";
import type { ConnectionOptions, TLSSocket } from "node:tls";
import { NetworkError, type HttpRequest, type HttpResponse, type HttpsConnection, type HttpsConnector } from "../../modules/device/types";

export interface NodeHttpsOptions {
  /** PEM: the terminal's certificate and key (CN = terminal ID), and the CA that signed the front-ends' certificates. */
  cert: string;
  key: string;
  ca: string;
  /** Offer only what Moddable's TLS speaks on the ESP32 (TLS 1.2, plain-RSA AES-CBC), to test that path on a PC. */
  esp32Ciphers?: boolean;
  /** Added one-way delay, ms, on each request and each answer: a WAN round trip for benchmarks on loopback. */
  latencyMs?: number;
}

export const ESP32_TLS: Pick<ConnectionOptions, "minVersion" | "maxVersion" | "ciphers"> = {
  minVersion: "TLSv1.2", maxVersion: "TLSv1.2", ciphers: "AES128-SHA256:AES256-SHA256:AES128-SHA:AES256-SHA",
};

class NodeHttpsConnection implements HttpsConnection {
  readonly origin: string;
  handshakes = 0;
  #open = 0;
  readonly #agent: Agent;
  readonly #latency: number;

  constructor(origin: string, options: NodeHttpsOptions) {
    this.origin = origin;
    this.#latency = options.latencyMs ?? 0;
    const connection = this;
    const tls: ConnectionOptions = { cert: options.cert, key: options.key, ca: options.ca, ...(options.esp32Ciphers ? ESP32_TLS : {}) };
    this.#agent = new Agent({ keepAlive: true, maxSockets: 1, maxFreeSockets: 1, ...tls });
    const create = this.#agent.createConnection.bind(this.#agent);
    // Count each new TLS connection; a kept-alive socket serves later requests without one.
    (this.#agent as unknown as { createConnection: typeof create }).createConnection = (opts, cb) => {
      const socket = create(opts, cb) as TLSSocket;
      connection.#open++;
      socket.once("secureConnect", () => connection.handshakes++);
      socket.once("close", () => connection.#open--);
      return socket;
    };
  }

  get connected(): boolean {
    return this.#open > 0;
  }

  async warm(timeout: number): Promise<void> {
    if (this.connected) return;
    const r = await this.request({ method: "GET", path: "/v1/health", timeout });
    if (r.status >= 500) throw new NetworkError(`${this.origin} is not healthy (HTTP ${r.status})`);
  }

  async request(request: HttpRequest): Promise<HttpResponse> {
    if (!this.#latency) return this.#request(request);
    await new Promise((r) => setTimeout(r, this.#latency));
    const response = await this.#request(request);
    await new Promise((r) => setTimeout(r, this.#latency));
    return response;
  }

  #request(request: HttpRequest): Promise<HttpResponse> {
    return new Promise((resolve, reject) => {
      const headers: Record<string, string> = { accept: "application/json" };
      if (request.body) {
        headers["content-type"] = "application/json";
        headers["content-length"] = String(request.body.length);
      }
      let settled = false;
      const fail = (message: string) => {
        if (settled) return;
        settled = true;
        reject(new NetworkError(`${request.method} ${this.origin}${request.path}: ${message}`));
      };
      const req = httpsRequest(`${this.origin}${request.path}`, { method: request.method, agent: this.#agent, headers }, (res) => {
        const chunks: Uint8Array[] = [];
        res.on("data", (c: Uint8Array) => chunks.push(c));
        res.on("error", (e) => fail(e.message));
        res.on("end", () => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          const length = chunks.reduce((n, c) => n + c.length, 0);
          const body = new Uint8Array(length);
          let offset = 0;
          for (const c of chunks) {
            body.set(c, offset);
            offset += c.length;
          }
          resolve({ status: res.statusCode ?? 0, body, ...(typeof res.headers.date === "string" ? { date: res.headers.date } : {}) });
        });
      });
      const timer = setTimeout(() => {
        fail(`no answer in ${request.timeout} ms`);
        req.destroy();
      }, request.timeout);
      req.on("error", (e) => {
        clearTimeout(timer);
        fail(e.message);
      });
      req.end(request.body);
    });
  }

  close(): void {
    this.#agent.destroy();
  }
}

export class NodeHttpsConnector implements HttpsConnector {
  readonly #options: NodeHttpsOptions;
  constructor(options: NodeHttpsOptions) {
    this.#options = options;
  }
  connect(origin: string): HttpsConnection {
    return new NodeHttpsConnection(origin, this.#options);
  }
}
