/* Unit tests of the C link core, built with the host's cc by test/node/mdb/native.test.ts. Exit status 0 = pass. */
#include "../mdb_link.h"
#include <stdio.h>
#include <string.h>

static uint16_t tx[64];
static size_t tx_count;
static uint8_t cmd[MDB_MAX_BLOCK];
static size_t cmd_length;
static int commands, delivered, resets, last_direct;
static int failures;

static void on_send(void *ctx, const uint16_t *w, size_t n) { (void)ctx; memcpy(tx + tx_count, w, n * 2); tx_count += n; }
static void on_command(void *ctx, const uint8_t *b, size_t n, int direct) { (void)ctx; memcpy(cmd, b, n); cmd_length = n; commands++; last_direct = direct; }
static void on_delivered(void *ctx, size_t n) { (void)ctx; delivered += (int)n; }
static void on_reset(void *ctx) { (void)ctx; resets++; }

#define CHECK(cond, what) do { if (!(cond)) { printf("FAIL %s (line %d)\n", what, __LINE__); failures++; } } while (0)

/* Sends a VMC block: address with the mode bit, data, CHK (plus `chk_error`). Clears the transmit record first. */
static void vmc(mdb_link *l, const uint8_t *b, size_t n, int chk_error)
{
	size_t i;
	int sum = 0;
	tx_count = 0;
	for (i = 0; i < n; i++) { mdb_link_receive(l, (uint16_t)(i ? b[i] : (MDB_MODE | b[i]))); sum += b[i]; }
	mdb_link_receive(l, (uint16_t)((sum + chk_error) & 0xff));
}

static int is_ack(void) { return tx_count == 1 && tx[0] == (MDB_MODE | 0x00); }

