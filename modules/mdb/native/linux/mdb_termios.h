/*
 * The PC's MDB link (docs/mdb.md §8): a Linux UART whose parity bit carries MDB's mode bit. Transmit with
 * PARENB | CMSPAR, PARODD choosing mark (mode 1) or space (mode 0), the output drained before each switch; receive
 * with space parity and INPCK | PARMRK, so a mode-bit byte reads as FF 00 b and a data FF as FF FF: the byte-stream
 * encoding of docs/mdb.md §5, which the terminal's StreamLink reads as it is.
 */
#ifndef MDB_TERMIOS_H
#define MDB_TERMIOS_H

#include <stddef.h>
#include <stdint.h>
#include <termios.h>

#define MDB_WORD_MODE 0x100
#define MDB_WORD_BREAK 0x200

/* Streaming decoder of the §5 encoding (what the terminal writes on the helper's stdin). */
typedef struct {
	int state; /* 0 plain, 1 after FF, 2 after FF 00 */
	unsigned long errors;
} mdb_wire_decoder;

/* Feeds one byte; returns 1 and sets *word when a word is complete, else 0. */
int mdb_wire_decode(mdb_wire_decoder *d, uint8_t byte, uint16_t *word);

/* 9600 baud, 8 data bits, parity on as the mode bit (mark if mark != 0), raw, PARMRK receive, breaks ignored. */
void mdb_termios_setup(struct termios *t, int mark);
/* Switches only the transmit parity between mark and space. */
void mdb_termios_parity(struct termios *t, int mark);

/* Opens and configures the UART; returns the fd or -1 (errno set). */
int mdb_termios_open(const char *path);
/*
 * Sends words, switching parity only when the mode bit changes and draining the output before each switch.
 * Break words are skipped (a reader never sends one). Returns 0, or -1 on a write or termios error.
 */
int mdb_termios_send(int fd, const uint16_t *words, size_t count);

#endif
