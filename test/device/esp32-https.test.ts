import * as assert from "../lib/assert";
import { EspHttpsConnector } from "../../hosts/esp32/https";
import { encodeUtf8, decodeUtf8 } from "../../modules/bytes/bytes";
import { VirtualClock } from "../lib/virtual-clock";

// The ESP32 connector over a stand-in for Moddable's ECMA-419 HTTP client that keeps to the SDK client's contract
// (examples/io/tcp/httpclient): it writes the request line and host itself, asks for a content-length body with
// onWritable(room), throws on a write larger than the room or after the last byte, then onHeaders, onReadable,
// onDone(null); a broken connection calls onDone(Error) and the client's onError.

type Answer = { status: number; body: string } | "hang" | "break";
interface Seen { method: string; path: string; headers: Map<string, string>; body: string }

function setup(answer: (seen: Seen) => Answer) {
  const clock = new VirtualClock();
  const clients: FakeClient[] = [];
  class FakeClient {
    readonly options: { host: string; port: number; onError?: () => void; socket: { secure: Record<string, unknown> } };
    readonly seen: Seen[] = [];
    closed = false;
    constructor(options: FakeClient["options"]) {
      this.options = options;
      clients.push(this);
    }
    request(o: { method: string; path: string; headers: Map<string, string>; onWritable?: (this: unknown, n: number) => void;
      onHeaders?: (this: unknown, status: number) => void; onReadable?: (this: unknown, n: number) => void; onDone?: (this: unknown, e: Error | null) => void }) {
      const client = this;
      const length = Number(o.headers.get("content-length") ?? 0);
      const body: number[] = [];
      let pending: Uint8Array | undefined;
      let room = 0;
      const req = {
        write(data: Uint8Array | undefined) {
          if (data === undefined) throw new Error("bad data");
          if (body.length >= length) throw new Error("bad state");
          if (data.byteLength > room || body.length + data.byteLength > length) throw new Error("would block");
          body.push(...data);
          room -= data.byteLength;
        },
        read(n: number) {
          const out = pending!.slice(0, n);
          pending = pending!.subarray(n);
          return out.buffer;
        },
      };
      const step = () => {
        if (client.closed) return;
        if (body.length < length) {
          room = Math.min(16, length - body.length);
          o.onWritable?.call(req, room);
          clock.set(step, 1);
          return;
        }
        const seen = { method: o.method, path: o.path, headers: o.headers, body: decodeUtf8(new Uint8Array(body)) };
        client.seen.push(seen);
        const a = answer(seen);
        if (a === "hang") return;
        if (a === "break") {
          o.onDone?.call(req, new Error());
          client.options.onError?.();
          return;
        }
        o.onHeaders?.call(req, a.status);
        pending = encodeUtf8(a.body);
        while (pending.length) o.onReadable?.call(req, Math.min(10, pending.length));
        o.onDone?.call(req, null);
      };
      clock.set(step, 5);
      return req;
    }
    close() {
      this.closed = true;
    }
  }
  const connector = new EspHttpsConnector({
    https: { io: FakeClient as never, socket: { io: class {} as never, TCP: { io: class {} as never } } },
    tls: { protocolVersion: 0x303, cache: false },
    timers: clock,
  });
  return { clock, clients, connection: connector.connect("https://frontend.example:8443") };
}

describe("ESP32 HTTPS connector", () => {
  it("sends a JSON body as the client asks for it, reads the answer, and keeps the connection for the next request", async () => {
    const { clock, clients, connection } = setup((seen) => ({ status: 201, body: JSON.stringify({ got: seen.body.length }) }));
    const payload = encodeUtf8(JSON.stringify({ order: "A-1", basicData: "00".repeat(30) }));
    const r = await clock.run(connection.request({ method: "POST", path: "/v1/purchases", body: payload, timeout: 3000 }));
    assert.equal(r.status, 201);
    assert.deepEqual(JSON.parse(decodeUtf8(r.body)), { got: payload.length });
    const seen = clients[0]!.seen[0]!;
    assert.equal(seen.body, decodeUtf8(payload));
    assert.equal(seen.headers.get("content-type"), "application/json");
    assert.equal(seen.headers.get("content-length"), String(payload.length));
    assert.equal(seen.headers.has("host"), false, "the client writes host itself");
    assert.equal(clients[0]!.options.host, "frontend.example");
    assert.equal(clients[0]!.options.port, 8443);
    assert.equal(clients[0]!.options.socket.secure.cache, false);
    const again = await clock.run(connection.request({ method: "GET", path: "/v1/routes", timeout: 3000 }));
    assert.equal(again.status, 201);
    assert.equal(clients.length, 1);
    assert.equal(connection.handshakes, 1);
    assert.equal(connection.connected, true);
    await clock.run(connection.warm(1000));
    assert.equal(clients[0]!.seen.length, 2, "a warm connection is not asked again");
  });

  it("a request with no answer fails at its deadline with a NetworkError; the next one opens a new connection", async () => {
    let hang = true;
    const { clock, clients, connection } = setup(() => (hang ? "hang" : { status: 200, body: "{}" }));
    const start = clock.now();
    await assert.rejects(clock.run(connection.request({ method: "GET", path: "/v1/health", timeout: 700 })), { code: "NETWORK" });
    assert.equal(clock.now() - start, 700);
    assert.equal(clients[0]!.closed, true);
    assert.equal(connection.connected, false);
    hang = false;
    await clock.run(connection.warm(1000));
    assert.equal(clients.length, 2);
    assert.equal(connection.handshakes, 2);
    assert.equal(connection.connected, true);
  });

  it("a broken connection fails the request with a NetworkError and is not reused", async () => {
    let broken = true;
    const { clock, clients, connection } = setup(() => (broken ? "break" : { status: 200, body: "{}" }));
    await assert.rejects(clock.run(connection.request({ method: "GET", path: "/v1/routes", timeout: 3000 })), { code: "NETWORK" });
    assert.equal(connection.connected, false);
    broken = false;
    const r = await clock.run(connection.request({ method: "GET", path: "/v1/routes", timeout: 3000 }));
    assert.equal(r.status, 200);
    assert.equal(clients.length, 2);
    assert.equal(clock.pending, 0, "no deadline timer left behind");
  });

  it("refuses an origin that is not https://host[:port]", () => {
    const connector = new EspHttpsConnector({ https: { io: class {} as never, socket: { io: class {} as never, TCP: { io: class {} as never } } }, tls: {}, timers: new VirtualClock() });
    assert.throws(() => connector.connect("http://frontend.example"), { code: "NETWORK" });
  });
});

