import { NetworkError, type HttpsConnection, type HttpsConnector } from "../device/types";
import { decodeUtf8, encodeUtf8 } from "../bytes/bytes";
import { CodedError } from "../errors/errors";
import type { ConfigAnswer, StatusAnswer, StatusReport } from "./status";

/**
 * The terminal's side of the front-end protocol (JSON over HTTPS with a client certificate): authorize, complete,
 * read a purchase, read the routing table. One connection per front-end origin, opened ahead of time and kept warm.
 */

export type Application = "tunion" | "cityunion";

export interface AuthorizeRequest {
  terminalId: string;
  order: string;
  amount: number;
  keyIndex: number;
  transactionType: number;
  application: Application;
  /** Hex of the raw 30-byte file 0x15. */
  basicData: string;
  /** Hex of the raw 15-byte INITIALIZE FOR PURCHASE answer. */
  initResponse: string;
}

export interface Authorization {
  purchaseId: string;
  tsn: number;
  date: string;
  time: string;
  mac1: string;
  /** The MAC2 the card must answer, so the terminal approves without another round trip. */
  mac2: string;
}

export type Completion = { outcome: "debited"; mac2: string; tac: string } | { outcome: "not-debited" } | { outcome: "unknown" };

export interface CompletionAnswer {
  purchaseId: string;
  status: string;
}

export interface Route {
  cityCode: string;
  application: Application;
  level: number;
  url: string;
  keyIndex: number;
}

export interface RoutingTable {
  version: number | string;
  routes: Route[];
}

/** The front-end refused: a 4xx with a stable code (CARD_EXPIRED, REPLAY, ...). Nothing happened on its side. */
export class FrontendDeclineError extends CodedError {
  readonly status: number;
  readonly reason: string;
  constructor(status: number, reason: string, message: string) {
    super("FRONTEND_DECLINED", `front-end declined (${status} ${reason}): ${message}`);
    this.status = status;
    this.reason = reason;
  }
}

/** The front-end could not be reached or answered 5xx: the outcome on its side is unknown, retrying is safe. */
export class FrontendUnavailableError extends CodedError {
  constructor(message: string) {
    super("FRONTEND_UNAVAILABLE", message);
  }
}

/** The front-end answered something that is not the protocol. */
export class FrontendProtocolError extends CodedError {
  constructor(message: string) {
    super("FRONTEND_PROTOCOL", message);
  }
}

export interface FrontendClientOptions {
  connector: HttpsConnector;
  /** Deadline of an authorization round trip, ms: the card waits in the field meanwhile. */
  authorizeTimeout?: number;
  /** Deadline of other requests, ms. */
  requestTimeout?: number;
}

function originOf(url: string): string {
  const match = /^(https:\/\/[^/]+)/.exec(url);
  if (!match) throw new FrontendProtocolError(`not an https URL: ${url}`);
  return match[1]!;
}

const HEX8 = /^[0-9A-Fa-f]{8}$/;

const MONTHS = "JanFebMarAprMayJunJulAugSepOctNovDec";

/** An HTTP `Date` (the IMF-fixdate form, docs/telemetry.md) as epoch ms; undefined for anything else. */
export function parseHttpDate(text: string): number | undefined {
  const m = /^[A-Z][a-z]{2}, ([0-9]{2}) ([A-Z][a-z]{2}) ([0-9]{4}) ([0-9]{2}):([0-9]{2}):([0-9]{2}) GMT$/.exec(text);
  if (!m) return undefined;
  const month = MONTHS.indexOf(m[2]!);
  if (month < 0 || month % 3) return undefined;
  return Date.UTC(Number(m[3]), month / 3, Number(m[1]), Number(m[4]), Number(m[5]), Number(m[6]));
}

export class FrontendClient {
  readonly #connector: HttpsConnector;
  readonly #connections = new Map<string, HttpsConnection>();
  /** Status reports go on connections of their own: a report being sent never queues a tap's request behind it. */
  readonly #reportConnections = new Map<string, HttpsConnection>();
  readonly #authorizeTimeout: number;
  readonly #requestTimeout: number;

  constructor(options: FrontendClientOptions) {
    this.#connector = options.connector;
    this.#authorizeTimeout = options.authorizeTimeout ?? 3000;
    this.#requestTimeout = options.requestTimeout ?? 5000;
  }

  connection(url: string): HttpsConnection {
    const origin = originOf(url);
    let connection = this.#connections.get(origin);
    if (!connection) {
      connection = this.#connector.connect(origin);
      this.#connections.set(origin, connection);
    }
    return connection;
  }

  /** The front-end's clock from the `Date` header of the latest answer that had one, epoch ms (1 s resolution). */
  serverDate: number | undefined;

  /**
   * Opens the TLS connection to a front-end ahead of the tap that will need it, and keeps an open one in use: a
   * request on it now restarts the server's idle timer (75 s by default), which would otherwise close a connection
   * that only waits for taps, and the next tap would pay for a handshake ("cold route").
   */
  async warm(url: string, timeout = this.#requestTimeout): Promise<void> {
    const connection = this.connection(url);
    try {
      if (!connection.connected) return await connection.warm(timeout);
      const r = await connection.request({ method: "GET", path: "/v1/health", timeout });
      if (r.status >= 500) throw new FrontendUnavailableError(`${connection.origin} is not healthy (HTTP ${r.status})`);
    } catch (error) {
      throw error instanceof NetworkError ? new FrontendUnavailableError(error.message) : error;
    }
  }

