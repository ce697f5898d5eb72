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
 * and wasm blocks, and the kept decode must have been used.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Cpu } from "../src/cpu/cpu.js";
import { CR0_PG, CS, EBX, ESP, Exit } from "../src/cpu/regs.js";
import { le32 as d } from "./helpers/bytes.js";
import { type FaultStep, traceMappingFaults, type Variant, variantCpu } from "./helpers/cpu-state.js";

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
        for (const variant of ["interp", "js", "wasm"] as const) {
          const got = trace(variant, true, event, slice);
          assert.deepEqual(got.steps, want.steps, variant);
          assert.ok(mem.equals(Buffer.from(got.cpu.mem8.buffer, got.cpu.mem8.byteOffset, 0x400000)), variant);
          // The loop's 3,000 runs of it (fewer when the limit stops it): most from the kept decode.
          if (event !== "CS limit")
            assert.ok(got.cpu.crossingHits > 2000, `${variant}: ${got.cpu.crossingHits} kept runs`);
        }
        assert.equal(want.cpu.crossingHits, 0);
      });
    }
});
