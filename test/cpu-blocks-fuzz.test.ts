/**
 * Differential fuzzing of compiled blocks against the interpreter: random loops of the hot
 * instruction forms (the ones codegen.ts writes inline and the ones blocks call), run both
 * ways from the same random state, must give the same state after every run() slice. This
 * catches what single-instruction vectors cannot: flags carried from one inline instruction
 * to a fused jcc, jcc that go on inside a block, loops inside a block, stores into code.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { pendingClock, pendingStats, setInterpretPending } from "../src/cpu/blocks.js";
import { Cpu } from "../src/cpu/cpu.js";
import { ESP, Exit } from "../src/cpu/regs.js";
import type { Backend } from "../src/cpu/wasm/arena.js";
import { wasmBackend } from "../src/cpu/wasm/backend.js";
import { allocRam } from "../src/machine/ram.js";
import { type CpuState, compiledBlocks, runSlice } from "./helpers/cpu-state.js";
import { prng } from "./helpers/elf32_writer.js";

const CODE = 0x1000;
const DATA = 0x10000;

/** Uniform 32-bit values from a seed: deterministic, so a failure names its seed. */
function rng(seed: number): () => number {
  const p = prng(seed);
  return () => (p() * 4294967296) >>> 0;
}

function d32(v: number): number[] {
  return [v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, (v >>> 24) & 0xff];
}

/** One random hot instruction (bytes). Base registers of memory operands: EBX, ESI, EDI. */
function instruction(r: () => number): number[] {
  const reg = () => r() & 7;
  const base = () => [3, 6, 7][r() % 3];
  const disp8 = () => r() & 0x7c;
  const mem = (g: number) => [0x40 | (g << 3) | base(), disp8()]; // [base+disp8]
  const sib = (g: number) => [
    0x44 | (g << 3),
    ((r() & 3) << 6) | ([0, 2, 5][r() % 3] << 3) | base(),
    disp8(),
  ];
  const regRm = (g: number) => [0xc0 | (g << 3) | reg()];
  const imm8 = () => r() & 0xff;
  const alu = [0x00, 0x08, 0x10, 0x18, 0x20, 0x28, 0x30, 0x38][r() & 7];
  const operand = (g: number) => (r() % 3 === 0 ? mem(g) : r() % 4 === 0 ? sib(g) : regRm(g));
  switch (r() % 40) {
    case 0:
      return [0x89, ...operand(reg())];
    case 1:
      return [0x8b, ...operand(reg())];
    case 2:
      return [alu | 1, ...operand(reg())];
    case 3:
      return [alu | 3, ...operand(reg())];
    case 4:
      return [alu | 0, ...operand(reg())];
    case 5:
      return [alu | 2, ...operand(reg())];
    case 6:
      return [0x81, ...operand(r() & 7), ...d32(r())];
    case 7:
      return [0x83, ...operand(r() & 7), imm8()];
    case 8:
      return [0x80, ...operand(r() & 7), imm8()];
    case 9:
      return [alu | 5, ...d32(r())];
    case 10:
      return [alu | 4, imm8()];
    case 11:
      return [[0x85, 0x84][r() & 1], ...operand(reg())];
    case 12:
      return [0xf6, ...operand(0), imm8()];
    case 13:
      return [0x40 | (r() & 15)];
    case 14:
      return [0xff, ...operand(r() & 1)];
    case 15:
      return [0x8d, ...(r() & 1 ? mem(reg()) : sib(reg()))];
    case 16:
      return [0xc1, ...operand([4, 5, 7, 0, 1][r() % 5]), r() & 0x3f];
    case 17:
      return [0xd1, ...operand([4, 5, 7, 0, 1][r() % 5])];
    case 18:
      return [0x0f, 0xaf, ...operand(reg())];
    case 19:
      return [0x0f, [0xb6, 0xb7, 0xbe, 0xbf][r() & 3], ...operand(reg())];
    case 20:
      return [0x50 | reg()];
    case 21:
      return [0x58 | reg()];
    case 22:
      return [0xb8 | reg(), ...d32(r())];
    case 23:
      return [0xc7, ...operand(0), ...d32(r())];
    case 24:
      return [0x88 | (r() & 3), ...operand(reg())];
    case 25:
      // cmovcc Gd, Ed
      return [0x0f, 0x40 | (r() & 15), ...operand(reg())];
    case 26:
      return r() & 1 ? [0x69, ...operand(reg()), ...d32(r())] : [0x6b, ...operand(reg()), imm8()];
    case 27:
      // div ecx after xor edx,edx, idiv ecx after cdq, ECX a positive divisor (no #DE, so
      // the loop goes on); now and then div r/m32 as it comes (a zero divisor faults)
      return r() % 4 === 0
        ? [0x31, 0xd2, 0xf7, ...operand(6)]
        : [
            0xb9,
            ...d32((r() & 0x7fffffff) | 1),
            ...(r() & 1 ? [0x31, 0xd2, 0xf7, 0xf1] : [0x99, 0xf7, 0xf9]),
          ];
    case 28:
      // shl, shr, sal or sar r32, cl
      return [0xd3, 0xc0 | ([4, 5, 6, 7][r() & 3] << 3) | reg()];
    case 29:
      return [0x0f, 0x90 | (r() & 15), ...operand(0)];
    case 30:
      return [0xf7, ...operand(0), ...d32(r())];
    case 31:
      // mov Gw, Ew or mov Ew, Gw
      return [0x66, r() & 1 ? 0x8b : 0x89, ...operand(reg())];
    case 32:
      return [0xa1, ...d32(DATA + (r() & 0xffc))];
    case 33:
      // add..xor or cmp Ew, Iw / Ib
      return r() & 1
        ? [0x66, 0x81, ...operand(r() & 7), imm8(), imm8()]
        : [0x66, 0x83, ...operand(r() & 7), imm8()];
    case 34:
      return [0x66, 0x39, ...operand(reg())];
    case 35:
      // shl, shr, sar (or rol, ror: the handler's) Eb by 1 or an immediate
      return r() & 1
        ? [0xd0, ...operand([4, 5, 7, 0, 1][r() % 5])]
        : [0xc0, ...operand([4, 5, 7, 0, 1][r() % 5]), r() & 0x3f];
    case 36:
      // inc or dec Ew, mov Ew, Iw
      return r() & 1 ? [0x66, 0xff, ...operand(r() & 1)] : [0x66, 0xc7, ...operand(0), imm8(), imm8()];
    case 37:
      // test al, Ib or eax, Id; cdq
      return [[0xa8, imm8()], [0xa9, ...d32(r())], [0x99]][r() % 3];
    case 38:
      // adc or sbb in every form (also drawn among the ALU forms above)
      return [[0x11, 0x13, 0x19, 0x1b][r() & 3], ...operand(reg())];
    default:
      return [0x90];
  }
}

