/** Finding the user's Moddable SDK: the one command and the tests that need it share the answer and the message. */
import { existsSync } from "node:fs";
import path from "node:path";

export const MODDABLE_MISSING = "Moddable SDK not found: install it per https://github.com/Moddable-OpenSource/moddable/blob/public/documentation/Moddable%20SDK%20-%20Getting%20Started.md#lin (Linux), build its tools (cd $MODDABLE/build/makefiles/lin && make), export MODDABLE=<its directory> and put $MODDABLE/build/bin/lin/release on PATH";

/** The SDK's tools directory, or undefined when $MODDABLE is not an SDK with built Linux tools. */
export function moddableTools(env = process.env): string | undefined {
  const sdk = env.MODDABLE;
  if (!sdk) return undefined;
  const bin = path.join(sdk, "build", "bin", "lin", "release");
  return existsSync(path.join(bin, "mcconfig")) && existsSync(path.join(bin, "mcsim")) ? bin : undefined;
}

