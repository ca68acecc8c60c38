/**
 * What every Moddable host's main module shares (hosts/esp32/main.ts, hosts/lin/main.ts): the device `Timers` over
 * the SDK's `Timer` and `Time`, and the start that tries again. A terminal that did not start charged nothing, and
 * the journal is read again on the next try, so trying again is always safe; the wait keeps a failing front-end or a
 * missing reader from being hammered.
 */
import Time from "time";
import Timer from "timer";
import type { Timers } from "../../modules/device/types";

export const moddableTimers: Timers = {
  set: (callback, ms) => Timer.set(() => callback(), ms),
  repeat: (callback, ms) => Timer.repeat(() => callback(), ms),
  clear: (handle) => Timer.clear(handle as Timer | undefined),
  now: () => Time.ticks,
};

export const RETRY_MS = 10_000;

/** Runs `main`; when it fails, traces why and runs it again after `retryMs`, for as long as it takes. */
export function startWithRetry(main: () => Promise<void>, retryMs = RETRY_MS): void {
  const start = () => {
    main().catch((error: Error) => {
      trace(`terminal failed to start (${(error as { code?: string }).code ?? error.name}): ${error.message}; again in ${retryMs} ms\n`);
      Timer.set(start, retryMs);
    });
  };
  start();
}
