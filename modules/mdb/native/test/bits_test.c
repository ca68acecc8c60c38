/* Unit tests of the bit framing the ESP32 hardware layer bit-bangs (modules/mdb/native/mdb_bits.c). */
#include "../mdb_bits.h"
#include <stdio.h>

static int failures;
#define CHECK(c) do { if (!(c)) { printf("FAIL line %d: %s\n", __LINE__, #c); failures++; } } while (0)

int main(void) {
	uint8_t levels[MDB_WORD_BITS];
	mdb_bits_encode(0x100 | 0x12, levels);
	const uint8_t want[MDB_WORD_BITS] = {0, 0, 1, 0, 0, 1, 0, 0, 0, 1, 1};
	for (int i = 0; i < MDB_WORD_BITS; i++) CHECK(levels[i] == want[i]);
	/* Every word round-trips through the sampler. */
	for (unsigned w = 0; w < 0x200; w++) {
		mdb_bits_rx rx;
		uint16_t got = 0xffff;
		int r = 0;
		mdb_bits_encode((uint16_t)w, levels);
		mdb_bits_rx_start(&rx);
		for (int i = 1; i < MDB_WORD_BITS && r == 0; i++) r = mdb_bits_rx_sample(&rx, levels[i], &got);
		CHECK(r == 1 && got == w);
	}
	/* A line held active: framing error, all zero = the start of a break. */
	mdb_bits_rx rx;
	uint16_t got;
	int r = 0;
	mdb_bits_rx_start(&rx);
	for (int i = 0; i < 10 && r == 0; i++) r = mdb_bits_rx_sample(&rx, 0, &got);
	CHECK(r == -1 && mdb_bits_rx_all_zero(&rx));
	/* A bad stop bit after data is a framing error but no break. */
	mdb_bits_rx_start(&rx);
	r = 0;
	for (int i = 0; i < 10 && r == 0; i++) r = mdb_bits_rx_sample(&rx, i == 3, &got);
	CHECK(r == -1 && !mdb_bits_rx_all_zero(&rx));
	if (failures) return 1;
	printf("bits: all checks passed\n");
	return 0;
}
