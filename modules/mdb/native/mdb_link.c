/* See mdb_link.h. Mirrors modules/mdb/link.ts rule for rule; test/native_test.c checks the same cases. */
#include "mdb_link.h"
#include <string.h>

enum { RESET = 0, SETUP = 1, POLL = 2, VEND = 3, READER = 4, REVALUE = 5, EXPANSION = 7 };

static const uint16_t ACK_WORD = MDB_MODE | 0x00;

int mdb_command_length(const uint8_t *block, int seen, int expanded)
{
	int command = block[0] & 7;
	int sub;
	switch (command) {
	case RESET: case POLL: return 1;
	case SETUP: case VEND: case READER: case REVALUE: case EXPANSION: break;
	default: return -1;
	}
	if (seen < 2) return 0;
	sub = block[1];
	switch (command) {
	case SETUP: return sub == 0 ? 6 : sub == 1 ? (expanded ? 12 : 6) : -1;
	case VEND:
		switch (sub) {
		case 0: case 6: return expanded ? 8 : 6;
		case 1: case 3: case 4: return 2;
		case 2: return 4;
		case 5: return expanded ? 10 : 6;
		default: return -1;
		}
	case READER: return sub <= 2 ? 2 : sub == 3 ? 10 : -1;
	case REVALUE: return sub == 0 ? (expanded ? 6 : 4) : sub == 1 ? 2 : -1;
	default:
		switch (sub) {
		case 0: return 31;
		case 1: return 3;
		case 2: if (seen < 4) return 0; return 4 + block[3] <= MDB_MAX_BLOCK - 1 ? 4 + block[3] : -1;
		case 3: return 12;
		case 4: return 6;
		default: return -1;
		}
	}
}

char mdb_classify_response(uint8_t byte)
{
	int bits = 0;
	while (byte) { bits += byte & 1; byte >>= 1; }
	return bits <= 1 ? 'a' : (bits >= 3 && bits <= 5) ? 'r' : 'n';
}

int mdb_link_init(mdb_link *link, uint8_t address, const mdb_link_callbacks *cb)
{
	if (address != 0x10 && address != 0x60) return -1;
	memset(link, 0, sizeof *link);
	link->cb = *cb;
	link->base = address;
	link->need = -1;
	return 0;
}

void mdb_link_arm(mdb_link *link, const uint8_t *reply, size_t length)
{
	if (length > MDB_MAX_BLOCK - 1) length = MDB_MAX_BLOCK - 1;
	memcpy(link->armed, reply, length);
	link->armed_length = (int)length;
}

int mdb_link_prime(mdb_link *link, int slot, const uint8_t *reply, size_t length)
{
	if (slot < 0 || slot >= MDB_DIRECT_SLOTS) return -1;
	if (length > MDB_MAX_BLOCK - 1) length = MDB_MAX_BLOCK - 1;
	memcpy(link->primed[slot], reply, length);
	link->primed_length[slot] = (int)length;
	return 0;
}

int mdb_direct_slot(const uint8_t *block, int length)
{
	int command = block[0] & 7, sub = length > 1 ? block[1] : -1;
	if (command == SETUP && sub == 0x00) return MDB_DIRECT_SETUP_CONFIG;
	if (command == EXPANSION && sub == 0x00) return MDB_DIRECT_REQUEST_ID;
	if (command == VEND && sub == 0x04) return MDB_DIRECT_SESSION_COMPLETE;
	if (command == VEND && sub == 0x01) return MDB_DIRECT_VEND_CANCEL;
	return -1;
}

/* Sends `length` bytes + CHK from `data` and awaits the VMC's answer to them. */
static void send_data(mdb_link *link, const uint8_t *data, int length, int direct)
{
	int i, sum = 0;
	for (i = 0; i < length; i++) { link->sent[i] = data[i]; sum += data[i]; }
	link->sent[length] = MDB_MODE | (sum & 0xff);
	link->sent_words = length + 1;
	link->sent_direct = direct;
	link->awaiting = 1;
	link->cb.send(link->cb.ctx, link->sent, (size_t)link->sent_words);
}

