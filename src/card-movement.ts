import type { Application } from "../modules/frontend-client/client";

/** What names a movement of money on one card, for the front-end that keys it: a purchase's intent and a refund's. */
export interface CardMovement {
  purchaseId: string;
  url: string;
  order: string;
  amount: number;
  asn: string;
  application: Application;
  at: number;
}
