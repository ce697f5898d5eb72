import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Cpu } from "../src/cpu/cpu.js";
import { CR0_PG, CR0_WP, CR4_PSE, CS, DS, ES, ESP, Exit, FS, GS, SS, TR } from "../src/cpu/regs.js";

const PD = 0x100000;
const PT0 = 0x101000; // page table for 0 - 4 MiB
const CODE = 0x1000;
const USER_STACK = 0xa000;
const P = 1;
const RW = 2;
const US = 4;
const A = 0x20;
const D = 0x40;
const PS = 0x80;

function put32(mem: Uint8Array, a: number, v: number): void {
  new DataView(mem.buffer).setUint32(a, v >>> 0, true);
}
function get32(mem: Uint8Array, a: number): number {
  return new DataView(mem.buffer).getUint32(a, true);
}

/**
 * Paging on: 0 - 1 MiB identity-mapped supervisor RW except the code page and the user
 * stack (user RW) ; the PDE for 0 - 4 MiB allows everything (user RW).
 */
function machine(): { cpu: Cpu; mem: Uint8Array } {
  const mem = new Uint8Array(1 << 24);
  const cpu = new Cpu(mem);
  cpu.resetFlat32();
  put32(mem, PD, PT0 | P | RW | US);
  for (let page = 0; page < 256; page++) put32(mem, PT0 + page * 4, (page << 12) | P | RW);
  map(mem, CODE, CODE, P | RW | US);
  map(mem, USER_STACK - 0x1000, USER_STACK - 0x1000, P | RW | US);
  cpu.setCr3(PD);
  cpu.setCr0(cpu.cr0 | CR0_PG | CR0_WP);
  return { cpu, mem };
}

function map(mem: Uint8Array, lin: number, phys: number, flags: number): void {
  put32(mem, PT0 + (lin >>> 12) * 4, (phys & ~0xfff) | flags);
}
function pte(mem: Uint8Array, lin: number): number {
  return get32(mem, PT0 + (lin >>> 12) * 4);
}

function ring(cpu: Cpu, cpl: number): void {
  const dpl = cpl << 5;
  cpu.loadSegmentCache(CS, 0x08 | cpl, 0, -1, 0xc09b | dpl);
  for (const s of [SS, DS, ES, FS, GS]) cpu.loadSegmentCache(s, 0x10 | cpl, 0, -1, 0xc093 | dpl);
  cpu.setCpl(cpl);
  cpu.regs[ESP] = USER_STACK;
}

/** Runs `bytes` at CODE as one instruction. */
function exec(cpu: Cpu, mem: Uint8Array, bytes: number[]): Exit {
  mem.set(bytes, CODE);
  cpu.invalidateCode(CODE, bytes.length);
  cpu.eip = CODE;
  return cpu.run(1);
}

const LOAD = (addr: number) => [
  0x8b,
  0x05,
  addr & 0xff,
  (addr >> 8) & 0xff,
  (addr >> 16) & 0xff,
  addr >>> 24,
];
const STORE = (addr: number) => [
  0x89,
  0x05,
  addr & 0xff,
  (addr >> 8) & 0xff,
  (addr >> 16) & 0xff,
  addr >>> 24,
];

function expectPf(cpu: Cpu, r: Exit, error: number, cr2: number): void {
  assert.equal(r, Exit.Exception);
  assert.equal(cpu.exitVector, 14);
  assert.equal(cpu.exitErrorCode, error, `error code ${cpu.exitErrorCode}`);
  assert.equal(cpu.exitCr2 >>> 0, cr2 >>> 0);
  assert.equal(cpu.cr2 >>> 0, cr2 >>> 0);
  assert.equal(cpu.eip, CODE, "EIP at the faulting instruction");
}

