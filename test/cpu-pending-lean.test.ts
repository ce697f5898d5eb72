/**
 * The pending runner (blocks.ts interpreted) keeps a compiled block's protocol, not the run
 * loop's: it sets savedEsp only before an instruction that moves ESP before it can fault,
 * EIP only before a control transfer (checking the path after it), checks for a code write
 * only after an instruction that may write memory, and counts retired instructions when it
 * returns; a fault sets instrStart, retired and (for the others) savedEsp in its catch. A loop
 * of one pending block pushes, loads through EDI, pops and writes a byte through EBP; midway
 * the load's page is made not present (a #PF after the push: savedEsp from the catch), the
 * stack's (the push's #PF), or EBP pointed at the immediate of a later instruction of the same
 * block (the block must leave after the write and run the new byte). Each run, in slices, must
 * equal the interpreter's after every slice (registers, EIP, retired, exits, CR2 and error
 * code) and in memory.
 */
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { pendingClock, setInterpretPending } from "../src/cpu/blocks.js";
import type { Cpu } from "../src/cpu/cpu.js";
import { CR0_PG, EAX, EBP, EDI, ESI, ESP, Exit } from "../src/cpu/regs.js";
import { wasmBackend } from "../src/cpu/wasm/backend.js";
import { le32 as d } from "./helpers/bytes.js";
import { assertRunAs, traceMappingFaults, variantCpu } from "./helpers/cpu-state.js";

const PD = 0x80000;
const PT = 0x81000;
const CODE = 0x1000;
/** The page the loop loads from, where it stores its sums, the byte EBP writes at first. */
const DATA = 0x5000;
const OUT = 0x6000;
const SCRATCH = 0x7000;
/** The stack the stack action moves to: the page below it not present. */
const STK = 0x20000;
const N = 4000;
const SWITCH = 3000;
const pte = (lin: number) => PT + (lin >>> 12) * 4;
const invlpg = (lin: number) => [0x0f, 0x01, 0x3d, ...d(lin)];

/** Where the loop starts, and the add whose immediate the smc action has it rewrite. */
const LOOP = CODE + 5;
const PATCH = LOOP + 15;

type Action = "none" | "data" | "stack" | "smc";
const ACTIONS: Record<Action, number[]> = {
  none: [],
  // and dword [PTE of DATA], ~1; invlpg [DATA]: the next pass's load #PFs after its push
  data: [0x81, 0x25, ...d(pte(DATA)), ...d(~1), ...invlpg(DATA)],
  // mov esp, STK; and dword [PTE of STK-4K], ~1; invlpg: the next pass's push #PFs
  stack: [0xbc, ...d(STK), 0x81, 0x25, ...d(pte(STK - 0x1000)), ...d(~1), ...invlpg(STK - 0x1000)],
  // mov ebp, PATCH+1: from the next pass, mov [ebp],cl writes the add's immediate
  smc: [0xbd, ...d(PATCH + 1)],
};

// CODE: mov ecx,N
// LOOP: lea esp,[esp-8]; push eax; mov eax,[edi]; pop edx; lea esp,[esp+8]; mov [ebp],cl;
//   add eax,0x11223344; add eax,edx;
//   mov [esi],eax; add esi,4; and esi,0x6ffc; cmp ecx,SWITCH; jne skip; <action>
// skip: dec ecx; jnz LOOP; hlt
function program(action: Action): number[] {
  const act = ACTIONS[action];
  // ESP moved (not by a push) before the push: a savedEsp left from before the run is wrong.
  const body = [
    [0x8d, 0x64, 0x24, 0xf8],
    [0x50],
    [0x8b, 0x07],
    [0x5a],
    [0x8d, 0x64, 0x24, 0x08],
    [0x88, 0x4d, 0x00],
    [0x05, ...d(0x11223344)],
    [0x01, 0xd0],
    [0x89, 0x06],
    [0x83, 0xc6, 0x04],
    [0x81, 0xe6, ...d(0x6ffc)],
    [0x81, 0xf9, ...d(SWITCH)],
    [0x75, act.length],
    act,
    [0x49],
  ].flat();
  return [0xb9, ...d(N), ...body, 0x75, -(body.length + 2) & 0xff, 0xf4];
}

function machine(action: Action, pending: boolean): Cpu {
  const cpu = variantCpu(pending ? "wasm" : "interp", 4 << 20, 2);
  // Not a batch of 1 (each block wasm at once): with queueAt out of reach, never compiled.
  const wasm = wasmBackend(cpu);
  if (wasm !== null) wasm.batch = 64;
  const mem = new DataView(cpu.mem8.buffer, cpu.mem8.byteOffset);
  mem.setUint32(PD, PT | 3, true);
  for (let p = 0; p < 256; p++) mem.setUint32(PT + p * 4, (p << 12) | 3, true);
  cpu.mem8.set(program(action), CODE);
  for (let i = 0; i < 0x1000; i += 4) mem.setUint32(DATA + i, 0x9e3779b9 * (i + 1), true);
  cpu.setCr3(PD);
  cpu.setCr0(cpu.cr0 | CR0_PG);
  cpu.eip = CODE;
  cpu.regs[ESP] = 0x9000;
  cpu.regs[EDI] = DATA + 0x40;
  cpu.regs[ESI] = OUT;
  cpu.regs[EBP] = SCRATCH;
  return cpu;
}

function trace(action: Action, pending: boolean, slice: number) {
  if (pending) setInterpretPending(true, 1 << 30, 1 << 30);
  try {
    return traceMappingFaults(machine(action, pending), slice, PT);
  } finally {
    setInterpretPending(true);
  }
}

const SLICES = [3, 7, 50, 1000, 10_000_000];

describe("the pending runner keeps a compiled block's protocol", () => {
  after(() => setInterpretPending(true));
  for (const action of Object.keys(ACTIONS) as Action[])
    it(`${action} midway: every slice as the interpreter`, () => {
      let checked = 0;
      for (const slice of SLICES) {
        const a = trace(action, false, slice);
        const b = trace(action, true, slice);
        const ran = pendingClock(b.cpu.dc).runs;
        const last = a.steps[a.steps.length - 1];
        assert.equal(last.exit, Exit.Halt);
        assertRunAs(a, b, `${action} slice ${slice}`);
        assert.equal(b.faults, a.faults);
        assert.equal(a.faults, action === "data" || action === "stack" ? 1 : 0);
        if (slice === 10_000_000) {
          // 15 a pass, the action's instructions once, the first and the hlt.
          const extra = { none: 0, data: 2, stack: 3, smc: 1 }[action];
          assert.equal(a.cpu.retiredTotal, 1 + 15 * N + extra + 1);
          // Pending runs: the loop one block a pass after the first (its jne a forward skip
          // of nothing), else two (the loop to the jne, then dec; jnz); after the smc each pass
          // rewrites the block's own code, so none is kept from then on (the first run after
          // it is the one that must leave at the write: counted before the switch's pass).
          const want = { none: N - 1, data: 2 * N - 1, stack: 2 * N - 1, smc: 2 * (N - SWITCH) }[action];
          assert.equal(ran, want, "pending runs");
          if (action === "smc") assert.notEqual(a.cpu.mem8[PATCH + 1], 0x44, "the immediate was rewritten");
          assert.notEqual(a.cpu.regs[EAX], 0);
        }
        checked++;
      }
      assert.equal(checked, SLICES.length);
    });
});
