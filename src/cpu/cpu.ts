/**
 * The x86-32 CPU: architectural state, memory access through segmentation and 2-level
 * paging with a software TLB, lazy flags, and the run loop that executes decoded
 * instructions until something needs the host (an exit, as with KVM_RUN).
 *
 * It knows nothing of Xen. Faults raised inside an instruction unwind through the run loop
 * (a preallocated throw, never an allocation) with the instruction's state rolled back.
 */
import { BLOCK_THRESHOLD, compileBlock, compileRegion, REGION_THRESHOLD } from "./blocks.js";
import * as decodeNs from "./decode.js";
import { DecodeCache } from "./decode.js";
import { storeAsDoubles } from "./doubles.js";
import * as flagsNs from "./flags.js";
import { Fpu } from "./fpu.js";
import * as tableNs from "./ops/table.js";
import * as regsNs from "./regs.js";
import { Exit, hasErrorCode } from "./regs.js";
import { deliverInterrupt } from "./segments.js";
import type { InterpStats } from "./stats.js";
import * as tlbNs from "./tlb_bits.js";
import {
  type Backend,
  type CpuState,
  cpuState,
  defaultBackend,
  IO_CPL,
  IO_FLAT,
  IO_GDTB,
  IO_GDTL,
  SEG_ATTR,
  SEG_LIMIT,
  SEG_RDU,
  SEG_WRU,
} from "./wasm/arena.js";

// Module-level copies of imported constants: V8 constant-folds these, whereas each use of an
// imported binding in optimized code costs a module-cell load and a TDZ check (hot paths).
const { EA_BASE, EA_DISP, EA_SIB, P_A16, SLOT_MASK, decodeInto } = decodeNs;
const { HANDLERS, HOT_FNS, hotCase } = tableNs;
const { L_ADC, L_ADD, L_DEC, L_INC, L_LOGIC, L_NONE, L_RES, L_SBB, L_SUB, PARITY } = flagsNs;
const { TLB_SUP_READ, TLB_SUP_WRITE, TLB_USER_READ, TLB_USER_WRITE } = tlbNs;
const {
  AF,
  CF,
  CR0_PG,
  CR0_WP,
  CR4_PSE,
  CS,
  DB,
  DF_VEC,
  EFLAGS_FIXED,
  ESP,
  GP,
  OF,
  PF,
  PF_VEC,
  PFEC_P,
  PFEC_U,
  PFEC_W,
  PTE_A,
  PTE_D,
  PTE_P,
  PTE_PS,
  PTE_RW,
  PTE_US,
  RF,
  SF,
  SS,
  SS_VEC,
  TF,
  ZF,
  reg8Index,
} = regsNs;

/** #DE #TS #NP #SS #GP: the contributory exceptions of the double-fault rules. */
function isContributory(v: number): boolean {
  return v === 0 || (v >= 10 && v <= 13);
}

/** Thrown (always this one object) to unwind a faulting instruction to the run loop. */
export const CPU_FAULT = { fault: true } as const;

/**
 * run() moves the epoch past this many retired instructions, and takes budgets of at most
 * MAX_BUDGET: the counts stay below 2^31, small integers to V8 (Cpu.rebase).
 */
export const REBASE_AT = 2 ** 30;
export const MAX_BUDGET = 2 ** 30;

/** The EFLAGS bits setFlags keeps (the others read as 0, bit 1 as 1). */
export const FLAGS_KEPT = 0x3f7fd5;

export { TLB_SUP_READ, TLB_SUP_WRITE, TLB_USER_READ, TLB_USER_WRITE } from "./tlb_bits.js";

const TLB_LIST_MAX = 4096;

/** peekWalk's flags beside the PTE bits: the dirty bit itself; a watched frame; one past memory. */
const WALK_DIRTY = 1 << 8;
const WALK_WATCHED = 1 << 9;
const WALK_OUT = 1 << 10;

/**
 * The page walk's reading half, shared by Cpu.translate and Cpu.tlbRefill so their rules cannot
 * drift: what a walk of lin finds (paging on), writing nothing. pde: lin's PDE (walkPde); mem32,
 * size: memory; pse: CR4.PSE; watch: Cpu.writeWatch (given, not read from the Cpu, so the
 * refill's loop passes them in locals). Packed in one int: the frame in the high 20 bits;
 * PTE_P when both levels are present (0 else: a #PF); PTE_RW and PTE_US of both levels
 * combined; PTE_A when every accessed bit the walk reads is set (else it writes them); PTE_D
 * when a read's entry may have write bits (dirty, the frame not watched), WALK_DIRTY the dirty
 * bit itself; PTE_PS a 4 MiB page; WALK_WATCHED a frame watched for writes; WALK_OUT a frame
 * outside memory (no TLB entry). So the low bits are tlbBits' perm for a read.
 */
function peekWalk(
  lin: number,
  pde: number,
  mem32: Int32Array,
  size: number,
  pse: boolean,
  watch: Uint8Array | null,
): number {
  if (pdeTable(pde, pse) !== 0) return peekPte(lin, pde, mem32, size, watch);
  if ((pde & PTE_P) === 0) return 0;
  const frame = (pde & 0xffc00000) | (lin & 0x3ff000);
  const w = (pde & (PTE_P | PTE_RW | PTE_US | PTE_A | PTE_D)) | PTE_PS | ((pde & PTE_D) << 2);
  return walkFrame(frame, w, size, watch);
}

/** pde when a walk reads a page table through it (present, not a 4 MiB page), else 0. */
function pdeTable(pde: number, pse: boolean): number {
  return (pde & PTE_P) !== 0 && ((pde & PTE_PS) === 0 || !pse) ? pde : 0;
}

/** peekWalk under a PDE pdeTable gave (the refill reads it once per 4 MiB region). */
function peekPte(
  lin: number,
  pde: number,
  mem32: Int32Array,
  size: number,
  watch: Uint8Array | null,
): number {
  const pteAddr = (pde & ~0xfff) | ((lin >>> 10) & 0xffc);
  const pte = pteAddr >>> 0 < size ? mem32[pteAddr >>> 2] : -1;
  if ((pte & PTE_P) === 0) return 0;
  const w = (pde & pte & (PTE_P | PTE_RW | PTE_US | PTE_A)) | (pte & PTE_D) | ((pte & PTE_D) << 2);
  return walkFrame(pte & ~0xfff, w, size, watch);
}

/** peekWalk's frame flags: a watched frame (its D cleared: no write bits), one past memory. */
function walkFrame(frame: number, w: number, size: number, watch: Uint8Array | null): number {
  if (watch !== null && watch[frame >>> 12] !== 0) w = (w | WALK_WATCHED) & ~PTE_D;
  if (frame >>> 0 >= size) w |= WALK_OUT;
  return frame | w;
}

/** The PDE a walk of lin reads under cr3: physRead32's answer for an aligned word (-1 past memory). */
function walkPde(lin: number, cr3: number, mem32: Int32Array, size: number): number {
  const pdeAddr = (cr3 & ~0xfff) | ((lin >>> 20) & 0xffc);
  return pdeAddr >>> 0 < size ? mem32[pdeAddr >>> 2] : -1;
}

/**
 * A TLB entry's bits for a walk's combined RW and US of both levels and the PTE's dirty bit:
 * writes through the TLB only once the dirty bit is set, so the first write walks.
 */
function tlbBits(perm: number, cr0: number): number {
  let bits = TLB_SUP_READ;
  if (perm & PTE_US) bits |= TLB_USER_READ;
  if (perm & PTE_D) {
    if (perm & PTE_RW || (cr0 & CR0_WP) === 0) bits |= TLB_SUP_WRITE;
    if (perm & PTE_RW && perm & PTE_US) bits |= TLB_USER_WRITE;
  }
  return bits;
}

/** DR6: breakpoint conditions B0-B3 and single step (BS). */
export const DR6_BS = 1 << 14;
/** A host debugger attached to a Cpu (cpu.hostDebug); see loopDebug and translate. */
export interface HostDebug {
  /** Before the instruction at linear address lin: true stops the run with it not executed. */
  before(lin: number): boolean;
  /** After an instruction retired: true stops the run there. */
  after(): boolean;
  /** Linear page numbers (lin >>> 12) whose every access is reported to access(). */
  readonly watchPages: ReadonlySet<number>;
  access(lin: number, write: boolean): void;
}

/** DR7: the L0/G0 .. L3/G3 enable bits. */
const DR7_ENABLES = 0xff;

/** Port I/O as the host sees it; the CPU checks IOPL and the TSS bitmap before calling. */
export interface IoPorts {
  read(port: number, size: 1 | 2 | 4): number;
  write(port: number, size: 1 | 2 | 4, value: number): void;
}

/**
 * The last Cpu.segStamp given out: one count for every Cpu, so no two CPUs ever show the same
 * stamp (CpuContext compares its mark against the CPU it is saved from or restored to).
 */
let segStamps = 0;

const NO_IO: IoPorts = { read: () => -1, write: () => {} };

export class Cpu {
  // --- Physical memory (owned by the machine; the CPU only reads and writes it) ---
  readonly mem8: Uint8Array;
  readonly mem16: Uint16Array;
  readonly mem32: Int32Array;
  readonly memView: DataView;
  readonly memSize: number;

  // --- General registers and EIP ---
  /**
   * The arrays a WebAssembly block shares (wasm/arena.ts): views on the machine's
   * WebAssembly.Memory when this Cpu has its state area, else the Cpu's own.
   */
  readonly state: CpuState;
  /** EAX, ECX, EDX, EBX, ESP, EBP, ESI, EDI (int32). */
  readonly regs: Int32Array;
  /** Byte view: AL=0, AH=1, CL=4, CH=5 ... (little-endian host). */
  readonly regs8: Uint8Array;
  /** Word view: AX=0, CX=2, DX=4 ... */
  readonly regs16: Uint16Array;
  eip = 0;

  // --- EFLAGS: arithmetic flags are lazy (see flags.ts) ---
  flags = EFLAGS_FIXED;
  lzOp = L_NONE;
  lzRes = 0;
  lzA = 0;
  lzB = 0;
  lzSize = 32;

  // --- Segment registers and descriptor caches: ES CS SS DS FS GS, LDTR, TR ---
  readonly segSel = new Int32Array(8);
  readonly segBase = new Int32Array(8);
  /** Byte-granular limit (unsigned, as stored in the descriptor after G scaling). */
  readonly segLimit = new Int32Array(8);
  /** Descriptor attributes: bits 0-7 = access byte (type, S, DPL, P), bits 12-15 = AVL, L, D/B, G. */
  readonly segAttr = new Int32Array(8);
  /**
   * A new stamp at every change of segSel, segBase, segLimit, segAttr or the checks derived
   * from them, and at every CS load (loadSegmentCache's two writing paths are their only
   * writers): while it stands, a load of what the arrays hold would change nothing, and
   * CpuContext's save and switch-in skip copying and comparing them.
   */
  segStamp = ++segStamps;
  /** Valid offset range for reads [segLo, segHi] and the highest offset for writes (-1: none). */
  readonly segLo = new Float64Array(8);
  readonly segHi = new Float64Array(8);
  readonly segWHi = new Float64Array(8);
  /**
   * The hot segRead/segWrite check in int32 arithmetic, 32 entries per segment (k = seg * 32):
   * c[k] is the base; for an access of n bytes (1, 2, 4) the allowed offsets, biased by 2^31
   * (offset ^ 0x80000000, so unsigned order becomes signed order), are c[k + 2n] ..
   * c[k + 2n + 1] for reads and c[k + 16 + 2n] .. c[k + 17 + 2n] for writes (an empty range is
   * INT32_MAX .. INT32_MIN). The same ranges unbiased (offsets as unsigned, an empty range 1 ..
   * 0) are at c[k + SEG_RDU + 2i] .. c[k + SEG_RDU + 2i + 1] and SEG_WRU, i = 0, 1, 2 for n = 1,
   * 2, 4, for the wasm blocks (an unsigned compare there needs no bias). Kept by
   * loadSegmentCache from segLo, segHi, segWHi and segBase.
   */
  private readonly segChk: Int32Array;

