// The inline iret (segments.ts iretCommon) against the full path: a table of frames, each
// field wrong in turn, run once with the inline path on and once off from the same machine;
// registers, flags, segment caches and their check words, the CPL, the exit, CR2, the retired
// count and every byte of memory must agree, and the cases the inline path is meant to take
// must be taken by it (the others fall back to the full path, which faults or walks).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Cpu } from "../src/cpu/cpu.js";
import { CR0_PG, CS, DS, ES, ESP, FS, GS, LDTR, NT, SS } from "../src/cpu/regs.js";
import { hostCall, iretInlineCount, setIretInline } from "../src/cpu/segments.js";

const GDT = 0x10000;
const LDT = 0x12000;
const CODE = 0x1000;
const PD = 0x200000;
const FLAT = 0xfffff;

// GDT selectors (RPL added where used).
const K0_CS = 0x08;
const K0_DS = 0x10;
const K1_CS = 0x18;
const K1_DS = 0x20;
const U_CS = 0x28;
const U_DS = 0x30;
const K1_CS2 = 0x38; // a second ring-1 code segment
const U_CS_LIM = 0x40; // ring-3 code, limit 0x5fff
const CONF1 = 0x48; // conforming code, DPL 1
const CONF3 = 0x50; // conforming code, DPL 3
const U_CS_NP = 0x58;
const U_CS_NA = 0x60; // not accessed
const U_RO = 0x68; // read-only data
const U_DS_NP = 0x70;
const U_DS_NA = 0x78;
const SYS3 = 0x80; // a DPL-3 TSS descriptor
const U_DS16 = 0x88; // 16-bit (B = 0) data, limit 0xffff
const U_DSDN = 0x90; // expand-down 32-bit data, limit 0xfff
const K1_SS16 = 0x98; // ring-1 16-bit stack
const U_DSB = 0xa0; // ring-3 data, base 0x100000
const U_XO = 0xa8; // ring-3 execute-only code
const K1_SMALL = 0xb0; // ring-1 stack, limit 0x9f0f: the outer frame's last bytes beyond it
const SYS3W = 0xb8; // a DPL-3 system descriptor with the data-writable bit
const GDT_LIMIT = 0xbf;

function put32(mem: Uint8Array, a: number, v: number): void {
  new DataView(mem.buffer).setUint32(a, v >>> 0, true);
}

function desc(mem: Uint8Array, at: number, base: number, limit: number, access: number, flags: number): void {
  put32(mem, at, ((base & 0xffff) << 16) | (limit & 0xffff));
  put32(
    mem,
    at + 4,
    (base & 0xff000000) |
      ((flags & 0xf) << 20) |
      (limit & 0xf0000) |
      ((access & 0xff) << 8) |
      ((base >>> 16) & 0xff),
  );
}

interface Case {
  name: string;
  /** The CPL the iret runs at (1 or 3; 0 is the full path's). */
  cpl?: number;
  /** The frame at ESP: EIP, CS, EFLAGS[, ESP, SS]. */
  frame: number[];
  /** Whether the inline path takes it. */
  inline: boolean;
  setup?: (cpu: Cpu, mem: Uint8Array) => void;
  paging?: boolean;
  /** Leave the TLB cold (the frame and GDT pages not yet translated). */
  cold?: boolean;
  /** Leave the GDT's first page cold. */
  gdtCold?: boolean;
}

const R1_ESP = 0x9f00;
const R3_ESP = 0xbf00;
const TO3 = [0x6000, U_CS | 3, 0x3202, 0x7ff0, U_DS | 3];

