/**
 * The vending controller's end of the controller port: writes JSON-line requests, reads JSON-line events, and lets
 * a caller wait for the event it expects. Used by the simulation, the end-to-end tests and the harness.
 */
import type { SerialPort, SerialSpec } from "../../../modules/device/types";
import { CodedError } from "../../../modules/errors/errors";

export type ControllerEvent = { event: string; order?: string; [key: string]: unknown };

export class ControllerTimeoutError extends CodedError {
  constructor(message: string) {
    super("CONTROLLER_TIMEOUT", message);
  }
}

interface Waiter {
  match: (e: ControllerEvent) => boolean;
  resolve: (e: ControllerEvent) => void;
  reject: (error: Error) => void;
  timer: ReturnType<typeof setTimeout>;
}

export class ControllerLink {
  readonly events: ControllerEvent[] = [];
  /** Lines that were not JSON: a terminal must never send one. */
  readonly garbage: string[] = [];
  readonly #port: SerialPort;
  #text = "";
  #cursor = 0;
  #waiters: Waiter[] = [];
  onEvent: ((event: ControllerEvent) => void) | undefined;

  constructor(serial: SerialSpec) {
    const link = this;
    this.#port = new serial.io({
      baud: 115200, ...serial, format: "buffer",
      onReadable(this: SerialPort) {
        for (let chunk = this.read(); chunk; chunk = this.read()) link.#receive(new Uint8Array(chunk));
      },
    });
  }

  get port(): SerialPort {
    return this.#port;
  }

  send(request: object | string): void {
    const line = typeof request === "string" ? request : JSON.stringify(request);
    this.#port.write(new TextEncoder().encode(line.endsWith("\n") ? line : line + "\n"));
  }

  /** The next event (from those not yet taken) that matches, waiting up to `timeoutMs`. */
  next(match: (e: ControllerEvent) => boolean, timeoutMs = 10_000): Promise<ControllerEvent> {
    for (let i = this.#cursor; i < this.events.length; i++) {
      if (match(this.events[i]!)) {
        this.#cursor = i + 1;
        return Promise.resolve(this.events[i]!);
      }
    }
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        match, resolve, reject,
        timer: setTimeout(() => {
          this.#waiters = this.#waiters.filter((w) => w !== waiter);
          reject(new ControllerTimeoutError(`no matching event in ${timeoutMs} ms; last events: ${JSON.stringify(this.events.slice(-3))}`));
        }, timeoutMs),
      };
      this.#waiters.push(waiter);
    });
  }

  close(): void {
    for (const w of this.#waiters) {
      clearTimeout(w.timer);
      w.reject(new ControllerTimeoutError("controller link closed"));
    }
    this.#waiters = [];
    try {
      this.#port.close();
    } catch {
      // Already closed.
    }
  }

  #receive(bytes: Uint8Array): void {
    this.#text += new TextDecoder().decode(bytes, { stream: true });
    for (let nl = this.#text.indexOf("\n"); nl >= 0; nl = this.#text.indexOf("\n")) {
      const line = this.#text.slice(0, nl).trim();
      this.#text = this.#text.slice(nl + 1);
      if (!line) continue;
      let event: ControllerEvent;
      try {
        event = JSON.parse(line);
      } catch {
        this.garbage.push(line);
        continue;
      }
      this.events.push(event);
      this.onEvent?.(event);
      const waiter = this.#waiters.find((w) => w.match(event));
      if (waiter) {
        clearTimeout(waiter.timer);
        this.#waiters = this.#waiters.filter((w) => w !== waiter);
        this.#cursor = this.events.length;
        waiter.resolve(event);
      }
    }
  }
}
