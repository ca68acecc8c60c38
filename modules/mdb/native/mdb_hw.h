/*
 * The hardware layer the link core (mdb_link.h) sits on: 9-bit words in and out at 9600 baud. On the ESP32:
 * esp32/mdb_hw_esp32.c, GPIO bit-banging (falling-edge interrupt, sampling at 1.5 then every 1 bit time, on core 1),
 * the method open ESP32 readers settled on (docs/mdb.md §8), with the bit framing in mdb_bits.c. On a Linux PC the
 * 9-bit layer is the termios helper in linux/ instead, and the link logic runs in modules/mdb.
 * The pins carry TTL levels behind the opto-isolated interface: idle (stop bit) = 1.
 */
#ifndef MDB_HW_H
#define MDB_HW_H

#include <stdint.h>
#include <stddef.h>

typedef struct {
	/* Called from the receive context for each word (bit 8 = mode bit) and with MDB_BREAK for a ≥100 ms break. */
	void (*on_word)(void *ctx, uint16_t word);
	void *ctx;
} mdb_hw_callbacks;

int mdb_hw_open(int rx_pin, int tx_pin, const mdb_hw_callbacks *cb);
/* Sends words back to back (≤1 ms apart); returns once they are on the wire or queued for it. */
void mdb_hw_send(const uint16_t *words, size_t count);
void mdb_hw_close(void);

#endif
