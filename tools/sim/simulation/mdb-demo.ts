/**
 * `npm start -- --mdb`: a simulated vending machine end to end. The VMC simulator initialises the terminal as a
 * level-3 cashless device and runs the selection-first flows, as a strict VMC (docs/mdb.md §2.1): READER CONFIG,
 * PERIPHERAL ID, END SESSION and VEND DENIED must be the direct replies to their commands, so a reader that
 * deferred them would fail here. The flows: a vend that succeeds, a vend that fails (the price is
 * loaded back onto the card, the VMC hears the refund done), a declined card, a cancelled selection; then a card-first session
 * (the tap begins it with the balance, two vends in it). Each MDB exchange is printed
 * decoded, next to the terminal's APDU trace. Exit status 0 when every flow ended as scripted.
 */
import type { TerminalEvent } from "../../../src/terminal";
import { LEVEL1_CITY, Simulation } from "./index";
import { startVending, type Vending } from "./mdb-vending";

export async function runMdbDemo(options: { link?: "pty" | "memory"; log?: (line: string) => void } = {}): Promise<number> {
  const log = options.log ?? ((line: string) => console.log(line));
  let vending: Vending | undefined;
  const sim = await Simulation.start({
    link: options.link ?? "memory", trace: (line) => log(`    ${line}`),
    onEvent: (e: TerminalEvent) => vending?.onTerminalEvent(e),
  });
  let failures = 0;
  const expect = (what: string, ok: boolean) => {
    log(`${ok ? "ok  " : "FAIL"} ${what}`);
    if (!ok) failures++;
  };
  try {
    log("MDB: VMC level 3, Always Idle, strict replies (answers direct, never deferred); the terminal is cashless device #1 (0x10)");
    vending = await startVending(sim, { log, multivend: true, strictReplies: true });
    const card = (name: string, balance: number, n: number) =>
      sim.addCard({ name, profiles: [{ layout: "tunion", algorithm: "3des", asn: `0310100000000080000${n}`, cityCode: LEVEL1_CITY, balance }] });

    log("\n1. A vend that succeeds (item 12, 3.50)");
    const a = card("mdb-ok", 5000, 1);
    const r1 = await vending.vend(a, 350, 12);
    await vending.vmc.send({ kind: "vend-success", item: 12 });
    await vending.endSession();
    expect(`approved in ${r1.ms.toFixed(0)} ms, card 50.00 -> ${(a.state.applications[0]!.balance / 100).toFixed(2)}`,
      r1.answer === "vend-approved" && a.state.applications[0]!.balance === 4650);

    log("\n2. A vend that fails after payment (item 7, 2.00): refunded onto the card");
    const b = card("mdb-fail", 5000, 2);
    const r2 = await vending.vend(b, 200, 7);
    const refund = await vending.vendFailure(b);
    await vending.endSession();
    const balance = b.state.applications[0]!.balance;
    expect(`approved, then VEND FAILURE: the 2.00 loaded back onto the card in ${refund.ms.toFixed(0)} ms (INITIALIZE FOR LOAD, CREDIT FOR LOAD), ` +
      `card ${(balance / 100).toFixed(2)}, the VMC hears ACK (refunded)`, r2.answer === "vend-approved" && refund.answer === "refunded" && balance === 5000);

    log("\n3. A declined card (balance 1.00, item 4 at 3.50)");
    const c = card("mdb-poor", 100, 3);
    const r3 = await vending.vend(c, 350, 4);
    await vending.endSession();
    expect("VEND DENIED, nothing charged", r3.answer === "vend-denied" && c.state.applications[0]!.balance === 100);

    log("\n4. A cancelled selection (the customer pays cash instead)");
    await vending.vmc.send({ kind: "vend-request", price: 150, item: 9 });
    await vending.vmc.send({ kind: "poll" });
    const cancel = await vending.vmc.send({ kind: "vend-cancel" });
    await vending.endSession();
    expect("VEND CANCEL -> VEND DENIED (the direct reply)", cancel.kind === "data" && cancel.replies.some((x) => x.kind === "vend-denied"));

    log("\n5. Card first: the tap begins the session, then two vends (multivend) with that card");
    const d = card("mdb-first", 3000, 4);
    const funds = await vending.tap(d);
    const r5 = await vending.vendInSession(350, 12);
    await vending.vmc.send({ kind: "vend-success", item: 12 });
    const r6 = await vending.vendInSession(150, 3);
    await vending.vmc.send({ kind: "vend-success", item: 3 });
    await vending.endSession();
    sim.emulator.remove(d);
    expect(`BEGIN SESSION funds ${(funds / 100).toFixed(2)}, VEND APPROVED in ${r5.ms.toFixed(0)} and ${r6.ms.toFixed(0)} ms, card 30.00 -> ${(d.state.applications[0]!.balance / 100).toFixed(2)}`,
      funds === 3000 && r5.answer === "vend-approved" && r6.answer === "vend-approved" && d.state.applications[0]!.balance === 2500);
    const forms = vending.vmc.replyForms;
    expect(`${forms.direct} direct replies, ${forms.deferred} deferred (SETUP config, REQUEST ID, SESSION COMPLETE, VEND CANCEL)`, forms.deferred === 0 && forms.direct >= 7);
  } catch (error) {
    log(`FAIL ${(error as Error).message}`);
    failures++;
  } finally {
    vending?.close();
    await sim.close();
  }
  log(failures ? `\n${failures} MDB flow(s) failed` : "\nevery MDB flow ended as scripted");
  return failures ? 1 : 0;
}
