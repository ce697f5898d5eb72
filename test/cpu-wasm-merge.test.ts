/**
 * The flag record where a forward jcc's two paths meet in a wasm block (gen.ts closeSkips):
 * it stays in the block's locals only when both paths left a record of one kind and size.
 * Hot loops branch over a flag-setting instruction and read the flags right after the label
 * (setcc of the sign, less, below, zero conditions), with the two paths' records of the same
 * kind and size, the same kind in other sizes (32 against 8 and 16 bits, where the sign bit
 * differs), and other kinds (sub against logic, add, inc); the loop's sum of the conditions,
 * and the state after every slice, must be the interpreter's, with JS blocks and with wasm
 * blocks with the chain off and on, in slices of 41, 1000 and whole.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Cpu } from "../src/cpu/cpu.js";
import { Exit } from "../src/cpu/regs.js";
import { wasmBackend } from "../src/cpu/wasm/backend.js";
import { le32 as d } from "./helpers/bytes.js";
import { runSlices, type Variant, variantCpu } from "./helpers/cpu-state.js";

const CODE = 0x5000;

/** The instruction the jb skips (the taken path keeps cmp ebx, edx's record: sub, 32 bits). */
const SKIPPED: Record<string, number[]> = {
  "cmp ebx, edx again (sub, 32)": [0x39, 0xd3],
  "cmp bl, dl (sub, 8)": [0x38, 0xd3],
  "cmp bx, dx (sub, 16)": [0x66, 0x39, 0xd3],
  "test ebx, edx (logic, 32)": [0x85, 0xd3],
  "add ebx, edx (add, 32)": [0x01, 0xd3],
  "inc ebx (inc, 32)": [0x43],
  "sub bl, dl (sub, 8)": [0x28, 0xd3],
};

/**
 * mov edi, 3000; loop: imul ebx, edi, 0x9e3779b1; mov edx, edi; shl edx, 21; cmp ebx, edx;
 * jb over; <skipped>; over: sets al; setl cl; setb bl; setz dl (all four read the record
 * where the paths met); movzx each and add it to esi; dec edi; jnz loop; hlt.
 */
function program(skipped: number[]): number[] {
  // setcc al, cl, bl, dl; then each zero-extended and added to esi.
  const reads = [
    [0x98, 0x9c, 0x92, 0x94].flatMap((cc, r) => [0x0f, cc, 0xc0 | [0, 1, 3, 2][r]]),
    [0, 1, 3, 2].flatMap((r) => [0x0f, 0xb6, 0xc0 | (r << 3) | r, 0x01, 0xc6 | (r << 3)]),
  ].flat();
  const body = [
    [0x69, 0xdf, ...d(0x9e3779b1)],
    [0x89, 0xfa],
    [0xc1, 0xe2, 21],
    [0x39, 0xd3],
    [0x72, skipped.length],
    skipped,
    reads,
    [0x4f],
  ].flat();
  return [[0xbf, ...d(3000)], body, [0x75, -(body.length + 2) & 0xff], [0xf4]].flat();
}

function machine(skipped: number[], variant: Variant): Cpu {
  const cpu = variantCpu(variant, 1 << 20);
  cpu.mem8.set(program(skipped), CODE);
  cpu.eip = CODE;
  const on = variant !== "interp";
  cpu.blockThreshold = on ? 2 : 0;
  cpu.regionThreshold = on ? 2 : 0;
  return cpu;
}

describe("the flag record where a forward jcc's paths meet", () => {
  for (const [name, skipped] of Object.entries(SKIPPED))
    for (const slice of [41, 1000, 10_000_000]) {
      it(`${name}, in slices of ${slice}: as the interpreter`, () => {
        const a = runSlices(machine(skipped, "interp"), slice, 100_000);
        assert.equal(a[a.length - 1].exit, Exit.Halt);
        for (const variant of ["js", "wasm", "chain"] as const) {
          const cpu = machine(skipped, variant);
          assert.deepEqual(runSlices(cpu, slice, 100_000), a, variant);
          if (variant !== "js") assert.ok((wasmBackend(cpu)?.runs ?? 0) > 0, `${variant}: wasm block runs`);
        }
      });
    }
});
