/**
 * The guest kernels' entry and exit stub forms compiled in blocks (ops/table.ts HOT_OPS: segment
 * pushes and pops, mov to a segment register, pusha/popa, iret, and the event words' accesses)
 * against the interpreter, in protected mode with a GDT: every run() slice gives the same state
 * interpreted, in JS blocks, in wasm blocks and in wasm regions, including segment loads that
 * fault in the middle of a block, an accessed bit written into the block's own code page, and
 * an iret to an outer ring whose CS has another base (a region must not go on in the old page).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { blockFactories, compileRegion } from "../src/cpu/blocks.js";
import { Cpu } from "../src/cpu/cpu.js";
import { CS, DS, EAX, EBX, ECX, ES, ESP, Exit, FS, GS, SS } from "../src/cpu/regs.js";
import { wasmBackend } from "../src/cpu/wasm/backend.js";
import { allocRam } from "../src/machine/ram.js";
import { le32 as d } from "./helpers/bytes.js";
import { type CpuState, runSlice } from "./helpers/cpu-state.js";

const CODE = 0x1000;
/** In the code page: the first load of a descriptor writes its accessed bit into a code frame. */
const GDT = 0x1c00;
const DATA = 0x3000;
const USER_BASE = 0x100000;

const K0_CS = 0x08;
const K1_CS = 0x19;
const K1_DS = 0x21;
const U_DS = 0x33;
/** Ring-3 code based at USER_BASE. */
const UB_CS = 0x3b;
/** Ring-3 data, not present. */
const NP_DS = 0x43;
/** Ring-1 data with the accessed bit clear. */
const K1_DS_NA = 0x49;
/** Ring-0 data (a load at ring 1 is #GP). */
const K0_DS = 0x50;

type Variant = "interp" | "js" | "wasm" | "wasm-regions";
const COMPILED: Variant[] = ["js", "wasm", "wasm-regions"];

function put32(mem: Uint8Array, a: number, v: number): void {
  mem.set(d(v), a);
}

/** A code or data descriptor for selector sel: access byte, 4 KiB granular, 32-bit. */
function desc(mem: Uint8Array, sel: number, base: number, access: number): void {
  const at = GDT + (sel & ~7);
  put32(mem, at, ((base & 0xffff) << 16) | 0xffff);
  put32(mem, at + 4, (base & 0xff000000) | 0xcf0000 | (access << 8) | ((base >>> 16) & 0xff));
}

/** Puts the CPU at ring cpl (0 or 1) with flat segments of that ring. */
function ring(cpu: Cpu, cpl: number): void {
  const cs = cpl === 0 ? K0_CS : K1_CS;
  const ds = cpl === 0 ? 0x10 : K1_DS;
  cpu.loadSegmentCache(CS, cs, 0, -1, 0xc09b | (cpl << 5));
  for (const s of [SS, DS, ES, FS, GS]) cpu.loadSegmentCache(s, ds, 0, -1, 0xc093 | (cpl << 5));
  cpu.setCpl(cpl);
  cpu.regs[ESP] = 0xa000 - 0x100;
}

function machine(code: number[], at: number, variant: Variant): Cpu {
  const mem = variant === "interp" || variant === "js" ? new Uint8Array(4 << 20) : allocRam(4 << 20);
  const cpu = new Cpu(mem);
  cpu.backend = variant === "interp" || variant === "js" ? "js" : "wasm";
  const wasm = wasmBackend(cpu);
  if (wasm !== null) {
    wasm.batch = 1;
    wasm.chain = variant === "wasm-regions";
  }
  cpu.resetFlat32();
  desc(mem, K0_CS, 0, 0x9b);
  desc(mem, 0x10, 0, 0x93);
  desc(mem, K1_CS, 0, 0xbb);
  desc(mem, K1_DS, 0, 0xb3);
  desc(mem, 0x2b, 0, 0xfb);
  desc(mem, U_DS, 0, 0xf3);
  desc(mem, UB_CS, USER_BASE, 0xfb);
  desc(mem, NP_DS, 0, 0x73);
  desc(mem, K1_DS_NA, 0, 0xb2);
  desc(mem, K0_DS, 0, 0x93);
  cpu.gdtrBase = GDT;
  cpu.gdtrLimit = 11 * 8 - 1;
  mem.set(code, at);
  for (let i = 0; i < 0x100; i++) mem[DATA + i] = (i * 37) & 0xff;
  const on = variant !== "interp";
  cpu.blockThreshold = on ? 1 : 0;
  cpu.regionThreshold = on ? 1 : 0;
  return cpu;
}

