/**
 * Page functions (src/cpu/wasm/gen.ts pageBody, backend.ts makePage): a page's chained wasm
 * blocks in one function, a transfer from one to another a branch inside it. Each case runs a
 * loop of four blocks in one paged page (loop, odd, W, and the block at 0) interpreted, as
 * chained wasm blocks with page functions off, and on, slice by slice, state and memory
 * compared, and pins that page functions were made:
 * - W, every 64th pass, flips the odd block's add into a sub and back (a write by a block of
 *   the page into its own code) and falls into the loop block (a block start: the jnz loop's
 *   target): W's block leaves at the write with EIP at a case of the same function, so only
 *   the dispatch's IO_STOP check keeps the old odd block from running; the host flipping it
 *   between slices instead;
 * - slices of 13 and 41 end the budget at transfers inside the function;
 * Page functions are off by default (TSXEN_WASM_PAGES=1 turns them on): the variants here set
 * WasmBackend.pages themselves.
 * - the odd block calls shrd's handler (its site is found by IO_EIP, not by the block the
 *   chain entered by), and a read of a page not present takes a #PF in the loop block;
 * - the page run through another linear address (same frame), as a copy in another frame,
 *   and with CS's base not page-aligned (page offsets are CS.base + EIP);
 * - a call into another page and back: the callee is not in the function, the chain runs it.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Cpu } from "../src/cpu/cpu.js";
import { CR0_PG, EAX, ECX, ESI, ESP, Exit } from "../src/cpu/regs.js";
import { wasmBackend } from "../src/cpu/wasm/backend.js";
import { le32 as d } from "./helpers/bytes.js";
import { type CpuState, runSlice, variantCpu } from "./helpers/cpu-state.js";

const PD = 0x80000;
const PT = 0x81000;
/** The loop's page V on frame FA; V3 another mapping of FA; V4 a copy of it in frame FE. */
const V = 0x5000;
const FA = 0x6000;
const V3 = 0x30000;
const V4 = 0x31000;
const FE = 0x32000;
/** The callee's page (cross case) and its frame. */
const V2 = 0xc000;
const FC = 0xd000;
const DATA = 0x10000;
const N = 6000;
/** Offset of the odd block's add (W flips it into a sub). */
const ODD = 7;

// 0  mov ecx,N; jmp loop
// 7  odd: add eax,edx; shrd eax,edx,3; jmp join
// 15 W: xor byte [V+ODD],0x28          (add <-> sub; falls into loop)
// 22 loop: mov edx,[esi]; test dl,1; jnz odd; sub eax,edx
// 31 join: xor eax,ecx; add esi,4; dec ecx; jz end; test cl,63; jnz loop; jmp W
// 46 end: hlt
// cross: 13 call V2; 18 jmp join; 20 nop; nop (no W: its jmp goes to 20); V2: add eax,ecx; ret
function program(cross: boolean): number[] {
  return [
    [0xb9, ...d(N)],
    [0xeb, 22 - 7],
    [0x01, 0xd0],
    [0x0f, 0xac, 0xd0, 0x03],
    cross
      ? [0xe8, ...d(V2 - (V + 18)), 0xeb, 31 - 20, 0x90, 0x90]
      : [0xeb, 31 - 15, 0x80, 0x35, ...d(V + ODD), 0x28],
    [0x8b, 0x16],
    [0xf6, 0xc2, 0x01],
    [0x75, (7 - 29) & 0xff],
    [0x29, 0xd0],
    [0x31, 0xc8],
    [0x83, 0xc6, 0x04],
    [0x49],
    [0x74, 46 - 39],
    [0xf6, 0xc1, 0x3f],
    [0x75, (22 - 44) & 0xff],
    [0xeb, ((cross ? 20 : 15) - 46) & 0xff],
    [0xf4],
  ].flat();
}

type Case = "self" | "host" | "alias" | "copy" | "csbase" | "fault" | "cross";
type PVariant = "interp" | "nopage" | "page";

