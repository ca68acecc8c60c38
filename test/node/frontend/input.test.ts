import assert from "node:assert/strict";
import { connect } from "node:tls";
import { gzipSync } from "node:zlib";
import type { RunningFrontend } from "../../../tools/frontend/index";
import type { FrontendClient, RawResponse } from "../../../tools/rigs/frontend/index";
import { T1, authorizeBody, clientFor, debitCard, getFixture, initCard, level1Config, start, stopAll, tunionCard, type Fixture, describeEngines } from "./support";

function isError(r: RawResponse, status: number, code: string): void {
  assert.equal(r.status, status, `status (${r.text})`);
  assert.match(String(r.headers["content-type"]), /^application\/json/);
  const body = r.json as { error: { code: string; message: string } };
  assert.deepEqual(Object.keys(body), ["error"]);
  assert.equal(body.error.code, code, r.text);
  assert.equal(typeof body.error.message, "string");
  assert.ok(body.error.message.length > 0);
}

/** Sends bytes over a fresh mutual-TLS connection and returns what comes back until the server closes or goes quiet. */
function rawExchange(f: Fixture, port: number, bytes: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const bundle = f.pki.terminals[T1]!;
    const socket = connect({ host: "127.0.0.1", port, ca: f.pki.ca.certPem, cert: bundle.certPem, key: bundle.keyPem, servername: "localhost" }, () => socket.end(bytes));
    let out = "";
    socket.setEncoding("utf8");
    socket.on("data", (d: string) => { out += d; });
    socket.setTimeout(3000, () => socket.destroy());
    socket.on("close", () => resolve(out));
    socket.on("error", reject);
  });
}

