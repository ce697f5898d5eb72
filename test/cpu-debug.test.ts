import assert from "node:assert/strict";
import { test } from "node:test";
import { CpuContext } from "../src/cpu/context.js";
import { Cpu, DR6_BS } from "../src/cpu/cpu.js";
import { DB, EAX, ESP, Exit, RF, TF } from "../src/cpu/regs.js";

const CODE = 0x1000;
const STACK = 0x8000;
const NOP = 0x90;
const INC_EAX = 0x40;
const HLT = 0xf4;
const PUSHF = 0x9c;
const POPF = 0x9d;

function setup(bytes: number[]): Cpu {
  const mem = new Uint8Array(1 << 22);
  const cpu = new Cpu(mem);
  cpu.resetFlat32();
  mem.set(bytes, CODE);
  cpu.eip = CODE;
  cpu.regs[ESP] = STACK;
  return cpu;
}

test("TF set at the start of an instruction traps (#DB, DR6.BS) after it", () => {
  const cpu = setup([INC_EAX, INC_EAX, HLT]);
  cpu.setFlags(cpu.getFlags() | TF);
  cpu.dr[6] = 0xffff0ff0;
  const before = cpu.retiredTotal;
  assert.equal(cpu.run(100), Exit.Exception);
  assert.equal(cpu.exitVector, DB);
  assert.equal(cpu.exitErrorCode, -1);
  assert.equal(cpu.eip, CODE + 1);
  assert.equal(cpu.regs[EAX], 1);
  assert.equal(cpu.retiredTotal, before + 1);
  assert.equal(cpu.dr[6] >>> 0, (0xffff0ff0 | DR6_BS) >>> 0);
});

test("popf that sets TF traps after the following instruction, not after itself", () => {
  // pushf; or dword [esp], 0x100; popf; inc eax; inc eax
  const cpu = setup([PUSHF, 0x81, 0x0c, 0x24, 0x00, 0x01, 0x00, 0x00, POPF, INC_EAX, INC_EAX, HLT]);
  assert.equal(cpu.run(100), Exit.Exception);
  assert.equal(cpu.exitVector, DB);
  assert.equal(cpu.eip, CODE + 10);
  assert.equal(cpu.regs[EAX], 1);
});

test("clearing TF stops single-stepping and the fast loop resumes", () => {
  const cpu = setup([INC_EAX, INC_EAX, INC_EAX, HLT]);
  cpu.setFlags(cpu.getFlags() | TF);
  assert.equal(cpu.run(100), Exit.Exception);
  cpu.setFlags(cpu.getFlags() & ~TF);
  assert.equal(cpu.run(100), Exit.Halt);
  assert.equal(cpu.regs[EAX], 3);
});

test("an instruction breakpoint (DR7 L0, R/W 00) faults before the instruction; RF suppresses it once", () => {
  const cpu = setup([NOP, INC_EAX, INC_EAX, HLT]);
  cpu.dr[0] = CODE + 1;
  cpu.dr[6] = 0xffff0ff0;
  cpu.dr[7] = 0x401;
  assert.equal(cpu.run(100), Exit.Exception);
  assert.equal(cpu.exitVector, DB);
  assert.equal(cpu.eip, CODE + 1);
  assert.equal(cpu.regs[EAX], 0);
  assert.equal(cpu.dr[6] & 0xf, 1);
  assert.equal(cpu.dr[6] & DR6_BS, 0);
  cpu.setFlags(cpu.getFlags() | RF);
  assert.equal(cpu.run(100), Exit.Halt);
  assert.equal(cpu.regs[EAX], 2);
  assert.equal(cpu.getFlags() & RF, 0);
});

test("a breakpoint whose DR7 enable bits are clear, or with R/W not 00, does not fire", () => {
  const cpu = setup([NOP, INC_EAX, HLT]);
  cpu.dr[0] = CODE + 1;
  cpu.dr[1] = CODE + 1;
  cpu.dr[7] = 0x400 | (1 << 2) | (1 << 20); // L1 with R/W1 = 01 (data write)
  assert.equal(cpu.run(100), Exit.Halt);
  assert.equal(cpu.regs[EAX], 1);
});

test("the budget is honoured while single-stepping", () => {
  const cpu = setup([INC_EAX, INC_EAX, INC_EAX, HLT]);
  cpu.dr[0] = 0x7000; // armed (G0), never hit
  cpu.dr[7] = 0x402;
  assert.equal(cpu.run(2), Exit.Budget);
  assert.equal(cpu.regs[EAX], 2);
  assert.equal(cpu.run(10), Exit.Halt);
  assert.equal(cpu.regs[EAX], 3);
});

test("CpuContext save/restore carries the x87 state", () => {
  const cpu = setup([]);
  const a = new CpuContext();
  const b = new CpuContext();
  cpu.fpu.setX80(3, 0x3fff, 0x80000000, 0);
  cpu.fpu.top = 3;
  cpu.fpu.empty[3] = 0;
  cpu.fpu.cw = 0x027f;
  a.save(cpu);
  b.restore(cpu);
  assert.equal(cpu.fpu.cw, 0x037f);
  assert.equal(cpu.fpu.top, 0);
  assert.equal(cpu.fpu.empty[3], 1);
  a.restore(cpu);
  assert.equal(cpu.fpu.cw, 0x027f);
  assert.equal(cpu.fpu.top, 3);
  assert.equal(cpu.fpu.st(0), 1);
});
