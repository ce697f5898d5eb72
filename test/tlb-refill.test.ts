/**
 * The switch-in's TLB refill (issue 16, idle scale): CpuContext.save keeps the linear pages the
 * TLB held (Cpu.tlbPages) and the next switch-in, after the CR3 load's flush, enters them again
 * (Cpu.tlbRefill), each read from the page tables as they are then. The rule: a refilled entry
 * is the one the page's first access would walk to, and that walk would write nothing, whatever
 * was done to the tables, frames or watches while the vcpu was switched out (any writer: a
 * foreign mmu_update, a grant unmap, a balloon's frame given back, a type change all end in
 * these tables). Here a host writer changes the descheduled address space's tables in each way
 * a walk reads them; then every refilled entry must equal a fresh walk's with the tables
 * unchanged by it, and reads and writes through the old VAs see the new mappings (or fault),
 * never the old frame. Counts of refilled entries are pinned, so a refill that does nothing
 * fails too.
 *
 * The refill reads through the walk's own peekWalk (cpu.ts), so each rule is stated once; the
 * mutations (dist copy) of stop 28, each failing it: in peekWalk the PTE's or the PDE's accessed
 * bit not required, the write watch ignored, a frame past memory not flagged, a 4 MiB PDE
 * taken as a table (pdeTable); the dirty bit not required for write bits (9 cases), or kept for
 * a watched frame; in tlbRefill the accessed bit (2) or the past-memory flag left out of its
 * test (one case). Equivalent: its present bit left out (the walk gives 0 for a missing entry),
 * its skip of a PDE pdeTable refused (0 & PTE is no entry). Of stop 27: the
 * switch-in restoring the entries the switch-out held (12 of 13); a CR3 load that keeps the
 * TLB (13 of 13).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CpuContext, RESAMPLE } from "../src/cpu/context.js";
import { CPU_FAULT, Cpu, TLB_SUP_WRITE } from "../src/cpu/cpu.js";
import { CR0_PG, CR0_WP, CR4_PSE, PTE_A, PTE_D, PTE_P, PTE_PS, PTE_RW, PTE_US } from "../src/cpu/regs.js";

const DIR_A = 0x10;
const L1_A = 0x11;
const DIR_B = 0x20;
const L1_B = 0x21;
const L1_ALT = 0x60;
/** The eight pages each address space uses: VA 0x400000 + i * 4 KiB (PDE 1). */
const VA = 0x400000;
const PAGES = 8;
const frameA = (i: number) => 0x30 + i;
const frameB = (i: number) => 0x40 + i;
/** Frames the mutations point at instead. */
const NEW = 0x50;
/** A frame past the machine's 1 MiB. */
const OUTSIDE = 0x200;
const marker = (f: number) => 0x5a000000 | f;
const FULL = PTE_P | PTE_RW | PTE_US | PTE_A | PTE_D;

interface Machine {
  c: Cpu;
  a: CpuContext;
  b: CpuContext;
  mem: Uint8Array;
  pte(i: number): number;
  setPte(i: number, v: number): void;
  setPde(v: number): void;
}

