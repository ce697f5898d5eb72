/**
 * Instructions a region runs itself (cpu.ts regionStep, blocks.ts linkRegion): where a
 * region's page starts no block at EIP and the run loop would only run the instruction's
 * handler (a decoded instruction no block takes: `rep movsb`, a 16-bit `add` to memory), the
 * region runs it as the loop would and goes on. A hot loop does both while the host points
 * the copy's destination at data, at a page not present two bytes before its start (a #PF in
 * the middle of the copy, ECX/ESI/EDI as far as it got), or at the loop's own `mov ecx, imm32`
 * (the copy writes the region's code: the region must return to the run loop, as its table
 * holds the blocks made from the old immediate). A push and pop just before the copy leave the
 * block's record of ESP at an instruction start 4 below the copy's, so a #PF rolled back to a
 * stale record shows. The state after every slice, CR2, the
 * error code and memory must be the interpreter's, for JS and wasm blocks, chained or not, and
 * the regions must have run the instructions.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Cpu } from "../src/cpu/cpu.js";
import { CR0_PG, EBP, ESP, Exit } from "../src/cpu/regs.js";
import { le32 as d } from "./helpers/bytes.js";
import { assertRunAs, traceMappingFaults, type Variant, variantCpu } from "./helpers/cpu-state.js";

const PD = 0x100000;
const PT = 0x101000;
const LOOP = 0x5f00;
const DATA = 0x20000;
const PTR = DATA + 0x100;
const SRC = DATA + 0x200;
const UNMAPPED = 0x300000;
/** The loop's `mov ecx, 4` immediate: the copy's destination when it writes the code. */
const IMM = LOOP + 12;

function machine(variant: Variant): Cpu {
  const cpu = variantCpu(variant, 1 << 22, 2);
  const m = new DataView(cpu.mem8.buffer, cpu.mem8.byteOffset);
  m.setUint32(PD, PT | 3, true);
  for (let p = 0; p < 1024; p++) m.setUint32(PT + p * 4, (p << 12) | 3, true);
  // mov edi, [PTR]; mov esi, SRC; mov ecx, 4; push eax; pop eax; rep movsb; add [DATA+0x40], cx;
  // add edx, edi; dec ebp; jnz +1; hlt; jmp LOOP. (The block's pop leaves savedEsp 4 below
  // ESP: the copy's #PF must roll ESP back to its own start.)
  const body = [
    ...[0x8b, 0x3d, ...d(PTR)],
    ...[0xbe, ...d(SRC)],
    ...[0xb9, ...d(4)],
    ...[0x50, 0x58],
    ...[0xf3, 0xa4],
    ...[0x66, 0x01, 0x0d, ...d(DATA + 0x40)],
    ...[0x01, 0xfa],
    ...[0x4d, 0x75, 0x01, 0xf4],
  ];
  cpu.mem8.set([...body, 0xe9, ...d(-(body.length + 5))], LOOP);
  // What the copy writes: 3 over the immediate 4 (the next passes copy 3 bytes).
  cpu.mem8.set([3, 0, 0, 0], SRC);
  m.setUint32(PTR, DATA + 0x800, true);
  cpu.setCr3(PD);
  cpu.setCr0(cpu.cr0 | CR0_PG);
  cpu.eip = LOOP;
  cpu.regs[EBP] = 3000;
  cpu.regs[ESP] = 0x80000;
  return cpu;
}

function trace(variant: Variant, slice: number) {
  const cpu = machine(variant);
  const m = new DataView(cpu.mem8.buffer, cpu.mem8.byteOffset);
  const every = Math.max(1, Math.floor(2000 / slice));
  const { steps } = traceMappingFaults(cpu, slice, PT, (i) => {
    if (i % every !== 0) return;
    const n = (i / every) % 3;
    // The #PF after a warm stretch (the region running), the code write last.
    m.setUint32(PTR, n === 0 ? DATA + 0x800 : n === 1 ? UNMAPPED - 2 : IMM, true);
    if (n === 1) {
      m.setUint32(PT + (UNMAPPED >>> 12) * 4, UNMAPPED | 2, true);
      cpu.invlpg(UNMAPPED);
    }
  });
  return { steps, cpu };
}

describe("instructions a region runs itself", () => {
  for (const slice of [7, 100, 1000]) {
    it(`in slices of ${slice}: as the interpreter runs them`, () => {
      const want = trace("interp", slice);
      assert.equal(want.steps[want.steps.length - 1].exit, Exit.Halt);
      // The copy wrote the code, and took its #PF in the middle.
      assert.equal(new DataView(want.cpu.mem8.buffer).getUint32(IMM, true), 3);
      assert.ok(want.steps.some((s) => s.cr2 === UNMAPPED));
      assert.equal(want.cpu.regionSteps, 0);
      for (const variant of ["js", "wasm", "chain"] as const) {
        const got = trace(variant, slice);
        assertRunAs(want, got, variant);
        if (slice > 7)
          assert.ok(got.cpu.regionSteps > 3000, `${variant}: ${got.cpu.regionSteps} run by regions`);
      }
    });
  }
});
