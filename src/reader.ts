import type { PN532 } from "../modules/pn532/driver";

/** What the terminal needs of a contactless reader: find one card, exchange APDUs with it, let it go. */
export interface CardReader {
  /** Resolves with the activated card, or rejects with a code of PN532_NO_CARD (timeout) or PN532_ABORTED. */
  detect(options: { timeout: number; interval?: number }): Promise<{ uid: Uint8Array }>;
  transceive(apdu: Uint8Array): Promise<Uint8Array>;
  /** Ends the session with the card (the RF layer deselects it); never throws. */
  release(): Promise<void>;
  /** Cancels a detect() or exchange in progress. */
  abort(): void;
}

export function pn532Reader(pn532: PN532): CardReader {
  return {
    detect: (options) => pn532.detect(options),
    transceive: (apdu) => pn532.transceive(apdu),
    release: () => pn532.inRelease(0).catch(() => undefined),
    abort: () => pn532.abort(),
  };
}
