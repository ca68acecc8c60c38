/**
 * `npm run bench` (last line): one purchase made by the terminal inside the XS engine (src/ + modules/, as on the
 * ESP32) against the PN532 emulator and the front-ends over mutual TLS. Prints XS's compute meter for the purchase
 * (pay request to the front-end's completion acknowledgement) and its heap in slots: live once the modules are loaded
 * (preloaded into flash on the ESP32), live when idle, live at the busiest turn of the purchase, and allocated
 * during it (garbage included). Slots are 16 bytes on the ESP32. A figure, not a test.
 */
import { INSTANT_TIMING } from "../../sim/pn532sim/index";
import { LEVEL1_CITY, Simulation, TERMINAL_ID } from "../../sim/simulation/index";
import { XsTerminalHost } from "../../../hosts/xs/parent";
import { writeFigure } from "./figures";

const sim = await Simulation.start({ timing: INSTANT_TIMING, noTerminal: true });
let xs: XsTerminalHost | undefined;
try {
  xs = await XsTerminalHost.start({ lines: sim.terminalLines(), tls: sim.terminalTls(), config: { terminalId: TERMINAL_ID, level1Url: sim.level1.url } });
  const startup = { ...xs.meter };
  let n = 0;
  const purchase = async () => {
    const name = `xs-bench-${++n}`;
    sim.addCard({ name, profiles: [{ layout: "tunion", algorithm: "3des", asn: `031010000000880${String(n).padStart(5, "0")}`, cityCode: LEVEL1_CITY, balance: 10_000 }] });
    const events = await sim.pay(name, 100, `XSB-${n}`);
    const approved = events.find((e) => e.event === "approved");
    if (!approved) throw new Error(`purchase ${n} was not approved: ${JSON.stringify(events.at(-1))}`);
    const deadline = Date.now() + 10_000;
    while (!sim.purchases(1).some((p) => p.id === approved.purchaseId && p.status === "completed")) {
      if (Date.now() > deadline) throw new Error("no completion");
      await new Promise((r) => setTimeout(r, 5));
    }
    // Let the terminal see the acknowledgement and retire the journal records.
    await new Promise((r) => setTimeout(r, 50));
  };
  // The first purchase of a worker pays for lazy initialisation (regular expressions, first records); measure the second.
  await purchase();
  const liveBefore = (await xs.collect()).currentHeapCount;
  xs.resetMeter();
  await purchase();
  const measured = { ...xs.meter };
  const liveAfter = (await xs.collect()).currentHeapCount;
  xs.collectEachTick = true;
  xs.resetMeter();
  await purchase();
  const peakLive = xs.meter.maxHeapCount;
  const figures = {
    bench: "xs-purchase", engine: "XS (@agoric/xsnap 0.15.0)",
    startupCompute: startup.compute,
    purchaseCompute: measured.compute, deliveries: measured.deliveries,
    liveSlotsModulesLoaded: xs.loadedSlots, liveSlotsIdle: liveBefore, liveSlotsAfterPurchase: liveAfter, peakLiveSlots: peakLive,
    slotsAllocatedDuringPurchase: measured.maxHeapCount - liveBefore,
    esp32TerminalStateBytes: (liveBefore - xs.loadedSlots) * 16, esp32PurchaseWorkingBytes: (peakLive - liveBefore) * 16,
    xsnapArenaBytes: measured.allocate,
  };
  console.log(JSON.stringify(figures));
  const fmt = (v: number) => v.toLocaleString("en-US");
  const written = writeFigure({
    name: "xs", command: "npm run bench", describes: ["src", "modules", "hosts/xs"], title: "The XS figures",
    body: [
      "| figure | value | meaning |",
      "|---|---|---|",
      `| compute, the terminal's start | ${fmt(figures.startupCompute)} | XS's deterministic count of work from loading the modules to \`ready\` |`,
      `| compute, one purchase | ${fmt(figures.purchaseCompute)} | the second purchase of a fresh worker, from \`pay\` to the front-end's completion acknowledgement |`,
      `| slots live, modules loaded | ${fmt(figures.liveSlotsModulesLoaded)} | code and constant objects: preloaded into flash on the ESP32, no RAM |`,
      `| slots live, terminal idle | ${fmt(figures.liveSlotsIdle)} | ${fmt(figures.esp32TerminalStateBytes)} bytes of terminal state on the ESP32 (16 bytes a slot) |`,
      `| slots live after the purchase | ${fmt(figures.liveSlotsAfterPurchase)} | what a purchase leaves behind (it should equal the idle figure) |`,
      `| slots live at the busiest turn | ${fmt(figures.peakLiveSlots)} | ${fmt(figures.esp32PurchaseWorkingBytes)} bytes of working memory while a purchase runs |`,
      `| slots allocated during the purchase | ${fmt(figures.slotsAllocatedDuringPurchase)} | garbage included: the collector reclaims it |`,
    ].join("\n"),
  });
  if (written) console.error(`wrote ${written}`);
} finally {
  await xs?.close();
  await sim.close();
}
