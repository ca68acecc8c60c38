/**
 * The HTTP processes' side of the key service: KeyServiceClient is a KeyStore whose every operation is one request over
 * the key service's socket (no key material in this process), and KeyServiceSupervisor starts the key service
 * process, waits until it serves, and starts it again when it dies.
 *
 * A key service that is down, restarting or too slow gives KEY_SERVICE_UNAVAILABLE (503): the terminal retries, and
 * nothing is decided on a verdict that was not computed.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { FrontendError } from "../errors";
import type { CardKeyFactors, KeyStore, LoadSessionInput, MasterKeyRef, PurchaseSessionInput } from "./keystore";
import type { Pkcs11Description } from "./pkcs11";
import type { Pkcs11Settings } from "./pkcs11-settings";
import { KEY_SERVICE_SETTINGS_ENV, decodeLine, encodeLine, lineReader, type KeyServiceAnswer, type KeyServiceOp, type KeyServicePush } from "./protocol";

const REQUEST_TIMEOUT_MS = 5000;
const unavailable = (why: string) => new FrontendError("KEY_SERVICE_UNAVAILABLE", 503, `key service unavailable: ${why}`);
const refKey = (r: MasterKeyRef) => `${r.keyIndex}:${r.keyVersion}:${r.algorithm}`;

interface Pending {
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

export class KeyServiceClient implements KeyStore {
  readonly socketPath: string;
  #socket: Socket | undefined;
  #connected = false;
  #closed = false;
  #next = 0;
  #retry: NodeJS.Timeout | undefined;
  readonly #pending = new Map<number, Pending>();
  #description: Pkcs11Description | undefined;
  #outbox: string[] = [];
  readonly #flush = () => {
    const lines = this.#outbox.join("");
    this.#outbox = [];
    if (this.#connected) this.#socket?.write(lines);
  };
  #refs = new Map<string, boolean>();
  #ready: Promise<void>;
  #markReady!: () => void;

  private constructor(socketPath: string) {
    this.socketPath = socketPath;
    this.#ready = new Promise((resolve) => { this.#markReady = resolve; });
    this.#connect();
  }

  /** Connects and waits for the key service's description (what has() and describe() answer from). */
  static async open(socketPath: string, timeoutMs = 60_000): Promise<KeyServiceClient> {
    const client = new KeyServiceClient(socketPath);
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([client.#ready, new Promise((_r, reject) => { timer = setTimeout(() => reject(unavailable(`no answer on ${socketPath} in ${timeoutMs} ms`)), timeoutMs); })]);
    } catch (e) {
      client.close();
      throw e;
    } finally {
      clearTimeout(timer);
    }
    return client;
  }

  #connect(): void {
    if (this.#closed) return;
    const socket = connect(this.socketPath);
    this.#socket = socket;
    socket.on("connect", () => {
      this.#connected = true;
      this.#call<Pkcs11Description>("describe", []).then((d) => { this.#learn(d); this.#markReady(); }, () => socket.destroy());
    });
    socket.on("data", lineReader((line) => {
      const m = decodeLine<KeyServiceAnswer & Partial<KeyServicePush>>(line);
      if (m.event === "keys" && m.description) {
        this.#learn(m.description);
        return;
      }
      const p = this.#pending.get(m.id);
      if (!p) return;
      this.#pending.delete(m.id);
      clearTimeout(p.timer);
      if (m.error) p.reject(new FrontendError(m.error.code, m.error.statusCode, m.error.message));
      else p.resolve(m.value);
    }));
    socket.on("error", () => {});
    socket.on("close", () => {
      this.#connected = false;
      for (const [id, p] of this.#pending) {
        clearTimeout(p.timer);
        this.#pending.delete(id);
        p.reject(unavailable("connection lost (the request's outcome was not computed)"));
      }
      if (!this.#closed) this.#retry = setTimeout(() => this.#connect(), 100);
    });
  }

  #learn(d: Pkcs11Description): void {
    this.#description = d;
    this.#refs = new Map(d.keys.map((k) => [refKey(k), k.load]));
  }

  #call<T>(op: KeyServiceOp, args: unknown[]): Promise<T> {
    if (!this.#connected || !this.#socket) return Promise.reject(unavailable("not connected (restarting)"));
    return new Promise<T>((resolve, reject) => {
      const id = ++this.#next;
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(unavailable(`no answer to ${op} in ${REQUEST_TIMEOUT_MS} ms`));
      }, REQUEST_TIMEOUT_MS);
      this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
      // The requests of one event-loop turn go in one write (one system call and one wake-up of the key service).
      if (!this.#outbox.length) setImmediate(this.#flush);
      this.#outbox.push(encodeLine({ id, op, args }));
    });
  }

  /** What the key service last said it serves: token, SM4 policy, refs and check values (never keys). */
  details(): Pkcs11Description | undefined {
    return this.#description;
  }

  has(ref: MasterKeyRef): boolean {
    return this.#refs.has(refKey(ref));
  }

  hasLoadKey(ref: MasterKeyRef): boolean {
    return this.#refs.get(refKey(ref)) === true;
  }

  describe(): MasterKeyRef[] {
    return (this.#description?.keys ?? []).map((k) => ({ keyIndex: k.keyIndex, keyVersion: k.keyVersion, algorithm: k.algorithm }));
  }

  authorize(ref: MasterKeyRef, card: CardKeyFactors, input: PurchaseSessionInput): Promise<{ mac1: Uint8Array; mac2: Uint8Array }> {
    return this.#call("authorize", [ref, card, input]);
  }

  verify(ref: MasterKeyRef, card: CardKeyFactors, input: PurchaseSessionInput, proof: { mac2: Uint8Array; tac: Uint8Array }): Promise<{ mac2Valid: boolean; tacValid: boolean }> {
    return this.#call("verify", [ref, card, input, proof]);
  }

  authorizeLoad(ref: MasterKeyRef, card: CardKeyFactors, input: LoadSessionInput, mac1: Uint8Array): Promise<{ mac1Valid: boolean; mac2?: Uint8Array }> {
    return this.#call("authorizeLoad", [ref, card, input, mac1]);
  }

  verifyLoad(ref: MasterKeyRef, card: CardKeyFactors, input: LoadSessionInput, tac: Uint8Array): Promise<boolean> {
    return this.#call("verifyLoad", [ref, card, input, tac]);
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#retry);
    this.#socket?.destroy();
  }
}

