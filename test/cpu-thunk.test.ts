/**
 * PIC thunks in another page (`call` of `mov (%esp),reg; ret`, busybox's
 * `__x86.get_pc_thunk.*`): the call ends its block, the thunk runs in its own page (a region
 * hop there and one back), and the code after the call goes on. A loop calls a thunk in
 * another page 6,000 times; midway the thunk's page is remapped to other bytes,
 * made not present (the fetch's #PF), its code rewritten, or the stack moved to a page end
 * whose page below is not present (the push's #PF). Each run, in slices, must equal the
 * interpreter's after every slice (registers, EIP, retired count, exits, CR2 and error code)
 * and in memory (the loop reads the slot the call's push wrote, then overwrites it).
 */
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { setInterpretPending } from "../src/cpu/blocks.js";
import type { Cpu } from "../src/cpu/cpu.js";
import { CR0_PG, EAX, EBX, EDI, ESP, Exit } from "../src/cpu/regs.js";
import { wasmBackend } from "../src/cpu/wasm/backend.js";
import { le32 as d } from "./helpers/bytes.js";
import { assertRunAs, traceMappingFaults, type Variant, variantCpu } from "./helpers/cpu-state.js";

const PD = 0x80000;
const PT = 0x81000;
const CODE = 0x1000;
/** The linear page of the thunk, mapped to frame FA (a thunk) or FB (other code). */
const V = 0x5000;
const FA = 0x6000;
const FB = 0x7000;
/** The thunk's page offset: a TLB entry dropped (0) would give frame 0's bytes there. */
const AT = 0x40;
/** The stack the pushfault action moves to: the page below it not present. */
const STK = 0x20000;
const N = 6000;
const SWITCH = 3000;
const pte = (lin: number) => PT + (lin >>> 12) * 4;
const invlpg = (lin: number) => [0x0f, 0x01, 0x3d, ...d(lin)];

type Action = "none" | "remap" | "unmap" | "write" | "pushfault";
const ACTIONS: Record<Action, number[]> = {
  none: [],
  // mov dword [PTE of V], FB|P|RW; invlpg [V]: the thunk's page now holds lea ebx,[ebx+1]; ret
  remap: [0xc7, 0x05, ...d(pte(V)), ...d(FB | 3), ...invlpg(V)],
  // and dword [PTE of V], ~1; invlpg [V]: the next fetch of the thunk #PFs (the host maps it)
  unmap: [0x81, 0x25, ...d(pte(V)), ...d(~1), ...invlpg(V)],
  // mov byte [FA+AT+1], 0x3c: the thunk becomes mov edi,[esp]; ret (FA is identity-mapped too)
  write: [0xc6, 0x05, ...d(FA + AT + 1), 0x3c],
  // mov esp, STK; and dword [PTE of STK-4K], ~1; invlpg: the next call's push #PFs
  pushfault: [0xbc, ...d(STK), 0x81, 0x25, ...d(pte(STK - 0x1000)), ...d(~1), ...invlpg(STK - 0x1000)],
};

// 0x1000 mov ecx,N; xor eax,eax; mov dword [esp-4],0
// loop (0x100f): call V; mov edx,[esp-4]; add eax,edx; add eax,ebx; add eax,edi; rol eax,1;
//   mov [esp-4],ecx; cmp ecx,SWITCH; jne skip; <action>
// skip: dec ecx; jnz loop; hlt
function program(action: Action, twice = false): number[] {
  const act = ACTIONS[action];
  const head = [
    [0xb9, ...d(N)],
    [0x31, 0xc0],
    [0xc7, 0x44, 0x24, 0xfc, ...d(0)],
  ].flat();
  const loop = CODE + head.length;
  const body = [
    [0xe8, ...d(V + AT - (loop + 5))],
    // twice: a second call of the thunk (mov ecx,ecx between: the two calls' return sites
    // differ), so a pass makes two crossings there and back.
    ...(twice
      ? [
          [0x89, 0xc9],
          [0xe8, ...d(V + AT - (loop + 12))],
        ]
      : []),
    [0x8b, 0x54, 0x24, 0xfc],
    [0x01, 0xd0],
    [0x01, 0xd8],
    [0x01, 0xf8],
    [0xd1, 0xc0],
    [0x89, 0x4c, 0x24, 0xfc],
    [0x81, 0xf9, ...d(SWITCH)],
    [0x75, act.length],
    act,
    [0x49],
  ].flat();
  return [...head, ...body, 0x75, -(body.length + 2) & 0xff, 0xf4];
}

