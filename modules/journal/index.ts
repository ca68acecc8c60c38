export * from "./crc32";
export * from "./journal";
export * from "./storage";
