/**
 * What a serial port that will not open means to the person at the keyboard: missing, busy, or something else,
 * each with what to check. The PC terminal and the harness report it in one line.
 */
import { existsSync } from "node:fs";
import { SerialPort as NodeSerialPort } from "serialport";
import { CodedError } from "../../modules/errors/errors";

export type HarnessPortErrorCode = "PORT_MISSING" | "PORT_BUSY" | "PORT_OPEN_FAILED";

export class HarnessPortError extends CodedError {
  declare readonly code: HarnessPortErrorCode;
  readonly path: string;
  constructor(code: HarnessPortErrorCode, path: string, message: string) {
    super(code, message);
    this.path = path;
  }
}

/** Turns what serialport says when open fails into one of our errors, with what the user should check. */
export function describeOpenError(path: string, error: Error, role = "serial port"): HarnessPortError {
  const text = error.message;
  if (!existsSync(path) || /ENOENT|No such file/i.test(text)) {
    return new HarnessPortError("PORT_MISSING", path, `${role} ${path} does not exist (is the device or adapter plugged in, is the path right?)`);
  }
  if (/lock|busy|EBUSY|EAGAIN|temporarily unavailable/i.test(text)) {
    return new HarnessPortError("PORT_BUSY", path, `${role} ${path} is busy: another program has it open (a serial monitor, a second harness?)`);
  }
  return new HarnessPortError("PORT_OPEN_FAILED", path, `${role} ${path} could not be opened: ${text}`);
}

/** Opens a port once and reports success or the classified error; used to fail fast before a run starts. */
export function probePort(path: string, baud = 115200, role?: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const port = new NodeSerialPort({ path, baudRate: baud, autoOpen: false });
    port.open((error) => {
      if (error) {
        reject(describeOpenError(path, error, role));
        return;
      }
      port.close(() => resolve());
    });
  });
}

/**
 * probePort, but a busy port is tried again for up to `busyWaitMs`: a terminal restarted the moment its previous run
 * died (a supervisor, a power-cut test) can find the port still locked for a moment by what that run left behind.
 */
export async function probePortPatiently(path: string, baud: number, role: string, busyWaitMs: number): Promise<void> {
  const until = Date.now() + busyWaitMs;
  for (;;) {
    try {
      await probePort(path, baud, role);
      return;
    } catch (error) {
      if (!(error instanceof HarnessPortError) || error.code !== "PORT_BUSY" || Date.now() >= until) throw error;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}
