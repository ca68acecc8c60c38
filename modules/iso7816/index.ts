export * from "./apdu";
export * from "./errors";
export * from "./hex";
export * from "./status";
export * from "./transmit";
