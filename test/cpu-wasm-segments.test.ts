/**
 * The segment check of a compiled block's inline memory access (src/cpu/wasm/gen.ts check):
 * hot loops walk an offset across a data segment's limit, one byte a pass, reading, writing
 * or read-modify-writing bytes, words and dwords through DS, ES (a prefix) and SS (EBP), in
 * expand-up and expand-down segments; and a loop warmed on a writable segment keeps running
 * after the host makes it read-only, or shrinks its limit under it. Each must fault (#GP(0),
 * #SS(0) for SS) at the instruction and retired count the interpreter does, with JS blocks
 * and with wasm blocks with the chain off and on, in slices of 13, 1000 and whole; the state
 * after every slice and the memory after are compared.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Cpu } from "../src/cpu/cpu.js";
import { DS, EBP, ES, ESI, Exit, SS } from "../src/cpu/regs.js";
import { wasmBackend } from "../src/cpu/wasm/backend.js";
import { le32 as d } from "./helpers/bytes.js";
import { assertRunAs, type CpuState, runTwisted, type Variant, variantCpu } from "./helpers/cpu-state.js";

const CODE = 0x5000;
/** The segments' base: the linear address of offset 0. */
const BASE = 0x100000;
/** Not at a page end, so that the access crossing it stays in its page (the inline path). */
const LIMIT = 0x2abc;
/** Data, writable, accessed, 32-bit (B); expand-down; read-only. */
const RW = 0x4093;
const DOWN = 0x4097;
const RO = 0x4091;

interface Case {
  /** The access at [esi] (DS or ES) or [ebp] (SS). */
  access: number[];
  seg: number;
  attr: number;
  /** The offset's start and step a pass (the pointer is ESI, or EBP for SS). */
  start: number;
  step: number;
  /** Applied once, between slices, when the loop has retired 3,000 instructions. */
  twist?: (cpu: Cpu) => void;
}

const up = (access: number[], seg = DS): Case => ({ access, seg, attr: RW, start: LIMIT - 0x800, step: 1 });
const CASES: Record<string, Case> = {
  "dword read": up([0x8b, 0x06]),
  "word read": up([0x0f, 0xb7, 0x06]),
  "byte read": up([0x8a, 0x06]),
  "dword write": up([0x89, 0x06]),
  "word write": up([0x66, 0x89, 0x06]),
  "byte write": up([0x88, 0x06]),
  "dword rmw": up([0x01, 0x06]),
  "byte rmw": up([0x00, 0x06]),
  "ES dword read": up([0x26, 0x8b, 0x06], ES),
  "ES dword write": up([0x26, 0x89, 0x06], ES),
  "SS dword read": up([0x8b, 0x45, 0x00], SS),
  "SS dword write": up([0x89, 0x45, 0x00], SS),
  "expand-down dword read": { access: [0x8b, 0x06], seg: DS, attr: DOWN, start: LIMIT + 0x800, step: -1 },
  "expand-down dword write": { access: [0x89, 0x06], seg: DS, attr: DOWN, start: LIMIT + 0x800, step: -1 },
  "made read-only under a warm write": {
    ...up([0x89, 0x06]),
    twist: (cpu) => cpu.loadSegmentCache(DS, 0x10, BASE, LIMIT, RO),
  },
  "made read-only under a warm rmw": {
    ...up([0x01, 0x06]),
    twist: (cpu) => cpu.loadSegmentCache(DS, 0x10, BASE, LIMIT, RO),
  },
  "limit shrunk under a warm read": {
    ...up([0x8b, 0x06]),
    twist: (cpu) => cpu.loadSegmentCache(DS, 0x10, BASE, LIMIT - 0x400, RW),
  },
};

/** mov ecx, 0x1000; loop: <access>; add ebx, eax; inc eax; add ptr, step; dec ecx; jnz loop; hlt. */
function program(c: Case): number[] {
  const add = c.seg === SS ? 0xc5 : 0xc6;
  const body = [...c.access, 0x01, 0xc3, 0x40, 0x81, add, ...d(c.step), 0x49];
  return [[0xb9, ...d(0x1000)], body, [0x75, -(body.length + 2) & 0xff], [0xf4]].flat();
}

function machine(c: Case, variant: Variant): Cpu {
  const cpu = variantCpu(variant, 1 << 22);
  cpu.mem8.set(program(c), CODE);
  for (let i = 0; i < 0x8000; i++) cpu.mem8[BASE + i] = (i * 167) ^ (i >>> 8);
  cpu.loadSegmentCache(c.seg, 0x10, BASE, LIMIT, c.attr);
  cpu.eip = CODE;
  cpu.regs[c.seg === SS ? EBP : ESI] = c.start;
  cpu.regs[0] = 0x1234567;
  const on = variant !== "interp";
  cpu.blockThreshold = on ? 2 : 0;
  cpu.regionThreshold = on ? 2 : 0;
  return cpu;
}

function trace(c: Case, variant: Variant, slice: number): { steps: CpuState[]; cpu: Cpu } {
  const cpu = machine(c, variant);
  return { steps: runTwisted(cpu, slice, c.twist), cpu };
}

describe("the segment check of a wasm block's inline access", () => {
  for (const [name, c] of Object.entries(CASES))
    for (const slice of [13, 1000, 10_000_000]) {
      // A whole run has no slice boundary for the twist to happen at.
      if (c.twist && slice > 1000) continue;
      it(`${name}, in slices of ${slice}: faults where the interpreter does`, () => {
        const a = trace(c, "interp", slice);
        const last = a.steps[a.steps.length - 1];
        assert.equal(last.exit, Exit.Exception);
        assert.equal(last.vector, c.seg === SS ? 12 : 13);
        assert.ok(last.retired > 3000, `faulted after ${last.retired} instructions`);
        for (const variant of ["js", "wasm", "chain"] as const) {
          const b = trace(c, variant, slice);
          assertRunAs(a, b, variant);
          if (variant !== "js") assert.ok((wasmBackend(b.cpu)?.runs ?? 0) > 0, `${variant}: wasm block runs`);
        }
      });
    }
});