/** A and B, each with its eight pages mapped and warmed (written: accessed and dirty), B on the CPU. */
function machine(): Machine {
  const mem = new Uint8Array(1 << 20);
  const c = new Cpu(mem);
  c.resetFlat32();
  const w = (a: number, v: number) => c.physWrite32(a, v);
  for (let f = 0x30; f < 0x70; f++) w(f << 12, marker(f));
  w((DIR_A << 12) + 4, (L1_A << 12) | PTE_P | PTE_RW | PTE_US);
  w((DIR_B << 12) + 4, (L1_B << 12) | PTE_P | PTE_RW | PTE_US);
  for (let i = 0; i < PAGES; i++) {
    w((L1_A << 12) + i * 4, (frameA(i) << 12) | PTE_P | PTE_RW | PTE_US);
    w((L1_B << 12) + i * 4, (frameB(i) << 12) | PTE_P | PTE_RW | PTE_US);
    w((L1_ALT << 12) + i * 4, ((NEW + i) << 12) | FULL);
  }
  c.setCr3(DIR_A << 12);
  c.setCr0(c.cr0 | CR0_PG | CR0_WP);
  const a = new CpuContext();
  const b = new CpuContext();
  for (let i = 0; i < PAGES; i++) c.linWrite32(VA + i * 4096, c.linRead32(VA + i * 4096));
  a.save(c);
  c.setCr3(DIR_B << 12);
  b.save(c);
  for (let i = 0; i < PAGES; i++) c.linWrite32(VA + i * 4096, c.linRead32(VA + i * 4096));
  return {
    c,
    a,
    b,
    mem,
    pte: (i) => c.physRead32((L1_A << 12) + i * 4),
    setPte: (i, v) => w((L1_A << 12) + i * 4, v),
    setPde: (v) => w((DIR_A << 12) + 4, v),
  };
}

/** Switches from B back to A; returns A's eight TLB entries as the switch-in left them. */
function backToA(m: Machine): number[] {
  m.b.save(m.c);
  m.a.switchIn(m.c);
  return Array.from({ length: PAGES }, (_, i) => m.c.tlb[(VA >>> 12) + i]);
}

/** Runs f; the #PF's CR2, or -1 when it went through. */
function pf(c: Cpu, f: () => void): number {
  try {
    f();
    return -1;
  } catch (e) {
    if (e !== CPU_FAULT) throw e;
    return c.cr2;
  }
}

interface Case {
  name: string;
  /** Done to A's tables (and the CPU's watches) while A is switched out. */
  change(m: Machine): void;
  /** Entries the switch-in refills. */
  refilled: number;
  /** Reads and writes through A's VAs after the switch-in, against the change. */
  check(m: Machine): void;
}

const page = (i: number) => VA + i * 4096;

