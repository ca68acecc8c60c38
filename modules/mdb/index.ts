export * from "./errors";
export * from "./wire";
export * from "./commands";
export * from "./replies";
export * from "./link";
export * from "./cashless";
export * from "./stream";
