/**
 * The one wait of the host-side tests: polls `check` until it holds, then returns what it gave. A test waits for the
 * condition it is about to assert, never for a fixed time, so it passes on a loaded machine and fails fast when the
 * condition can no longer come. Host only (Node timers); device tests run on the virtual clock instead.
 *
 * `check` holds when it returns anything but `false`, `undefined` or `null` (so a probe can hand back what it found).
 */
export async function until<T>(
  what: string,
  check: () => T | false | undefined | null | Promise<T | false | undefined | null>,
  withinMs = 15_000,
  everyMs = 20,
): Promise<T> {
  const deadline = Date.now() + withinMs;
  for (;;) {
    const value = await check();
    if (value !== false && value !== undefined && value !== null) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${withinMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}
