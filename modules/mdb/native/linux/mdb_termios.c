/* See mdb_termios.h. */
#define _DEFAULT_SOURCE
#include "mdb_termios.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#ifndef CMSPAR
#define CMSPAR 010000000000 /* Linux: "stick" parity; not in every libc's headers */
#endif

int mdb_wire_decode(mdb_wire_decoder *d, uint8_t byte, uint16_t *word) {
	switch (d->state) {
	case 0:
		if (byte == 0xFF) {
			d->state = 1;
			return 0;
		}
		*word = byte;
		return 1;
	case 1:
		d->state = 0;
		if (byte == 0xFF) {
			*word = 0xFF;
			return 1;
		}
		if (byte == 0x00) {
			d->state = 2;
			return 0;
		}
		if (byte == 0x01) {
			*word = MDB_WORD_BREAK;
			return 1;
		}
		/* A broken escape: drop it and read this byte afresh, as modules/mdb/wire.ts does. */
		d->errors++;
		return mdb_wire_decode(d, byte, word);
	default:
		d->state = 0;
		*word = MDB_WORD_MODE | byte;
		return 1;
	}
}

void mdb_termios_parity(struct termios *t, int mark) {
	if (mark) t->c_cflag |= PARODD;
	else t->c_cflag &= ~(tcflag_t)PARODD;
}

void mdb_termios_setup(struct termios *t, int mark) {
	t->c_cflag &= ~(tcflag_t)(CSIZE | CSTOPB | CRTSCTS);
	t->c_cflag |= CS8 | CREAD | CLOCAL | PARENB | CMSPAR;
	mdb_termios_parity(t, mark);
	/* INPCK + PARMRK with IGNPAR and ISTRIP clear: a byte received with the mode bit set (a parity error under
	 * space parity) arrives as FF 00 b, a data FF as FF FF. IGNBRK: a break would read as FF 00 00, the same bytes as
	 * a VMC's ACK sent with the mode bit, so breaks are dropped and the RESET command is what resets the reader. */
	t->c_iflag = INPCK | PARMRK | IGNBRK;
	t->c_oflag = 0;
	t->c_lflag = 0;
	t->c_cc[VMIN] = 1;
	t->c_cc[VTIME] = 0;
	cfsetispeed(t, B9600);
	cfsetospeed(t, B9600);
}

int mdb_termios_open(const char *path) {
	int fd = open(path, O_RDWR | O_NOCTTY);
	if (fd < 0) return -1;
	struct termios t;
	if (tcgetattr(fd, &t) != 0) goto fail;
	mdb_termios_setup(&t, 0);
	if (tcsetattr(fd, TCSANOW, &t) != 0) goto fail;
	return fd;
fail: {
	int saved = errno;
	close(fd);
	errno = saved;
	return -1;
}
}

static int write_all(int fd, const uint8_t *bytes, size_t n) {
	while (n) {
		ssize_t w = write(fd, bytes, n);
		if (w < 0) {
			if (errno == EINTR) continue;
			return -1;
		}
		bytes += w;
		n -= (size_t)w;
	}
	return 0;
}

int mdb_termios_send(int fd, const uint16_t *words, size_t count) {
	struct termios t;
	if (tcgetattr(fd, &t) != 0) return -1;
	int mark = (t.c_cflag & PARODD) != 0;
	uint8_t run[64];
	size_t n = 0;
	for (size_t i = 0; i <= count; i++) {
		int end = i == count;
		int want = end ? 0 : (words[i] & MDB_WORD_MODE) != 0;
		if (!end && words[i] == MDB_WORD_BREAK) continue;
		if (end || want != mark || n == sizeof run) {
			if (n && write_all(fd, run, n) != 0) return -1;
			n = 0;
			if (!end && want != mark) {
				/* The bytes already queued must leave with the old parity before it changes. */
				if (tcdrain(fd) != 0) return -1;
				mdb_termios_parity(&t, want);
				if (tcsetattr(fd, TCSANOW, &t) != 0) return -1;
				mark = want;
			}
		}
		if (!end) run[n++] = (uint8_t)words[i];
	}
	/* Back to space parity for receiving, once the last (mode-bit) byte is out. */
	if (mark) {
		if (tcdrain(fd) != 0) return -1;
		mdb_termios_parity(&t, 0);
		if (tcsetattr(fd, TCSANOW, &t) != 0) return -1;
	}
	return 0;
}
