/**
 * SoftHSM2, the development and test token: a configuration file and a token directory of their own under a given
 * directory (SOFTHSM2_CONF), and a token initialised with softhsm2-util. Nothing here holds a key.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import path from "node:path";
import { pathToFileURL } from "node:url";
import type { KeyStoreFile } from "./keystore";
import { SOFTHSM2_MODULE, Token, importTokenKeys, type Pkcs11Settings } from "./pkcs11";

export const SOFTHSM2_INSTALL = "apt-get install softhsm2";

/** Why SoftHSM2 cannot be used here (undefined: it can). */
export function softhsmMissing(): string | undefined {
  if (!existsSync(SOFTHSM2_MODULE)) return `SoftHSM2 is not installed (${SOFTHSM2_MODULE} missing): ${SOFTHSM2_INSTALL}`;
  const r = spawnSync("softhsm2-util", ["--version"], { encoding: "utf8" });
  if (r.status !== 0) return `softhsm2-util is not on the PATH: ${SOFTHSM2_INSTALL}`;
  return undefined;
}

/**
 * Makes dir/softhsm2.conf and dir/tokens, and a token labelled label there, its user PIN written to dir/label.pin
 * (mode 0600) unless one is given. Returns the key store settings that open it.
 */
export function initSoftHsmToken(dir: string, label: string, options: { pin?: string } = {}): Pkcs11Settings {
  const missing = softhsmMissing();
  if (missing) throw new Error(missing);
  const tokens = path.join(dir, "tokens");
  mkdirSync(tokens, { recursive: true, mode: 0o700 });
  const conf = path.join(dir, "softhsm2.conf");
  if (!existsSync(conf)) writeFileSync(conf, `directories.tokendir = ${tokens}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n`, { mode: 0o600 });
  const pin = options.pin ?? randomBytes(12).toString("hex");
  const r = spawnSync("softhsm2-util", ["--init-token", "--free", "--label", label, "--pin", pin, "--so-pin", randomBytes(12).toString("hex")],
    { encoding: "utf8", env: { ...process.env, SOFTHSM2_CONF: conf } });
  if (r.status !== 0) throw new Error(`softhsm2-util --init-token failed: ${r.stderr || r.stdout}`);
  let pinSource: Pick<Pkcs11Settings, "pin" | "pinFile">;
  if (options.pin !== undefined) pinSource = { pin };
  else {
    const pinFile = path.join(dir, `${label}.pin`);
    writeFileSync(pinFile, `${pin}\n`, { mode: 0o600 });
    pinSource = { pinFile };
  }
  return { module: SOFTHSM2_MODULE, tokenLabel: label, softhsm2Conf: conf, ...pinSource };
}

const SETTINGS_ENV = "SOFTHSM_IMPORT_SETTINGS";

/**
 * A new token holding the keys of a development key file, imported by a process of its own: SoftHSM2 reads its
 * configuration once per process, so a test or rig process that may already have opened another one never opens it.
 */
export function softHsmTokenWithKeys(dir: string, label: string, keyFile: string): Pkcs11Settings {
  const settings = initSoftHsmToken(dir, label);
  const r = spawnSync(process.execPath, ["--import", "tsx", import.meta.filename, keyFile],
    { cwd: path.resolve(import.meta.dirname, "../../.."), encoding: "utf8", env: { ...process.env, [SETTINGS_ENV]: JSON.stringify(settings) } });
  if (r.status !== 0) throw new Error(`importing ${keyFile} into token ${label} failed: ${r.stderr}`);
  return settings;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const token = new Token(JSON.parse(process.env[SETTINGS_ENV] ?? "null") as Pkcs11Settings);
  try {
    importTokenKeys(token, JSON.parse(readFileSync(process.argv[2]!, "utf8")) as KeyStoreFile);
  } finally {
    token.close();
  }
}