  /** GDTR, kept in the state's io words for the wasm blocks' descriptor reads (arena.ts IO_GDTB). */
  get gdtrBase(): number {
    return this.state.io[IO_GDTB];
  }
  set gdtrBase(v: number) {
    this.state.io[IO_GDTB] = v;
  }
  get gdtrLimit(): number {
    return this.state.io[IO_GDTL];
  }
  set gdtrLimit(v: number) {
    this.state.io[IO_GDTL] = v;
  }
  idtrBase = 0;
  idtrLimit = 0xffff;

  // --- Control and debug registers ---
  cr0 = 0x60000010;
  cr2 = 0;
  cr3 = 0;
  cr4 = 0;
  /** The debug registers: while a context is switched in, that context's own array (CpuContext.dr). */
  dr = new Int32Array(8);
  cpl = 0;

  /**
   * The x87 FPU (fninit state after construction and resetFlat32). A host switching contexts
   * puts the incoming context's own unit here instead of copying it (CpuContext.switchIn).
   */
  fpu = new Fpu();

  // --- Model-specific ---
  /** Added to the retired total to form the default TSC (wrmsr; a double: any 64-bit value). */
  tscOffset = 0;
  /**
   * Retired instructions since the epoch run() last moved (rebase): a small integer to V8
   * whatever the total, so the hot paths that count it keep the Cpu's shape (issue 16). Hosts
   * read and set the count since reset through retiredTotal.
   */
  retired = 0;
  /** Retired instructions before the epoch (a double from the start: exact up to 2^53). */
  retiredBase = 0;
  /** Instructions retired since reset (exact up to 2^53). */
  get retiredTotal(): number {
    return this.retiredBase + this.retired;
  }
  /** Sets the count since reset; the epoch's count (and the run's end with it) stays. */
  set retiredTotal(v: number) {
    this.retiredBase = v - this.retired;
  }
  /**
   * The current TSC as an integral number (exact up to 2^53; rdtsc splits it without a
   * BigInt); by default derived from retired instructions. The hypervisor sets its clock's.
   */
  tscNow: () => number = () => this.retiredBase + this.retired + this.tscOffset;
  /** The current TSC as a 64-bit value (the MSR paths). */
  readTsc(): bigint {
    return BigInt(this.tscNow());
  }
  readonly msrs = new Map<number, bigint>();
  io: IoPorts = NO_IO;

  /**
   * Architectural mode delivers faults and interrupts through the IDT (with stack switches
   * from the TSS) and exits only on hlt, the budget or a triple fault. Host mode (the
   * default) exits on every fault and interrupt so the host decides; a hypervisor uses it.
   */
  deliverThroughIdt = false;

  /**
   * Host mode: asked first at int n / int3 / into; true when the host delivered it inside the
   * run (the instruction retires and the run goes on at the new CS:EIP). It must change
   * nothing when it returns false: the exit then happens as without it.
   */
  softIntHook: ((vector: number) => boolean) | null = null;

  // --- Exit information ---
  exitReason: Exit = Exit.Budget;
  exitVector = 0;
  exitErrorCode = -1;
  exitCr2 = 0;
  exitSoft = false;

  // --- Dirty logging (like KVM's): the host hears of the first write to a watched frame ---
  /** Physical frame -> 1 while its next write must be reported; null when nothing is watched. */
  writeWatch: Uint8Array | null = null;
  /** Called (and the frame unwatched) on the first write to a watched frame. */
  onWatchedWrite: ((frame: number) => void) | null = null;

  /**
   * A host debugger (the gdb stub's target, src/tools/debug_target.ts). While one is attached
   * run() goes one instruction at a time through loopDebug, asking it before and after each;
   * linear pages it watches never enter the TLB, so every access to them walks translate(),
   * which reports it. null, the default, costs the fast loop nothing.
   */
  hostDebug: HostDebug | null = null;

  // --- Software TLB: one entry per virtual page, see TLB_* bits ---
  readonly tlb: Int32Array;
  private readonly tlbList = new Int32Array(TLB_LIST_MAX);
  private tlbCount = 0;
  /** A 4 MiB page was entered (as 4 KiB entries) since the last flush. */
  private tlbLarge = false;
  /** Entry bits an access needs at the current CPL. */
  rdMask = TLB_SUP_READ;
  wrMask = TLB_SUP_WRITE;

  // --- Decoded-instruction cache ---
  readonly dc: DecodeCache;
  /** Physical frame -> 1 when decoded instructions were taken from it. */
  readonly codePage: Uint8Array;
  /**
   * The fetch window: EIP values fetchEip .. fetchEip + 4095 lie in the code page whose
   * decoded instructions are in slotOf block fetchBlock (dc.emptyBlock when there is none).
   */
  private fetchEip = 0;
  private fetchBlock: number;
  /**
   * Times the fetch window was dropped (a code write, a change of CS, CPL or paging): a region
   * returns to the run loop when it moves (blocks.ts linkRegion).
   */
  fetchDrops = 0;

  /** The EIP of the fetch window's first byte. */
  get fetchBase(): number {
    return this.fetchEip;
  }

  /** Linear page of the fetch window, or -1; assigning -1 drops it (as dropFetch). */
  get fetchPage(): number {
    return this.fetchBlock === this.dc.emptyBlock ? -1 : (this.segBase[CS] + this.fetchEip) & ~0xfff;
  }
  set fetchPage(v: number) {
    if (v !== -1) throw new Error("fetchPage can only be reset (to -1)");
    this.dropFetch();
  }

  // --- Run-loop state ---
  /** The run loop stops when retired reaches runEnd; handlers set it to 0 to exit early. */
  runEnd = 0;
  /** EIP and ESP at the start of the current instruction, restored when it faults. */
  instrStart = 0;
  savedEsp = 0;
  /**
   * Interpreted runs of an instruction before the block starting there is compiled
   * (blocks.ts); 0 turns compiling off, 1 compiles before the first run (tests).
   */
  blockThreshold = BLOCK_THRESHOLD;
  /**
   * Standalone runs of a frame's compiled blocks (ones in no region yet) before its region
   * is (re)built (blocks.ts compileRegion); 0 turns regions off.
   */
  regionThreshold = REGION_THRESHOLD;
  /**
   * Interpreted hot instructions still inside a compiled block the budget cut (it did not fit
   * in what was left of the run): they are the block's own and not counted toward blocks of
   * their own. A host stopping runs at arbitrary points (tsxend's wall-clock pacing) made a
   * block of nearly every instruction of an idle guest's wakeup otherwise.
   */
  private coldLeft = 0;
  /**
   * Whether a block being compiled decodes code of its page not run yet (blocks.ts entryAt).
   * The vector runner turns it off, so each case's block is its own instructions only.
   */
  decodeAhead = true;
  /**
   * What compiled blocks become: JS functions, or WebAssembly (wasm/backend.ts; only when the
   * Cpu's state is in its memory's WebAssembly.Memory, else JS). TSXEN_CPU_BACKEND sets it.
   */
  backend: Backend = defaultBackend();
  /**
   * Entries from the run loop into regions and into standalone blocks, and blocks run
   * inside regions (linked transfers), for tests and benches.
   */
  regionRuns = 0;
  blockRuns = 0;
  regionBlocks = 0;
  /** Changes of code page taken inside regions (hopFetch), without the run loop. */
  regionHops = 0;
  /**
   * Whether a JS region that leaves its page goes on in the next page's region (on by
   * default; off for tests comparing both ways).
   */
  linkPages = true;
  /**
   * Instructions retired by compiled blocks (standalone or in regions) since the epoch, for
   * benches (a small integer, as retired); blockInsnsTotal counts since reset.
   */
  blockInsns = 0;
  /** blockInsns before the epoch (a double from the start). */
  blockInsnsBase = 0;
  get blockInsnsTotal(): number {
    return this.blockInsnsBase + this.blockInsns;
  }
  /**
   * run() moves the epoch when retired or blockInsns has reached this (tests lower it): with
   * a budget of at most MAX_BUDGET the counts and the run's ends stay below 2^31.
   */
  rebaseAt = REBASE_AT;
  /** Epochs moved (rebase). */
  rebases = 0;
  /** When set, the run loop records why each interpreted instruction was not in a block. */
  stats: InterpStats | null = null;
  /** Set when a code frame is written: a compiled block stops after the writing instruction. */
  codeHit = 0;
  /** Writes to code frames so far (a region returns to the run loop when it moves). */
  codeWrites = 0;
  /** The pending fault raised by fault(). */
  private fVector = 0;
  private fError = -1;
  private fTrap = false;
  private fSoft = false;
  /** A fault raise() recorded without unwinding; run() takes it when the loop returns. */
  private fPending = false;
  /** runEnd when raise() was called (it sets runEnd to 0 to leave the loop). */
  private fRunEnd = 0;

  constructor(memory: Uint8Array) {
    if (memory.byteOffset !== 0 || (memory.byteLength & 0xfff) !== 0) {
      throw new Error("Cpu memory must be a whole ArrayBuffer of 4 KiB frames");
    }
    this.mem8 = memory;
    this.mem16 = new Uint16Array(memory.buffer, 0, memory.byteLength >>> 1);
    this.mem32 = new Int32Array(memory.buffer, 0, memory.byteLength >>> 2);
    this.memView = new DataView(memory.buffer);
    this.memSize = memory.byteLength;
    const st = cpuState(memory);
    this.state = st;
    this.regs = st.regs;
    this.regs8 = new Uint8Array(st.regs.buffer, st.regs.byteOffset, 32);
    this.regs16 = new Uint16Array(st.regs.buffer, st.regs.byteOffset, 16);
    this.segChk = st.segChk;
    this.gdtrLimit = 0xffff;
    this.tlb = st.tlb;
    this.codePage = st.codePage;
    this.dc = new DecodeCache(memory.byteLength >>> 12);
    this.fetchBlock = this.dc.emptyBlock;
    // Off the hot paths, and past 2^31 in a long run (or at a guest's wrmsr): doubles from
    // the start, so that never changes the Cpu's shape.
    storeAsDoubles(this, ["retiredBase", "blockInsnsBase", "tscOffset"]);
  }

  /** 32-bit protected mode, CPL 0, flat 4 GiB code and data segments, paging off. */
  resetFlat32(): void {
    this.cr0 = 0x60000011;
    this.setFlags(EFLAGS_FIXED);
    for (let s = 0; s < 6; s++) {
      this.loadSegmentCache(s, s === CS ? 0x08 : 0x10, 0, 0xffffffff, s === CS ? 0xc09b : 0xc093);
    }
    this.loadSegmentCache(6, 0, 0, 0xffff, 0x82);
    this.loadSegmentCache(7, 0, 0, 0xffff, 0x8b);
    this.setCpl(0);
    this.flushTlb();
    this.fpu.reset();
  }

  // ------------------------------------------------------------------ segments

  /**
   * Sets a descriptor cache directly (no checks): for the host, and for segments.ts once
   * it has checked a descriptor. attr = access byte | flags nibble << 12.
   */
  /**
   * Whether segment seg's cache already holds this usable descriptor. Reloading what is already
   * there (every iret, bounce and vcpu switch reloads CS, SS and the data segments, nearly
   * always with the same descriptors) changes nothing: a usable descriptor (attr not 0) has
   * been through the full path once, so its checks are synced.
   */
  segCacheHolds(seg: number, selector: number, base: number, limit: number, attr: number): boolean {
    return (
      attr !== 0 &&
      this.segAttr[seg] === attr &&
      this.segSel[seg] === (selector & 0xffff) &&
      this.segBase[seg] === (base | 0) &&
      this.segLimit[seg] === (limit | 0)
    );
  }

