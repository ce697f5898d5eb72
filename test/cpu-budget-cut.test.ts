/**
 * A run whose budget ends inside a compiled block (tsxend stops runs where the wall clock
 * says, so anywhere in a guest's code): the block does not fit, so its instructions run one
 * by one up to the budget and, in the next run, from there to the block's end. They are the
 * block's own instructions, not new hot code: they must not become blocks of their own
 * (before, nearly every instruction of an idle guest's wakeup did, and tsxend compiled blocks
 * for as long as it ran). The state after each slice is the interpreter's; the number of
 * compiled blocks is pinned.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Cpu } from "../src/cpu/cpu.js";
import { ESP, Exit } from "../src/cpu/regs.js";
import type { Backend } from "../src/cpu/wasm/arena.js";
import { wasmBackend } from "../src/cpu/wasm/backend.js";
import { allocRam } from "../src/machine/ram.js";
import { compiledBlocks, runSlices } from "./helpers/cpu-state.js";

const AT = 0x1000;
const N = 2000;

// mov ecx, N; loop: add eax,1; add ebx,2; add edx,3; add esi,4; add edi,5; add eax,ebx;
// xor edx,eax; dec ecx; jnz loop; hlt. The loop is one block of 9 instructions.
const LOOP = [
  [0xb9, N & 0xff, N >> 8, 0, 0],
  [0x83, 0xc0, 0x01],
  [0x83, 0xc3, 0x02],
  [0x83, 0xc2, 0x03],
  [0x83, 0xc6, 0x04],
  [0x83, 0xc7, 0x05],
  [0x01, 0xd8],
  [0x31, 0xc2],
  [0x49],
  [0x75, -(3 * 5 + 2 + 2 + 1 + 2) & 0xff],
  [0xf4],
].flat();

function machine(compiled: boolean, backend: Backend): Cpu {
  const cpu = new Cpu(backend === "wasm" ? allocRam(1 << 20) : new Uint8Array(1 << 20));
  cpu.backend = backend;
  const wasm = wasmBackend(cpu);
  if (wasm !== null) wasm.batch = 1;
  cpu.resetFlat32();
  cpu.mem8.set(LOOP, AT);
  cpu.eip = AT;
  cpu.regs[ESP] = 0x8000;
  cpu.blockThreshold = compiled ? 2 : 0;
  cpu.regionThreshold = 0;
  return cpu;
}

describe("a budget that ends inside a compiled block", () => {
  for (const backend of ["js", "wasm"] as const) {
    // 9 instructions a trip: slices of 13, 16 and 23 end at every offset of the loop in turn.
    for (const slice of [13, 16, 23]) {
      it(`${backend}: slices of ${slice} run as the interpreter, and only the loop is a block`, () => {
        const a = runSlices(machine(false, backend), slice, 100_000);
        const cpu = machine(true, backend);
        const b = runSlices(cpu, slice, 100_000);
        assert.equal(a[a.length - 1].exit, Exit.Halt);
        assert.deepEqual(b, a);
        // The loop's block, and the one the first slice compiled at its start (mov ecx).
        assert.ok(compiledBlocks(cpu) <= 2, `blocks: ${compiledBlocks(cpu)}`);
        // The block ran: most of the loop's instructions are in it.
        assert.ok(cpu.blockInsnsTotal > N * 9 * 0.3, `instructions in blocks: ${cpu.blockInsnsTotal}`);
        if (backend === "wasm") assert.ok((wasmBackend(cpu)?.runs ?? 0) > 0, "wasm blocks ran");
      });
    }
  }
});
