/**
 * Kept page-crossing instructions (cpu.ts fetchSlot, crossingAt): an instruction crossing a
 * page end is in no frame's decoded code, so the CPU keeps a few decoded in slots of their own
 * and reuses one only when its bytes in both pages are unchanged, the second page translated as
 * the decode's fetch would translate it, and the instruction inside the CS limit. A hot loop
 * runs `cmp dword [ebx+0x48], 0x8000` across a page end (as busybox's gzip does; its CF counted
 * by the loop, the compared value crossing the immediates the test writes) while the host
 * writes its bytes in the first or the second page, remaps the second page (with and without
 * invlpg), unmaps it (#PF on the fetch, CR2 at the page) or cuts CS's limit inside the
 * instruction (#GP). The state after every slice, CR2, the error code and memory must be those
 * of the interpreter decoding it afresh at every run (keepCrossing off), interpreted and in JS
 * and wasm blocks (chained or not), and the kept decode must have been used, by the loop's region
 * where blocks run (Cpu.crossingStep: the instruction without a return to the run loop).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Cpu } from "../src/cpu/cpu.js";
import { CR0_PG, CS, EBX, ESP, Exit } from "../src/cpu/regs.js";
import { le32 as d } from "./helpers/bytes.js";
import {
  assertRunAs,
  type FaultStep,
  traceMappingFaults,
  type Variant,
  variantCpu,
} from "./helpers/cpu-state.js";

const PD = 0x100000;
const PT = 0x101000;
/** The crossing instruction starts 4 bytes before the end of the page at 0x5000. */
const AT = 0x5ffc;
/** Another frame holding the second page's code with another immediate (the remap's target). */
const OTHER = 0x7000;
const DATA = 0x20000;

type Event =
  | "none"
  | "page 1 written"
  | "page 2 written"
  | "remap"
  | "remap, no invlpg"
  | "unmap"
  | "CS limit";
const EVENTS: Event[] = [
  "none",
  "page 1 written",
  "page 2 written",
  "remap",
  "remap, no invlpg",
  "unmap",
  "CS limit",
];

/** The loop's start: inc [ebx+0x48]; adc edx, 0 (the cmp's CF); 8 nops; dec ecx; jnz +1; hlt; jmp AT. */
const LOOP = 0x5f00;

/** The second page's code: the instruction's last 3 bytes (imm2 its second byte), then jmp LOOP. */
function tail(imm2: number): number[] {
  return [imm2, 0x00, 0x00, 0xe9, ...d(LOOP - 0x6008)];
}

function machine(variant: Variant, keep: boolean): Cpu {
  const cpu = variantCpu(variant, 1 << 22, 2);
  cpu.keepCrossing = keep;
  const m = new DataView(cpu.mem8.buffer, cpu.mem8.byteOffset);
  m.setUint32(PD, PT | 3, true);
  for (let p = 0; p < 1024; p++) m.setUint32(PT + p * 4, (p << 12) | 3, true);
  cpu.mem8.set([0xb9, ...d(3000), 0xe9, ...d(LOOP - 0x500a)], 0x5000);
  const body = [0xff, 0x43, 0x48, 0x83, 0xd2, 0x00, ...new Array(8).fill(0x90), 0x49, 0x75, 0x01, 0xf4];
  cpu.mem8.set([...body, 0xe9, ...d(AT - (LOOP + body.length + 5))], LOOP);
  // At AT: cmp dword [ebx+0x48], 0x8000 (81 7b 48 00 | 80 00 00).
  cpu.mem8.set([0x81, 0x7b, 0x48, 0x00], AT);
  cpu.mem8.set(tail(0x80), 0x6000);
  cpu.mem8.set(tail(0x7f), OTHER);
  // The compared value crosses 0x7f00 and 0x8000 during the loop (not 0x9000); [ebx+0x4c] is
  // above all three.
  m.setUint32(DATA + 0x48, 0x7a00, true);
  m.setUint32(DATA + 0x4c, 0xffffffff, true);
  cpu.setCr3(PD);
  cpu.setCr0(cpu.cr0 | CR0_PG);
  cpu.eip = 0x5000;
  cpu.regs[EBX] = DATA;
  cpu.regs[ESP] = 0x80000;
  return cpu;
}

