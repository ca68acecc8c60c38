/** Keep-alive TLS connections as a terminal, for the tests that watch the front-end close them. */
import { connect, type TLSSocket } from "node:tls";
import type { Fixture } from "./support";

/** A keep-alive TLS connection as a terminal (or another identity), proven live by one request on it. */
export async function liveConnection(f: Fixture, url: string, who: string, identity?: { cert: string; key: string }): Promise<{ socket: TLSSocket; closedAt: Promise<number> }> {
  const { hostname, port } = new URL(url);
  const bundle = identity ? { certPem: identity.cert, keyPem: identity.key } : f.pki.terminals[who]!;
  const socket = connect({ host: hostname, port: Number(port), ca: f.pki.ca.certPem, cert: bundle.certPem, key: bundle.keyPem });
  const closedAt = new Promise<number>((resolve) => socket.once("close", () => resolve(Date.now())));
  socket.on("error", () => { /* a closed connection: the test looks at closedAt */ });
  await new Promise<void>((resolve, reject) => {
    let text = "";
    const onData = (d: Buffer) => {
      text += d.toString();
      if (/\r\n\r\n[\s\S]*"status":"ok"/.test(text)) {
        socket.off("data", onData);
        resolve();
      }
    };
    socket.on("data", onData);
    socket.once("secureConnect", () => socket.write(`GET /v1/health HTTP/1.1\r\nhost: ${hostname}\r\nconnection: keep-alive\r\n\r\n`));
    socket.once("close", () => reject(new Error(`connection closed before its answer: ${text}`)));
  });
  return { socket, closedAt };
}

