/**
 * CpuContext's x87 hand-over (issue 16, idle scale): switchIn puts the context's own x87 unit on
 * the CPU instead of copying it, so what the CPU does to the unit is the context's state; every
 * other way onto or off the CPU (restore, detach) leaves the CPU a unit of its own, so that no
 * context's unit is changed by anything but the CPU running that context.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CpuContext } from "../src/cpu/context.js";
import { Cpu } from "../src/cpu/cpu.js";
import type { Fpu } from "../src/cpu/fpu.js";

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
