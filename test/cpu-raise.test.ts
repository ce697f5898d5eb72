/**
 * Privileged instructions at CPL 3 raise #GP(0) without a throw (cpu.raise, the exit a PV
 * kernel's privileged instructions take to be emulated). The state they leave must be
 * exactly what the thrown fault left: each is run after an instruction that retires, with
 * the budget ending at, before and after it, in the fast loop and the single-step loop, and
 * compared with the same CPU whose raise() throws as fault() does.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Cpu } from "../src/cpu/cpu.js";
import { CS, DS, ES, Exit, FS, GP, GS, SS, TF } from "../src/cpu/regs.js";
import { compiledBlocks } from "./helpers/cpu-state.js";

const CODE = 0x1000;

/** Each instruction, after `inc eax` and before `inc ecx`. */
const PRIVILEGED: [string, number[]][] = [
  ["mov eax, cr0", [0x0f, 0x20, 0xc0]],
  ["mov cr0, eax", [0x0f, 0x22, 0xc0]],
  ["mov cr3, eax", [0x0f, 0x22, 0xd8]],
  ["mov eax, dr7", [0x0f, 0x21, 0xf8]],
  ["mov dr7, eax", [0x0f, 0x23, 0xf8]],
  ["clts", [0x0f, 0x06]],
  ["invd", [0x0f, 0x08]],
  ["wbinvd", [0x0f, 0x09]],
  ["hlt", [0xf4]],
  ["rdmsr", [0x0f, 0x32]],
  ["wrmsr", [0x0f, 0x30]],
  ["invlpg [eax]", [0x0f, 0x01, 0x38]],
  ["lmsw ax", [0x0f, 0x01, 0xf0]],
  ["lldt ax", [0x0f, 0x00, 0xd0]],
  ["ltr ax", [0x0f, 0x00, 0xd8]],
  ["cli", [0xfa]],
  ["sti", [0xfb]],
  ["lgdt [eax] (thrown in both)", [0x0f, 0x01, 0x10]],
];

/** A flat CPL 3 machine running `inc eax; <insn>; inc ecx` (IOPL 0: cli/sti fault too). */
function machine(insn: number[], thrown: boolean, step: boolean): Cpu {
  const mem = new Uint8Array(1 << 20);
  const cpu = new Cpu(mem);
  cpu.resetFlat32();
  cpu.loadSegmentCache(CS, 0x1b, 0, -1, 0xc0fb);
  for (const s of [SS, DS, ES, FS, GS]) cpu.loadSegmentCache(s, 0x23, 0, -1, 0xc0f3);
  cpu.setCpl(3);
  cpu.regs[4] = 0x8000;
  cpu.regs[0] = 0x2000;
  const code = [0x40, ...insn, 0x41];
  mem.set(code, CODE);
  cpu.invalidateCode(CODE, code.length);
  cpu.eip = CODE;
  if (step) cpu.setFlags(cpu.getFlags() | TF);
  if (thrown) cpu.raise = (vector: number, error: number) => cpu.fault(vector, error);
  return cpu;
}

/** The state after each run(budget) slice, until a #GP, a hlt or three slices. */
function slices(cpu: Cpu, budget: number): unknown[] {
  const out: unknown[] = [];
  for (let i = 0; i < 3; i++) {
    const exit = cpu.run(budget);
    out.push({
      exit,
      retired: cpu.retiredTotal,
      eip: cpu.eip,
      regs: Array.from(cpu.regs),
      flags: cpu.getFlags(),
      runEnd: cpu.runEnd === 0,
      vector: exit === Exit.Exception ? [cpu.exitVector, cpu.exitErrorCode, cpu.exitSoft] : null,
    });
    if (exit === Exit.Halt || (exit === Exit.Exception && cpu.exitVector === GP)) break;
    if (exit === Exit.Exception) cpu.dr[6] = 0;
  }
  return out;
}

describe("privileged instructions raise #GP(0) without a throw", () => {
  for (const [name, insn] of PRIVILEGED) {
    it(`${name}: the same state as a thrown #GP, in the fast and the single-step loop`, () => {
      for (const step of [false, true]) {
        for (const budget of [1, 2, 5]) {
          const raised = slices(machine(insn, false, step), budget);
          const thrown = slices(machine(insn, true, step), budget);
          assert.deepEqual(raised, thrown, `budget ${budget}${step ? ", single-stepping" : ""}`);
        }
        // And it is the architectural #GP(0): at the instruction, after inc eax retired.
        const cpu = machine(insn, false, step);
        const last = slices(cpu, 5).at(-1) as { exit: Exit; eip: number; vector: unknown[] };
        assert.equal(last.exit, Exit.Exception);
        assert.deepEqual(last.vector, [GP, 0, false]);
        assert.equal(last.eip, CODE + 1);
        assert.equal(cpu.retiredTotal, 1);
        assert.equal(cpu.regs[0], 0x2001);
      }
    });
  }
});