  loadSegmentCache(seg: number, selector: number, base: number, limit: number, attr: number): void {
    if (this.segCacheHolds(seg, selector, base, limit, attr)) return;
    if (
      (attr & 0x90) === 0x90 &&
      ((this.segAttr[seg] ^ attr) & ~0x61) === 0 &&
      this.segBase[seg] === (base | 0) &&
      this.segLimit[seg] === (limit | 0)
    ) {
      // A present code or data descriptor that differs from the loaded one in its selector,
      // DPL or accessed bit only (a ring change's CS and SS against the other ring's): the
      // valid offsets below depend on none of them, so they and the check words stand.
      this.segStamp = ++segStamps;
      this.segSel[seg] = selector & 0xffff;
      this.segAttr[seg] = attr;
      this.segChk[(seg << 5) + 1] = this.segSel[seg];
      this.segChk[(seg << 5) + SEG_ATTR] = attr;
      if (seg === CS) this.dropFetch();
      return;
    }
    const lim = limit >>> 0;
    const present = (attr & 0x80) !== 0;
    const system = (attr & 0x10) === 0;
    const code = (attr & 0x08) !== 0;
    // The valid offsets: null or unusable, every access faults; expand-down data above the
    // limit; execute-only code not readable through another register.
    let lo = 1;
    let hi = -1;
    let whi = -1;
    if (present && !(system && seg < 6)) {
      if (!code && (attr & 0x04) !== 0) {
        lo = lim + 1;
        hi = attr & 0x4000 ? 0xffffffff : 0xffff;
      } else {
        lo = 0;
        hi = lim;
      }
      if (code && (attr & 0x02) === 0 && seg !== CS) hi = -1;
      if (!code && (attr & 0x02) !== 0) whi = hi;
    }
    const sameRanges =
      this.segBase[seg] === (base | 0) &&
      this.segLo[seg] === lo &&
      this.segHi[seg] === hi &&
      this.segWHi[seg] === whi;
    // A null descriptor (attr 0) loaded again as it is (an idle switch's LDTR) writes back the
    // same words and checks: the stamp stands, so CpuContext may skip such a load. A CS load
    // drops the fetch block: never skipped.
    if (
      !sameRanges ||
      seg === CS ||
      this.segSel[seg] !== (selector & 0xffff) ||
      this.segLimit[seg] !== (limit | 0) ||
      this.segAttr[seg] !== attr
    )
      this.segStamp = ++segStamps;
    this.segSel[seg] = selector & 0xffff;
    this.segBase[seg] = base | 0;
    this.segLimit[seg] = limit | 0;
    this.segAttr[seg] = attr;
    if (sameRanges) {
      // Another descriptor with the same base and offsets (a trap's CS and SS against the
      // interrupted ring's, DPL and selector apart): of syncSegChk's words only the selector,
      // limit and attributes change (~800 host instructions a load otherwise).
      const c = this.segChk;
      const k = seg << 5;
      c[k + 1] = this.segSel[seg];
      c[k + SEG_LIMIT] = this.segLimit[seg];
      c[k + SEG_ATTR] = attr;
    } else {
      this.segLo[seg] = lo;
      this.segHi[seg] = hi;
      this.segWHi[seg] = whi;
      this.syncSegChk(seg);
    }
    if (seg === CS) this.dropFetch();
  }

  private syncSegChk(seg: number): void {
    const c = this.segChk;
    const k = seg << 5;
    c[k] = this.segBase[seg];
    // The selector, for a wasm block's push of a segment register (wasm/gen.ts stubForm),
    // and the limit and attributes, for its segment loads (gen.ts segFast).
    c[k + 1] = this.segSel[seg];
    c[k + SEG_LIMIT] = this.segLimit[seg];
    c[k + SEG_ATTR] = this.segAttr[seg];
    const lo = this.segLo[seg];
    for (let n = 1; n <= 4; n <<= 1) {
      // Offsets o with lo <= o and o + n - 1 <= hi (exact: lo, hi are doubles up to 2^32).
      const rdHi = this.segHi[seg] - (n - 1);
      const wrHi = this.segWHi[seg] - (n - 1);
      const rdEmpty = rdHi < lo || rdHi < 0;
      const wrEmpty = wrHi < lo || wrHi < 0;
      c[k + 2 * n] = rdEmpty ? 0x7fffffff : lo ^ -0x80000000;
      c[k + 2 * n + 1] = rdEmpty ? -0x80000000 : rdHi ^ -0x80000000;
      c[k + 16 + 2 * n] = wrEmpty ? 0x7fffffff : lo ^ -0x80000000;
      c[k + 17 + 2 * n] = wrEmpty ? -0x80000000 : wrHi ^ -0x80000000;
      // The same bounds unbiased, for the wasm blocks' unsigned compares: empty is 1 .. 0.
      const r = k + SEG_RDU + (n >> 1) * 2;
      const w = k + SEG_WRU + (n >> 1) * 2;
      c[r] = rdEmpty ? 1 : lo | 0;
      c[r + 1] = rdEmpty ? 0 : rdHi | 0;
      c[w] = wrEmpty ? 1 : lo | 0;
      c[w + 1] = wrEmpty ? 0 : wrHi | 0;
    }
    // Flat (base 0, every offset readable; writable too) and zero-based (base 0, offsets from 0
    // up to a bound of at least 3, read; written): wasm blocks' checks (arena.ts IO_FLAT).
    const zero = this.segBase[seg] === 0 && lo === 0;
    const rd = zero && this.segHi[seg] === 0xffffffff;
    const wr = rd && this.segWHi[seg] === 0xffffffff;
    const zr = zero && this.segHi[seg] >= 3;
    const zw = zero && this.segWHi[seg] >= 3;
    const io = this.state.io;
    io[IO_FLAT] =
      (io[IO_FLAT] & ~(0x1010101 << seg)) |
      ((rd ? 1 : 0) << seg) |
      ((wr ? 0x100 : 0) << seg) |
      ((zr ? 0x10000 : 0) << seg) |
      ((zw ? 0x1000000 : 0) << seg);
  }

  /** Marks a segment register unusable (a null selector loaded into DS/ES/FS/GS). */
  loadNullSegment(seg: number, selector: number): void {
    this.loadSegmentCache(seg, selector, 0, 0, 0);
  }

  setCpl(cpl: number): void {
    this.cpl = cpl;
    this.state.io[IO_CPL] = cpl;
    this.rdMask = cpl === 3 ? TLB_USER_READ : TLB_SUP_READ;
    this.wrMask = cpl === 3 ? TLB_USER_WRITE : TLB_SUP_WRITE;
    this.dropFetch();
  }

  /** Linear address of seg:off for a read of `size` bytes, checking the segment. */
  segRead(seg: number, off: number, size: number): number {
    const c = this.segChk;
    const k = seg << 5;
    const x = off ^ -0x80000000;
    if (x < c[k + 2 * size] || x > c[k + 2 * size + 1]) this.segFault(seg);
    return (c[k] + off) | 0;
  }

  /** Linear address of seg:off for a write of `size` bytes, checking the segment. */
  segWrite(seg: number, off: number, size: number): number {
    const c = this.segChk;
    const k = seg << 5;
    const x = off ^ -0x80000000;
    if (x < c[k + 16 + 2 * size] || x > c[k + 17 + 2 * size]) this.segFault(seg);
    return (c[k] + off) | 0;
  }

  private segFault(seg: number): never {
    return this.fault(seg === SS ? SS_VEC : GP, 0);
  }

  // ------------------------------------------------------------------ faults

  /** Raises a fault: the current instruction is rolled back and the run loop exits or delivers. */
  fault(vector: number, errorCode: number): never {
    throw this.noteFault(vector, errorCode, false, false);
  }

  /**
   * Records the fault (or trap) in fVector..fSoft and returns the object to throw. It returns,
   * so V8 optimizes it; a function that only throws never gets type feedback (see
   * pageFaultHeld).
   */
  private noteFault(vector: number, errorCode: number, trap: boolean, soft: boolean): typeof CPU_FAULT {
    this.fVector = vector;
    this.fError = errorCode;
    this.fTrap = trap;
    this.fSoft = soft;
    return CPU_FAULT;
  }

  /**
   * A fault the run loop's handler raises before it changed any state, recorded instead of
   * thrown: a throw costs V8 about 0.6 us (a stack walk and a message), more than the rest of
   * a privileged-instruction exit. The handler returns at once; run() rolls the instruction
   * back and exits or delivers exactly as for a thrown fault. Only for handlers that compiled
   * blocks never call (blocks run HOT_FNS only, and would go on after the call).
   */
  raise(vector: number, errorCode: number): void {
    this.noteFault(vector, errorCode, false, false);
    this.fPending = true;
    // The loop counts the instruction after its handler returns: it did not retire.
    this.retired--;
    this.fRunEnd = this.runEnd;
    this.runEnd = 0;
  }

  /**
   * A compiled block's catch, after it set the faulting instruction's state: the CPU's fault
   * becomes pending as raise()'s does and the block returns to the loop, instead of throwing
   * it a second time (each throw costs ~0.6 us); anything else is thrown on.
   */
  held(x: unknown): void {
    if (x !== CPU_FAULT) throw x;
    if (this.fVector === PF_VEC && this.faultInPlace && this.faultHook !== null && this.tookInPlace()) return;
    this.fPending = true;
    this.fRunEnd = this.runEnd;
    this.runEnd = 0;
  }

  /**
   * held()'s #PF offered to the faultHook at once, at the fault site, as faulted() would offer
   * it on the run loop's next turn (nothing runs between the two: the loop and run() only
   * unwind to it): rolled back, the exit fields, the hook. Taken (true), the block's caller
   * goes on at the handler (a JS region, the run loop), to runStop, or ends the run when the
   * hook asked (runEnd 0) or runStop is reached, as faulted()'s return does; declined, it is
   * left pending, marked asked (faulted() does not ask again). Not under the debug loop, which
   * takes every fault through run().
   */
  private tookInPlace(): boolean {
    if (this.deliverThroughIdt || this.fTrap || this.fSoft || this.debugArmed()) return false;
    this.eip = this.instrStart;
    this.regs[ESP] = this.savedEsp;
    this.exitReason = Exit.Exception;
    this.exitVector = PF_VEC;
    this.exitErrorCode = this.fError;
    this.exitCr2 = this.cr2;
    this.exitSoft = false;
    if (!(this.faultHook as () => boolean)()) {
      this.fAsked = true;
      return false;
    }
    this.exitReason = Exit.Budget;
    if (this.runEnd !== 0) this.runEnd = this.runStop;
    this.faultsInPlace++;
    return true;
  }

  /** The pending fault's faultHook was asked already (tookInPlace) and declined it. */
  private fAsked = false;
  /** held() offers a #PF to the faultHook at once (tests turn it off to compare with run()'s turn). */
  faultInPlace = true;
  /** #PFs the faultHook took at the fault site (tookInPlace). */
  faultsInPlace = 0;

  /** Raises a trap or software interrupt: eip stays after the instruction. */
  trap(vector: number, errorCode: number, soft: boolean): never {
    throw this.noteFault(vector, errorCode, true, soft);
  }

  /**
   * int n / int3 / into (eip already after the instruction). In host mode this is an exit
   * recorded without unwinding (a hypercall-heavy guest does thousands a second): the run
   * loop retires the instruction and stops, exactly as the thrown trap would have. With
   * IDT delivery it is raised as a trap (delivery may fault, with the double-fault rules).
   */
  softInt(vector: number): void {
    if (this.deliverThroughIdt) this.trap(vector, -1, true);
    // A gate the host delivers in the run (a PV guest's fast trap: real hardware goes through
    // it without the hypervisor); false leaves the exit to it, with nothing changed.
    if (this.softIntHook?.(vector)) return;
    this.exitReason = Exit.Exception;
    this.exitVector = vector;
    this.exitErrorCode = -1;
    this.exitCr2 = this.cr2;
    this.exitSoft = true;
    this.runEnd = 0;
  }

