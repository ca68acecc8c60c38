import * as assert from "../lib/assert";
import { Journal, JournalError, JournalFullError, MemoryStorage, PowerCut, crc32, type JournalRecord } from "../../modules/journal/index";

const text = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0));
const str = (b: Uint8Array) => String.fromCharCode(...b);

/** An owner that keeps key=value records: a new value retires the old record, and done() retires the last one. */
class Owner {
  latest = new Map<string, { seq: number; value: string }>();
  journal: Journal;
  constructor(public storage: MemoryStorage) {
    this.journal = new Journal({ storage });
    for (const r of this.journal.recovered) {
      const [key, value] = str(r.payload).split("=");
      const known = this.latest.get(key!);
      if (!known || known.seq < r.seq) this.latest.set(key!, { seq: r.seq, value: value! });
    }
  }
  put(key: string, value: string): void {
    const seq = this.journal.append(text(`${key}=${value}`));
    const previous = this.latest.get(key);
    this.latest.set(key, { seq, value });
    if (previous) this.journal.retire(previous.seq);
  }
  done(key: string): void {
    const previous = this.latest.get(key);
    this.latest.delete(key);
    if (previous) this.journal.retire(previous.seq);
  }
}

describe("journal: append and recovery", () => {
  it("recovers every appended record in order, with increasing sequence numbers", () => {
    const storage = new MemoryStorage(4 * 256, 256);
    const journal = new Journal({ storage });
    const seqs = [journal.append(text("a")), journal.append(text("bb")), journal.append(new Uint8Array(0))];
    assert.deepEqual(seqs, [1, 2, 3]);
    const again = new Journal({ storage });
    assert.deepEqual(again.recovered.map((r) => [r.seq, str(r.payload)]), [[1, "a"], [2, "bb"], [3, ""]]);
    assert.equal(again.append(text("c")), 4);
    assert.equal(new Journal({ storage }).lastSeq, 4);
  });

  it("moves to the next block when a record does not fit, across reopenings", () => {
    const storage = new MemoryStorage(16 * 128, 128);
    const journal = new Journal({ storage });
    for (let i = 0; i < 20; i++) journal.append(text(`record-${i}-${"x".repeat(20)}`));
    const again = new Journal({ storage });
    assert.equal(again.recovered.length, 20);
    assert.equal(str(again.recovered[19]!.payload).slice(0, 10), "record-19-");
  });

  it("a record torn at any byte is absent after recovery; everything before it stays, and appending goes on", () => {
    const payload = text("intent:ORDER-0042:amount=350");
    for (let partial = 0; partial <= payload.length + 12; partial++) {
      const storage = new MemoryStorage(4 * 256, 256);
      const journal = new Journal({ storage });
      journal.append(text("first"));
      storage.failAt = { write: storage.writes + 1, partial };
      assert.throws(() => journal.append(payload), PowerCut);
      storage.failAt = undefined;
      const reopened = new Journal({ storage });
      const complete = partial === payload.length + 12;
      assert.deepEqual(reopened.recovered.map((r) => str(r.payload)), complete ? ["first", str(payload)] : ["first"], `cut after ${partial} bytes`);
      reopened.append(text("after"));
      const last = new Journal({ storage }).recovered;
      assert.equal(str(last[last.length - 1]!.payload), "after", `append after a cut at ${partial} bytes`);
    }
  });

  it("refuses a record larger than a block with a typed error", () => {
    const journal = new Journal({ storage: new MemoryStorage(4 * 128, 128) });
    assert.throws(() => journal.append(new Uint8Array(128)), JournalError);
    assert.throws(() => new Journal({ storage: new MemoryStorage(2 * 128, 128) }), JournalError);
  });

  it("skips garbage blocks: a header with a bad CRC is a free block", () => {
    const storage = new MemoryStorage(4 * 128, 128);
    storage.bytes.set([0x54, 0x4a, 0x30, 0x31, 0, 0, 0, 9, 0, 0, 0, 0, 1, 2, 3, 4], 0);
    const journal = new Journal({ storage });
    assert.equal(journal.recovered.length, 0);
    journal.append(text("x"));
    assert.equal(new Journal({ storage }).recovered.length, 1);
  });
});

