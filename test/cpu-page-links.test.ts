/**
 * Regions linked across pages (src/cpu/blocks.ts linkRegion, Cpu.hopFetch): a region whose
 * EIP leaves its page goes on in the region of the page it lands in, without the run loop,
 * when that page is mapped in the TLB and decoded. The link is looked up through the TLB and
 * the frame's decoded instructions at each crossing, so a remap (a PTE rewritten, then
 * invlpg) or a write to the code the link leads into must be seen at once. Each case runs
 * interpreted and linked (JS and wasm blocks) and compares the state after every slice; the
 * counters pin that the crossings were taken inside regions, and that with Cpu.linkPages off
 * every crossing goes back to the run loop.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Cpu } from "../src/cpu/cpu.js";
import { CR0_PG, EAX, ESP, Exit } from "../src/cpu/regs.js";
import type { Backend } from "../src/cpu/wasm/arena.js";
import { wasmBackend } from "../src/cpu/wasm/backend.js";
import { allocRam } from "../src/machine/ram.js";
import { le32 as d } from "./helpers/bytes.js";
import { type CpuState, runSlices } from "./helpers/cpu-state.js";

const PD = 0x80000;
const PT = 0x81000;
const CODE = 0x1000;
/** The linear page the loop calls into, mapped to frame FA or FB. */
const V = 0x5000;
const FA = 0x6000;
const FB = 0x7000;
const DATA = 0x10000;
const N = 20000;
/** ECX at which the loop's action runs (once). */
const SWITCH = 10000;

/** 17 bytes run once, at ECX = SWITCH: the remap of V, a write into FA's code, or nothing. */
type Action = "remap" | "write" | "none";
const ACTIONS: Record<Action, number[]> = {
  // mov dword [PTE of V], FB|P|RW; invlpg [V]
  remap: [0xc7, 0x05, ...d(PT + (V >>> 12) * 4), ...d(FB | 3), 0x0f, 0x01, 0x3d, ...d(V)],
  // mov byte [FA], 0x29: FA's add eax,edx becomes sub eax,edx (FA is identity-mapped too)
  write: [0xc6, 0x05, ...d(FA), 0x29, ...new Array(10).fill(0x90)],
  none: new Array(17).fill(0x90),
};

// 0x1000 mov ecx,N; xor eax,eax; mov esi,DATA
// loop (12): mov edx,[esi]; call V; add esi,4; cmp ecx,SWITCH; jne skip; <action, 17 bytes>
// skip (47): dec ecx; jnz loop; hlt
function program(action: Action): number[] {
  return [
    [0xb9, ...d(N)],
    [0x31, 0xc0],
    [0xbe, ...d(DATA)],
    [0x8b, 0x16],
    [0xe8, ...d(V - (CODE + 19))],
    [0x83, 0xc6, 0x04],
    [0x81, 0xf9, ...d(SWITCH)],
    [0x75, 17],
    ACTIONS[action],
    [0x49],
    [0x75, (12 - 50) & 0xff],
    [0xf4],
  ].flat();
}

/** linked: blocks and regions at the second run, pages linked as linkPages says. */
function machine(action: Action, linked: boolean, backend: Backend, linkPages = true): Cpu {
  const cpu = new Cpu(backend === "js" ? new Uint8Array(1 << 20) : allocRam(1 << 20));
  cpu.backend = backend;
  const wasm = wasmBackend(cpu);
  if (wasm !== null) wasm.batch = 1;
  cpu.resetFlat32();
  const mem = new DataView(cpu.mem8.buffer, cpu.mem8.byteOffset);
  mem.setUint32(PD, PT | 3, true);
  for (let p = 0; p < 256; p++) mem.setUint32(PT + p * 4, (p << 12) | 3, true);
  mem.setUint32(PT + (V >>> 12) * 4, FA | 3, true);
  cpu.mem8.set(program(action), CODE);
  cpu.mem8.set([0x01, 0xd0, 0x31, 0xc8, 0xc3], FA); // add eax,edx; xor eax,ecx; ret
  cpu.mem8.set([0x29, 0xd0, 0x01, 0xc8, 0xc3], FB); // sub eax,edx; add eax,ecx; ret
  for (let i = 0; i < 4 * N; i++) cpu.mem8[DATA + i] = (i * 37 + (i >> 8)) & 0xff;
  cpu.setCr3(PD);
  cpu.setCr0(cpu.cr0 | CR0_PG);
  cpu.eip = CODE;
  cpu.regs[ESP] = 0x9000;
  cpu.blockThreshold = linked ? 2 : 0;
  cpu.regionThreshold = linked ? 2 : 0;
  cpu.linkPages = linkPages;
  return cpu;
}

function trace(action: Action, linked: boolean, slice: number, backend: Backend = "js", linkPages = true) {
  const cpu = machine(action, linked, backend, linkPages);
  const steps: CpuState[] = runSlices(cpu, slice, 1_000_000);
  return { steps, cpu, entries: cpu.regionRuns + cpu.blockRuns };
}

for (const backend of ["js", "wasm"] as const)
  describe(`regions linked across pages (${backend} blocks)`, () => {
    for (const action of ["remap", "write"] as const)
      for (const slice of [3, 7, 50, 1000, 10_000_000]) {
        it(`a call into another page and its return, with a ${action} of the callee mid-loop, in slices of ${slice}`, () => {
          const a = trace(action, false, slice);
          const b = trace(action, true, slice, backend);
          assert.equal(a.steps[a.steps.length - 1].exit, Exit.Halt);
          assert.deepEqual(b.steps, a.steps);
          // The action took effect: without it the loop ends with another EAX.
          const none = trace("none", false, 10_000_000);
          assert.notEqual(a.cpu.regs[EAX], none.cpu.regs[EAX], `the ${action} changed what the call ran`);
          assert.equal(a.cpu.regionHops, 0);
          if (slice >= 1000) {
            // Two crossings an iteration (the call and its return), nearly all inside regions;
            // the run loop enters a region only a few times a slice, and at the action.
            assert.ok(b.cpu.regionHops > 2 * N - 200, `${b.cpu.regionHops} crossings linked`);
            assert.ok(b.entries < 60 + 3 * b.steps.length, `${b.entries} entries from the run loop`);
          }
        });
      }

    it("go back to the run loop at every crossing with linkPages off, in the same state", () => {
      const a = trace("remap", true, 10_000_000, backend);
      const b = trace("remap", true, 10_000_000, backend, false);
      assert.deepEqual(b.steps, a.steps);
      assert.equal(b.cpu.regionHops, 0);
      assert.ok(b.entries > 2 * N - 200, `${b.entries} entries from the run loop`);
      assert.ok(a.entries < 100, `${a.entries} entries from the run loop when linked`);
    });
  });
