/**
 * Chains of wasm blocks (src/cpu/wasm/backend.ts link, gen.ts chainBody): a JS region enters
 * a page's wasm blocks through the chain, which runs them one after another inside wasm. A
 * chain must stop where the JS region would: a code write, a remap of its page (the PTE
 * rewritten, then invlpg), the budget. Each case runs a hot loop of two chained blocks in a
 * paged page, with the action taken from inside the loop, interpreted, as JS blocks and as
 * wasm blocks with the chain off and on, and compares the state after every slice and the
 * memory after; counters pin that the chain ran. A last case turns the code of a page over
 * many times (each time other operands, the decode cache flushed so that slots are given
 * again) and checks that the back end's table entries, shared bodies and chain ids stay
 * bounded while the runs stay exact.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Cpu } from "../src/cpu/cpu.js";
import { CR0_PG, EAX, ECX, ESI, ESP, Exit } from "../src/cpu/regs.js";
import { wasmBackend } from "../src/cpu/wasm/backend.js";
import { le32 as d } from "./helpers/bytes.js";
import { type CpuState, runSlice, runSlices, type Variant, variantCpu } from "./helpers/cpu-state.js";

const PD = 0x80000;
const PT = 0x81000;
/** The linear page of the loop, mapped to frame FA (or FB after a remap). */
const V = 0x5000;
const FA = 0x6000;
const FB = 0x7000;
const DATA = 0x10000;
const N = 20000;
/** ECX at which the loop's action runs (once). */
const SWITCH = 10000;

/**
 * 17 bytes run once, at ECX = SWITCH: the loop's page remapped to FB (PTE, invlpg), its PTE
 * rewritten without invlpg (the TLB keeps FA), a write into the odd block's code (its add
 * becomes a sub), or nothing.
 */
type Action = "remap" | "pte" | "write" | "none" | "walk" | "walk-none";
const PTE_V = PT + (V >>> 12) * 4;
/** Offset in the page of the odd block's add eax,edx, and of the cmp's immediate. */
const ODD = 7;
const CMP_IMM = 27;
const ACTIONS: Record<Action, number[]> = {
  remap: [0xc7, 0x05, ...d(PTE_V), ...d(FB | 3), 0x0f, 0x01, 0x3d, ...d(V)],
  pte: [0xc7, 0x05, ...d(PTE_V), ...d(FB | 3), ...new Array(7).fill(0x90)],
  write: [0xc6, 0x05, ...d(V + ODD), 0x29, ...new Array(10).fill(0x90)],
  none: new Array(17).fill(0x90),
  walk: [],
  "walk-none": [],
};

/**
 * The walk case: the page table of linear 0x400000-0x7fffff is the loop's own frame, and
 * its PTE for Q (0x00010003: DATA, accessed bit clear) is the immediate of the odd block's
 * mov ebx. The loop's block L reads Q once (at ECX = SWITCH): the page walk sets the
 * accessed bit, a write into the code frame by a read (no code-hit check after it), so only
 * the fetch-window drop tells the chain to stop before it runs the odd block's old copy.
 */
const Q = 0x403000;
// 0 mov ecx,N; jmp loop
// odd (7): add eax,edx; nop; nop; mov ebx,0x00010003 (imm at 12: PTE 3); add eax,ebx; jmp join
// loop (20): mov edx,[esi]; test dl,1; jnz odd; sub eax,edx
// join (29): xor eax,ecx; add esi,4; cmp ecx,SWITCH; jne skip; mov edi,[Q] (or nops)
// skip (48): dec ecx; jnz loop; hlt
function walkProgram(read: boolean): number[] {
  return [
    [0xb9, ...d(N)],
    [0xeb, 20 - 7],
    [0x01, 0xd0],
    [0x90, 0x90],
    [0xbb, ...d(0x10003)],
    [0x01, 0xd8],
    [0xeb, 29 - 20],
    [0x8b, 0x16],
    [0xf6, 0xc2, 0x01],
    [0x75, (7 - 27) & 0xff],
    [0x29, 0xd0],
    [0x31, 0xc8],
    [0x83, 0xc6, 0x04],
    [0x81, 0xf9, ...d(SWITCH)],
    [0x75, 48 - 42],
    read ? [0x8b, 0x3d, ...d(Q)] : new Array(6).fill(0x90),
    [0x49],
    [0x75, (20 - 51) & 0xff],
    [0xf4],
  ].flat();
}

