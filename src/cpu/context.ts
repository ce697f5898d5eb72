/**
 * A saved register state: what a host keeps for a virtual CPU while another one runs on this
 * processor. save/restore copy every architectural register the host may switch.
 */
import type { Cpu } from "./cpu.js";
import { Fpu } from "./fpu.js";

/** Where each array of eight lives in CpuContext.words. */
const REGS = 0;
const SEL = 8;
const BASE = 16;
const LIMIT = 24;
const ATTR = 32;
const DR = 40;
/** The linear pages the TLB held at the last save (Cpu.tlbPages), refilled at a restore. */
const PAGES = 48;
const PAGES_MAX = 32;
/**
 * Every RESAMPLE-th switch-in of a context refills nothing, so the pages its TLB holds at the
 * next save are exactly those that run walked: a page refilled is never walked again, and
 * without this a page last used at boot would be refilled at every switch-in for good (an idle
 * domain's 3 of 11). The cost, that run's walks (~8 for an idle tick), is spread over RESAMPLE.
 */
export const RESAMPLE = 64;

export class CpuContext {
  /**
   * The saved registers, segment caches and debug registers, one array: an idle domain's
   * context is cold when its tick switches to it (tsxend sleeps between ticks and the host's
   * caches are evicted meanwhile), and six arrays of their own were six objects and six
   * element stores to fetch, where this is one object and three cache lines (the kept TLB
   * pages two more).
   */
  private readonly words = new Int32Array(PAGES + PAGES_MAX);
  /** How many of words[PAGES..] the last save kept. */
  private pages = 0;
  /** Switch-ins since the last one that refilled nothing (RESAMPLE). */
  private refills = 0;
  /**
   * The CPU whose segment caches equal words[SEL..ATTR + 8] while its segStamp is segMark: set
   * after a save's copies and after restoreRegisters (which writes back what a load changed),
   * so save skips the 32 copies and restoreRegisters the 8 compares while no segment was
   * written on that CPU (idle domains switched between each other load none). An object, so a
   * save image's snapshot (numbers and arrays only) never carries it to another context.
   */
  private segOn: Cpu | null = null;
  private segMark = 0;
  readonly regs = this.words.subarray(REGS, REGS + 8);
  eip = 0;
  eflags = 0;
  readonly segSel = this.words.subarray(SEL, SEL + 8);
  readonly segBase = this.words.subarray(BASE, BASE + 8);
  readonly segLimit = this.words.subarray(LIMIT, LIMIT + 8);
  readonly segAttr = this.words.subarray(ATTR, ATTR + 8);
  cpl = 0;
  cr0 = 0;
  cr2 = 0;
  cr3 = 0;
  cr4 = 0;
  gdtrBase = 0;
  gdtrLimit = 0;
  idtrBase = 0;
  idtrLimit = 0;
  /**
   * The debug registers. From switchIn until the CPU leaves this context they are the CPU's
   * array itself (cpu.dr), as the x87 unit is: a switch hands the array over where it copied
   * 8 + 8 words (every idle wakeup is a switch, and nearly no guest writes them). save() copies
   * only from an array not this one (a host's restore() gave the CPU a copy).
   */
  readonly dr = this.words.subarray(DR, DR + 8);
  /**
   * The x87 state (fninit state for a new context). From switchIn until the CPU leaves this
   * context it is the CPU's unit itself (cpu.fpu), not a copy: a switch hands units over, where
   * it copied the image twice (an idle domain's every wakeup is a switch).
   */
  fpu = new Fpu();

  save(cpu: Cpu): void {
    // The flags first: their lazy parts are then inlined here with the copies after them.
    this.eflags = cpu.getFlags();
    const w = this.words;
    save8(w, REGS, cpu.regs);
    if (this.segOn !== cpu || this.segMark !== cpu.segStamp) {
      save8(w, SEL, cpu.segSel);
      save8(w, BASE, cpu.segBase);
      save8(w, LIMIT, cpu.segLimit);
      save8(w, ATTR, cpu.segAttr);
      this.segOn = cpu;
      this.segMark = cpu.segStamp;
    }
    if (cpu.dr !== this.dr) save8(w, DR, cpu.dr);
    this.pages = cpu.tlbPages(w, PAGES, PAGES_MAX);
    this.eip = cpu.eip;
    this.cpl = cpu.cpl;
    this.cr0 = cpu.cr0;
    this.cr2 = cpu.cr2;
    this.cr3 = cpu.cr3;
    this.cr4 = cpu.cr4;
    this.gdtrBase = cpu.gdtrBase;
    this.gdtrLimit = cpu.gdtrLimit;
    this.idtrBase = cpu.idtrBase;
    this.idtrLimit = cpu.idtrLimit;
    // Nothing to copy when the CPU's unit is this context's own (switchIn).
    if (cpu.fpu !== this.fpu) this.fpu.copyFrom(cpu.fpu);
  }

  /** Puts this state on the CPU; the CPU gets a copy of the x87 state, a unit of its own. */
  restore(cpu: Cpu): void {
    // A host's own restore (a test's, ptwr's) compares all eight whatever it wrote meanwhile.
    this.segOn = null;
    this.restoreRegisters(cpu);
    this.refill(cpu);
    // The CPU's own copies: its arrays may be another context's (switchIn).
    cpu.dr = this.dr.slice();
    // Never copied into the unit on the CPU: after switchIn that unit is another context's.
    const own = new Fpu();
    own.copyFrom(this.fpu);
    cpu.fpu = own;
  }

