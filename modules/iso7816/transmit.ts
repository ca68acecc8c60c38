import { encodeCommand, decodeResponse, type CommandApdu, type ResponseApdu } from "./apdu";
import { ApduError, ApduProtocolError } from "./errors";
import { concatBytes } from "../bytes/bytes";
import { SW } from "./status";

/** Anything that carries one APDU to a card and brings its answer back: a PN532, a virtual card, a PC/SC reader. */
export interface Transceiver {
  transceive(command: Uint8Array): Promise<Uint8Array>;
}

/** A card that loops on 61xx or 6Cxx would otherwise keep the terminal busy for ever. */
const MAX_ROUNDS = 8;
const MAX_RESPONSE = 4096;

/**
 * Sends a command and returns the complete response, following 61xx with GET RESPONSE and re-issuing on 6Cxx
 * with the exact Le, so callers never see either status word.
 */
export async function transmit(card: Transceiver, command: CommandApdu): Promise<ResponseApdu> {
  let response = decodeResponse(await card.transceive(encodeCommand(command)));
  let rounds = 0;
  if ((response.sw >> 8) === 0x6c) {
    rounds++;
    response = decodeResponse(await card.transceive(encodeCommand({ ...command, le: (response.sw & 0xff) || 256 })));
  }
  let data = response.data;
  while ((response.sw >> 8) === 0x61) {
    if (++rounds > MAX_ROUNDS) throw new ApduProtocolError(`card kept answering 61xx after ${MAX_ROUNDS} GET RESPONSE commands`);
    const le = (response.sw & 0xff) || 256;
    response = decodeResponse(await card.transceive(encodeCommand({ cla: 0x00, ins: 0xc0, p1: 0, p2: 0, le })));
    data = concatBytes(data, response.data);
    if (data.length > MAX_RESPONSE) throw new ApduProtocolError(`response grew past ${MAX_RESPONSE} bytes`);
  }
  if ((response.sw >> 8) === 0x6c) throw new ApduProtocolError("card answered 6Cxx to a command already re-issued with its Le");
  return { data, sw: response.sw };
}

/** `transmit`, then insists on 9000 (or one of `accept`), throwing ApduError with the status word otherwise. */
export async function transmitOk(card: Transceiver, command: CommandApdu, name = "", accept: readonly number[] = []): Promise<ResponseApdu> {
  const response = await transmit(card, command);
  if (response.sw !== SW.OK && !accept.includes(response.sw)) throw new ApduError(response.sw, name);
  return response;
}
