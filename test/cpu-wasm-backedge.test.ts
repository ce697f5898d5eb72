/**
 * A looping wasm block's flag record at its back edge: the loop's head finds the record the
 * last pass left (gen.ts blockBody writes it to the io words at the back edge; a record kept
 * in locals across the back edge, its kind in a local too, was tried: V8 spilled them). Hot
 * loops read the previous pass's record at their head before any instruction sets one
 * (setcc, adc, inc's kept CF, a jb leaving the block to code that reads the flags and jumps
 * back, a div whose #DE on a later pass shows the flags), with the back edge's record of each
 * kind: dec (CF in the flags word), sub, add, logic (test) and a shift's (res). The state
 * after every slice must be the interpreter's, with JS blocks and with wasm blocks with the
 * chain off and on, in slices of 41, 1000 and whole.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Cpu } from "../src/cpu/cpu.js";
import { Exit } from "../src/cpu/regs.js";
import { wasmBackend } from "../src/cpu/wasm/backend.js";
import { le32 as d } from "./helpers/bytes.js";
import { runSlices, type Variant, variantCpu } from "./helpers/cpu-state.js";

const CODE = 0x5000;

/** The loop's tail: edi - 1, and a jnz back on the record it leaves (ZF: edi is not 0). */
const TAILS: Record<string, number[]> = {
  "dec edi (inc/dec, CF kept)": [0x4f],
  "sub edi, 1 (sub)": [0x83, 0xef, 0x01],
  "add edi, -1 (add)": [0x83, 0xc7, 0xff],
  "lea edi, [edi-1]; test edi, edi (logic)": [0x8d, 0x7f, 0xff, 0x85, 0xff],
  "lea edi, [edi-1]; mov ecx, edi; shl ecx, 1 (res)": [0x8d, 0x7f, 0xff, 0x89, 0xf9, 0xd1, 0xe1],
};

/** setb al; setz cl; sets dl; each zero-extended and added to esi. */
const READS = [
  [0x92, 0x94, 0x98].flatMap((cc, r) => [0x0f, cc, 0xc0 | [0, 1, 2][r]]),
  [0, 1, 2].flatMap((r) => [0x0f, 0xb6, 0xc0 | (r << 3) | r, 0x01, 0xc6 | (r << 3)]),
].flat();

/** What the loop's head does first, reading the record the last pass's back edge left. */
const HEADS: Record<string, number[]> = {
  "setcc at the head": READS,
  "adc esi, 0 at the head": [0x83, 0xd6, 0x00],
  "inc ebp at the head (CF kept), then setb": [0x45, ...READS],
  // mov edx, ebx; mov eax, edi; div ebp: #DE once the last pass's imul left ebx >= ebp.
  "div at the head, #DE on a later pass": [0x89, 0xda, 0x89, 0xf8, 0xf7, 0xf5],
};

/** mov edi, 3000; xor esi, esi; mov ebp, 0xf0000000. */
const START = [
  [0xbf, ...d(3000)],
  [0x31, 0xf6],
  [0xbd, ...d(0xf0000000)],
].flat();

/**
 * START; loop: <head>; imul ebx, edi, 0x9e3779b1; cmp ebx, 0x80000000;
 * <tail>; jnz loop; hlt. With `leave`, the head is jb out (forward, past the hlt: the block
 * leaves with the last pass's record) and out: reads the flags and jmp to the head's next
 * instruction.
 */
function program(head: number[], tail: number[], leave: boolean): number[] {
  const rest = [[0x69, 0xdf, ...d(0x9e3779b1)], [0x81, 0xfb, ...d(0x80000000)], tail].flat();
  if (!leave) {
    const body = [head, rest].flat();
    return [START, body, [0x75, -(body.length + 2) & 0xff], [0xf4]].flat();
  }
  // loop: jb out; next: <rest>; jnz loop; hlt; out: <head>; jmp next.
  const body = [[0x72, rest.length + 3], rest].flat();
  const out = [head, [0xe9, ...d(-(head.length + 5 + rest.length + 3))]].flat();
  return [START, body, [0x75, -(body.length + 2) & 0xff], [0xf4], out].flat();
}

function machine(code: number[], variant: Variant): Cpu {
  const cpu = variantCpu(variant, 1 << 20);
  cpu.mem8.set(code, CODE);
  cpu.eip = CODE;
  const on = variant !== "interp";
  cpu.blockThreshold = on ? 2 : 0;
  cpu.regionThreshold = on ? 2 : 0;
  return cpu;
}

describe("a looping block's flag record at its back edge", () => {
  const cases: [string, number[]][] = [];
  for (const [t, tail] of Object.entries(TAILS)) {
    for (const [h, head] of Object.entries(HEADS)) cases.push([`${h}, ${t}`, program(head, tail, false)]);
    cases.push([`jb leaving the block at the head, ${t}`, program(READS, tail, true)]);
  }
  for (const [name, code] of cases)
    for (const slice of [41, 1000, 10_000_000]) {
      it(`${name}, in slices of ${slice}: as the interpreter`, () => {
        const a = runSlices(machine(code, "interp"), slice, 100_000);
        const last = a[a.length - 1];
        if (name.startsWith("div"))
          assert.ok(last.exit === Exit.Exception && last.vector === 0 && last.retired > 100);
        else assert.equal(last.exit, Exit.Halt);
        for (const variant of ["js", "wasm", "chain"] as const) {
          const cpu = machine(code, variant);
          assert.deepEqual(runSlices(cpu, slice, 100_000), a, variant);
          if (variant !== "js") assert.ok((wasmBackend(cpu)?.runs ?? 0) > 0, `${variant}: wasm block runs`);
        }
      });
    }
});
