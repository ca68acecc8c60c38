/**
 * The HTTP side of refunds (refunds.ts): POST /v1/refunds (authorize, MAC2), POST /v1/refunds/{purchaseId}/completion,
 * GET /v1/refunds/{purchaseId}, and the operators' GET /v1/settlement/{day}/refunds. Bodies are checked by schema:
 * types are never coerced and unknown fields are refused.
 */
import type { FastifyInstance, FastifyRequest } from "fastify";
import type { RefundAuthorizeRequest, RefundCompletion } from "../../../modules/frontend-client/refunds";
import type { FrontendConfig } from "../config";
import { FrontendError } from "../errors";
import type { KeyStore } from "../keys/keystore";
import { refundStoreFor } from "./store";
import { RefundService } from "./service";
import type { Client } from "../purchases/service";
import type { Store } from "../storage/store";

const HEX8 = "^[0-9A-Fa-f]{8}$";
const idParams = { type: "object", required: ["purchaseId"], properties: { purchaseId: { type: "string", minLength: 1, maxLength: 64 } } };

const authorizeSchema = {
  body: {
    type: "object",
    additionalProperties: false,
    required: ["terminalId", "purchaseId", "amount", "keyIndex", "application", "basicData", "initResponse"],
    properties: {
      terminalId: { type: "string", pattern: "^[0-9A-Fa-f]{12}$" },
      purchaseId: { type: "string", minLength: 1, maxLength: 64 },
      amount: { type: "integer", minimum: 1, maximum: 4294967295 },
      keyIndex: { type: "integer", minimum: 0, maximum: 255 },
      application: { type: "string", enum: ["tunion", "cityunion"] },
      basicData: { type: "string", pattern: "^[0-9A-Fa-f]{60}$" },
      initResponse: { type: "string", pattern: "^[0-9A-Fa-f]{32}$" },
    },
  },
};

const completionSchema = {
  params: idParams,
  body: {
    oneOf: [
      {
        type: "object", additionalProperties: false, required: ["outcome", "tac"],
        // proof "tac": the card's proof did not carry our MAC2 (docs/purse.md §9.1); the TAC alone decides.
        properties: { outcome: { const: "credited" }, tac: { type: "string", pattern: HEX8 }, proof: { const: "tac" } },
      },
      {
        type: "object", additionalProperties: false, required: ["outcome", "amount", "reason"],
        properties: {
          outcome: { const: "not-credited" }, amount: { type: "integer", minimum: 1, maximum: 4294967295 },
          reason: { type: "string", enum: ["card-gone", "no-load-key", "card-refused", "frontend-refused", "frontend-unavailable"] },
        },
      },
      { type: "object", additionalProperties: false, required: ["outcome"], properties: { outcome: { const: "unknown" } } },
    ],
  },
};

export interface RefundRoutesOptions {
  config: FrontendConfig;
  store: Store;
  keyStore: KeyStore;
  clientOf(request: FastifyRequest): Client;
  log(event: object, message: string): void;
}

export function registerRefunds(app: FastifyInstance, o: RefundRoutesOptions): RefundService | undefined {
  const refunds = refundStoreFor(o.store);
  const service = refunds && new RefundService(o.config, o.store, refunds, o.keyStore, o.log);
  const served = (): RefundService => {
    if (!service) throw new FrontendError("REFUNDS_UNAVAILABLE", 503, "this front-end process does not serve refunds");
    return service;
  };

  app.post<{ Body: RefundAuthorizeRequest }>("/v1/refunds", { schema: authorizeSchema }, async (request, reply) =>
    reply.code(201).send(await served().authorize(request.body, o.clientOf(request))));

  app.post<{ Params: { purchaseId: string }; Body: RefundCompletion }>("/v1/refunds/:purchaseId/completion", { schema: completionSchema },
    async (request) => served().complete(request.params.purchaseId, request.body, o.clientOf(request)));

  app.get<{ Params: { purchaseId: string } }>("/v1/refunds/:purchaseId", { schema: { params: idParams } },
    async (request) => served().view(request.params.purchaseId, o.clientOf(request)));

  app.get<{ Params: { businessDay: string } }>("/v1/settlement/:businessDay/refunds", {
    schema: { params: { type: "object", required: ["businessDay"], properties: { businessDay: { type: "string", pattern: "^[0-9]{8}$" } } } },
  }, async (request, reply) => {
    const client = o.clientOf(request);
    if (client.kind !== "operator") throw new FrontendError("CLIENT_NOT_ALLOWED", 403, "the settlement export is for operator certificates");
    const records = await served().settlement(request.params.businessDay);
    return reply.type("application/x-ndjson").send(records.map((r) => `${JSON.stringify(r)}\n`).join(""));
  });
  return service;
}