  /**
   * Records #PF (CR2 = lin) and returns the object to throw: the page walk throws it itself.
   * A function that only ever throws never returns, so V8 never gives it type feedback or
   * optimizes it; the throw then starts in an interpreted frame and the unwind costs ~3x
   * more. This one returns, so it is optimized and inlined into translate().
   */
  private pageFaultHeld(lin: number, code: number): typeof CPU_FAULT {
    this.cr2 = lin;
    return this.noteFault(PF_VEC, code, false, false);
  }

  // ------------------------------------------------------------------ paging

  flushTlb(): void {
    if (this.tlbCount >= TLB_LIST_MAX) {
      this.tlb.fill(0);
    } else {
      for (let i = 0; i < this.tlbCount; i++) this.tlb[this.tlbList[i]] = 0;
    }
    this.tlbCount = 0;
    this.tlbLarge = false;
    this.dropFetch();
  }

  invlpg(lin: number): void {
    if (this.tlbLarge) {
      // The page may be a 4 MiB one, held as 1024 entries: drop them all.
      const first = (lin >>> 12) & ~0x3ff;
      this.tlb.fill(0, first, first + 0x400);
    } else {
      this.tlb[lin >>> 12] = 0;
    }
    this.dropFetch();
  }

  /**
   * Drops every translation of the 4 MiB region of L2 slot l2Idx (its 1,024 pages): what an
   * unhooked page-table window needs (ptwr.ts), where a whole flush drops the rest too.
   */
  invalidateRegion(l2Idx: number): void {
    const first = (l2Idx & 0x3ff) << 10;
    this.tlb.fill(0, first, first + 0x400);
    this.dropFetch();
  }

  setCr0(v: number): void {
    const changed = (this.cr0 ^ v) & (CR0_PG | CR0_WP | 1);
    this.cr0 = v | 0x10;
    if (changed) this.flushTlb();
  }

  setCr3(v: number): void {
    this.cr3 = v;
    this.flushTlb();
  }

  setCr4(v: number): void {
    this.cr4 = v;
    this.flushTlb();
  }

  /**
   * The RW, US and D a walk's TLB entry takes from peekWalk's w: a write's sets D; a read's
   * is w as it is (D only for a dirty entry of a frame not watched: its first write walks).
   */
  private walkPerm(w: number, write: boolean): number {
    return write ? (w & (PTE_RW | PTE_US)) | PTE_D : w;
  }

  /** The accessed (and for a write dirty) bits a walk of lin sets, as peekWalk found them missing. */
  private walkMark(lin: number, write: boolean, large: boolean): void {
    const pdeAddr = (this.cr3 & ~0xfff) | ((lin >>> 20) & 0xffc);
    const pde = this.physRead32(pdeAddr);
    const set = PTE_A | (write ? PTE_D : 0);
    if (large) {
      if ((pde & set) !== set) this.physWrite32(pdeAddr, pde | set);
      return;
    }
    const pteAddr = (pde & ~0xfff) | ((lin >>> 10) & 0xffc);
    const pte = this.physRead32(pteAddr);
    if ((pde & PTE_A) === 0) this.physWrite32(pdeAddr, pde | PTE_A);
    if ((pte & set) !== set) this.physWrite32(pteAddr, pte | set);
  }

  /**
   * Walks the page tables for lin and fills the TLB; returns the physical address.
   * user: the access is made with user privilege (CPL 3, not an implicit system access).
   * hold (reach() only): a #PF is recorded (CR2, error code, pfHeld) and 0 returned instead
   * of thrown.
   */
  translate(lin: number, write: boolean, user: boolean, hold = false): number {
    if ((this.cr0 & CR0_PG) === 0) {
      if (lin >>> 0 < this.memSize) this.tlbInsert(lin, lin & ~0xfff, 15);
      return lin;
    }
    const m = this.mem32;
    const size = this.memSize;
    const w = peekWalk(
      lin,
      walkPde(lin, this.cr3, m, size),
      m,
      size,
      (this.cr4 & CR4_PSE) !== 0,
      this.writeWatch,
    );
    if ((w & PTE_PS) !== 0) this.tlbLarge = true;
    /** The #PF's error code (its P bit: W and U are added at the fault), or -1. */
    let fault = -1;
    if ((w & PTE_P) === 0) fault = 0;
    else if (this.denied(w, write, user)) fault = PFEC_P;
    if (fault >= 0) {
      fault |= (write ? PFEC_W : 0) | (user ? PFEC_U : 0);
      if (!hold) throw this.pageFaultHeld(lin, fault);
      this.pageFaultHeld(lin, fault);
      this.pfHeld = true;
      return 0;
    }
    const set = PTE_A | (write ? WALK_DIRTY : 0);
    if ((w & set) !== set) this.walkMark(lin, write, (w & PTE_PS) !== 0);
    const frame = w & ~0xfff;
    // A watched frame gets no write permission in the TLB, so its first write walks here.
    if (write && (w & WALK_WATCHED) !== 0) this.watchedWrite(frame >>> 12);
    if ((w & WALK_OUT) === 0) {
      const hd = this.hostDebug;
      if (hd?.watchPages.has(lin >>> 12)) hd.access(lin, write);
      else this.tlbInsert(lin, frame, tlbBits(this.walkPerm(w, write), this.cr0));
    }
    return frame | (lin & 0xfff);
  }

  /**
   * Up to max linear pages the TLB holds, into out from index at; returns how many. A vcpu's
   * switch-out keeps them (CpuContext.save) as the pages its next switch-in enters again
   * (tlbRefill): an idle tick walks the same eight after the switch's flush. None when the list
   * overflowed (a busy address space: the refill would cost more than its walks save).
   */
  tlbPages(out: Int32Array, at: number, max: number): number {
    const n = this.tlbCount;
    if (n >= TLB_LIST_MAX) return 0;
    const tlb = this.tlb;
    const list = this.tlbList;
    let k = 0;
    for (let i = 0; i < n && k < max; i++) {
      const vp = list[i];
      if (tlb[vp] !== 0) out[at + k++] = vp;
    }
    return k;
  }

  /**
   * Enters for the n linear pages at out[at..] the translation a walk would enter now with
   * nothing to write: each read from the page tables as they are at this call by the walk's
   * own peekWalk, never from anything saved, so no writer of a table, frame or type needs to
   * know the pages were kept. A page gets an entry only where a read's walk would enter one
   * and write nothing (both levels present with their accessed bits set, a 4 KiB page, a frame
   * in memory): the entry that walk makes (walkPerm: write bits only with the dirty bit set,
   * none for a watched frame), so the page's first access is the same with no side effect
   * skipped. Nothing with paging off or a host debugger attached (its watched pages must walk).
   */
  tlbRefill(pages: Int32Array, at: number, n: number): void {
    if ((this.cr0 & CR0_PG) === 0 || this.hostDebug !== null) return;
    const tlb = this.tlb;
    const cr0 = this.cr0;
    const cr3 = this.cr3;
    const m = this.mem32;
    const size = this.memSize;
    const pse = (this.cr4 & CR4_PSE) !== 0;
    const watch = this.writeWatch;
    const list = this.tlbList;
    let count = this.tlbCount;
    // The PDE read once for a run of pages in one 4 MiB region.
    let slot = -1;
    let pde = 0;
    for (let i = at; i < at + n; i++) {
      const vp = pages[i];
      if (tlb[vp] !== 0) continue;
      if (vp >>> 10 !== slot) {
        slot = vp >>> 10;
        pde = pdeTable(walkPde(vp << 12, cr3, m, size), pse);
      }
      // A 4 MiB page or none: left to the walk.
      if (pde === 0) continue;
      const w = peekPte(vp << 12, pde, m, size, watch);
      // A read's walk would fault, write an accessed bit or enter nothing: left to it.
      if ((w & (PTE_P | PTE_A | WALK_OUT)) !== (PTE_P | PTE_A)) continue;
      // tlbInsert's bookkeeping, the count kept in a local and stored once (a switch-in's 11
      // pages: 1,924 -> 1,684 host instructions against tlbInsert called for each).
      if (count < TLB_LIST_MAX) list[count++] = vp;
      tlb[vp] = (w & ~0xfff) | tlbBits(w, cr0);
    }
    this.tlbCount = count;
  }

  /** A #PF recorded by translate(hold) since reach() cleared it. */
  private pfHeld = false;

  /**
   * For the wasm back end's memory imports, before the accessor: the translation of lin at
   * the current privilege, as physFor makes it (the same walk, the same side effects), but a
   * #PF is recorded and false returned instead of thrown, so the block returns to its wrapper
   * rather than a throw unwinding through wasm (a quarter of a #PF bounce's time). The
   * accessor then finds the TLB entry (or walks again, to the same result).
   */
  reach(lin: number, write: boolean): boolean {
    if ((this.tlb[lin >>> 12] & (write ? this.wrMask : this.rdMask)) !== 0) return true;
    this.pfHeld = false;
    this.translate(lin, write, this.cpl === 3, true);
    return !this.pfHeld;
  }

  /** A write reached watched frame f (through the TLB fill or a host copy): report it once. */
  watchedWrite(f: number): void {
    const w = this.writeWatch;
    if (w === null || w[f] === 0) return;
    w[f] = 0;
    this.onWatchedWrite?.(f);
  }

  /** The access is not allowed by perm (RW and US of both levels): a #PF with P set. */
  private denied(perm: number, write: boolean, user: boolean): boolean {
    if (user) return (perm & PTE_US) === 0 || (write && (perm & PTE_RW) === 0);
    return write && (perm & PTE_RW) === 0 && (this.cr0 & CR0_WP) !== 0;
  }

  private tlbInsert(lin: number, frame: number, bits: number): void {
    const vp = lin >>> 12;
    if (this.tlb[vp] === 0 && this.tlbCount < TLB_LIST_MAX) this.tlbList[this.tlbCount++] = vp;
    else if (this.tlb[vp] === 0) this.tlbCount = TLB_LIST_MAX;
    this.tlb[vp] = frame | bits;
  }

  /** Physical address for an access at the current privilege; walks on a TLB miss. */
  private physFor(lin: number, write: boolean): number {
    const e = this.tlb[lin >>> 12];
    if ((e & (write ? this.wrMask : this.rdMask)) !== 0) return (e & ~0xfff) | (lin & 0xfff);
    return this.translate(lin, write, this.cpl === 3);
  }

  // ------------------------------------------------------------------ physical memory
  // p may be an int32 or a uint32 (bit 31 set: above 2 GiB); both name the same byte.

  physRead8(p: number): number {
    return p >>> 0 < this.memSize ? this.mem8[p >>> 0] : 0xff;
  }

  physRead16(p: number): number {
    if (p >>> 0 > this.memSize - 2) return this.physRead8(p) | (this.physRead8(p + 1) << 8);
    return p & 1 ? this.memView.getUint16(p >>> 0, true) : this.mem16[p >>> 1];
  }

  physRead32(p: number): number {
    if (p >>> 0 > this.memSize - 4) return this.physRead16(p) | (this.physRead16(p + 2) << 16);
    return p & 3 ? this.memView.getInt32(p >>> 0, true) : this.mem32[p >>> 2];
  }

  physWrite8(p: number, v: number): void {
    if (p >>> 0 >= this.memSize) return;
    if (this.codePage[p >>> 12] !== 0) this.codeWritten(p >>> 12);
    this.mem8[p >>> 0] = v;
  }

