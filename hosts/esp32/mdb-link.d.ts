// Types of hosts/esp32/mdb-link.js (a Moddable class with native methods).
declare module "mdb-link" {
  import type { DirectSlot, FramePort } from "../../modules/mdb/link";
  export interface MdbLinkOptions {
    receive: number;
    transmit: number;
    address: number;
    onCommand(block: ArrayBuffer, direct: boolean): void;
    onDelivered(length: number): void;
    onBusReset(): void;
  }
  export default class MdbLink implements FramePort {
    constructor(options: MdbLinkOptions);
    arm(reply: Uint8Array): void;
    hold(silent: boolean): void;
    setExpanded(expanded: boolean): void;
    prime(slot: DirectSlot, reply: Uint8Array): void;
    close(): void;
  }
}
