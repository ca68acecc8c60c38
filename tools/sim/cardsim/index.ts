export * from "./card";
export * from "./issue";
export * from "./phone";
