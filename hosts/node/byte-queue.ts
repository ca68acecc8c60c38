/** Bytes received from a port and not yet read: ECMA-419's read() hands over everything available at once. */
export class ByteQueue {
  #chunks: Uint8Array[] = [];
  #available = 0;

  get available(): number {
    return this.#available;
  }

  push(chunk: Uint8Array): void {
    this.#chunks.push(chunk);
    this.#available += chunk.byteLength;
  }

  /** Everything queued, joined, or undefined when nothing is. */
  take(): ArrayBuffer | undefined {
    if (!this.#available) return undefined;
    const out = new Uint8Array(this.#available);
    let at = 0;
    for (const chunk of this.#chunks) {
      out.set(chunk, at);
      at += chunk.length;
    }
    this.clear();
    return out.buffer;
  }

  clear(): void {
    this.#chunks = [];
    this.#available = 0;
  }
}
