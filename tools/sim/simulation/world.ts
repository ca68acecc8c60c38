/**
 * The one whole-system bootstrap that the in-process simulation (tools/sim/simulation) and the hardware-in-the-loop rig
 * (tools/rigs/harness/rig.ts, front-ends in their own processes) share: the development PKI and key store, the two
 * front-ends' configurations with the level-1 routing table, free ports, and cards issued from the same master keys.
 */
import { createServer } from "node:net";
import path from "node:path";
import { VirtualCard, issueCard, type ApplicationProfile, type VirtualCardOptions } from "../cardsim/index";
import { readDevelopmentMasterKeys, writeDevelopmentKeyStore, type FrontendConfig } from "../../frontend/index";
import { generateDevelopmentPki, type DevelopmentPki } from "../../pki/index";

export const TERMINAL_ID = "310001029313";
/** The city of the national (level-1) T-Union cards, and the one city with a level-2 front-end of its own. */
export const LEVEL1_CITY = "1000";
export const LEVEL2_CITY = "4100";
/** A card the level-1 front-end refuses (CARD_HOTLISTED). */
export const HOTLISTED_ASN = "03101000000000000999";

/**
 * A port for a front-end that must keep its number across restarts (the routes and a proxy point at it). It is picked
 * below Linux's ephemeral range (32768-60999), so the outgoing connections of this machine's other processes, which
 * take ports from that range, cannot take it between this check and the front-end's bind.
 */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    if (await canListen(port)) return port;
  }
  throw new Error("no free port found below the ephemeral range");
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}

export interface World {
  pki: DevelopmentPki;
  keyStore: string;
}

/** A fresh development PKI (front-end server and terminal certificates) and key store under `dir`. */
export async function prepareWorld(dir: string, options: { terminalIds?: string[]; rogueTerminalIds?: string[]; rsaBits?: number } = {}): Promise<World> {
  const pki = await generateDevelopmentPki({
    dir: path.join(dir, "pki"), terminalIds: options.terminalIds ?? [TERMINAL_ID], rogueTerminalIds: options.rogueTerminalIds, rsaBits: options.rsaBits,
  });
  const keyStore = path.join(dir, "keys.json");
  writeDevelopmentKeyStore(keyStore);
  return { pki, keyStore };
}

export interface FrontendPair {
  1: FrontendConfig;
  2: FrontendConfig;
}

/**
 * The level-1 (national: every city's T-Union cards, and the routing table) and level-2 (city 4100's own cards)
 * front-ends. `urls` are what terminals are told (a fault proxy's, when there is one); `tls: "paths"` names the PEM
 * files, for a front-end started as its own process from a JSON config.
 */
export function frontendConfigs(world: World, o: {
  dir: string; ports: { 1: number; 2: number }; urls: { 1: string; 2: string }; tls: "pem" | "paths"; log: { level: string };
  reconciliationTimeoutMs?: number; reconciliationSweepMs?: number; names?: { 1: string; 2: string };
}): FrontendPair {
  const { pki } = world;
  const tls = o.tls === "pem"
    ? { cert: pki.server.certPem, key: pki.server.keyPem, clientCa: pki.ca.certPem }
    : { cert: pki.server.certPath, key: pki.server.keyPath, clientCa: pki.ca.certPath };
  const common = {
    tls, keyStore: world.keyStore, log: o.log, reconciliationTimeoutMs: o.reconciliationTimeoutMs ?? 60_000,
    ...(o.reconciliationSweepMs !== undefined ? { reconciliationSweepMs: o.reconciliationSweepMs } : {}),
  };
  return {
    2: {
      ...common, name: o.names?.[2] ?? `level-2 (city ${LEVEL2_CITY})`, level: 2, listen: { host: "127.0.0.1", port: o.ports[2] },
      database: path.join(o.dir, "level2.db"), cities: [{ cityCode: LEVEL2_CITY, applications: ["cityunion"] }],
    },
    1: {
      ...common, name: o.names?.[1] ?? "level-1 (national)", level: 1, listen: { host: "127.0.0.1", port: o.ports[1] },
      database: path.join(o.dir, "level1.db"), cities: [{ cityCode: "*", applications: ["tunion"] }], hotlist: [HOTLISTED_ASN],
      routes: [
        { cityCode: "*", application: "tunion", level: 1, url: o.urls[1], keyIndex: 1 },
        { cityCode: LEVEL2_CITY, application: "cityunion", level: 2, url: o.urls[2], keyIndex: 1 },
      ],
      routesVersion: 1,
    },
  };
}

/** A virtual card issued from the world's master keys (key index and version 1 unless the profile says otherwise). */
export function issueWorldCard(world: World, profiles: Omit<ApplicationProfile, "masterKeys">[], options: VirtualCardOptions = {}): VirtualCard {
  return new VirtualCard(issueCard(profiles.map((p) => ({
    ...p, masterKeys: readDevelopmentMasterKeys(world.keyStore, { keyIndex: p.keyIndex ?? 1, keyVersion: p.keyVersion ?? 1, algorithm: p.algorithm }),
  }))), options);
}