function machine(c: Case): { cpu: Cpu; mem: Uint8Array } {
  const mem = new Uint8Array(1 << 24);
  const cpu = new Cpu(mem);
  cpu.resetFlat32();
  desc(mem, GDT + K0_CS, 0, FLAT, 0x9b, 0xc);
  desc(mem, GDT + K0_DS, 0, FLAT, 0x93, 0xc);
  desc(mem, GDT + K1_CS, 0, FLAT, 0xbb, 0xc);
  desc(mem, GDT + K1_DS, 0, FLAT, 0xb3, 0xc);
  desc(mem, GDT + U_CS, 0, FLAT, 0xfb, 0xc);
  desc(mem, GDT + U_DS, 0, FLAT, 0xf3, 0xc);
  desc(mem, GDT + K1_CS2, 0, FLAT, 0xbb, 0xc);
  desc(mem, GDT + U_CS_LIM, 0, 0x5fff, 0xfb, 0x4);
  desc(mem, GDT + CONF1, 0, FLAT, 0xbf, 0xc);
  desc(mem, GDT + CONF3, 0, FLAT, 0xff, 0xc);
  desc(mem, GDT + U_CS_NP, 0, FLAT, 0x7b, 0xc);
  desc(mem, GDT + U_CS_NA, 0, FLAT, 0xfa, 0xc);
  desc(mem, GDT + U_RO, 0, FLAT, 0xf1, 0xc);
  desc(mem, GDT + U_DS_NP, 0, FLAT, 0x73, 0xc);
  desc(mem, GDT + U_DS_NA, 0, FLAT, 0xf2, 0xc);
  desc(mem, GDT + SYS3, 0, FLAT, 0xe9, 0xc); // type 9: the code bit set
  desc(mem, GDT + SYS3W, 0, FLAT, 0xe3, 0xc); // type 3: the writable bit set
  desc(mem, GDT + U_DS16, 0, 0xffff, 0xf3, 0);
  desc(mem, GDT + U_DSDN, 0, 0xfff, 0xf7, 0x4);
  desc(mem, GDT + K1_SS16, 0, 0xffff, 0xb3, 0);
  desc(mem, GDT + U_DSB, 0x100000, FLAT, 0xf3, 0xc);
  desc(mem, GDT + U_XO, 0, FLAT, 0xf9, 0xc);
  desc(mem, GDT + K1_SMALL, 0, 0x9f0f, 0xb3, 0x4);
  desc(mem, LDT + 8, 0, FLAT, 0xfb, 0xc); // 0x0f: ring-3 code
  desc(mem, LDT + 16, 0, FLAT, 0xf3, 0xc); // 0x17: ring-3 data
  cpu.gdtrBase = GDT;
  cpu.gdtrLimit = GDT_LIMIT;
  cpu.loadSegmentCache(LDTR, 0, LDT, 0x1f, 0x82);
  if (c.paging) {
    // Identity map of the first 16 MiB, user and writable.
    for (let i = 0; i < 4; i++) put32(mem, PD + i * 4, (PD + 0x1000 * (i + 1)) | 7);
    for (let p = 0; p < 4096; p++) put32(mem, PD + 0x1000 + p * 4, (p << 12) | 7);
    cpu.setCr3(PD);
    cpu.setCr0(cpu.cr0 | CR0_PG);
  }
  const cpl = c.cpl ?? 1;
  const cs = cpl === 1 ? K1_CS | 1 : U_CS | 3;
  const ds = cpl === 1 ? K1_DS | 1 : U_DS | 3;
  const dpl = cpl << 5;
  cpu.loadSegmentCache(CS, cs, 0, -1, 0xc09b | dpl);
  for (const s of [SS, DS, ES, FS, GS]) cpu.loadSegmentCache(s, ds, 0, -1, 0xc093 | dpl);
  cpu.setCpl(cpl);
  cpu.regs[ESP] = cpl === 1 ? R1_ESP : R3_ESP;
  mem[CODE] = 0xcf;
  cpu.invalidateCode(CODE, 1);
  cpu.eip = CODE;
  c.setup?.(cpu, mem);
  const esp = cpu.regs[ESP];
  for (let i = 0; i < c.frame.length; i++) put32(mem, (cpu.segBase[SS] + esp + i * 4) >>> 0, c.frame[i]);
  if (!c.cold) {
    // Warm the TLB as a running guest's would be: the frame's page and the GDT's.
    hostCall(cpu, () => cpu.translate((cpu.segBase[SS] + esp) | 0, false, cpl === 3));
    if (!c.gdtCold) hostCall(cpu, () => cpu.translate(cpu.gdtrBase, false, false));
  }
  return { cpu, mem };
}

