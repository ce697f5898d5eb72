/**
 * The registers a wasm block keeps in locals (gen.ts Gen.valid: a write-through cache, memory
 * always holding the register): a register written other than by a 32-bit store through the
 * cache must be read from memory again. A hot loop reads EAX inline after a handler wrote it
 * (shrd, through the call import), after an 8-bit and a 16-bit write (mov al, bl; mov ax, bx)
 * and ECX after a write of CH; the loop's sum, and the state after every slice, must be the
 * interpreter's, with JS blocks and with wasm blocks with the chain off and on, in slices of
 * 41, 1000 and whole. The loop reads EAX and ECX at its head, and the writes come last in the
 * loop too: the next pass must not read a local the pass before left behind.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Cpu } from "../src/cpu/cpu.js";
import { Exit } from "../src/cpu/regs.js";
import { wasmBackend } from "../src/cpu/wasm/backend.js";
import { le32 as d } from "./helpers/bytes.js";
import { runSlices, type Variant, variantCpu } from "./helpers/cpu-state.js";

const CODE = 0x5000;

/** What writes EAX (or ECX) between two inline reads of it, each added to ESI. */
const WRITES: Record<string, number[]> = {
  // shrd eax, edi, 3 (a handler); add esi, eax
  "a handler (shrd eax, edi, 3)": [0x0f, 0xac, 0xf8, 3, 0x01, 0xc6],
  // mov al, bl; add esi, eax
  "an 8-bit write (mov al, bl)": [0x88, 0xd8, 0x01, 0xc6],
  // mov ax, bx; add esi, eax
  "a 16-bit write (mov ax, bx)": [0x66, 0x89, 0xd8, 0x01, 0xc6],
  // mov ecx, eax; add esi, ecx; mov ch, bh; add esi, ecx
  "a write of CH (mov ch, bh)": [0x89, 0xc1, 0x01, 0xce, 0x88, 0xfd, 0x01, 0xce],
  // The same writes last in the loop: the next pass's head reads what they wrote.
  "a handler, then the loop's head": [0x0f, 0xac, 0xf8, 3],
  "an 8-bit write, then the loop's head": [0x88, 0xd8],
  "a write of CH, then the loop's head": [0x88, 0xfd],
};

/**
 * mov edi, 3000; loop: add esi, eax; add esi, ecx (read at the loop's head); imul ebx, edi,
 * 0x9e3779b1; mov eax, edi; add esi, eax (EAX now in its local); <write>; dec edi; jnz loop;
 * hlt.
 */
function program(write: number[]): number[] {
  const head = [0x01, 0xc6, 0x01, 0xce];
  const body = [head, [0x69, 0xdf, ...d(0x9e3779b1)], [0x89, 0xf8], [0x01, 0xc6], write, [0x4f]].flat();
  return [[0xbf, ...d(3000)], body, [0x75, -(body.length + 2) & 0xff], [0xf4]].flat();
}

function machine(write: number[], variant: Variant): Cpu {
  const cpu = variantCpu(variant, 1 << 20, 2);
  cpu.mem8.set(program(write), CODE);
  cpu.eip = CODE;
  return cpu;
}

describe("registers held in a wasm block's locals", () => {
  const cases = Object.entries(WRITES).flatMap(([name, write]) =>
    [41, 1000, 10_000_000].map((slice) => ({ name, write, slice })),
  );
  for (const { name, write, slice } of cases)
    it(`read after ${name}, in slices of ${slice}: as the interpreter`, () => {
      const want = runSlices(machine(write, "interp"), slice, 100_000);
      assert.equal(want[want.length - 1].exit, Exit.Halt);
      for (const variant of ["js", "wasm", "chain"] as const) {
        const cpu = machine(write, variant);
        assert.deepEqual(runSlices(cpu, slice, 100_000), want, variant);
        if (variant !== "js") assert.ok((wasmBackend(cpu)?.runs ?? 0) > 0, `${variant}: wasm block runs`);
      }
    });
});
