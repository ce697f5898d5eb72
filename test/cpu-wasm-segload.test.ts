/**
 * Segment loads and iret inline in wasm blocks (src/cpu/wasm/gen.ts segFast, iretFast): mov
 * to DS/ES/FS/GS from a register, pop of ES/DS/FS/GS and iret to the same level run inline
 * when the load changes nothing, and through their handlers otherwise. Each case is a hot loop
 * loading selectors (or iret frames) from a table, with accesses through every data segment;
 * at row 300 (or when the host acts between slices) the table holds a selector whose load
 * must fault or change the segment: null, RPL or CPL above DPL, not present, execute-only code,
 * a system descriptor, beyond the GDT's limit, in the LDT, not accessed (the load writes the
 * bit), on a GDT page not present (#PF, the host maps it) or across a page end. The "cached"
 * cases first load the segment's cache, from the host and unchecked, with exactly what the
 * descriptor gives, so only the inline form's own checks can send the load to its handler.
 * The state after every slice (error codes, CR2 included), the memory and the segment caches
 * are the interpreter's with JS blocks and wasm blocks (chain off and on).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Cpu } from "../src/cpu/cpu.js";
import {
  CR0_PG,
  CR0_WP,
  CS,
  DS,
  EAX,
  EBX,
  ECX,
  ES,
  ESI,
  ESP,
  FS,
  GS,
  LDTR,
  NT,
  SS,
  TF,
  VM,
} from "../src/cpu/regs.js";
import { wasmBackend } from "../src/cpu/wasm/backend.js";
import { le32 as d } from "./helpers/bytes.js";
import { traceMappingFaults, type Variant, variantCpu } from "./helpers/cpu-state.js";

const PD = 0x100000;
const PT = 0x101000;
const CODE = 0x5000;
/** The GDT (two pages; the second starts not present in some cases) and the LDT. */
const GDT = 0x8000;
const GDT_LIMIT = 0x10ff;
const LDT = 0xa000;
/** Where the page after GDT's first page is mapped when a descriptor crosses into it. */
const GDT_HI = 0xc000;
/** The selector table (rows), and the words each data segment's access reads. */
const ROWS = 0x200000;
const WORDS = 0x300000;
const STACK = 0x360000;
const N = 400;
/**
 * Instructions a pass of each loop: the "cached" cases run in slices of whole passes, so the
 * host acts at the loop's head and the next loads run in its hot block.
 */
const LOOP = { load: 29, iret: 13 };
const PASSES = 35;
const AT = 300;

/** A descriptor's two words: access byte (P, DPL, S, type) and flags nibble (G, D/B). */
function desc(base: number, limit: number, access: number, flags = 0xc): [number, number] {
  const lo = (limit & 0xffff) | ((base & 0xffff) << 16);
  const hi = ((base >>> 16) & 0xff) | (access << 8) | (limit & 0xf0000) | (flags << 20) | (base & 0xff000000);
  return [lo | 0, hi | 0];
}
/** Writes a descriptor's two words at `at` (low word first). */
function putDesc(m: DataView, at: number, [lo, hi]: [number, number]): void {
  m.setUint32(at, lo, true);
  m.setUint32(at + 4, hi, true);
}
const data = (dpl: number, base = 0, access = 0x93) => desc(base, 0xfffff, access | (dpl << 5));
const code = (dpl: number, access = 0x9b) => desc(0, 0xfffff, access | (dpl << 5));

/** GDT entries by index (a valid one at 0, for a load of a null selector to be told apart). */
const ENTRIES: Record<number, [number, number]> = {
  0: data(3),
  1: code(1),
  2: data(1),
  3: data(3),
  4: data(0),
  5: data(3, 0, 0x13), // not present
  6: data(3, 0, 0x92), // not accessed
  7: data(3, 0x1000),
  8: code(3, 0x99), // execute-only
  9: desc(LDT, 0xff, 0x82), // an LDT: a system descriptor
  10: code(0, 0x9f), // conforming, readable
  11: code(0),
  12: code(0),
  13: data(0),
  14: data(1),
  15: code(1, 0x1b), // not present
  16: code(0, 0x9f),
  17: code(2, 0x9f), // conforming, DPL 2
  18: code(1, 0x9a), // not accessed
  19: desc(0x7000, 0xfff, 0xe3, 0), // a busy TSS of DPL 3: a system descriptor, its bit 0 set
  515: data(3, 0x2000), // on the GDT's second page
  544: data(3), // beyond the GDT's limit
};