// 0 mov ecx,N; jmp loop
// odd (7): add eax,edx; jmp join            (a block of its own: the loop's jnz odd is backward)
// loop (11): mov edx,[esi]; test dl,1; jnz odd
// (18) sub eax,edx
// join (20): xor eax,ecx; add esi,4; cmp ecx,SWITCH; jne skip; <action, 17 bytes>
// skip (50): dec ecx; jnz loop; hlt
// Odd items run block loop, then block odd: a chain from one to the other and back.
function program(action: Action, oddOp = 0x01): number[] {
  if (action === "walk" || action === "walk-none") return walkProgram(action === "walk");
  return [
    [0xb9, ...d(N)],
    [0xeb, 11 - 7],
    [oddOp, 0xd0],
    [0xeb, 20 - 11],
    [0x8b, 0x16],
    [0xf6, 0xc2, 0x01],
    [0x75, (7 - 18) & 0xff],
    [0x29, 0xd0],
    [0x31, 0xc8],
    [0x83, 0xc6, 0x04],
    [0x81, 0xf9, ...d(SWITCH)],
    [0x75, 17],
    ACTIONS[action],
    [0x49],
    [0x75, (11 - 53) & 0xff],
    [0xf4],
  ].flat();
}

function machine(action: Action, variant: Variant): Cpu {
  const cpu = variantCpu(variant, 1 << 20);
  const mem = new DataView(cpu.mem8.buffer, cpu.mem8.byteOffset);
  mem.setUint32(PD, PT | 3, true);
  for (let p = 0; p < 256; p++) mem.setUint32(PT + p * 4, (p << 12) | 3, true);
  mem.setUint32(PTE_V, FA | 3, true);
  mem.setUint32(PD + 4, FA | 3, true);
  cpu.mem8.set(program(action), FA);
  // FB: the same loop but for the odd block's operation (sub), so the remap shows.
  cpu.mem8.set(program(action, 0x29), FB);
  cpu.mem8[FB + ODD] = 0x29;
  for (let i = 0; i < 4 * N; i++) cpu.mem8[DATA + i] = (i * 37 + (i >> 8)) & 0xff;
  cpu.setCr3(PD);
  cpu.setCr0(cpu.cr0 | CR0_PG);
  cpu.eip = V;
  cpu.regs[ESP] = 0x9000;
  cpu.regs[ESI] = DATA;
  const on = variant !== "interp";
  cpu.blockThreshold = on ? 2 : 0;
  cpu.regionThreshold = on ? 2 : 0;
  return cpu;
}

function trace(action: Action, variant: Variant, slice: number): { steps: CpuState[]; cpu: Cpu } {
  const cpu = machine(action, variant);
  return { steps: runSlices(cpu, slice, 1_000_000), cpu };
}

/** The memory a run may change: the data, the page directory and table, both code frames. */
function memory(cpu: Cpu): Uint8Array[] {
  return [
    cpu.mem8.slice(DATA, DATA + 4 * N),
    cpu.mem8.slice(PD, PT + 0x1000),
    cpu.mem8.slice(FA, FB + 0x1000),
  ];
}

/**
 * Chains crossing pages (gen.ts chainBody's hop): a loop on page V calls into page V2 (frame
 * FC) and returns, each iteration two crossings the chain takes inside wasm. Mid-loop, from
 * inside it: V2 remapped to FD (PTE, invlpg), its PTE rewritten without invlpg (the TLB keeps
 * FC), FC's code written, V2 unmapped (PTE 0, invlpg: the next call takes a #PF on its
 * fetch), the PTE rewritten and the TLB flushed by a CR3 reload, or nothing.
 */