function snapshot(cpu: Cpu, mem: Uint8Array, exit: number): unknown {
  const c = cpu as unknown as { state: { io: Int32Array } };
  return {
    exit,
    vector: cpu.exitVector,
    error: cpu.exitErrorCode,
    cr2: cpu.cr2,
    retired: cpu.retiredTotal,
    eip: cpu.eip,
    flags: cpu.getFlags(),
    cpl: cpu.cpl,
    regs: Array.from(cpu.regs),
    sel: Array.from(cpu.segSel),
    base: Array.from(cpu.segBase),
    limit: Array.from(cpu.segLimit),
    attr: Array.from(cpu.segAttr),
    lo: Array.from(cpu.segLo),
    hi: Array.from(cpu.segHi),
    whi: Array.from(cpu.segWHi),
    chk: Array.from((cpu as unknown as { segChk: Int32Array }).segChk),
    io: Array.from(c.state.io),
    mem: hash(mem),
  };
}

function hash(mem: Uint8Array): string {
  let h = 0x811c9dc5;
  const w = new Int32Array(mem.buffer, 0, mem.length >>> 2);
  for (let i = 0; i < w.length; i++) if (w[i] !== 0) h = Math.imul(h ^ w[i] ^ i, 0x01000193);
  return (h >>> 0).toString(16);
}

/** Runs the iret with the inline path on or off; the state after it and whether inline took it. */
function runOne(c: Case, on: boolean): { state: unknown; took: boolean } {
  const { cpu, mem } = machine(c);
  setIretInline(on);
  try {
    const n = iretInlineCount();
    const exit = cpu.run(1);
    return { state: snapshot(cpu, mem, exit), took: iretInlineCount() !== n };
  } finally {
    setIretInline(true);
  }
}

const to3 = (i: number, v: number): number[] => TO3.map((x, k) => (k === i ? v : x));
const to1 = (cs: number, eip = 0x6000, fl = 0x202): number[] => [eip, cs, fl];

