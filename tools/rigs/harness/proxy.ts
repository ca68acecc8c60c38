/**
 * A fault proxy between a terminal and a front-end, for network fault injection. It terminates the terminal's TLS
 * (with the front-end's server certificate and the same client-certificate check) and forwards each HTTP exchange to
 * the front-end over mutual TLS with the terminal's own certificate, so the front-end sees the same identity. Because
 * it sees whole requests, it can break exactly the n-th exchange: before the request reaches the server, or after
 * the server answered and before the answer reaches the terminal, by a clean close or a TCP reset.
 */
import { Agent, createServer, request as httpsRequest, type Server } from "node:https";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Socket } from "node:net";
import type { TLSSocket } from "node:tls";

export type ProxyFault = { phase: "before" | "after"; how: "close" | "reset" };

export interface ProxyExchange {
  n: number;
  method: string;
  path: string;
  status?: number;
  fault?: ProxyFault;
}

export interface FaultProxyOptions {
  /** The front-end, e.g. https://127.0.0.1:8443. */
  upstream: string;
  /** The front-end's server certificate and key (the proxy answers as the front-end), and the CA of both sides. */
  serverCert: string;
  serverKey: string;
  ca: string;
  /** Client certificates by CN: the proxy connects upstream as the terminal that connected to it. */
  clients: { [commonName: string]: { cert: string; key: string } };
  port?: number;
}

export class FaultProxy {
  readonly exchanges: ProxyExchange[] = [];
  /** Decides the fate of each exchange (1-based count over the proxy's life); undefined lets it through. */
  plan: ((n: number, method: string, path: string) => ProxyFault | undefined) | undefined;
  /**
   * Awaited before a request goes to the front-end ("request") and before its answer goes back ("answer"): a test can
   * kill and restart the front-end at exactly that moment.
   */
  intercept: ((n: number, method: string, path: string, phase: "request" | "answer") => Promise<void> | void) | undefined;
  /** Rewrites a request body on its way to the front-end (a man in the middle changing, say, the amount). */
  rewrite: ((n: number, method: string, path: string, body: Buffer) => Buffer) | undefined;
  readonly #options: FaultProxyOptions;
  readonly #agents = new Map<string, Agent>();
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  /** The TCP sockets under the TLS ones, by client port: a reset has to go to the TCP socket. */
  readonly #tcp = new Map<number, Socket>();
  #port = 0;

  private constructor(options: FaultProxyOptions) {
    this.#options = options;
    this.#server = createServer({ cert: options.serverCert, key: options.serverKey, ca: options.ca, requestCert: true, rejectUnauthorized: true },
      (req, res) => this.#exchange(req, res));
    this.#server.on("connection", (raw: Socket) => {
      const port = raw.remotePort!;
      this.#tcp.set(port, raw);
      raw.on("close", () => {
        if (this.#tcp.get(port) === raw) this.#tcp.delete(port);
      });
    });
    this.#server.on("secureConnection", (socket: TLSSocket) => {
      this.#sockets.add(socket);
      socket.on("close", () => this.#sockets.delete(socket));
    });
  }

  static async start(options: FaultProxyOptions): Promise<FaultProxy> {
    const proxy = new FaultProxy(options);
    await new Promise<void>((resolve, reject) => {
      proxy.#server.once("error", reject);
      proxy.#server.listen(options.port ?? 0, "127.0.0.1", () => resolve());
    });
    proxy.#port = (proxy.#server.address() as { port: number }).port;
    return proxy;
  }

  get url(): string {
    return `https://127.0.0.1:${this.#port}`;
  }

  /** Breaks every open connection at once, as a NAT or a Wi-Fi drop does. */
  dropAll(): void {
    for (const s of this.#sockets) s.destroy();
  }

  #agent(cn: string): Agent {
    let agent = this.#agents.get(cn);
    if (!agent) {
      const id = this.#options.clients[cn];
      if (!id) throw new Error(`the proxy has no client certificate for ${cn}`);
      agent = new Agent({ keepAlive: true, maxSockets: 4, cert: id.cert, key: id.key, ca: this.#options.ca });
      this.#agents.set(cn, agent);
    }
    return agent;
  }

  #exchange(req: IncomingMessage, res: ServerResponse): void {
    const n = this.exchanges.length + 1;
    const record: ProxyExchange = { n, method: req.method ?? "GET", path: req.url ?? "/" };
    this.exchanges.push(record);
    const fault = this.plan?.(n, record.method, record.path);
    if (fault) record.fault = fault;
    const socket = req.socket;
    const cut = () => {
      const tcp = this.#tcp.get(socket.remotePort!);
      if (fault!.how === "reset" && tcp) tcp.resetAndDestroy();
      else socket.destroy();
    };
    if (fault?.phase === "before") {
      cut();
      return;
    }
    const cn = (socket as TLSSocket).getPeerCertificate().subject?.CN;
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", async () => {
      await this.intercept?.(n, record.method, record.path, "request");
      let payload: Buffer = Buffer.concat(chunks);
      if (this.rewrite) payload = this.rewrite(n, record.method, record.path, payload);
      const headers = { ...req.headers };
      delete headers.host;
      delete headers.connection;
      if (payload.length || headers["content-length"] !== undefined) headers["content-length"] = String(payload.length);
      const up = httpsRequest(`${this.#options.upstream}${record.path}`, { method: record.method, headers, agent: this.#agent(String(cn)) }, (answer) => {
        const body: Buffer[] = [];
        answer.on("data", (c: Buffer) => body.push(c));
        answer.on("end", async () => {
          record.status = answer.statusCode;
          await this.intercept?.(n, record.method, record.path, "answer");
          // The server has done its work (journalled, answered); the terminal never hears of it.
          if (fault?.phase === "after") {
            cut();
            return;
          }
          const h = { ...answer.headers };
          delete h.connection;
          delete h["keep-alive"];
          res.writeHead(answer.statusCode ?? 502, h);
          res.end(Buffer.concat(body));
        });
      });
      up.on("error", () => socket.destroy());
      up.end(payload);
    });
  }

  async close(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    for (const a of this.#agents.values()) a.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}
