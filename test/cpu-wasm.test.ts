/**
 * The wasm back end of compiled blocks (src/cpu/wasm/) where its modules compile in the
 * background, as on a browser's main thread (V8 refuses a synchronous compile above 4 KB
 * there): the blocks run as JS until their module is in, then as wasm, in their slots and in
 * the region that links them, and the run is the interpreter's all along.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Cpu } from "../src/cpu/cpu.js";
import { ESP, Exit } from "../src/cpu/regs.js";
import type { Backend } from "../src/cpu/wasm/arena.js";
import { wasmBackend } from "../src/cpu/wasm/backend.js";
import { allocRam } from "../src/machine/ram.js";
import { type CpuState, runSlice } from "./helpers/cpu-state.js";

const CODE = 0x1000;
const DATA = 0x3000;
const N = 20000;

function d(v: number): number[] {
  return [v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, (v >>> 24) & 0xff];
}

// mov ecx,N; mov esi,DATA
// loop (10): add eax,ecx; xor edx,eax; mov [esi],eax; add esi,4; and esi,0x3ffc; or esi,DATA;
//            cmp ecx,N/2; ja skip; inc ebx
// skip: dec ecx; jz done; mov edi,loop; jmp edi (ends the block: a block run per iteration)
// done (50): hlt
const LOOP = [
  [0xb9, ...d(N)],
  [0xbe, ...d(DATA)],
  [0x01, 0xc8],
  [0x31, 0xc2],
  [0x89, 0x06],
  [0x83, 0xc6, 0x04],
  [0x81, 0xe6, ...d(0x3ffc)],
  [0x81, 0xce, ...d(DATA)],
  [0x81, 0xf9, ...d(N / 2)],
  [0x77, 0x01],
  [0x43],
  [0x49],
  [0x74, 50 - 43],
  [0xbf, ...d(CODE + 10)],
  [0xff, 0xe7],
  [0xf4],
].flat();

function machine(backend: Backend | null): Cpu {
  const cpu = new Cpu(backend === "wasm" ? allocRam(1 << 20) : new Uint8Array(1 << 20));
  cpu.backend = backend ?? "js";
  cpu.resetFlat32();
  cpu.mem8.set(LOOP, CODE);
  cpu.eip = CODE;
  cpu.regs[ESP] = 0x8000;
  cpu.blockThreshold = backend === null ? 0 : 2;
  cpu.regionThreshold = backend === null ? 0 : 2;
  return cpu;
}

describe("wasm blocks compiled in the background", () => {
  it("run as JS until their module is in, then as wasm in their region, exactly", async () => {
    const a = machine(null);
    const want: CpuState[] = [];
    for (let s = runSlice(a, 997); ; s = runSlice(a, 997)) {
      want.push(s);
      if (s.exit !== Exit.Budget) break;
    }
    const b = machine("wasm");
    const wasm = wasmBackend(b);
    assert.ok(wasm !== null, "no wasm back end on a WebAssembly.Memory");
    wasm.batch = 1;
    wasm.syncCompile = false;
    const got: CpuState[] = [];
    let jsRuns = 0;
    for (let i = 0; i < want.length; i++) {
      const runs = wasm.runs;
      const blocks = b.blockRuns + b.regionBlocks;
      got.push(runSlice(b, 997));
      if (i === 0) jsRuns = b.blockRuns + b.regionBlocks - blocks - (wasm.runs - runs);
      // Modules compiled in the background land between slices, as between a page's turns.
      await wasm.compiled();
    }
    assert.deepEqual(got, want);
    assert.deepEqual(b.mem8.subarray(DATA, DATA + 0x4000), a.mem8.subarray(DATA, DATA + 0x4000));
    assert.ok(jsRuns > 0, "the first slice ran no JS block (a synchronous compile?)");
    assert.ok(wasm.modules > 1 && wasm.blocks > 0, `${wasm.modules} modules, ${wasm.blocks} wasm blocks`);
    // Most of the loop ran in wasm blocks (in the region built before their module was in).
    assert.ok(wasm.runs > N / 2, `${wasm.runs} wasm block runs`);
    assert.ok(b.regionBlocks > N / 2, `${b.regionBlocks} blocks run in regions`);
  });
});
