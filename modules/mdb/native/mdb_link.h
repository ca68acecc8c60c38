/*
 * Portable core of the MDB cashless-device link (docs/mdb.md §2): the same rules as modules/mdb/link.ts, in C, so
 * on the ESP32 the 5 ms answer to POLL comes from an interrupt-level task and not from the XS event loop.
 * Words are 9-bit values: bits 0-7 data, bit 8 the mode bit; MDB_BREAK marks a bus reset.
 * No allocation, no blocking: the caller feeds received words and supplies a transmit function.
 */
#ifndef MDB_LINK_H
#define MDB_LINK_H

#include <stdint.h>
#include <stddef.h>

#define MDB_MODE 0x100
#define MDB_BREAK 0x200
#define MDB_MAX_BLOCK 36

/* The commands a direct reply can answer (docs/mdb.md §2.1); the same numbers as modules/mdb/link.ts's DIRECT_*. */
enum { MDB_DIRECT_SETUP_CONFIG = 0, MDB_DIRECT_REQUEST_ID = 1, MDB_DIRECT_SESSION_COMPLETE = 2, MDB_DIRECT_VEND_CANCEL = 3, MDB_DIRECT_SLOTS = 4 };

typedef struct mdb_link mdb_link;

typedef struct {
	/* Transmit words now (the hardware layer bit-bangs or queues them). */
	void (*send)(void *ctx, const uint16_t *words, size_t count);
	/*
	 * A whole, checksummed, non-POLL, non-duplicate block (address + data, no CHK), answered already: with its primed
	 * direct reply when `direct` is 1, else with an ACK.
	 */
	void (*on_command)(void *ctx, const uint8_t *block, size_t length, int direct);
	/* The VMC ACKed `length` bytes of armed data (never called for a direct reply). */
	void (*on_delivered)(void *ctx, size_t length);
	void (*on_bus_reset)(void *ctx);
	void *ctx;
} mdb_link_callbacks;

typedef struct {
	uint32_t commands, polls, duplicates, bad_checksums, unknown, resends, naks, direct;
} mdb_link_stats;

struct mdb_link {
	mdb_link_callbacks cb;
	uint8_t base;
	uint8_t block[MDB_MAX_BLOCK];
	int length;
	int need; /* -1 not in a block of ours; 0 length not yet known */
	uint8_t armed[MDB_MAX_BLOCK];
	int armed_length;
	uint16_t sent[MDB_MAX_BLOCK];
	int sent_words;
	int awaiting;
	int sent_direct;    /* what `sent` holds is a direct reply, not the armed data */
	int direct_pending; /* a direct reply the VMC did not ACK: the next POLL carries it */
	uint8_t primed[MDB_DIRECT_SLOTS][MDB_MAX_BLOCK];
	int primed_length[MDB_DIRECT_SLOTS];
	uint8_t last[MDB_MAX_BLOCK];
	int last_length;
	int silent;
	int expanded;
	mdb_link_stats stats;
};

/* address is 0x10 or 0x60; returns 0, or -1 for another address. */
int mdb_link_init(mdb_link *link, uint8_t address, const mdb_link_callbacks *cb);
void mdb_link_receive(mdb_link *link, uint16_t word);
/* What the next POLL gets (copied; at most 35 bytes; 0 bytes = bare ACK). */
void mdb_link_arm(mdb_link *link, const uint8_t *reply, size_t length);
void mdb_link_hold(mdb_link *link, int silent);
void mdb_link_set_expanded(mdb_link *link, int expanded);
/* The message (data, no CHK; at most 35 bytes) the next command of `slot` is answered with directly instead of an
   ACK; length 0 = none. Used once. Returns -1 for a slot that does not exist. */
int mdb_link_prime(mdb_link *link, int slot, const uint8_t *reply, size_t length);
/* The direct-reply slot of a command block, or -1. */
int mdb_direct_slot(const uint8_t *block, int length);

/* Data bytes (address included, CHK excluded) of the command begun in block, or 0 = need more, -1 = not ours. */
int mdb_command_length(const uint8_t *block, int seen, int expanded);
/* 'a' ACK, 'r' RET, 'n' NAK by set bits (docs/mdb.md §2). */
char mdb_classify_response(uint8_t byte);

#endif