  /** TLS handshakes made so far across every front-end. */
  get handshakes(): number {
    let n = 0;
    for (const c of this.#connections.values()) n += c.handshakes;
    return n;
  }

  async authorize(url: string, request: AuthorizeRequest): Promise<Authorization> {
    const body = await this.#call(url, "POST", "/v1/purchases", request, this.#authorizeTimeout);
    const a = body as Partial<Authorization>;
    if (typeof a.purchaseId !== "string" || !Number.isInteger(a.tsn) || typeof a.date !== "string" || !/^[0-9]{8}$/.test(a.date) ||
        typeof a.time !== "string" || !/^[0-9]{6}$/.test(a.time) || typeof a.mac1 !== "string" || !HEX8.test(a.mac1) ||
        typeof a.mac2 !== "string" || !HEX8.test(a.mac2)) {
      throw new FrontendProtocolError("authorization answer is missing fields");
    }
    return a as Authorization;
  }

  async complete(url: string, purchaseId: string, completion: Completion): Promise<CompletionAnswer> {
    const body = await this.#call(url, "POST", `/v1/purchases/${encodeURIComponent(purchaseId)}/completion`, completion, this.#requestTimeout);
    const c = body as Partial<CompletionAnswer>;
    if (typeof c.status !== "string") throw new FrontendProtocolError("completion answer has no status");
    return { purchaseId, status: c.status };
  }

  async routes(url: string): Promise<RoutingTable> {
    const body = await this.#call(url, "GET", "/v1/routes", undefined, this.#requestTimeout);
    const table = body as Partial<RoutingTable>;
    if (!table || !Array.isArray(table.routes)) throw new FrontendProtocolError("routing table has no routes");
    for (const r of table.routes) {
      if (!r || typeof r.cityCode !== "string" || (r.application !== "tunion" && r.application !== "cityunion") ||
          typeof r.url !== "string" || !Number.isInteger(r.keyIndex) || !Number.isInteger(r.level)) {
        throw new FrontendProtocolError("routing table has a malformed route");
      }
    }
    return table as RoutingTable;
  }

  /** The terminal's effective configuration (fetched with the routing table). */
  async config(url: string, terminalId: string): Promise<ConfigAnswer> {
    const body = await this.#call(url, "GET", `/v1/terminals/${terminalId}/config`, undefined, this.#requestTimeout);
    const c = body as Partial<ConfigAnswer>;
    if (!Number.isInteger(c.version) || (c.version as number) < 0 || !c.settings || typeof c.settings !== "object" || Array.isArray(c.settings)) {
      throw new FrontendProtocolError("configuration answer has no version or settings");
    }
    return { terminalId, version: c.version as number, settings: c.settings };
  }

  /** Sends a status report on the origin's report connection; the answer names the configuration version saved now. */
  async status(url: string, report: StatusReport): Promise<StatusAnswer> {
    const origin = originOf(url);
    let connection = this.#reportConnections.get(origin);
    if (!connection) {
      connection = this.#connector.connect(origin);
      this.#reportConnections.set(origin, connection);
    }
    const body = await this.#call(url, "POST", `/v1/terminals/${report.terminalId}/status`, report, this.#requestTimeout, connection) as Partial<StatusAnswer>;
    if (!Number.isInteger(body.configVersion) || (body.configVersion as number) < 0) throw new FrontendProtocolError("status answer has no configVersion");
    return { configVersion: body.configVersion as number };
  }

  /** One JSON request of the protocol, for the protocol's other parts (refunds.ts): the same errors as the calls above. */
  request(url: string, method: "GET" | "POST", path: string, payload?: unknown, timeout = this.#requestTimeout): Promise<unknown> {
    return this.#call(url, method, path, payload, timeout);
  }

  /** The deadline of an authorization round trip, ms (a refund's authorization waits with the card in the field, too). */
  get authorizeTimeout(): number {
    return this.#authorizeTimeout;
  }

  close(): void {
    for (const c of this.#connections.values()) c.close();
    this.#connections.clear();
    for (const c of this.#reportConnections.values()) c.close();
    this.#reportConnections.clear();
  }

  async #call(url: string, method: "GET" | "POST", path: string, payload: unknown, timeout: number, on?: HttpsConnection): Promise<unknown> {
    let response;
    try {
      response = await (on ?? this.connection(url)).request({
        method, path, timeout, body: payload === undefined ? undefined : encodeUtf8(JSON.stringify(payload)),
      });
    } catch (error) {
      if (error instanceof NetworkError) throw new FrontendUnavailableError(`${method} ${path}: ${error.message}`);
      throw error;
    }
    const date = response.date === undefined ? undefined : parseHttpDate(response.date);
    if (date !== undefined) this.serverDate = date;
    let body: unknown;
    try {
      body = response.body.length ? JSON.parse(decodeUtf8(response.body)) : undefined;
    } catch {
      if (response.status >= 500) throw new FrontendUnavailableError(`${method} ${path}: HTTP ${response.status}`);
      throw new FrontendProtocolError(`${method} ${path}: HTTP ${response.status} with a body that is not JSON`);
    }
    if (response.status >= 200 && response.status < 300) {
      // Every answer of the protocol is a JSON object: anything else (empty, null, a list) is not the front-end speaking.
      if (!body || typeof body !== "object" || Array.isArray(body)) throw new FrontendProtocolError(`${method} ${path}: HTTP ${response.status} without a JSON object`);
      return body;
    }
    if (response.status < 400) throw new FrontendProtocolError(`${method} ${path}: unexpected HTTP ${response.status}`);
    if (response.status >= 500) throw new FrontendUnavailableError(`${method} ${path}: HTTP ${response.status}`);
    const error = (body as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
    throw new FrontendDeclineError(response.status, typeof error?.code === "string" ? error.code : "UNKNOWN",
      typeof error?.message === "string" ? error.message : `HTTP ${response.status}`);
  }
}
