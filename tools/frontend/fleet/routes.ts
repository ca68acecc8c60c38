/**
 * The terminal's fleet routes: it sends its status report and fetches its effective configuration. A terminal is
 * who its client certificate says (CN = terminal ID), and may only speak for itself; an operator certificate may read
 * any terminal's configuration. The schemas are the ones the server validates with (and OpenAPI is generated from).
 */
import type { FastifyInstance, FastifyRequest } from "fastify";
import { STATUS_REASONS, type ConfigAnswer, type StatusAnswer, type StatusReport } from "../../../modules/frontend-client/status";
import { MESSAGE_MAX_LENGTH } from "../../../modules/terminal-config/config";
import { FrontendError } from "../errors";
import type { Client } from "../purchases/service";
import type { Store } from "../storage/store";

const count = { type: "integer", minimum: 0, maximum: 4294967295 } as const;
const ms = { type: "number", minimum: 0, maximum: 1e13 } as const;

const terminalParams = {
  type: "object",
  required: ["terminalId"],
  properties: { terminalId: { type: "string", pattern: "^[0-9A-Fa-f]{12}$" } },
} as const;

export const statusReportSchema = {
  type: "object",
  additionalProperties: false,
  required: ["terminalId", "firmware", "reason", "sequence", "sentAt", "uptimeMs", "journal", "pendingCompletions", "unresolved", "counts", "config"],
  properties: {
    terminalId: { type: "string", pattern: "^[0-9A-Fa-f]{12}$" },
    firmware: { type: "string", minLength: 1, maxLength: 64 },
    reason: { type: "string", enum: STATUS_REASONS },
    sequence: count,
    sentAt: ms,
    uptimeMs: ms,
    journal: {
      type: "object", additionalProperties: false, required: ["usedBlocks", "blocks", "liveRecords", "fillPercent"],
      properties: { usedBlocks: count, blocks: count, liveRecords: count, fillPercent: { type: "integer", minimum: 0, maximum: 100 } },
    },
    pendingCompletions: count,
    unresolved: count,
    counts: {
      type: "object", additionalProperties: false, required: ["approvals", "declines", "tears", "readerFaults", "frontendErrors"],
      properties: {
        approvals: count,
        declines: { type: "object", maxProperties: 40, propertyNames: { pattern: "^[a-z0-9-]{1,40}$" }, additionalProperties: count },
        tears: count, readerFaults: count, frontendErrors: count,
      },
    },
    tapToApprovedMs: {
      type: "object", additionalProperties: false, required: ["p50", "p90", "samples"],
      properties: { p50: ms, p90: ms, samples: count },
    },
    clockOffsetMs: { type: "number", minimum: -1e13, maximum: 1e13 },
    config: {
      type: "object", additionalProperties: false, required: ["version", "refused"],
      properties: {
        version: count,
        refused: {
          type: "array", maxItems: 8,
          items: {
            type: "object", additionalProperties: false, required: ["field", "code", "message"],
            properties: { field: { type: "string", maxLength: 64 }, code: { type: "string", maxLength: 32 }, message: { type: "string", maxLength: 120 } },
          },
        },
      },
    },
    heap: {
      type: "object", additionalProperties: false,
      properties: { usedBytes: count, slotBytes: count, chunkBytes: count },
    },
  },
} as const;

const settingsSchema = {
  type: "object",
  properties: {
    maxAmount: { type: "integer" }, applicationOrder: { type: "array", items: { type: "string" } }, strict: { type: "boolean" },
    strictTimeoutMs: { type: "integer" }, recoveryWindowMs: { type: "integer" }, reportUnresolvedAfterMs: { type: "integer" },
    routesRefreshMs: { type: "integer" }, keepWarmMs: { type: "integer" }, statusEveryMs: { type: "integer" },
    message: { type: "string", maxLength: MESSAGE_MAX_LENGTH }, basicData: { type: "string" },
  },
} as const;

/** Only the terminal itself (or an operator, where `operators` says so) may use a terminal's route. */
function allowed(client: Client, terminalId: string, operators: boolean): void {
  if (client.kind === "terminal" && client.commonName === terminalId.toUpperCase()) return;
  if (operators && client.kind === "operator") return;
  throw new FrontendError("TERMINAL_MISMATCH", 403, `the client certificate (${client.commonName || "no CN"}) is not terminal ${terminalId.toUpperCase()}`);
}

export function registerFleetRoutes(app: FastifyInstance, store: Store, clientOf: (request: FastifyRequest) => Client): void {
  app.post<{ Params: { terminalId: string }; Body: StatusReport }>("/v1/terminals/:terminalId/status", {
    schema: {
      params: terminalParams, body: statusReportSchema,
      response: { 200: { type: "object", required: ["configVersion"], additionalProperties: false, properties: { configVersion: count } } },
    },
  }, async (request): Promise<StatusAnswer> => {
    allowed(clientOf(request), request.params.terminalId, false);
    if (request.body.terminalId.toUpperCase() !== request.params.terminalId.toUpperCase()) {
      throw new FrontendError("TERMINAL_MISMATCH", 403, "the report names another terminal than its path");
    }
    await store.fleet.recordStatus(request.body);
    // A JSON object, as every answer of the protocol (an empty 204 was counted by terminals as a front-end error).
    return { configVersion: (await store.fleet.effectiveConfig(request.params.terminalId)).version };
  });

  app.get<{ Params: { terminalId: string } }>("/v1/terminals/:terminalId/config", {
    schema: {
      params: terminalParams,
      response: {
        200: {
          type: "object", required: ["terminalId", "version", "settings"],
          properties: { terminalId: { type: "string" }, version: { type: "integer" }, settings: settingsSchema },
        },
      },
    },
  }, async (request): Promise<ConfigAnswer> => {
    allowed(clientOf(request), request.params.terminalId, true);
    const effective = await store.fleet.effectiveConfig(request.params.terminalId);
    return { terminalId: effective.terminalId, version: effective.version, settings: effective.settings };
  });
}