/** The cache a load of descriptor [lo, hi] makes: base, limit, attributes. */
function cacheOf([lo, hi]: [number, number]): [number, number, number] {
  const base = (lo >>> 16) | ((hi & 0xff) << 16) | (hi & 0xff000000);
  const l = (lo & 0xffff) | (hi & 0xf0000);
  return [base | 0, hi & 0x800000 ? (l << 12) | 0xfff : l, (hi >>> 8) & 0xf0ff];
}

interface Case {
  /** Segment loads (rows of DS, ES, FS, GS) or iret frames (rows of EIP, CS, EFLAGS). */
  kind: "load" | "iret";
  cpl: 0 | 1;
  /** Row i's words. */
  row: (i: number) => number[];
  /** Before the run. */
  prep?: (cpu: Cpu, m: DataView) => void;
  /** The host between slices, once ~4,000 instructions have run (slices below that only). */
  act?: (cpu: Cpu, m: DataView) => void;
}

const GOOD = [0x1b, 0x1b, 0x1b, 0x1b];
/** Valid loads that change the segment now and then: another base, RPL, the LDT, conforming code. */
const mixed = (i: number) => [
  (i >> 5) & 1 ? 0x3b : 0x1b,
  (i >> 4) & 1 ? 0x18 : 0x1b,
  (i >> 6) & 1 ? 0x51 : 0x1b,
  (i >> 3) % 3 === 0 ? 0x1f : 0x1b,
];
/** Row i of the loads with selector sel from row AT on, in FS (mov) and GS (pop). */
const at300 = (sel: number) => (i: number) => (i < AT ? GOOD : [0x1b, 0x1b, sel, sel]);
/** The host loads FS and GS with sel's descriptor unchecked, and the rows from the current one on hold sel. */
const cached =
  (sel: number, entry = ENTRIES[(sel >> 3) & 0x1fff], table = ROWS) =>
  (cpu: Cpu, m: DataView) => {
    const [b, l, a] = cacheOf(entry);
    for (const seg of [FS, GS]) cpu.loadSegmentCache(seg, sel, b, l, a);
    for (let r = Math.max(0, (cpu.regs[ESI] - table) >> 4); r < N; r++) {
      m.setUint32(table + r * 16 + 8, sel, true);
      m.setUint32(table + r * 16 + 12, sel, true);
    }
  };

const frame = (eip: number, cs: number, fl: number) => [eip, cs, fl];
/** The iret loop's return point (program's label M). */
const M = CODE + 12;
/** EFLAGS images: every flag an iret may take or keep, NT, TF and VM left out. */
const flagsAt = (i: number) => (((i * 2654435761) >>> 0) & 0x3f3fd5 & ~(NT | TF | VM)) | 2;
const irets = (cs: number) => (i: number) => frame(M, cs, flagsAt(i));
const iretAt300 =
  (cs: number, f: (x: number) => number = (x) => x, eip = M, base = 0x09) =>
  (i: number) =>
    i < AT ? frame(M, base, flagsAt(i)) : frame(eip, cs, f(flagsAt(i)));
/** The host loads CS with sel's descriptor unchecked, and the frames from the current one on hold sel. */
const cachedCs = (sel: number) => (cpu: Cpu, m: DataView) => {
  const [b, l, a] = cacheOf(ENTRIES[sel >> 3]);
  cpu.loadSegmentCache(CS, sel, b, l, a);
  for (let r = Math.max(0, Math.floor((cpu.regs[ESI] - ROWS) / 12)); r < N; r++)
    m.setUint32(ROWS + r * 12 + 4, sel, true);
};
const gdtPage2Absent = (_cpu: Cpu, m: DataView) => {
  m.setUint32(PT + ((GDT + 0x1000) >>> 12) * 4, (GDT + 0x1000) | 2, true);
};

