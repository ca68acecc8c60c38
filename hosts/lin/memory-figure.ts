/**
 * One `xs-memory {...}` trace line of the Linux firmware (hosts/lin/memory.ts writes it, tools/rigs/moddable reads it).
 * Types only, so Node code can import it without Moddable's instrumentation module.
 */
export interface MemoryFigure {
  at: string;
  slots: number;
  chunks: number;
  stack: number;
  peakSlots: number;
  peakChunks: number;
}
