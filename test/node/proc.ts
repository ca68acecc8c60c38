/**
 * What another process is doing, read from Linux's /proc: conditions for tests to wait on (with until()) instead of
 * guessing how long a child takes to open its ports.
 */
import { readdirSync, readFileSync, readlinkSync, realpathSync } from "node:fs";

/** Whether process `pid` has `file` open (symlinks such as socat's pty links are resolved first). */
export function holdsOpen(pid: number, file: string): boolean {
  try {
    const target = realpathSync(file);
    return readdirSync(`/proc/${pid}/fd`).some((fd) => {
      try {
        return readlinkSync(`/proc/${pid}/fd/${fd}`) === target;
      } catch {
        return false; // closed meanwhile
      }
    });
  } catch {
    return false; // not started yet, or gone
  }
}

/** The scheduler state letter of process `pid` (S sleeping, R running...), or undefined if it is gone. */
export function processState(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/stat`, "utf8").replace(/^.*\) /s, "")[0];
  } catch {
    return undefined;
  }
}

/** The pids of the processes named `name` whose parent is `pid`. */
export function childrenNamed(pid: number, name: string): number[] {
  const out: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const [, comm, rest] = /^\d+ \((.*)\) (.*)$/s.exec(readFileSync(`/proc/${entry}/stat`, "utf8"))!;
      if (comm === name && Number(rest!.split(" ")[1]) === pid) out.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}