const CASES: Record<string, Case> = {
  "valid loads, CPL 1": { kind: "load", cpl: 1, row: mixed },
  "valid loads, CPL 0": { kind: "load", cpl: 0, row: mixed },
  "null selector": { kind: "load", cpl: 1, row: at300(0) },
  "RPL above DPL": { kind: "load", cpl: 1, row: at300(0x73) },
  "CPL above DPL": { kind: "load", cpl: 1, row: at300(0x20) },
  "not present": { kind: "load", cpl: 1, row: at300(0x2b) },
  "execute-only code": { kind: "load", cpl: 1, row: at300(0x43) },
  "system descriptor": { kind: "load", cpl: 1, row: at300(0x4b) },
  "beyond the GDT's limit": { kind: "load", cpl: 1, row: at300(0x1103) },
  "in the LDT, LDTR null": {
    kind: "load",
    cpl: 1,
    row: at300(0x1f),
    prep: (cpu) => cpu.loadSegmentCache(LDTR, 0, 0, 0, 0),
  },
  "not accessed": { kind: "load", cpl: 1, row: at300(0x33) },
  // A push from SP 0 wraps to 0xfffc, the pop back to 0 (ESP's high half kept).
  "16-bit stack": {
    kind: "load",
    cpl: 1,
    row: mixed,
    prep: (cpu) => {
      const [b, l, a] = cacheOf(data(1, STACK));
      cpu.loadSegmentCache(SS, 0x11, b, l, a & ~0x4000);
      cpu.regs[ESP] = 0x7a5c_0000;
    },
  },
  "on a GDT page not present": { kind: "load", cpl: 1, row: at300(0x101b), prep: gdtPage2Absent },
  "cached: null selector": { kind: "load", cpl: 1, row: () => GOOD, act: cached(0) },
  "cached: RPL above DPL": { kind: "load", cpl: 1, row: () => GOOD, act: cached(0x73) },
  "cached: CPL above DPL": { kind: "load", cpl: 1, row: () => GOOD, act: cached(0x20) },
  "cached: not present": { kind: "load", cpl: 1, row: () => GOOD, act: cached(0x2b) },
  "cached: execute-only code": { kind: "load", cpl: 1, row: () => GOOD, act: cached(0x43) },
  "cached: system descriptor": { kind: "load", cpl: 1, row: () => GOOD, act: cached(0x9b) },
  // The descriptor's page in the TLB (the host read it), so only the limit check stops it.
  "cached: beyond the GDT's limit": {
    kind: "load",
    cpl: 1,
    row: () => GOOD,
    act: (cpu, m) => {
      cpu.sysRead32(GDT + 0x1100);
      cached(0x1103)(cpu, m);
    },
  },
  "cached: in the LDT": { kind: "load", cpl: 1, row: () => GOOD, act: cached(0x1f, ENTRIES[3]) },
  "cached: not accessed": { kind: "load", cpl: 1, row: () => GOOD, act: cached(0x33) },
  // The descriptor page is absent from the TLB and the page tables; frame 0 holds a copy of it.
  "cached: on a GDT page not present": {
    kind: "load",
    cpl: 1,
    row: () => GOOD,
    act: (cpu, m) => {
      gdtPage2Absent(cpu, m);
      cpu.invlpg(GDT + 0x1000);
      putDesc(m, 0x018, ENTRIES[515]);
      cached(0x101b)(cpu, m);
    },
  },
  // GDT entry 511 crosses into the next page, mapped to GDT_HI, where its high word has DPL 0;
  // the frame after GDT's first (GDT + 0x1000) has the word the cache was made from.
  "cached: across a page end": {
    kind: "load",
    cpl: 1,
    row: () => GOOD,
    act: (cpu, m) => {
      for (let i = 0; i < 20; i++) putDesc(m, GDT + 4 + i * 8, ENTRIES[i] ?? [0, 0]);
      const [lo, hi] = data(3, 0x4000);
      m.setUint32(GDT + 0xffc, lo, true);
      m.setUint32(GDT + 0x1000, hi, true);
      m.setUint32(GDT_HI, data(0, 0x4000)[1], true);
      m.setUint32(PT + ((GDT + 0x1000) >>> 12) * 4, GDT_HI | 3, true);
      cpu.invlpg(GDT + 0x1000);
      cpu.gdtrBase = GDT + 4;
      cached(0xffb, [lo, hi])(cpu, m);
    },
  },
  "a descriptor rewritten by the host": {
    kind: "load",
    cpl: 1,
    row: () => GOOD,
    act: (_cpu, m) => putDesc(m, GDT + 3 * 8, desc(0x3000, 0x2ffffff >>> 12, 0xf3)),
  },
  // Read-only now: only the attributes differ from DS's cache; push ds... are still allowed.
  "a descriptor made read-only by the host": {
    kind: "load",
    cpl: 1,
    row: () => GOOD,
    act: (_cpu, m) => m.setUint32(GDT + 3 * 8 + 4, data(3, 0, 0x91)[1], true),
  },
  "a descriptor's limit cut by the host": {
    kind: "load",
    cpl: 1,
    row: () => GOOD,
    act: (_cpu, m) => putDesc(m, GDT + 3 * 8, desc(0, (WORDS >>> 12) - 1, 0xf3)),
  },
  "a GDT moved by the host": {
    kind: "load",
    cpl: 1,
    row: () => GOOD,
    act: (cpu, m) => {
      for (let i = 0; i < 0x100; i += 4) m.setUint32(GDT + 0x800 + i, m.getUint32(GDT + i, true), true);
      putDesc(m, GDT + 0x800 + 3 * 8, data(3, 0x5000));
      cpu.gdtrBase = GDT + 0x800;
      cpu.gdtrLimit = 0xff;
    },
  },
  "iret, CPL 1, IOPL 0": { kind: "iret", cpl: 1, row: irets(0x09) },
  "iret, CPL 1, IOPL 1": {
    kind: "iret",
    cpl: 1,
    row: (i) => frame(M, 0x09, flagsAt(i) | 0x1000),
    prep: (cpu) => cpu.setFlags(cpu.getFlags() | 0x1000),
  },
  "iret, CPL 0": { kind: "iret", cpl: 0, row: irets(0x60) },
  "iret: NT": { kind: "iret", cpl: 1, row: iretAt300(0x09, (f) => f | NT) },
  "iret: TF": { kind: "iret", cpl: 1, row: iretAt300(0x09, (f) => f | TF) },
  "iret: VM at CPL 0": { kind: "iret", cpl: 0, row: iretAt300(0x60, (f) => f | VM, M, 0x60) },
  "iret: VM at CPL 1": { kind: "iret", cpl: 1, row: iretAt300(0x09, (f) => f | VM) },
  "iret: EIP beyond CS's limit": {
    kind: "iret",
    cpl: 1,
    row: iretAt300(0x09, (f) => f, CODE + 0x1000),
    prep: (cpu, m) => {
      const e = desc(0, CODE + 0xfff, 0xbb, 0x4);
      m.setUint32(GDT + 8, e[0], true);
      m.setUint32(GDT + 12, e[1], true);
      cpu.loadSegmentCache(CS, 0x09, ...cacheOf(e));
    },
  },
  "iret: to an outer ring": { kind: "iret", cpl: 1, row: iretAt300(0x0b) },
  "iret: to conforming code": {
    kind: "iret",
    cpl: 1,
    row: (i) => frame(M, i >= AT && i % 7 === 0 ? 0x81 : 0x09, flagsAt(i)),
  },
  "iret: CS not present": { kind: "iret", cpl: 1, row: iretAt300(0x79) },
  "iret: CS a data segment": { kind: "iret", cpl: 1, row: iretAt300(0x1b) },
  "iret: CS not accessed": { kind: "iret", cpl: 1, row: iretAt300(0x91) },
  "iret, 16-bit stack": {
    kind: "iret",
    cpl: 1,
    row: irets(0x09),
    prep: (cpu) => {
      const [b, l, a] = cacheOf(data(1, STACK));
      cpu.loadSegmentCache(SS, 0x11, b, l, a & ~0x4000);
      // The frame wraps from SP 0xfffc to 0.
      cpu.regs[ESP] = 0x7a5c_0008;
    },
  },
  "iret cached: CS of DPL 0": { kind: "iret", cpl: 1, row: irets(0x09), act: cachedCs(0x59) },
  "iret cached: CS a data segment": { kind: "iret", cpl: 1, row: irets(0x09), act: cachedCs(0x11) },
  "iret cached: conforming CS with RPL 3": { kind: "iret", cpl: 1, row: irets(0x09), act: cachedCs(0x83) },
  "iret cached: conforming, DPL above RPL": { kind: "iret", cpl: 1, row: irets(0x09), act: cachedCs(0x89) },
  "iret cached: CS not accessed": { kind: "iret", cpl: 1, row: irets(0x09), act: cachedCs(0x91) },
};