  /** restore() for a host switching to this context: the CPU runs on this context's x87 unit. */
  switchIn(cpu: Cpu): void {
    this.restoreRegisters(cpu);
    this.refill(cpu);
    cpu.dr = this.dr;
    cpu.fpu = this.fpu;
  }

  /** The kept pages entered again, but for every RESAMPLE-th switch-in (which walks them). */
  private refill(cpu: Cpu): void {
    if (++this.refills < RESAMPLE) cpu.tlbRefill(this.words, PAGES, this.pages);
    else this.refills = 0;
  }

  /**
   * For a host that wrote segSel, segBase, segLimit or segAttr itself (their only writers but
   * save and restore): the next restore compares and loads all eight again (segOn). No host
   * writes a saved context's segments today (getVcpuContext and a save image's restore write
   * fresh contexts, whose segOn is null); segmentsOn() catches one that forgets this.
   */
  segmentsWritten(): void {
    this.segOn = null;
  }

  /**
   * Whether the CPU's eight segment caches are this context's words, as they must be after a
   * switch-in (checked under TSXEN_CHECK_INVARIANTS): a switch-in that skipped the compares
   * (segOn) after a host wrote the words without segmentsWritten() leaves them apart.
   */
  segmentsOn(cpu: Cpu): boolean {
    const w = this.words;
    for (let s = 0; s < 8; s++)
      if (
        w[SEL + s] !== cpu.segSel[s] ||
        w[BASE + s] !== cpu.segBase[s] ||
        w[LIMIT + s] !== cpu.segLimit[s] ||
        w[ATTR + s] !== cpu.segAttr[s]
      )
        return false;
    return true;
  }

  /**
   * save() for a host leaving the CPU with no context on it: the CPU keeps its x87 state, as
   * a copy, so that nothing it runs meanwhile changes this context's.
   */
  detach(cpu: Cpu): void {
    this.save(cpu);
    if (cpu.dr === this.dr) cpu.dr = this.dr.slice();
    if (cpu.fpu === this.fpu) {
      cpu.fpu = new Fpu();
      cpu.fpu.copyFrom(this.fpu);
    }
  }

  private restoreRegisters(cpu: Cpu): void {
    const w = this.words;
    restore8(cpu.regs, w, REGS);
    // int32 whatever a save image held: an unsigned EIP makes V8's Cpu.eip field a double.
    cpu.eip = this.eip | 0;
    cpu.setFlags(this.eflags);
    if (this.segOn !== cpu || this.segMark !== cpu.segStamp) {
      for (let s = 0; s < 8; s++) {
        // loadSegmentCache's early return before the call: a switch between idle domains
        // restores the eight caches already on the CPU (~100 host instructions a call).
        if (cpu.segCacheHolds(s, w[SEL + s], w[BASE + s], w[LIMIT + s], w[ATTR + s])) continue;
        cpu.loadSegmentCache(s, w[SEL + s], w[BASE + s], w[LIMIT + s], w[ATTR + s]);
        // What the cache now holds (a selector masked to 16 bits): the words equal the CPU's.
        w[SEL + s] = cpu.segSel[s];
        w[BASE + s] = cpu.segBase[s];
        w[LIMIT + s] = cpu.segLimit[s];
        w[ATTR + s] = cpu.segAttr[s];
      }
      this.segOn = cpu;
      this.segMark = cpu.segStamp;
    }
    cpu.setCpl(this.cpl);
    cpu.cr0 = this.cr0;
    cpu.cr2 = this.cr2;
    cpu.cr4 = this.cr4;
    cpu.gdtrBase = this.gdtrBase;
    cpu.gdtrLimit = this.gdtrLimit;
    cpu.idtrBase = this.idtrBase;
    cpu.idtrLimit = this.idtrLimit;
    // The CR3 load's flush drops every entry: restore and switchIn then enter again the pages
    // this vcpu last used, from its tables as they are now (an idle tick's walks), where a walk
    // would write nothing. Not here: restoreRegisters stays small enough for V8 to inline its
    // helpers (with the refill in it, the flush and a segment load were calls).
    cpu.setCr3(this.cr3);
  }
}

/*
 * The copies written out, not looped: V8 checks each array once and keeps its base and length in
 * registers through straight-line code, where a loop over six arrays reloaded and checked each
 * one every pass (measured alone: 660 -> 284 host instructions for save's 48 words).
 */
function save8(w: Int32Array, at: number, a: Int32Array): void {
  w[at] = a[0];
  w[at + 1] = a[1];
  w[at + 2] = a[2];
  w[at + 3] = a[3];
  w[at + 4] = a[4];
  w[at + 5] = a[5];
  w[at + 6] = a[6];
  w[at + 7] = a[7];
}

function restore8(a: Int32Array, w: Int32Array, at: number): void {
  a[0] = w[at];
  a[1] = w[at + 1];
  a[2] = w[at + 2];
  a[3] = w[at + 3];
  a[4] = w[at + 4];
  a[5] = w[at + 5];
  a[6] = w[at + 6];
  a[7] = w[at + 7];
}