/**
 * A random loop: instructions, some followed by a jcc or jmp over the next one or a call of a
 * small function placed after the loop, then `dec ebp; jnz start` and hlt. EBP counts the
 * rounds (an instruction may change it too).
 */
function program(r: () => number): number[] {
  const body: number[][] = [];
  const n = 4 + (r() % 20);
  for (let i = 0; i < n; i++) body.push(instruction(r));
  const fn: number[] = [];
  for (let i = r() % 4; i > 0; i--) fn.push(...instruction(r));
  fn.push(0xc3);
  const code: number[] = [];
  const calls: number[] = [];
  for (let i = 0; i < body.length; i++) {
    code.push(...body[i]);
    const k = r() % 8;
    if (i + 1 < body.length && k < 2) code.push(0x70 | (r() & 15), body[i + 1].length);
    else if (i + 1 < body.length && k === 2) code.push(0xeb, body[i + 1].length);
    else if (k === 3) {
      calls.push(code.length + 1);
      code.push(0xe8, 0, 0, 0, 0);
    }
  }
  code.push(0x4d); // dec ebp
  const rel = -(code.length + 2);
  if (rel < -128) return program(r);
  code.push(0x75, rel & 0xff, 0xf4);
  const f = code.length;
  code.push(...fn);
  for (const at of calls) code.splice(at, 4, ...d32(f - (at + 4)));
  return code;
}

/**
 * blocks: compiled blocks on; regions: and linked into regions (else each block standalone);
 * backend: the blocks' (wasm: RAM on a WebAssembly.Memory, each block wasm from its first run).
 */
