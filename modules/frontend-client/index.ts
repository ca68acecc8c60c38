export * from "./client";
export * from "./status";
export * from "./refunds";
