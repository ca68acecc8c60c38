export * from "./client";
export * from "./status";
