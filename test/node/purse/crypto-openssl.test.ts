import assert from "node:assert/strict";
import { randomBytes, randomInt } from "node:crypto";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { toHex } from "../../../modules/bytes/bytes";
import { encodeBcd } from "../../../modules/purse/bcd";
import {
  diversifyKey, pbocMac, purchaseMac1, purchaseMac2, purchaseSessionKey, purchaseTac, type PurseAlgorithm,
} from "../../../tools/purse-crypto/index";

// Every primitive of the purse cryptography against the openssl command line, on 1,000 random inputs each. The
// reference side is written here from the definitions (padding, chaining, field order) and only uses openssl's
// block ciphers, so a mistake in our module cannot hide in both.

const CASES = 1000;
const haveOpenssl = spawnSync("openssl", ["version"]).status === 0;
// Real single DES lives in OpenSSL 3's legacy provider; where it is missing, EDE with K1 = K2 is the same cipher.
const haveLegacyDes = haveOpenssl && spawnSync("openssl", ["enc", "-des-ecb", "-provider", "legacy", "-provider", "default",
  "-K", "0101010101010101", "-nopad", "-in", "/dev/null"]).status === 0;

interface Job {
  cipher: string;
  key: Uint8Array;
  data: Uint8Array;
  check: (out: Uint8Array) => void;
}

function cipherArgs(alg: PurseAlgorithm | "des", mode: "ecb" | "cbc", key: Uint8Array): string[] {
  const iv = mode === "cbc" ? ["-iv", "0".repeat(alg === "sm4" ? 32 : 16)] : [];
  if (alg === "sm4") return [`-sm4-${mode}`, "-K", toHex(key), ...iv];
  if (alg === "des" && haveLegacyDes) return [`-des-${mode}`, "-provider", "legacy", "-provider", "default", "-K", toHex(key), ...iv];
  const k = key.length === 8 ? new Uint8Array([...key, ...key]) : key;
  return [`-des-ede-${mode}`, "-K", toHex(k), ...iv];
}

function pad(data: Uint8Array, block: number): Uint8Array {
  const out = new Uint8Array((Math.floor(data.length / block) + 1) * block);
  out.set(data);
  out[data.length] = 0x80;
  return out;
}

