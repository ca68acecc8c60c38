/**
 * Terminal certificates on the terminals' listener (docs/certificates.md):
 * - every TLS connection is filed under its certificate's CN and serial, and the certificate (serial, notAfter) is
 *   recorded for the fleet page;
 * - a revoked terminal (or one revoked certificate of it) is refused with 403 TERMINAL_REVOKED, and its open
 *   connections are closed: each process polls the revocation version (one indexed MAX) every 250 ms, so a revocation
 *   made by any process, worker or the CLI reaches every worker within a poll, on both engines;
 * - `tls.crl` is passed to the TLS context and reloaded when the file changes (setSecureContext); connections open
 *   with a certificate a new CRL lists are closed too.
 */
import { readFileSync, unwatchFile, watchFile } from "node:fs";
import type { SecureContextOptions, Server as TlsServer, TLSSocket } from "node:tls";
import type { FastifyInstance } from "fastify";
import { ConfigError } from "../config";
import { FrontendError } from "../errors";
import type { Store } from "../storage/store";
import { revokedSerials } from "./crl";
import { normalSerial, type Revocation } from "./store";

const TERMINAL_CN = /^[0-9A-F]{12}$/;
/** How often each process asks for the revocation version. */
export const REVOCATION_POLL_MS = 250;
/** A certificate already recorded by this process is recorded again (its last_seen) after this long. */
const NOTE_EVERY_MS = 10 * 60_000;

interface Peer {
  terminalId: string;
  serial: string;
}

export interface CertificateOptions {
  store: Store;
  /** The TLS options the listener started with; a CRL reload makes a new context from them. */
  tls: SecureContextOptions;
  /** The CRL file (tls.crl), if any. */
  crlFile?: string;
  now: () => number;
  log: (event: object, message: string) => void;
}

export function readCrl(file: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch (e) {
    throw new ConfigError(`cannot read tls.crl from ${file}: ${(e as Error).message}`);
  }
}

export class TerminalCertificates {
  readonly #o: CertificateOptions;
  readonly #app: FastifyInstance;
  readonly #peers = new WeakMap<TLSSocket, Peer | null>();
  readonly #sockets = new Map<string, Set<TLSSocket>>();
  /** Revoked terminals: null = every certificate, else the revoked serials. */
  readonly #revoked = new Map<string, Set<string> | null>();
  #crlSerials = new Set<string>();
  readonly #noted = new Map<string, number>();
  #version = 0;
  #timer: NodeJS.Timeout | undefined;
  #polling = false;

