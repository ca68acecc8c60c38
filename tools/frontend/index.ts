/** The consumption front-end: start one in-process, or import its parts (key store, journal, client). */
export { startFrontend, TLS_CIPHERS, type RunningFrontend } from "./server";
export { checkConfig, loadConfigFile, ConfigError, type FrontendConfig, type Route, type CityServed, type Application } from "./config";
export { FrontendError, ERROR_CODES } from "./errors";
export {
  FileKeyStore, KeyStoreError, KEY_STORE_FORMAT, readDevelopmentMasterKeys, writeDevelopmentKeyStore,
  type KeyStore, type KeyStoreFile, type KeyStoreFileEntry, type MasterKeyRef, type CardKeyFactors, type PurchaseSessionInput, type DevelopmentKeyEntry,
} from "./keystore";
export { Journal, openDatabase, SCHEMA_VERSION } from "./journal";
export { openStore, isPostgresUrl, PostgresStore, SqliteStore, type Store, type Engine, type PurchaseRow, type PurchaseInsert, type SettleValues } from "./store";
export {
  formatSettlement, settlementFromDatabase, SETTLEMENT_FIELDS,
  type AuthorizeRequest, type AuthorizeAnswer, type CompletionRequest, type CompletionAnswer, type PurchaseView, type PurchaseStatus, type SettlementRecord, type Outcome,
} from "./service";
export { chinaDateTime } from "../../modules/china-time/china-time";
export { FrontendClient, FrontendHttpError, type ClientTls, type RawResponse } from "./client";
export { DatabaseReader, readRows } from "./reader";
export {
  STATUS_HISTORY_LIMIT, ConfigConflictError, ConfigInvalidError, ConfigScopeError, normalScope, terminalScope,
  type FleetStore, type StatusRow, type ConfigScope, type ConfigAuditRow, type EffectiveConfig, type TerminalGroupRow,
} from "./fleet";