/** Runs every job through one shell script (one openssl process per job, no per-job Node spawn). */
function runAll(jobs: { args: string[]; data: Uint8Array; check: (out: Uint8Array) => void }[]): void {
  const dir = mkdtempSync(path.join(tmpdir(), "purse-openssl-"));
  try {
    const lines = jobs.map((job, i) => {
      writeFileSync(path.join(dir, `in${i}`), job.data);
      return `openssl enc ${job.args.join(" ")} -nopad -in in${i} -out out${i} || echo "job ${i} failed" >&2`;
    });
    writeFileSync(path.join(dir, "run.sh"), lines.join("\n") + "\n");
    const result = spawnSync("bash", ["run.sh"], { cwd: dir, encoding: "utf8" });
    assert.equal(result.stderr.trim(), "", `openssl failed: ${result.stderr.slice(0, 500)}`);
    jobs.forEach((job, i) => job.check(new Uint8Array(readFileSync(path.join(dir, `out${i}`)))));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const algorithms: PurseAlgorithm[] = ["3des", "sm4"];
const pick = (): PurseAlgorithm => algorithms[randomInt(2)]!;
const bytes = (n: number) => new Uint8Array(randomBytes(n));
const lastBlockHead = (out: Uint8Array, block: number) => toHex(out.slice(out.length - block, out.length - block + 4));
const randomDate = () => `${randomInt(2000, 2100)}${String(randomInt(1, 13)).padStart(2, "0")}${String(randomInt(1, 29)).padStart(2, "0")}`;
const randomTime = () => `${String(randomInt(24)).padStart(2, "0")}${String(randomInt(60)).padStart(2, "0")}${String(randomInt(60)).padStart(2, "0")}`;
const u32 = (n: number) => new Uint8Array([n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255]);

describe("purse crypto: cross-check against the openssl command line", function () {
  this.timeout(180_000);
  before(function () {
    if (!haveOpenssl) {
      console.log("      skipped: the openssl command line is missing (install it: apt-get install -y openssl)");
      this.skip();
    }
  });

  it(`diversifyKey: ${CASES} random master keys and factors`, () => {
    runAll(Array.from({ length: CASES }, () => {
      const alg = pick(), mk = bytes(16), f = bytes(8);
      const input = new Uint8Array([...f, ...f.map((b) => b ^ 0xff)]);
      return { args: cipherArgs(alg, "ecb", mk), data: input, check: (out: Uint8Array) => assert.equal(toHex(diversifyKey(alg, mk, f)), toHex(out)) };
    }));
  });

  it(`purchaseSessionKey: ${CASES} random keys, randoms, serials and TSNs`, () => {
    runAll(Array.from({ length: CASES }, () => {
      const alg = pick(), dpk = bytes(16), random = bytes(4), serial = randomInt(0x10000), tsn = randomInt(2 ** 32);
      let input = new Uint8Array([...random, serial >> 8, serial & 255, (tsn >>> 8) & 255, tsn & 255]);
      if (alg === "sm4") input = new Uint8Array([...input, 0x80, 0, 0, 0, 0, 0, 0, 0]);
      const expected = (out: Uint8Array) => assert.equal(toHex(purchaseSessionKey(alg, dpk, random, serial, tsn)), toHex(out));
      return { args: cipherArgs(alg, "ecb", dpk), data: input, check: expected };
    }));
  });

  it(`pbocMac: ${CASES} random keys (8-byte DES, 16-byte 3DES, SM4) and messages of 0..64 bytes`, () => {
    runAll(Array.from({ length: CASES }, (_, i) => {
      const kind = i % 3;
      const alg: PurseAlgorithm = kind === 2 ? "sm4" : "3des";
      const key = bytes(kind === 0 ? 8 : 16);
      const data = bytes(randomInt(65));
      const block = alg === "sm4" ? 16 : 8;
      return {
        args: cipherArgs(kind === 0 ? "des" : alg, "cbc", key), data: pad(data, block),
        check: (out: Uint8Array) => assert.equal(toHex(pbocMac(alg, key, data)), lastBlockHead(out, block)),
      };
    }));
  });

  it(`purchaseMac1: ${CASES} random purchases`, () => {
    runAll(Array.from({ length: CASES }, () => {
      const alg = pick(), sk = bytes(alg === "3des" ? 8 : 16);
      const f = { amount: randomInt(2 ** 32), type: randomInt(256), terminalId: bytes(6), date: randomDate(), time: randomTime() };
      const input = new Uint8Array([...u32(f.amount), f.type, ...f.terminalId, ...encodeBcd(f.date), ...encodeBcd(f.time)]);
      const block = alg === "sm4" ? 16 : 8;
      return {
        args: cipherArgs(alg === "3des" ? "des" : alg, "cbc", sk), data: pad(input, block),
        check: (out: Uint8Array) => assert.equal(toHex(purchaseMac1(alg, sk, f)), lastBlockHead(out, block)),
      };
    }));
  });

  it(`purchaseMac2: ${CASES} random session keys and amounts`, () => {
    runAll(Array.from({ length: CASES }, () => {
      const alg = pick(), sk = bytes(alg === "3des" ? 8 : 16), amount = randomInt(2 ** 32);
      const block = alg === "sm4" ? 16 : 8;
      return {
        args: cipherArgs(alg === "3des" ? "des" : alg, "cbc", sk), data: pad(u32(amount), block),
        check: (out: Uint8Array) => assert.equal(toHex(purchaseMac2(alg, sk, amount)), lastBlockHead(out, block)),
      };
    }));
  });

  it(`purchaseTac: ${CASES} random TAC keys and purchases`, () => {
    runAll(Array.from({ length: CASES }, () => {
      const alg = pick(), dtk = bytes(16);
      const f = { amount: randomInt(2 ** 32), type: randomInt(256), terminalId: bytes(6), tsn: randomInt(2 ** 32), date: randomDate(), time: randomTime() };
      const input = new Uint8Array([...u32(f.amount), f.type, ...f.terminalId, ...u32(f.tsn), ...encodeBcd(f.date), ...encodeBcd(f.time)]);
      const key = alg === "3des" ? dtk.slice(0, 8).map((b, i) => b ^ dtk[i + 8]!) : dtk;
      const block = alg === "sm4" ? 16 : 8;
      return {
        args: cipherArgs(alg === "3des" ? "des" : alg, "cbc", key), data: pad(input, block),
        check: (out: Uint8Array) => assert.equal(toHex(purchaseTac(alg, dtk, f)), lastBlockHead(out, block)),
      };
    }));
  });
});
