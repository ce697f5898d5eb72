/**
 * The XenLinux workload's instructions that wasm blocks do inline since stop 18 (gen.ts: adc
 * and sbb in every form, shl/shr/sar Eb by 1, inc Ew, mov Ew,Iw, test al/eax with an
 * immediate, cdq; each was a call of its handler out of wasm). Single-instruction vectors
 * start every case from a plain flags word; here each form runs inside one block after an
 * instruction that leaves each kind of flag record (add, sub, logic, inc, dec, a shift, adc's
 * own, 8- and 16-bit ones, or none), so adc/sbb read CF from every record the generator can
 * hold, and before an adc that reads the form's own record; operands are edge values, the
 * memory operand in a page (the TLB filled or not) or crossing its end (the slow paths). Interpreter, JS blocks and
 * wasm blocks (chain off and on) must end in the same registers, flags and memory, and the
 * wasm block must have run the form without a handler call.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { Cpu } from "../src/cpu/cpu.js";
import { DS, EBX, ESI, ESP, Exit } from "../src/cpu/regs.js";
import { wasmBackend } from "../src/cpu/wasm/backend.js";
import { le32 as d } from "./helpers/bytes.js";
import { type CpuState, runSlice, type Variant, variantCpu } from "./helpers/cpu-state.js";
import { prng } from "./helpers/elf32_writer.js";

const CODE = 0x1000;
const DATA = 0x10000;

/** The forms, each inline in wasm blocks ([esi] is the memory operand). */
const FORMS: number[][] = [
  [0x83, 0xd3, 0x7f], // adc ebx, 0x7f
  [0x83, 0xdb, 0x80], // sbb ebx, -128
  [0x83, 0x16, 0x01], // adc dword [esi], 1
  [0x83, 0x1e, 0xff], // sbb dword [esi], -1
  [0x81, 0xd3, ...d(0x80000000)], // adc ebx, 0x80000000
  [0x81, 0x1e, ...d(0x7fffffff)], // sbb dword [esi], 0x7fffffff
  [0x80, 0xd3, 0xff], // adc bl, 0xff
  [0x80, 0x1e, 0x80], // sbb byte [esi], 0x80
  [0x11, 0xcb], // adc ebx, ecx
  [0x19, 0xc0], // sbb eax, eax
  [0x1b, 0xd9], // sbb ebx, ecx
  [0x11, 0x0e], // adc [esi], ecx
  [0x13, 0x0e], // adc ecx, [esi]
  [0x19, 0x0e], // sbb [esi], ecx
  [0x1b, 0x0e], // sbb ecx, [esi]
  [0x10, 0xcb], // adc bl, cl
  [0x18, 0x0e], // sbb [esi], cl
  [0x15, ...d(0xffffffff)], // adc eax, -1
  [0x66, 0x83, 0xd3, 0x80], // adc bx, -128
  [0x66, 0x81, 0xdb, 0xff, 0x7f], // sbb bx, 0x7fff
  [0xd0, 0xe3], // shl bl, 1
  [0xd0, 0xeb], // shr bl, 1
  [0xd0, 0xfb], // sar bl, 1
  [0xd0, 0x26], // shl byte [esi], 1
  [0xd0, 0x2e], // shr byte [esi], 1
  [0xd0, 0x3e], // sar byte [esi], 1
  [0x66, 0xff, 0xc3], // inc bx
  [0x66, 0xff, 0x06], // inc word [esi]
  [0x66, 0xc7, 0xc3, 0x34, 0x92], // mov bx, 0x9234
  [0x66, 0xc7, 0x06, 0xff, 0x80], // mov word [esi], 0x80ff
  [0xa8, 0x81], // test al, 0x81
  [0xa9, ...d(0x80000080)], // test eax, 0x80000080
  [0x99], // cdq
];

/** What leaves each kind of record before the form (in the same block). */
const BEFORE: number[][] = [
  [],
  [0x01, 0xc8], // add eax, ecx
  [0x29, 0xc8], // sub eax, ecx
  [0x39, 0xc8], // cmp eax, ecx
  [0x21, 0xc8], // and eax, ecx
  [0x42], // inc edx
  [0x4a], // dec edx
  [0xd1, 0xe1], // shl ecx, 1
  [0x11, 0xc8], // adc eax, ecx (its record's kind known only at run time)
  [0x00, 0xc8], // add al, cl
  [0x66, 0x83, 0xe8, 0x01], // sub ax, 1
];