  constructor(app: FastifyInstance, options: CertificateOptions) {
    this.#app = app;
    this.#o = options;
    if (options.crlFile) this.#crlSerials = revokedSerials(readCrl(options.crlFile));
    app.server.on("secureConnection", (socket: TLSSocket) => this.#connected(socket));
    app.addHook("onRequest", async (request, reply) => {
      const peer = this.#peer(request.raw.socket as TLSSocket);
      if (peer && this.#isRevoked(peer)) {
        reply.header("connection", "close");
        throw new FrontendError("TERMINAL_REVOKED", 403, `the certificate of terminal ${peer.terminalId} is revoked`);
      }
    });
  }

  /** Loads every revocation so far (a failure stops the start: no revoked terminal gets in), then polls for new ones. */
  async start(): Promise<void> {
    await this.#load();
    this.#timer = setInterval(() => { void this.poll(); }, REVOCATION_POLL_MS);
    this.#timer.unref();
    if (this.#o.crlFile) watchFile(this.#o.crlFile, { interval: REVOCATION_POLL_MS, persistent: false }, this.#crlChanged);
  }

  close(): void {
    clearInterval(this.#timer);
    if (this.#o.crlFile) unwatchFile(this.#o.crlFile, this.#crlChanged);
  }

  /** Reads revocations newer than the last seen, closing the connections they revoke. */
  async poll(): Promise<void> {
    if (this.#polling) return;
    this.#polling = true;
    try {
      await this.#load();
    } catch (e) {
      // The next poll tries again; until then the revocations known so far keep being enforced.
      this.#o.log({ err: (e as Error).message }, "revocation poll failed");
    } finally {
      this.#polling = false;
    }
  }

  async #load(): Promise<void> {
    const version = await this.#o.store.terminals.revocationVersion();
    if (version <= this.#version) return;
    for (const r of await this.#o.store.terminals.revocationsSince(this.#version)) this.#apply(r);
  }

  #apply(r: Revocation): void {
    this.#version = Math.max(this.#version, r.id);
    const known = this.#revoked.get(r.terminalId);
    if (r.serial === null) this.#revoked.set(r.terminalId, null);
    else if (known !== null) this.#revoked.set(r.terminalId, new Set([...known ?? [], r.serial]));
    let closed = 0;
    for (const socket of this.#sockets.get(r.terminalId) ?? []) {
      const peer = this.#peers.get(socket);
      if (peer && this.#isRevoked(peer)) {
        socket.destroy();
        closed++;
      }
    }
    this.#o.log({ terminalId: r.terminalId, serial: r.serial ?? "all", version: r.id, closed }, "terminal certificate revoked");
  }

  #isRevoked(peer: Peer): boolean {
    if (this.#crlSerials.has(peer.serial)) return true;
    const revoked = this.#revoked.get(peer.terminalId);
    return revoked === null || (revoked !== undefined && revoked.has(peer.serial));
  }

  #peer(socket: TLSSocket): Peer | null {
    let peer = this.#peers.get(socket);
    if (peer !== undefined) return peer;
    const cert = socket.getPeerCertificate?.();
    const cn = typeof cert?.subject?.CN === "string" ? cert.subject.CN.toUpperCase() : "";
    peer = TERMINAL_CN.test(cn) && cert.serialNumber ? { terminalId: cn, serial: normalSerial(cert.serialNumber) } : null;
    this.#peers.set(socket, peer);
    return peer;
  }

  #connected(socket: TLSSocket): void {
    const peer = this.#peer(socket);
    if (!peer) return;
    let set = this.#sockets.get(peer.terminalId);
    if (!set) this.#sockets.set(peer.terminalId, set = new Set());
    set.add(socket);
    socket.once("close", () => {
      set.delete(socket);
      if (!set.size && this.#sockets.get(peer.terminalId) === set) this.#sockets.delete(peer.terminalId);
    });
    this.#note(peer, socket);
  }

  /** Records the certificate (serial, notAfter) once per NOTE_EVERY_MS in this process. */
  #note(peer: Peer, socket: TLSSocket): void {
    const key = `${peer.terminalId}/${peer.serial}`;
    const now = this.#o.now();
    if (now - (this.#noted.get(key) ?? -Infinity) < NOTE_EVERY_MS) return;
    if (this.#noted.size > 100_000) this.#noted.clear();
    this.#noted.set(key, now);
    const notAfter = Date.parse(socket.getPeerCertificate().valid_to);
    if (!Number.isFinite(notAfter)) return;
    this.#o.store.terminals.noteCertificate(peer.terminalId, peer.serial, notAfter, now).catch((e: Error) => {
      this.#noted.delete(key);
      this.#o.log({ terminalId: peer.terminalId, err: e.message }, "certificate not recorded");
    });
  }

  readonly #crlChanged = () => {
    let pem: string;
    let serials: Set<string>;
    try {
      pem = readCrl(this.#o.crlFile!);
      serials = revokedSerials(pem);
      // The new context first: should it fail (a broken file), the old CRL stays in force.
      (this.#app.server as unknown as TlsServer).setSecureContext({ ...this.#o.tls, crl: pem });
    } catch (e) {
      this.#o.log({ file: this.#o.crlFile, err: (e as Error).message }, "CRL not reloaded; the previous one stays in force");
      return;
    }
    this.#crlSerials = serials;
    let closed = 0;
    for (const set of this.#sockets.values()) {
      for (const socket of set) {
        const peer = this.#peers.get(socket);
        if (peer && serials.has(peer.serial)) {
          socket.destroy();
          closed++;
        }
      }
    }
    this.#o.log({ file: this.#o.crlFile, revoked: serials.size, closed }, "CRL reloaded");
  };
}
