import { CodedError } from "../errors/errors";

/**
 * The shape of the host a device module runs on: the parts of Moddable's ECMA-419 `device` provider that the
 * terminal uses, written down once so that hosts/esp32 (Moddable's own classes) and hosts/node (serialport, node:https,
 * files) can supply the same thing. Types and one error class: every layer may import it.
 */

/** Timers as Moddable's `Timer.set` / `Timer.clear`, plus a millisecond clock (`Time.ticks`). */
export interface Timers {
  set(callback: () => void, ms: number): unknown;
  /** A repeating timer, one handle for its whole life (`Timer.repeat`); hosts without one leave it out. */
  repeat?(callback: () => void, ms: number): unknown;
  clear(handle: unknown): void;
  now(): number;
}

/** An open serial line in the ECMA-419 IO class pattern with `format: "buffer"`. */
export interface SerialPort {
  /** Every byte available now, or undefined when there are none. */
  read(): ArrayBuffer | undefined;
  /** Queues bytes; throws when the output buffer cannot take all of them. */
  write(data: ArrayBuffer | Uint8Array): void;
  close(): void;
}

export interface SerialOptions {
  baud: number;
  port?: number;
  receive?: number;
  transmit?: number;
  /** Hosts that name serial lines by path (Node, Moddable's lin/mac) take it here. */
  path?: string;
  format?: "buffer";
  onReadable?: (this: SerialPort, count: number) => void;
  onWritable?: (this: SerialPort, count: number) => void;
  onError?: (this: SerialPort, error: Error) => void;
}

export type SerialClass = new (options: SerialOptions) => SerialPort;

/** How device code is handed a serial line: the class and its options, as `device.Serial.default` is. */
export interface SerialSpec extends Partial<SerialOptions> {
  io: SerialClass;
  /** Other rates this host's UART can be reopened at (the PN532 driver raises the line to one); absent: none. */
  rates?: readonly number[];
}

/** One HTTP exchange over a kept-alive TLS connection to a front-end. */
export interface HttpRequest {
  method: "GET" | "POST";
  path: string;
  /** JSON body bytes; the host adds content-type and content-length. */
  body?: Uint8Array;
  /** Whole exchange deadline, ms. */
  timeout: number;
}

export interface HttpResponse {
  status: number;
  body: Uint8Array;
  /** The answer's `Date` header, where the host hands headers on (the terminal compares its clock with it). */
  date?: string;
}

/**
 * A mutual-TLS HTTPS connection to one front-end origin, kept open between requests (keep-alive) so a tap never
 * pays for a handshake. Requests queue on it one at a time, as Moddable's HTTP client does.
 */
export interface HttpsConnection {
  readonly origin: string;
  /** TLS handshakes made so far on this origin (the benchmark counts those on the tap path). */
  readonly handshakes: number;
  /** True while a TLS connection is open and idle or busy. */
  readonly connected: boolean;
  /** Opens the TLS connection now if none is open, so the next request does not wait for a handshake. */
  warm(timeout: number): Promise<void>;
  request(request: HttpRequest): Promise<HttpResponse>;
  close(): void;
}

/** Opens connections by origin (`https://host:port`); the host holds the client certificate, key and CA. */
export interface HttpsConnector {
  connect(origin: string): HttpsConnection;
}

/** A network failure below HTTP: refused, reset, timed out, TLS failed. Hosts throw it from `request` and `warm`. */
export class NetworkError extends CodedError {
  constructor(message: string) {
    super("NETWORK", message);
  }
}

/** Wall-clock time for the terminal's own checks (card validity dates); the front-end makes the transaction time. */
export interface Clock {
  /** Milliseconds since 1970-01-01 UTC. */
  now(): number;
}