  physWrite16(p: number, v: number): void {
    if (p >>> 0 > this.memSize - 2 || (p & 0xfff) === 0xfff) {
      this.physWrite8(p, v);
      this.physWrite8(p + 1, v >> 8);
      return;
    }
    if (this.codePage[p >>> 12] !== 0) this.codeWritten(p >>> 12);
    if (p & 1) this.memView.setUint16(p >>> 0, v, true);
    else this.mem16[p >>> 1] = v;
  }

  physWrite32(p: number, v: number): void {
    if (p >>> 0 > this.memSize - 4 || (p & 0xfff) > 0xffc) {
      this.physWrite16(p, v);
      this.physWrite16(p + 2, v >> 16);
      return;
    }
    if (this.codePage[p >>> 12] !== 0) this.codeWritten(p >>> 12);
    if (p & 3) this.memView.setInt32(p >>> 0, v, true);
    else this.mem32[p >>> 2] = v;
  }

  /**
   * Forgets the fetch window: the next instruction is looked up from scratch (after a change
   * of CS, CPL, paging or code).
   */
  dropFetch(): void {
    this.fetchBlock = this.dc.emptyBlock;
    this.fetchDrops++;
  }

  /** Drops decoded instructions of a frame the host or the guest wrote. */
  codeWritten(frame: number): void {
    this.codeHit = 1;
    this.codeWrites++;
    this.dc.invalidateFrame(frame);
    this.codePage[frame] = 0;
    this.dropFetch();
  }

  /** For the host: call after writing guest memory directly (not through phys/lin writes). */
  invalidateCode(phys: number, length: number): void {
    const last = (phys + Math.max(length, 1) - 1) >>> 12;
    for (let f = phys >>> 12; f <= last && f < this.codePage.length; f++) {
      if (this.codePage[f] !== 0) this.codeWritten(f);
    }
  }

  // ------------------------------------------------------------------ linear memory

  linRead8(lin: number): number {
    return this.physRead8(this.physFor(lin, false));
  }

  linRead16(lin: number): number {
    if ((lin & 0xfff) === 0xfff) return this.linRead8(lin) | (this.linRead8(lin + 1) << 8);
    return this.physRead16(this.physFor(lin, false));
  }

  linRead32(lin: number): number {
    if ((lin & 0xfff) > 0xffc) {
      // Translate both pages (in address order) before reading.
      this.physFor(lin, false);
      this.physFor((lin + 4) & ~0xfff, false);
      let v = 0;
      for (let i = 3; i >= 0; i--) v = (v << 8) | this.linRead8((lin + i) | 0);
      return v;
    }
    return this.physRead32(this.physFor(lin, false));
  }

  linWrite8(lin: number, v: number): void {
    this.physWrite8(this.physFor(lin, true), v);
  }

  linWrite16(lin: number, v: number): void {
    if ((lin & 0xfff) === 0xfff) {
      const p0 = this.physFor(lin, true);
      const p1 = this.physFor((lin + 1) | 0, true);
      this.physWrite8(p0, v);
      this.physWrite8(p1, v >> 8);
      return;
    }
    this.physWrite16(this.physFor(lin, true), v);
  }

  linWrite32(lin: number, v: number): void {
    if ((lin & 0xfff) > 0xffc) {
      this.physFor(lin, true);
      this.physFor((lin + 4) & ~0xfff, true);
      for (let i = 0; i < 4; i++) this.linWrite8((lin + i) | 0, v >> (i * 8));
      return;
    }
    this.physWrite32(this.physFor(lin, true), v);
  }

  /** Implicit supervisor-privilege accesses (descriptor tables, TSS, IDT). */
  sysRead32(lin: number): number {
    const e = this.tlb[lin >>> 12];
    if ((lin & 0xfff) <= 0xffc && (e & TLB_SUP_READ) !== 0)
      return this.physRead32((e & ~0xfff) | (lin & 0xfff));
    if ((lin & 0xfff) > 0xffc) return this.sysRead16(lin) | (this.sysRead16((lin + 2) | 0) << 16);
    return this.physRead32(this.translate(lin, false, false));
  }

  sysRead16(lin: number): number {
    if ((lin & 0xfff) === 0xfff) {
      return (
        this.physRead8(this.translate(lin, false, false)) |
        (this.physRead8(this.translate(lin + 1, false, false)) << 8)
      );
    }
    return this.physRead16(this.translate(lin, false, false));
  }

  sysWrite32(lin: number, v: number): void {
    if ((lin & 0xfff) > 0xffc) {
      for (let i = 0; i < 4; i++) this.physWrite8(this.translate((lin + i) | 0, true, false), v >> (i * 8));
      return;
    }
    this.physWrite32(this.translate(lin, true, false), v);
  }

  // ------------------------------------------------------------------ segmented memory (hot)

  rd8(seg: number, off: number): number {
    const lin = this.segRead(seg, off, 1);
    const e = this.tlb[lin >>> 12];
    if ((e & this.rdMask) !== 0) return this.mem8[((e & ~0xfff) | (lin & 0xfff)) >>> 0];
    return this.linRead8(lin);
  }

  rd16(seg: number, off: number): number {
    const lin = this.segRead(seg, off, 2);
    const e = this.tlb[lin >>> 12];
    if ((e & this.rdMask) !== 0 && (lin & 0xfff) !== 0xfff) {
      const p = ((e & ~0xfff) | (lin & 0xfff)) >>> 0;
      return p & 1 ? this.memView.getUint16(p, true) : this.mem16[p >>> 1];
    }
    return this.linRead16(lin);
  }

  rd32(seg: number, off: number): number {
    const lin = this.segRead(seg, off, 4);
    const e = this.tlb[lin >>> 12];
    if ((e & this.rdMask) !== 0) {
      // Frames are page-aligned: an aligned lin is an aligned physical address in one page.
      if ((lin & 3) === 0) return this.mem32[((e & ~0xfff) | (lin & 0xfff)) >>> 2];
      if ((lin & 0xfff) <= 0xffc) return this.memView.getInt32(((e & ~0xfff) | (lin & 0xfff)) >>> 0, true);
    }
    return this.linRead32(lin);
  }

  wr8(seg: number, off: number, v: number): void {
    const lin = this.segWrite(seg, off, 1);
    const e = this.tlb[lin >>> 12];
    if ((e & this.wrMask) !== 0) {
      const p = ((e & ~0xfff) | (lin & 0xfff)) >>> 0;
      if (this.codePage[p >>> 12] !== 0) this.codeWritten(p >>> 12);
      this.mem8[p] = v;
      return;
    }
    this.linWrite8(lin, v);
  }

  wr16(seg: number, off: number, v: number): void {
    const lin = this.segWrite(seg, off, 2);
    const e = this.tlb[lin >>> 12];
    if ((e & this.wrMask) !== 0 && (lin & 0xfff) !== 0xfff) {
      const p = ((e & ~0xfff) | (lin & 0xfff)) >>> 0;
      if (this.codePage[p >>> 12] !== 0) this.codeWritten(p >>> 12);
      if (p & 1) this.memView.setUint16(p, v, true);
      else this.mem16[p >>> 1] = v;
      return;
    }
    this.linWrite16(lin, v);
  }

  wr32(seg: number, off: number, v: number): void {
    const lin = this.segWrite(seg, off, 4);
    const e = this.tlb[lin >>> 12];
    if ((e & this.wrMask) !== 0 && (lin & 0xfff) <= 0xffc) {
      const p = ((e & ~0xfff) | (lin & 0xfff)) >>> 0;
      if (this.codePage[p >>> 12] !== 0) this.codeWritten(p >>> 12);
      if (p & 3) this.memView.setInt32(p, v, true);
      else this.mem32[p >>> 2] = v;
      return;
    }
    this.linWrite32(lin, v);
  }

  /**
   * Read-modify-write: the read is checked as a write (so a fault reports W=1, as hardware
   * does) and the write goes to the same place.
   */
  rmwLin = 0;
  rmwRd8(seg: number, off: number): number {
    const lin = this.segWrite(seg, off, 1);
    this.rmwLin = lin;
    return this.physRead8(this.physFor(lin, true));
  }
  rmwRd16(seg: number, off: number): number {
    const lin = this.segWrite(seg, off, 2);
    this.rmwLin = lin;
    this.physFor(lin, true);
    if ((lin & 0xfff) === 0xfff) this.physFor((lin + 1) | 0, true);
    return this.linRead16(lin);
  }
  rmwRd32(seg: number, off: number): number {
    const lin = this.segWrite(seg, off, 4);
    this.rmwLin = lin;
    const e = this.tlb[lin >>> 12];
    if ((e & this.wrMask) !== 0 && (lin & 0xfff) <= 0xffc) {
      const p = ((e & ~0xfff) | (lin & 0xfff)) >>> 0;
      return p & 3 ? this.memView.getInt32(p, true) : this.mem32[p >>> 2];
    }
    this.physFor(lin, true);
    if ((lin & 0xfff) > 0xffc) this.physFor((lin + 4) & ~0xfff, true);
    return this.linRead32(lin);
  }
  rmwWr8(v: number): void {
    this.linWrite8(this.rmwLin, v);
  }
  rmwWr16(v: number): void {
    this.linWrite16(this.rmwLin, v);
  }
  rmwWr32(v: number): void {
    const lin = this.rmwLin;
    const e = this.tlb[lin >>> 12];
    if ((e & this.wrMask) !== 0 && (lin & 0xfff) <= 0xffc) {
      const p = ((e & ~0xfff) | (lin & 0xfff)) >>> 0;
      if (this.codePage[p >>> 12] !== 0) this.codeWritten(p >>> 12);
      if (p & 3) this.memView.setInt32(p, v, true);
      else this.mem32[p >>> 2] = v;
      return;
    }
    this.linWrite32(lin, v);
  }

  // ------------------------------------------------------------------ operands of a decoded slot

  /** Effective address (offset in dc.seg[s]) of slot s's memory operand. */
  ea(s: number): number {
    return this.eaOf(this.dc.eam[s], s);
  }

  /** ea() given slot s's eam word. */
  private eaOf(m: number, s: number): number {
    switch (m & 3) {
      case EA_BASE:
        return (this.dc.disp[s] + this.regs[(m >> 2) & 7]) | 0;
      case EA_SIB:
        return (this.dc.disp[s] + this.regs[(m >> 2) & 7] + (this.regs[(m >> 5) & 7] << ((m >> 8) & 3))) | 0;
      case EA_DISP:
        return this.dc.disp[s];
      default:
        return this.eaSlow(s);
    }
  }

  /** ea() for the 16-bit forms and an index without a base. */
  private eaSlow(s: number): number {
    const dc = this.dc;
    let a = dc.disp[s];
    const b = dc.base[s];
    const i = dc.index[s];
    if ((dc.pfx[s] & P_A16) === 0) {
      if (b >= 0) a += this.regs[b];
      if (i >= 0) a += this.regs[i] << dc.scale[s];
      return a | 0;
    }
    if (b >= 0) a += this.regs16[b << 1];
    if (i >= 0) a += this.regs16[i << 1];
    return a & 0xffff;
  }

  /** The memory operand of slot s (ModRM mod != 3): segment and offset from one eam load. */
  rdMem8(s: number): number {
    const m = this.dc.eam[s];
    return this.rd8((m >> 10) & 7, this.eaOf(m, s));
  }
  rdMem16(s: number): number {
    const m = this.dc.eam[s];
    return this.rd16((m >> 10) & 7, this.eaOf(m, s));
  }
  rdMem32(s: number): number {
    const m = this.dc.eam[s];
    return this.rd32((m >> 10) & 7, this.eaOf(m, s));
  }
  wrMem8(s: number, v: number): void {
    const m = this.dc.eam[s];
    this.wr8((m >> 10) & 7, this.eaOf(m, s), v);
  }
  wrMem16(s: number, v: number): void {
    const m = this.dc.eam[s];
    this.wr16((m >> 10) & 7, this.eaOf(m, s), v);
  }
  wrMem32(s: number, v: number): void {
    const m = this.dc.eam[s];
    this.wr32((m >> 10) & 7, this.eaOf(m, s), v);
  }