const V2 = 0xc000;
const FC = 0xd000;
const FD = 0xe000;
const PTE_V2 = PT + (V2 >>> 12) * 4;
type CrossAction = "remap" | "pte" | "write" | "unmap" | "flush" | "none";
const CROSS_ACTIONS: Record<CrossAction, number[]> = {
  remap: [0xc7, 0x05, ...d(PTE_V2), ...d(FD | 3), 0x0f, 0x01, 0x3d, ...d(V2)],
  pte: [0xc7, 0x05, ...d(PTE_V2), ...d(FD | 3), ...new Array(7).fill(0x90)],
  write: [0xc6, 0x05, ...d(V2), 0x29, ...new Array(10).fill(0x90)],
  unmap: [0xc7, 0x05, ...d(PTE_V2), ...d(0), 0x0f, 0x01, 0x3d, ...d(V2)],
  // mov [PTE], FD|P|RW; mov edi,cr3; mov cr3,edi; nop
  flush: [0xc7, 0x05, ...d(PTE_V2), ...d(FD | 3), 0x0f, 0x20, 0xdf, 0x0f, 0x22, 0xdf, 0x90],
  none: new Array(17).fill(0x90),
};

// V: 0 mov ecx,N
// loop (5): mov edx,[esi]; call V2; add esi,4; cmp ecx,SWITCH; jne skip; <action, 17 bytes>
// skip (40): dec ecx; jnz loop; hlt
// V2 (FC): add eax,edx; xor eax,ecx; ret     (FD: sub eax,edx; add eax,ecx; ret)
function crossProgram(action: CrossAction): number[] {
  return [
    [0xb9, ...d(N)],
    [0x8b, 0x16],
    [0xe8, ...d(V2 - (V + 12))],
    [0x83, 0xc6, 0x04],
    [0x81, 0xf9, ...d(SWITCH)],
    [0x75, 17],
    CROSS_ACTIONS[action],
    [0x49],
    [0x75, (5 - 43) & 0xff],
    [0xf4],
  ].flat();
}

type CrossVariant = Variant | "nohop";

function crossMachine(action: CrossAction, variant: CrossVariant): Cpu {
  const cpu = machine("none", variant === "nohop" ? "chain" : variant);
  const w = wasmBackend(cpu);
  if (w !== null) w.hop = variant !== "nohop";
  cpu.mem8.fill(0, FA, FA + 0x1000);
  cpu.mem8.set(crossProgram(action), FA);
  cpu.mem8.set([0x01, 0xd0, 0x31, 0xc8, 0xc3], FC);
  cpu.mem8.set([0x29, 0xd0, 0x01, 0xc8, 0xc3], FD);
  new DataView(cpu.mem8.buffer, cpu.mem8.byteOffset).setUint32(PTE_V2, FC | 3, true);
  cpu.invalidateCode(0, 1 << 20);
  cpu.setCr3(PD);
  return cpu;
}

function crossTrace(action: CrossAction, variant: CrossVariant, slice: number) {
  const cpu = crossMachine(action, variant);
  const steps = runSlices(cpu, slice, 1_000_000);
  return {
    steps,
    cpu,
    cr2: cpu.cr2,
    mem: [
      cpu.mem8.slice(DATA, DATA + 4 * N),
      cpu.mem8.slice(PD, PT + 0x1000),
      cpu.mem8.slice(FA, FD + 0x1000),
    ],
  };
}

describe("chains of wasm blocks crossing pages", () => {
  for (const action of ["remap", "pte", "write", "unmap", "flush", "none"] as const)
    for (const slice of [3, 7, 50, 1000, 10_000_000]) {
      it(`a call into the next page and its return inside the chain, with a ${action} of the callee mid-loop, in slices of ${slice}`, () => {
        const a = crossTrace(action, "interp", slice);
        const last = a.steps[a.steps.length - 1];
        if (action === "unmap") {
          assert.equal(last.exit, Exit.Exception);
          assert.equal(last.vector, 14);
          assert.equal(a.cr2, V2);
        } else assert.equal(last.exit, Exit.Halt);
        // The remap, write and flush change what the loop runs; the PTE alone does not.
        const none = crossTrace("none", "interp", 10_000_000);
        if (action === "pte" || action === "none") assert.equal(a.cpu.regs[EAX], none.cpu.regs[EAX]);
        else assert.notEqual(a.cpu.regs[EAX], none.cpu.regs[EAX], `the ${action} changed what the loop ran`);
        for (const variant of ["js", "wasm", "chain", "nohop"] as const) {
          const b = crossTrace(action, variant, slice);
          assert.deepEqual(b.steps, a.steps, variant);
          assert.deepEqual(b.mem, a.mem, variant);
          assert.equal(b.cr2, a.cr2, variant);
          const w = wasmBackend(b.cpu);
          const hops = w?.chainHops ?? 0;
          if (variant === "chain" && slice >= 1000) {
            // Two crossings an iteration up to the action, nearly all inside the chain.
            assert.ok(hops > 2 * (N - SWITCH) - 200, `${hops} crossings inside chains`);
            assert.ok(b.cpu.regionRuns < 60 + 3 * b.steps.length, `${b.cpu.regionRuns} region entries`);
          } else if (variant !== "chain") assert.equal(hops, 0, variant);
        }
      });
    }
});

