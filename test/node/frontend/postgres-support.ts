/**
 * PostgreSQL for the tests: the throwaway cluster of tools/rigs/frontend/pg-cluster.ts, started once per test process. Each
 * front-end under test gets its own schema (search_path in the URL), which is far cheaper than a database per test.
 *
 * Without PostgreSQL the suites that need it skip themselves with the install command.
 */
import pg from "pg";
import { isPostgresUrl } from "../../../tools/frontend/index";
import { type Cluster } from "../../../tools/rigs/frontend/pg-cluster";

export { POSTGRES_INSTALL, postgresCluster, postgresSkipReason, type Cluster } from "../../../tools/rigs/frontend/pg-cluster";

let schemaCounter = 0;

/** A URL for a new schema in the cluster (search_path in the URL); ensureDatabase creates it. */
export function newPostgresUrl(c: Cluster): string {
  return `${c.url}?options=${encodeURIComponent(`-c search_path=t${process.pid}_${++schemaCounter}`)}`;
}

/** Creates the schema a test URL names, if it is a PostgreSQL one (SQLite files are created by the front-end). */
export async function ensureDatabase(database: string): Promise<void> {
  if (!isPostgresUrl(database)) return;
  const schema = /search_path%3D(t[0-9_]+)/.exec(database)?.[1];
  if (!schema) return;
  const client = new pg.Client({ connectionString: database.replace(/\?.*$/, "") });
  await client.connect();
  try {
    await client.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
  } finally {
    await client.end();
  }
}

/** Reads rows straight from a front-end's database with a connection of its own (`?` placeholders). */
export { readRows } from "../../../tools/rigs/frontend/reader";