const CASES: Case[] = [
  { name: "ring 1 -> ring 3", frame: TO3, inline: true },
  { name: "ring 1 -> ring 1, same CS", frame: to1(K1_CS | 1), inline: true },
  { name: "ring 1 -> ring 1, another CS", frame: to1(K1_CS2 | 1), inline: true },
  { name: "ring 3 -> ring 3", cpl: 3, frame: to1(U_CS | 3, 0x6000, 0x3ed7), inline: true },
  { name: "ring 1 -> ring 1, conforming CS of DPL 1", frame: to1(CONF1 | 1), inline: true },
  { name: "ring 1 -> ring 3, conforming CS of DPL 1", frame: to3(1, CONF1 | 3), inline: true },
  { name: "ring 1 -> ring 3, conforming CS of DPL 3", frame: to3(1, CONF3 | 3), inline: true },
  { name: "ring 1 -> ring 3, SS based elsewhere", frame: to3(4, U_DSB | 3), inline: true },
  { name: "ring 1 -> ring 3, 16-bit SS: ESP's high half kept", frame: to3(4, U_DS16 | 3), inline: true },
  { name: "ring 1 -> ring 3, expand-down SS", frame: to3(4, U_DSDN | 3), inline: true },
  { name: "ring 1 -> ring 3, any outer ESP", frame: to3(3, 0xfffffffd), inline: true },
  { name: "flags: IF and IOPL from the frame at CPL 1, IOPL 0", frame: to3(2, 0xffffffff), inline: true },
  {
    name: "flags: IF taken at CPL 1 <= IOPL 1",
    frame: to3(2, 0x200),
    inline: true,
    setup: (cpu) => cpu.setFlags(0x1002),
  },
  { name: "flags: NT and VM in the frame at CPL 1", frame: to3(2, 0x24202), inline: true },
  { name: "flags: TF in the frame", frame: to3(2, 0x302), inline: true },
  { name: "ring 1 -> ring 3: DS, ES of DPL 1 nulled", frame: TO3, inline: true },
  {
    name: "ring 1 -> ring 3: DPL-3 data kept",
    frame: TO3,
    inline: true,
    setup: (cpu) => cpu.loadSegmentCache(FS, U_DS | 3, 0, -1, 0xc0f3),
  },
  { name: "paging: ring 1 -> ring 3", frame: TO3, inline: true, paging: true },
  { name: "paging: ring 3 -> ring 3", cpl: 3, frame: to1(U_CS | 3), inline: true, paging: true },
  // Each field wrong in turn: the full path's fault (or its walk, or its accessed bit).
  { name: "EIP beyond CS's limit", frame: to3(1, U_CS_LIM | 3), inline: false },
  { name: "EIP beyond CS's limit, same ring", cpl: 3, frame: to1(U_CS_LIM | 3), inline: false },
  { name: "EIP within the limited CS", frame: [0x5ffc, U_CS_LIM | 3, 0x202, 0x7ff0, U_DS | 3], inline: true },
  { name: "CS null", frame: to3(1, 3), inline: false },
  { name: "CS null, RPL 0", frame: to3(1, 0), inline: false },
  { name: "CS of ring 0 (RPL 0)", frame: to1(K0_CS), inline: false },
  { name: "CS of ring 0 with RPL 1", frame: to1(K0_CS | 1), inline: false },
  { name: "CS of ring 0 with RPL 3", frame: to3(1, K0_CS | 3), inline: false },
  { name: "CS RPL below CPL", cpl: 3, frame: to1(K1_CS | 1), inline: false },
  { name: "CS RPL 3, DPL 1", frame: to3(1, K1_CS | 3), inline: false },
  { name: "CS RPL 2 (no such ring's segments)", frame: to3(1, U_CS | 2), inline: false },
  { name: "CS conforming of DPL 3 with RPL 1", frame: to1(CONF3 | 1), inline: false },
  { name: "CS a data segment", frame: to3(1, U_DS | 3), inline: false },
  { name: "CS a system descriptor", frame: to3(1, SYS3 | 3), inline: false },
  { name: "CS not present", frame: to3(1, U_CS_NP | 3), inline: false },
  { name: "CS not accessed (the full path sets it)", frame: to3(1, U_CS_NA | 3), inline: false },
  { name: "CS execute-only (fine for CS)", frame: to3(1, U_XO | 3), inline: true },
  { name: "CS in the LDT", frame: to3(1, 0x0f), inline: false },
  { name: "CS beyond GDTR's limit", frame: to3(1, 0xbb), inline: false },
  {
    name: "CS's descriptor across a page",
    frame: TO3,
    inline: false,
    setup: (cpu, mem) => moveGdt(cpu, mem, 0x13ffc - U_CS),
  },
  {
    name: "CS's descriptor on a page the TLB does not hold",
    frame: TO3,
    inline: false,
    paging: true,
    setup: (cpu, mem) => moveGdt(cpu, mem, 0x400000 - U_DS),
  },
  { name: "SS null", frame: to3(4, 3), inline: false },
  { name: "SS RPL not CS's", frame: to3(4, U_DS | 2), inline: false },
  { name: "SS of ring 1 for a ring-3 CS", frame: to3(4, K1_DS | 3), inline: false },
  { name: "SS of ring 0", frame: to3(4, K0_DS | 3), inline: false },
  { name: "SS a code segment", frame: to3(4, U_CS | 3), inline: false },
  { name: "SS read-only", frame: to3(4, U_RO | 3), inline: false },
  { name: "SS not present", frame: to3(4, U_DS_NP | 3), inline: false },
  { name: "SS not accessed", frame: to3(4, U_DS_NA | 3), inline: false },
  { name: "SS in the LDT", frame: to3(4, 0x17), inline: false },
  { name: "SS beyond GDTR's limit", frame: to3(4, 0xbb), inline: false },
  {
    name: "SS's descriptor across a page",
    frame: TO3,
    inline: false,
    setup: (cpu, mem) => moveGdt(cpu, mem, 0x13ffc - U_DS),
  },
  // The stack itself.
  { name: "NT set: task return (#GP)", frame: TO3, inline: false, setup: (cpu) => cpu.setFlags(NT | 2) },
  {
    name: "a 16-bit stack",
    frame: TO3,
    inline: false,
    setup: (cpu) => stack(cpu, K1_SS16 | 1, 0xffff, 0x00b3, 0x9f00),
  },
  {
    name: "the frame beyond SS's limit",
    frame: TO3,
    inline: false,
    setup: (cpu) => stack(cpu, K1_SMALL | 1, 0x9f0f, 0x40b3, 0x9f00),
  },
  {
    name: "same-ring frame inside a limit the outer frame would pass",
    frame: to1(K1_CS2 | 1),
    inline: false,
    setup: (cpu) => stack(cpu, K1_SMALL | 1, 0x9f0f, 0x40b3, 0x9f00),
  },
  { name: "ESP wrapping the 4 GiB end", frame: [], inline: false, setup: (cpu) => (cpu.regs[ESP] = -8) },
  { name: "the frame across a page", frame: TO3, inline: false, setup: (cpu) => (cpu.regs[ESP] = 0x9ff8) },
  {
    name: "the frame in the page's last 20 bytes",
    frame: TO3,
    inline: true,
    setup: (cpu) => (cpu.regs[ESP] = 0x9fec),
  },
  { name: "the frame's page cold in the TLB", frame: TO3, inline: false, cold: true },
  {
    // Words at 0x9f00 that read as another valid frame when aligned (EIP 0x6000, ESP
    // 0x337ff0): read at ESP 0x9f02 the frame is EIP 0x2b0000, CS 0x2b, ESP 0x330033, SS 0x33.
    name: "an unaligned frame",
    frame: [],
    inline: false,
    setup: (cpu, mem) => {
      [0x6000, 0x2b002b, 0x202, 0x337ff0, 0x33, 0x33].forEach((w, i) => {
        put32(mem, 0x9f00 + i * 4, w);
      });
      cpu.regs[ESP] = 0x9f02;
    },
  },
  {
    name: "a GDT at an unaligned base",
    frame: TO3,
    inline: true,
    setup: (cpu, mem) => moveGdt(cpu, mem, 0x13002),
  },
  { name: "paging: the frame's page cold", frame: TO3, inline: false, cold: true, paging: true },
  {
    name: "paging: the frame's page not present",
    frame: [],
    inline: false,
    paging: true,
    cold: true,
    setup: (_cpu, mem) => put32(mem, PD + 0x1000 + 9 * 4, 0),
  },
  {
    name: "paging: ring 3's frame on a supervisor page the TLB holds for ring 1",
    cpl: 3,
    frame: to1(U_CS | 3),
    inline: false,
    paging: true,
    setup: (cpu, mem) => {
      put32(mem, PD + 0x1000 + 0xb * 4, 0xb003);
      hostCall(cpu, () => cpu.translate(0xbf00, false, false));
    },
  },
  {
    name: "CPL 0 (the full path's)",
    cpl: 1,
    frame: to3(1, K1_CS | 1),
    inline: false,
    setup: (cpu) => cpu.setCpl(0),
  },
  {
    name: "CPL 0 with VM in the frame (#GP there)",
    frame: [0x6000, K1_CS | 1, 0x20202, 0x7ff0, K1_DS | 1],
    inline: false,
    setup: (cpu) => cpu.setCpl(0),
  },
  {
    name: "ESP below an expand-down SS's valid offsets",
    frame: TO3,
    inline: false,
    setup: (cpu) => stack(cpu, K1_DS | 1, 0x9f7f, 0x40b7, 0x9f00),
  },
  {
    name: "ESP within an expand-down SS",
    frame: TO3,
    inline: true,
    setup: (cpu) => stack(cpu, K1_DS | 1, 0x9eff, 0x40b7, 0x9f00),
  },
  {
    name: "CS RPL below CPL, with an SS of its ring",
    cpl: 3,
    frame: [0x6000, K1_CS | 1, 0x202, 0x7ff0, K1_DS | 1],
    inline: false,
  },
  {
    name: "CS null with a code descriptor in the GDT's entry 0",
    frame: to3(1, 3),
    inline: false,
    setup: (_cpu, mem) => desc(mem, GDT, 0, FLAT, 0xfb, 0xc),
  },
  {
    name: "SS null with a data descriptor in the GDT's entry 0",
    frame: to3(4, 3),
    inline: false,
    setup: (_cpu, mem) => desc(mem, GDT, 0, FLAT, 0xf3, 0xc),
  },
  { name: "SS a system descriptor with the writable bit", frame: to3(4, SYS3W | 3), inline: false },
  {
    name: "CS in the LDT beyond its limit, the GDT's same entry valid",
    frame: to3(1, U_CS | 7),
    inline: false,
  },
  {
    name: "CS beyond GDTR's limit, a valid descriptor there",
    frame: to3(1, (GDT_LIMIT + 1) | 3),
    inline: false,
    setup: (_cpu, mem) => desc(mem, GDT + GDT_LIMIT + 1, 0, FLAT, 0xfb, 0xc),
  },
  {
    name: "the GDT's page cold in the TLB, its offsets valid in frame 0",
    frame: TO3,
    inline: false,
    paging: true,
    gdtCold: true,
    setup: (cpu, mem) => {
      moveGdt(cpu, mem, 0x400000);
      mem.copyWithin(0, 0x400000, 0x400000 + GDT_LIMIT + 1);
    },
  },
];