describe("chains of wasm blocks", () => {
  for (const action of ["remap", "pte", "write", "walk", "none"] as const)
    for (const slice of [3, 7, 50, 1000, 10_000_000]) {
      it(`a hot loop of two chained blocks, with a ${action} of its page mid-loop, in slices of ${slice}`, () => {
        const a = trace(action, "interp", slice);
        assert.equal(a.steps[a.steps.length - 1].exit, Exit.Halt);
        // The remap and the write change what the loop runs; the PTE alone does not (the TLB
        // keeps the old frame, and so must every back end).
        const none = trace(action === "walk" ? "walk-none" : "none", "interp", 10_000_000);
        if (action === "remap" || action === "write" || action === "walk")
          assert.notEqual(a.cpu.regs[EAX], none.cpu.regs[EAX], `the ${action} changed what the loop ran`);
        else assert.equal(a.cpu.regs[EAX], none.cpu.regs[EAX]);
        for (const variant of ["js", "wasm", "chain"] as const) {
          const b = trace(action, variant, slice);
          assert.deepEqual(b.steps, a.steps, variant);
          assert.deepEqual(memory(b.cpu), memory(a.cpu), variant);
          const w = wasmBackend(b.cpu);
          if (variant === "chain" && slice >= 1000) {
            // Every odd item runs two blocks, the second inside the chain.
            assert.ok((w?.chainRuns ?? 0) > N / 2 - 200, `${w?.chainRuns} chained block runs`);
          } else if (variant !== "chain") assert.equal(w?.chainRuns ?? 0, 0);
        }
      });
    }

  it("keep table entries, bodies and ids bounded when a page's code turns over, and stay exact", () => {
    const turns = 300;
    const run = (variant: Variant) => {
      const cpu = machine("none", variant);
      const steps: CpuState[] = [];
      const held: number[] = [];
      for (let t = 0; t < turns; t++) {
        // The host rewrites the immediate of the loop's cmp each turn (other bytes, so another
        // wasm body), restarts the loop, and every few turns flushes the decode cache (its
        // slots are given again: a slot's new block replaces its old one).
        cpu.mem8.set(d(t * 7919 + 1), FA + CMP_IMM);
        cpu.invalidateCode(FA, 0x1000);
        if (t % 3 === 0) cpu.dc.flush();
        cpu.eip = V + 11;
        cpu.regs[ECX] = 200 + (t % 50);
        cpu.regs[ESI] = DATA;
        for (let i = 0; i < 4; i++) steps.push(runSlice(cpu, 251));
        const h = wasmBackend(cpu)?.held();
        if (h !== undefined) held.push(Math.max(h.entries, h.bodies, h.ids, h.known));
      }
      return { steps, held, mem: memory(cpu), cpu };
    };
    const a = run("interp");
    for (const variant of ["wasm", "chain"] as const) {
      const b = run(variant);
      assert.deepEqual(b.steps, a.steps, variant);
      assert.deepEqual(b.mem, a.mem, variant);
      // Each turn compiles a few blocks of new bodies: without releasing the old ones the
      // table would hold hundreds of entries by the end (blocks dropped with their frame are
      // released at a sweep, every 64 module compiles; those whose slot was given again at once).
      const most = Math.max(...b.held);
      assert.ok(most < 150, `${variant}: at most ${most} entries/bodies/ids/blocks held`);
      const w = wasmBackend(b.cpu);
      assert.ok((w?.blocks ?? 0) > turns, `${variant}: ${w?.blocks} wasm blocks placed`);
      if (variant === "chain") assert.ok((w?.chainRuns ?? 0) > turns, `${w?.chainRuns} chained runs`);
    }
  });
});

