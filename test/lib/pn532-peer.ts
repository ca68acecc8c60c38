// A scripted stand-in for the PN532 at the far end of an in-memory serial line, for driver unit tests (the real
// emulator, tools/sim/pn532sim, needs Node). The test decides what each command frame gets back and when.
import type { SerialClass, SerialOptions, SerialPort } from "../../modules/device/types";
import { ACK_FRAME, FrameParser, TFI_PN532, encodeFrame, type Frame } from "../../modules/pn532/frame";
import type { VirtualClock } from "./virtual-clock";

export interface ReceivedCommand { code: number; params: Uint8Array; frame: Frame }

export class ScriptedPeer {
  readonly clock: VirtualClock;
  /** Every byte the driver wrote, in order. */
  written: number[] = [];
  frames: Frame[] = [];
  commands: ReceivedCommand[] = [];
  /** Called for each command frame; default: ACK and answer with an empty response. */
  onCommand: (command: ReceivedCommand, peer: ScriptedPeer) => void = (c, p) => p.answer(c.code, new Uint8Array(0));
  onControl: (frame: Frame, peer: ScriptedPeer) => void = () => {};
  readonly io: SerialClass;
  port: (SerialPort & { options: SerialOptions }) | undefined;
  closed = false;
  #inbox: number[] = [];
  readonly #parser: FrameParser;

  constructor(clock: VirtualClock) {
    this.clock = clock;
    this.#parser = new FrameParser({
      onFrame: (frame) => {
        this.frames.push(frame);
        if (frame.kind === "information") {
          const command = { code: frame.data[0]!, params: frame.data.slice(1), frame };
          this.commands.push(command);
          this.onCommand(command, this);
        } else {
          this.onControl(frame, this);
        }
      },
    });
    const peer = this;
    this.io = class implements SerialPort {
      readonly options: SerialOptions;
      constructor(options: SerialOptions) {
        this.options = options;
        peer.port = this;
      }
      read(): ArrayBuffer | undefined {
        if (!peer.#inbox.length) return undefined;
        const out = new Uint8Array(peer.#inbox);
        peer.#inbox = [];
        return out.buffer;
      }
      write(data: ArrayBuffer | Uint8Array): void {
        const bytes = data instanceof Uint8Array ? data : new Uint8Array(data);
        for (const b of bytes) peer.written.push(b);
        peer.#parser.push(bytes);
      }
      close(): void {
        peer.closed = true;
      }
    };
  }

  /** Bytes to the driver after `delay` ms of virtual time (0: on the next timer turn, never synchronously). */
  send(bytes: Uint8Array, delay = 0): void {
    this.clock.set(() => {
      for (const b of bytes) this.#inbox.push(b);
      const port = this.port;
      port?.options.onReadable?.call(port, this.#inbox.length);
    }, delay);
  }

  /**
   * Bytes into the port's receive buffer at once, with no read callback: a host that stalled holds them unread (its
   * timers run before its read callbacks when it resumes).
   */
  stage(bytes: Uint8Array): void {
    for (const b of bytes) this.#inbox.push(b);
  }

  ack(delay = 0): void {
    this.send(ACK_FRAME, delay);
  }

  /** ACK now, then the response `code + 1, data` after `delay` ms. */
  answer(code: number, data: Uint8Array, delay = 1): void {
    this.ack();
    const body = new Uint8Array(1 + data.length);
    body[0] = code + 1;
    body.set(data, 1);
    this.send(encodeFrame(TFI_PN532, body), delay);
  }

  commandCodes(): number[] {
    return this.commands.map((c) => c.code);
  }
}
