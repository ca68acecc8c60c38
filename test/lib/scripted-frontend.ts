// A front-end at the far end of the device's HTTPS interface, for unit tests that must also run inside XS (where the
// real front-end, Node and TLS, cannot): each request is answered by the test's script, on the virtual clock, late,
// twice or never. On Node the same units are also tested against the real front-end.
import { decodeUtf8, encodeUtf8 } from "../../modules/bytes/bytes";
import { NetworkError, type HttpRequest, type HttpResponse, type HttpsConnection, type HttpsConnector } from "../../modules/device/types";
import type { VirtualClock } from "./virtual-clock";

export interface SeenRequest { method: string; path: string; body: unknown; at: number }

/** What the script does with one request: answer (after `delay` ms), or never answer (the request times out). */
export type Reply = { status: number; body: unknown; delay?: number } | "never" | "refuse";

export class ScriptedFrontend implements HttpsConnector {
  readonly requests: SeenRequest[] = [];
  script: (request: SeenRequest) => Reply = () => ({ status: 200, body: { status: "completed" } });
  handshakes = 0;
  /** The front-end's own clock, epoch ms: with it every answer carries a `Date` header. */
  serverTime: (() => number) | undefined;
  constructor(readonly clock: VirtualClock) {}

  connect(origin: string): HttpsConnection {
    const fe = this;
    let connected = false;
    return {
      origin,
      get handshakes() { return fe.handshakes; },
      get connected() { return connected; },
      async warm() {
        if (!connected) fe.handshakes++;
        connected = true;
      },
      request(request: HttpRequest): Promise<HttpResponse> {
        connected = true;
        const seen = { method: request.method, path: request.path, body: request.body ? JSON.parse(decodeUtf8(request.body)) : undefined, at: fe.clock.now() };
        fe.requests.push(seen);
        const reply = fe.script(seen);
        return new Promise((resolve, reject) => {
          if (reply === "refuse") {
            reject(new NetworkError("connection refused"));
            return;
          }
          const deadline = fe.clock.set(() => reject(new NetworkError(`no answer within ${request.timeout} ms`)), request.timeout);
          if (reply === "never") return;
          fe.clock.set(() => {
            fe.clock.clear(deadline);
            const date = fe.serverTime ? { date: new Date(fe.serverTime()).toUTCString() } : {};
            resolve({ status: reply.status, body: encodeUtf8(JSON.stringify(reply.body)), ...date });
          }, reply.delay ?? 1);
        });
      },
      close() {
        connected = false;
      },
    };
  }
}
