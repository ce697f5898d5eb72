/**
 * Compiled blocks (src/cpu/blocks.ts, codegen.ts) against the interpreter: the same programs
 * run with blocks off and on must give the same state after every run() slice, including
 * faults in the middle of a block, a store into the block's own code, and budgets that cut
 * a block. (The differential vectors run every single instruction both ways too.)
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Cpu } from "../src/cpu/cpu.js";
import { DS, EAX, EBP, EBX, ECX, EDI, EDX, ESI, ESP, Exit, SS } from "../src/cpu/regs.js";
import { le32 as d } from "./helpers/bytes.js";
import { type CpuState, compiledBlocks, runSlice, runSlices } from "./helpers/cpu-state.js";

const CODE = 0x1000;

function machine(code: number[], blocks: boolean): Cpu {
  const cpu = new Cpu(new Uint8Array(1 << 20));
  cpu.resetFlat32();
  cpu.mem8.set(code, CODE);
  cpu.eip = CODE;
  cpu.regs[ESP] = 0x8000;
  // Compile a block at an instruction's second run, once the straight line after it is decoded.
  cpu.blockThreshold = blocks ? 2 : 0;
  return cpu;
}

/** Runs to hlt (or 200 slices) in slices of `slice` instructions; the state after each. */
function trace(code: number[], blocks: boolean, slice: number): { steps: CpuState[]; cpu: Cpu } {
  const cpu = machine(code, blocks);
  return { steps: runSlices(cpu, slice, 20000), cpu };
}

// A loop with loads, stores, lea, flags fused into jcc, a jcc that goes on when not taken.
// 0x1000 mov ecx,200; xor eax,eax; mov esi,0x3000
// loop: mov edx,[esi]; add eax,edx; lea ebx,[eax+ecx*4]; mov [esi+4],ebx; add esi,4
//       cmp ecx,100; jz skip; inc eax; cmp al,0x80; jb skip; sub eax,3
// skip: test eax,eax; dec ecx; jnz loop; hlt
const LOOP = [
  [0xb9, ...d(200)],
  [0x31, 0xc0],
  [0xbe, ...d(0x3000)],
  // loop (offset 12):
  [0x8b, 0x16],
  [0x01, 0xd0],
  [0x8d, 0x1c, 0x88],
  [0x89, 0x5e, 0x04],
  [0x83, 0xc6, 0x04],
  [0x83, 0xf9, 0x64],
  [0x74, 0x0a], // jz skip
  [0x40],
  [0x3c, 0x80], // cmp al,0x80
  [0x72, 0x05], // jb skip
  [0x2d, ...d(3)], // sub eax,3
  // skip:
  [0x85, 0xc0], // test eax,eax
  [0x49],
  [0x75, 0], // jnz loop (patched below)
  [0xf4],
].flat();
LOOP[LOOP.length - 2] = (12 - (LOOP.length - 1)) & 0xff;

