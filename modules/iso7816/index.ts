export * from "./apdu";
export * from "./errors";
export * from "./status";
export * from "./transmit";
