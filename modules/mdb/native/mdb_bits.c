/* See mdb_bits.h. */
#include "mdb_bits.h"

void mdb_bits_encode(uint16_t word, uint8_t levels[MDB_WORD_BITS]) {
	levels[0] = 0;
	for (int i = 0; i < 9; i++) levels[1 + i] = (uint8_t)((word >> i) & 1);
	levels[10] = 1;
}

void mdb_bits_rx_start(mdb_bits_rx *rx) {
	rx->bit = 0;
	rx->word = 0;
	rx->zeros = 0;
}

int mdb_bits_rx_sample(mdb_bits_rx *rx, int level, uint16_t *word) {
	if (!level) rx->zeros++;
	if (rx->bit < 9) {
		if (level) rx->word |= (uint16_t)(1u << rx->bit);
		rx->bit++;
		return 0;
	}
	rx->bit = 0;
	if (!level) return -1;
	*word = rx->word;
	return 1;
}

int mdb_bits_rx_all_zero(const mdb_bits_rx *rx) {
	return rx->zeros >= 10;
}