function machine(action: Action, variant: Variant | "pending", twice = false): Cpu {
  const cpu = variantCpu(variant === "pending" ? "wasm" : variant, 4 << 20, 2);
  // Not a batch of 1 (each block wasm at once): with queueAt out of reach, never compiled.
  const wasm = wasmBackend(cpu);
  if (variant === "pending" && wasm !== null) wasm.batch = 64;
  const mem = new DataView(cpu.mem8.buffer, cpu.mem8.byteOffset);
  mem.setUint32(PD, PT | 3, true);
  for (let p = 0; p < 256; p++) mem.setUint32(PT + p * 4, (p << 12) | 3, true);
  mem.setUint32(pte(V), FA | 3, true);
  cpu.mem8.set(program(action, twice), CODE);
  cpu.mem8.set([0x8b, 0x1c, 0x24, 0xc3], FA + AT); // mov ebx,[esp]; ret
  cpu.mem8.set([0x8d, 0x5b, 0x01, 0xc3], FB + AT); // lea ebx,[ebx+1]; ret
  // The same thunk in frame 0, where a guard reading through a dropped TLB entry would look.
  cpu.mem8.set([0x8b, 0x1c, 0x24, 0xc3], AT);
  cpu.setCr3(PD);
  cpu.setCr0(cpu.cr0 | CR0_PG);
  cpu.eip = CODE;
  cpu.regs[ESP] = 0x9000;
  return cpu;
}

function trace(action: Action, variant: Variant | "pending", slice: number, twice = false) {
  return traceMappingFaults(machine(action, variant, twice), slice, PT);
}

const SLICES = [3, 7, 50, 1000, 10_000_000];

describe("PIC thunks in another page", () => {
  // The loop run once interpreted with nothing done midway.
  const base = trace("none", "interp", 10_000_000);
  after(() => setInterpretPending(true));
  // "pending": wasm blocks never queued, so the pending runner (blocks.ts interpreted) runs
  // every pass.
  for (const variant of ["js", "wasm", "chain", "pending"] as const)
    for (const action of Object.keys(ACTIONS) as Action[])
      it(`${variant} blocks: ${action} midway, every slice as the interpreter`, () => {
        let checked = 0;
        for (const slice of SLICES) {
          const a = trace(action, "interp", slice);
          if (variant === "pending") setInterpretPending(true, 1 << 30, 1 << 30);
          const b = trace(action, variant, slice);
          setInterpretPending(true);
          const last = a.steps[a.steps.length - 1];
          assert.equal(last.exit, Exit.Halt);
          assert.equal(last.retired, b.cpu.retiredTotal);
          assertRunAs(a, b, `${variant} ${action} slice ${slice}`);
          assert.equal(b.faults, a.faults);
          assert.equal(a.faults, action === "unmap" || action === "pushfault" ? 1 : 0);
          checked++;
          if (slice === 10_000_000) {
            // The action changed what the loop computed.
            if (action !== "none" && action !== "unmap")
              assert.notDeepEqual(a.cpu.regs, base.cpu.regs, "the action took effect");
            if (action === "write") assert.equal(a.cpu.regs[EDI], CODE + 15 + 5, "the rewritten thunk ran");
            // The call ends its block: a crossing to the thunk's page and one back a pass,
            // linked by the region (none for the pending runner's blocks, which are in no
            // region until compiled).
            const hops = b.cpu.regionHops;
            if (variant !== "pending") assert.ok(hops > N - 100, `${hops} crossings`);
          }
        }
        assert.equal(checked, SLICES.length);
      });
  // Two thunk calls a pass (two return sites).
  for (const variant of ["js", "wasm", "chain", "pending"] as const)
    for (const action of ["none", "write"] as const)
      it(`${variant} blocks: two thunk calls a pass, ${action} midway, as the interpreter`, () => {
        for (const slice of SLICES) {
          const a = trace(action, "interp", slice, true);
          if (variant === "pending") setInterpretPending(true, 1 << 30, 1 << 30);
          const b = trace(action, variant, slice, true);
          setInterpretPending(true);
          assert.equal(a.steps[a.steps.length - 1].exit, Exit.Halt);
          assertRunAs(a, b, `${variant} ${action} twice, slice ${slice}`);
          if (slice === 10_000_000) {
            // mov, xor, mov; 17 a pass; the write once; hlt.
            assert.equal(a.cpu.retiredTotal, 3 + 17 * N + (action === "write" ? 1 : 0) + 1);
          }
        }
      });
  it("the interpreter's loop: EBX is the return address, the sum as computed", () => {
    assert.equal(base.steps.length, 1);
    // mov, xor, mov; 13 a pass (call, mov, ret and ten); hlt.
    assert.equal(base.cpu.retiredTotal, 3 + 13 * N + 1);
    assert.equal(base.cpu.regs[EBX], CODE + 15 + 5);
    assert.notEqual(base.cpu.regs[EAX], 0);
  });
});
