/**
 * Regions (src/cpu/blocks.ts compileRegion): a code page's compiled blocks linked so that a
 * branch from one to another goes on without the run loop. They must run exactly as the
 * interpreter (state after every run() slice), and they must actually run: the counters pin
 * that a loop's iterations pass from block to block inside a region, so a change that falls
 * back to returning to the run loop at every branch fails here.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { setInterpretPending } from "../src/cpu/blocks.js";
import { Cpu } from "../src/cpu/cpu.js";
import { DS, EAX, ECX, EDI, EDX, ESI, ESP, Exit } from "../src/cpu/regs.js";
import type { Backend } from "../src/cpu/wasm/arena.js";
import { wasmBackend } from "../src/cpu/wasm/backend.js";
import { allocRam } from "../src/machine/ram.js";
import { le32 as d } from "./helpers/bytes.js";
import { type CpuState, runSlice, runSlices } from "./helpers/cpu-state.js";

const CODE = 0x1000;
const DATA = 0x3000;

/** The blocks' back end; "wasm-regions": wasm blocks chained inside wasm in regions (WasmBackend.chain). */
type Variant = Backend | "wasm-regions";

/**
 * linked: blocks and regions compiled at the second run; else the interpreter alone.
 * backend: the blocks' (wasm: each block wasm from its first run).
 */
function machine(code: number[], linked: boolean, backend: Variant = "js"): Cpu {
  const cpu = new Cpu(backend === "js" ? new Uint8Array(1 << 20) : allocRam(1 << 20));
  cpu.backend = backend === "js" ? "js" : "wasm";
  const wasm = wasmBackend(cpu);
  if (wasm !== null) {
    wasm.batch = 1;
    wasm.chain = backend === "wasm-regions";
  }
  cpu.resetFlat32();
  cpu.mem8.set(code, CODE);
  for (let i = 0; i < 0x20000; i++) cpu.mem8[DATA + i] = (i * 37 + (i >> 8)) & 0xff;
  cpu.eip = CODE;
  cpu.regs[ESP] = 0x8000;
  cpu.blockThreshold = linked ? 2 : 0;
  cpu.regionThreshold = linked ? 2 : 0;
  return cpu;
}

function trace(
  code: number[],
  linked: boolean,
  slice: number,
  setup: (cpu: Cpu) => void,
  backend: Variant = "js",
): { steps: CpuState[]; cpu: Cpu } {
  const cpu = machine(code, linked, backend);
  setup(cpu);
  return { steps: runSlices(cpu, slice, 100000), cpu };
}

const ITERATIONS = 20000;
// A block its wasm bailed out of (a segment no longer flat) hands the run back to the wrapper
// when queueAt comes: the fault cases below count on that at the 32nd run, as they were written.
setInterpretPending(true, undefined, 32);

// An if with an else: a block goes on past a taken jcc only to an instruction further on in
// itself (blocks.ts), and follows the jmp over the else, so the else is a block of its own.
// 0x1000 mov ecx,N; xor eax,eax; mov esi,DATA
// loop (12): mov edx,[esi]; test cl,1; jz even; add eax,edx; call f; jmp join
// even (28): sub eax,edx
// join (30): mov [esi+4],eax; add esi,4; dec ecx; jnz loop; hlt
// f (40):    xor eax,ecx; ret
const LOOP = [
  [0xb9, ...d(ITERATIONS)],
  [0x31, 0xc0],
  [0xbe, ...d(DATA)],
  [0x8b, 0x16],
  [0xf6, 0xc1, 0x01],
  [0x74, 28 - 19],
  [0x01, 0xd0],
  [0xe8, ...d(40 - 26)],
  [0xeb, 30 - 28],
  [0x29, 0xd0],
  [0x89, 0x46, 0x04],
  [0x83, 0xc6, 0x04],
  [0x49],
  [0x75, (12 - 39) & 0xff],
  [0xf4],
  [0x31, 0xc8],
  [0xc3],
].flat();

/** Blocks the wasm back end ran on cpu (0 for a JS one). */
function wasmRuns(cpu: Cpu): number {
  return cpu.backend === "wasm" ? (wasmBackend(cpu)?.runs ?? 0) : 0;
}