const CASES: Case[] = [
  {
    name: "nothing changed",
    change: () => {},
    refilled: 8,
    check: (m) => {
      for (let i = 0; i < PAGES; i++) assert.equal(m.c.linRead32(page(i)), marker(frameA(i)));
    },
  },
  {
    name: "a PTE retargeted (the frame taken away, another mapped)",
    change: (m) => m.setPte(0, (NEW << 12) | FULL),
    refilled: 8,
    check: (m) => {
      assert.equal(m.c.linRead32(page(0)), marker(NEW), "the new frame read, not the old");
      m.c.linWrite32(page(0) + 4, 0x1234);
      assert.equal(m.c.physRead32((frameA(0) << 12) + 4), 0, "the old frame unwritten");
      assert.equal(m.c.physRead32((NEW << 12) + 4), 0x1234);
    },
  },
  {
    name: "a PTE cleared (unmapped, the frame given back)",
    change: (m) => m.setPte(1, 0),
    refilled: 7,
    check: (m) => {
      assert.equal(
        pf(m.c, () => m.c.linRead32(page(1))),
        page(1),
      );
      assert.equal(
        pf(m.c, () => m.c.linWrite32(page(1), 1)),
        page(1),
      );
    },
  },
  {
    name: "a PTE's accessed bit cleared (its walk would set it)",
    change: (m) => m.setPte(2, m.pte(2) & ~PTE_A),
    refilled: 7,
    check: (m) => {
      assert.equal(m.c.linRead32(page(2)), marker(frameA(2)));
      assert.equal(m.pte(2) & PTE_A, PTE_A, "the read walked and set it");
    },
  },
  {
    name: "a PTE's dirty bit cleared (its first write walks)",
    change: (m) => m.setPte(3, m.pte(3) & ~PTE_D),
    refilled: 8,
    check: (m) => {
      assert.equal(m.c.tlb[page(3) >>> 12] & TLB_SUP_WRITE, 0, "no write bits");
      m.c.linWrite32(page(3) + 8, 7);
      assert.equal(m.pte(3) & PTE_D, PTE_D, "the write walked and set it");
    },
  },
  {
    name: "a PTE retargeted past the end of memory (a walk enters no entry)",
    change: (m) => m.setPte(1, (OUTSIDE << 12) | FULL),
    refilled: 7,
    check: (m) => {
      assert.equal(m.c.linRead32(page(1)), -1, "the read sees no memory");
      assert.equal(m.c.tlb[page(1) >>> 12], 0, "and leaves no entry");
    },
  },
  {
    name: "a PTE made read-only (a page becoming a page table)",
    change: (m) => m.setPte(4, m.pte(4) & ~PTE_RW),
    refilled: 8,
    check: (m) => {
      assert.equal(m.c.linRead32(page(4)), marker(frameA(4)));
      assert.equal(
        pf(m.c, () => m.c.linWrite32(page(4), 1)),
        page(4),
      );
      assert.equal(m.c.physRead32(frameA(4) << 12), marker(frameA(4)), "the frame unwritten");
    },
  },
  {
    name: "a PTE made supervisor-only",
    change: (m) => m.setPte(5, m.pte(5) & ~PTE_US),
    refilled: 8,
    check: (m) => {
      m.c.setCpl(3);
      assert.equal(
        pf(m.c, () => m.c.linRead32(page(5))),
        page(5),
      );
      assert.equal(m.c.linRead32(page(6)), marker(frameA(6)), "a user page still read");
      m.c.setCpl(0);
    },
  },
  {
    name: "the PDE retargeted to another L1",
    change: (m) => m.setPde((L1_ALT << 12) | PTE_P | PTE_RW | PTE_US | PTE_A),
    refilled: 8,
    check: (m) => {
      for (let i = 0; i < PAGES; i++) assert.equal(m.c.linRead32(page(i)), marker(NEW + i));
    },
  },
  {
    name: "the PDE's accessed bit cleared",
    change: (m) => m.setPde((L1_A << 12) | PTE_P | PTE_RW | PTE_US),
    refilled: 0,
    check: (m) => {
      assert.equal(m.c.linRead32(page(0)), marker(frameA(0)));
      assert.equal(m.c.physRead32((DIR_A << 12) + 4) & PTE_A, PTE_A, "the read walked and set it");
    },
  },
  {
    name: "the PDE cleared",
    change: (m) => m.setPde(0),
    refilled: 0,
    check: (m) => {
      assert.equal(
        pf(m.c, () => m.c.linRead32(page(7))),
        page(7),
      );
    },
  },
  {
    name: "the PDE made a 4 MiB page (CR4.PSE)",
    change: (m) => {
      // Bits 12-21 of a 4 MiB PDE are not its frame: here A's L1, which a refill taking the
      // PDE as a table would read (A's old pages) where the walk reads frame 0's.
      m.setPde((L1_A << 12) | PTE_P | PTE_RW | PTE_US | PTE_A | PTE_D | PTE_PS);
      m.a.cr4 |= CR4_PSE;
      m.c.physWrite32(0x2000, 0x77);
    },
    refilled: 0,
    check: (m) => {
      // Linear 0x400000 + i * 4 KiB -> physical frame i of the large page at 0.
      assert.equal(m.c.linRead32(page(2)), 0x77);
    },
  },
  {
    name: "a frame watched for writes (dirty logging)",
    change: (m) => {
      m.c.writeWatch = new Uint8Array(256);
      m.c.writeWatch[frameA(6)] = 1;
    },
    refilled: 8,
    check: (m) => {
      const seen: number[] = [];
      m.c.onWatchedWrite = (f) => seen.push(f);
      assert.equal(m.c.tlb[page(6) >>> 12] & TLB_SUP_WRITE, 0, "no write bits for the watched frame");
      m.c.linWrite32(page(6), 3);
      m.c.linWrite32(page(7), 3);
      assert.deepEqual(seen, [frameA(6)], "its first write reported");
    },
  },
];

