/**
 * A host-side client of the front-end protocol over mutual TLS with keep-alive (node:https): for the simulation, tests
 * and tools. The terminal's own client is device code (modules/frontend-client); this one is its reference on the host.
 */
import { Agent, request as httpsRequest } from "node:https";
import type { SecureVersion } from "node:tls";
import type { AuthorizeAnswer, AuthorizeRequest, CompletionAnswer, CompletionRequest, PurchaseView } from "../../frontend/purchases/service";
import type { Route } from "../../frontend/config";
import { CodedError } from "../../../modules/errors/errors";

export interface ClientTls {
  /** PEM texts: the terminal's certificate and key, and the CA that signed the server's certificate. */
  cert?: string;
  key?: string;
  ca: string;
  minVersion?: SecureVersion;
  maxVersion?: SecureVersion;
  ciphers?: string;
}

/** The front-end's answer to a refused request: its HTTP status and the error code from its body. */
export class FrontendHttpError extends CodedError {
  readonly status: number;
  readonly body: unknown;
  constructor(status: number, code: string, message: string, body: unknown) {
    super(code, `${status} ${code}: ${message}`);
    this.status = status;
    this.body = body;
  }
}

export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  /** The body parsed as JSON, or undefined when it is not JSON. */
  json: unknown;
}

export class FrontendClient {
  readonly baseUrl: string;
  readonly agent: Agent;
  readonly #timeoutMs: number;

  constructor(baseUrl: string, tls: ClientTls, options: { timeoutMs?: number; maxSockets?: number } = {}) {
    this.baseUrl = baseUrl.replace(/\/$/, "");
    this.#timeoutMs = options.timeoutMs ?? 10_000;
    this.agent = new Agent({
      keepAlive: true, maxSockets: options.maxSockets ?? 16,
      cert: tls.cert, key: tls.key, ca: tls.ca, minVersion: tls.minVersion, maxVersion: tls.maxVersion, ciphers: tls.ciphers,
    });
  }

  /** One request; any HTTP status resolves. Body: an object (sent as JSON), a string or bytes (sent as they are). */
  raw(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<RawResponse> {
    let payload: string | Uint8Array | undefined;
    const h: Record<string, string> = { accept: "application/json", ...headers };
    if (body !== undefined) {
      payload = typeof body === "string" || body instanceof Uint8Array ? body : JSON.stringify(body);
      h["content-type"] ??= "application/json";
      h["content-length"] ??= String(Buffer.byteLength(payload));
    }
    return new Promise((resolve, reject) => {
      const req = httpsRequest(`${this.baseUrl}${path}`, { method, agent: this.agent, headers: h, timeout: this.#timeoutMs }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("error", reject);
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          let json: unknown;
          try {
            json = text ? JSON.parse(text) : undefined;
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
        });
      });
      req.on("timeout", () => req.destroy(new Error(`no answer from ${this.baseUrl} in ${this.#timeoutMs} ms`)));
      req.on("error", reject);
      req.end(payload);
    });
  }

  async #call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const r = await this.raw(method, path, body);
    if (r.status >= 200 && r.status < 300) return r.json as T;
    const error = (r.json as { error?: { code?: string; message?: string } } | undefined)?.error;
    throw new FrontendHttpError(r.status, error?.code ?? "HTTP", error?.message ?? r.text, r.json);
  }

  authorize(request: AuthorizeRequest): Promise<AuthorizeAnswer> {
    return this.#call("POST", "/v1/purchases", request);
  }

  complete(purchaseId: string, completion: CompletionRequest): Promise<CompletionAnswer> {
    return this.#call("POST", `/v1/purchases/${encodeURIComponent(purchaseId)}/completion`, completion);
  }

  purchase(purchaseId: string): Promise<PurchaseView> {
    return this.#call("GET", `/v1/purchases/${encodeURIComponent(purchaseId)}`);
  }

  routes(): Promise<{ version: number; routes: Route[] }> {
    return this.#call("GET", "/v1/routes");
  }

  health(): Promise<Record<string, unknown>> {
    return this.#call("GET", "/v1/health");
  }

  async settlement(businessDay: string, format: "jsonl" | "csv" = "jsonl"): Promise<string> {
    const r = await this.raw("GET", `/v1/settlement/${businessDay}?format=${format}`);
    if (r.status !== 200) throw new FrontendHttpError(r.status, (r.json as { error?: { code?: string } })?.error?.code ?? "HTTP", r.text, r.json);
    return r.text;
  }

  close(): void {
    this.agent.destroy();
  }
}
