/**
 * npm run frontend -- revoke --config <file> --terminal <id> [--serial <hex>] [--reason <text>]
 * Writes the revocation to the front-end's database (either engine); every running front-end process picks it up
 * within its next revocation poll and closes the terminal's connections.
 */
import { userInfo } from "node:os";
import { loadConfigFile } from "../config";
import { openStore } from "../storage/store";
import type { Revocation } from "./store";

export async function revokeFromCli(configFile: string, terminalId: string, serial: string | undefined, reason: string | undefined): Promise<Revocation> {
  const config = loadConfigFile(configFile);
  const store = await openStore(config.database, { durability: "full", poolSize: 1 });
  try {
    let actor = "cli";
    try {
      actor = `cli:${userInfo().username}`;
    } catch { /* no user name on this system: "cli" */ }
    return await store.terminals.revoke(terminalId, serial ?? null, reason ?? "unspecified", actor, Date.now());
  } finally {
    await store.close();
  }
}
