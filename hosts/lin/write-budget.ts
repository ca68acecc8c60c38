/**
 * The Linux build only: the SDK's Linux TCP module accepts at most 1,536 bytes per 20 ms tick and throws "would block"
 * above that, where the ESP32's lwIP takes 8,192; the TLS client's second handshake flight with the development
 * certificates is 1,574 bytes (docs/moddable.md, "Linux target only"). This TCP class writes what the socket takes
 * now and keeps the rest, in order, for the socket's next onWritable; the TLS socket above it sees one write.
 */
import type { TcpClass, TcpOptions, TcpSocket } from "../esp32/https";

export function budgetedTcp(TCP: TcpClass): TcpClass {
  return class BudgetedTcp implements TcpSocket {
    readonly #socket: TcpSocket;
    readonly #queue: Uint8Array[] = [];
    #writable = 0;
    constructor(options: TcpOptions) {
      const onWritable = options.onWritable;
      this.#socket = new TCP({
        ...options,
        onWritable: (count: number) => {
          this.#writable = count;
          this.#flush();
          if (!this.#queue.length && this.#writable > 0) onWritable?.(this.#writable);
        },
      });
    }
    read(count?: unknown): unknown {
      return this.#socket.read(count);
    }
    write(data: unknown): unknown {
      const bytes = ArrayBuffer.isView(data) ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : new Uint8Array(data as ArrayBuffer);
      this.#queue.push(bytes.slice());
      this.#flush();
      return this.#queue.length ? 0 : this.#writable;
    }
    close(): void {
      this.#queue.length = 0;
      this.#socket.close();
    }
    #flush(): void {
      while (this.#queue.length && this.#writable > 0) {
        const head = this.#queue[0]!;
        const n = Math.min(head.length, this.#writable);
        this.#writable = this.#socket.write(head.subarray(0, n)) as number;
        if (n === head.length) this.#queue.shift();
        else this.#queue[0] = head.subarray(n);
      }
    }
  };
}