  /** 8-bit register r (AL CL DL BL AH CH DH BH). */
  reg8(r: number): number {
    return this.regs8[reg8Index(r)];
  }
  setReg8(r: number, v: number): void {
    this.regs8[reg8Index(r)] = v;
  }
  reg16(r: number): number {
    return this.regs16[r << 1];
  }
  setReg16(r: number, v: number): void {
    this.regs16[r << 1] = v;
  }

  /** Reads the r/m operand of slot s (register when mod = 3). 8/16-bit values are unsigned. */
  rm8(s: number): number {
    const m = this.dc.modrm[s];
    return m >= 0xc0 ? this.reg8(m & 7) : this.rdMem8(s);
  }
  rm16(s: number): number {
    const m = this.dc.modrm[s];
    return m >= 0xc0 ? this.regs16[(m & 7) << 1] : this.rdMem16(s);
  }
  rm32(s: number): number {
    const m = this.dc.modrm[s];
    return m >= 0xc0 ? this.regs[m & 7] : this.rdMem32(s);
  }

  /** Writes the r/m operand of slot s. */
  setRm8(s: number, v: number): void {
    const m = this.dc.modrm[s];
    if (m >= 0xc0) this.setReg8(m & 7, v);
    else this.wrMem8(s, v);
  }
  setRm16(s: number, v: number): void {
    const m = this.dc.modrm[s];
    if (m >= 0xc0) this.regs16[(m & 7) << 1] = v;
    else this.wrMem16(s, v);
  }
  setRm32(s: number, v: number): void {
    const m = this.dc.modrm[s];
    if (m >= 0xc0) this.regs[m & 7] = v;
    else this.wrMem32(s, v);
  }

  /**
   * Read-modify-write of the r/m operand: read with write permission checked (as hardware
   * does), then commit with putRm* (which writes the same place without re-translating).
   */
  modRm8(s: number): number {
    const m = this.dc.modrm[s];
    return m >= 0xc0 ? this.reg8(m & 7) : this.rmwRd8((this.dc.eam[s] >> 10) & 7, this.ea(s));
  }
  modRm16(s: number): number {
    const m = this.dc.modrm[s];
    return m >= 0xc0 ? this.regs16[(m & 7) << 1] : this.rmwRd16((this.dc.eam[s] >> 10) & 7, this.ea(s));
  }
  modRm32(s: number): number {
    const m = this.dc.modrm[s];
    return m >= 0xc0 ? this.regs[m & 7] : this.rmwRd32((this.dc.eam[s] >> 10) & 7, this.ea(s));
  }
  putRm8(s: number, v: number): void {
    const m = this.dc.modrm[s];
    if (m >= 0xc0) this.setReg8(m & 7, v);
    else this.rmwWr8(v);
  }
  putRm16(s: number, v: number): void {
    const m = this.dc.modrm[s];
    if (m >= 0xc0) this.regs16[(m & 7) << 1] = v;
    else this.rmwWr16(v);
  }
  putRm32(s: number, v: number): void {
    const m = this.dc.modrm[s];
    if (m >= 0xc0) this.regs[m & 7] = v;
    else this.rmwWr32(v);
  }

  // ------------------------------------------------------------------ stack

  /** True when SS is a 32-bit stack (B bit). */
  stack32(): boolean {
    return (this.segAttr[SS] & 0x4000) !== 0;
  }

  push32(v: number): void {
    if (this.stack32()) {
      const sp = (this.regs[ESP] - 4) | 0;
      this.wr32(SS, sp, v);
      this.regs[ESP] = sp;
    } else {
      const sp = (this.regs[ESP] - 4) & 0xffff;
      this.wr32(SS, sp, v);
      this.regs16[ESP * 2] = sp;
    }
  }

  /**
   * push32(w[0]) .. push32(w[n - 1]) (the hypervisor's bounce frames). When the stack is 32-bit,
   * every slot passes SS's check and all lie in one page the TLB holds writable, the words are
   * stored at once: what the n pushes would do, with one check and one lookup. Otherwise the
   * pushes themselves, which fault where they would.
   */
  pushWords(w: Int32Array, n: number): void {
    if (!this.pushWordsAtOnce(w, n, false)) for (let i = 0; i < n; i++) this.push32(w[i]);
  }

  /**
   * pushWords' single store when it applies (reach: the page may be walked into the TLB first,
   * as the first push32 would walk it, a #PF held rather than thrown); false, with no word
   * stored and ESP as it was, when it does not. A held #PF leaves CR2 set, as the walk does.
   */
  pushWordsAtOnce(w: Int32Array, n: number, reach: boolean): boolean {
    const sp = this.regs[ESP];
    if (this.stack32() && sp >>> 0 >= n * 4) {
      // The offsets sp-4n .. sp-4 do not wrap, so the highest and lowest bound them all
      // (segWrite's 4-byte bounds).
      const lo = (sp - 4 * n) | 0;
      const c = this.segChk;
      const k = SS << 5;
      if ((lo ^ -0x80000000) >= c[k + 16 + 2 * 4] && ((sp - 4) ^ -0x80000000) <= c[k + 17 + 2 * 4]) {
        const lin = (c[k] + lo) | 0;
        const same = ((lin ^ (lin + 4 * n - 1)) & ~0xfff) === 0;
        if (same && reach && (this.tlb[lin >>> 12] & this.wrMask) === 0) this.reach(lin, true);
        const e = this.tlb[lin >>> 12];
        if (same && (e & this.wrMask) !== 0) {
          const p = ((e & ~0xfff) | (lin & 0xfff)) >>> 0;
          if (this.codePage[p >>> 12] !== 0) this.codeWritten(p >>> 12);
          for (let i = 0; i < n; i++) {
            const a = p + 4 * (n - 1 - i);
            if (a & 3) this.memView.setInt32(a, w[i], true);
            else this.mem32[a >>> 2] = w[i];
          }
          this.regs[ESP] = lo;
          return true;
        }
      }
    }
    return false;
  }

  push16(v: number): void {
    if (this.stack32()) {
      const sp = (this.regs[ESP] - 2) | 0;
      this.wr16(SS, sp, v);
      this.regs[ESP] = sp;
    } else {
      const sp = (this.regs[ESP] - 2) & 0xffff;
      this.wr16(SS, sp, v);
      this.regs16[ESP * 2] = sp;
    }
  }

  pop32(): number {
    if (this.stack32()) {
      const sp = this.regs[ESP];
      const v = this.rd32(SS, sp);
      this.regs[ESP] = (sp + 4) | 0;
      return v;
    }
    const sp = this.regs16[ESP * 2];
    const v = this.rd32(SS, sp);
    this.regs16[ESP * 2] = sp + 4;
    return v;
  }

  pop16(): number {
    if (this.stack32()) {
      const sp = this.regs[ESP];
      const v = this.rd16(SS, sp);
      this.regs[ESP] = (sp + 2) | 0;
      return v;
    }
    const sp = this.regs16[ESP * 2];
    const v = this.rd16(SS, sp);
    this.regs16[ESP * 2] = sp + 2;
    return v;
  }

  /** ESP or SP per the stack size: the offset the next push/pop uses. */
  stackPointer(): number {
    return this.stack32() ? this.regs[ESP] : this.regs16[ESP * 2];
  }

  setStackPointer(v: number): void {
    if (this.stack32()) this.regs[ESP] = v;
    else this.regs16[ESP * 2] = v;
  }

  // ------------------------------------------------------------------ flags

  cf(): number {
    switch (this.lzOp) {
      case L_ADD:
        return this.lzRes >>> 0 < this.lzA >>> 0 ? 1 : 0;
      case L_ADC:
        return this.lzRes >>> 0 <= this.lzA >>> 0 ? 1 : 0;
      case L_SUB:
        return this.lzA >>> 0 < this.lzB >>> 0 ? 1 : 0;
      case L_SBB:
        return this.lzA >>> 0 <= this.lzB >>> 0 ? 1 : 0;
      case L_LOGIC:
        return 0;
      default:
        return this.flags & CF;
    }
  }

  zf(): number {
    return this.lzOp === L_NONE ? (this.flags >>> 6) & 1 : this.lzRes === 0 ? 1 : 0;
  }

  sf(): number {
    return this.lzOp === L_NONE ? (this.flags >>> 7) & 1 : (this.lzRes >>> (this.lzSize - 1)) & 1;
  }

  pf(): number {
    return this.lzOp === L_NONE ? (this.flags >>> 2) & 1 : PARITY[this.lzRes & 0xff];
  }

  of(): number {
    const s = this.lzSize - 1;
    switch (this.lzOp) {
      case L_ADD:
      case L_ADC:
      case L_INC:
        return (((this.lzA ^ this.lzRes) & (this.lzB ^ this.lzRes)) >>> s) & 1;
      case L_SUB:
      case L_SBB:
      case L_DEC:
        return (((this.lzA ^ this.lzB) & (this.lzA ^ this.lzRes)) >>> s) & 1;
      case L_LOGIC:
        return 0;
      default:
        return (this.flags >>> 11) & 1;
    }
  }

  af(): number {
    switch (this.lzOp) {
      case L_NONE:
      case L_RES:
        return (this.flags >>> 4) & 1;
      case L_LOGIC:
        return 0;
      default:
        return ((this.lzA ^ this.lzB ^ this.lzRes) >>> 4) & 1;
    }
  }

  /** SF xor OF: signed less-than after a cmp/sub (jl, jge, jle, jg, setl...). */
  lt(): number {
    if (this.lzOp === L_SUB) {
      // res = a - b: SF ^ OF is exactly a < b as signed lzSize-bit numbers.
      const sh = 32 - this.lzSize;
      return this.lzA << sh < this.lzB << sh ? 1 : 0;
    }
    return this.sf() ^ this.of();
  }

  /** The whole EFLAGS register. */
  getFlags(): number {
    if (this.lzOp !== L_NONE) {
      const f =
        (this.flags & ~(CF | PF | AF | ZF | SF | OF)) |
        this.cf() |
        (this.pf() << 2) |
        (this.af() << 4) |
        (this.zf() << 6) |
        (this.sf() << 7) |
        (this.of() << 11);
      this.flags = f;
      this.lzOp = L_NONE;
    }
    return this.flags | EFLAGS_FIXED;
  }

  /** Sets EFLAGS wholesale (no privilege rules: those are the instruction's business). */
  setFlags(v: number): void {
    this.flags = (v & FLAGS_KEPT) | EFLAGS_FIXED;
    this.lzOp = L_NONE;
    if (v & TF) this.armDebug();
  }

  /** Sets CF, keeping the other flags (materializes the lazy ones). */
  setCF(c: number): void {
    this.flags = (this.getFlags() & ~CF) | c;
  }

  /** Records an arithmetic result for lazy flags. res must already be masked to size. */
  lazy(op: number, a: number, b: number, res: number, size: number): void {
    this.lzOp = op;
    this.lzA = a;
    this.lzB = b;
    this.lzRes = res;
    this.lzSize = size;
  }

  /** Sets CF/OF/AF explicitly with ZF/SF/PF from res (shifts, multiplies). */
  lazyRes(res: number, size: number, cfofaf: number): void {
    this.flags = (this.flags & ~(CF | OF | AF)) | cfofaf;
    this.lzOp = L_RES;
    this.lzRes = res;
    this.lzSize = size;
  }