describeEngines("front-end: bad input gets a clear 4xx and the server keeps serving", function () {
  this.timeout(30_000);
  let f: Fixture;
  let fe: RunningFrontend;
  let c: FrontendClient;
  let valid: ReturnType<typeof authorizeBody>;
  const statuses: number[] = [];
  const call = async (method: string, path: string, body?: unknown, headers?: Record<string, string>) => {
    const r = await c.raw(method, path, body, headers);
    statuses.push(r.status);
    return r;
  };

  before(async () => {
    f = await getFixture();
    fe = await start(level1Config(f, { limits: { maxAmount: 100_000, bodyLimit: 2048 } }));
    c = clientFor(f, fe.url);
    valid = authorizeBody(initCard(tunionCard(f), "tunion", 100), 100);
  });
  after(async () => {
    c?.close();
    await stopAll();
  });
  afterEach(async () => {
    // After every case the server still answers a valid request.
    const h = await c.raw("GET", "/v1/health");
    assert.equal(h.status, 200);
  });

  it("malformed JSON and an empty body", async () => {
    isError(await call("POST", "/v1/purchases", "{\"terminalId\": "), 400, "MALFORMED_JSON");
    isError(await call("POST", "/v1/purchases", "[1,2"), 400, "MALFORMED_JSON");
    isError(await call("POST", "/v1/purchases", "", { "content-type": "application/json" }), 400, "MALFORMED_JSON");
    isError(await call("POST", "/v1/purchases", "{\"__proto__\": {\"x\": 1}}"), 400, "MALFORMED_JSON");
  });

  it("a body that is not JSON at all", async () => {
    isError(await call("POST", "/v1/purchases", "amount=1", { "content-type": "application/x-www-form-urlencoded" }), 415, "UNSUPPORTED_MEDIA_TYPE");
    isError(await call("POST", "/v1/purchases", "hello", { "content-type": "text/plain" }), 415, "UNSUPPORTED_MEDIA_TYPE");
  });

  it("wrong types are refused, not coerced", async () => {
    for (const [field, value] of [
      ["amount", "100"], ["amount", 1.5], ["amount", -1], ["amount", 0], ["amount", 2 ** 32], ["amount", null], ["keyIndex", 256], ["keyIndex", "1"],
      ["transactionType", 7], ["application", "metro"], ["terminalId", 1122334455], ["terminalId", "0011223344"], ["terminalId", "00112233445G"],
      ["order", ""], ["order", "x".repeat(33)], ["order", "line\nbreak"], ["order", 5],
      ["basicData", valid.basicData.slice(2)], ["basicData", `${valid.basicData.slice(2)}ZZ`], ["initResponse", `${valid.initResponse}00`], ["initResponse", true],
    ] as const) {
      isError(await call("POST", "/v1/purchases", { ...valid, [field]: value }), 400, "VALIDATION");
    }
    const missing: Record<string, unknown> = { ...valid };
    delete missing.amount;
    isError(await call("POST", "/v1/purchases", missing), 400, "VALIDATION");
    isError(await call("POST", "/v1/purchases", { ...valid, extra: 1 }), 400, "VALIDATION");
    isError(await call("POST", "/v1/purchases", [valid]), 400, "VALIDATION");
    isError(await call("POST", "/v1/purchases", "42"), 400, "VALIDATION");
  });

  it("deeply nested JSON, odd charsets and encodings", async () => {
    isError(await call("POST", "/v1/purchases", "[".repeat(1000) + "]".repeat(1000)), 400, "VALIDATION");
    // A charset label is not acted on (the body is read as UTF-8); it must simply not break anything.
    for (const type of ["application/json; charset=utf-16", "application/json; charset=latin1", "application/json; boundary=x"]) {
      const r = await call("POST", "/v1/purchases", { ...valid, amount: 0 }, { "content-type": type });
      isError(r, 400, "VALIDATION");
    }
    const gz = await call("POST", "/v1/purchases", new Uint8Array(gzipSync(JSON.stringify(valid))), { "content-encoding": "gzip", "content-type": "application/json" });
    assert.ok(gz.status >= 400 && gz.status < 500, `gzip: ${gz.status}`);
  });

  it("an oversized body", async () => {
    isError(await call("POST", "/v1/purchases", { ...valid, order: "x".repeat(5000) }), 413, "BODY_TOO_LARGE");
  });

  it("unknown purchase ids, unknown routes and wrong methods", async () => {
    isError(await call("GET", "/v1/purchases/00000000-0000-4000-8000-000000000000"), 404, "PURCHASE_NOT_FOUND");
    isError(await call("POST", "/v1/purchases/nope/completion", { outcome: "not-debited" }), 404, "PURCHASE_NOT_FOUND");
    isError(await call("GET", `/v1/purchases/${"a".repeat(65)}`), 400, "VALIDATION");
    isError(await call("GET", "/v1/nothing"), 404, "NOT_FOUND");
    isError(await call("DELETE", "/v1/purchases"), 404, "NOT_FOUND");
    isError(await call("GET", "/v1/settlement/2026-11-26"), 400, "VALIDATION");
  });

  it("completion bodies that do not fit the outcome, and the wrong state", async () => {
    const card = tunionCard(f);
    const a = (await call("POST", "/v1/purchases", authorizeBody(initCard(card, "tunion", 5), 5))).json as { purchaseId: string; tsn: number; date: string; time: string; mac1: string; mac2: string };
    const url = `/v1/purchases/${a.purchaseId}/completion`;
    isError(await call("POST", url, { outcome: "debited" }), 400, "VALIDATION");
    isError(await call("POST", url, { outcome: "debited", mac2: "1234567", tac: "12345678" }), 400, "VALIDATION");
    isError(await call("POST", url, { outcome: "not-debited", mac2: "12345678" }), 400, "VALIDATION");
    isError(await call("POST", url, { outcome: "done" }), 400, "VALIDATION");
    isError(await call("POST", url, { outcome: "unknown", note: "x" }), 400, "VALIDATION");
    isError(await call("POST", url, {}), 400, "VALIDATION");
    const proof = debitCard(card, a);
    assert.equal((await call("POST", url, { outcome: "debited", ...proof })).status, 200);
    isError(await call("POST", url, { outcome: "not-debited" }), 409, "ALREADY_SETTLED");
  });

  it("garbage instead of HTTP inside the TLS connection gets a 400 and a closed connection", async () => {
    const answer = await rawExchange(f, fe.port, "THIS IS NOT HTTP\r\n\r\n");
    assert.match(answer, /^HTTP\/1\.1 400/);
  });

  it("random mutations of a valid request never produce a 5xx", async () => {
    let seed = 12345;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const text = JSON.stringify(valid);
    const alphabet = "{}[]\":,0123456789abcdefABCDEF-.eE nulltruefalse\\\u0000\u00ff";
    for (let i = 0; i < 300; i++) {
      const chars = [...text];
      for (let k = 1 + rand(4); k > 0; k--) {
        const at = rand(chars.length);
        const op = rand(3);
        if (op === 0) chars.splice(at, 1);
        else if (op === 1) chars.splice(at, 0, alphabet[rand(alphabet.length)]!);
        else chars[at] = alphabet[rand(alphabet.length)]!;
      }
      const r = await call("POST", "/v1/purchases", chars.join(""));
      assert.ok(r.status < 500, `5xx for ${chars.join("")}: ${r.text}`);
      if (r.status >= 400) assert.ok((r.json as { error?: { code?: string } })?.error?.code, r.text);
    }
  });

  it("no case above answered with a 5xx", () => {
    assert.ok(statuses.length > 300);
    assert.deepEqual(statuses.filter((s) => s >= 500), []);
  });
});
