/**
 * The chip: frames from the host (command, ACK as abort, NACK as "send that again"), the ACK and answer for each
 * command, sleep after PowerDown until 0x55 wakes it, SetSerialBaudRate, and the dispatch of every command to the
 * chip's own handlers here or to the field and ISO-DEP layers.
 */
import { toHex } from "../../../modules/bytes/bytes";
import { Command, RfItem } from "../../../modules/pn532/commands";
import { ACK_FRAME, ERROR_FRAME, FrameParser, TFI_HOST, TFI_PN532, encodeFrame, type Frame } from "../../../modules/pn532/frame";
import { Cancelled, DEFAULT_FLAGS, type EmulatorContext } from "./context";
import type { Field } from "./field";
import type { IsoDep } from "./isodep";
import type { EmulatorLine } from "./line";

/** How the chip takes SetSerialBaudRate: as the manual says, with an error frame, or answering but staying put. */
export type BaudSwitch = "obey" | "refuse" | "ignore";

export interface ReceivedCommand {
  code: number;
  params: Uint8Array;
  at: number;
}

const MAX_LOG = 10_000;
/** SetSerialBaudRate BR 0..8 (docs/pn532.md). */
const BAUD_RATES: readonly number[] = Object.freeze([9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600, 1288000]);

export class Chip {
  readonly #ctx: EmulatorContext;
  readonly #line: EmulatorLine;
  readonly #field: Field;
  readonly #isoDep: IsoDep;
  readonly #parser: FrameParser;
  readonly #firmware: Uint8Array;
  /** Every command frame received, oldest first (capped). */
  readonly received: ReceivedCommand[] = [];
  baudSwitch: BaudSwitch;
  /** Rate asked for by SetSerialBaudRate; taken when the host's ACK comes (0: none). */
  #pendingBaud = 0;
  #asleep = false;
  #lastResponse: Uint8Array | undefined;