/** The state after a slice, with the segment selectors. */
function slice(cpu: Cpu, budget: number): CpuState & { sel: number[]; cpl: number } {
  return { ...runSlice(cpu, budget), sel: Array.from(cpu.segSel.subarray(0, 6)), cpl: cpu.cpl };
}

// An event upcall's entry and exit, looped by its own iret (ring 1 to ring 1), EBX times:
// start: dec ebx; jz done; pushf; push cs; push start
//        pushal; push ds; push es; push fs; push gs
//        mov eax,K1_DS; mov ds,eax; mov es,eax; mov [DATA],eax; mov [DATA+4],al
//        xchg [DATA+8],eax; bsf eax,[DATA+8]; btr [DATA+12],eax; not dword [DATA+16]; cld
//        pop gs; pop fs; pop es; pop ds; popal; iret
// done:  hlt (#GP at ring 1)
const STUB = [
  [0x4b],
  [0x74, 0],
  [0x9c, 0x0e, 0x68, ...d(CODE)],
  [0x60, 0x1e, 0x06, 0x0f, 0xa0, 0x0f, 0xa8],
  [0xb8, ...d(K1_DS), 0x8e, 0xd8, 0x8e, 0xc0],
  [0xa3, ...d(DATA), 0xa2, ...d(DATA + 4)],
  [0x87, 0x05, ...d(DATA + 8), 0x0f, 0xbc, 0x05, ...d(DATA + 8)],
  [0x0f, 0xb3, 0x05, ...d(DATA + 12), 0xf7, 0x15, ...d(DATA + 16), 0xfc],
  [0x0f, 0xa9, 0x0f, 0xa1, 0x07, 0x1f, 0x61, 0xcf],
  [0xf4],
].flat();
STUB[2] = STUB.length - 1 - 3;

const ROUNDS = 300;

function stub(variant: Variant, budget: number): { steps: ReturnType<typeof slice>[]; cpu: Cpu } {
  const cpu = machine(STUB, CODE, variant);
  ring(cpu, 1);
  cpu.loadSegmentCache(FS, U_DS, 0, -1, 0xc0f3);
  // Loaded by the stub's pop gs for the first time: its accessed bit is written (a code frame).
  cpu.loadSegmentCache(GS, K1_DS_NA, 0, -1, 0xc0b3);
  cpu.regs[EBX] = ROUNDS;
  cpu.eip = CODE;
  const steps = [];
  for (let i = 0; i < 100000; i++) {
    const s = slice(cpu, budget);
    steps.push(s);
    if (s.exit !== Exit.Budget) break;
  }
  return { steps, cpu };
}

