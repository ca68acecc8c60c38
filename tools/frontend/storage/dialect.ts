/** What differs between the two engines' SQL in the migrations: only a few types (docs/frontend-storage.md). */
export interface SqlDialect {
  /** A whole number that may pass 2^31 (TSNs, amounts, epoch milliseconds). */
  int64: string;
  /** An integer primary key numbered by the database. */
  serialKey: string;
}

export const SQLITE_DIALECT: SqlDialect = { int64: "INTEGER", serialKey: "INTEGER PRIMARY KEY" };
export const POSTGRES_DIALECT: SqlDialect = { int64: "BIGINT", serialKey: "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY" };
