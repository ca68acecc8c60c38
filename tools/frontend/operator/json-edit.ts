/**
 * Targeted edits of a JSON configuration file: replaces the text of one value (found by its path of keys) and leaves
 * every other byte as the operator wrote it (key order, indentation, other sections). The account commands use it so
 * that adding, removing or changing an operator touches `operator.accounts` and nothing else.
 */
import { CodedError } from "../../../modules/errors/errors";

export class JsonEditError extends CodedError {
  constructor(message: string) {
    super("CONFIG", message);
  }
}

interface Span {
  start: number;
  end: number;
}

/** Where each member of the object that starts at `at` begins and ends, by key; and where the object ends. */
class Scanner {
  #i = 0;
  constructor(readonly text: string) {}

  #fail(what: string): never {
    throw new JsonEditError(`the configuration is not valid JSON: ${what} at offset ${this.#i}`);
  }

  #ws(): void {
    while (/\s/.test(this.text[this.#i] ?? "")) this.#i++;
  }

  #string(): string {
    const start = this.#i;
    if (this.text[this.#i] !== '"') this.#fail("a string expected");
    this.#i++;
    while (this.text[this.#i] !== '"') {
      if (this.#i >= this.text.length) this.#fail("an unterminated string");
      this.#i += this.text[this.#i] === "\\" ? 2 : 1;
    }
    this.#i++;
    return JSON.parse(this.text.slice(start, this.#i)) as string;
  }

  /** Skips one value; for an object, returns its members' spans. */
  value(at: number): { span: Span; members?: Map<string, Span> } {
    this.#i = at;
    this.#ws();
    const start = this.#i;
    const c = this.text[this.#i];
    if (c === "{") {
      const members = new Map<string, Span>();
      this.#i++;
      this.#ws();
      if (this.text[this.#i] === "}") return { span: { start, end: ++this.#i }, members };
      for (;;) {
        this.#ws();
        const key = this.#string();
        this.#ws();
        if (this.text[this.#i++] !== ":") this.#fail("':' expected");
        const inner = this.value(this.#i).span;
        members.set(key, inner);
        this.#i = inner.end;
        this.#ws();
        const next = this.text[this.#i++];
        if (next === "}") return { span: { start, end: this.#i }, members };
        if (next !== ",") this.#fail("',' or '}' expected");
      }
    }
    if (c === "[") {
      this.#i++;
      this.#ws();
      if (this.text[this.#i] === "]") return { span: { start, end: ++this.#i } };
      for (;;) {
        this.#i = this.value(this.#i).span.end;
        this.#ws();
        const next = this.text[this.#i++];
        if (next === "]") return { span: { start, end: this.#i } };
        if (next !== ",") this.#fail("',' or ']' expected");
      }
    }
    if (c === '"') {
      this.#string();
      return { span: { start, end: this.#i } };
    }
    const m = /^(-?[0-9][0-9eE.+-]*|true|false|null)/.exec(this.text.slice(this.#i, this.#i + 64));
    if (!m) this.#fail("a value expected");
    this.#i += m[0].length;
    return { span: { start, end: this.#i } };
  }
}

/** The indentation of the line `at` is on. */
function indentAt(text: string, at: number): string {
  const lineStart = text.lastIndexOf("\n", at - 1) + 1;
  return /^[ \t]*/.exec(text.slice(lineStart))![0];
}

/** The JSON text of `value`, indented to sit at `indent` (two spaces a level, as the files we write use). */
function render(value: unknown, indent: string): string {
  return JSON.stringify(value, null, 2).split("\n").join(`\n${indent}`);
}

/**
 * `text` with the value at `path` set to `value`; missing objects on the way are added at the end of their parent.
 * The result is checked to parse.
 */
export function setJsonValue(text: string, path: string[], value: unknown): string {
  const scanner = new Scanner(text);
  let node = scanner.value(0);
  if (!node.members) throw new JsonEditError("the configuration must be a JSON object");
  for (let depth = 0; depth < path.length; depth++) {
    const key = path[depth]!;
    const found = node.members!.get(key);
    if (found && depth === path.length - 1) {
      const result = text.slice(0, found.start) + render(value, indentAt(text, found.start)) + text.slice(found.end);
      JSON.parse(result);
      return result;
    }
    if (!found) {
      // Insert `"key": {...rest of the path...}` before the object's closing brace.
      let nested: unknown = value;
      for (let k = path.length - 1; k > depth; k--) nested = { [path[k]!]: nested };
      const close = node.span.end - 1;
      const outer = indentAt(text, node.span.start);
      const inner = `${outer}  `;
      const empty = node.members!.size === 0;
      let before = close;
      while (before > node.span.start && /\s/.test(text[before - 1]!)) before--;
      const member = `${empty ? "" : ","}\n${inner}${JSON.stringify(key)}: ${render(nested, inner)}\n${outer}`;
      const result = text.slice(0, before) + member + text.slice(close);
      JSON.parse(result);
      return result;
    }
    node = scanner.value(found.start);
    if (!node.members) throw new JsonEditError(`${path.slice(0, depth + 1).join(".")} must be an object`);
  }
  throw new JsonEditError("an empty path");
}
