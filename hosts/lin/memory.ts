/**
 * XS memory as the SDK's own instrumentation counts it (an instrumented build, mcconfig -i; the `instrumentation`
 * module returns undefined otherwise): slot heap and chunk heap in use, in bytes, and the deepest the stack has been.
 * Chunks and slots are sampled on a repeating timer so a figure can carry the peak since the last one; each figure is
 * one `xs-memory {...}` trace line, which `npm run moddable` reads. The three indexes are looked up once; a sample
 * allocates nothing.
 */
import Debug from "debug";
import Instrumentation from "instrumentation";
import type { MemoryFigure } from "./memory-figure";

export class XsMemory {
  readonly #slots = Instrumentation.map("XS Slot Heap Used");
  readonly #chunks = Instrumentation.map("XS Chunk Heap Used");
  readonly #stack = Instrumentation.map("XS Stack Used");
  #peakSlots = 0;
  #peakChunks = 0;

  /** False on a build without instrumentation: there is nothing to report. */
  get available(): boolean {
    return Instrumentation.get(this.#chunks) !== undefined;
  }

  sample(): void {
    const slots = Instrumentation.get(this.#slots) ?? 0;
    const chunks = Instrumentation.get(this.#chunks) ?? 0;
    if (slots > this.#peakSlots) this.#peakSlots = slots;
    if (chunks > this.#peakChunks) this.#peakChunks = chunks;
  }

  /** The figure now, with the peaks since the previous figure (which then start again from now). */
  figure(at: string): MemoryFigure {
    this.sample();
    const figure = {
      at, slots: Instrumentation.get(this.#slots) ?? 0, chunks: Instrumentation.get(this.#chunks) ?? 0,
      stack: Instrumentation.get(this.#stack) ?? 0, peakSlots: this.#peakSlots, peakChunks: this.#peakChunks,
    };
    this.#peakSlots = figure.slots;
    this.#peakChunks = figure.chunks;
    return figure;
  }

  /**
   * The figure after a full collection: what the app keeps. XS collects only when a heap is full, so the plain
   * figure also counts whatever garbage the last payments left, and varies from run to run with when XS last collected.
   */
  liveFigure(at: string): MemoryFigure {
    Debug.gc();
    return this.figure(at);
  }
}
