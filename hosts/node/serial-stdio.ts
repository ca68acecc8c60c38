/** The controller port on a terminal's own stdin/stdout: type JSON lines at a PC terminal to drive it by hand. */
import type { SerialOptions, SerialPort } from "../../modules/device/types";

export class StdioSerial implements SerialPort {
  readonly #chunks: Uint8Array[] = [];
  readonly #onData: (chunk: Uint8Array) => void;

  constructor(options: SerialOptions) {
    this.#onData = (chunk) => {
      this.#chunks.push(new Uint8Array(chunk));
      options.onReadable?.call(this, chunk.length);
    };
    process.stdin.on("data", this.#onData);
  }

  read(): ArrayBuffer | undefined {
    const chunk = this.#chunks.shift();
    return chunk ? (chunk.buffer.slice(chunk.byteOffset, chunk.byteOffset + chunk.length) as ArrayBuffer) : undefined;
  }

  write(data: ArrayBuffer | Uint8Array): void {
    process.stdout.write(data instanceof Uint8Array ? data : new Uint8Array(data));
  }

  close(): void {
    process.stdin.off("data", this.#onData);
    process.stdin.pause();
  }
}
