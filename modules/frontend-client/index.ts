export * from "./client";
export * from "./refunds";
