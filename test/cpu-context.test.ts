/**
 * CpuContext's x87 hand-over (issue 16, idle scale): switchIn puts the context's own x87 unit on
 * the CPU instead of copying it, so what the CPU does to the unit is the context's state; every
 * other way onto or off the CPU (restore, detach) leaves the CPU a unit of its own, so that no
 * context's unit is changed by anything but the CPU running that context. The debug registers'
 * array is handed over the same way (cpu.dr).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CpuContext } from "../src/cpu/context.js";
import { Cpu } from "../src/cpu/cpu.js";
import type { Fpu } from "../src/cpu/fpu.js";
import { LDTR } from "../src/cpu/regs.js";

function cpu(): Cpu {
  const c = new Cpu(new Uint8Array(1 << 16));
  c.resetFlat32();
  return c;
}

/** A recognisable x87 state: control word and the top register. */
function mark(f: Fpu, n: number): void {
  f.cw = 0x037f ^ (n << 10);
  f.regs[0] = n + 0.5;
}

const state = (f: Fpu) => ({ cw: f.cw, r0: f.regs[0] });

describe("CpuContext: the x87 unit at a switch", () => {
  it("switchIn runs the CPU on the context's own unit; save then copies nothing", () => {
    const c = cpu();
    const a = new CpuContext();
    mark(a.fpu, 1);
    a.switchIn(c);
    assert.equal(c.fpu, a.fpu);
    mark(c.fpu, 2);
    a.save(c);
    assert.deepEqual(state(a.fpu), { cw: 0x037f ^ (2 << 10), r0: 2.5 });
  });

  it("a switch hands the units over: each context keeps its own state", () => {
    const c = cpu();
    const [a, b] = [new CpuContext(), new CpuContext()];
    mark(a.fpu, 1);
    mark(b.fpu, 2);
    a.switchIn(c);
    mark(c.fpu, 3); // a runs
    a.save(c);
    b.switchIn(c);
    assert.deepEqual(state(c.fpu), state(b.fpu));
    mark(c.fpu, 4); // b runs
    b.save(c);
    a.switchIn(c);
    assert.deepEqual(state(c.fpu), { cw: 0x037f ^ (3 << 10), r0: 3.5 });
    assert.deepEqual(state(b.fpu), { cw: 0x037f ^ (4 << 10), r0: 4.5 });
  });

  it("save copies when the CPU's unit is not the context's own", () => {
    const c = cpu();
    const a = new CpuContext();
    mark(c.fpu, 5);
    a.save(c);
    assert.notEqual(a.fpu, c.fpu);
    assert.deepEqual(state(a.fpu), state(c.fpu));
  });

  it("restore gives the CPU a copy: the CPU's work afterwards does not change the context", () => {
    const c = cpu();
    const [a, snap] = [new CpuContext(), new CpuContext()];
    mark(a.fpu, 1);
    a.switchIn(c);
    snap.save(c); // a snapshot, as ptwr takes one
    mark(c.fpu, 6);
    snap.restore(c);
    assert.notEqual(c.fpu, snap.fpu);
    assert.notEqual(c.fpu, a.fpu);
    assert.deepEqual(state(c.fpu), { cw: 0x037f ^ (1 << 10), r0: 1.5 });
    mark(c.fpu, 7);
    assert.deepEqual(state(snap.fpu), { cw: 0x037f ^ (1 << 10), r0: 1.5 });
  });

  it("detach leaves the CPU a copy of the state and the context its unit, untouched afterwards", () => {
    const c = cpu();
    const a = new CpuContext();
    a.switchIn(c);
    mark(c.fpu, 8);
    a.detach(c);
    assert.notEqual(c.fpu, a.fpu);
    assert.deepEqual(state(c.fpu), state(a.fpu));
    mark(c.fpu, 9);
    assert.deepEqual(state(a.fpu), { cw: 0x037f ^ (8 << 10), r0: 8.5 });
  });
});

/** Recognisable debug registers on array d. */
function markDr(d: Int32Array, n: number): void {
  for (let i = 0; i < 8; i++) d[i] = (n << 20) | (i << 4) | 1;
}

const drOf = (n: number) => Array.from({ length: 8 }, (_, i) => (n << 20) | (i << 4) | 1);