describe("journal: bounded size, reclaiming and full", () => {
  it("reclaims blocks of records no longer needed and keeps the live ones, for ever", () => {
    const owner = new Owner(new MemoryStorage(4 * 128, 128));
    owner.put("pending", "kept-across-wraps");
    for (let i = 0; i < 500; i++) {
      owner.put(`p${i % 3}`, `v${i}`);
      if (i % 2) owner.done(`p${i % 3}`);
    }
    const after = new Owner(owner.storage);
    assert.equal(after.latest.get("pending")!.value, "kept-across-wraps");
    assert.deepEqual([...after.latest.keys()].sort(), [...owner.latest.keys()].sort());
    for (const [key, v] of owner.latest) assert.equal(after.latest.get(key)!.value, v.value);
    assert.equal(after.journal.lastSeq, owner.journal.lastSeq);
  });

  it("says it is full before it has to refuse, and then refuses with JournalFullError, losing nothing", () => {
    const owner = new Owner(new MemoryStorage(4 * 128, 128));
    let i = 0;
    while (owner.journal.hasRoomFor(16)) owner.put(`live${i++}`, "0123456789");
    assert.ok(i > 5, `only ${i} records fitted`);
    assert.throws(() => {
      for (let n = 0; n < 50; n++) owner.put(`more${n}`, "0123456789");
    }, JournalFullError);
    const reopened = new Owner(owner.storage);
    for (let n = 0; n < i; n++) assert.equal(reopened.latest.get(`live${n}`)?.value, "0123456789", `live${n} lost`);
  });

  it("frees space again once the owner no longer needs the records", () => {
    const owner = new Owner(new MemoryStorage(4 * 128, 128));
    let i = 0;
    while (owner.journal.hasRoomFor(16)) owner.put(`k${i++}`, "pending");
    assert.ok(!owner.journal.hasRoomFor(16));
    for (let n = 0; n < i; n++) owner.done(`k${n}`);
    assert.ok(owner.journal.hasRoomFor(16));
    for (let n = 0; n < 40; n++) {
      owner.put(`new${n}`, "x");
      owner.done(`new${n}`);
    }
    assert.ok(owner.journal.hasRoomFor(16));
  });

  it("a power cut at every storage write of a wrapping workload loses no acknowledged live record", () => {
    // Run the workload once to count its writes, then again cutting the power at each one of them.
    const workload = (owner: Owner, acknowledged: Map<string, string | undefined>, inflight: { key?: string; value?: string }) => {
      for (let i = 0; i < 80; i++) {
        const key = `p${i % 4}`;
        inflight.key = key;
        if (i % 3 === 2) {
          inflight.value = undefined;
          owner.done(key);
        } else {
          inflight.value = `v${i}`;
          owner.put(key, `v${i}`);
        }
        acknowledged.set(key, inflight.value);
        inflight.key = undefined;
      }
    };
    const probe = new MemoryStorage(4 * 128, 128);
    workload(new Owner(probe), new Map(), {});
    const total = probe.writes;
    assert.ok(total > 100);
    for (let cut = 1; cut <= total; cut++) {
      for (const partial of [0, 5]) {
        const storage = new MemoryStorage(4 * 128, 128);
        const acknowledged = new Map<string, string | undefined>();
        const inflight: { key?: string; value?: string } = {};
        storage.failAt = { write: cut, partial };
        try {
          workload(new Owner(storage), acknowledged, inflight);
        } catch (error) {
          assert.ok(error instanceof PowerCut, `unexpected ${String(error)}`);
        }
        storage.failAt = undefined;
        const recovered = new Owner(storage);
        for (const key of ["p0", "p1", "p2", "p3"]) {
          const got = recovered.latest.get(key)?.value;
          const allowed = [acknowledged.get(key)];
          if (inflight.key === key) allowed.push(inflight.value);
          assert.ok(allowed.includes(got), `cut at write ${cut}/${partial}: ${key} is ${got}, expected one of ${allowed.join(", ")}`);
        }
        recovered.put("alive", "yes");
        assert.equal(new Owner(storage).latest.get("alive")?.value, "yes");
      }
    }
  });

  it("sequence numbers never go backwards, even when every record was retired and reclaimed", () => {
    const storage = new MemoryStorage(4 * 128, 128);
    const owner = new Owner(storage);
    for (let i = 0; i < 100; i++) {
      owner.put("k", `v${i}`);
      owner.done("k");
    }
    const last = owner.journal.lastSeq;
    const reopened = new Owner(storage);
    assert.equal(reopened.latest.size, 0);
    assert.ok(reopened.journal.lastSeq >= last - 10, `lastSeq fell from ${last} to ${reopened.journal.lastSeq}`);
    reopened.put("k", "again");
    assert.ok(reopened.latest.get("k")!.seq > last);
  });

  it("computes CRC-32 as zlib does", () => {
    assert.equal(crc32(text("123456789")), 0xcbf43926);
    assert.equal(crc32(new Uint8Array(0)), 0);
  });
});
