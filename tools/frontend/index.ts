/** The consumption front-end: start one in-process, or import its parts (key store, journal, client). */
export { startFrontend, TLS_CIPHERS, type RunningFrontend } from "./app";
export { checkConfig, loadConfigFile, ConfigError, type FrontendConfig, type Route, type CityServed, type Application } from "./config";
export { FrontendError, ERROR_CODES } from "./errors";
export {
  FileKeyStore, KeyStoreError, KEY_STORE_FORMAT, readDevelopmentMasterKeys, writeDevelopmentKeyStore,
  type KeyStore, type KeyStoreFile, type KeyStoreFileEntry, type MasterKeyRef, type CardKeyFactors, type PurchaseSessionInput, type DevelopmentKeyEntry,
} from "./keys/keystore";
export { Journal, openDatabase, SCHEMA_VERSION } from "./storage/journal";
export { openStore, isPostgresUrl, PostgresStore, SqliteStore, type Store, type Engine, type PurchaseRow, type PurchaseInsert, type SettleValues } from "./storage/store";
export {
  formatSettlement, settlementFromDatabase, SETTLEMENT_FIELDS,
  type AuthorizeRequest, type AuthorizeAnswer, type CompletionRequest, type CompletionAnswer, type PurchaseView, type PurchaseStatus, type SettlementRecord, type Outcome,
} from "./purchases/service";
export { chinaDateTime } from "../../modules/china-time/china-time";
export {
  STATUS_HISTORY_LIMIT, ConfigConflictError, ConfigInvalidError, ConfigScopeError, normalScope, terminalScope,
  type FleetStore, type StatusRow, type ConfigScope, type ConfigAuditRow, type EffectiveConfig, type TerminalGroupRow,
} from "./fleet/store";