describe("paging", () => {
  it("a read sets the accessed bits of the PDE and PTE but not the dirty bit", () => {
    const { cpu, mem } = machine();
    ring(cpu, 3);
    map(mem, 0x5000, 0x200000, P | RW | US);
    put32(mem, 0x200010, 0xcafe);
    assert.equal(exec(cpu, mem, LOAD(0x5010)), Exit.Budget);
    assert.equal(cpu.regs[0], 0xcafe);
    assert.equal(pte(mem, 0x5000) & (A | D), A);
    assert.equal(get32(mem, PD) & A, A);
  });

  it("the first write through a TLB entry filled by a read sets the dirty bit", () => {
    const { cpu, mem } = machine();
    ring(cpu, 3);
    map(mem, 0x5000, 0x200000, P | RW | US);
    exec(cpu, mem, LOAD(0x5010));
    cpu.regs[0] = 0x1234;
    assert.equal(exec(cpu, mem, STORE(0x5020)), Exit.Budget);
    assert.equal(pte(mem, 0x5000) & (A | D), A | D);
    assert.equal(get32(mem, 0x200020), 0x1234);
  });

  it("a CPL 3 read of a supervisor page raises #PF(5) with CR2", () => {
    const { cpu, mem } = machine();
    ring(cpu, 3);
    expectPf(cpu, exec(cpu, mem, LOAD(0x6004)), 5, 0x6004);
  });

  it("a CPL 3 read after a CPL 0 read filled the TLB still raises #PF(5)", () => {
    const { cpu, mem } = machine();
    ring(cpu, 0);
    assert.equal(exec(cpu, mem, LOAD(0x6004)), Exit.Budget);
    ring(cpu, 3);
    expectPf(cpu, exec(cpu, mem, LOAD(0x6004)), 5, 0x6004);
  });

  it("a CPL 3 write to a read-only user page raises #PF(7)", () => {
    const { cpu, mem } = machine();
    ring(cpu, 3);
    map(mem, 0x5000, 0x5000, P | US);
    expectPf(cpu, exec(cpu, mem, STORE(0x5008)), 7, 0x5008);
    assert.equal(pte(mem, 0x5000) & D, 0);
  });

  it("a CPL 3 write to a supervisor-writable page faults even after a CPL 0 write filled the TLB", () => {
    const { cpu, mem } = machine();
    ring(cpu, 0);
    map(mem, 0x5000, 0x5000, P | RW); // supervisor only
    assert.equal(exec(cpu, mem, STORE(0x5008)), Exit.Budget);
    ring(cpu, 3);
    expectPf(cpu, exec(cpu, mem, STORE(0x5008)), 7, 0x5008);
    // A user read-only page written by CPL 0 with WP clear: CPL 3 writes still fault.
    cpu.setCr0(cpu.cr0 & ~CR0_WP);
    map(mem, 0x7000, 0x7000, P | US);
    ring(cpu, 0);
    assert.equal(exec(cpu, mem, STORE(0x7008)), Exit.Budget);
    ring(cpu, 3);
    assert.equal(exec(cpu, mem, LOAD(0x7008)), Exit.Budget, "user read is fine");
    expectPf(cpu, exec(cpu, mem, STORE(0x7008)), 7, 0x7008);
  });

  it("a supervisor write to a read-only page raises #PF(3) with CR0.WP and succeeds without", () => {
    const { cpu, mem } = machine();
    ring(cpu, 0);
    map(mem, 0x5000, 0x5000, P | US);
    cpu.regs[0] = 0x77;
    expectPf(cpu, exec(cpu, mem, STORE(0x5000)), 3, 0x5000);
    ring(cpu, 1);
    expectPf(cpu, exec(cpu, mem, STORE(0x5000)), 3, 0x5000);
    cpu.setCr0(cpu.cr0 & ~CR0_WP);
    assert.equal(exec(cpu, mem, STORE(0x5000)), Exit.Budget);
    assert.equal(get32(mem, 0x5000), 0x77);
    assert.equal(pte(mem, 0x5000) & D, D);
  });

  it("CPL 1 and 2 are supervisor for paging", () => {
    const { cpu, mem } = machine();
    for (const cpl of [1, 2]) {
      ring(cpu, cpl);
      cpu.regs[0] = cpl;
      assert.equal(exec(cpu, mem, STORE(0x6000)), Exit.Budget);
      assert.equal(exec(cpu, mem, LOAD(0x6000)), Exit.Budget);
      assert.equal(cpu.regs[0], cpl);
    }
  });

  it("a not-present page raises #PF with P=0 (2 for a supervisor write, 4 for a user read)", () => {
    const { cpu, mem } = machine();
    ring(cpu, 0);
    map(mem, 0x5000, 0, 0);
    expectPf(cpu, exec(cpu, mem, STORE(0x5ff0)), 2, 0x5ff0);
    ring(cpu, 3);
    expectPf(cpu, exec(cpu, mem, LOAD(0x5ff0)), 4, 0x5ff0);
    // A not-present PDE too.
    expectPf(cpu, exec(cpu, mem, LOAD(0x800000)), 4, 0x800000);
  });

  it("a PDE with U/S=0 makes its pages supervisor even when the PTE allows user", () => {
    const { cpu, mem } = machine();
    put32(mem, PD, PT0 | P | RW);
    cpu.setCr3(PD);
    ring(cpu, 0);
    map(mem, 0x5000, 0x5000, P | RW | US);
    // Code runs at CPL 0 here; a CPL 3 access is checked through the host helper path.
    assert.throws(() => cpu.translate(0x5000, false, true));
    assert.equal(cpu.cr2, 0x5000);
    // PDE read-only: a user write faults even though the PTE is writable.
    put32(mem, PD, PT0 | P | US);
    cpu.setCr3(PD);
    assert.equal(cpu.translate(0x5000, false, true), 0x5000);
    assert.throws(() => cpu.translate(0x5000, true, true));
  });

  it("4 MiB pages with CR4.PSE map 4 MiB and set the PDE's dirty bit; PS is ignored without PSE", () => {
    const { cpu, mem } = machine();
    ring(cpu, 0);
    put32(mem, PD + 4 * 4, 0x800000 | P | RW | PS); // 16 MiB+ -> 8 MiB
    cpu.setCr4(CR4_PSE);
    cpu.regs[0] = 0x4242;
    assert.equal(exec(cpu, mem, STORE(0x1123456)), Exit.Budget);
    assert.equal(get32(mem, 0x923456), 0x4242);
    assert.equal(get32(mem, PD + 16) & (A | D), A | D);
    // Without PSE the PDE points to a page table at 0x800000 (all zero: not present).
    cpu.setCr4(0);
    expectPf(cpu, exec(cpu, mem, LOAD(0x1123456)), 0, 0x1123456);
  });

  it("a 4 MiB page read, then written: the read sets the PDE's accessed bit, the write its dirty bit", () => {
    // The write's walk finds the PDE with A and without D (peekWalk's D clear): walkMark
    // writes D (a PDE taken as dirty, or read at the wrong address, leaves it clear).
    const { cpu, mem } = machine();
    ring(cpu, 0);
    put32(mem, PD + 4 * 4, 0x800000 | P | RW | PS);
    cpu.setCr4(CR4_PSE);
    exec(cpu, mem, LOAD(0x1123456));
    assert.equal(get32(mem, PD + 16) & (A | D), A);
    cpu.regs[0] = 0x4343;
    assert.equal(exec(cpu, mem, STORE(0x1123458)), Exit.Budget);
    assert.equal(get32(mem, 0x923458), 0x4343);
    assert.equal(get32(mem, PD + 16) & (A | D), A | D);
    // A 4 KiB page under a PDE the walk found accessed: the PTE's bits written, the PDE's kept.
    map(mem, 0x6000, 0x201000, P | RW);
    exec(cpu, mem, STORE(0x6004));
    assert.equal(pte(mem, 0x6000) & (A | D), A | D);
    assert.equal(get32(mem, PD), PT0 | P | RW | US | A, "the PDE: A once, never D");
  });

  it("invlpg drops a stale translation; mov cr3 flushes the TLB", () => {
    const { cpu, mem } = machine();
    ring(cpu, 0);
    map(mem, 0x5000, 0x200000, P | RW);
    put32(mem, 0x200000, 1);
    put32(mem, 0x300000, 2);
    exec(cpu, mem, LOAD(0x5000));
    assert.equal(cpu.regs[0], 1);
    map(mem, 0x5000, 0x300000, P | RW);
    exec(cpu, mem, LOAD(0x5000));
    assert.equal(cpu.regs[0], 1, "stale TLB entry until invlpg");
    exec(cpu, mem, [0x0f, 0x01, 0x3d, 0x00, 0x50, 0, 0]); // invlpg [0x5000]
    exec(cpu, mem, LOAD(0x5000));
    assert.equal(cpu.regs[0], 2);
    map(mem, 0x5000, 0x200000, P | RW);
    cpu.regs[3] = PD;
    exec(cpu, mem, [0x0f, 0x22, 0xdb]); // mov cr3, ebx
    exec(cpu, mem, LOAD(0x5000));
    assert.equal(cpu.regs[0], 1);
    // invlpg is privileged.
    ring(cpu, 3);
    assert.equal(exec(cpu, mem, [0x0f, 0x01, 0x3d, 0x00, 0x50, 0, 0]), Exit.Exception);
    assert.equal(cpu.exitVector, 13);
  });

  it("an instruction fetch from a not-present page reports that EIP and CR2", () => {
    const { cpu, mem } = machine();
    ring(cpu, 3);
    // jmp 0x7000 (not mapped for user: supervisor page) then the fetch faults.
    const r = exec(cpu, mem, [0xe9, 0xfb, 0x5f, 0, 0]);
    assert.equal(r, Exit.Budget);
    assert.equal(cpu.eip, 0x7000);
    assert.equal(cpu.run(1), Exit.Exception);
    assert.equal(cpu.exitVector, 14);
    assert.equal(cpu.exitErrorCode, 5);
    assert.equal(cpu.exitCr2, 0x7000);
    assert.equal(cpu.eip, 0x7000);
    assert.equal(cpu.regs[ESP], USER_STACK);
  });

  it("a dword write across a page boundary into a read-only page writes nothing", () => {
    const { cpu, mem } = machine();
    ring(cpu, 3);
    map(mem, 0x5000, 0x5000, P | RW | US);
    map(mem, 0x6000, 0x6000, P | US);
    put32(mem, 0x5ffc, 0x11111111);
    put32(mem, 0x6000, 0x22222222);
    cpu.regs[0] = -1;
    expectPf(cpu, exec(cpu, mem, STORE(0x5ffe)), 7, 0x6000);
    assert.equal(get32(mem, 0x5ffc), 0x11111111);
    assert.equal(get32(mem, 0x6000), 0x22222222);
  });

  it("a push at CPL 3 onto a read-only stack page raises #PF(7) and leaves ESP", () => {
    const { cpu, mem } = machine();
    ring(cpu, 3);
    map(mem, USER_STACK - 0x1000, USER_STACK - 0x1000, P | US);
    expectPf(cpu, exec(cpu, mem, [0x50]), 7, USER_STACK - 4);
    assert.equal(cpu.regs[ESP], USER_STACK);
  });

  it("a #PF in architectural mode is delivered through the IDT with its error code and CR2", () => {
    const { cpu, mem } = machine();
    // GDT at 0x10000, IDT at 0x20000, TSS at 0x11000: supervisor pages.
    const w = (a: number, lo: number, hi: number) => {
      put32(mem, a, lo);
      put32(mem, a + 4, hi);
    };
    w(0x10008, 0x0000ffff, 0x00cf9b00);
    w(0x10010, 0x0000ffff, 0x00cf9300);
    w(0x10018, 0x0000ffff, 0x00cffb00);
    w(0x10020, 0x0000ffff, 0x00cff300);
    cpu.gdtrBase = 0x10000;
    cpu.gdtrLimit = 0x27;
    cpu.idtrBase = 0x20000;
    cpu.idtrLimit = 0x7ff;
    w(0x20000 + 14 * 8, (0x08 << 16) | 0x3000, 0x00008e00);
    put32(mem, 0x11004, 0x9000);
    put32(mem, 0x11008, 0x10);
    cpu.loadSegmentCache(TR, 0x28, 0x11000, 0x67, 0x8b);
    cpu.loadSegmentCache(CS, 0x1b, 0, -1, 0xc0fb);
    for (const s of [SS, DS, ES, FS, GS]) cpu.loadSegmentCache(s, 0x23, 0, -1, 0xc0f3);
    cpu.setCpl(3);
    cpu.regs[ESP] = USER_STACK;
    cpu.deliverThroughIdt = true;
    mem[0x3000] = 0xf4;
    mem.set(LOAD(0x6004), CODE);
    cpu.eip = CODE;
    assert.equal(cpu.run(5), Exit.Halt);
    assert.equal(cpu.eip, 0x3001);
    assert.equal(cpu.cr2, 0x6004);
    assert.equal(cpu.regs[ESP], 0x9000 - 24);
    assert.deepEqual(
      [0, 4, 8, 12, 16, 20].map((o) => get32(mem, 0x9000 - 24 + o)),
      [5, CODE, 0x1b, 2, USER_STACK, 0x23],
    );
  });

  it("implicit descriptor-table accesses are supervisor accesses", () => {
    const { cpu, mem } = machine();
    ring(cpu, 3);
    // GDT on a supervisor page: a CPL 3 segment load still reads it.
    put32(mem, 0x10030, 0x0000ffff);
    put32(mem, 0x10034, 0x00cff300);
    cpu.gdtrBase = 0x10000;
    cpu.gdtrLimit = 0x3f;
    cpu.regs[0] = 0x33;
    assert.equal(exec(cpu, mem, [0x8e, 0xd8]), Exit.Budget);
    assert.equal(cpu.segSel[DS], 0x33);
    assert.equal(mem[0x10035], 0xf3, "accessed bit set");
    // With the GDT page read-only and WP set, setting the accessed bit faults (#PF 3).
    put32(mem, 0x10034, 0x00cff200);
    map(mem, 0x10000, 0x10000, P);
    cpu.flushTlb();
    expectPf(cpu, exec(cpu, mem, [0x8e, 0xd8]), 3, 0x10034);
  });
});
