/**
 * Flat segments in wasm blocks (src/cpu/wasm/gen.ts check, unflat; arena.ts IO_FLAT): a block
 * compiled while a segment is flat (base 0, every offset allowed) leaves that segment's check
 * out of its accesses, and CS's out of its jumps. Hot loops warmed on flat segments then see
 * the segment made not flat: by the host between slices (DS's limit shrunk, DS's base moved,
 * SS's limit shrunk, ES's made read-only, CS's limit cut below a called function), or by the
 * loop itself, a mov to DS in the middle of a block loading a segment with a limit and an
 * access through DS after it, or a mov to SS making the stack 16-bit before a push (a block
 * takes the stack's size from IO_SS32 at its entry: the load must end the chain; a block
 * taking 32 bits always fails it). Each must fault (#GP, #SS) or read where the interpreter does,
 * with JS blocks and wasm blocks with the chain off and on, in slices of 13, 1000 and whole;
 * the state after every slice and the memory after are compared. Zero-based segments (base 0,
 * a limit: XenLinux's) keep only the upper bound's check: loops walk across it, and one sees
 * its base moved.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Cpu } from "../src/cpu/cpu.js";
import { CS, DS, EBP, EDI, EDX, ES, ESI, ESP, Exit, SS } from "../src/cpu/regs.js";
import { wasmBackend } from "../src/cpu/wasm/backend.js";
import { le32 as d } from "./helpers/bytes.js";
import { assertRunAs, type CpuState, runTwisted, type Variant, variantCpu } from "./helpers/cpu-state.js";

const CODE = 0x5000;
const GDT = 0x8000;
/** The limited segments' limit, not at a page end (so the access crossing it stays inline). */
const LIMIT = 0x2abc;
/** The base a twist moves DS to. */
const BASE = 0x100000;
/** Selectors: flat data (0x10), data with the limit (0x18). */
const FLAT_DS = 0x10;
const LIMITED = 0x18;
/** A flat data segment with B clear: a stack addressed by SP (0x20), and where SP starts. */
const STACK_16BIT = 0x20;
const STACK16 = 0x2000;

/** A GDT descriptor's two words: base, limit (bytes, or pages with G), access byte, flags nibble. */
function descriptor(base: number, limit: number, access: number, flags: number): number[] {
  const lo = (limit & 0xffff) | ((base & 0xffff) << 16);
  const hi = ((base >>> 16) & 0xff) | (access << 8) | (limit & 0xf0000) | (flags << 20) | (base & 0xff000000);
  return [...d(lo), ...d(hi)];
}

interface Case {
  program: number[];
  /** Set up before the run (registers). */
  init: (cpu: Cpu) => void;
  /** Applied once, between slices, when the loop has retired 3,000 instructions. */
  twist?: (cpu: Cpu) => void;
  /** The run's end: hlt, or a fault's vector. */
  vector: number;
}

/** mov ecx, 0x1000; loop: <body>; dec ecx; jnz loop; hlt. */
function loop(...body: number[][]): number[] {
  const b = [...body.flat(), 0x49];
  return [[0xb9, ...d(0x1000)], b, [0x75, -(b.length + 2) & 0xff], [0xf4]].flat();
}

/** A pointer walking up to LIMIT one byte a pass: an access at it, summed into EBX. */
const walk = (access: number[], ptr = 0xc6): Case["program"] =>
  loop(access, [0x01, 0xc3, 0x40, 0x81, ptr, ...d(1)]);
const atEsi = (cpu: Cpu) => {
  cpu.regs[ESI] = LIMIT - 0x800;
};