describe("entry and exit stub forms in compiled blocks", () => {
  for (const budget of [1, 5, 13, 100000]) {
    it(`run an event stub looped by iret as the interpreter, in slices of ${budget}`, () => {
      const a = stub("interp", budget);
      const last = a.steps[a.steps.length - 1];
      // The hlt at ring 1: #GP(0).
      assert.equal(last.vector, 13, `stopped: ${JSON.stringify(last)}`);
      assert.equal(last.eip, CODE + STUB.length - 1);
      assert.equal(last.retired, (ROUNDS - 1) * 26 + 2, "the stub's instructions");
      assert.deepEqual(last.sel, [K1_DS, K1_CS, K1_DS, K1_DS, U_DS, K1_DS_NA]);
      assert.equal(a.cpu.mem8[GDT + 0x48 + 5] & 1, 1, "the accessed bit was written");
      for (const v of COMPILED) {
        const b = stub(v, budget);
        assert.deepEqual(b.steps, a.steps, v);
        assert.deepEqual(b.cpu.mem8.subarray(0, 0x10000), a.cpu.mem8.subarray(0, 0x10000), v);
        if (budget === 100000) {
          // Per round only pushf and push cs are outside blocks (the stub's other 30 forms
          // were all interpreted before they were compiled).
          const interpreted = b.cpu.retiredTotal - b.cpu.blockInsnsTotal;
          assert.ok(interpreted <= 2 * ROUNDS + 40, `${v}: ${interpreted} interpreted`);
        }
      }
    });
  }

  // loop: mov eax,[DATA+0x40]; push eax; pop SEG; dec ecx; jnz loop; hlt
  function popLoop(pop: number[]): number[] {
    const body = [0xa1, ...d(DATA + 0x40), 0x50, ...pop, 0x49];
    return [...body, 0x75, -(body.length + 2) & 0xff, 0xf4];
  }

  const BAD: [string, number, number, number][] = [
    ["not present", NP_DS, 11, NP_DS & ~3],
    ["DPL below CPL", K0_DS | 1, 13, K0_DS],
    ["beyond the GDT limit", 0x80, 13, 0x80],
  ];
  for (const [name, pop] of [
    ["pop ds", [0x1f]],
    ["pop fs", [0x0f, 0xa1]],
  ] as const) {
    for (const [why, sel, vector, error] of BAD) {
      it(`roll a faulting ${name} (${why}) in a block back to the pop`, () => {
        const run = (v: Variant) => {
          const cpu = machine(popLoop([...pop]), CODE, v);
          ring(cpu, 1);
          put32(cpu.mem8, DATA + 0x40, K1_DS);
          cpu.regs[ECX] = 1000;
          cpu.eip = CODE;
          assert.equal(cpu.run(50), Exit.Budget);
          put32(cpu.mem8, DATA + 0x40, sel);
          const s = slice(cpu, 1000);
          return { s, exitError: cpu.exitErrorCode, esp: cpu.regs[ESP], blocks: cpu.blockInsnsTotal };
        };
        const a = run("interp");
        assert.equal(a.s.vector, vector, JSON.stringify(a));
        assert.equal(a.exitError, error);
        assert.equal(a.s.eip, CODE + 6, "at the pop");
        assert.equal(a.esp, 0xa000 - 0x100 - 4, "the selector still on the stack");
        for (const v of COMPILED) {
          const b = run(v);
          assert.deepEqual(b.s, a.s, v);
          assert.equal(b.exitError, a.exitError, v);
          assert.ok(b.blocks > 40, `${v}: ran in blocks`);
        }
      });
    }
  }

  // Ring 0 at CODE: push U_DS; push 0xb000; push 2; push dword [DATA+0x80] (CS); push 0x1800;
  // iret. At 0x1800, ring-0 code warmed up first: inc eax x3; dec ecx; jnz 0x1800; hlt. The
  // iret goes to UB_CS:0x1800, linear USER_BASE + 0x1800: int 0x80. A region going on in the
  // old page would run the ring-0 block at 0x1800 at ring 3.
  const TO_USER = [0x68, ...d(U_DS), 0x68, ...d(0xb000), 0x6a, 0x02, 0xff, 0x35, ...d(DATA + 0x80)];
  TO_USER.push(0x68, ...d(0x1800), 0xcf);
  const WARM = [0x40, 0x40, 0x40, 0x49, 0x75, 0xfa, 0xf4];

  function toUser(v: Variant, breakIt: ((cpu: Cpu) => void) | null) {
    const cpu = machine(TO_USER, CODE, v);
    cpu.mem8.set(WARM, 0x1800);
    cpu.mem8.set([0xcd, 0x80], USER_BASE + 0x1800);
    put32(cpu.mem8, DATA + 0x80, UB_CS);
    ring(cpu, 0);
    cpu.regs[ECX] = 100;
    cpu.eip = 0x1800;
    assert.equal(cpu.run(10000), Exit.Halt);
    const steps = [];
    for (let round = 0; round < 50; round++) {
      if (breakIt !== null && round === 40) breakIt(cpu);
      // The iret block (compiled in round 0) drops the fetch window, so the run loop never
      // rebuilds the page's region after it: build it here, as a later block would.
      if (round === 1 && v !== "interp") compileRegion(cpu, cpu.dc.blockOf(CODE >>> 12));
      ring(cpu, 0);
      cpu.eip = CODE;
      steps.push({ ...slice(cpu, 1000), error: cpu.exitErrorCode, esp: cpu.regs[ESP] });
    }
    return { steps, cpu };
  }

  it("leave a region after an iret to an outer ring with another CS base", () => {
    const a = toUser("interp", null);
    for (const s of a.steps) {
      assert.equal(s.vector, 0x80);
      assert.equal(s.cpl, 3);
      assert.equal(s.eip, 0x1802);
      assert.equal(s.regs[EAX], 300, "the ring-0 block never ran at ring 3");
    }
    for (const v of COMPILED) {
      const b = toUser(v, null);
      assert.deepEqual(b.steps, a.steps, v);
      assert.ok(b.cpu.regionRuns > 0, `${v}: the iret ran in a region`);
    }
  });

  it("roll a faulting iret in a block back (CS a data segment: #GP(selector))", () => {
    const bad = (cpu: Cpu) => put32(cpu.mem8, DATA + 0x80, U_DS);
    const a = toUser("interp", bad);
    const s = a.steps[40];
    assert.equal(s.vector, 13);
    assert.equal(s.error, U_DS & ~3);
    assert.equal(s.eip, CODE + TO_USER.length - 1, "at the iret");
    assert.equal(s.esp, 0xa000 - 0x100 - 20, "the frame still on the stack");
    assert.equal(s.cpl, 0);
    for (const v of COMPILED) assert.deepEqual(toUser(v, bad).steps, a.steps, v);
  });
});

