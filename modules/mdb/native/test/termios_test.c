/* Unit tests of the PC link helper's logic (modules/mdb/native/linux), with a pty for what a pty can show: the data bytes
 * and the termios flags. A pty carries no parity bit, so the mark/space on the wire is checked as flags only. */
#define _DEFAULT_SOURCE
#define _XOPEN_SOURCE 600
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "../linux/mdb_termios.h"

#ifndef CMSPAR
#define CMSPAR 010000000000
#endif

static int failures = 0;
#define CHECK(c) do { if (!(c)) { printf("FAIL %s:%d %s\n", __FILE__, __LINE__, #c); failures++; } } while (0)

static size_t decode_all(const uint8_t *in, size_t n, uint16_t *out, mdb_wire_decoder *d) {
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		uint16_t w;
		if (mdb_wire_decode(d, in[i], &w)) out[k++] = w;
	}
	return k;
}

static void test_decoder(void) {
	mdb_wire_decoder d = {0, 0};
	const uint8_t in[] = {0x12, 0xFF, 0xFF, 0xFF, 0x00, 0x34, 0xFF, 0x01, 0xFF, 0x07, 0x08};
	uint16_t out[16];
	size_t k = decode_all(in, sizeof in, out, &d);
	CHECK(k == 6);
	CHECK(out[0] == 0x12);
	CHECK(out[1] == 0xFF);
	CHECK(out[2] == (MDB_WORD_MODE | 0x34));
	CHECK(out[3] == MDB_WORD_BREAK);
	CHECK(out[4] == 0x07); /* FF 07: broken escape, 07 read afresh */
	CHECK(out[5] == 0x08);
	CHECK(d.errors == 1);
	/* Split anywhere: the same words. */
	mdb_wire_decoder e = {0, 0};
	uint16_t w;
	CHECK(mdb_wire_decode(&e, 0xFF, &w) == 0);
	CHECK(mdb_wire_decode(&e, 0x00, &w) == 0);
	CHECK(mdb_wire_decode(&e, 0x00, &w) == 1 && w == MDB_WORD_MODE);
}

static void test_flags(void) {
	struct termios t;
	memset(&t, 0, sizeof t);
	t.c_iflag = ISTRIP | IGNPAR | ICRNL;
	mdb_termios_setup(&t, 0);
	CHECK((t.c_cflag & (PARENB | CMSPAR)) == (PARENB | CMSPAR));
	CHECK((t.c_cflag & PARODD) == 0);
	CHECK((t.c_cflag & CSIZE) == CS8);
	CHECK((t.c_iflag & (INPCK | PARMRK)) == (INPCK | PARMRK));
	CHECK((t.c_iflag & (IGNPAR | ISTRIP | ICRNL)) == 0);
	CHECK(cfgetospeed(&t) == B9600);
	mdb_termios_parity(&t, 1);
	CHECK(t.c_cflag & PARODD);
	mdb_termios_parity(&t, 0);
	CHECK(!(t.c_cflag & PARODD));
}

static void test_pty(void) {
	int master = posix_openpt(O_RDWR | O_NOCTTY);
	CHECK(master >= 0);
	if (master < 0) return;
	CHECK(grantpt(master) == 0 && unlockpt(master) == 0);
	int fd = mdb_termios_open(ptsname(master));
	CHECK(fd >= 0);
	if (fd < 0) return;
	/* Linux ptys drop PARENB (they force CS8, no parity): the flags are checked above, the bytes here. */
	/* A reply: two data bytes, a data FF, then CHK with the mode bit; the helper ends in space parity. */
	const uint16_t words[] = {0x05, 0x01, 0xFF, MDB_WORD_MODE | 0x05, MDB_WORD_BREAK};
	CHECK(mdb_termios_send(fd, words, 5) == 0);
	uint8_t got[8];
	size_t n = 0;
	while (n < 4) {
		ssize_t r = read(master, got + n, sizeof got - n);
		if (r <= 0) break;
		n += (size_t)r;
	}
	CHECK(n == 4);
	CHECK(got[0] == 0x05 && got[1] == 0x01 && got[2] == 0xFF && got[3] == 0x05);
	close(fd);
	close(master);
}

int main(void) {
	test_decoder();
	test_flags();
	test_pty();
	if (failures) {
		printf("%d check(s) failed\n", failures);
		return 1;
	}
	printf("termios: all checks passed\n");
	return 0;
}
