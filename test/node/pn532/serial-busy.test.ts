// A port another program holds is "busy"; at the PC terminal's start a busy port is tried again for a while, because a
// terminal restarted the moment its previous run died can find the port still locked for a moment.
import assert from "node:assert/strict";
import { SerialPort } from "serialport";
import { createPtyPair, hasSocat, type PtyPair } from "../../../hosts/node/pty";
import { HarnessPortError, probePort, probePortPatiently } from "../../../hosts/node/serial-errors";

describe("a busy serial port at start", function () {
  this.timeout(30_000);
  let pair: PtyPair | undefined;
  before(function () {
    if (!hasSocat()) this.skip();
  });
  afterEach(async () => {
    await pair?.close();
    pair = undefined;
  });

  const hold = async (path: string): Promise<SerialPort> => {
    const holder = new SerialPort({ path, baudRate: 115200, autoOpen: false });
    await new Promise<void>((resolve, reject) => holder.open((e) => (e ? reject(e) : resolve())));
    return holder;
  };
  const release = (holder: SerialPort) => new Promise<void>((resolve) => holder.close(() => resolve()));

  it("is refused at once by probePort, and after the wait by probePortPatiently, as PORT_BUSY", async () => {
    pair = await createPtyPair();
    const holder = await hold(pair.device);
    try {
      await assert.rejects(probePort(pair.device, 115200, "the PN532 port"), (e) => e instanceof HarnessPortError && e.code === "PORT_BUSY");
      await assert.rejects(probePortPatiently(pair.device, 115200, "the PN532 port", 300), (e) => e instanceof HarnessPortError && e.code === "PORT_BUSY");
    } finally {
      await release(holder);
    }
  });

  it("opens once the holder lets go within the wait", async () => {
    pair = await createPtyPair();
    const holder = await hold(pair.device);
    let opened = false;
    const waiting = probePortPatiently(pair.device, 115200, "the PN532 port", 20_000).then(() => { opened = true; });
    await new Promise((r) => setTimeout(r, 250));
    // Held all along: no try could have opened it yet, so the success below can only come from trying again.
    assert.equal(opened, false);
    await release(holder);
    await waiting;
    assert.equal(opened, true);
  });
});
