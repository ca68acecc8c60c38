/*
 * mdb-termios <tty>: the PC's MDB link helper. The UART (mark/space parity, docs/mdb.md §8) on one side; on the
 * other, stdin/stdout carrying the byte-stream encoding of docs/mdb.md §5, which the terminal's StreamLink speaks.
 * UART -> stdout unchanged (PARMRK already yields §5); stdin -> words -> UART with the parity set per word.
 * Ends when stdin closes. Exit 2 for usage, 1 for a device error (with one line on stderr).
 */
#define _DEFAULT_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "mdb_termios.h"

int main(int argc, char **argv) {
	if (argc != 2) {
		fprintf(stderr, "usage: mdb-termios /dev/ttyUSB0\n");
		return 2;
	}
	int fd = mdb_termios_open(argv[1]);
	if (fd < 0) {
		fprintf(stderr, "mdb-termios: cannot open %s as a mark/space parity UART: %s\n", argv[1], strerror(errno));
		return 1;
	}
	mdb_wire_decoder dec = {0, 0};
	uint8_t buf[256];
	uint16_t words[256];
	struct pollfd p[2] = {{.fd = 0, .events = POLLIN}, {.fd = fd, .events = POLLIN}};
	for (;;) {
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR) continue;
			break;
		}
		if (p[1].revents & POLLIN) {
			ssize_t n = read(fd, buf, sizeof buf);
			if (n <= 0) break;
			for (ssize_t off = 0; off < n;) {
				ssize_t w = write(1, buf + off, (size_t)(n - off));
				if (w <= 0) return 0;
				off += w;
			}
		} else if (p[1].revents & (POLLERR | POLLHUP)) break;
		if (p[0].revents & (POLLIN | POLLHUP)) {
			ssize_t n = read(0, buf, sizeof buf);
			if (n <= 0) break;
			size_t count = 0;
			for (ssize_t i = 0; i < n; i++) {
				uint16_t w;
				if (mdb_wire_decode(&dec, buf[i], &w)) words[count++] = w;
			}
			if (count && mdb_termios_send(fd, words, count) != 0) {
				fprintf(stderr, "mdb-termios: write to %s failed: %s\n", argv[1], strerror(errno));
				return 1;
			}
		}
	}
	close(fd);
	return 0;
}
