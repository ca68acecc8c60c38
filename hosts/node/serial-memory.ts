/**
 * An in-memory serial line: two ECMA-419 serial classes joined back to back, for linking the PN532 driver and the
 * emulator inside one Node process when no pty tool (socat) is at hand. Bytes are delivered asynchronously, in
 * order, the way a UART driver hands them over; an optional byte time makes the line as slow as a real one.
 */
import type { SerialClass, SerialOptions, SerialPort, Timers } from "../../modules/device/types";

export interface MemorySerialPair {
  /** Give one to the driver (`serial: {io: pair.host}`) and the other to the emulator. */
  host: SerialClass;
  device: SerialClass;
  /** Bytes carried in each direction so far. */
  readonly counts: { hostToDevice: number; deviceToHost: number };
}

export interface MemorySerialOptions {
  /** ms per byte; 0 (default) delivers on the next turn of the event loop. */
  byteTime?: number;
  /** Deliver on this clock (a test's VirtualClock) instead of Node's event loop. */
  timers?: Timers;
}

/** What a receiver at the wrong rate makes of every byte: never a start code, never the 0x55 of a wake-up. */
const GARBLED = 0xf8;

class End implements SerialPort {
  readonly options: SerialOptions;
  peer: End | undefined;
  inbox: Uint8Array[] = [];
  available = 0;
  closed = false;
  /** When the last byte already on the line arrives at the peer (line busy until then). */
  lineFree = 0;
  constructor(options: SerialOptions, readonly side: Side) {
    this.options = options;
  }
  read(): ArrayBuffer | undefined {
    if (!this.available) return undefined;
    const out = new Uint8Array(this.available);
    let at = 0;
    for (const c of this.inbox) {
      out.set(c, at);
      at += c.length;
    }
    this.inbox = [];
    this.available = 0;
    return out.buffer;
  }
  write(data: ArrayBuffer | Uint8Array): void {
    if (this.closed) throw new Error("serial port is closed");
    const bytes = (data instanceof Uint8Array ? data : new Uint8Array(data)).slice();
    this.side.count(bytes.length);
    const byteTime = this.side.byteTime;
    const sentAt = this.options.baud;
    const deliver = () => {
      const peer = this.side.other.current;
      if (!peer || peer.closed) return;
      // A UART set to another rate than the sender's sees framing errors and wrong bytes, never the frame.
      if (sentAt && peer.options.baud && peer.options.baud !== sentAt) bytes.fill(GARBLED);
      peer.inbox.push(bytes);
      peer.available += bytes.length;
      peer.options.onReadable?.call(peer, peer.available);
    };
    const timers = this.side.timers;
    if (!byteTime) {
      if (timers) timers.set(deliver, 0);
      else setImmediate(deliver);
      return;
    }
    const now = timers ? timers.now() : performance.now();
    this.lineFree = Math.max(this.lineFree, now) + bytes.length * byteTime;
    if (timers) timers.set(deliver, Math.max(0, this.lineFree - now));
    else setTimeout(deliver, Math.max(0, this.lineFree - now));
  }
  close(): void {
    this.closed = true;
    this.inbox = [];
    this.available = 0;
    if (this.side.current === this) this.side.current = undefined;
  }
}

class Side {
  current: End | undefined;
  other!: Side;
  constructor(readonly byteTime: number, readonly count: (n: number) => void, readonly timers: Timers | undefined) {}
}

export function createMemorySerialPair(options: MemorySerialOptions = {}): MemorySerialPair {
  const counts = { hostToDevice: 0, deviceToHost: 0 };
  const hostSide = new Side(options.byteTime ?? 0, (n) => { counts.hostToDevice += n; }, options.timers);
  const deviceSide = new Side(options.byteTime ?? 0, (n) => { counts.deviceToHost += n; }, options.timers);
  hostSide.other = deviceSide;
  deviceSide.other = hostSide;
  const classFor = (side: Side): SerialClass => class extends End {
    constructor(o: SerialOptions) {
      super(o, side);
      side.current?.close();
      side.current = this;
    }
  };
  return { host: classFor(hostSide), device: classFor(deviceSide), counts };
}