function machine(kase: Case, variant: PVariant): Cpu {
  const cpu = variantCpu(variant === "interp" ? "interp" : "chain", 1 << 20);
  const w = wasmBackend(cpu);
  if (w !== null) w.pages = variant === "page";
  const mem = new DataView(cpu.mem8.buffer, cpu.mem8.byteOffset);
  mem.setUint32(PD, PT | 3, true);
  for (let p = 0; p < 256; p++) mem.setUint32(PT + p * 4, (p << 12) | 3, true);
  mem.setUint32(PT + (V >>> 12) * 4, FA | 3, true);
  mem.setUint32(PT + (V3 >>> 12) * 4, FA | 3, true);
  mem.setUint32(PT + (V4 >>> 12) * 4, FE | 3, true);
  // The fault case: the data's fifth page is not present (the loop's read there takes a #PF).
  if (kase === "fault") mem.setUint32(PT + ((DATA >>> 12) + 4) * 4, 0, true);
  const code = program(kase === "cross");
  cpu.mem8.set(code, FA);
  cpu.mem8.set(code, FE);
  if (kase === "cross") {
    cpu.mem8.set([0x01, 0xc8, 0xc3], FC);
    mem.setUint32(PT + (V2 >>> 12) * 4, FC | 3, true);
  }
  // Odd and even items mixed (bit 0 of each dword): the loop goes from block to block.
  for (let i = 0; i < 4 * N; i++) cpu.mem8[DATA + i] = (i * 7 + (i >> 2) + (i >> 5)) & 0xff;
  cpu.setCr3(PD);
  cpu.setCr0(cpu.cr0 | CR0_PG);
  const base = kase === "csbase" ? 0x340 : 0;
  if (base !== 0) cpu.loadSegmentCache(1, 0x08, base, 0xfffff000, 0xc09b);
  cpu.eip = (kase === "alias" ? V3 : kase === "copy" ? V4 : V) - base;
  cpu.regs[ESP] = 0x9000;
  cpu.regs[ESI] = DATA;
  const on = variant !== "interp";
  cpu.blockThreshold = on ? 2 : 0;
  cpu.regionThreshold = on ? 2 : 0;
  return cpu;
}

/** The run in slices (the host flipping the odd block every 5th slice in the host case). */
function trace(kase: Case, variant: PVariant, slice: number, max = 1_000_000) {
  const cpu = machine(kase, variant);
  const steps: CpuState[] = [];
  for (let i = 0; i < max; i++) {
    const s = runSlice(cpu, slice);
    steps.push(s);
    if (s.exit !== Exit.Budget) break;
    if (kase === "host" && i % 5 === 2) {
      cpu.mem8[FA + ODD] ^= 0x28;
      cpu.invalidateCode(FA + ODD, 1);
    }
    // alias and copy: half-way, the loop goes on at the page's other mapping / copy at V.
    if ((kase === "alias" || kase === "copy") && cpu.retired > 5 * N && (cpu.eip & ~0xfff) !== V)
      cpu.eip = V + (cpu.eip & 0xfff);
  }
  return {
    steps,
    cpu,
    cr2: cpu.cr2,
    mem: [cpu.mem8.slice(DATA, DATA + 4 * N), cpu.mem8.slice(FA, FA + 0x1000)],
  };
}

describe("page functions: a page's wasm blocks in one function", () => {
  for (const kase of ["self", "host", "alias", "copy", "csbase", "fault", "cross"] as const)
    for (const slice of [7, 13, 41, 1000, 10_000_000]) {
      it(`${kase}, in slices of ${slice}`, () => {
        const a = trace(kase, "interp", slice);
        const last = a.steps[a.steps.length - 1];
        if (kase === "fault") {
          assert.equal(last.exit, Exit.Exception);
          assert.equal(last.vector, 14);
          assert.equal(a.cr2, DATA + 0x4000);
        } else assert.equal(last.exit, Exit.Halt);
        assert.ok(a.cpu.retired > 8 * Math.min(N, 4096), `${a.cpu.retired} retired`);
        for (const variant of ["nopage", "page"] as const) {
          // Bounded by the interpreter's slices: a wrong run fails rather than runs on.
          const b = trace(kase, variant, slice, a.steps.length + 5);
          assert.deepEqual(b.steps, a.steps, variant);
          assert.deepEqual(b.mem, a.mem, variant);
          assert.equal(b.cr2, a.cr2, variant);
          const w = wasmBackend(b.cpu);
          if (variant === "page") {
            // (Slices of 7 and 13 cut most blocks before they run: few blocks get compiled.)
            if (slice > 13) assert.ok((w?.pagesMade ?? 0) + (w?.pagesReused ?? 0) > 0, "page functions made");
            if (kase === "cross" && slice >= 1000)
              assert.ok((w?.chainHops ?? 0) > N / 2, `${w?.chainHops} crossings`);
          } else assert.equal(w?.pagesMade, 0);
        }
      });
    }
});

describe("page functions: the odd block flipped really changes the result", () => {
  it("EAX differs with W's flips taken out", () => {
    const a = trace("self", "interp", 10_000_000);
    const cpu = machine("self", "interp");
    cpu.mem8[FA + 15 + 6] = 0; // xor with 0: no flip
    cpu.run(10_000_000);
    assert.notEqual(cpu.regs[EAX], a.cpu.regs[EAX]);
    assert.equal(cpu.regs[ECX], 0);
    assert.equal(cpu.regs[ESI], DATA + 4 * N);
  });
});
