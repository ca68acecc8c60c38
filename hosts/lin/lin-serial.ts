/**
 * The Linux build only: the SDK's Linux serial differs from ECMA-419 (and from the ESP32's serial) in two ways
 * (docs/moddable.md, "Linux target only"):
 * - it opens the line named by a non-standard `device` option (a pty path here), where the shared code gives `path`;
 * - its write() reads its argument with xsToArrayBuffer, which takes an ArrayBuffer and nothing else: the
 *   Uint8Array the shared code writes throws, so the PN532 never got its wake-up and the controller port never
 *   answered.
 * This class takes the project's SerialOptions and hands the SDK's class what it takes.
 */
import type { SerialClass, SerialOptions, SerialPort } from "../../modules/device/types";

type SdkSerial = new (options: object) => { write(data: ArrayBuffer): void; read(): ArrayBuffer | undefined; close(): void };

/** An ArrayBuffer of exactly the bytes of `data`: its own buffer when it covers all of it, otherwise a copy. */
export function linBuffer(data: ArrayBuffer | ArrayBufferView): ArrayBuffer {
  if (!ArrayBuffer.isView(data)) return data;
  if (data.byteOffset === 0 && data.byteLength === data.buffer.byteLength && data.buffer instanceof ArrayBuffer) return data.buffer;
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice().buffer;
}

export function linSerial(Serial: SdkSerial): SerialClass {
  return class LinSerial extends Serial implements SerialPort {
    constructor(options: SerialOptions) {
      super({ ...options, device: options.path });
    }
    override write(data: ArrayBuffer | Uint8Array): void {
      super.write(linBuffer(data));
    }
  };
}
