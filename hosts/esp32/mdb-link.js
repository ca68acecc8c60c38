// The MDB link on the ESP32: modules/mdb/native's C core on GPIO bit-banging (modules/mdb/native/esp32), as a FramePort
// (modules/mdb/link.ts): arm(), hold(), setExpanded(), prime() down; onCommand, onDelivered, onBusReset up. The 5 ms answer
// to POLL comes from the armed reply in C, never from this machine's event loop (docs/mdb.md §8).
class MdbLink @ "xs_mdb_destructor" {
  constructor(options) @ "xs_mdb_constructor";
  arm(reply) @ "xs_mdb_arm";
  hold(silent) @ "xs_mdb_hold";
  setExpanded(expanded) @ "xs_mdb_set_expanded";
  prime(slot, reply) @ "xs_mdb_prime";
  close() @ "xs_mdb_close";
}

export default MdbLink;