/**
 * The loop of segment loads: DS and FS by mov, ES and GS by pop; an access through DS and ES
 * (FS and GS show in the selectors pushed and in the caches compared after each slice): 29
 * instructions, ECX times.
 */
function loads(): number[] {
  const acc = (pfx: number[], k: number) => [...pfx, 0x8b, 0x15, ...d(WORDS + k * 4), 0x01, 0xd3];
  const body = [
    // The rows read through CS (flat): mov eax, cs:[esi]; mov ds, eax; mov eax, cs:[esi+4];
    // push eax; pop es; mov eax, cs:[esi+8]; mov fs, eax; mov eax, cs:[esi+12]; push eax; pop gs
    ...[0x2e, 0x8b, 0x06, 0x8e, 0xd8],
    ...[0x2e, 0x8b, 0x46, 0x04, 0x50, 0x07],
    ...[0x2e, 0x8b, 0x46, 0x08, 0x8e, 0xe0],
    ...[0x2e, 0x8b, 0x46, 0x0c, 0x50, 0x0f, 0xa9],
    ...acc([], 0),
    ...acc([0x26], 1),
    // push ds, es, fs, gs, each popped into EDX and added to EBX.
    ...[[0x1e], [0x06], [0x0f, 0xa0], [0x0f, 0xa8]].flatMap((p) => [...p, 0x5a, 0x01, 0xd3]),
    ...[0x83, 0xc6, 0x10, 0x49], // add esi, 16; dec ecx
  ];
  return [body, [0x75, -(body.length + 2) & 0xff], [0xf4]].flat();
}