  /** Keeps CF across an inc/dec (which do not touch it). */
  keepCF(): void {
    if (this.lzOp !== L_NONE && this.lzOp !== L_RES && this.lzOp !== L_INC && this.lzOp !== L_DEC) {
      this.flags = (this.flags & ~CF) | this.cf();
    } else if (this.lzOp === L_NONE || this.lzOp === L_RES) {
      // CF already in flags.
    }
    if (this.lzOp === L_RES || this.lzOp === L_NONE) {
      // ZF/SF/PF may be lazy for L_RES; inc/dec replaces them anyway.
    }
  }

  /** Condition code cc (0-15, as in jcc/setcc/cmovcc) holds. */
  cond(cc: number): boolean {
    let r: number;
    switch (cc >> 1) {
      case 0:
        r = this.of();
        break;
      case 1:
        r = this.cf();
        break;
      case 2:
        r = this.zf();
        break;
      case 3:
        r = this.cf() | this.zf();
        break;
      case 4:
        r = this.sf();
        break;
      case 5:
        r = this.pf();
        break;
      case 6:
        r = this.lt();
        break;
      default:
        r = this.lt() | this.zf();
        break;
    }
    return (r ^ (cc & 1)) !== 0;
  }

  // ------------------------------------------------------------------ run loop

  /**
   * Executes until an exit. Returns why; eip and all state are architecturally exact at
   * the exit (faults leave eip at the faulting instruction, traps after it).
   */
  run(budget: number): Exit {
    if (!(budget <= MAX_BUDGET)) throw new RangeError(`a run's budget is at most 2^30, not ${budget}`);
    if (this.retired >= this.rebaseAt || this.blockInsns >= this.rebaseAt) this.rebase();
    this.exitReason = Exit.Budget;
    this.runStop = this.retired + budget;
    this.runEnd = this.runStop;
    for (;;) {
      try {
        if (this.debugArmed()) this.loopDebug(this.runStop);
        else this.loop();
        if (this.fPending) {
          this.fPending = false;
          this.runEnd = this.fRunEnd;
          const r = this.faulted();
          if (r !== -1) return r;
          continue;
        }
        // runEnd is 0 when a handler or the host asked to stop; lowered to the next
        // instruction when debugging was armed inside the fast loop (armDebug).
        if (this.exitReason !== Exit.Budget || this.runEnd === 0 || this.retired >= this.runStop)
          return this.exitReason;
        this.runEnd = this.runStop;
      } catch (e) {
        if (e !== CPU_FAULT) throw e;
        const r = this.faulted();
        if (r !== -1) return r;
      }
    }
  }

  /**
   * Where the current run() ends (retired count): its budget's end, lowered by a faultHook
   * that charged the run for an exit it took inside it.
   */
  runStop = 0;

  /**
   * Moves the epoch to here: the counts so far go into the bases (doubles), the counters
   * start again from 0. A count V8 held as a small integer that passed 2^31 (a few seconds
   * of XenLinux) made the field a double, which retired the Cpu's shape and deoptimized what
   * was optimized against it (11 functions, the run loop's among them; a 20 M-instruction
   * window 31 -> 74 ms); doubles from the start cost the hot paths 2.4-9.5 % (ARCHITECTURE,
   * Scale, twenty-first round). Only at run()'s start, before it sets runStop and runEnd from
   * retired: no run's end, block entry count (wasm r0) or pending fault's fRunEnd is live.
   * The totals (retiredTotal, tscNow, the hypervisor's clock) do not move.
   */
  private rebase(): void {
    this.retiredBase += this.retired;
    this.retired = 0;
    this.blockInsnsBase += this.blockInsns;
    this.blockInsns = 0;
    this.rebases++;
  }

  /**
   * Host mode: asked at a fault once it is rolled back and in exitVector..exitSoft, before the
   * run exits; true when the host delivered it inside the run, which then goes on (to runStop,
   * which the host may have lowered; runEnd set to 0 ends it there). It must change nothing
   * when it returns false: the exit then happens as without it.
   */
  faultHook: (() => boolean) | null = null;

  /**
   * The pending fault (thrown or raised) of the current instruction: rolled back (a fault) or
   * retired (a trap), then an exit, or delivered through the IDT. Returns the exit, or -1
   * when run() goes on.
   */
  private faulted(): Exit | -1 {
    if (!this.fTrap) {
      this.eip = this.instrStart;
      this.regs[ESP] = this.savedEsp;
    } else {
      this.retired++;
    }
    if (!this.deliverThroughIdt) {
      this.exitReason = Exit.Exception;
      this.exitVector = this.fVector;
      this.exitErrorCode = hasErrorCode(this.fVector) && !this.fSoft ? this.fError : -1;
      this.exitCr2 = this.cr2;
      this.exitSoft = this.fSoft;
      const hook = this.faultHook;
      const asked = this.fAsked;
      this.fAsked = false;
      if (hook === null || asked || !hook()) return Exit.Exception;
      this.exitReason = Exit.Budget;
      if (this.runEnd === 0 || this.retired >= this.runStop) return Exit.Budget;
      this.runEnd = this.runStop;
      return -1;
    }
    if (this.deliverFault() === Exit.TripleFault) return Exit.TripleFault;
    if (this.runEnd === 0 || this.retired >= this.runStop) return this.exitReason;
    this.runEnd = this.runStop;
    return -1;
  }

  // ------------------------------------------------------------------ debug (single step, breakpoints)

  /** Single-stepping (EFLAGS.TF) or an enabled DR0-DR3 breakpoint needs the debug loop. */
  debugArmed(): boolean {
    return (this.flags & TF) !== 0 || (this.dr[7] & DR7_ENABLES) !== 0 || this.hostDebug !== null;
  }

  /**
   * Leaves the fast loop after the current instruction, so run() continues in the debug
   * loop: called when TF is set or a breakpoint enabled while running.
   */
  armDebug(): void {
    if (this.runEnd > this.retired + 1) this.runEnd = this.retired + 1;
  }

  /**
   * One instruction at a time while debugArmed(): instruction breakpoints (DR7 L/G with
   * R/W = 00) are faults before the instruction unless EFLAGS.RF is set; TF set at the start
   * of an instruction gives a #DB trap after it (DR6.BS). RF, whose only job is to suppress
   * the breakpoint, is cleared once an instruction has passed the check (outside this loop it
   * is left alone). Data watchpoints are not modelled.
   */
  private loopDebug(end: number): void {
    while (this.retired < end && this.debugArmed()) {
      const flags = this.getFlags();
      this.instrStart = this.eip;
      this.savedEsp = this.regs[ESP];
      const hd = this.hostDebug;
      if (hd?.before((this.segBase[CS] + this.eip) | 0)) {
        this.runEnd = 0;
        return;
      }
      if (flags & RF) this.flags &= ~RF;
      else if (this.dr[7] & DR7_ENABLES) this.checkInstructionBreakpoints();
      this.runEnd = this.retired + 1;
      this.loop();
      if (this.runEnd === 0 || this.exitReason !== Exit.Budget) return;
      if (hd?.after()) {
        this.runEnd = 0;
        return;
      }
      if (flags & TF) {
        this.dr[6] |= DR6_BS;
        // A trap: EIP stays after the instruction, which has already retired.
        this.retired--;
        this.trap(DB, -1, false);
      }
    }
    this.runEnd = end;
  }

  private checkInstructionBreakpoints(): void {
    const lin = (this.segBase[CS] + this.eip) | 0;
    const dr7 = this.dr[7];
    let hit = 0;
    for (let i = 0; i < 4; i++) {
      // Enabled (L or G), R/W = 00 (execute); LEN must be 00 for execution breakpoints.
      if ((dr7 >>> (i * 2)) & 3 && ((dr7 >>> (16 + i * 4)) & 3) === 0 && this.dr[i] === lin) hit |= 1 << i;
    }
    if (hit !== 0) {
      this.dr[6] = (this.dr[6] & ~0xf) | hit;
      this.fault(DB, -1);
    }
  }

  /**
   * Delivers the pending fault through the IDT. A fault while delivering is handled as the
   * SDM's table 6-5 says: contributory (#DE #TS #NP #SS #GP) after contributory or #PF, or
   * #PF after #PF, becomes #DF; anything during #DF is a triple fault; otherwise the second
   * exception is delivered instead. A fault while delivering int n/int3/into is a fault of
   * that instruction (EIP points at it).
   */
  private deliverFault(): Exit {
    let vector = this.fVector;
    let soft = this.fSoft;
    let error = hasErrorCode(vector) && !soft ? this.fError : -1;
    for (;;) {
      try {
        deliverInterrupt(this, vector, error, soft);
        return Exit.Budget;
      } catch (e) {
        if (e !== CPU_FAULT) throw e;
        if (soft) {
          this.eip = this.instrStart;
          this.regs[ESP] = this.savedEsp;
          this.retired--;
        }
        const second = this.fVector;
        if (vector === DF_VEC) {
          this.exitReason = Exit.TripleFault;
          return Exit.TripleFault;
        }
        const firstBad = isContributory(vector) || vector === PF_VEC;
        if ((isContributory(second) && firstBad) || (second === PF_VEC && vector === PF_VEC)) {
          vector = DF_VEC;
          error = 0;
        } else {
          vector = second;
          error = hasErrorCode(second) ? this.fError : -1;
        }
        soft = false;
      }
    }
  }

  /**
   * For host code calling checked helpers (segments.ts) outside run(): when e is the CPU's
   * fault, records it in exitVector/exitErrorCode/exitCr2/exitSoft and returns true.
   */
  catchFault(e: unknown): boolean {
    if (e !== CPU_FAULT) return false;
    this.exitVector = this.fVector;
    this.exitErrorCode = hasErrorCode(this.fVector) && !this.fSoft ? this.fError : -1;
    this.exitCr2 = this.cr2;
    this.exitSoft = this.fSoft;
    return true;
  }

  /**
   * The hot loop: fetch the decoded instruction at CS:EIP, execute, retire. The hot handlers
   * (ops/table.ts HOT_OPS, the ones blocks compile) are found by their case number in the
   * slotOf entry, the rest through the HANDLERS table.
   */
  private loop(): void {
    const dc = this.dc;
    const slots = dc.slotOf;
    const regs = this.regs;
    const segBase = this.segBase;
    const blockFn = dc.blockFn;
    const regionFn = dc.regionFn;
    const hits = dc.hits;
    const blockLen = dc.blockLen;
    const threshold = this.blockThreshold;
    const stats = this.stats;
    while (this.retired < this.runEnd) {
      const eip = this.eip;
      let e = 0;
      // An int32 test: as `>>> 0`, an EIP below the window made a uint32 past 2^31, which
      // deoptimized the loop compiled on Smi feedback ("lost precision"; two recompiles a boot).
      const off = (eip - this.fetchEip) | 0;
      if ((off & ~0xfff) === 0) e = slots[this.fetchBlock + off];
      if (e === 0) {
        // Set before the fetch, so a fetch fault reports this instruction.
        this.instrStart = eip;
        this.savedEsp = regs[ESP];
        e = this.fetchSlot((segBase[CS] + eip) | 0);
      }
      // e packs slot, length and hot case (decode.ts SLOT_MASK).
      const slot = e & SLOT_MASK;
      const block = blockFn[slot];
      if (block !== null) {
        // A compiled block does its own bookkeeping, and runs whole or not at all, so the
        // budget is kept exactly.
        if (this.retired + blockLen[slot] <= this.runEnd) {
          const region = regionFn[slot];
          const r0 = this.retired;
          if (region !== null) {
            this.regionRuns++;
            region(this, this.fetchEip);
            this.blockInsns += this.retired - r0;
            continue;
          }
          this.blockRuns++;
          const fb = this.fetchBlock;
          block(this);
          this.blockInsns += this.retired - r0;
          // Blocks of this frame that no region holds run often: (re)build its region.
          const due = ++dc.regionDue[fb >>> 12];
          // Not when the block dropped the fetch window (an iret to another CS or ring, a code
          // write): a later standalone run that keeps it builds the region.
          if (due >= this.regionThreshold && this.regionThreshold !== 0 && fb === this.fetchBlock) {
            dc.regionDue[fb >>> 12] = 0;
            compileRegion(this, fb);
          }
          continue;
        }
        this.coldLeft = blockLen[slot];
      } else if (e >> 22 !== 0) {
        if (this.coldLeft !== 0) this.coldLeft--;
        else if (
          ++hits[slot] === threshold &&
          compileBlock(this, this.fetchBlock, (eip - this.fetchEip) >>> 0)
        )
          continue;
      }
      if (stats !== null)
        stats.note(this, e, this.fetchBlock + ((eip - this.fetchEip) >>> 0), block !== null);
      this.step(e, eip);
    }
  }