/** After the form: nothing, or an adc reading its CF. */
const AFTER: number[][] = [[], [0x11, 0xff]];

const EDGES = [
  0, 1, 0x7f, 0x80, 0xff, 0x7fff, 0x8000, 0xffff, 0x7fffffff, 0x80000000, 0xffffffff, 0xfffffffe,
];

function program(form: number[], before: number[], after: number[]): number[] {
  return [...before, ...form, ...after, 0xf4];
}

/** Runs code from a state drawn from seed on cpu (reused: its code page invalidated). */
function run(cpu: Cpu, code: number[], seed: number): { state: CpuState; data: number[] } {
  const p = prng(seed);
  const r = () => (p() * 4294967296) >>> 0;
  const pick = () => (r() & 1 ? EDGES[r() % EDGES.length] : r());
  cpu.mem8.fill(0, CODE, CODE + 0x1000);
  cpu.mem8.set(code, CODE);
  cpu.invalidateCode(CODE, 0x1000);
  for (let a = DATA; a < DATA + 0x2000; a += 4) {
    const v = pick();
    cpu.mem8[a] = v & 0xff;
    cpu.mem8[a + 1] = (v >>> 8) & 0xff;
    cpu.mem8[a + 2] = (v >>> 16) & 0xff;
    cpu.mem8[a + 3] = v >>> 24;
  }
  cpu.resetFlat32();
  cpu.flushTlb();
  // Mostly the TLB filled (each access can take the inline path), else every access misses.
  if (r() % 4 !== 0) for (const a of [DATA, DATA + 0x1000]) cpu.wr8(DS, a, cpu.rd8(DS, a));
  for (let i = 0; i < 8; i++) cpu.regs[i] = pick();
  // The memory operand inside its page, or crossing the page's end (the slow path).
  cpu.regs[ESI] = DATA + [0x10, 0xffd, 0xffe, 0xfff][r() & 3];
  cpu.regs[ESP] = 0x8000;
  if (r() & 1) cpu.regs[EBX] = cpu.regs[EBX] & 0xff;
  cpu.eip = CODE;
  cpu.setFlags(0x2 | (r() & 0x8d5));
  const state = runSlice(cpu, 100);
  return { state, data: Array.from(cpu.mem8.subarray(DATA, DATA + 0x2000)) };
}

test("XenLinux's inline forms in wasm blocks, after every kind of flag record, as the interpreter", () => {
  const cpus = new Map<Variant, Cpu>();
  for (const v of ["interp", "js", "wasm", "chain"] as const) {
    const cpu = variantCpu(v, 1 << 20);
    cpu.blockThreshold = v === "interp" ? 0 : 1;
    cpu.regionThreshold = v === "interp" ? 0 : 1;
    cpus.set(v, cpu);
  }
  let cases = 0;
  for (const form of FORMS)
    for (const before of BEFORE)
      for (const after of AFTER) {
        const code = program(form, before, after);
        const hex = code.map((x) => x.toString(16).padStart(2, "0")).join(" ");
        for (let i = 1; i <= 6; i++) {
          // Other states for each code.
          const seed = i * 7919 + cases;
          const want = run(cpus.get("interp") as Cpu, code, seed);
          assert.equal(want.state.exit, Exit.Halt, hex);
          for (const v of ["js", "wasm", "chain"] as const) {
            const cpu = cpus.get(v) as Cpu;
            const w = wasmBackend(cpu);
            const runs = w?.runs ?? 0;
            const handlers = w?.handlers ?? 0;
            const got = run(cpu, code, seed);
            assert.deepEqual(got.state, want.state, `${v}: ${hex}, seed ${seed}`);
            assert.deepEqual(got.data, want.data, `${v}: memory, ${hex}, seed ${seed}`);
            if (v === "js" || w === null) continue;
            assert.ok(w.runs > runs, `${v}: ${hex} ran a wasm block`);
            assert.equal(w.handlers, handlers, `${v}: ${hex} called no handler`);
          }
          cases++;
        }
      }
  assert.equal(cases, FORMS.length * BEFORE.length * AFTER.length * 6);
});
