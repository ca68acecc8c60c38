/**
 * Progress of a long run on a terminal: one line on stderr, rewritten in place, with points done / total, elapsed time
 * and an estimate of the time left. Silent when stderr is not a TTY (CI logs, pipes) or PROGRESS=0, so logs only
 * carry the results; PROGRESS=1 forces it on.
 */

export interface ProgressStream {
  isTTY?: boolean;
  columns?: number;
  write(text: string): unknown;
}

export interface ProgressOptions {
  /** Points expected (0 or absent: unknown, no estimate). */
  total?: number;
  stream?: ProgressStream;
  /** Shortest time between two redraws, ms (default 250). */
  everyMs?: number;
  now?: () => number;
  /** Whether to draw at all (default: the stream is a TTY, unless PROGRESS says otherwise). */
  enabled?: boolean;
}

export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return "?";
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

export class Progress {
  readonly label: string;
  total: number;
  done = 0;
  readonly enabled: boolean;
  readonly #stream: ProgressStream;
  readonly #everyMs: number;
  readonly #now: () => number;
  readonly #started: number;
  #drawnAt = -Infinity;
  #drawn = false;
  #note = "";

  constructor(label: string, options: ProgressOptions = {}) {
    this.label = label;
    this.total = options.total ?? 0;
    this.#stream = options.stream ?? process.stderr;
    this.#everyMs = options.everyMs ?? 250;
    this.#now = options.now ?? (() => performance.now());
    this.#started = this.#now();
    const forced = process.env.PROGRESS;
    this.enabled = options.enabled ?? (forced === "1" ? true : forced === "0" ? false : this.#stream.isTTY === true);
  }

  /** The line as it would be drawn now. */
  line(): string {
    const elapsed = this.#now() - this.#started;
    let text = `${this.label}: ${this.done}`;
    if (this.total > 0) {
      const left = this.done > 0 ? (elapsed / this.done) * (this.total - this.done) : NaN;
      text += `/${this.total} (${Math.floor((100 * this.done) / this.total)}%), ${formatDuration(elapsed)} elapsed, ~${formatDuration(left)} left`;
    } else {
      text += ` done, ${formatDuration(elapsed)} elapsed`;
    }
    return this.#note ? `${text} · ${this.#note}` : text;
  }

  /** Counts `n` more points done; `note` (optional) names the current one. */
  tick(n = 1, note?: string): void {
    this.done += n;
    if (note !== undefined) this.#note = note;
    this.#draw(false);
  }

  /** Adds to the points expected (a run that learns its size as it goes). */
  expect(more: number): void {
    this.total += more;
    this.#draw(false);
  }

  #draw(force: boolean): void {
    if (!this.enabled) return;
    const now = this.#now();
    if (!force && now - this.#drawnAt < this.#everyMs && this.done !== this.total) return;
    this.#drawnAt = now;
    const width = Math.max(20, (this.#stream.columns ?? 100) - 1);
    // \r and clear-to-end-of-line (ECMA-48 EL): the line is rewritten in place.
    this.#stream.write(`\r${this.line().slice(0, width)}\x1b[K`);
    this.#drawn = true;
  }

  /** Clears the line, so whatever is printed next starts on a clean line. */
  clear(): void {
    if (this.enabled && this.#drawn) this.#stream.write("\r\x1b[K");
    this.#drawn = false;
  }

  /** Runs `print` with the line cleared, then draws it again (for results printed mid-run). */
  around(print: () => void): void {
    const drawn = this.#drawn;
    this.clear();
    print();
    if (drawn) this.#draw(true);
  }

  finish(): void {
    this.clear();
  }
}
