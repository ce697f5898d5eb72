/**
 * The inline iret (src/cpu/segments.ts iretCommon) in whole runs: bench_exits, every kind
 * (its ring-3 fast trap loop irets from ring 1 to ring 3, its #PF and upcall handlers from ring
 * 1 to ring 1), with the inline path on and off under the interpreter, JS and wasm blocks:
 * the same virtual time, retired count, vcpu time, console and memory. The unit cases (each
 * field of the frame wrong in turn) are test/cpu-iret-inline's.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { iretInlineCount, setIretInline } from "../src/cpu/segments.js";
import { bootBenchExits, sha } from "./support/exit-steps.js";

describe("the inline iret in whole runs", () => {
  it("bench_exits, every kind: inline on and off, interpreter, JS and wasm", () => {
    const runs = (
      [
        ["js", true],
        ["js", false],
        ["wasm", true],
        ["wasm", false],
        ["interp", true],
        ["interp", false],
      ] as const
    ).map(([b, on]) => {
      setIretInline(on);
      try {
        const n0 = iretInlineCount();
        const m = bootBenchExits("n=600 batch=4 rounds=1", b);
        const r = m.hv.run(5e9);
        assert.equal(r.kind, "shutdown", m.out());
        assert.match(m.out(), /BENCH done failures=0/);
        const w = {
          now: m.hv.nowNs(),
          retired: m.hv.cpu.retiredTotal,
          cpuTimeNs: m.v.cpuTimeNs,
          out: m.out(),
          mem: sha(m.hv.mem.bytes),
        };
        return { b, on, w, n: iretInlineCount() - n0 };
      } finally {
        setIretInline(true);
      }
    });
    for (const r of runs.slice(1)) assert.deepEqual(r.w, runs[0].w, `${r.b} inline ${r.on}`);
    // The fast trap loop's 600 irets and the handlers' at least.
    for (const r of runs) assert.ok(r.on ? r.n >= 1200 : r.n === 0, `${r.b} ${r.on}: ${r.n}`);
  });
});
