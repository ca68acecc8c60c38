/*
 * The Moddable glue of the MDB link (hosts/esp32/mdb-link.js): the C link core (../mdb_link.c) on the ESP32
 * hardware layer, with JavaScript above it exchanging whole frames (docs/mdb.md §8). The core answers POLL from the
 * armed reply, and SETUP config, REQUEST ID, SESSION COMPLETE and VEND CANCEL from their primed direct replies,
 * inside the link task, within 5 ms, whatever the XS machine is doing; commands (saying whether they got the direct
 * reply), deliveries and bus resets go up to the machine as messages. One link per device. Needs the Moddable SDK
 * and ESP-IDF.
 */
#include "xsmc.h"
#include "xsHost.h"
#include "mc.xs.h"

#include <string.h>

#include "../mdb_hw.h"
#include "../mdb_link.h"

enum { UP_COMMAND = 1, UP_DELIVERED, UP_BUS_RESET };

typedef struct {
	uint8_t kind;
	uint8_t direct;
	uint8_t length;
	uint8_t bytes[MDB_MAX_BLOCK];
} up_message;

typedef struct {
	xsMachine *the;
	xsSlot object;
	mdb_link link;
	portMUX_TYPE mux;
	int open;
} xs_mdb;

static xs_mdb *current;

static void deliver(void *the, void *refcon, uint8_t *message, uint16_t length) {
	xs_mdb *m = refcon;
	up_message *up = (up_message *)message;
	(void)length;
	if (!m->open) return;
	xsBeginHost(the);
	xsmcVars(3);
	if (up->kind == UP_COMMAND) {
		xsmcSetArrayBuffer(xsVar(1), up->bytes, up->length);
		xsmcGet(xsVar(0), m->object, xsID_onCommand);
		xsmcSetBoolean(xsVar(2), up->direct);
		xsCallFunction2(xsVar(0), m->object, xsVar(1), xsVar(2));
	} else if (up->kind == UP_DELIVERED) {
		xsmcSetInteger(xsVar(1), up->length);
		xsmcGet(xsVar(0), m->object, xsID_onDelivered);
		xsCallFunction1(xsVar(0), m->object, xsVar(1));
	} else {
		xsmcGet(xsVar(0), m->object, xsID_onBusReset);
		xsCallFunction0(xsVar(0), m->object);
	}
	xsEndHost(the);
}

static void post(xs_mdb *m, uint8_t kind, int direct, const uint8_t *bytes, size_t length) {
	up_message up = { kind, (uint8_t)direct, (uint8_t)length, {0} };
	if (bytes) memcpy(up.bytes, bytes, length);
	modMessagePostToMachine(m->the, (uint8_t *)&up, sizeof up, deliver, m);
}

static void on_send(void *ctx, const uint16_t *words, size_t count) { (void)ctx; mdb_hw_send(words, count); }
static void on_command(void *ctx, const uint8_t *block, size_t length, int direct) { post(ctx, UP_COMMAND, direct, block, length); }
static void on_delivered(void *ctx, size_t length) { post(ctx, UP_DELIVERED, 0, NULL, length); }
static void on_bus_reset(void *ctx) { post(ctx, UP_BUS_RESET, 0, NULL, 0); }

/* From the link task: the core runs under the lock that arm/hold take from the XS side. */
static void on_word(void *ctx, uint16_t word) {
	xs_mdb *m = ctx;
	portENTER_CRITICAL(&m->mux);
	mdb_link_receive(&m->link, word);
	portEXIT_CRITICAL(&m->mux);
}

void xs_mdb_destructor(void *data) {
	xs_mdb *m = data;
	if (!m) return;
	if (m->open) mdb_hw_close();
	if (current == m) current = NULL;
	c_free(m);
}

