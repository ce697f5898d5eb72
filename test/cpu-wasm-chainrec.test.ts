/**
 * How JS finds the block a chain of wasm blocks runs (backend.ts running: the id the chain
 * writes to IO_BLK before each block, its start in IO_EIP), for a handler's sites and a
 * fault's unwinding, also after the chain crossed into another page (gen.ts chainBody's hop).
 * A hot loop on one page calls into the next page, whose block calls a handler (shrd), reads
 * a page not present (#PF, recorded by the import and returned; the host maps the page and
 * resumes) and divides by what it read, which is 0 once (#DE, thrown by the fault import):
 * interpreted, JS blocks, wasm blocks with the chain off and on, slice by slice, memory compared.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Cpu } from "../src/cpu/cpu.js";
import { CR0_PG, ECX, EDI, ESI, ESP, Exit } from "../src/cpu/regs.js";
import { wasmBackend } from "../src/cpu/wasm/backend.js";
import { le32 as d } from "./helpers/bytes.js";
import { traceMappingFaults, type Variant, variantCpu } from "./helpers/cpu-state.js";

const PD = 0x80000;
const PT = 0x81000;
/** The caller's page and the callee's (identity-mapped). */
const V = 0x5000;
const V2 = 0x6000;
/** Read by the callee at EDI + 4 * ECX: pages 0x21 to 0x25 not present at the start. */
const Q = 0x20000;
const DATA = 0x10000;
const N = 6000;
/** ECX of the pass whose divisor is 0. */
const DE_AT = 1000;

// V: 0 mov ecx,N
// loop (5): mov edx,[esi]; call V2; add esi,4; dec ecx; jnz loop; hlt
// V2: add eax,edx; shrd eax,edx,3 (a handler); mov ebx,[edi+ecx*4]; xor edx,edx; div ebx;
//     xor eax,edx; ret
function machine(variant: Variant): Cpu {
  const cpu = variantCpu(variant, 1 << 20, 2);
  const m = new DataView(cpu.mem8.buffer, cpu.mem8.byteOffset);
  m.setUint32(PD, PT | 3, true);
  for (let p = 0; p < 256; p++) m.setUint32(PT + p * 4, (p << 12) | (p > 0x20 && p <= 0x25 ? 2 : 3), true);
  cpu.mem8.set(
    [
      [0xb9, ...d(N)],
      [0x8b, 0x16],
      [0xe8, ...d(V2 - (V + 12))],
      [0x83, 0xc6, 0x04],
      [0x49],
      [0x75, (5 - 18) & 0xff],
      [0xf4],
    ].flat(),
    V,
  );
  cpu.mem8.set(
    [0x01, 0xd0, 0x0f, 0xac, 0xd0, 3, 0x8b, 0x1c, 0x8f, 0x31, 0xd2, 0xf7, 0xf3, 0x31, 0xd0, 0xc3],
    V2,
  );
  for (let i = 0; i < 4 * N; i++) cpu.mem8[DATA + i] = (i * 37 + (i >> 8)) & 0xff;
  for (let i = 0; i < 4 * N + 4; i++) cpu.mem8[Q + i] = (i * 11 + (i >> 9)) | 1;
  // The divisor at ECX = DE_AT.
  cpu.mem8.fill(0, Q + 4 * DE_AT, Q + 4 * DE_AT + 4);
  cpu.setCr3(PD);
  cpu.setCr0(cpu.cr0 | CR0_PG);
  cpu.eip = V;
  cpu.regs[ESP] = 0x9000;
  cpu.regs[ESI] = DATA;
  cpu.regs[EDI] = Q;
  return cpu;
}

describe("the block a chain runs, for its handlers and faults", () => {
  for (const slice of [7, 50, 1000, 10_000_000])
    it(`a handler, #PFs and a #DE in a block across a page crossing, in slices of ${slice}`, () => {
      const a = traceMappingFaults(machine("interp"), slice, PT);
      const last = a.steps[a.steps.length - 1];
      assert.equal(last.exit, Exit.Exception);
      assert.equal(last.vector, 0);
      assert.equal(last.eip, V2 + 11);
      assert.equal(last.regs[ECX], DE_AT);
      assert.equal(a.faults, 5);
      for (const variant of ["js", "wasm", "chain"] as const) {
        const b = traceMappingFaults(machine(variant), slice, PT);
        assert.deepEqual(b.steps, a.steps, variant);
        assert.deepEqual(b.cpu.mem8.slice(0, 0x90000), a.cpu.mem8.slice(0, 0x90000), variant);
        const w = wasmBackend(b.cpu);
        if (variant === "chain" && slice >= 1000) {
          // The callee's block ran inside chains after a crossing, its handler and faults too.
          assert.ok((w?.chainHops ?? 0) > N, `${w?.chainHops} crossings inside chains`);
          assert.ok((w?.calls ?? 0) > N - DE_AT - 100, `${w?.calls} handler calls`);
        }
      }
    });
});