describe("a fault in a compiled block is held, not thrown again", () => {
  // loop: push eax; mov ebx,[esi]; pop eax; dec ecx; jnz loop; hlt
  const LOOP = [0x50, 0x8b, 0x1e, 0x58, 0x49, 0x75, 0xf9, 0xf4];
  /** Instructions in one pass of the loop. */
  const PASS = 5;
  const GDT = 0x10000;
  const IDT = 0x20000;
  const HANDLER = 0x5000;

  /**
   * CPL 0, flat, the loop warmed up for `warm` instructions, one pass a run() (compiled
   * when blocks; the page's blocks linked into a region after REGION_THRESHOLD standalone
   * runs), then DS cut to 0x7fff under [esi].
   */
  function machine(blocks: boolean, idt: boolean, warm: number): Cpu {
    const cpu = new Cpu(new Uint8Array(1 << 20));
    const mem = cpu.mem8;
    const dv = new DataView(mem.buffer);
    cpu.resetFlat32();
    // GDT: 0x08 flat ring-0 code, 0x10 flat ring-0 data; IDT: #GP to HANDLER (interrupt gate).
    dv.setUint32(GDT + 8, 0x0000ffff, true);
    dv.setUint32(GDT + 12, 0x00cf9b00, true);
    dv.setUint32(GDT + 16, 0x0000ffff, true);
    dv.setUint32(GDT + 20, 0x00cf9300, true);
    cpu.gdtrBase = GDT;
    cpu.gdtrLimit = 23;
    dv.setUint32(IDT + GP * 8, (0x08 << 16) | HANDLER, true);
    dv.setUint32(IDT + GP * 8 + 4, 0x8e00, true);
    cpu.idtrBase = IDT;
    cpu.idtrLimit = 256 * 8 - 1;
    // The handler: pop the error code, count in EDX, hlt.
    mem.set([0x58, 0x42, 0xf4], HANDLER);
    mem.set(LOOP, CODE);
    cpu.invalidateCode(CODE, LOOP.length);
    cpu.eip = CODE;
    cpu.regs[4] = 0x8000;
    cpu.regs[1] = 1000;
    cpu.regs[6] = 0x4000;
    cpu.blockThreshold = blocks ? 2 : 0;
    for (let i = 0; i < warm; i += PASS) assert.equal(cpu.run(PASS), Exit.Budget);
    cpu.loadSegmentCache(DS, 0x10, 0, 0x7fff, 0x4093);
    cpu.regs[6] = 0x8000;
    cpu.deliverThroughIdt = idt;
    return cpu;
  }

  for (const [idt, warm] of [
    [false, 50],
    [true, 50],
    [false, 600],
    [true, 600],
  ] as const) {
    const where = warm > 50 ? "a region's block" : "a block";
    it(`in ${where} leaves the interpreter's state, ${idt ? "delivered through the IDT" : "as an exit"}, at every budget`, () => {
      for (const budget of [1, 2, 3, 4, 1000]) {
        const state = (blocks: boolean) => {
          const cpu = machine(blocks, idt, warm);
          const regions = cpu.regionRuns;
          const out = slices(cpu, budget);
          // A budget short of a whole pass runs the instructions one by one.
          if (blocks && warm > 50 && budget >= PASS)
            assert.ok(cpu.regionRuns > regions, "the fault was not in a region");
          return { out, stack: Array.from(cpu.mem8.subarray(0x7fe0, 0x8000)), blocks: compiledBlocks(cpu) };
        };
        const a = state(false);
        const b = state(true);
        assert.ok(b.blocks > 0, "no block was compiled");
        assert.deepEqual(b.out, a.out, `budget ${budget}`);
        assert.deepEqual(b.stack, a.stack, `budget ${budget}`);
      }
      const cpu = machine(true, idt, warm);
      const last = slices(cpu, 1000).at(-1) as { exit: Exit; eip: number };
      if (idt) {
        assert.equal(last.exit, Exit.Halt);
        assert.equal(cpu.regs[2], 1);
        // push retired, the #GP delivered (not retired), pop, inc edx, hlt.
        assert.equal(cpu.retiredTotal, warm + 1 + 3);
      } else {
        assert.equal(last.exit, Exit.Exception);
        assert.equal(last.eip, CODE + 1);
        assert.equal(cpu.retiredTotal, warm + 1);
      }
    });
  }
});