/** The host's event every 2,000 instructions or so: alternates what it does to the instruction. */
function act(cpu: Cpu, event: Event, n: number): void {
  const pte = PT + 6 * 4;
  const m = new DataView(cpu.mem8.buffer, cpu.mem8.byteOffset);
  switch (event) {
    case "page 1 written":
      // The displacement: 0x48 and 0x4c in turn.
      cpu.physWrite8(AT + 2, n & 1 ? 0x4c : 0x48);
      return;
    case "page 2 written":
      cpu.physWrite8(0x6000, n & 1 ? 0x90 : 0x80);
      return;
    case "remap":
    case "remap, no invlpg":
      m.setUint32(pte, (n & 1 ? OTHER : 0x6000) | 3, true);
      if (event === "remap") cpu.invlpg(0x6000);
      return;
    case "unmap":
      m.setUint32(pte, 0x6000 | 2, true);
      cpu.invlpg(0x6000);
      return;
    case "CS limit":
      // The limit ends inside the instruction: the next fetch of it is #GP(0).
      cpu.loadSegmentCache(CS, cpu.segSel[CS], 0, AT + 2, 0x9b | 0x4000);
      return;
  }
}

function trace(
  variant: Variant,
  keep: boolean,
  event: Event,
  slice: number,
): { steps: FaultStep[]; cpu: Cpu } {
  const cpu = machine(variant, keep);
  const every = Math.max(1, Math.floor(2000 / slice));
  const { steps } = traceMappingFaults(cpu, slice, PT, (i) => {
    if (i % every === 0) act(cpu, event, i / every);
  });
  return { steps, cpu };
}

describe("a kept page-crossing instruction", () => {
  for (const event of EVENTS)
    for (const slice of [7, 100, 5000]) {
      it(`${event}, in slices of ${slice}: as decoded afresh at every run`, () => {
        const want = trace("interp", false, event, slice);
        const last = want.steps[want.steps.length - 1];
        assert.equal(last.exit, event === "CS limit" ? Exit.Exception : Exit.Halt);
        const mem = Buffer.from(want.cpu.mem8.buffer, want.cpu.mem8.byteOffset, 0x400000);
        for (const variant of ["interp", "js", "wasm", "chain"] as const) {
          const got = trace(variant, true, event, slice);
          assert.deepEqual(got.steps, want.steps, variant);
          assert.ok(mem.equals(Buffer.from(got.cpu.mem8.buffer, got.cpu.mem8.byteOffset, 0x400000)), variant);
          // The loop's 3,000 runs of it (fewer when the limit stops it): most from the kept decode,
          // and with blocks most run by the loop's region (Cpu.crossingStep), not the run loop.
          if (event !== "CS limit") {
            assert.ok(got.cpu.crossingHits > 2000, `${variant}: ${got.cpu.crossingHits} kept runs`);
            if (variant !== "interp" && slice > 7)
              assert.ok(got.cpu.crossingSteps > 1500, `${variant}: ${got.cpu.crossingSteps} in the region`);
          }
        }
        assert.equal(want.cpu.crossingHits, 0);
      });
    }
});

/**
 * The kept instruction writing the code of the loop's region: `add dword [ebx+0x48], 0x100`
 * across the page end, where the loop loads EBX from a pointer the host turns now at data, now
 * at the loop's own `mov eax, imm32` (whose immediate the add then raises each pass). A region
 * running the instruction (Cpu.crossingStep) must return to the run loop after the write, as
 * after a block's: its table holds the blocks compiled from the old immediate.
 */
const PTR = DATA + 0x100;
/** EBX for the add to write the loop's `mov eax` immediate (at LOOP + 7). */
const INTO_CODE = LOOP + 7 - 0x48;

function writer(variant: Variant, keep: boolean): Cpu {
  const cpu = machine(variant, keep);
  // mov ebx, [PTR]; mov eax, 0; add edx, eax; dec ecx; jnz +1; hlt; jmp AT.
  const body = [0x8b, 0x1d, ...d(PTR), 0xb8, ...d(0), 0x01, 0xc2, 0x49, 0x75, 0x01, 0xf4];
  cpu.mem8.set([...body, 0xe9, ...d(AT - (LOOP + body.length + 5))], LOOP);
  cpu.mem8.set([0x81, 0x43, 0x48, 0x00], AT);
  cpu.mem8.set(tail(0x01), 0x6000);
  new DataView(cpu.mem8.buffer, cpu.mem8.byteOffset).setUint32(PTR, DATA, true);
  return cpu;
}

