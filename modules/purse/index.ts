export * from "./amount";
export * from "./bcd";
export * from "./commands";
export * from "./errors";
export * from "./files";
export * from "./responses";
export * from "./session";
export * from "./trace";
