/**
 * `npm run cards -- issue --keystore <file> --out card.json [options]`: makes a virtual card's file for the PN532
 * emulator (`tools/sim/pn532sim/main.ts --card card.json`). This is how a PC with the emulator on a serial line, or a
 * terminal paying against `npm run frontend -- init`'s front-ends, gets a card to pay with.
 */
import { CARDS_HELP, CardsUsageError, issueCardFile, parseIssueOptions } from "./card-file";

function main(argv: string[]): number {
  const [command, ...rest] = argv;
  if (!command || command === "--help" || command === "-h" || rest.includes("--help")) {
    console.log(CARDS_HELP);
    return command ? 0 : 2;
  }
  try {
    if (command !== "issue") throw new CardsUsageError(`unknown command ${command} (the command is issue)`);
    const options = parseIssueOptions(rest);
    issueCardFile(options);
    console.error(`cards: wrote ${options.out}: ${options.layout} card ${options.asn}, city ${options.city}, ${options.algorithm}, ` +
      `key ${options.keyIndex}/${options.keyVersion}, balance ${options.balance} fen`);
    return 0;
  } catch (error) {
    const e = error as Error & { code?: string };
    console.error(`cards: ${e.message}`);
    // Usage mistakes (ours or parseArgs's) exit 2, as the other command lines do; a key store that cannot be read, 1.
    return error instanceof CardsUsageError || e.code?.startsWith("ERR_PARSE_ARGS") ? 2 : 1;
  }
}

process.exitCode = main(process.argv.slice(2));