// The SDK's layering, as the HTTP client builds it: client -> `socket.io` (the TLS socket) -> `socket.TCP.io` (TCP).
// The TLS socket runs its handshake and certificate checks inside the TCP callbacks. SDK behaviours encoded here
// (docs/moddable.md, "TLS failures do not reach onError"): a failed server-certificate check throws from the TCP
// callback (native code then aborts the VM); a refused client certificate produces no callback at all.
describe("ESP32 HTTPS connector: TLS failures the SDK does not report", () => {
  type Mode = "bad-server-certificate" | "client-certificate-refused";
  function sdk(mode: Mode) {
    const clock = new VirtualClock();
    const tcps: FakeTcp[] = [];
    const clients: FakeHttpClient[] = [];
    class FakeTcp {
      readonly options: { onReadable?: (n: number) => void; onWritable?: (n: number) => void; onError?: () => void };
      closed = 0;
      constructor(options: FakeTcp["options"]) {
        this.options = options;
        tcps.push(this);
        // The native socket connects, then reports the server's first flight.
        clock.set(() => this.options.onWritable?.(1536), 2);
        clock.set(() => this.options.onReadable?.(1200), 4);
      }
      read() { return new ArrayBuffer(0); }
      write() {}
      close() {
        this.closed++;
        if (this.closed > 1) throw new Error("closed twice"); // the SDK's native sockets do not tolerate this
      }
    }
    class FakeTls {
      readonly #tcp: { close(): void };
      constructor(options: { TCP: { io: new (o: object) => { close(): void } }; onError?: () => void }) {
        this.#tcp = new options.TCP.io({
          ...options,
          onWritable: () => {},
          onReadable: () => {
            if (mode === "bad-server-certificate") throw new Error("certificate: auth err");
            // client-certificate-refused: the server closes after its alert; the SDK's TLS reports nothing.
          },
          onError: () => options.onError?.(),
        });
      }
      close() { this.#tcp.close(); }
    }
    class FakeHttpClient {
      readonly #socket: FakeTls;
      closed = false;
      constructor(options: { socket: { io: typeof FakeTls; TCP: unknown }; onError?: () => void }) {
        clients.push(this);
        this.#socket = new options.socket.io({ ...(options.socket as object), onError: () => options.onError?.() } as never);
      }
      request() { return { read() { return undefined; }, write() {} }; }
      close() {
        this.closed = true;
        this.#socket.close();
      }
    }
    const connector = new EspHttpsConnector({
      https: { io: FakeHttpClient as never, socket: { io: FakeTls, TCP: { io: FakeTcp } } },
      tls: { protocolVersion: 0x303, cache: false },
      timers: clock,
    });
    return { clock, tcps, clients, connection: connector.connect("https://frontend.example:8443") };
  }

  it("a failed server-certificate check becomes a NetworkError at once; nothing escapes into native code", async () => {
    const { clock, tcps, clients, connection } = sdk("bad-server-certificate");
    const start = clock.now();
    // VirtualClock.run would rethrow an exception from a timer callback, i.e. from the "native" TCP callback.
    await assert.rejects(clock.run(connection.request({ method: "GET", path: "/v1/health", timeout: 5000 })), { code: "NETWORK" });
    assert.ok(clock.now() - start < 5000, "failed by the guard, not by the deadline");
    assert.equal(tcps[0]!.closed, 1, "the TCP socket is closed exactly once");
    assert.equal(clients[0]!.closed, true);
    assert.equal(connection.connected, false);
    await clock.advance(10_000);
    assert.equal(clock.pending, 0, "nothing left waiting");
    await assert.rejects(clock.run(connection.request({ method: "GET", path: "/v1/health", timeout: 5000 })), { code: "NETWORK" });
    assert.equal(clients.length, 2, "the next request opens a new client");
  });

  it("a refused client certificate (no callback at all) ends at the request's deadline, leaving nothing open", async () => {
    const { clock, tcps, clients, connection } = sdk("client-certificate-refused");
    const start = clock.now();
    await assert.rejects(clock.run(connection.request({ method: "POST", path: "/v1/purchases", body: new Uint8Array([0x7b, 0x7d]), timeout: 3000 })), { code: "NETWORK" });
    assert.equal(clock.now() - start, 3000);
    assert.equal(tcps[0]!.closed, 1);
    assert.equal(clients[0]!.closed, true);
    assert.equal(clock.pending, 0);
  });
});
