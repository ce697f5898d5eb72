/**
 * The scheduler's per-CPU deadline queue (src/xen/scheduler.ts DeadlineQueue): a sorted buffer
 * that appends the latest deadline and inserts an earlier one by shifting. Random pushes (in
 * order, out of order, ties, far and near) and pops against a sorted model: the top is always
 * the earliest, through the buffer's compaction and growth; clear empties it. A rebuild's refill
 * of many vcpus in any order is sorted once and appended: no entry shifted (n pushes in domain
 * order would shift O(n^2)).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Vcpu } from "../src/xen/domain.js";
import { DeadlineQueue, deadlineStats } from "../src/xen/scheduler.js";

/** A deterministic generator (xorshift32). */
function rng(seed: number): () => number {
  let x = seed | 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

describe("DeadlineQueue", () => {
  for (const [name, inOrder] of [
    ["mostly in order (a periodic tick)", 0.95],
    ["in any order", 0],
  ] as const)
    it(`keeps the earliest deadline on top: ${name}, through compaction and growth`, () => {
      const r = rng(inOrder === 0 ? 7 : 11);
      const q = new DeadlineQueue();
      const model: number[] = [];
      const vcpus = Array.from({ length: 8 }, (_, i) => ({ id: i }) as unknown as Vcpu);
      let last = 1e9;
      for (let step = 0; step < 20_000; step++) {
        const push = model.length === 0 || r() < (step % 5000 < 2500 ? 0.6 : 0.4);
        if (push) {
          // Nanoseconds past 2^32 (doubles), ties now and then.
          const t =
            r() < inOrder ? (last += Math.floor(r() * 3) * 1e6) : 2 ** 33 + Math.floor(r() * 50) * 1e6;
          q.push(t, vcpus[step & 7]);
          model.push(t);
          model.sort((a, b) => a - b);
        } else {
          assert.equal(q.topNs(), model[0], `step ${step}`);
          q.pop();
          model.shift();
        }
        assert.equal(q.size, model.length);
        if (model.length > 0) assert.equal(q.topNs(), model[0], `step ${step}`);
        assert.ok(q.size === 0 || vcpus.includes(q.topVcpu()));
      }
      q.clear();
      assert.equal(q.size, 0);
      q.push(5, vcpus[0]);
      assert.equal(q.topNs(), 5);
      assert.equal(q.topVcpu(), vcpus[0]);
    });

  it("refills 5,000 vcpus given latest first (ties, far and near) sorted, shifting none", () => {
    const r = rng(23);
    const n = 5000;
    // Latest first: pushed one by one, each would shift every entry already in (~12.5 M moves).
    const vcpus = Array.from(
      { length: n },
      (_, i) =>
        ({
          id: i,
          timerDeadline: 2 ** 33 + (n - i) * 1e6 + (r() < 0.2 ? 0 : Math.floor(r() * 3) * 1e5),
        }) as unknown as Vcpu,
    );
    const q = new DeadlineQueue();
    q.push(7, vcpus[0]); // refill drops what was there
    const shifted0 = deadlineStats.shifted;
    q.refill(vcpus.slice());
    assert.equal(deadlineStats.shifted - shifted0, 0, "entries shifted by the refill");
    assert.equal(q.size, n);
    const want = vcpus.slice().sort((a, b) => a.timerDeadline - b.timerDeadline);
    const out = new Set<Vcpu>();
    for (let i = 0; i < n; i++) {
      assert.equal(q.topNs(), want[i].timerDeadline, `entry ${i}`);
      assert.equal(q.topVcpu().timerDeadline, q.topNs(), `entry ${i}'s own vcpu`);
      out.add(q.topVcpu());
      q.pop();
    }
    assert.equal(out.size, n, "each vcpu came out once");
  });

  it("hands back each deadline's own vcpu", () => {
    const q = new DeadlineQueue();
    const vcpus = Array.from({ length: 200 }, (_, i) => ({ id: i }) as unknown as Vcpu);
    // Pushed in reverse: every push inserts at the front (200 entries: the buffers grow).
    for (let i = 199; i >= 0; i--) q.push(1000 + i, vcpus[i]);
    for (let i = 0; i < 200; i++) {
      assert.equal(q.topNs(), 1000 + i);
      assert.equal(q.topVcpu(), vcpus[i]);
      q.pop();
    }
    assert.equal(q.size, 0);
  });
});
