/**
 * The VMC simulator on a byte stream (a pty or a serial port) in the docs/mdb.md §5 encoding, with Node timers and
 * a sub-millisecond clock, so it can measure the reader's reply and inter-byte times against 5 ms and 1 ms.
 */
import { performance } from "node:perf_hooks";
import { nodeTimers, NodeSerial } from "../../../hosts/node/serial";
import { WordDecoder, encodeWords } from "../../../modules/mdb/wire";
import { VmcMaster } from "./master";

export interface StreamVmc {
  vmc: VmcMaster;
  serial: NodeSerial;
  close(): void;
}

export async function openStreamVmc(path: string, options: { address?: number; replyTimeoutMs?: number } = {}): Promise<StreamVmc> {
  let vmc!: VmcMaster;
  const decoder = new WordDecoder({ onWord: (w) => vmc.receive(w) });
  const serial: NodeSerial = new NodeSerial({
    path, baud: 9600, format: "buffer",
    onReadable() {
      const data = serial.read();
      if (data) decoder.push(new Uint8Array(data));
    },
  });
  await serial.opened;
  vmc = new VmcMaster({
    address: options.address, timers: nodeTimers, now: () => performance.now(), replyTimeoutMs: options.replyTimeoutMs ?? 5,
    transmit: (words) => serial.write(encodeWords(words)),
  });
  return { vmc, serial, close: () => serial.close() };
}

/** p50 / p99 / max of a list of times, ms. */
export function percentiles(times: readonly number[]): { n: number; p50: number; p99: number; max: number } {
  const s = [...times].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? 0;
  return { n: s.length, p50: at(0.5), p99: at(0.99), max: s[s.length - 1] ?? 0 };
}
