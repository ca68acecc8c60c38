/* Prints mdb_command_length for every first byte, sub-command, LENGTH byte (Z3 of EXPANSION 02), bytes seen and
 * currency mode, one number a line, for test/node/mdb/native.test.ts to compare with modules/mdb/commands.ts. */
#include <stdio.h>
#include "../mdb_link.h"

int main(void)
{
	uint8_t block[MDB_MAX_BLOCK];
	for (int first = 0; first < 8; first++)
		for (int sub = 0; sub < 256; sub++)
			for (int z3 = 0; z3 < 40; z3++)
				for (int seen = 1; seen <= 4; seen++)
					for (int expanded = 0; expanded < 2; expanded++) {
						block[0] = (uint8_t)(0x10 | first);
						block[1] = (uint8_t)sub;
						block[2] = 0;
						block[3] = (uint8_t)z3;
						printf("%d\n", mdb_command_length(block, seen, expanded));
					}
	return 0;
}
