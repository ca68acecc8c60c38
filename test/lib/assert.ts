// Assertions that run unchanged under mocha on Node and inside the XS engine (no node:assert there).

import { toHex } from "../../modules/bytes/bytes";

export class AssertionError extends Error {
  readonly code = "ASSERTION";
  constructor(message: string) {
    super(message);
    this.name = "AssertionError";
  }
}

function show(value: unknown): string {
  if (value instanceof Uint8Array) return `<${toHex(value)}>`;
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

export function ok(value: unknown, message = "expected a truthy value"): asserts value {
  if (!value) throw new AssertionError(message);
}

export function equal<T>(actual: T, expected: T, message?: string): void {
  if (!Object.is(actual, expected)) throw new AssertionError(message ?? `expected ${show(expected)}, got ${show(actual)}`);
}

function same(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true;
  if (a instanceof Uint8Array || b instanceof Uint8Array) {
    return a instanceof Uint8Array && b instanceof Uint8Array && a.length === b.length && a.every((x, i) => x === b[i]);
  }
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((x, i) => same(x, b[i]));
  }
  if (a && b && typeof a === "object" && typeof b === "object") {
    const ka = Object.keys(a).filter((k) => (a as Record<string, unknown>)[k] !== undefined).sort();
    const kb = Object.keys(b).filter((k) => (b as Record<string, unknown>)[k] !== undefined).sort();
    return same(ka, kb) && ka.every((k) => same((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
  }
  return false;
}

export function deepEqual(actual: unknown, expected: unknown, message?: string): void {
  if (!same(actual, expected)) throw new AssertionError(message ?? `expected ${show(expected)}, got ${show(actual)}`);
}

export function hex(actual: Uint8Array, expected: string, message?: string): void {
  ok(actual instanceof Uint8Array, message ?? `expected bytes, got ${show(actual)}`);
  equal(toHex(actual), expected.replace(/\s+/g, "").toUpperCase(), message);
}

type ErrorClass = abstract new (...args: never[]) => Error;

function check(error: unknown, expected: ErrorClass | { code: string }, extra?: (e: any) => boolean): void {
  if (typeof expected === "function") {
    if (!(error instanceof expected)) throw new AssertionError(`expected ${expected.name}, got ${show(String(error))}`);
  } else if (!error || (error as { code?: string }).code !== expected.code) {
    throw new AssertionError(`expected an error with code ${expected.code}, got ${show(String(error))}`);
  }
  if (extra && !extra(error)) throw new AssertionError(`error did not match: ${String(error)}`);
}

export function throws(fn: () => unknown, expected: ErrorClass | { code: string }, extra?: (e: any) => boolean): void {
  try {
    fn();
  } catch (error) {
    check(error, expected, extra);
    return;
  }
  throw new AssertionError("expected the call to throw");
}

export async function rejects(promise: Promise<unknown> | (() => Promise<unknown>), expected: ErrorClass | { code: string }, extra?: (e: any) => boolean): Promise<void> {
  try {
    await (typeof promise === "function" ? promise() : promise);
  } catch (error) {
    check(error, expected, extra);
    return;
  }
  throw new AssertionError("expected the promise to reject");
}

export { prng } from "../../tools/rigs/fuzz/prng";

export function randomBytes(next: () => number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = next() & 0xff;
  return out;
}