for (const backend of ["js", "wasm", "wasm-regions"] as const)
  describe(`regions (${backend} blocks)`, () => {
    for (const slice of [3, 7, 50, 1000, 10_000_000]) {
      it(`run a loop with an if and a call exactly as the interpreter, in slices of ${slice}`, () => {
        const a = trace(LOOP, false, slice, () => {});
        const b = trace(LOOP, true, slice, () => {}, backend);
        assert.equal(a.steps[a.steps.length - 1].exit, Exit.Halt);
        assert.deepEqual(b.steps, a.steps);
        assert.deepEqual(
          b.cpu.mem8.subarray(DATA, DATA + 4 * ITERATIONS + 8),
          a.cpu.mem8.subarray(DATA, DATA + 4 * ITERATIONS + 8),
        );
        assert.equal(a.cpu.regionBlocks, 0);
        if (slice >= 1000) {
          // Every other iteration runs two blocks (the else and, from its jnz, the loop's
          // head, which the odd iterations go round inside), nearly all of them reached
          // inside a region; the run loop enters a region or a block only a few times per
          // slice.
          assert.ok(b.cpu.regionBlocks > ITERATIONS - 100, `${b.cpu.regionBlocks} linked block runs`);
          const entries = b.cpu.regionRuns + b.cpu.blockRuns;
          assert.ok(entries < 40 + 3 * b.steps.length, `${entries} entries from the run loop`);
        }
        // Slices of 3 and 7 are shorter than the loop's blocks: none ever fits, and the
        // instructions of a block the budget cut are not blocks of their own (cpu-budget-cut).
        if (backend !== "js" && slice < 10) assert.equal(wasmRuns(b.cpu), 0);
        else if (backend !== "js")
          assert.ok(wasmRuns(b.cpu) > ITERATIONS * 0.85, `${wasmRuns(b.cpu)} wasm block runs`);
        // Chained: a block run inside wasm after the one the JS region entered (the else's
        // jnz into the loop's head, every other iteration); none with the chain off.
        const chained = wasmBackend(b.cpu)?.chainRuns ?? 0;
        if (backend !== "wasm-regions") assert.equal(chained, 0);
        else if (slice >= 1000) assert.ok(chained > ITERATIONS / 2 - 100, `${chained} chained block runs`);
      });
    }

    it("are not built when regionThreshold is 0, and the blocks give the same state", () => {
      const a = trace(LOOP, false, 10_000_000, () => {});
      const b = trace(
        LOOP,
        true,
        10_000_000,
        (cpu) => {
          cpu.regionThreshold = 0;
        },
        backend,
      );
      assert.deepEqual(b.steps, a.steps);
      assert.equal(b.cpu.regionBlocks, 0);
      assert.equal(b.cpu.regionRuns, 0);
      assert.ok(b.cpu.blockRuns > ITERATIONS - 100, `${b.cpu.blockRuns} block runs`);
    });

    // Every 64th round writes BL into the immediate of the mov at `target`, in the region's
    // own page, from inside the region; the next round must see the new immediate.
    // loop (0): test cl,63; jnz skip; mov [edi],bl; inc ebx
    // skip (8): test cl,1; jz odd; target (13): mov eax,imm32; add edx,eax; jmp join
    // odd (22): add edx,ecx
    // join (24): dec ecx; jnz loop; hlt
    const SMC = [
      [0xf6, 0xc1, 0x3f],
      [0x75, 8 - 5],
      [0x88, 0x1f],
      [0x43],
      [0xf6, 0xc1, 0x01],
      [0x74, 22 - 13],
      [0xb8, ...d(0x11111111)],
      [0x01, 0xc2],
      [0xeb, 24 - 22],
      [0x01, 0xca],
      [0x49],
      [0x75, (0 - 27) & 0xff],
      [0xf4],
    ].flat();
    for (const slice of [13, 10_000_000]) {
      it(`leave the region at a store into its own code, in slices of ${slice}`, () => {
        const setup = (cpu: Cpu) => {
          cpu.regs[ECX] = 5000;
          cpu.regs[EDI] = CODE + 14;
          cpu.regs[EDX] = 0;
        };
        const a = trace(SMC, false, slice, setup);
        const b = trace(SMC, true, slice, setup, backend);
        assert.equal(a.steps[a.steps.length - 1].exit, Exit.Halt);
        assert.deepEqual(b.steps, a.steps);
        assert.notEqual(a.cpu.regs[EAX], 0x11111111, "the store reached the code");
        assert.ok(b.cpu.regionBlocks > 1000, `${b.cpu.regionBlocks} linked block runs`);
        if (backend !== "js") assert.ok(wasmRuns(b.cpu) > 1000, `${wasmRuns(b.cpu)} wasm block runs`);
      });
    }

    it("stop at the budget inside a region exactly where the interpreter does", () => {
      for (const budget of [3, 17, 4001, 33333]) {
        const run = (linked: boolean) => {
          const cpu = machine(LOOP, linked, backend);
          // Warm up, then one slice of the budget that ends in the middle of the loop.
          runSlice(cpu, 5000);
          return { s: runSlice(cpu, budget), regionRuns: cpu.regionRuns, wasmRuns: wasmRuns(cpu) };
        };
        const linked = run(true);
        assert.deepEqual(linked.s, run(false).s, `budget ${budget}`);
        assert.ok(linked.regionRuns > 0, `budget ${budget}: ${linked.regionRuns} region runs`);
        if (backend !== "js") assert.ok(linked.wasmRuns > 0, `budget ${budget}: no wasm block ran`);
      }
    });

    it("hand a fault inside a linked block back with the interpreter's state", () => {
      // The loop walks ESI upwards; a DS limit cuts it off in the middle of the run.
      const run = (linked: boolean) => {
        const cpu = machine(LOOP, linked, backend);
        runSlice(cpu, 5000);
        cpu.loadSegmentCache(DS, 0x10, 0, cpu.regs[ESI] + 400, 0x4093);
        const before = cpu.regionRuns;
        const wasmBefore = wasmRuns(cpu);
        const s = runSlice(cpu, 1_000_000);
        return {
          s,
          edx: cpu.regs[EDX],
          regionRuns: cpu.regionRuns - before,
          wasmRuns: wasmRuns(cpu) - wasmBefore,
        };
      };
      const a = run(false);
      assert.equal(a.s.exit, Exit.Exception);
      assert.equal(a.s.vector, 13);
      const b = run(true);
      assert.deepEqual({ s: b.s, edx: b.edx }, { s: a.s, edx: a.edx });
      assert.ok(b.regionRuns > 0, "the fault came inside a region");
      if (backend !== "js") assert.ok(b.wasmRuns > 0, "in wasm blocks");
    });
  });