function runTrace(
  code: number[],
  seed: number,
  blocks: boolean,
  regions = false,
  backend: Backend = "js",
  pending = 0,
): {
  states: CpuState[];
  mem: Uint8Array;
  compiled: number;
  linked: number;
  wasmRuns: number;
  pendingRuns: number;
} {
  const mem = backend === "wasm" ? allocRam(1 << 20) : new Uint8Array(1 << 20);
  const cpu = new Cpu(mem);
  cpu.backend = backend;
  const wasm = backend === "wasm" ? wasmBackend(cpu) : null;
  // pending > 0: a batch that never fills, so blocks run interpreted, are queued at their
  // second run and compiled pending runs after (blocks.ts interpreted); else each block is
  // wasm from its first run.
  if (wasm !== null) wasm.batch = pending > 0 ? 1000 : 1;
  setInterpretPending(true, pending > 0 ? pending : undefined, pending > 0 ? 2 : undefined);
  cpu.resetFlat32();
  cpu.blockThreshold = blocks ? 2 : 0;
  cpu.regionThreshold = regions ? 2 : 0;
  mem.set(code, CODE);
  const r = rng(seed ^ 0x5bd1e995);
  for (let a = DATA; a < DATA + 0x1000; a++) mem[a] = r() & 0xff;
  for (let i = 0; i < 8; i++) cpu.regs[i] = r();
  cpu.regs[3] = DATA + (r() & 0xf00); // ebx
  cpu.regs[6] = DATA + (r() & 0xf00); // esi
  cpu.regs[7] = DATA + (r() & 0xf00); // edi
  cpu.regs[ESP] = 0x80000;
  cpu.regs[5] = 50; // ebp: rounds
  cpu.eip = CODE;
  cpu.setFlags(r() & 0x8d5);
  const states: CpuState[] = [];
  const slices = rng(seed);
  for (let i = 0; i < 40; i++) {
    const state = runSlice(cpu, 1 + (slices() % 150));
    states.push(state);
    if (state.exit !== Exit.Budget) break;
  }
  const pendingRuns = pendingClock(cpu.dc).runs;
  return {
    states,
    mem,
    compiled: compiledBlocks(cpu),
    linked: cpu.regionBlocks,
    wasmRuns: wasm?.runs ?? 0,
    pendingRuns,
  };
}

test("compiled blocks, standalone and linked into regions, match the interpreter on 300 random loops", () => {
  let withBlocks = 0;
  let withRegions = 0;
  let withWasm = 0;
  let withPending = 0;
  for (let seed = 1; seed <= 300; seed++) {
    const code = program(rng(seed * 2654435761));
    const a = runTrace(code, seed, false);
    const b = runTrace(code, seed, true);
    const hex = code.map((x) => x.toString(16).padStart(2, "0")).join(" ");
    assert.deepEqual(b.states, a.states, `seed ${seed}, code ${hex}`);
    assert.deepEqual(b.mem, a.mem, `memory differs: seed ${seed}, code ${hex}`);
    const c = runTrace(code, seed, true, true);
    assert.deepEqual(c.states, a.states, `regions: seed ${seed}, code ${hex}`);
    assert.deepEqual(c.mem, a.mem, `regions: memory differs: seed ${seed}, code ${hex}`);
    if (b.compiled > 0) withBlocks++;
    if (c.linked > 0) withRegions++;
    for (const regions of [false, true]) {
      const w = runTrace(code, seed, true, regions, "wasm");
      assert.deepEqual(w.states, a.states, `wasm${regions ? " regions" : ""}: seed ${seed}, code ${hex}`);
      assert.deepEqual(
        w.mem,
        a.mem,
        `wasm${regions ? " regions" : ""}: memory differs: seed ${seed}, code ${hex}`,
      );
      if (w.wasmRuns > 0) withWasm++;
      // Blocks interpreted, then compiled 3 runs after they were queued (linked by the region
      // built over them meanwhile, whose table then calls the wasm functions).
      const before = { ...pendingStats };
      const p = runTrace(code, seed, true, regions, "wasm", 3);
      const tag = `wasm pending${regions ? " regions" : ""}: seed ${seed}, code ${hex}`;
      assert.deepEqual(p.states, a.states, tag);
      assert.deepEqual(p.mem, a.mem, `${tag}: memory differs`);
      if (p.pendingRuns > 0 && pendingStats.flushes > before.flushes && p.wasmRuns > 0) withPending++;
    }
  }
  assert.ok(withPending > 350, `only ${withPending} of 600 runs ran pending blocks, then wasm`);
  assert.ok(withWasm > 400, `only ${withWasm} of 600 wasm runs ran wasm blocks`);
  assert.ok(withBlocks > 200, `only ${withBlocks} of 300 programs ran compiled blocks`);
  assert.ok(withRegions > 150, `only ${withRegions} of 300 programs ran blocks linked in a region`);
});