describe("CpuContext: the debug registers at a switch", () => {
  it("switchIn runs the CPU on the context's own array; what the CPU writes is the context's, save copies nothing", () => {
    const c = cpu();
    const a = new CpuContext();
    markDr(a.dr, 1);
    a.switchIn(c);
    assert.equal(c.dr, a.dr);
    markDr(c.dr, 2); // a runs: MOV DR, set_debugreg, a #DB's DR6
    assert.deepEqual([...a.dr], drOf(2));
    a.save(c);
    assert.equal(c.dr, a.dr);
    assert.deepEqual([...a.dr], drOf(2));
  });

  it("a switch hands the arrays over: each context keeps its own registers", () => {
    const c = cpu();
    const [a, b] = [new CpuContext(), new CpuContext()];
    markDr(a.dr, 1);
    markDr(b.dr, 2);
    for (let round = 0; round < 3; round++) {
      a.switchIn(c);
      assert.deepEqual([...c.dr], drOf(1 + round * 2));
      markDr(c.dr, 3 + round * 2); // a runs
      a.save(c);
      b.switchIn(c);
      assert.equal(c.dr, b.dr);
      assert.deepEqual([...c.dr], drOf(2 + round * 2));
      markDr(c.dr, 4 + round * 2); // b runs
      b.save(c);
      assert.deepEqual([...a.dr], drOf(3 + round * 2));
    }
  });

  it("save copies when the CPU's array is not the context's own", () => {
    const c = cpu();
    const a = new CpuContext();
    markDr(c.dr, 5);
    a.save(c);
    assert.notEqual(a.dr, c.dr);
    assert.deepEqual([...a.dr], drOf(5));
  });

  it("restore gives the CPU a copy: the CPU's writes afterwards change no context", () => {
    const c = cpu();
    const [a, snap] = [new CpuContext(), new CpuContext()];
    markDr(a.dr, 1);
    a.switchIn(c);
    snap.save(c); // a snapshot, as ptwr takes one
    markDr(c.dr, 6);
    snap.restore(c);
    assert.notEqual(c.dr, snap.dr);
    assert.notEqual(c.dr, a.dr);
    assert.deepEqual([...c.dr], drOf(1));
    markDr(c.dr, 7);
    assert.deepEqual([...snap.dr], drOf(1));
    assert.deepEqual([...a.dr], drOf(6));
    // a leaves the CPU: what the CPU holds now is saved into it.
    a.save(c);
    assert.deepEqual([...a.dr], drOf(7));
  });

  it("detach leaves the CPU a copy and the context its array, untouched afterwards", () => {
    const c = cpu();
    const a = new CpuContext();
    a.switchIn(c);
    markDr(c.dr, 8);
    a.detach(c);
    assert.notEqual(c.dr, a.dr);
    assert.deepEqual([...c.dr], drOf(8));
    markDr(c.dr, 9);
    assert.deepEqual([...a.dr], drOf(8));
  });
});

/** Every register a switch saves, distinct for each n. */
function load(c: Cpu, n: number): void {
  for (let i = 0; i < 8; i++) {
    c.regs[i] = (n << 24) | (i << 8) | 0x11;
    c.dr[i] = (n << 20) | (i << 4) | 3;
  }
  for (let s = 0; s < 8; s++)
    c.loadSegmentCache(s, (n << 4) | s, (n << 16) + s * 0x1000, 0xfff00 + n + s, 0xc093 ^ (s << 8));
  c.eip = 0x1000 + n;
  c.setFlags(0x202 | (n & 1) | ((n & 2) << 6));
  c.setCpl(n & 3);
  c.cr0 = 0x80050033 ^ (n << 1);
  c.cr2 = 0xdead0000 + n;
  c.cr4 = n << 4;
  c.setCr3(n << 12);
  c.gdtrBase = 0xc0100000 + n;
  c.gdtrLimit = 0x2000 + n;
  c.idtrBase = 0xc0200000 + n;
  c.idtrLimit = 0x7ff - n;
}

/** What load() set, as the CPU holds it. */
function regsOf(c: Cpu) {
  return {
    regs: [...c.regs],
    dr: [...c.dr],
    sel: [...c.segSel],
    base: [...c.segBase],
    limit: [...c.segLimit],
    attr: [...c.segAttr],
    eip: c.eip,
    flags: c.getFlags(),
    cpl: c.cpl,
    cr: [c.cr0, c.cr2, c.cr3, c.cr4],
    tables: [c.gdtrBase, c.gdtrLimit, c.idtrBase, c.idtrLimit],
  };
}

