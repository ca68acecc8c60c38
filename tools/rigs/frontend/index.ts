/** What tests, benchmarks and rigs use to drive and inspect a front-end from outside: never deployed. */
export { FrontendClient, FrontendHttpError, type ClientTls, type RawResponse } from "./client";
export { DatabaseReader, readRows } from "./reader";
