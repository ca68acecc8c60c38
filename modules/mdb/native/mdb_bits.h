/*
 * One MDB word as line levels at 9600 baud (docs/mdb.md §1): start bit (0), D0..D7 LSB first, the mode bit, stop
 * bit (1); 11 bit times of 104.17 µs. The ESP32 hardware layer bit-bangs these levels out and samples them in
 * (docs/mdb.md §8); this part has no hardware in it, so the host's cc tests it.
 */
#ifndef MDB_BITS_H
#define MDB_BITS_H

#include <stdint.h>

#define MDB_BIT_NS 104167 /* one bit at 9600 baud */
#define MDB_WORD_BITS 11

/* The 11 levels of a word (bit 8 = mode bit), start bit first. */
void mdb_bits_encode(uint16_t word, uint8_t levels[MDB_WORD_BITS]);

/* Receive: after the start edge, one sample per bit time from the middle of D0 (1.5 bit times after the edge). */
typedef struct {
	int bit;       /* samples taken: 0..9 (D0..D7, mode, stop) */
	uint16_t word;
	int zeros;     /* all-zero samples: a line held active, i.e. a break is starting */
} mdb_bits_rx;

void mdb_bits_rx_start(mdb_bits_rx *rx);
/* Returns 0 while more samples are needed, 1 with *word set, -1 for a framing error (stop bit 0; a break if
 * mdb_bits_rx_all_zero()). */
int mdb_bits_rx_sample(mdb_bits_rx *rx, int level, uint16_t *word);
int mdb_bits_rx_all_zero(const mdb_bits_rx *rx);

#endif