/** The loop of irets: a frame pushed from the row, iret to M, pushfd added to EBX (13 instructions). */
function irLoop(): number[] {
  const body = [
    ...[0x8b, 0x46, 0x08, 0x50, 0x8b, 0x46, 0x04, 0x50, 0x8b, 0x06, 0x50, 0xcf],
    // M: pushfd; pop edx; add ebx, edx; add esi, 12; dec ecx
    ...[0x9c, 0x5a, 0x01, 0xd3, 0x83, 0xc6, 0x0c, 0x49],
  ];
  return [body, [0x75, -(body.length + 2) & 0xff], [0xf4]].flat();
}

function machine(name: string, variant: Variant): Cpu {
  const k = CASES[name];
  const cpu = variantCpu(variant, 1 << 22, 2);
  const m = new DataView(cpu.mem8.buffer, cpu.mem8.byteOffset);
  m.setUint32(PD, PT | 3, true);
  for (let p = 0; p < 1024; p++) m.setUint32(PT + p * 4, (p << 12) | 3, true);
  const prog = k.kind === "load" ? loads() : irLoop();
  cpu.mem8.set(prog, CODE);
  for (const [i, e] of Object.entries(ENTRIES)) putDesc(m, GDT + Number(i) * 8, e);
  putDesc(m, LDT + 3 * 8, data(3, 0x2000));
  const width = k.kind === "load" ? 4 : 3;
  for (let i = 0; i < N; i++)
    for (const [j, v] of k.row(i).entries()) m.setUint32(ROWS + (i * width + j) * 4, v, true);
  for (let i = 0; i < 0x8000; i += 4) m.setUint32(WORDS - 0x4000 + i, (i * 40503) ^ 0x5a5a, true);
  cpu.setCr3(PD);
  cpu.setCr0(cpu.cr0 | CR0_PG | CR0_WP);
  cpu.gdtrBase = GDT;
  cpu.gdtrLimit = GDT_LIMIT;
  cpu.loadSegmentCache(LDTR, 0x48, ...cacheOf(ENTRIES[9]));
  const [cs, ss] = k.cpl === 0 ? [12, 13] : [1, 2];
  cpu.loadSegmentCache(CS, (cs << 3) | k.cpl, ...cacheOf(ENTRIES[cs]));
  cpu.loadSegmentCache(SS, (ss << 3) | k.cpl, ...cacheOf(ENTRIES[ss]));
  for (const seg of [DS, ES, FS, GS]) cpu.loadSegmentCache(seg, 0x1b, ...cacheOf(ENTRIES[3]));
  cpu.setCpl(k.cpl);
  cpu.eip = CODE;
  cpu.regs[ESP] = STACK + 0xfff0;
  cpu.regs[ESI] = ROWS;
  cpu.regs[EAX] = 0x1234567;
  cpu.regs[EBX] = 0x10;
  cpu.regs[ECX] = N;
  k.prep?.(cpu, m);
  return cpu;
}

/** The segment caches. */
const segsOf = (cpu: Cpu) =>
  [...Array(8).keys()].map((s) => [cpu.segSel[s], cpu.segBase[s], cpu.segLimit[s], cpu.segAttr[s]]);

