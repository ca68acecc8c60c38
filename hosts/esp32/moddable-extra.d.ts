/**
 * What the terminal uses of Moddable that @moddable/typings@5.6.0 does not declare, in one place: `device.network`
 * (the HTTP client, TLS socket and DNS that Moddable's networking hosts add to the ECMA-419 provider, as in its
 * httpsclient example's config) and the options Moddable's SSL session reads from a TLS socket's `secure` property.
 *
 * Storage: ESP32 builds of the Moddable SDK provide `embedded:storage/key-value` (NVS) but not
 * `embedded:storage/flash`, so the journal uses the `flash` module (a raw partition), which 5.6.0 does declare.
 */
import type HTTPClient from "embedded:network/http/client";
import type TLSSocket from "embedded:io/socket/tcp/tls";
import type TCP from "embedded:io/socket/tcp";

declare global {
  namespace Moddable419 {
    /** Moddable's SSL session options (modules/crypt/ssl), carried by the TLS socket's `secure` property. */
    interface TlsOptions {
      /** DER certificate of the CA to trust (the one that signed the front-ends' certificates). */
      certificate?: ArrayBuffer | HostBuffer;
      /** DER private key of the client certificate. */
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
      io: typeof HTTPClient;
      dns?: unknown;
      port?: number;
      socket: { io: typeof TLSSocket; TCP: { io: typeof TCP }; secure?: TlsOptions };
    }

    interface NetworkProvider {
      http?: { io: typeof HTTPClient; dns?: unknown; socket: { io: typeof TCP } };
      https?: HttpsProvider;
    }

    /** The global `device` of a networking host. */
    type NetworkDevice = typeof device & { network?: NetworkProvider };
  }
}
