/**
 * `npm run bench:fleet`: a fleet of terminals over a real lossy network (network namespaces, tools/fleet): for each
 * case (40 ms ± 10 ms with 1 % loss; 150 ms with 5 % loss; a partition healed after 30 s) the approvals per second,
 * tap-to-approved p50/p99, completions delivered and how long the last one took after the end (or the heal), and
 * the money check. Needs root, `ip` and (on a kernel without netem) a C compiler. Prints JSON; progress on stderr.
 * A first case with nothing impaired is the reference: what this machine's CPUs allow the same fleet.
 *   FLEET_TERMINALS (50), FLEET_PER_NAMESPACE (10), FLEET_LOAD_MS (20000), FLEET_PARTITION_MS (30000)
 */
import { loadavg } from "node:os";
import { fleetCases, runFleet } from "../fleet/fleet";
import { netnsUnavailable } from "../fleet/netns";

const why = netnsUnavailable();
if (why) {
  console.error(`bench:fleet cannot run here: ${why}`);
  process.exit(2);
}
const terminals = Number(process.env.FLEET_TERMINALS ?? 50);
const perNamespace = Number(process.env.FLEET_PER_NAMESPACE ?? 10);
const loadMs = Number(process.env.FLEET_LOAD_MS ?? 20_000);
const partitionMs = Number(process.env.FLEET_PARTITION_MS ?? 30_000);
const only = process.env.FLEET_CASES?.split(",").map(Number);
const cases = fleetCases({ loadMs, partitionMs, baseline: true }).filter((_, i) => !only || only.includes(i + 1));
const loadBefore = loadavg()[0]!;
const result = await runFleet({ terminals, perNamespace, cases, log: (line) => process.stderr.write(`${line}\n`) });
// The machine's load average beside the figures: on a shared machine they are CPU-bound (see the reference case).
console.log(JSON.stringify({ ...result, loadAverage: { before: loadBefore, after: loadavg()[0] } }, null, 2));
process.exit(result.cases.every((c) => c.money.violations === 0 && c.completions.delivered === c.completions.approved) ? 0 : 1);
