/**
 * The fleet's storage on both engines: status reports (latest + bounded history), configuration scopes with their
 * versions and optimistic check, group membership, the audit, and the effective configuration a terminal sees.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import type { StatusReport } from "../../../modules/frontend-client/status";
import { openStore, STATUS_HISTORY_LIMIT, type Store } from "../../../tools/frontend/index";
import { describeEngines, newDatabasePath, type Fixture } from "../frontend/support";
import { ensureDatabase } from "../frontend/postgres-support";

const A = "00AABBCC0001";
const B = "00AABBCC0002";

function report(terminalId: string, sequence: number, extra: Partial<StatusReport> = {}): StatusReport {
  return {
    terminalId, firmware: "0.1.0", reason: sequence === 1 ? "start" : "interval", sequence, sentAt: 1_800_000_000_000 + sequence, uptimeMs: sequence * 1000,
    journal: { usedBlocks: 1, blocks: 16, liveRecords: 2, fillPercent: 6 }, pendingCompletions: 0, unresolved: 0,
    counts: { approvals: sequence, declines: {}, tears: 0, readerFaults: 0, frontendErrors: 0 }, config: { version: 0, refused: [] },
    ...extra,
  };
}

const code = (c: string) => (e: unknown) => (e as { code?: string }).code === c;

describeEngines("fleet store", function (engine) {
  this.timeout(60_000);
  const dir = mkdtempSync(path.join(tmpdir(), "fleet-store-"));
  let database: string;
  let store: Store;

  before(async () => {
    database = newDatabasePath({ dir } as Fixture);
    await ensureDatabase(database);
    store = await openStore(database, { durability: "normal" });
  });
  after(async () => {
    await store?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("keeps each terminal's latest report and a history bounded at STATUS_HISTORY_LIMIT, newest first", async () => {
    const total = STATUS_HISTORY_LIMIT + 25;
    for (let i = 1; i <= total; i++) await store.fleet.recordStatus(report(A, i), 1000 + i);
    await store.fleet.recordStatus(report(B.toLowerCase(), 1, { pendingCompletions: 3 }), 5000);
    const latest = await store.fleet.latestStatus();
    assert.deepEqual(latest.map((r) => [r.terminalId, r.report.sequence, r.receivedAt]), [[A, total, 1000 + total], [B, 1, 5000]]);
    assert.equal(latest[1]!.report.pendingCompletions, 3);
    const all = await store.fleet.statusHistory(A, 10_000);
    assert.equal(all.length, STATUS_HISTORY_LIMIT);
    assert.deepEqual([all[0]!.report.sequence, all.at(-1)!.report.sequence], [total, total - STATUS_HISTORY_LIMIT + 1]);
    assert.deepEqual((await store.fleet.statusHistory(A, 3)).map((r) => r.report.sequence), [total, total - 1, total - 2]);
    await assert.rejects(store.fleet.statusHistory("nope", 3), code("CONFIG_SCOPE_INVALID"));
    await assert.rejects(store.fleet.recordStatus({ ...report(A, 1), terminalId: "x" }), code("VALIDATION"));
  });

  it("versions each scope, refuses a stale version with CONFIG_VERSION_CONFLICT, and audits old and new", async () => {
    assert.deepEqual(await store.fleet.getConfigScope("defaults"), { scope: "defaults", version: 0, revision: 0, settings: {}, updatedAt: null, updatedBy: null });
    const v1 = await store.fleet.putConfigScope("defaults", { maxAmount: 5000, message: "Welcome" }, "alice", 0);
    assert.equal(v1.version, 1);
    const v2 = await store.fleet.putConfigScope("defaults", { maxAmount: 4000 }, "bob", 1);
    assert.equal(v2.version, 2);
    assert.ok(v2.revision > v1.revision);
    await assert.rejects(store.fleet.putConfigScope("defaults", { maxAmount: 1 }, "carol", 1),
      (e: { code?: string; statusCode?: number; currentVersion?: number }) => e.code === "CONFIG_VERSION_CONFLICT" && e.statusCode === 409);
    // Without an expected version the change is taken as it is (last writer wins, still audited).
    assert.equal((await store.fleet.putConfigScope("defaults", { maxAmount: 3000 }, "dave")).version, 3);
    const current = await store.fleet.getConfigScope("defaults");
    assert.deepEqual([current.version, current.settings, current.updatedBy], [3, { maxAmount: 3000 }, "dave"]);
    const audit = await store.fleet.configAudit({ scope: "defaults", limit: 10 });
    assert.deepEqual(audit.map((a) => [a.version, a.actor, a.kind, a.old, a.new]), [
      [3, "dave", "settings", { maxAmount: 4000 }, { maxAmount: 3000 }],
      [2, "bob", "settings", { maxAmount: 5000, message: "Welcome" }, { maxAmount: 4000 }],
      [1, "alice", "settings", null, { maxAmount: 5000, message: "Welcome" }],
    ]);
    assert.ok(audit.every((a) => Number.isInteger(a.at) && a.at > 0));
  });

  it("refuses a bad value with the terminal's own validator, naming the field, and changes nothing", async () => {
    const before = await store.fleet.getConfigScope("defaults");
    for (const [values, field] of [
      [{ maxAmount: 0 }, "maxAmount"], [{ maxAmount: 1.5 }, "maxAmount"], [{ maxAmount: "100" }, "maxAmount"],
      [{ applicationOrder: ["tunion", "tunion"] }, "applicationOrder"], [{ strict: "yes" }, "strict"],
      [{ statusEveryMs: 10 }, "statusEveryMs"], [{ message: "x".repeat(65) }, "message"], [{ message: "a\nb" }, "message"],
      [{ colour: "red" }, "colour"], [[], "settings"], [null, "settings"],
    ] as [unknown, string][]) {
      await assert.rejects(store.fleet.putConfigScope("defaults", values, "eve"),
        (e: { code?: string; statusCode?: number; message?: string }) => e.code === "CONFIG_INVALID" && e.statusCode === 400 && e.message!.includes(field),
        JSON.stringify(values));
    }
    for (const scope of ["", "group:", "group:a b", "terminal:123", "terminals:00AABBCC0001", "default"]) {
      await assert.rejects(store.fleet.putConfigScope(scope, {}, "eve"), code("CONFIG_SCOPE_INVALID"), scope);
    }
    assert.deepEqual(await store.fleet.getConfigScope("defaults"), before);
  });

  it("gives a terminal defaults -> group -> terminal, key by key, with a version that grows with every change it sees", async () => {
    await store.fleet.putConfigScope("defaults", { maxAmount: 3000, message: "Hello", strict: false }, "ops");
    await store.fleet.putConfigScope("group:north", { maxAmount: 2000, applicationOrder: ["cityunion", "tunion"] }, "ops");
    await store.fleet.putConfigScope("group:south", { maxAmount: 1500 }, "ops");
    await store.fleet.putConfigScope(`terminal:${A.toLowerCase()}`, { message: "Out of cups" }, "ops");
    const alone = await store.fleet.effectiveConfig(A);
    assert.deepEqual([alone.group, alone.settings], [null, { maxAmount: 3000, message: "Out of cups", strict: false }]);

    await store.fleet.setTerminalGroup(A, "north", "ops");
    const north = await store.fleet.effectiveConfig(A.toLowerCase());
    assert.deepEqual([north.group, north.settings], ["north", { maxAmount: 2000, message: "Out of cups", strict: false, applicationOrder: ["cityunion", "tunion"] }]);
    assert.ok(north.version > alone.version, `${north.version} > ${alone.version}`);
    assert.deepEqual(north.layers.map((l) => l.scope), ["defaults", "group:north", `terminal:${A}`]);

    // Moving to a group last changed long ago still raises the version: the terminal must notice the move.
    await store.fleet.setTerminalGroup(A, "south", "ops");
    const south = await store.fleet.effectiveConfig(A);
    assert.equal(south.settings.maxAmount, 1500);
    assert.ok(south.version > north.version);
    // The same group again changes nothing and is not audited.
    const audited = (await store.fleet.configAudit({ scope: `terminal:${A}` })).length;
    await store.fleet.setTerminalGroup(A, "south", "ops");
    assert.equal((await store.fleet.effectiveConfig(A)).version, south.version);
    assert.equal((await store.fleet.configAudit({ scope: `terminal:${A}` })).length, audited);

    // A change to a scope the terminal does not take leaves its version alone.
    await store.fleet.putConfigScope("group:north", { maxAmount: 2500 }, "ops");
    assert.equal((await store.fleet.effectiveConfig(A)).version, south.version);
    await store.fleet.setTerminalGroup(A, null, "ops");
    const none = await store.fleet.effectiveConfig(A);
    assert.deepEqual([none.group, none.settings.maxAmount], [null, 3000]);
    assert.ok(none.version > south.version);
    assert.deepEqual(await store.fleet.terminalGroups(), []);
    await store.fleet.setTerminalGroup(B, "south", "ops");
    assert.deepEqual(await store.fleet.terminalGroups(), [{ terminalId: B, group: "south" }]);

    const membership = (await store.fleet.configAudit({ scope: `terminal:${A}` })).filter((a) => a.kind === "group");
    assert.deepEqual(membership.map((a) => [a.old, a.new]), [
      [{ group: "south" }, { group: null }], [{ group: "north" }, { group: "south" }], [{ group: null }, { group: "north" }],
    ]);
    assert.deepEqual((await store.fleet.configScopes()).map((s) => s.scope), ["defaults", "group:north", "group:south", `terminal:${A}`]);
    assert.ok((await store.fleet.configAudit({ limit: 2 })).length === 2);
    await assert.rejects(store.fleet.setTerminalGroup(A, "bad name", "ops"), code("CONFIG_SCOPE_INVALID"));
  });

  if (engine === "postgres") {
    it("lets exactly one of racing changes made from the same version win", async () => {
      const others = await Promise.all([1, 2, 3].map(() => openStore(database, { poolSize: 2 })));
      try {
        const base = (await store.fleet.getConfigScope("group:race")).version;
        const results = await Promise.allSettled([store, ...others].map((s, i) => s.fleet.putConfigScope("group:race", { maxAmount: 100 + i }, `w${i}`, base)));
        assert.equal(results.filter((r) => r.status === "fulfilled").length, 1);
        assert.ok(results.every((r) => r.status === "fulfilled" || (r.reason as { code?: string }).code === "CONFIG_VERSION_CONFLICT"));
        assert.equal((await store.fleet.getConfigScope("group:race")).version, base + 1);
        assert.equal((await store.fleet.configAudit({ scope: "group:race" })).length, 1);
      } finally {
        await Promise.all(others.map((s) => s.close()));
      }
    });
  }
});
