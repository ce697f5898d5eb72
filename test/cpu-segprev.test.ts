/**
 * Cpu.loadSegmentCache between descriptors with the same base and valid offsets (a trap's CS
 * and SS against the interrupted ring's) writes only the selector, limit and attribute words
 * of the segment's checks instead of deriving them all (syncSegChk). The checks must be
 * exactly what syncSegChk derives: a random walk over descriptors that differ in one field each
 * (selector, base, limit, attributes: DPL, expand-down, execute-only, not present, null) is
 * compared after every load with a CPU that derived the same descriptor's checks afresh.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Cpu } from "../src/cpu/cpu.js";
import { CS, DS, ES, FS, GS, SS } from "../src/cpu/regs.js";
import { IO_FLAT } from "../src/cpu/wasm/arena.js";

type Desc = [sel: number, base: number, limit: number, attr: number];

/** Descriptors two by two alike but for one field. */
const POOL: Desc[] = [
  [0x08, 0, 0xffffffff, 0xc09b],
  [0x0b, 0, 0xffffffff, 0xc0fb],
  [0x08, 0x1000, 0xffffffff, 0xc09b],
  [0x08, 0, 0xfc3fffff, 0xc09b],
  [0x08, 0, 0xffffffff, 0xc093],
  [0x10, 0, 0xffffffff, 0xc093],
  [0x13, 0, 0xffffffff, 0xc0f3],
  [0x10, 0, 0xffff, 0x0093],
  [0x10, 0, 0xfff, 0xc097],
  [0x10, 0, 0xfff, 0x4097],
  [0x10, 0, 0xffffffff, 0xc099],
  [0x10, 0, 0xffffffff, 0xc013],
  [0x10, 0x400000, 0x3fffff, 0xc093],
  [0x00, 0, 0, 0],
];

function snapshot(cpu: Cpu, seg: number): unknown {
  const k = seg << 5;
  const mask = 0x1010101 << seg;
  return {
    sel: cpu.segSel[seg],
    base: cpu.segBase[seg],
    limit: cpu.segLimit[seg],
    attr: cpu.segAttr[seg],
    lo: cpu.segLo[seg],
    hi: cpu.segHi[seg],
    whi: cpu.segWHi[seg],
    chk: Array.from(cpu.state.segChk.subarray(k, k + 32)),
    flat: cpu.state.io[IO_FLAT] & mask,
  };
}

/** What the offsets' fast path keys on, and what it writes. */
function ranges(cpu: Cpu, seg: number): string {
  return [cpu.segBase[seg], cpu.segLo[seg], cpu.segHi[seg], cpu.segWHi[seg]].join();
}

describe("Cpu: a segment load that keeps the offsets", () => {
  for (const seg of [CS, SS, DS, ES, FS, GS]) {
    it(`seg ${seg}: 3,000 loads from a pool of near-identical descriptors match checks derived afresh`, () => {
      const cpu = new Cpu(new Uint8Array(1 << 16));
      const ref = new Cpu(new Uint8Array(1 << 16));
      let x = 0x1234567 + seg;
      let kept = 0;
      for (let i = 0; i < 3000; i++) {
        x = (Math.imul(x, 1103515245) + 12345) | 0;
        // Mostly between near twins, sometimes anything in the pool.
        const j =
          (x >>> 16) % 4 === 0
            ? (x >>> 8) % POOL.length
            : (i >> 4) & 1
              ? (x >>> 20) % 4
              : 4 + ((x >>> 12) % 4);
        const [sel, base, limit, attr] = POOL[j];
        const before = ranges(cpu, seg);
        const attrBefore = cpu.segAttr[seg];
        cpu.loadSegmentCache(seg, sel, base, limit, attr);
        if (ranges(cpu, seg) === before && cpu.segAttr[seg] !== attrBefore) kept++;
        // The reference derives it afresh: first a descriptor with another base (odd).
        ref.loadSegmentCache(seg, 0x18, (i << 4) | 1, 0xfff, 0x93);
        ref.loadSegmentCache(seg, sel, base, limit, attr);
        assert.deepEqual(snapshot(cpu, seg), snapshot(ref, seg), `load ${i}: ${POOL[j]}`);
      }
      assert.ok(kept > 300, `${kept} loads kept the offsets`);
    });
  }
});
