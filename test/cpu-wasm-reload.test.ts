/**
 * A wasm block's locals read again after a slow path's import call (gen.ts Gen.reload): the
 * registers it caches, its count and the flag record come back from memory and the io words,
 * so that none is live across the call. A hot loop whose every memory access crosses a page
 * end (the JS path, each pass) between a flag-setting instruction and the adc/sbb reading its
 * carry, and between a register's write and its next read: a read, a write, a read-modify-
 * write (whose commit's record is not in the io words yet: only the registers come back), a
 * push and pop on a stack across a page end. Interpreted, JS blocks, wasm blocks and the
 * chain, slice by slice, memory compared.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Cpu } from "../src/cpu/cpu.js";
import { EAX, EBX, EDI, EDX, ESI, ESP, Exit } from "../src/cpu/regs.js";
import { wasmBackend } from "../src/cpu/wasm/backend.js";
import { le32 as d } from "./helpers/bytes.js";
import { type CpuState, runSlice, type Variant, variantCpu } from "./helpers/cpu-state.js";

const V = 0x5000;
/** Each read and write crosses a page end. */
const SRC = 0x10ffe;
const DST = 0x12ffd;
const STACK = 0x14002;
const N = 3000;

// 0 mov ecx,N
// 5 loop: add eax,ecx; mov edx,[esi]; adc ebx,eax; add edx,ecx; mov [edi],edx; sbb eax,edx
// 17 add [esi],ecx; adc eax,ebx; push eax; pop edx; adc edx,ecx; xor ebx,edx; rol ebx,1
// 29 dec ecx; jnz loop; hlt
const CODE = [
  [0xb9, ...d(N)],
  [0x01, 0xc8],
  [0x8b, 0x16],
  [0x11, 0xc3],
  [0x01, 0xca],
  [0x89, 0x17],
  [0x19, 0xd0],
  [0x01, 0x0e],
  [0x11, 0xd8],
  [0x50],
  [0x5a],
  [0x11, 0xca],
  [0x31, 0xd3],
  [0xd1, 0xc3],
  [0x49],
  [0x75, (5 - 32) & 0xff],
  [0xf4],
].flat();

function machine(variant: Variant): Cpu {
  const cpu = variantCpu(variant, 1 << 20, 2);
  cpu.mem8.set(CODE, V);
  for (let i = 0; i < 16; i++) cpu.mem8[SRC - 8 + i] = (i * 0x3b + 0x91) & 0xff;
  cpu.eip = V;
  cpu.regs[ESP] = STACK;
  cpu.regs[ESI] = SRC;
  cpu.regs[EDI] = DST;
  cpu.regs[EAX] = 0x89abcdef | 0;
  cpu.regs[EBX] = 0x12345678;
  return cpu;
}

function trace(variant: Variant, slice: number, max: number) {
  const cpu = machine(variant);
  const steps: CpuState[] = [];
  for (let i = 0; i < max; i++) {
    const s = runSlice(cpu, slice);
    steps.push(s);
    if (s.exit !== Exit.Budget) break;
  }
  return { cpu, steps };
}

describe("a wasm block's locals after a slow path's call", () => {
  for (const slice of [7, 41, 1000, 10_000_000])
    it(`page-crossing accesses between flags and their readers, in slices of ${slice}`, () => {
      const a = trace("interp", slice, 20_000);
      assert.equal(a.steps[a.steps.length - 1].exit, Exit.Halt);
      assert.equal(a.cpu.retiredTotal, 1 + 15 * N + 1);
      for (const variant of ["js", "wasm", "chain"] as const) {
        // Bounded by the interpreter's slices: a wrong run fails rather than runs on.
        const b = trace(variant, slice, a.steps.length + 5);
        assert.deepEqual(b.steps, a.steps, variant);
        assert.deepEqual(b.cpu.mem8.slice(0x10000, 0x15000), a.cpu.mem8.slice(0x10000, 0x15000), variant);
        if (variant !== "js" && slice >= 1000) {
          // The loop ran as a wasm block, its accesses through the JS path.
          const w = wasmBackend(b.cpu);
          assert.ok((w?.runs ?? 0) > 0, "wasm blocks ran");
        }
      }
      // The loop's result depends on the carries read after each slow path.
      assert.notEqual(a.cpu.regs[EDX], 0);
    });
});