/* new MdbLink({receive, transmit, address, onCommand, onDelivered, onBusReset}) */
void xs_mdb_constructor(xsMachine *the) {
	if (current) xsUnknownError("MDB link already open");
	xsmcVars(1);
	xsmcGet(xsVar(0), xsArg(0), xsID_receive);
	int rx = xsmcToInteger(xsVar(0));
	xsmcGet(xsVar(0), xsArg(0), xsID_transmit);
	int tx = xsmcToInteger(xsVar(0));
	xsmcGet(xsVar(0), xsArg(0), xsID_address);
	int address = xsmcToInteger(xsVar(0));
	xs_mdb *m = c_calloc(1, sizeof(xs_mdb));
	if (!m) xsUnknownError("no memory");
	m->the = the;
	m->object = xsThis;
	portMUX_INITIALIZE(&m->mux);
	mdb_link_callbacks cb = { on_send, on_command, on_delivered, on_bus_reset, m };
	if (mdb_link_init(&m->link, (uint8_t)address, &cb) != 0) {
		c_free(m);
		xsRangeError("MDB cashless address is 0x10 or 0x60");
	}
	xsmcSetHostData(xsThis, m);
	xsmcGet(xsVar(0), xsArg(0), xsID_onCommand);
	xsmcSet(xsThis, xsID_onCommand, xsVar(0));
	xsmcGet(xsVar(0), xsArg(0), xsID_onDelivered);
	xsmcSet(xsThis, xsID_onDelivered, xsVar(0));
	xsmcGet(xsVar(0), xsArg(0), xsID_onBusReset);
	xsmcSet(xsThis, xsID_onBusReset, xsVar(0));
	mdb_hw_callbacks hw = { on_word, m };
	if (mdb_hw_open(rx, tx, &hw) != 0) xsUnknownError("MDB pins could not be opened");
	m->open = 1;
	current = m;
	xsRemember(m->object);
}

void xs_mdb_arm(xsMachine *the) {
	xs_mdb *m = xsmcGetHostData(xsThis);
	void *data;
	xsUnsignedValue length;
	xsmcGetBufferReadable(xsArg(0), &data, &length);
	if (length > MDB_MAX_BLOCK - 1) length = MDB_MAX_BLOCK - 1;
	portENTER_CRITICAL(&m->mux);
	mdb_link_arm(&m->link, data, length);
	portEXIT_CRITICAL(&m->mux);
}

/* prime(slot, reply): the direct reply for that slot's next command; an empty reply unprimes it. */
void xs_mdb_prime(xsMachine *the) {
	xs_mdb *m = xsmcGetHostData(xsThis);
	int slot = xsmcToInteger(xsArg(0));
	void *data;
	xsUnsignedValue length;
	int ok;
	xsmcGetBufferReadable(xsArg(1), &data, &length);
	if (length > MDB_MAX_BLOCK - 1) length = MDB_MAX_BLOCK - 1;
	portENTER_CRITICAL(&m->mux);
	ok = mdb_link_prime(&m->link, slot, data, length);
	portEXIT_CRITICAL(&m->mux);
	if (ok != 0) xsRangeError("MDB direct-reply slot is 0..3");
}

void xs_mdb_hold(xsMachine *the) {
	xs_mdb *m = xsmcGetHostData(xsThis);
	int silent = xsmcTest(xsArg(0));
	portENTER_CRITICAL(&m->mux);
	mdb_link_hold(&m->link, silent);
	portEXIT_CRITICAL(&m->mux);
}

void xs_mdb_set_expanded(xsMachine *the) {
	xs_mdb *m = xsmcGetHostData(xsThis);
	int expanded = xsmcTest(xsArg(0));
	portENTER_CRITICAL(&m->mux);
	mdb_link_set_expanded(&m->link, expanded);
	portEXIT_CRITICAL(&m->mux);
}

void xs_mdb_close(xsMachine *the) {
	xs_mdb *m = xsmcGetHostData(xsThis);
	if (!m || !m->open) return;
	m->open = 0;
	mdb_hw_close();
	xsForget(m->object);
	current = NULL;
}