describe("blocks shared between copies of the same code", () => {
  // At two frames, as two domains' copies of one kernel: mov ecx,100;
  // loop: bsf edx,eax; add ebx,edx; inc eax; dec ecx; jnz loop; hlt
  const LOOP = [0xb9, ...d(100), 0x0f, 0xbc, 0xd0, 0x01, 0xd3, 0x40, 0x49, 0x75, 0xf7, 0xf4];
  const A = 0x4000;
  const B = 0x6000;

  function runAt(cpu: Cpu, at: number): number {
    cpu.eip = at;
    cpu.regs[EAX] = 1;
    cpu.regs[EBX] = 0;
    cpu.regs[ESP] = 0x9f00;
    assert.equal(cpu.run(100000), Exit.Halt);
    return cpu.regs[EBX];
  }

  /** A, B, then B rewritten to bsf edx,esp (the same block source, other operands), A, B. */
  function both(v: Variant): { sums: number[]; made: number[]; reused: number } {
    const cpu = machine(LOOP, A, v);
    cpu.mem8.set(LOOP, B);
    const made = [blockFactories()];
    const sums = [runAt(cpu, A)];
    made.push(blockFactories());
    sums.push(runAt(cpu, B));
    made.push(blockFactories());
    cpu.mem8[B + 7] = 0xd4;
    cpu.invalidateCode(B + 7, 1);
    sums.push(runAt(cpu, A), runAt(cpu, B));
    made.push(blockFactories());
    return { sums, made, reused: wasmBackend(cpu)?.reused ?? 0 };
  }

  it("give each copy its own decoded operands, after one copy rewrote its code", () => {
    const a = both("interp");
    // bsf of 1..100 summed; the rewritten copy takes bsf of ESP (0x9f00: 8) 100 times.
    assert.deepEqual(a.sums, [97, 97, 97, 800]);
    for (const v of COMPILED) {
      const b = both(v);
      assert.deepEqual(b.sums, a.sums, v);
      // The second copy, and the rewritten one, compiled no new factory: one per source.
      assert.equal(b.made[2], b.made[1], `${v}: B made a factory of its own`);
      assert.equal(b.made[3], b.made[2], `${v}: the rewritten B made a factory of its own`);
      // In wasm, B and the rewritten B call A's function (the same body) with their own
      // handler sites: the rewritten B's sum (800) fails if it took A's or B's.
      if (v !== "js") assert.ok(b.reused >= 2, `${v}: ${b.reused} blocks reused a wasm function`);
    }
  });
});