/** The GDT copied to base (GDTR moved there), as set_gdt would. */
function moveGdt(cpu: Cpu, mem: Uint8Array, base: number): void {
  mem.copyWithin(base, GDT, GDT + GDT_LIMIT + 1);
  cpu.gdtrBase = base;
}

function stack(cpu: Cpu, sel: number, limit: number, attr: number, esp: number): void {
  cpu.loadSegmentCache(SS, sel, 0, limit, attr);
  cpu.regs[ESP] = esp;
}

describe("the inline iret against the full path", () => {
  for (const c of CASES) {
    it(c.name, () => {
      const off = runOne(c, false);
      const on = runOne(c, true);
      assert.equal(off.took, false, "the switch turns it off");
      assert.deepEqual(on.state, off.state);
      assert.equal(on.took, c.inline, c.inline ? "the inline path takes it" : "the full path's case");
    });
  }

  it("a descriptor rewritten between two irets is read afresh", () => {
    for (const on of [true, false]) {
      const c: Case = { name: "", frame: TO3, inline: true };
      const { cpu, mem } = machine(c);
      setIretInline(on);
      try {
        assert.equal(cpu.run(1), 0);
        assert.equal(cpu.cpl, 3);
        // Back to ring 1 with the same frame; ring 3's CS made not present, then its DPL 1.
        for (const [access, vector, err] of [
          [0x7b, 11, U_CS],
          [0xbb, 13, U_CS],
        ]) {
          const m = machine(c);
          desc(m.mem, GDT + U_CS, 0, FLAT, access, 0xc);
          const n = iretInlineCount();
          m.cpu.run(1);
          assert.equal(m.cpu.exitVector, vector);
          assert.equal(m.cpu.exitErrorCode, err);
          assert.equal(m.cpu.cpl, 1);
          assert.equal(iretInlineCount(), n);
        }
        // The same machine: its CS's descriptor rewritten while ring 3 runs, then the next iret.
        desc(mem, GDT + U_CS, 0, FLAT, 0x7b, 0xc);
        cpu.loadSegmentCache(CS, K1_CS | 1, 0, -1, 0xc0bb);
        cpu.loadSegmentCache(SS, K1_DS | 1, 0, -1, 0xc0b3);
        cpu.setCpl(1);
        cpu.regs[ESP] = R1_ESP;
        cpu.eip = CODE;
        cpu.run(1);
        assert.equal(cpu.exitVector, 11, "not present");
        assert.equal(cpu.cpl, 1);
      } finally {
        setIretInline(true);
      }
    }
  });
});