describe("compiled blocks", () => {
  for (const slice of [1, 3, 8, 13, 64, 100000]) {
    it(`run the loop exactly as the interpreter, in slices of ${slice}`, () => {
      const a = trace(LOOP, false, slice);
      const b = trace(LOOP, true, slice);
      assert.equal(a.steps[a.steps.length - 1].exit, Exit.Halt);
      assert.deepEqual(b.steps, a.steps);
      assert.deepEqual(b.cpu.mem8.subarray(0x3000, 0x3400), a.cpu.mem8.subarray(0x3000, 0x3400));
      assert.ok(compiledBlocks(b.cpu) > 0, "no block was compiled");
    });
  }

  // loop: push eax; mov ebx,[esi]; pop eax; dec ecx; jnz loop; hlt
  const FAULTY = [0x50, 0x8b, 0x1e, 0x58, 0x49, 0x75, 0xf9, 0xf4];

  function faultAfterWarmup(blocks: boolean, breakIt: (cpu: Cpu) => void): { s: CpuState; cpu: Cpu } {
    const cpu = machine(FAULTY, blocks);
    cpu.regs[ECX] = 1000;
    cpu.regs[ESI] = 0x4000;
    assert.equal(cpu.run(50), Exit.Budget); // 10 iterations: blocks compiled and in use
    breakIt(cpu);
    return { s: runSlice(cpu, 1000), cpu };
  }

  it("roll a load fault in the middle of a block back to the faulting instruction", () => {
    // DS limit 0x7fff: [esi] at 0x8000 is #GP(0) after the push has moved ESP.
    const breakIt = (cpu: Cpu) => {
      cpu.loadSegmentCache(DS, 0x10, 0, 0x7fff, 0x4093);
      cpu.regs[ESI] = 0x8000;
    };
    const a = faultAfterWarmup(false, breakIt);
    const b = faultAfterWarmup(true, breakIt);
    assert.ok(compiledBlocks(b.cpu) > 0);
    assert.equal(a.s.vector, 13);
    assert.equal(a.s.eip, CODE + 1);
    assert.equal(a.s.retired, 51);
    assert.equal(a.s.regs[ESP], 0x8000 - 4);
    assert.deepEqual(b.s, a.s);
  });

  it("restore ESP when a push faults in a block", () => {
    // SS limit 0x7fff: with ESP at 0x8004 the push (to 0x8000) is #SS(0).
    const breakIt = (cpu: Cpu) => {
      cpu.loadSegmentCache(SS, 0x10, 0, 0x7fff, 0x4093);
      cpu.regs[ESP] = 0x8004;
    };
    const a = faultAfterWarmup(false, breakIt);
    const b = faultAfterWarmup(true, breakIt);
    assert.equal(a.s.vector, 12);
    assert.equal(a.s.eip, CODE);
    assert.equal(a.s.regs[ESP], 0x8004);
    assert.equal(a.s.retired, 50);
    assert.deepEqual(b.s, a.s);
  });

  it("leave ESP after a call when the fetch at its target faults", () => {
    // loop: call far_away (beyond memory: the fetch there is #GP(0)) after 10 rounds of
    // dec ecx; jnz loop.
    const code = [0x49, 0x75, 0xfd, 0xe8, ...d(0x200000 - (CODE + 8)), 0xf4];
    const run = (blocks: boolean) => {
      const cpu = machine(code, blocks);
      cpu.regs[ECX] = 10;
      return runSlice(cpu, 1000);
    };
    const a = run(false);
    assert.equal(a.vector, 13);
    assert.equal(a.eip, 0x200000);
    assert.equal(a.regs[ESP], 0x8000 - 4);
    assert.equal(a.retired, 21);
    assert.deepEqual(run(true), a);
  });

  it("see a store into their own code at the next instruction", () => {
    // loop: mov [esi],bl; target: mov eax,0x11111111; add edx,eax; dec ecx; jnz loop; hlt
    const code = [0x88, 0x1e, 0xb8, ...d(0x11111111), 0x01, 0xc2, 0x49, 0x75, 0xf4, 0xf4];
    const run = (blocks: boolean) => {
      const cpu = machine(code, blocks);
      cpu.regs[ECX] = 40;
      cpu.regs[EDX] = 0;
      cpu.regs[EBX] = 0x22;
      cpu.regs[ESI] = 0x5000;
      assert.equal(cpu.run(50), Exit.Budget); // 10 iterations
      const compiled = compiledBlocks(cpu);
      cpu.regs[ESI] = CODE + 3; // the immediate's low byte
      assert.equal(cpu.run(10000), Exit.Halt);
      return { compiled, edx: cpu.regs[EDX] >>> 0, eax: cpu.regs[EAX] >>> 0, retired: cpu.retiredTotal };
    };
    const a = run(false);
    const b = run(true);
    assert.ok(b.compiled > 0);
    assert.equal(a.eax, 0x11111122);
    assert.equal(a.edx, (10 * 0x11111111 + 30 * 0x11111122) >>> 0);
    assert.deepEqual({ ...b, compiled: 0 }, { ...a, compiled: 0 });
  });

  it("take signed conditions after cmp at the sign boundaries, in 32 and 8 bits, as the interpreter", () => {
    // Pairs (a, b) around the sign boundaries, three times over so the loop gets compiled.
    const base = [
      [0, 0],
      [1, 0],
      [0, 1],
      [-1, 0],
      [0, -1],
      [5, 5],
      [-1, -1],
      [0x7fffffff, 0x80000000],
      [0x80000000, 0x7fffffff],
      [0x7f, 0x80],
      [0x80, 0x7f],
      [0xff, 0x01],
      [0x100, 0x1ff],
    ];
    const pairs = [...base, ...base, ...base];
    // mov ecx,N; mov esi,0x3000; xor edx,edx; xor edi,edi; xor ebp,ebp
    // loop: mov eax,[esi]; mov ebx,[esi+4]; cmp eax,ebx; jl +1; inc edx; cmp eax,ebx; jle +1;
    //       inc ebp; cmp al,bl; jl +1; inc edi; add esi,8; dec ecx; jnz loop; hlt
    const code = [
      [0xb9, ...d(pairs.length)],
      [0xbe, ...d(0x3000)],
      [0x31, 0xd2, 0x31, 0xff, 0x31, 0xed],
      [0x8b, 0x06, 0x8b, 0x5e, 0x04],
      [0x39, 0xd8, 0x7c, 0x01, 0x42],
      [0x39, 0xd8, 0x7e, 0x01, 0x45],
      [0x38, 0xd8, 0x7c, 0x01, 0x47],
      [0x83, 0xc6, 0x08, 0x49, 0x75, 0],
      [0xf4],
    ].flat();
    code[code.length - 2] = (16 - (code.length - 1)) & 0xff;
    const want = {
      notLt32: pairs.filter(([a, b]) => !((a | 0) < (b | 0))).length,
      notLe32: pairs.filter(([a, b]) => !((a | 0) <= (b | 0))).length,
      notLt8: pairs.filter(([a, b]) => !((a << 24) >> 24 < (b << 24) >> 24)).length,
    };
    for (const blocks of [false, true]) {
      const cpu = machine(code, blocks);
      pairs.forEach(([a, b], i) => {
        cpu.mem32[(0x3000 >> 2) + 2 * i] = a;
        cpu.mem32[(0x3000 >> 2) + 2 * i + 1] = b;
      });
      for (let i = 0; i < 100 && cpu.run(50) === Exit.Budget; i++);
      const got = { notLt32: cpu.regs[EDX], notLe32: cpu.regs[EBP], notLt8: cpu.regs[EDI] };
      assert.deepEqual(got, want, blocks ? "compiled" : "interpreted");
      if (blocks) assert.ok(compiledBlocks(cpu) > 0, "no block was compiled");
    }
  });
});