/**
 * What a chain's hop checks before it runs the next page's block, as the fetch there would:
 * the TLB entry must be readable at the CPL, and EIP within the CS limit. Each case warms a
 * loop crossing pages at ring 0 with a 4 GiB CS, then the host changes what a fetch of the
 * second page may do (CPL 3 with that page supervisor-only; CS's limit ending at the first
 * page), at the same retired count in every variant, and the run must fault there as the
 * interpreter does: a #PF (user fetch) or a #GP(0) at the second page's first instruction.
 */
type HopCheck = "user" | "limit";
const P1 = 0x20000;
const P2 = 0x21000;
/** Instructions run before the host's change (2 + 4 a pass: EIP at P2-4); the loop is chained by then. */
const WARM = 30_002;

// P1: mov ecx,N; jmp P2-4.  P2-4: add eax,ecx; xor eax,edx (to the page end).
// P2: dec ecx; jnz P2-4; hlt.
function hopMachine(check: HopCheck, variant: CrossVariant): Cpu {
  const cpu = machine("none", variant === "nohop" ? "chain" : variant);
  const w = wasmBackend(cpu);
  if (w !== null) w.hop = variant !== "nohop";
  const mem = new DataView(cpu.mem8.buffer, cpu.mem8.byteOffset);
  if (check === "user") {
    // Everything user-accessible but the second page (and the loop's V mapping, unused here).
    mem.setUint32(PD, PT | 7, true);
    for (let p = 0; p < 256; p++) mem.setUint32(PT + p * 4, (p << 12) | 7, true);
    mem.setUint32(PT + (P2 >>> 12) * 4, P2 | 3, true);
  }
  cpu.mem8.set([0xb9, ...d(N), 0xe9, ...d(P2 - 4 - (P1 + 10))], P1);
  cpu.mem8.set([0x01, 0xc8, 0x31, 0xd0], P2 - 4);
  cpu.mem8.set([0x49, 0x75, (-7 & 0xff) >>> 0, 0xf4], P2);
  cpu.invalidateCode(0, 1 << 20);
  cpu.setCr3(PD);
  cpu.eip = P1;
  while (cpu.retiredTotal < WARM) {
    const exit = cpu.run(WARM - cpu.retiredTotal);
    assert.equal(exit, Exit.Budget, "the warm-up ran to its count");
  }
  if (check === "user") cpu.setCpl(3);
  else cpu.loadSegmentCache(1, 0x08, 0, P2 - 1, 0xc09b);
  return cpu;
}

describe("a chain's hop checks the next page as its fetch would", () => {
  for (const check of ["user", "limit"] as const)
    for (const slice of [5, 1000, 10_000_000]) {
      it(`${check === "user" ? "ring 3 reaching a supervisor-only page" : "EIP past CS's limit"} at a crossing the chain had taken, in slices of ${slice}`, () => {
        const a = hopMachine(check, "interp");
        const ref = runSlices(a, slice, 1_000_000);
        const last = ref[ref.length - 1];
        assert.equal(last.exit, Exit.Exception);
        assert.equal(last.vector, check === "user" ? 14 : 13);
        assert.equal(last.eip, P2, "the fault is the second page's fetch");
        if (check === "user") {
          assert.equal(a.cr2, P2);
          assert.equal(a.exitErrorCode, 5, "a user read (fetch) of a present page");
        } else assert.equal(a.exitErrorCode, 0);
        for (const variant of ["js", "wasm", "chain", "nohop"] as const) {
          const b = hopMachine(check, variant);
          const hopsBefore = wasmBackend(b)?.chainHops ?? 0;
          const steps = runSlices(b, slice, 1_000_000);
          assert.deepEqual(steps, ref, variant);
          assert.equal(b.exitErrorCode, a.exitErrorCode, variant);
          assert.equal(b.cr2, a.cr2, variant);
          // The crossing was taken inside the chain before the change (so the hop, not a
          // region build, meets the changed page).
          if (variant === "chain") assert.ok(hopsBefore > 10_000, `${hopsBefore} crossings inside chains`);
        }
      });
    }
});