const CASES: Record<string, Case> = {
  "DS's limit shrunk under a warm read": {
    program: walk([0x8b, 0x06]),
    init: atEsi,
    twist: (cpu) => cpu.loadSegmentCache(DS, LIMITED, 0, LIMIT, 0x4093),
    vector: 13,
  },
  "DS's limit shrunk under a warm rmw": {
    program: walk([0x01, 0x06]),
    init: atEsi,
    twist: (cpu) => cpu.loadSegmentCache(DS, LIMITED, 0, LIMIT, 0x4093),
    vector: 13,
  },
  "DS's base moved under a warm read and write": {
    program: walk([0x8b, 0x06, 0x89, 0x46, 0x40]),
    init: atEsi,
    twist: (cpu) => cpu.loadSegmentCache(DS, FLAT_DS, BASE, 0xffffffff, 0xc093),
    vector: -1,
  },
  "ES made read-only under a warm write": {
    program: walk([0x26, 0x89, 0x06]),
    init: atEsi,
    twist: (cpu) => cpu.loadSegmentCache(ES, FLAT_DS, 0, 0xffffffff, 0xc091),
    vector: 13,
  },
  "SS's limit shrunk under a warm read": {
    program: walk([0x8b, 0x45, 0x00], 0xc5),
    init: (cpu) => {
      cpu.regs[EBP] = LIMIT - 0x800;
    },
    twist: (cpu) => cpu.loadSegmentCache(SS, LIMITED, 0, LIMIT, 0x4093),
    vector: 12,
  },
  "CS's limit cut below a warm call's target": {
    // loop: call f (at CODE + 0x100); dec ecx; jnz loop; hlt. f: inc eax; ret.
    program: [
      ...[0xb9, ...d(0x1000)],
      ...[0xe8, ...d(0x100 - 10)],
      ...[0x49, 0x75, -8 & 0xff, 0xf4],
      ...new Array<number>(0x100 - 14).fill(0x90),
      ...[0x40, 0xc3],
    ],
    init: () => {},
    twist: (cpu) => cpu.loadSegmentCache(CS, 0x08, 0, CODE + 0x80, 0x409b),
    vector: 13,
  },
  "a zero-based DS (base 0, a limit) walked across its limit by a read": {
    program: walk([0x8b, 0x06]),
    init: (cpu) => {
      atEsi(cpu);
      cpu.loadSegmentCache(DS, LIMITED, 0, LIMIT, 0x4093);
    },
    vector: 13,
  },
  "a zero-based DS walked across its limit by a write": {
    program: walk([0x89, 0x06]),
    init: (cpu) => {
      atEsi(cpu);
      cpu.loadSegmentCache(DS, LIMITED, 0, LIMIT, 0x4093);
    },
    vector: 13,
  },
  "a zero-based DS's base moved under a warm read and write": {
    program: walk([0x8b, 0x06, 0x89, 0x46, 0x40]),
    init: (cpu) => {
      atEsi(cpu);
      cpu.loadSegmentCache(DS, LIMITED, 0, LIMIT + 0x1000, 0x4093);
    },
    twist: (cpu) => cpu.loadSegmentCache(DS, LIMITED, BASE, LIMIT + 0x1000, 0x4093),
    vector: -1,
  },
  "a mov to DS mid-block loading a limit, then an access through DS": {
    // loop: mov eax,[esi]; mov ds,dx; mov eax,[esi]; add ebx,eax; mov ds,di; inc esi.
    program: loop([0x8b, 0x06, 0x8e, 0xda, 0x8b, 0x06, 0x01, 0xc3, 0x8e, 0xdf, 0x46]),
    init: (cpu) => {
      atEsi(cpu);
      cpu.regs[EDX] = LIMITED;
      cpu.regs[EDI] = FLAT_DS;
    },
    vector: 13,
  },
  "a mov to SS mid-block making the stack 16-bit (B clear), then a push read back": {
    // loop: mov ss,dx; push eax; mov ebx,[STACK16 - 4]; pop ecx's copy in ebp; mov ss,di;
    // add eax,ebx; inc eax. A push after the load uses SP: it writes at STACK16 - 4, not at
    // ESP - 4 (the upper half of ESP kept).
    program: loop([0x8e, 0xd2, 0x50, 0x8b, 0x1d, ...d(STACK16 - 4), 0x5d, 0x8e, 0xd7, 0x01, 0xd8, 0x40]),
    init: (cpu) => {
      cpu.regs[ESP] = 0x10000 + STACK16;
      cpu.regs[EDX] = STACK_16BIT;
      cpu.regs[EDI] = FLAT_DS;
    },
    vector: -1,
  },
};

function machine(c: Case, variant: Variant): Cpu {
  const cpu = variantCpu(variant, 1 << 22, variant === "interp" ? undefined : 2);
  cpu.mem8.set(c.program, CODE);
  cpu.mem8.set(
    [
      ...descriptor(0, 0, 0, 0),
      ...descriptor(0, 0xfffff, 0x9b, 0xc),
      ...descriptor(0, 0xfffff, 0x93, 0xc),
      ...descriptor(0, LIMIT, 0x93, 0x4),
      ...descriptor(0, 0xfffff, 0x93, 0x8),
    ],
    GDT,
  );
  cpu.gdtrBase = GDT;
  cpu.gdtrLimit = 0x27;
  for (let i = 0; i < 0x3000; i++) cpu.mem8[i] = cpu.mem8[BASE + i] = (i * 167) ^ (i >>> 8) ^ 0x5a;
  cpu.eip = CODE;
  cpu.regs[0] = 0x1234567;
  cpu.regs[ESP] = 0x7000;
  c.init(cpu);
  return cpu;
}

function trace(c: Case, variant: Variant, slice: number): { steps: CpuState[]; cpu: Cpu } {
  const cpu = machine(c, variant);
  return { steps: runTwisted(cpu, slice, c.twist), cpu };
}

describe("flat segments in wasm blocks", () => {
  for (const [name, c] of Object.entries(CASES))
    for (const slice of [13, 1000, 10_000_000]) {
      // A whole run has no slice boundary for the twist to happen at.
      if (c.twist && slice > 1000) continue;
      it(`${name}, in slices of ${slice}: as the interpreter`, () => {
        const a = trace(c, "interp", slice);
        const last = a.steps[a.steps.length - 1];
        if (c.vector < 0) assert.equal(last.exit, Exit.Halt);
        else {
          assert.equal(last.exit, Exit.Exception);
          assert.equal(last.vector, c.vector);
        }
        assert.ok(last.retired > 3000, `stopped after ${last.retired} instructions`);
        for (const variant of ["js", "wasm", "chain"] as const) {
          const b = trace(c, variant, slice);
          assertRunAs(a, b, variant);
          const w = wasmBackend(b.cpu);
          if (variant === "js") continue;
          assert.ok((w?.runs ?? 0) > 0, `${variant}: wasm block runs`);
          // A block compiled flat found its segment not flat and ran as JS (in slices of 13
          // the faulting pass may be the interpreter's, at a slice's end).
          if (c.twist && slice === 1000) assert.ok((w?.bails ?? 0) > 0, `${variant}: bails`);
        }
      });
    }
});
