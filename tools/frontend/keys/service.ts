/**
 * The key service process: the only process that opens the token (and, for SM4, the only one that ever holds an
 * unwrapped key). HTTP processes reach it over a Unix domain socket (mode 0600) with the commands of protocol.ts.
 *
 *   node --import tsx tools/frontend/keys/service.ts <socket path>     settings (JSON) in FRONTEND_KEY_SERVICE
 *
 * It prints one line {"event":"key-service-ready", ...description} on stdout once it serves, and exits non-zero when
 * the token cannot be opened or a configured key check value does not match. Its parent (KeyServiceSupervisor)
 * restarts it when it dies.
 */
import { chmodSync, rmSync } from "node:fs";
import { createServer, type Socket } from "node:net";
import { pathToFileURL } from "node:url";
import { FrontendError } from "../errors";
import { Pkcs11KeyStore, checkPkcs11Settings, type Pkcs11Description, type Pkcs11Settings } from "./pkcs11";
import { KEY_SERVICE_OPS, KEY_SERVICE_SETTINGS_ENV, decodeLine, encodeLine, lineReader, type KeyServiceAnswer, type KeyServiceRequest } from "./protocol";

/** How often the token's key list is read again (versions created or retired by a key ceremony while running). */
const REFRESH_MS = 1000;

function answer(store: Pkcs11KeyStore, request: KeyServiceRequest): KeyServiceAnswer {
  const { id, op, args } = request;
  if (!KEY_SERVICE_OPS.includes(op)) return { id, error: { code: "KEY_SERVICE_COMMAND", statusCode: 400, message: `unknown command ${String(op)}` } };
  try {
    switch (op) {
      case "describe": return { id, value: store.details() };
      case "authorize": return { id, value: store.authorize(...(args as Parameters<Pkcs11KeyStore["authorize"]>)) };
      case "verify": return { id, value: store.verify(...(args as Parameters<Pkcs11KeyStore["verify"]>)) };
      case "authorizeLoad": return { id, value: store.authorizeLoad(...(args as Parameters<Pkcs11KeyStore["authorizeLoad"]>)) };
      case "verifyLoad": return { id, value: store.verifyLoad(...(args as Parameters<Pkcs11KeyStore["verifyLoad"]>)) };
    }
  } catch (e) {
    if (e instanceof FrontendError) return { id, error: { code: e.code, statusCode: e.statusCode, message: e.message } };
    // A token error is never turned into a verdict: the HTTP side answers 503 and the terminal retries.
    return { id, error: { code: "KEY_SERVICE_UNAVAILABLE", statusCode: 503, message: `token: ${(e as Error).message}` } };
  }
}

export function runKeyService(settings: Pkcs11Settings, socketPath: string): { close(): void; description: Pkcs11Description } {
  const store = new Pkcs11KeyStore(settings);
  const clients = new Set<Socket>();
  let description = store.details();
  const server = createServer((socket) => {
    clients.add(socket);
    socket.on("close", () => clients.delete(socket));
    socket.on("error", () => socket.destroy());
    // The answers to one chunk of requests go back in one write.
    let answers: string[] = [];
    const read = lineReader((line) => {
      let request: KeyServiceRequest;
      try {
        request = decodeLine<KeyServiceRequest>(line);
      } catch {
        socket.destroy();
        return;
      }
      answers.push(encodeLine(answer(store, request)));
    });
    socket.on("data", (chunk: Buffer) => {
      read(chunk);
      if (!answers.length || socket.destroyed) return;
      socket.write(answers.join(""));
      answers = [];
    });
  });
  rmSync(socketPath, { force: true });
  // The socket is made 0600 from the start (umask), not chmod-ed after a window where others could connect.
  process.umask(0o177);
  server.listen(socketPath, () => {
    chmodSync(socketPath, 0o600);
    process.stdout.write(encodeLine({ event: "key-service-ready", pid: process.pid, ...description }));
  });
  const refresher = setInterval(() => {
    try {
      store.refresh();
    } catch (e) {
      process.stderr.write(`key service: token refresh failed: ${(e as Error).message}\n`);
      return;
    }
    const next = store.details();
    if (JSON.stringify(next) === JSON.stringify(description)) return;
    description = next;
    for (const c of clients) c.write(encodeLine({ event: "keys", description }));
  }, REFRESH_MS);
  return {
    description,
    close: () => {
      clearInterval(refresher);
      server.close();
      for (const c of clients) c.destroy();
      store.close();
    },
  };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  try {
    const settings = checkPkcs11Settings(JSON.parse(process.env[KEY_SERVICE_SETTINGS_ENV] ?? "null"));
    // The PIN came through the environment only when it was inline in the configuration; forget it once read.
    delete process.env[KEY_SERVICE_SETTINGS_ENV];
    const socketPath = process.argv[2];
    if (!socketPath) throw new Error("usage: service.ts <socket path>");
    const service = runKeyService(settings, socketPath);
    const stop = () => { service.close(); process.exit(0); };
    process.once("SIGTERM", stop);
    process.once("SIGINT", stop);
    // The parent's end of the pipe closing means the front-end is gone: so is the key service.
    process.stdin.on("end", stop);
    process.stdin.resume();
  } catch (e) {
    process.stderr.write(`key service: ${(e as { code?: string }).code ? `${(e as { code?: string }).code}: ` : ""}${(e as Error).message}\n`);
    process.exit(1);
  }
}