describe("CpuContext: the registers at a switch", () => {
  it("each context gets back every register it left with, whatever ran meanwhile", () => {
    const c = cpu();
    const [a, b] = [new CpuContext(), new CpuContext()];
    load(c, 1);
    const one = regsOf(c);
    a.save(c);
    load(c, 2);
    const two = regsOf(c);
    b.save(c);
    load(c, 3);
    a.switchIn(c);
    assert.deepEqual(regsOf(c), one);
    load(c, 4);
    b.switchIn(c);
    assert.deepEqual(regsOf(c), two);
    const snap = new CpuContext();
    snap.save(c);
    load(c, 5);
    snap.restore(c);
    assert.deepEqual(regsOf(c), two);
  });

  it("the register arrays a host reads and writes (getvcpucontext, setvcpucontext) are what a switch puts on the CPU", () => {
    const c = cpu();
    const a = new CpuContext();
    load(c, 6);
    a.save(c);
    assert.deepEqual([...a.regs], [...c.regs]);
    assert.deepEqual([...a.dr], [...c.dr]);
    assert.deepEqual([...a.segLimit], [...c.segLimit]);
    a.regs[3] = 0x12345678;
    a.dr[7] = 0x401;
    a.segSel[2] = 0x2b;
    a.segBase[2] = 0x5000;
    a.segLimit[2] = 0xabcde;
    a.segAttr[2] = 0xc0f3;
    a.segmentsWritten();
    load(c, 7);
    a.switchIn(c);
    assert.equal(c.regs[3], 0x12345678);
    assert.equal(c.dr[7], 0x401);
    assert.deepEqual(
      [c.segSel[2], c.segBase[2], c.segLimit[2], c.segAttr[2]],
      [0x2b, 0x5000, 0xabcde, 0xc0f3],
    );
    assert.equal(c.regs[2], a.regs[2]);
  });

  it("a switch between contexts whose segments the CPU holds copies and compares none, and loads nothing", () => {
    const c = cpu();
    const [a, b] = [new CpuContext(), new CpuContext()];
    load(c, 1);
    // A null LDTR (attr 0), as an idle domain's: never "already held", so loaded at every
    // switch-in that compares; loaded again as it is, it moves no stamp.
    c.loadSegmentCache(LDTR, 0, 0, 0, 0);
    a.save(c);
    b.save(c);
    a.segmentsWritten();
    b.segmentsWritten();
    const stamp = c.segStamp;
    let loads = 0;
    const load1 = c.loadSegmentCache.bind(c);
    c.loadSegmentCache = (s, sel, base, limit, attr) => {
      loads++;
      load1(s, sel, base, limit, attr);
    };
    for (let i = 0; i < 10; i++) {
      a.switchIn(c);
      a.save(c);
      b.switchIn(c);
      b.save(c);
    }
    // Only the first switch-in of each compares the eight (then the null LDTR is loaded).
    assert.equal(loads, 2);
    assert.equal(c.segStamp, stamp);
    assert.deepEqual([c.segSel[LDTR], c.segLimit[LDTR], c.segAttr[LDTR]], [0, 0, 0]);
  });

  it("a segment the CPU loaded after a switch-in is saved; a context gets its own back", () => {
    const c = cpu();
    const [a, b] = [new CpuContext(), new CpuContext()];
    load(c, 1);
    a.save(c);
    b.save(c);
    // Another selector and DPL only (loadSegmentCache's short path: the checks stand), then
    // another descriptor (the full path).
    for (const [seg, sel, base, limit, attr] of [
      [4, 0x63, c.segBase[4], c.segLimit[4], c.segAttr[4] ^ 0x60],
      [2, 0x2b, 0x5000, 0xabcde, 0xc0f3],
    ]) {
      a.switchIn(c);
      const theirs = [c.segSel[seg], c.segBase[seg]];
      c.loadSegmentCache(seg, sel, base, limit, attr);
      const mine = regsOf(c);
      a.save(c);
      b.switchIn(c);
      assert.deepEqual([c.segSel[seg], c.segBase[seg]], theirs);
      b.save(c);
      a.switchIn(c);
      assert.deepEqual(regsOf(c), mine);
    }
  });

  it("a host's write to a saved context's segments reaches the CPU at its switch-in", () => {
    const c = cpu();
    const a = new CpuContext();
    load(c, 1);
    a.save(c);
    a.segSel[3] = 0x10033; // a selector is 16 bits: the CPU keeps 0x33
    a.segBase[3] = 0x7000;
    a.segmentsWritten();
    a.switchIn(c);
    assert.deepEqual([c.segSel[3], c.segBase[3]], [0x33, 0x7000]);
    // What the CPU holds is what a save gives, whether or not it copies.
    a.save(c);
    assert.equal(a.segSel[3], 0x33);
  });
});
