/**
 * rdtsc in compiled blocks. The TSC counts retired instructions, and a handler called from a
 * block sees `retired` as at the block's entry (plus the passes it finished), so rdtsc may
 * only be a block's first instruction (blocks.ts); before, it ended every block and a delay
 * loop (XenLinux's boot: rep nop; rdtsc; sub; cmp; jb) went back to the run loop each pass.
 * Loops that store every TSC they read run interpreted, in JS blocks and in wasm blocks (with
 * regions and chains, in slices ending anywhere): states, stored values and retired counts
 * are the interpreter's, and the loops run in blocks.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Cpu } from "../src/cpu/cpu.js";
import { EAX, EDX, ESP, Exit } from "../src/cpu/regs.js";
import type { Backend } from "../src/cpu/wasm/arena.js";
import { wasmBackend } from "../src/cpu/wasm/backend.js";
import { allocRam } from "../src/machine/ram.js";
import { le32 as d } from "./helpers/bytes.js";
import { type CpuState, runSlices } from "./helpers/cpu-state.js";

const CODE = 0x1000;
const DATA = 0x4000;
const N = 600;

/** The TSC's halves after each pass go to [edi], [edi+4]; the loop counter is ecx. */
const STORE = [
  [0x89, 0x07], // mov [edi], eax
  [0x89, 0x57, 0x04], // mov [edi+4], edx
  [0x83, 0xc7, 0x08], // add edi, 8
  [0x49], // dec ecx
];
const HEAD = [
  [0xb9, ...d(N)], // mov ecx, N
  [0xbf, ...d(DATA)], // mov edi, DATA
];

/** rep nop; add ebx, 3; rdtsc; (store); jnz back to the rep nop: rdtsc in the loop's middle. */
function middle(): number[] {
  const body = [[0xf3, 0x90], [0x83, 0xc3, 0x03], [0x0f, 0x31], ...STORE].flat();
  return [...HEAD.flat(), ...body, 0x75, -(body.length + 2) & 0xff, 0xf4];
}

/** rdtsc; (store); jnz back to the rdtsc: a block that loops to its own start. */
function head(): number[] {
  const body = [[0x0f, 0x31], ...STORE].flat();
  return [...HEAD.flat(), ...body, 0x75, -(body.length + 2) & 0xff, 0xf4];
}

interface Run {
  states: CpuState[];
  tsc: Uint8Array;
  blockInsns: number;
  /** Entries from the run loop into a block or region. */
  entries: number;
  wasmRuns: number;
}

function run(code: number[], backend: Backend | null, slice: number, regions: boolean, offset: number): Run {
  const cpu = new Cpu(backend === "wasm" ? allocRam(1 << 20) : new Uint8Array(1 << 20));
  if (backend !== null) cpu.backend = backend;
  const wasm = backend === "wasm" ? wasmBackend(cpu) : null;
  if (wasm !== null) wasm.batch = 1;
  cpu.resetFlat32();
  cpu.mem8.set(code, CODE);
  cpu.eip = CODE;
  cpu.regs[ESP] = 0x8000;
  cpu.tscOffset = offset;
  cpu.blockThreshold = backend === null ? 0 : 2;
  cpu.regionThreshold = regions ? 2 : 0;
  const states = runSlices(cpu, slice, 100_000);
  return {
    states,
    tsc: cpu.mem8.slice(DATA, DATA + N * 8),
    blockInsns: cpu.blockInsnsTotal,
    entries: cpu.regionRuns + cpu.blockRuns,
    wasmRuns: wasm?.runs ?? 0,
  };
}

describe("rdtsc in compiled blocks", () => {
  // Offsets: the low half wraps within the loop (EDX carries), and a TSC below zero (wrmsr).
  const offsets = [0, 0xffffff00, -(2 ** 33) + 0x80];
  for (const [name, code] of [
    ["in a loop's middle", middle()],
    ["at the head of a block that loops to itself", head()],
  ] as const) {
    for (const backend of ["js", "wasm"] as const) {
      for (const regions of [false, true]) {
        for (const slice of [7, 13, 100_000]) {
          it(`${name}: ${backend} blocks${regions ? " in regions" : ""}, slices of ${slice}`, () => {
            for (const offset of offsets) {
              const a = run(code, null, slice, regions, offset);
              const b = run(code, backend, slice, regions, offset);
              assert.equal(a.states[a.states.length - 1].exit, Exit.Halt);
              assert.deepEqual(b.states, a.states, `offset ${offset}`);
              assert.deepEqual(b.tsc, a.tsc, `stored TSCs, offset ${offset}`);
              if (slice < 100) continue;
              // The loop runs in blocks, rdtsc included (before: every rdtsc in the run loop).
              const total = a.states[a.states.length - 1].retired;
              assert.ok(b.blockInsns > total * 0.95, `in blocks: ${b.blockInsns} of ${total}`);
              if (regions) assert.ok(b.entries < N / 10, `run-loop entries: ${b.entries}`);
              // (A block that loops to itself runs all its passes in one call.)
              if (backend === "wasm") assert.ok(b.wasmRuns > 0, "wasm blocks ran");
            }
          });
        }
      }
    }
  }

  it("splits the TSC into EDX:EAX as the 64-bit value's halves", () => {
    const cpu = new Cpu(new Uint8Array(1 << 16));
    cpu.resetFlat32();
    cpu.mem8.set([0x0f, 0x31, 0xf4], CODE);
    for (const t of [
      0,
      1,
      0x7fffffff,
      0x80000000,
      0xffffffff,
      2 ** 32,
      2 ** 40 + 12345,
      2 ** 53 - 1,
      -1,
      -(2 ** 33) - 7,
    ]) {
      cpu.eip = CODE;
      cpu.tscNow = () => t;
      cpu.run(1);
      const v = BigInt(t);
      assert.equal(cpu.regs[EAX], Number(BigInt.asIntN(32, v)), `EAX for ${t}`);
      assert.equal(cpu.regs[EDX], Number(BigInt.asIntN(32, v >> 32n)), `EDX for ${t}`);
      assert.equal(cpu.readTsc(), v);
    }
  });
});
