/**
 * The key store a front-end process uses, from its configuration: the development file (in this process, with a
 * warning), the PKCS#11 token through the key service (started here, or shared: the socket of the primary's), or an
 * object passed in.
 */
import { isPkcs11KeyStore, type FrontendConfig } from "../config";
import { KeyServiceClient, KeyServiceSupervisor } from "./client";
import { FileKeyStore, type KeyStore } from "./keystore";
import type { Pkcs11Settings } from "./pkcs11-settings";

export type KeyLog = (level: "info" | "warn" | "error", fields: object, message: string) => void;

export interface OpenedKeyStore {
  keyStore: KeyStore;
  keySystem: string;
  close(): Promise<void>;
}

/** The one line a front-end prints when it keeps master keys in a file. */
export const FILE_KEY_STORE_WARNING = "key store: DEVELOPMENT ONLY: the master keys are in clear in a JSON file and in this process's memory; whoever reads either can make every card's keys (use keyStore.pkcs11)";

/** Starts the key service process for a PKCS#11 configuration, its deaths and restarts logged. */
export function startKeyService(settings: Pkcs11Settings, log: KeyLog): Promise<KeyServiceSupervisor> {
  return KeyServiceSupervisor.start(settings, {
    ready: (pid, d) => log("info", { keyService: { pid, module: d.module, token: d.token, sm4: d.sm4, keys: d.keys } },
      `key store: PKCS#11 token "${d.token}" through the key service (pid ${pid}), ${d.keys.length} key sets; SM4: ${d.sm4}`),
    died: (pid, code, signal, stderr) => log("error", { keyService: { pid, code, signal, stderr } }, "key service died: restarting it (requests meanwhile get 503 KEY_SERVICE_UNAVAILABLE)"),
  });
}

export async function openKeyStore(config: FrontendConfig, options: { keyServiceSocket?: string; log: KeyLog }): Promise<OpenedKeyStore> {
  const k = config.keyStore;
  if (typeof k === "string") {
    const store = FileKeyStore.load(k);
    options.log("warn", { keyStore: { kind: "file", path: k } }, FILE_KEY_STORE_WARNING);
    return { keyStore: store, keySystem: config.keySystem ?? store.keySystem, close: async () => {} };
  }
  if (isPkcs11KeyStore(k)) {
    const supervisor = options.keyServiceSocket ? undefined : await startKeyService(k.pkcs11, options.log);
    let client: KeyServiceClient;
    try {
      client = await KeyServiceClient.open(options.keyServiceSocket ?? supervisor!.socketPath);
    } catch (e) {
      await supervisor?.close();
      throw e;
    }
    if (options.keyServiceSocket) {
      const d = client.details()!;
      options.log("info", { keyService: { socket: options.keyServiceSocket, token: d.token, sm4: d.sm4 } }, `key store: PKCS#11 token "${d.token}" through the shared key service; SM4: ${d.sm4}`);
    }
    return {
      keyStore: client, keySystem: config.keySystem ?? k.pkcs11.keySystem ?? "",
      close: async () => {
        client.close();
        await supervisor?.close();
      },
    };
  }
  return { keyStore: k, keySystem: config.keySystem ?? "", close: async () => {} };
}