describe("a kept page-crossing instruction writing its region's code", () => {
  for (const slice of [7, 100, 5000]) {
    it(`in slices of ${slice}: as decoded afresh at every run`, () => {
      const run = (variant: Variant, keep: boolean) => {
        const cpu = writer(variant, keep);
        const m = new DataView(cpu.mem8.buffer, cpu.mem8.byteOffset);
        const every = Math.max(1, Math.floor(2000 / slice));
        const { steps } = traceMappingFaults(cpu, slice, PT, (i) => {
          if (i % every === 0) m.setUint32(PTR, (i / every) & 1 ? INTO_CODE : DATA, true);
        });
        return { steps, cpu };
      };
      const want = run("interp", false);
      assert.equal(want.steps[want.steps.length - 1].exit, Exit.Halt);
      // The immediate was raised (the add wrote the code) and the loop's sum saw it.
      assert.ok(new DataView(want.cpu.mem8.buffer).getUint32(LOOP + 7, true) > 0);
      for (const variant of ["js", "wasm", "chain"] as const) {
        const got = run(variant, true);
        assertRunAs(want, got, variant);
        if (slice > 7)
          assert.ok(got.cpu.crossingSteps > 500, `${variant}: ${got.cpu.crossingSteps} in the region`);
      }
    });
  }
});

/**
 * A kept crossing `call` back into the region's page, whose push writes that page's code when
 * ESP (loaded from PTR each pass) points into it: the region must return to the run loop after
 * the write (the fetch window moved) rather than look the call's target up in its old table;
 * and whose push takes a #PF on a stack page not present.
 */
const UNMAPPED = 0x300000;

function caller(variant: Variant, keep: boolean): Cpu {
  const cpu = machine(variant, keep);
  // mov esp, [PTR]; mov eax, 0; add edx, eax; dec ecx; jnz +1; hlt; jmp AT.
  const body = [0x8b, 0x25, ...d(PTR), 0xb8, ...d(0), 0x01, 0xc2, 0x49, 0x75, 0x01, 0xf4];
  cpu.mem8.set([...body, 0xe9, ...d(AT - (LOOP + body.length + 5))], LOOP);
  // call LOOP: e8 and the displacement's first three bytes here, its last in the next page.
  const rel = d(LOOP - (AT + 5));
  cpu.mem8.set([0xe8, ...rel.slice(0, 3)], AT);
  cpu.mem8[0x6000] = rel[3];
  new DataView(cpu.mem8.buffer, cpu.mem8.byteOffset).setUint32(PTR, DATA + 0x800, true);
  return cpu;
}

describe("a kept page-crossing call writing its region's code", () => {
  for (const slice of [100, 5000]) {
    it(`in slices of ${slice}: as decoded afresh at every run`, () => {
      const run = (variant: Variant, keep: boolean) => {
        const cpu = caller(variant, keep);
        const m = new DataView(cpu.mem8.buffer, cpu.mem8.byteOffset);
        const every = Math.max(1, Math.floor(2000 / slice));
        const { steps } = traceMappingFaults(cpu, slice, PT, (i) => {
          if (i % every !== 0) return;
          // The push's 4 bytes on data, on the `mov eax` immediate (LOOP + 7), or on a page not
          // present (a #PF in the region: ESP back to what the pass loaded, then the push again).
          const n = (i / every) % 3;
          m.setUint32(PTR, n === 0 ? DATA + 0x800 : n === 1 ? LOOP + 11 : UNMAPPED + 0x800, true);
          if (n === 2) {
            m.setUint32(PT + (UNMAPPED >>> 12) * 4, UNMAPPED | 2, true);
            cpu.invlpg(UNMAPPED);
          }
        });
        return { steps, cpu };
      };
      const want = run("interp", false);
      assert.equal(want.steps[want.steps.length - 1].exit, Exit.Halt);
      assert.equal(new DataView(want.cpu.mem8.buffer).getUint32(LOOP + 7, true), AT + 5);
      assert.ok(want.steps.filter((s) => s.cr2 === UNMAPPED + 0x7fc).length > 0);
      for (const variant of ["js", "wasm", "chain"] as const) {
        const got = run(variant, true);
        assertRunAs(want, got, variant);
        assert.ok(got.cpu.crossingSteps > 500, `${variant}: ${got.cpu.crossingSteps} in the region`);
      }
    });
  }
});