int main(void)
{
	mdb_link l;
	mdb_link_callbacks cb = { on_send, on_command, on_delivered, on_reset, NULL };
	static const uint8_t poll[] = { 0x12 }, reset[] = { 0x10 };
	static const uint8_t vend[] = { 0x13, 0x00, 0x01, 0x5e, 0x00, 0x0c };
	static const uint8_t begin[] = { 0x03, 0x13, 0x88 };

	CHECK(mdb_link_init(&l, 0x20, &cb) == -1, "only 0x10 and 0x60");
	CHECK(mdb_link_init(&l, 0x10, &cb) == 0, "init");

	vmc(&l, poll, 1, 0);
	CHECK(is_ack(), "POLL with nothing armed gets a bare ACK with the mode bit");

	mdb_link_arm(&l, begin, sizeof begin);
	vmc(&l, poll, 1, 0);
	CHECK(tx_count == 4 && tx[0] == 0x03 && tx[2] == 0x88 && tx[3] == (MDB_MODE | ((0x03 + 0x13 + 0x88) & 0xff)),
		"armed data + CHK, mode bit on the last word only");
	vmc(&l, poll, 1, 0); /* no ACK came: the VMC's next POLL */
	CHECK(tx_count == 4 && tx[0] == 0x03, "data repeated until ACKed");
	tx_count = 0;
	mdb_link_receive(&l, 0xaa);
	CHECK(tx_count == 4 && tx[0] == 0x03, "RET resends at once");
	mdb_link_receive(&l, 0x00);
	CHECK(delivered == 3, "ACK delivers the three bytes");
	vmc(&l, poll, 1, 0);
	CHECK(is_ack(), "delivered data is not sent again");

	vmc(&l, vend, sizeof vend, 0);
	CHECK(is_ack() && commands == 1 && cmd_length == 6 && cmd[3] == 0x5e, "VEND REQUEST ACKed and handed up");
	vmc(&l, poll, 1, 0);
	vmc(&l, vend, sizeof vend, 0);
	CHECK(is_ack() && commands == 1 && l.stats.duplicates == 1, "a repeated VEND REQUEST is ACKed but not run twice");

	vmc(&l, vend, sizeof vend, 1);
	CHECK(tx_count == 0 && l.stats.bad_checksums == 1, "bad CHK: silence, never NAK");
	{
		static const uint8_t changer[] = { 0x0a };
		vmc(&l, changer, 1, 0);
		CHECK(tx_count == 0, "another device's POLL: silence");
	}
	mdb_link_hold(&l, 1);
	vmc(&l, poll, 1, 0);
	CHECK(tx_count == 0, "held: POLL gets silence (refund in progress)");
	mdb_link_hold(&l, 0);

	{
		static const uint8_t vend32[] = { 0x13, 0x00, 0x00, 0x00, 0x01, 0x5e, 0x00, 0x0c };
		mdb_link_set_expanded(&l, 1);
		vmc(&l, vend32, sizeof vend32, 0);
		CHECK(is_ack() && commands == 2 && cmd_length == 8, "expanded mode: 32-bit VEND REQUEST length");
	}
	vmc(&l, reset, 1, 0);
	vmc(&l, reset, 1, 0);
	CHECK(commands == 4, "RESET always runs");
	mdb_link_receive(&l, MDB_BREAK);
	CHECK(resets == 1 && !l.expanded, "bus reset");
	CHECK(mdb_classify_response(0x01) == 'a' && mdb_classify_response(0xab) == 'r' && mdb_classify_response(0xfe) == 'n',
		"ACK/RET/NAK by set bits");

	/* Direct replies (docs/mdb.md §2.1): a primed message answers its command instead of the ACK. */
	{
		static const uint8_t setup[] = { 0x11, 0x00, 0x03, 0x00, 0x00, 0x00 };
		static const uint8_t config[] = { 0x01, 0x03, 0x11, 0x56, 0x01, 0x02, 0x1e, 0x03 };
		static const uint8_t complete[] = { 0x13, 0x04 }, cancel[] = { 0x13, 0x01 }, end[] = { 0x07 }, denied[] = { 0x06 };
		static const uint8_t prices[] = { 0x11, 0x01, 0xff, 0xff, 0x00, 0x00 };
		int before = commands, sum = 0, i;
		for (i = 0; i < (int)sizeof config; i++) sum += config[i];
		CHECK(mdb_direct_slot(setup, 6) == MDB_DIRECT_SETUP_CONFIG && mdb_direct_slot(complete, 2) == MDB_DIRECT_SESSION_COMPLETE &&
			mdb_direct_slot(cancel, 2) == MDB_DIRECT_VEND_CANCEL && mdb_direct_slot(vend, 6) == -1 && mdb_direct_slot(prices, 6) == -1,
			"direct-reply slots");
		CHECK(mdb_link_prime(&l, 4, config, sizeof config) == -1, "no fifth slot");

		vmc(&l, setup, sizeof setup, 0);
		CHECK(is_ack() && commands == before + 1 && !last_direct, "unprimed SETUP config: ACK, handed up as deferred");
		mdb_link_prime(&l, MDB_DIRECT_SETUP_CONFIG, config, sizeof config);
		vmc(&l, reset, 1, 0);
		vmc(&l, setup, sizeof setup, 0);
		CHECK(tx_count == 9 && tx[0] == 0x01 && tx[7] == 0x03 && tx[8] == (MDB_MODE | (sum & 0xff)) && last_direct && l.stats.direct == 1,
			"primed SETUP config: READER CONFIG + CHK as the direct reply, handed up as direct");
		tx_count = 0;
		mdb_link_receive(&l, 0x00);
		CHECK(tx_count == 0 && delivered == 3, "the VMC's ACK of a direct reply is not an armed delivery");
		vmc(&l, setup, sizeof setup, 0);
		CHECK(is_ack() && !last_direct, "a prime is used once");

		mdb_link_prime(&l, MDB_DIRECT_SESSION_COMPLETE, end, 1);
		vmc(&l, complete, 2, 0);
		CHECK(tx_count == 2 && tx[0] == 0x07 && tx[1] == (MDB_MODE | 0x07) && last_direct, "SESSION COMPLETE -> END SESSION directly");
		before = commands;
		vmc(&l, complete, 2, 0); /* no ACK came: the VMC repeats the command */
		CHECK(tx_count == 2 && tx[0] == 0x07 && commands == before, "the repeat gets the unacknowledged direct reply again, not run twice");
		vmc(&l, poll, 1, 0);
		CHECK(tx_count == 2 && tx[0] == 0x07, "and the next POLL carries it until ACKed");
		mdb_link_receive(&l, 0x00);
		vmc(&l, poll, 1, 0);
		CHECK(is_ack(), "ACKed: gone");

		mdb_link_prime(&l, MDB_DIRECT_VEND_CANCEL, denied, 1);
		mdb_link_prime(&l, MDB_DIRECT_VEND_CANCEL, denied, 0);
		vmc(&l, cancel, 2, 0);
		CHECK(is_ack() && !last_direct, "unprimed (length 0): VEND CANCEL is ACKed, its answer deferred");
		mdb_link_prime(&l, MDB_DIRECT_VEND_CANCEL, denied, 1);
		vmc(&l, vend, sizeof vend, 0);
		CHECK(is_ack() && !last_direct, "VEND REQUEST is never answered directly");
		vmc(&l, cancel, 2, 0);
		CHECK(tx_count == 2 && tx[0] == 0x06 && last_direct, "VEND CANCEL -> VEND DENIED directly");
		mdb_link_receive(&l, 0x00);
	}

	/* Noise: random words never crash nor overrun. */
	{
		uint32_t s = 13;
		int i;
		for (i = 0; i < 100000; i++) {
			s = s * 1664525u + 1013904223u;
			tx_count = 0;
			mdb_link_receive(&l, (uint16_t)((s >> 8) & 0x1ff));
			CHECK(tx_count <= MDB_MAX_BLOCK, "no reply longer than a block");
		}
	}

	printf(failures ? "%d FAILED\n" : "mdb link core: all checks passed\n", failures);
	return failures ? 1 : 0;
}