describe("the switch-in's TLB refill: the tables as they are, nothing kept", () => {
  for (const k of CASES) {
    it(`${k.name}: every refilled entry is a fresh walk's, which writes nothing; accesses see the change`, () => {
      // Each entry against the walk: the same entry, no table written by the walk.
      const m = machine();
      k.change(m);
      const entries = backToA(m);
      assert.equal(
        entries.filter((e) => e !== 0).length,
        k.refilled,
        `refilled entries: ${entries.map((e) => e.toString(16))}`,
      );
      for (let i = 0; i < PAGES; i++) {
        const e = entries[i];
        if (e === 0) continue;
        const before = m.mem.slice();
        m.c.flushTlb();
        m.c.translate(page(i), (e & TLB_SUP_WRITE) !== 0, false);
        assert.equal(m.c.tlb[page(i) >>> 12], e, `page ${i}: the walk's entry`);
        assert.ok(
          before.every((x, j) => m.mem[j] === x),
          `page ${i}: the walk wrote nothing`,
        );
      }
      // The accesses, on the refilled TLB of a second run.
      const n = machine();
      k.change(n);
      backToA(n);
      k.check(n);
      // B, switched out meanwhile, comes back with its own pages.
      n.a.save(n.c);
      n.b.switchIn(n.c);
      for (let i = 0; i < PAGES; i++) assert.equal(n.c.linRead32(page(i)), marker(frameB(i)));
    });
  }

  it("a context saved with paging off, or a TLB list that overflowed, refills nothing", () => {
    const m = machine();
    m.a.cr0 &= ~CR0_PG;
    assert.deepEqual(backToA(m), new Array(PAGES).fill(0));
    // Five PDEs on one L1 of 1,024 entries: 5,120 pages, past the TLB's list of 4,096.
    const n = machine();
    const fill = 0x61;
    for (let i = 0; i < 1024; i++) n.c.physWrite32((fill << 12) + i * 4, (0x30 << 12) | FULL);
    for (let p = 2; p < 7; p++) n.c.physWrite32((DIR_B << 12) + p * 4, (fill << 12) | FULL);
    for (let p = 0; p < 4000; p++) n.c.linRead32((0x800 + p) << 12);
    const pages = new Int32Array(8);
    assert.equal(n.c.tlbPages(pages, 0, 8), 8, "below the list's end: pages given");
    for (let p = 4000; p < 5000; p++) n.c.linRead32((0x800 + p) << 12);
    assert.equal(n.c.tlbPages(pages, 0, 8), 0, "overflowed: none");
    n.b.save(n.c);
    n.a.switchIn(n.c);
    n.a.save(n.c);
    n.b.switchIn(n.c);
    assert.equal(n.c.tlb[0x800], 0, "B's busy space not refilled");
  });
});

describe("the kept pages resampled: a page no longer used leaves them", () => {
  it("every RESAMPLE-th switch-in refills nothing, and the pages its run walks are the ones kept", () => {
    const m = machine();
    // A's runs use pages 0-4 of the 8 it used before it was first switched out.
    const counts: number[] = [];
    const walked: number[] = [];
    const held = () => m.c.tlbPages(new Int32Array(32), 0, 32);
    for (let k = 0; k < 2 * RESAMPLE + 2; k++) {
      counts.push(backToA(m).filter((e) => e !== 0).length);
      const walks = held();
      for (let i = 0; i < 5; i++) assert.equal(m.c.linRead32(page(i)), marker(frameA(i)));
      walked.push(held() - walks);
      m.a.save(m.c);
      m.b.switchIn(m.c);
    }
    const resampled = (k: number) => (k + 1) % RESAMPLE === 0;
    // The kept 8 until A's RESAMPLE-th switch-in, which refills none; its run walks the 5 it
    // uses, the only ones kept from then on (the next resample walks them again).
    assert.deepEqual(
      counts,
      counts.map((_, k) => (resampled(k) ? 0 : k < RESAMPLE ? 8 : 5)),
    );
    assert.deepEqual(
      walked,
      walked.map((_, k) => (resampled(k) ? 5 : 0)),
    );
  });
});
