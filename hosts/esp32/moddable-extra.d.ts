/**
 * What the terminal uses of Moddable that @moddable/typings@5.6.0 does not declare (or types too loosely), in one
 * place. A global script, referenced by the files that need it, so that mcconfig's per-module TypeScript compile
 * sees it as well as `npm run typecheck`:
 * - `device.network`: the HTTP client, TLS socket and DNS a networking host adds to the ECMA-419 provider;
 * - the options Moddable's SSL session reads from a TLS socket's `secure` property;
 * - `embedded:io/socket/tcp/tls` itself: mcconfig maps that specifier to the SDK's tlssocket.js, whose typings file
 *   declares it under a name the typings manifest does not map, so the build would see an untyped module
 *   (tsconfig.json leaves 5.6.0's copy out so this is the only one).
 * Storage: ESP32 builds of the SDK provide `embedded:storage/key-value` (NVS) but not `embedded:storage/flash`, so
 * the journal uses the `flash` module (a raw partition), which 5.6.0 declares.
 */

declare namespace Moddable419 {
  /** Moddable's SSL session options (modules/crypt/ssl), carried by the TLS socket's `secure` property. */
  interface TlsOptions {
    /** DER certificate of the CA to trust (the one that signed the front-ends' certificates). */
    certificate?: ArrayBuffer | HostBuffer;
    /** DER private key (PKCS#8) of the client certificate. */
    clientKey?: ArrayBuffer | HostBuffer;
    /** DER client certificate chain, leaf first. */
    clientCertificates?: (ArrayBuffer | HostBuffer)[];
    /** 0x0303: TLS 1.2, the highest version Moddable speaks. */
    protocolVersion?: number;
    /** false: no session cache (a cached session would skip the certificate check). */
    cache?: boolean;
    verify?: boolean;
    applicationLayerProtocolNegotiation?: string;
  }

  interface HttpsProvider {
    io: typeof import("embedded:network/http/client").default;
    dns?: unknown;
    port?: number;
    socket: { io: typeof import("embedded:io/socket/tcp/tls").default; TCP: { io: typeof import("embedded:io/socket/tcp").default }; secure?: TlsOptions };
  }

  interface NetworkProvider {
    http?: { io: typeof import("embedded:network/http/client").default; dns?: unknown; socket: { io: typeof import("embedded:io/socket/tcp").default } };
    https?: HttpsProvider;
  }

  /** The global `device` of a networking host. */
  type NetworkDevice = typeof device & { network?: NetworkProvider };
}

declare module "embedded:io/socket/tcp/tls" {
  import type { Options as TCPOptions } from "embedded:io/socket/tcp";
  type Buffer = ArrayBuffer | ArrayBufferView;

  export type Options = TCPOptions & {
    host: string;
    secure: Moddable419.TlsOptions;
    TCP?: { io: typeof import("embedded:io/socket/tcp").default };
  };

  export default class TLSSocket {
    constructor(options: Options);
    read(byteLength?: number): ArrayBuffer | undefined;
    read(buffer: Buffer): void;
    write(buffer: Buffer): number;
    close(): void;
    get format(): "buffer";
    set format(value: "buffer");
  }
}
