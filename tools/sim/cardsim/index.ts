export * from "./card";
export * from "./issue";
