/**
 * The peripheral link over a byte stream carrying the docs/mdb.md §5 encoding (a pty, an in-memory pair, a Linux
 * UART in PARMRK mode): bytes in -> words -> PeripheralLink; its words -> bytes out, in one write per reply so the
 * reply leaves as one piece. The encode buffer is kept: no allocation per POLL.
 */
import { MAX_BLOCK } from "./commands";
import { PeripheralLink, type LinkOptions } from "./link";
import { WordDecoder, encodeWord } from "./wire";
import type { MdbWireError } from "./errors";

export interface StreamLinkOptions extends Omit<LinkOptions, "send"> {
  write(bytes: Uint8Array): void;
  onWireError?(error: MdbWireError): void;
}

export class StreamLink {
  readonly link: PeripheralLink;
  readonly #decoder: WordDecoder;
  readonly #out = new Uint8Array(MAX_BLOCK * 3);

  constructor(o: StreamLinkOptions) {
    const write = o.write;
    this.link = new PeripheralLink({
      ...o,
      send: (words) => {
        let n = 0;
        for (let i = 0; i < words.length; i++) n += encodeWord(words[i]!, this.#out, n);
        write(this.#out.subarray(0, n));
      },
    });
    this.#decoder = new WordDecoder({ onWord: (w) => this.link.receive(w), onError: o.onWireError });
  }

  push(bytes: Uint8Array): void {
    this.#decoder.push(bytes);
  }
}
