/**
 * The terminals' listening socket of --workers, owned by the primary for the front-end's whole life.
 *
 * With node:cluster's own sharing, the primary closes the listening socket as soon as no worker is listening on it:
 * when the last live worker dies before its replacement has started (two quick deaths, or one worker), connections
 * are refused (ECONNREFUSED) until a replacement listens, and the connections already accepted and not yet handed on
 * are dropped. A terminal sees an outage. Here the primary accepts every connection itself, paused (it never reads a
 * byte), and hands it to a ready worker over the IPC channel; while no worker is ready it keeps the connection
 * waiting, up to `maxWaiting` of them and each for at most `waitMs`, and hands it on when one is.
 */
import type { Worker } from "node:cluster";
import { createServer, type Server, type Socket } from "node:net";

/** The message a worker gets with each handed connection, and which listener it belongs to. */
export interface HandedConnection {
  kind: "connection";
  listener: "terminal" | "operator";
}

export class ConnectionHandoff {
  readonly #server: Server;
  readonly #ready: Worker[] = [];
  readonly #waiting = new Map<Socket, NodeJS.Timeout>();
  #next = 0;

  constructor(private readonly listener: HandedConnection["listener"], private readonly maxWaiting: number, private readonly waitMs: number) {
    this.#server = createServer({ pauseOnConnect: true }, (socket) => this.#accepted(socket));
  }

  /** Listens; resolves with the port (an ephemeral one for port 0). */
  listen(host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      this.#server.once("error", reject);
      this.#server.listen({ host, port }, () => {
        this.#server.off("error", reject);
        resolve((this.#server.address() as { port: number }).port);
      });
    });
  }

  /** A worker that can take connections now; the ones waiting go to it. */
  ready(worker: Worker): void {
    if (!this.#ready.includes(worker)) this.#ready.push(worker);
    const waiting = [...this.#waiting];
    this.#waiting.clear();
    for (const [socket, timer] of waiting) {
      clearTimeout(timer);
      if (!socket.destroyed) this.#handOn(socket);
    }
  }

  /** A worker that died or is stopping: no more connections to it. */
  gone(worker: Worker): void {
    const i = this.#ready.indexOf(worker);
    if (i >= 0) this.#ready.splice(i, 1);
  }

  get waiting(): number {
    return this.#waiting.size;
  }

  close(): Promise<void> {
    for (const [socket, timer] of this.#waiting) {
      clearTimeout(timer);
      socket.destroy();
    }
    this.#waiting.clear();
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }

  #accepted(socket: Socket): void {
    socket.on("error", () => socket.destroy());
    if (this.#ready.length) return this.#handOn(socket);
    if (this.#waiting.size >= this.maxWaiting) return void socket.destroy();
    this.#waiting.set(socket, setTimeout(() => {
      this.#waiting.delete(socket);
      socket.destroy();
    }, this.waitMs));
    socket.once("close", () => {
      const timer = this.#waiting.get(socket);
      if (timer) clearTimeout(timer);
      this.#waiting.delete(socket);
    });
  }

  /** Round robin over the ready workers; a worker whose channel is gone is skipped (and forgotten). */
  #handOn(socket: Socket): void {
    while (this.#ready.length) {
      const worker = this.#ready[this.#next++ % this.#ready.length]!;
      if (!worker.isConnected()) {
        this.gone(worker);
        continue;
      }
      const message: HandedConnection = { kind: "connection", listener: this.listener };
      // keepOpen false: once sent, the primary's copy is closed and the connection lives in the worker only. A send
      // that fails (the worker died meanwhile) loses this connection; the terminal sees a reset and retries.
      worker.send(message, socket, { keepOpen: false }, (error) => { if (error) socket.destroy(); });
      return;
    }
    this.#accepted(socket);
  }
}

/** The worker's side: every connection the primary hands over goes to its listener's `accept`. */
export function takeHandedConnections(accept: { [L in HandedConnection["listener"]]: (socket: Socket) => void }): void {
  process.on("message", (message: HandedConnection | undefined, socket?: Socket) => {
    if (message?.kind === "connection" && socket) accept[message.listener](socket);
  });
}