static void resend(mdb_link *link)
{
	link->stats.resends++;
	link->awaiting = 1;
	link->cb.send(link->cb.ctx, link->sent, (size_t)link->sent_words);
}

/* NAK or silence after our data: armed data stays armed; a direct reply waits for the next POLL. */
static void unacknowledged(mdb_link *link)
{
	link->stats.naks++;
	if (link->sent_direct) link->direct_pending = 1;
}

void mdb_link_hold(mdb_link *link, int silent) { link->silent = silent; }
void mdb_link_set_expanded(mdb_link *link, int expanded) { link->expanded = expanded; }

static void complete(mdb_link *link, int n)
{
	int command = link->block[0] & 7, slot, primed;
	if (command == POLL) {
		link->stats.polls++;
		if (link->silent) return;
		if (link->direct_pending) { resend(link); return; }
		if (!link->armed_length) { link->cb.send(link->cb.ctx, &ACK_WORD, 1); return; }
		send_data(link, link->armed, link->armed_length, 0);
		return;
	}
	if (command != RESET && n == link->last_length && !memcmp(link->block, link->last, (size_t)n)) {
		link->stats.duplicates++;
		if (link->direct_pending) resend(link);
		else link->cb.send(link->cb.ctx, &ACK_WORD, 1);
		return;
	}
	memcpy(link->last, link->block, (size_t)n);
	link->last_length = command == RESET ? 0 : n;
	link->stats.commands++;
	if (command == RESET) link->direct_pending = 0;
	slot = mdb_direct_slot(link->block, n);
	primed = slot < 0 ? 0 : link->primed_length[slot];
	if (!primed) {
		link->cb.send(link->cb.ctx, &ACK_WORD, 1);
		link->cb.on_command(link->cb.ctx, link->block, (size_t)n, 0);
		return;
	}
	link->primed_length[slot] = 0;
	link->stats.direct++;
	send_data(link, link->primed[slot], primed, 1);
	link->cb.on_command(link->cb.ctx, link->block, (size_t)n, 1);
}

void mdb_link_receive(mdb_link *link, uint16_t word)
{
	int n;
	if (word == MDB_BREAK) {
		link->need = -1; link->awaiting = 0; link->direct_pending = 0; link->armed_length = 0; link->last_length = 0; link->expanded = 0;
		link->cb.on_bus_reset(link->cb.ctx);
		return;
	}
	if (link->awaiting) {
		if (!(word & MDB_MODE) || word == (MDB_MODE | 0x00)) {
			char answer = mdb_classify_response((uint8_t)word);
			link->awaiting = 0;
			if (answer == 'a') {
				link->last_length = 0;
				if (link->sent_direct) { link->direct_pending = 0; return; }
				link->armed_length = 0;
				link->cb.on_delivered(link->cb.ctx, (size_t)(link->sent_words - 1));
			} else if (answer == 'r') resend(link);
			else unacknowledged(link);
			return;
		}
		link->awaiting = 0;
		unacknowledged(link);
	}
	if (word & MDB_MODE) {
		uint8_t b = (uint8_t)word;
		if ((b & 0xf8) != link->base) { link->need = -1; return; }
		link->block[0] = b;
		link->length = 1;
		link->need = mdb_command_length(link->block, 1, link->expanded);
		if (link->need < 0) link->stats.unknown++;
		return;
	}
	if (link->need < 0) return;
	if (link->length >= MDB_MAX_BLOCK) { link->need = -1; return; }
	link->block[link->length++] = (uint8_t)word;
	if (link->need == 0) {
		link->need = mdb_command_length(link->block, link->length, link->expanded);
		if (link->need < 0) { link->stats.unknown++; return; }
		if (link->need == 0) return;
	}
	if (link->length < link->need + 1) return;
	link->need = -1;
	n = link->length - 1;
	{
		int i, sum = 0;
		for (i = 0; i < n; i++) sum += link->block[i];
		if ((sum & 0xff) != link->block[n]) { link->stats.bad_checksums++; return; }
	}
	complete(link, n);
}