/**
 * Runs the case to its end in slices (traceMappingFaults), the host acting after the slice
 * that ends past ~4,000 instructions; after each slice the segment caches and the GDT's
 * words (accessed bits) are kept too, so a load that went wrong and was put right by a later
 * one is seen.
 */
function trace(name: string, variant: Variant, slice: number) {
  const cpu = machine(name, variant);
  const act = CASES[name].act;
  const m = new DataView(cpu.mem8.buffer, cpu.mem8.byteOffset);
  const when = Math.ceil(4000 / slice);
  const seen: string[] = [];
  const t = traceMappingFaults(cpu, slice, PT, (i) => {
    seen.push(JSON.stringify([segsOf(cpu), [...new Int32Array(cpu.mem8.buffer, GDT, 0x1200 / 4)]]));
    if (i === when) act?.(cpu, m);
  });
  return { ...t, segs: segsOf(cpu), seen, error: cpu.exitErrorCode };
}

describe("segment loads and iret inline in wasm blocks", () => {
  for (const name of Object.keys(CASES))
    for (const slice of CASES[name].act ? [7, PASSES * LOOP[CASES[name].kind]] : [7, 1000, 10_000_000]) {
      it(`${name}, in slices of ${slice}: as the interpreter`, () => {
        const a = trace(name, "interp", slice);
        const mem = Buffer.from(a.cpu.mem8.buffer, a.cpu.mem8.byteOffset, 0x400000);
        for (const variant of ["js", "wasm", "chain"] as const) {
          const b = trace(name, variant, slice);
          assert.deepEqual(b.steps, a.steps, variant);
          assert.deepEqual([b.segs, b.error], [a.segs, a.error], `${variant}: segments, error code`);
          assert.ok(
            b.seen.every((x, i) => x === a.seen[i]) && b.seen.length === a.seen.length,
            `${variant}: segments and GDT after each slice`,
          );
          assert.ok(
            mem.equals(Buffer.from(b.cpu.mem8.buffer, b.cpu.mem8.byteOffset, 0x400000)),
            `${variant}: memory`,
          );
          if (variant === "js" || slice === 7) continue;
          const w = wasmBackend(b.cpu);
          assert.ok((w?.runs ?? 0) > 0, `${variant}: wasm block runs`);
        }
      });
    }

  it("runs the loads and irets inline: handler calls only where a load changed something", () => {
    for (const [name, most] of [
      ["valid loads, CPL 1", 0],
      ["iret, CPL 1, IOPL 0", 0],
      ["iret, CPL 0", 0],
    ] as const) {
      const a = trace(name, "chain", 10_000_000);
      const w = wasmBackend(a.cpu);
      // The mixed rows change a segment at about one load in eight.
      const calls = w?.calls ?? -1;
      assert.ok(calls >= most && calls < N / 2, `${name}: ${calls} handler calls`);
    }
  });

  it("each case ends where it should", () => {
    const end = (name: string) => {
      const a = trace(name, "interp", 10_000_000);
      const s = a.steps[a.steps.length - 1];
      return [s.vector, a.error];
    };
    // hlt at CPL 1 is a #GP(0); the faulting loads end with their selector's error code.
    assert.deepEqual(end("valid loads, CPL 1"), [13, 0]);
    assert.deepEqual(end("valid loads, CPL 0"), [-1, -1]);
    assert.deepEqual(end("RPL above DPL"), [13, 0x70]);
    assert.deepEqual(end("CPL above DPL"), [13, 0x20]);
    assert.deepEqual(end("not present"), [11, 0x28]);
    assert.deepEqual(end("execute-only code"), [13, 0x40]);
    assert.deepEqual(end("system descriptor"), [13, 0x48]);
    assert.deepEqual(end("beyond the GDT's limit"), [13, 0x1100]);
    assert.deepEqual(end("in the LDT, LDTR null"), [13, 0x1c]);
    assert.deepEqual(end("iret: NT"), [13, 0]);
    assert.deepEqual(end("iret: TF"), [1, -1]);
    assert.deepEqual(end("iret: CS not present"), [11, 0x78]);
    assert.deepEqual(end("iret: CS a data segment"), [13, 0x18]);
    assert.deepEqual(end("iret: EIP beyond CS's limit"), [13, 0]);
  });
});
