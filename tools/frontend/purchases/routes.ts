/**
 * The purchase routes: authorization (MAC1), completion (MAC2 and TAC), a purchase's view, and the operators'
 * settlement export. Validation is by JSON schema; the rules of money are in service.ts and the store.
 */
import type { FastifyInstance, FastifyRequest } from "fastify";
import { FrontendError } from "../errors";
import { formatSettlement, type AuthorizeRequest, type Client, type CompletionRequest, type PurchaseService } from "./service";

const HEX8 = "^[0-9A-Fa-f]{8}$";

const authorizeSchema = {
  body: {
    type: "object",
    additionalProperties: false,
    required: ["terminalId", "order", "amount", "keyIndex", "transactionType", "application", "basicData", "initResponse"],
    properties: {
      terminalId: { type: "string", pattern: "^[0-9A-Fa-f]{12}$" },
      order: { type: "string", minLength: 1, maxLength: 32, pattern: "^[^\\u0000-\\u001f\\u007f]*$" },
      amount: { type: "integer", minimum: 1, maximum: 4294967295 },
      keyIndex: { type: "integer", minimum: 0, maximum: 255 },
      transactionType: { type: "integer", enum: [6, 9] },
      application: { type: "string", enum: ["tunion", "cityunion"] },
      basicData: { type: "string", pattern: "^[0-9A-Fa-f]{60}$" },
      initResponse: { type: "string", pattern: "^[0-9A-Fa-f]{30}$" },
    },
  },
  response: {
    201: {
      type: "object",
      properties: { purchaseId: { type: "string" }, tsn: { type: "integer" }, date: { type: "string" }, time: { type: "string" }, mac1: { type: "string" }, mac2: { type: "string" } },
    },
  },
};

const idParams = {
  type: "object",
  required: ["purchaseId"],
  properties: { purchaseId: { type: "string", minLength: 1, maxLength: 64 } },
};

const completionSchema = {
  params: idParams,
  body: {
    type: "object",
    additionalProperties: false,
    required: ["outcome"],
    properties: {
      outcome: { type: "string", enum: ["debited", "not-debited", "unknown"] },
      mac2: { type: "string", pattern: HEX8 },
      tac: { type: "string", pattern: HEX8 },
    },
  },
  response: {
    200: {
      type: "object",
      properties: {
        purchaseId: { type: "string" }, status: { type: "string" }, outcome: { type: "string" }, tsn: { type: "integer" },
        mac2Valid: { type: "boolean" }, tacValid: { type: "boolean" },
      },
    },
  },
};

export interface PurchaseRoutesOptions {
  service: PurchaseService;
  /** Who is asking, from the request's client certificate. */
  clientOf(request: FastifyRequest): Client;
}

export function registerPurchases(app: FastifyInstance, { service, clientOf }: PurchaseRoutesOptions): void {
  app.post<{ Body: AuthorizeRequest }>("/v1/purchases", { schema: authorizeSchema }, async (request, reply) => {
    const answer = await service.authorize(request.body, clientOf(request));
    return reply.code(201).send(answer);
  });

  app.post<{ Params: { purchaseId: string }; Body: CompletionRequest }>("/v1/purchases/:purchaseId/completion", { schema: completionSchema },
    async (request) => service.complete(request.params.purchaseId, request.body, clientOf(request)));

  app.get<{ Params: { purchaseId: string } }>("/v1/purchases/:purchaseId", { schema: { params: idParams } },
    async (request) => service.view(request.params.purchaseId, clientOf(request)));

  app.get<{ Params: { businessDay: string }; Querystring: { format?: "jsonl" | "csv" } }>("/v1/settlement/:businessDay", {
    schema: {
      params: { type: "object", required: ["businessDay"], properties: { businessDay: { type: "string", pattern: "^[0-9]{8}$" } } },
      querystring: { type: "object", additionalProperties: false, properties: { format: { type: "string", enum: ["jsonl", "csv"] } } },
    },
  }, async (request, reply) => {
    const client = clientOf(request);
    if (client.kind !== "operator") throw new FrontendError("CLIENT_NOT_ALLOWED", 403, "the settlement export is for operator certificates");
    const format = request.query.format ?? "jsonl";
    const records = await service.settlement(request.params.businessDay);
    request.log.info({ businessDay: request.params.businessDay, records: records.length, operator: client.commonName }, "settlement exported");
    return reply.type(format === "csv" ? "text/csv; charset=utf-8" : "application/x-ndjson").send(formatSettlement(records, format));
  });
}
