/**
 * A test-only hook that aims a fault at one request: with FRONTEND_TEST_HOLD_FILE set, a front-end process that serves
 * a request of the kind and at the point the file names ("completion:answered") claims the file (an atomic rename, so
 * exactly one request of one process is held), writes its pid into `<file>.held` and never goes on with that request.
 * The test then SIGKILLs that process: the kill lands at a known place of a known request, not at a moment in time.
 *
 * Points: "received" (parsed and validated, nothing done yet) and "answered" (the handler finished, so its writes are
 * durable, and the answer is not sent). Without the variable the plugin does nothing, and a front-end loads it only when its configuration's `plugins` names this file.
 */
import { readFileSync, renameSync, writeFileSync } from "node:fs";
import type { FastifyInstance, FastifyRequest } from "fastify";

export type RequestKind = "authorize" | "completion" | "purchase" | "routes" | "settlement" | "health";
export type HoldPoint = "received" | "answered";
export const HOLD_ENV = "FRONTEND_TEST_HOLD_FILE";

/** The request kind of a route (undefined for an unknown route). */
export function requestKind(request: FastifyRequest): RequestKind | undefined {
  const url = request.routeOptions.url;
  if (url === "/v1/purchases") return "authorize";
  if (url === "/v1/purchases/:purchaseId/completion") return "completion";
  if (url === "/v1/purchases/:purchaseId") return "purchase";
  if (url === "/v1/routes") return "routes";
  if (url === "/v1/settlement/:businessDay") return "settlement";
  if (url === "/v1/health") return "health";
  return undefined;
}

/** Whether this request is the one to hold here: claims the hold file if it names this kind and point. */
function claim(file: string, kind: RequestKind | undefined, point: HoldPoint): boolean {
  if (!kind) return false;
  let wanted: string;
  try {
    wanted = readFileSync(file, "utf8").trim();
  } catch {
    return false;
  }
  if (wanted !== `${kind}:${point}`) return false;
  try {
    renameSync(file, `${file}.claimed`);
  } catch {
    return false; // another request (or process) took it first
  }
  writeFileSync(`${file}.held`, JSON.stringify({ pid: process.pid, kind, point }));
  return true;
}

/** The plugin (config.plugins names this file): installs the hook when the environment names a hold file. */
export default function installTestHold(app: FastifyInstance, env: NodeJS.ProcessEnv = process.env): void {
  const file = env[HOLD_ENV];
  if (!file) return;
  const held = () => new Promise<never>(() => { /* held until the process is killed */ });
  app.addHook("preHandler", async (request) => {
    if (claim(file, requestKind(request), "received")) await held();
  });
  app.addHook("onSend", async (request, _reply, payload) => {
    if (claim(file, requestKind(request), "answered")) await held();
    return payload;
  });
}