const SERVICE_MAIN = path.join(import.meta.dirname, "service.ts");
const REPO_ROOT = path.resolve(import.meta.dirname, "../../..");

export interface SupervisorEvents {
  /** The key service serves (at start and after every restart), with what it serves. */
  ready?(pid: number, description: Pkcs11Description): void;
  /** It died; a new one is starting. */
  died?(pid: number, code: number | null, signal: string | null, stderr: string): void;
}

/** Starts the key service process and keeps one running until close(). */
export class KeyServiceSupervisor {
  readonly socketPath: string;
  readonly #dir: string;
  readonly #settings: Pkcs11Settings;
  readonly #events: SupervisorEvents;
  #child: ChildProcess | undefined;
  #stopping = false;
  #restarts = 0;
  #description: Pkcs11Description | undefined;

  private constructor(settings: Pkcs11Settings, events: SupervisorEvents) {
    this.#settings = settings;
    this.#events = events;
    // A directory only this user can enter, for a socket only this user can open.
    this.#dir = mkdtempSync(path.join(tmpdir(), "frontend-keys-"));
    this.socketPath = path.join(this.#dir, "keys.sock");
  }

  /** Starts the key service and waits until it serves; rejects (with its error) when it cannot start. */
  static async start(settings: Pkcs11Settings, events: SupervisorEvents = {}): Promise<KeyServiceSupervisor> {
    const s = new KeyServiceSupervisor(settings, events);
    try {
      await s.#spawn();
    } catch (e) {
      s.#stopping = true;
      rmSync(s.#dir, { recursive: true, force: true });
      throw e;
    }
    return s;
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  get description(): Pkcs11Description | undefined {
    return this.#description;
  }

  get restarts(): number {
    return this.#restarts;
  }

  #spawn(): Promise<void> {
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, ["--import", "tsx", SERVICE_MAIN, this.socketPath], {
        cwd: REPO_ROOT, stdio: ["pipe", "pipe", "pipe"],
        env: { ...process.env, [KEY_SERVICE_SETTINGS_ENV]: JSON.stringify(this.#settings) },
      });
      this.#child = child;
      let stderr = "";
      let ready = false;
      child.stderr!.on("data", (d: Buffer) => { stderr = (stderr + d.toString()).slice(-4000); });
      child.stdout!.on("data", lineReader((line) => {
        if (ready) return;
        const m = decodeLine<{ event?: string; pid: number } & Pkcs11Description>(line);
        if (m.event !== "key-service-ready") return;
        ready = true;
        const { event: _e, pid, ...description } = m;
        this.#description = description;
        this.#events.ready?.(pid, description);
        resolve();
      }));
      child.on("exit", (code, signal) => {
        if (!ready) reject(new Error(`key service did not start (exit ${code ?? signal}): ${stderr.trim()}`));
        if (this.#stopping || !ready) return;
        this.#events.died?.(child.pid ?? 0, code, signal, stderr.trim());
        this.#restarts++;
        const again = (delay: number) => setTimeout(() => {
          if (this.#stopping) return;
          this.#spawn().catch(() => again(Math.min(delay * 2, 5000)));
        }, delay).unref();
        again(50);
      });
    });
  }

  async close(): Promise<void> {
    this.#stopping = true;
    const child = this.#child;
    if (child && child.exitCode === null && child.signalCode === null) {
      await new Promise<void>((resolve) => {
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
        setTimeout(() => child.kill("SIGKILL"), 5000).unref();
      });
    }
    rmSync(this.#dir, { recursive: true, force: true });
  }
}
