// A small describe/it runner for inside XS (xsnap), where mocha cannot run. The same test files run under mocha on
// Node; here each result goes to the Node parent through xsnap's issueCommand.

type Fn = () => unknown;
interface Test { title: string; fn: Fn }
interface Suite { title: string; tests: Test[]; suites: Suite[]; before: Fn[]; after: Fn[]; beforeEach: Fn[]; afterEach: Fn[]; parent?: Suite }

declare const issueCommand: (message: ArrayBuffer) => unknown;

/**
 * Freezes the primordials as the Moddable runtime does (its preloaded VM is read-only), so device code behaves here
 * as on the ESP32: e.g. `this.name = "X"` in an Error subclass throws "set name: not writable" there (the inherited
 * `Error.prototype.name` is read-only), and would pass unnoticed on an unlocked xsnap. This module is the first the
 * bundle evaluates, so every test module below it runs on the frozen intrinsics. globalThis itself stays writable,
 * as on Moddable.
 */
function lockPrimordials(): string[] {
  const frozen: string[] = [];
  const seen = new Set<object>();
  const freeze = (value: unknown): void => {
    if ((typeof value !== "object" && typeof value !== "function") || value === null || seen.has(value)) return;
    seen.add(value);
    Object.freeze(value);
    for (const key of Reflect.ownKeys(value)) {
      const d = Object.getOwnPropertyDescriptor(value, key)!;
      if ("value" in d) freeze(d.value);
      else {
        freeze(d.get);
        freeze(d.set);
      }
    }
    freeze(Object.getPrototypeOf(value));
  };
  const global = globalThis as Record<string, unknown>;
  for (const name of Object.getOwnPropertyNames(globalThis)) {
    // The standard intrinsics are the capitalised constructors and namespaces (Object, Error, Math, JSON, Reflect…).
    if (!/^[A-Z]/.test(name)) continue;
    const value = global[name];
    if (typeof value !== "function" && (typeof value !== "object" || value === null)) continue;
    freeze(value);
    frozen.push(name);
  }
  // Intrinsics that no global names.
  freeze(Object.getPrototypeOf(function* () {}));
  freeze(Object.getPrototypeOf(async function () {}));
  freeze(Object.getPrototypeOf(async function* () {}));
  freeze(Object.getPrototypeOf([][Symbol.iterator]()));
  return frozen;
}

export const lockedPrimordials = lockPrimordials();

const root: Suite = { title: "", tests: [], suites: [], before: [], after: [], beforeEach: [], afterEach: [] };
let current = root;

function report(message: object): void {
  issueCommand(new TextEncoder().encode(JSON.stringify(message)).buffer as ArrayBuffer);
}

const g = globalThis as Record<string, unknown>;
g.describe = (title: string, body: () => void) => {
  const suite: Suite = { title, tests: [], suites: [], before: [], after: [], beforeEach: [], afterEach: [], parent: current };
  current.suites.push(suite);
  const previous = current;
  current = suite;
  try {
    body();
  } finally {
    current = previous;
  }
};
g.it = (title: string, fn: Fn) => current.tests.push({ title, fn });
g.before = (fn: Fn) => current.before.push(fn);
g.after = (fn: Fn) => current.after.push(fn);
g.beforeEach = (fn: Fn) => current.beforeEach.push(fn);
g.afterEach = (fn: Fn) => current.afterEach.push(fn);

function chain(suite: Suite | undefined, pick: (s: Suite) => Fn[]): Fn[] {
  const out: Fn[] = [];
  for (let s = suite; s; s = s.parent) out.unshift(...pick(s));
  return out;
}

function describeError(error: unknown): string {
  if (error instanceof Error) return `${error.name}: ${error.message}${error.stack ? "\n" + error.stack : ""}`;
  return String(error);
}

async function runSuite(suite: Suite, path: string[]): Promise<void> {
  const names = suite.title ? [...path, suite.title] : path;
  try {
    for (const fn of suite.before) await fn();
  } catch (error) {
    report({ kind: "result", title: [...names, "before all"].join(" > "), ok: false, error: describeError(error) });
    return;
  }
  for (const test of suite.tests) {
    const title = [...names, test.title].join(" > ");
    try {
      for (const fn of chain(suite, (s) => s.beforeEach)) await fn();
      await test.fn();
      for (const fn of chain(suite, (s) => s.afterEach).reverse()) await fn();
      report({ kind: "result", title, ok: true });
    } catch (error) {
      report({ kind: "result", title, ok: false, error: describeError(error) });
    }
  }
  for (const child of suite.suites) await runSuite(child, names);
  try {
    for (const fn of suite.after) await fn();
  } catch (error) {
    report({ kind: "result", title: [...names, "after all"].join(" > "), ok: false, error: describeError(error) });
  }
}

export function runAll(): void {
  runSuite(root, []).then(
    () => report({ kind: "done" }),
    (error) => report({ kind: "result", title: "runner", ok: false, error: describeError(error) }),
  );
}
