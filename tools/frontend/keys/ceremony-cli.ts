/**
 * The key ceremony from the command line (docs/keys.md), on the token a front-end configuration names:
 *
 *   npm run frontend -- keys create --config <file> --key INDEX:VERSION:3des|sm4 [--no-load-key yes] [--derivation two-level]
 *   npm run frontend -- keys import --config <file> --from <purse-keystore/1 JSON file>
 *   npm run frontend -- keys list   --config <file>
 *   npm run frontend -- keys retire --config <file> --key INDEX:VERSION:3des|sm4
 *
 * list prints check values (KCV), never keys. A running key service picks up created and retired versions within a
 * second: cards of a new version pay while those of the old one still do, until it is retired.
 */
import { readFileSync } from "node:fs";
import { isPkcs11KeyStore, loadConfigFile } from "../config";
import type { KeyStoreFile, MasterKeyRef } from "./keystore";
import { Token, createTokenKeys, importTokenKeys, listTokenKeys, retireTokenKeys, type KeyListing } from "./pkcs11";
import { CodedError } from "../../../modules/errors/errors";

export class CeremonyUsageError extends CodedError {
  constructor(message: string) {
    super("USAGE", message);
  }
}

export const CEREMONY_COMMANDS = ["create", "import", "list", "retire"] as const;

export function parseKeyRef(text: string | undefined): MasterKeyRef {
  const m = /^([0-9]{1,3}):([0-9]{1,3}):(3des|sm4)$/.exec(text ?? "");
  if (!m || Number(m[1]) > 255 || Number(m[2]) > 255) throw new CeremonyUsageError(`--key must be INDEX:VERSION:3des|sm4, got ${text ?? "nothing"}`);
  return { keyIndex: Number(m[1]), keyVersion: Number(m[2]), algorithm: m[3] as "3des" | "sm4" };
}

const line = (k: KeyListing) => `${k.ref.keyIndex}:${k.ref.keyVersion}:${k.ref.algorithm}\t${k.role}\tKCV ${k.kcv}\t${k.retired ? "retired" : "active"}\t${k.derivation}`;

export function keyCeremony(command: string, option: (name: string, required?: boolean) => string | undefined, out: (text: string) => void = console.log): void {
  const config = loadConfigFile(option("config")!);
  if (!isPkcs11KeyStore(config.keyStore)) throw new CeremonyUsageError("the configuration's keyStore is not {pkcs11: ...}: the key ceremony works on a token");
  const token = new Token(config.keyStore.pkcs11);
  try {
    switch (command) {
      case "create": {
        const derivation = option("derivation", false) ?? "one-level";
        if (derivation !== "one-level" && derivation !== "two-level") throw new CeremonyUsageError("--derivation must be one-level or two-level");
        const made = createTokenKeys(token, parseKeyRef(option("key")), { load: option("no-load-key", false) === undefined, derivation });
        for (const k of made) out(`created ${line(k)}`);
        return;
      }
      case "import": {
        const from = option("from")!;
        const file = JSON.parse(readFileSync(from, "utf8")) as KeyStoreFile;
        for (const k of importTokenKeys(token, file)) out(`imported ${line(k)}`);
        out(`the keys are in the token now: destroy ${from} (it holds them in clear)`);
        return;
      }
      case "list":
        for (const k of listTokenKeys(token)) out(line(k));
        return;
      case "retire": {
        const ref = parseKeyRef(option("key"));
        out(`retired ${retireTokenKeys(token, ref)} keys of ${ref.keyIndex}:${ref.keyVersion}:${ref.algorithm}`);
        return;
      }
      default:
        throw new CeremonyUsageError(`unknown keys command ${command} (${CEREMONY_COMMANDS.join(", ")})`);
    }
  } finally {
    token.close();
  }
}