  /**
   * Runs the decoded instruction e (slotOf entry) at eip through its handler, as the run loop
   * and a region's step do: instrStart and savedEsp set, EIP moved past it, the handler,
   * retired counted. V8 inlines it into both (cachegrind, the interpreter's micro loop: 3,192
   * host instructions a pass with the loop's own copy, 3,180 with this). One call site for
   * every handler: a switch with a call site per hot handler let V8 inline each, but made the
   * loop so large that TurboFan took 100-500 ms per compile, and each case first reached after
   * a compile deoptimized it (no type feedback): a Linux boot recompiled it some twenty times.
   */
  private step(e: number, eip: number): void {
    const slot = e & SLOT_MASK;
    this.instrStart = eip;
    this.savedEsp = this.regs[ESP];
    this.eip = (eip + ((e >> 18) & 15)) | 0;
    const hot = e >> 22;
    if (hot !== 0) HOT_FNS[hot](this, slot);
    else HANDLERS[this.dc.op[slot]](this, slot);
    this.retired++;
  }

  /**
   * Finds or decodes the instruction at linear address lin (CS:EIP); returns its slotOf entry
   * (slot, length and hot case packed, see decode.ts SLOT_MASK).
   */
  private fetchSlot(lin: number): number {
    if (this.eip >>> 0 > this.segHi[CS]) this.fault(GP, 0);
    const phys = this.physFor(lin, false);
    const frame = phys >>> 12;
    if (frame >= this.codePage.length) return this.fault(GP, 0);
    let block = this.dc.blockOf(frame);
    if (block < 0) {
      block = this.dc.allocBlock(frame);
      this.codePage[frame] = 1;
    }
    this.fetchEip = (this.eip - (lin & 0xfff)) | 0;
    this.fetchBlock = block;
    let e = this.dc.slotOf[block + (phys & 0xfff)];
    if (e === 0) {
      const dc = this.dc;
      // An instruction crossing into the next page is in no frame's decoded code: a few are
      // kept in crossing slots of their own (crossingAt), checked at every run.
      const x = (phys & 0xfff) > 0x1000 - 16 && this.keepCrossing ? this.crossing[frame & 3] : null;
      const held = x !== null && x.flushes === dc.flushes;
      if (held && x.phys === phys && this.crossingAt(x, lin)) {
        this.crossingHits++;
        dc.hits[x.slot] = 0;
        this.dropFetch();
        return x.e;
      }
      // Decoded into the kept slot (a page-end instruction that fits its page takes it over).
      const slot = decodeInto(this, lin, held ? x.slot : 0);
      if (x !== null) x.phys = -1;
      e = slot | (dc.len[slot] << 18) | (hotCase(dc.op[slot], dc.modrm[slot]) << 22);
      if ((lin & 0xfff) + dc.len[slot] <= 0x1000 && dc.blockOf(frame) === block) {
        if (x !== null && held) x.flushes = -1;
        dc.slotOf[block + (phys & 0xfff)] = e;
      } else {
        if (x !== null && dc.blockOf(frame) === block) {
          // Kept for its next run, with the bytes it was decoded from.
          x.phys = phys;
          x.slot = slot;
          x.e = e;
          x.flushes = dc.flushes;
          dc.hits[slot] = 0;
          // The second page is in the TLB since the decode's fetch: no walk here.
          const first = 0x1000 - (phys & 0xfff);
          const p2 = this.physFor((lin + first) | 0, false) - first;
          for (let i = 0; i < dc.len[slot]; i++) x.bytes[i] = this.mem8[i < first ? phys + i : p2 + i];
        } else {
          // Its slot is free again after this run (nothing holds it): taking a fresh one each
          // time flushed the whole cache every 256 K runs of such an instruction.
          dc.releaseSlot(slot);
        }
        this.dropFetch();
      }
    }
    return e;
  }

  /**
   * Kept page-crossing instructions (fetchSlot), by first frame: busybox's gzip window store
   * crosses a page end and ran 764 K times in bench:linux's workload, decoded afresh each time.
   */
  private readonly crossing = Array.from({ length: 4 }, () => ({
    phys: -1,
    slot: 0,
    e: 0,
    flushes: -1,
    bytes: new Uint8Array(16),
  }));
  /** Off: every page-crossing instruction is decoded afresh (tests compare both). */
  keepCrossing = true;
  /** Runs of a kept page-crossing instruction (tests, benches); those a region ran (crossingStep). */
  crossingHits = 0;
  crossingSteps = 0;

  /**
   * Whether the kept instruction x, at phys (the fetch's translation of lin = CS:EIP), is what
   * a fresh decode would make, with the same faults and walks: the whole of it within the CS
   * limit (else the decode, which faults at the byte past it), its bytes in the first page
   * unchanged, then the second page translated as the decode's fetch of its first byte there
   * translates it (the same walk, the same #PF) and its bytes there unchanged. Compared at
   * every run, so a write to either page, a remap or unmap of the second, is seen.
   */
  private crossingAt(x: { phys: number; slot: number; bytes: Uint8Array }, lin: number): boolean {
    const len = this.dc.len[x.slot];
    if ((this.eip >>> 0) + len - 1 > this.segHi[CS] || this.dc.blockFn[x.slot] !== null) return false;
    const first = 0x1000 - (x.phys & 0xfff);
    const m = this.mem8;
    for (let i = 0; i < first; i++) if (m[x.phys + i] !== x.bytes[i]) return false;
    // The same bytes so far: the decode would go on to the second page.
    const p2 = this.physFor((lin + first) | 0, false);
    if (p2 >>> 0 > this.memSize - (len - first)) return false;
    for (let i = first; i < len; i++) if (m[p2 + i - first] !== x.bytes[i]) return false;
    return true;
  }

  /**
   * For a region at an EIP where its page starts no block (blocks.ts linkRegion): runs the
   * instruction there as the run loop would, where the loop would only run its handler, so
   * code through it stays in the region (within the budget; instrStart and savedEsp set, EIP
   * moved on, its handler, retired counted). That is a decoded instruction of the fetch
   * window's page that starts no block and is not a hot one (the loop counts those toward a
   * block): `rep movsb` in busybox's inflate ran 291 K times in bench:linux's gzip phase, a
   * 16-bit `add` to memory 41 K; or the kept page-crossing instruction of the page's frame
   * (fetchSlot's checks, walk and faults, then its hit): the inflate loop's `cmpl`, 807 K.
   * Each was a return to the run loop. Returns true when it ran and nothing moved the fetch
   * window since (a code write, a change of CS or paging); false otherwise (not run, or run
   * and the window moved): the region returns to the run loop, which goes on from EIP.
   */
  regionStep(): boolean {
    const eip = this.eip;
    if (this.retired >= this.runEnd || this.stats !== null) return false;
    const dc = this.dc;
    const off = (eip - this.fetchEip) >>> 0;
    let e = off < 0x1000 ? dc.slotOf[this.fetchBlock + off] : 0;
    if (e !== 0) {
      if (e >> 22 !== 0 || dc.blockFn[e & SLOT_MASK] !== null) return false;
    } else {
      e = this.keptCrossing(eip);
      if (e === 0) return false;
    }
    const drops = this.fetchDrops;
    const slot = e & SLOT_MASK;
    const hot = e >> 22;
    if (hot !== 0) {
      if (this.coldLeft !== 0) this.coldLeft--;
      else dc.hits[slot]++;
    }
    this.regionSteps++;
    this.step(e, eip);
    return this.fetchDrops === drops;
  }

  /** Instructions regions ran themselves (regionStep; tests, benches). */
  regionSteps = 0;

  /**
   * regionStep's fetch of the kept page-crossing instruction at EIP eip: fetchSlot's hit (the
   * window dropped, its slotOf entry returned) when fetchSlot would make it, with instrStart
   * and savedEsp set first as the run loop sets them; else 0, with nothing changed.
   */
  private keptCrossing(eip: number): number {
    if (!this.keepCrossing || eip >>> 0 > this.segHi[CS] || this.blockThreshold === 1) return 0;
    const lin = (this.segBase[CS] + eip) | 0;
    if ((lin & 0xfff) <= 0x1000 - 16) return 0;
    // Only a page the TLB holds for a fetch (the region's own: no walk here).
    const t = this.tlb[lin >>> 12];
    if ((t & this.rdMask) === 0) return 0;
    const phys = (t & ~0xfff) | (lin & 0xfff);
    const frame = phys >>> 12;
    const dc = this.dc;
    if (frame >= this.codePage.length) return 0;
    const block = dc.blockOf(frame);
    if (block < 0 || dc.slotOf[block + (phys & 0xfff)] !== 0) return 0;
    const x = this.crossing[frame & 3];
    if (x.flushes !== dc.flushes || x.phys !== phys) return 0;
    this.instrStart = eip;
    this.savedEsp = this.regs[ESP];
    if (!this.crossingAt(x, lin)) return 0;
    this.crossingHits++;
    this.crossingSteps++;
    this.fetchEip = (eip - (lin & 0xfff)) | 0;
    dc.hits[x.slot] = 0;
    this.dropFetch();
    return x.e;
  }

  /**
   * For a region leaving its page (blocks.ts): moves the fetch window to the page of CS:EIP
   * when fetchSlot would find it without faulting or decoding (EIP inside the CS limit, the
   * page mapped for a fetch at this CPL, its frame's instructions decoded, one at EIP), and
   * returns the slotOf entry there; otherwise 0, the window left as it was (the run loop
   * fetches as usual). The TLB and the frame's decode block are the current mapping and code:
   * a remap, flush or code write has already dropped what they held. A page not in the TLB is
   * walked here (reach: a #PF is recorded, not thrown, and the run loop's fetch then walks
   * again and takes it) only when the run loop would fetch next, so the walk is the one its
   * fetch would make: not at the run's end (nor under the debug loop, whose runs end at each
   * instruction, so its host debugger sees each access in its turn). An idle tick's calls into
   * two other pages found them flushed by the switch: each was a return to the run loop, its
   * fetch and a region entered again.
   */
  hopFetch(): number {
    const eip = this.eip;
    if (eip >>> 0 > this.segHi[CS]) return 0;
    const lin = (this.segBase[CS] + eip) | 0;
    let t = this.tlb[lin >>> 12];
    if ((t & this.rdMask) === 0) {
      if (this.retired >= this.runEnd || !this.reach(lin, false)) return 0;
      t = this.tlb[lin >>> 12];
      if ((t & this.rdMask) === 0) return 0;
    }
    const frame = t >>> 12;
    if (frame >= this.codePage.length) return 0;
    const block = this.dc.blockOf(frame);
    if (block < 0) return 0;
    const e = this.dc.slotOf[block + (lin & 0xfff)];
    if (e === 0) return 0;
    this.fetchEip = (eip - (lin & 0xfff)) | 0;
    this.fetchBlock = block;
    this.regionHops++;
    return e;
  }

  /** Fetch a code byte during decode: CS limit and execute permission checked. */
  fetchByte(lin: number, off: number): number {
    if (off >>> 0 > this.segHi[CS]) this.fault(GP, 0);
    return this.physRead8(this.physFor(lin, false));
  }
}