  constructor(ctx: EmulatorContext, line: EmulatorLine, field: Field, isoDep: IsoDep, firmware: Uint8Array, baudSwitch: BaudSwitch) {
    this.#ctx = ctx;
    this.#line = line;
    this.#field = field;
    this.#isoDep = isoDep;
    this.#firmware = firmware;
    this.baudSwitch = baudSwitch;
    this.#parser = new FrameParser({
      onFrame: (frame) => this.#onFrame(frame),
      onFault: (fault) => {
        ctx.stats.faults++;
        ctx.log?.(`damaged frame from host (${fault})`);
      },
    });
  }

  get asleep(): boolean {
    return this.#asleep;
  }

  /** Power loss or a reset pin pulse: the chip comes back at 115,200 baud in LowVbat, every setting at its default. */
  reset(): void {
    const ctx = this.#ctx;
    ctx.cancel();
    this.#line.clear();
    this.#pendingBaud = 0;
    this.#asleep = true;
    this.#field.targets.clear();
    this.#isoDep.resetChains();
    ctx.flags = DEFAULT_FLAGS;
    ctx.passiveRetries = 0xff;
    ctx.registers.clear();
    this.#lastResponse = undefined;
    this.#switchBaud(115200);
    ctx.log?.("reset");
  }

  #switchBaud(baud: number): void {
    if (!this.#line.switchBaud(baud)) return;
    this.#ctx.setTiming({ baud });
    this.#parser.resync();
    this.#line.reopen();
  }

  /** Host bytes from the line (or fed directly by fuzzing and tests). */
  receive(bytes: Uint8Array): void {
    const ctx = this.#ctx;
    if (ctx.closed) return;
    ctx.stats.bytesIn += bytes.length;
    this.#line.received(bytes.length);
    let start = 0;
    if (this.#asleep) {
      // Asleep, the chip hears nothing but the 0x55 that wakes it; the zeros after it cover its start-up.
      const at = bytes.indexOf(0x55);
      if (at < 0) return;
      this.#asleep = false;
      ctx.stats.wakeUps++;
      this.#parser.resync();
      start = at;
      ctx.log?.("woken by 0x55");
    }
    this.#parser.push(start ? bytes.subarray(start) : bytes);
  }

  #onFrame(frame: Frame): void {
    const ctx = this.#ctx;
    const line = this.#line;
    ctx.stats.frames++;
    if (frame.kind === "ack" && this.#pendingBaud && !ctx.busy) {
      // The host's ACK after the SetSerialBaudRate answer: both sides switch now (docs/pn532.md).
      const baud = this.#pendingBaud;
      this.#pendingBaud = 0;
      this.#switchBaud(baud);
      return;
    }
    if (frame.kind === "ack") {
      // Abort: whatever runs stops, and its answer is never sent.
      if (ctx.busy) {
        ctx.stats.aborts++;
        ctx.log?.("aborted by host ACK");
      }
      ctx.cancel();
      return;
    }
    if (frame.kind === "nack") {
      ctx.stats.nacksReceived++;
      if (!ctx.busy && this.#lastResponse) line.transmit(this.#lastResponse, 0);
      return;
    }
    if (frame.kind !== "information" || frame.tfi !== TFI_HOST || frame.data.length < 1) return;
    const code = frame.data[0]!;
    if (ctx.takeFault("drop-command", code)) return;
    const params = frame.data.slice(1);
    this.#pendingBaud = 0;
    this.received.push({ code, params, at: ctx.now() });
    if (this.received.length > MAX_LOG) this.received.splice(0, this.received.length - MAX_LOG);
    // A new command frame ends the one in progress (UM p.38), as an ACK would.
    ctx.cancel();
    const generation = ctx.generation;
    ctx.busy = true;
    this.#lastResponse = undefined;
    const frameEnd = line.receivedUntil;
    const garbage = ctx.takeFault("garbage", code);
    if (garbage) line.transmit(garbage.bytes ?? new Uint8Array([0x30, 0x61, 0x72, 0x00, 0xff, 0x12, 0x55]), frameEnd);
    const ackAt = frameEnd + ctx.timing.ackDelay;
    const corruptAck = ctx.hasFault("corrupt-checksum", code, (f) => f.frame === "ack");
    if (ctx.takeFault("drop-ack", code)) {
      // The ACK slot passes on the line with nothing in it.
      line.skip(ACK_FRAME.length, ackAt);
    } else if (corruptAck) {
      ctx.takeFault("corrupt-checksum", code);
      line.transmit(new Uint8Array([0x00, 0x00, 0xff, 0x00, 0xfe, 0x00]), ackAt);
    } else {
      ctx.stats.acksSent++;
      line.transmit(ACK_FRAME, ackAt);
    }
    ctx.log?.(`<- ${toHex(frame.data)}`);
    this.#execute(generation, code, params, ackAt);
  }

  async #execute(generation: number, code: number, params: Uint8Array, ackAt: number): Promise<void> {
    const ctx = this.#ctx;
    let reply: Uint8Array | "error";
    try {
      reply = await this.#handle(generation, code, params);
      ctx.check(generation);
      if (ctx.takeFault("no-response", code)) return;
      const late = ctx.takeFault("late", code);
      if (late) await ctx.sleep(generation, late.ms);
    } catch (error) {
      if (error instanceof Cancelled) return;
      ctx.log?.(`internal error on 0x${code.toString(16)}: ${(error as Error).stack ?? String(error)}`);
      reply = "error";
    }
    let frame: Uint8Array;
    if (reply === "error") frame = ERROR_FRAME;
    else {
      const body = new Uint8Array(1 + reply.length);
      body[0] = code + 1;
      body.set(reply, 1);
      frame = encodeFrame(TFI_PN532, body);
    }
    this.#lastResponse = frame;
    ctx.busy = false;
    let out = frame;
    if (ctx.hasFault("corrupt-checksum", code, (f) => f.frame !== "ack")) {
      ctx.takeFault("corrupt-checksum", code);
      out = frame.slice();
      out[out.length - 2] ^= 0x5a;
    }
    ctx.stats.responses++;
    ctx.log?.(`-> ${reply === "error" ? "error frame" : toHex(reply)}`);
    this.#line.transmit(out, ackAt + ACK_FRAME.length * ctx.timing.byteTime, () => !ctx.closed);
    if (code === Command.PowerDown && reply !== "error") {
      // Asleep once the answer is out; bytes before a 0x55 are lost from then on.
      this.#asleep = true;
      this.#field.targets.clear();
      this.#parser.resync();
    }
  }

  async #handle(g: number, code: number, p: Uint8Array): Promise<Uint8Array | "error"> {
    const ctx = this.#ctx;
    const t = ctx.timing;
    switch (code) {
      case Command.Diagnose: {
        if (p.length < 1) return "error";
        await ctx.sleep(g, t.commandDelay);
        if (p[0] === 0x00) return p.slice();
        if (p[0] === 0x01 || p[0] === 0x02) return new Uint8Array([0x00]);
        return "error";
      }
      case Command.GetFirmwareVersion:
        await ctx.sleep(g, t.commandDelay);
        return this.#firmware.slice();
      case Command.GetGeneralStatus: {
        await ctx.sleep(g, t.commandDelay);
        const out = [ctx.lastError, 0, this.#field.targets.size];
        for (const target of this.#field.targets.values()) out.push(target.tg, 0, 0, 0x00);
        out.push(0x00);
        return new Uint8Array(out);
      }
      case Command.ReadRegister: {
        if (p.length < 2 || p.length % 2) return "error";
        await ctx.sleep(g, t.commandDelay);
        const out = new Uint8Array(p.length / 2);
        for (let i = 0; i < out.length; i++) out[i] = ctx.registers.get((p[2 * i]! << 8) | p[2 * i + 1]!) ?? 0;
        return out;
      }
      case Command.WriteRegister: {
        if (p.length < 3 || p.length % 3) return "error";
        for (let i = 0; i < p.length; i += 3) ctx.registers.set((p[i]! << 8) | p[i + 1]!, p[i + 2]!);
        await ctx.sleep(g, t.commandDelay);
        return new Uint8Array(0);
      }
      case Command.SetSerialBaudRate: {
        if (p.length !== 1 || p[0]! > 8 || this.baudSwitch === "refuse") return "error";
        await ctx.sleep(g, t.commandDelay);
        if (this.baudSwitch === "obey") this.#pendingBaud = BAUD_RATES[p[0]!]!;
        return new Uint8Array(0);
      }
      case Command.SetParameters:
        if (p.length !== 1 || p[0]! & 0x88) return "error";
        ctx.flags = p[0]!;
        await ctx.sleep(g, t.commandDelay);
        return new Uint8Array(0);
      case Command.SAMConfiguration:
        if (p.length < 1 || p[0]! < 1 || p[0]! > 4) return "error";
        await ctx.sleep(g, t.commandDelay);
        return new Uint8Array(0);
      case Command.PowerDown:
        if (p.length < 1) return "error";
        await ctx.sleep(g, t.commandDelay);
        return new Uint8Array([0x00]);
      case Command.RFConfiguration:
        return this.#rfConfiguration(g, p);
      case Command.InListPassiveTarget:
        return this.#field.inListPassiveTarget(g, p);
      case Command.InDataExchange:
        return this.#isoDep.inDataExchange(g, p);
      case Command.InCommunicateThru:
        return this.#isoDep.inCommunicateThru(g, p);
      case Command.InDeselect:
      case Command.InRelease: {
        if (p.length !== 1) return "error";
        await ctx.sleep(g, t.commandDelay);
        const tg = p[0]!;
        const targets = this.#field.targets;
        if (tg !== 0 && !targets.has(tg)) return new Uint8Array([0x27]);
        this.#isoDep.resetChains();
        if (code === Command.InRelease) {
          if (tg === 0) targets.clear();
          else targets.delete(tg);
        }
        return new Uint8Array([0x00]);
      }
      case Command.InAutoPoll:
        return this.#field.inAutoPoll(g, p);
      case Command.InPSL:
        return this.#field.inPsl(g, p);
      default:
        return "error";
    }
  }

  async #rfConfiguration(g: number, p: Uint8Array): Promise<Uint8Array | "error"> {
    const sizes: { [item: number]: number } = { 0x01: 1, 0x02: 3, 0x04: 1, 0x05: 3, 0x0a: 11, 0x0b: 8, 0x0c: 3, 0x0d: 9 };
    if (p.length < 1 || sizes[p[0]!] === undefined || p.length !== 1 + sizes[p[0]!]!) return "error";
    const ctx = this.#ctx;
    if (p[0] === RfItem.Field) {
      this.#field.on = (p[1]! & 1) === 1;
      if (!this.#field.on) this.#field.targets.clear();
    }
    if (p[0] === RfItem.VariousTimings) ctx.nonDepTimeoutCode = p[3]!;
    if (p[0] === RfItem.MaxRetries) ctx.passiveRetries = p[3]!;
    await ctx.sleep(g, ctx.timing.commandDelay);
    return new Uint8Array(0);
  }
}
