export * from "./client";
export * from "./utf8";
