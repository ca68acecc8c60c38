import { decodeCommand, decodeResponse } from "../iso7816/apdu";
import { readUint, toHex } from "../bytes/bytes";
import { statusName } from "../iso7816/status";
import { formatYuan } from "./amount";
import { parseBalance, parseDebitForPurchase, parseInitializeForLoad, parseInitializeForPurchase, parseTransactionProve } from "./responses";

// Human-readable names and fields for the APDUs of a purchase, for traces and xsbug. Never throws: a trace of
// garbage must still print.

const SFI_NAMES: { readonly [sfi: number]: string } = Object.freeze({ 0x15: "basic data", 0x16: "holder data", 0x17: "management data", 0x18: "transaction log" });

export function describeCommand(bytes: Uint8Array): string {
  try {
    const c = decodeCommand(bytes);
    const data = c.data ?? new Uint8Array(0);
    const key = (c.cla << 8) | c.ins;
    switch (key) {
      case 0x00a4:
        return c.p1 === 0x04 ? `SELECT AID ${toHex(data)}` : `SELECT FID ${toHex(data)}`;
      case 0x00b0:
        if (c.p1 & 0x80) return `READ BINARY SFI 0x${(c.p1 & 0x1f).toString(16)} (${SFI_NAMES[c.p1 & 0x1f] ?? "file"}) offset ${c.p2}`;
        return `READ BINARY offset ${(c.p1 << 8) | c.p2}`;
      case 0x00b2:
        return `READ RECORD ${c.p1} of SFI 0x${(c.p2 >> 3).toString(16)}`;
      case 0x00c0:
        return `GET RESPONSE Le ${c.le ?? 0}`;
      case 0x805c:
        return "GET BALANCE";
      case 0x8050:
        if (data.length === 11) {
          return `INITIALIZE FOR ${c.p1 === 0x03 ? "CAPP PURCHASE" : c.p1 === 0x01 ? "PURCHASE" : "LOAD"} key index ${data[0]} amount ${formatYuan(readUint(data, 1, 4))} terminal ${toHex(data.slice(5, 11))}`;
        }
        break;
      case 0x8054:
        if (data.length === 15) {
          return `DEBIT FOR PURCHASE TSN ${readUint(data, 0, 4)} at ${toHex(data.slice(4, 8))} ${toHex(data.slice(8, 11))} MAC1 ${toHex(data.slice(11, 15))}`;
        }
        break;
      case 0x8052:
        if (data.length === 11) return `CREDIT FOR LOAD at ${toHex(data.slice(0, 4))} ${toHex(data.slice(4, 7))} MAC2 ${toHex(data.slice(7, 11))}`;
        break;
      case 0x805a:
        if (data.length === 2) return `GET TRANSACTION PROVE type ${toHex(new Uint8Array([c.p2]))} serial ${readUint(data, 0, 2)}`;
        break;
    }
    return `APDU ${toHex(bytes, " ")}`;
  } catch {
    return `malformed APDU ${toHex(bytes, " ")}`;
  }
}

export function describeResponse(command: Uint8Array, bytes: Uint8Array): string {
  try {
    const r = decodeResponse(bytes);
    const sw = toHex(new Uint8Array([r.sw >> 8, r.sw & 0xff]));
    if (r.sw !== 0x9000) return `${sw} ${statusName(r.sw)}${r.data.length ? ` + ${r.data.length} bytes` : ""}`;
    const ins = command.length >= 2 ? (command[0]! << 8) | command[1]! : -1;
    if (ins === 0x8050 && r.data.length === 15) {
      const i = parseInitializeForPurchase(r.data);
      return `9000 balance ${formatYuan(i.balance)} serial ${i.epSerial} overdraft ${formatYuan(i.overdraftLimit)} key version ${i.keyVersion} algorithm ${i.algorithmId} random ${toHex(i.random)}`;
    }
    if (ins === 0x8050 && r.data.length === 16) {
      const i = parseInitializeForLoad(r.data);
      return `9000 balance ${formatYuan(i.balance)} online serial ${i.onlineSerial} key version ${i.keyVersion} algorithm ${i.algorithmId} random ${toHex(i.random)} MAC1 ${toHex(i.mac1)}`;
    }
    if (ins === 0x8052 && r.data.length === 4) return `9000 TAC ${toHex(r.data)}`;
    if (ins === 0x8054 && r.data.length === 8) {
      const d = parseDebitForPurchase(r.data);
      return `9000 TAC ${toHex(d.tac)} MAC2 ${toHex(d.mac2)}`;
    }
    if (ins === 0x805a && r.data.length === 8) {
      const p = parseTransactionProve(r.data);
      return `9000 MAC2 ${toHex(p.mac2)} TAC ${toHex(p.tac)}`;
    }
    if (ins === 0x805c && r.data.length === 4) return `9000 balance ${formatYuan(parseBalance(r.data))}`;
    return r.data.length ? `9000 ${toHex(r.data)}` : "9000";
  } catch {
    return `malformed response ${toHex(bytes, " ")}`;
  }
}

export interface TraceLine {
  command: Uint8Array;
  response?: Uint8Array;
  error?: unknown;
  ms: number;
}

/** Wraps a transceiver so that every APDU and its answer (or failure) reaches `log`, timed with `now`. */
export function tracingTransceiver(
  inner: { transceive(command: Uint8Array): Promise<Uint8Array> },
  log: (line: TraceLine) => void,
  now: () => number,
): { transceive(command: Uint8Array): Promise<Uint8Array> } {
  return {
    async transceive(command: Uint8Array) {
      const start = now();
      try {
        const response = await inner.transceive(command);
        log({ command, response, ms: now() - start });
        return response;
      } catch (error) {
        log({ command, error, ms: now() - start });
        throw error;
      }
    },
  };
}
