/**
 * A domain as a debugger sees it, behind the gdb stub (gdbstub.ts): its vcpus as threads, their
 * registers, memory at guest virtual addresses through the vcpu's own page tables, breakpoints
 * and watchpoints kept by the host (nothing is written into the guest, which never sees them),
 * single-step, running until something hits, and, where the machine can be rebuilt and replayed
 * (tsxen run), reverse execution. Stopping is the CPU's hostDebug hook (checked only while a
 * breakpoint, watchpoint or step is armed) and the hypervisor's debugHook for fatal faults.
 * Imports nothing of Node.js.
 */
import type { HostDebug } from "../cpu/cpu.js";
import { Fpu, X80 } from "../cpu/fpu.js";
import {
  ARITH_FLAGS,
  CR4_PSE,
  CS,
  DE,
  DF,
  DS,
  EAX,
  EBP,
  EBX,
  ECX,
  EDI,
  EDX,
  ES,
  ESI,
  ESP,
  FS,
  GP,
  GS,
  PF_VEC,
  SS,
  TF,
  UD,
} from "../cpu/regs.js";
import { _PAGE_PRESENT, _PAGE_PSE } from "../public/arch_x86_32.js";
import type { Domain, Vcpu } from "../xen/domain.js";
import { PGT_none, PGT_type_mask, PGT_writable_page } from "../xen/frame_table.js";
import type { Hypervisor, HypervisorDebugHook } from "../xen/hypervisor.js";

/** The signal numbers gdb's remote protocol uses (its own, not the host's). */
export const Sig = Object.freeze({ INT: 2, ILL: 4, TRAP: 5, FPE: 8, KILL: 9, SEGV: 11 } as const);

export type WatchType = "watch" | "rwatch" | "awatch";

/** Why the target stopped, as a stop reply says it. */
export type Stop =
  | {
      kind: "signal";
      signal: number;
      /** The vcpu that stopped (gdb's thread is its id + 1). */
      vcpu: number;
      watch?: { type: WatchType; addr: number };
      breakpoint?: "sw" | "hw";
      /** Reverse execution ran into the start of the recorded history. */
      history?: "begin";
    }
  /** The domain shut down (code: its shutdown reason) or was destroyed. */
  | { kind: "exited"; code: number }
  /** The domain crashed. */
  | { kind: "killed"; signal: number };

/**
 * The machine a target runs on: tsxen run's own (stops the whole machine, can be rebuilt and
 * replayed) or tsxend's (the domain is paused while stopped, the others run on).
 */
export interface DebugMachine {
  readonly hv: Hypervisor;
  readonly domain: Domain;
  /**
   * Runs the machine until stopped() holds (checked at least every few ms of guest time and
   * after every stop request), or the domain ends: resolves to how it ended, or null.
   */
  runUntilStopped(stopped: () => boolean): Promise<Stop | null>;
  /** rewind() gives the same run again. */
  readonly canRewind?: boolean;
  /** Resume and stop hooks (tsxend pauses and unpauses the domain). */
  onStop?(): void;
  onResume?(): void;
  /**
   * Rebuilds the machine as it was at boot and replays its recorded inputs (tsxen run): after
   * it, hv and domain are the new ones, before the first instruction. Absent: no reverse.
   */
  rewind?(): void;
  /**
   * With rewind: runs at full speed until the CPU has retired close to (never more than)
   * `retired` instructions.
   */
  approach?(retired: number): Promise<void>;
  /**
   * Like rewind, but to the machine's last checkpoint at or before position `retired` (the
   * same run, restored in place), so less is replayed.
   */
  rewindTo?(retired: number): void;
  /** gdb changed the guest's memory or registers (the run leaves its record). */
  noteWrite?(): void;
}

/** The signal gdb shows for a guest fault. */
function signalOf(vector: number): number {
  return vector === DE
    ? Sig.FPE
    : vector === UD
      ? Sig.ILL
      : vector === GP || vector === PF_VEC
        ? Sig.SEGV
        : Sig.TRAP;
}

/** gdb's i386 order of the general registers (its register numbers 0 to 7). */
const GPR_ORDER = [EAX, ECX, EDX, EBX, ESP, EBP, ESI, EDI];

/**
 * gdb's i386 registers (org.gnu.gdb.i386.core): 0-15 the general ones, 16-23 st0-st7, then
 * fctrl, fstat, ftag, fiseg, fioff, foseg, fooff, fop.
 */
export const GDB_REGS = 32;
const ST0 = 16;
const FCTRL = 24;

interface X87Control {
  name: string;
  max: number;
  get(f: Fpu): number;
  set(f: Fpu, v: number): void;
}

/** An x87 pointer register kept as it is in the Fpu. */
function pointer(name: string, max: number, key: "fcs" | "fip" | "fds" | "fdp" | "fop"): X87Control {
  return {
    name,
    max,
    get: (f) => f[key],
    set: (f, v) => {
      f[key] = v;
    },
  };
}

/** gdb's x87 control registers (fctrl to fop): each one's largest value and its place in the Fpu. */
export const X87_CONTROL: readonly X87Control[] = [
  {
    name: "fctrl",
    max: 0xffff,
    get: (f) => f.cw,
    set: (f, v) => {
      f.cw = (v & 0x1f3f) | 0x40; // as fldcw keeps it
    },
  },
  { name: "fstat", max: 0xffff, get: (f) => f.statusWord(), set: (f, v) => f.setStatusWord(v) },
  { name: "ftag", max: 0xffff, get: (f) => f.tagWord(), set: (f, v) => f.setTagWord(v) },
  pointer("fiseg", 0xffff, "fcs"),
  pointer("fioff", 0xffffffff, "fip"),
  pointer("foseg", 0xffff, "fds"),
  pointer("fooff", 0xffffffff, "fdp"),
  pointer("fop", 0x7ff, "fop"),
];

/** Bytes of gdb's register n: st0-st7 are 80-bit, the others 32. */
export function registerSize(n: number): number {
  return n >= ST0 && n < FCTRL ? 10 : 4;
}

/** Watchpoint lengths gdb may ask for (x86 debug registers: 1, 2, 4 or 8 bytes). */
const MAX_WATCH_LEN = 8;
/** How many breakpoints and watchpoints a target keeps (like Z packets' resource errors). */
const MAX_POINTS = 256;
/** The first window reverse-continue looks back through for a hit (instructions). */
const FIRST_WINDOW = 200_000;
/** Instructions run at full speed short of a reverse target, before the stepping loop. */
const APPROACH_MARGIN = 4096;

interface Watch {
  type: WatchType;
  addr: number;
  len: number;
}

/** A position in the run: instructions retired by the CPU since the machine was built. */
type Position = number;

export class DebugTarget implements HostDebug, HypervisorDebugHook {
  readonly watchPages = new Set<number>();
  private readonly breaks = new Map<number, "sw" | "hw">();
  private watches: Watch[] = [];
  /** The step in progress: stop at the first instruction after this one. */
  private stepFrom: { retired: number; lin: number } | null = null;
  /** Resuming from a breakpoint: its first check is passed over (like EFLAGS.RF). */
  private skipLin = -1;
  /** A watchpoint hit by the instruction just run. */
  private watchHit: { type: WatchType; addr: number } | null = null;
  /** Stop before the first instruction at or after this position (reverse execution). */
  private stopAt: Position = Number.POSITIVE_INFINITY;
  /** Collecting hits to find the last one before a position (reverse-continue): none stop. */
  private collect: Array<{ at: Position; stop: Stop }> | null = null;
  /** The stop in effect; null while running. */
  private stop: Stop | null = null;
  private interrupted = false;
  /** gdb continued with the fault's signal: the next fatal fault crashes the domain. */
  private passFault = false;
  /** Signals gdb passes on without stopping (QPassSignals: `handle SIGSEGV nostop pass`). */
  passSignals: ReadonlySet<number> = new Set();
  /** The exception being handled now was passed on (its fatal end is not stopped either). */
  private passingFault = false;
  private attached = false;

  constructor(private readonly m: DebugMachine) {}

  get hv(): Hypervisor {
    return this.m.hv;
  }

  get domain(): Domain {
    return this.m.domain;
  }

  /** Reverse execution needs a machine that can be rebuilt and replayed. */
  get canReverse(): boolean {
    return this.m.canRewind === true && this.m.rewind !== undefined && this.m.approach !== undefined;
  }

  /** Hooks the hypervisor (fatal faults) and stops the domain where it is (SIGTRAP). */
  attach(): Stop {
    this.attached = true;
    this.hv.debugHook = this;
    this.arm();
    this.m.onStop?.();
    this.stop = { kind: "signal", signal: Sig.TRAP, vcpu: this.currentVcpu().id };
    return this.stop;
  }

  /** Removes every hook and point; the domain runs on as if never debugged. */
  detach(): void {
    this.breaks.clear();
    this.watches = [];
    this.updateWatchPages();
    this.stepFrom = null;
    this.attached = false;
    if (this.hv.debugHook === this) this.hv.debugHook = null;
    if (this.hv.cpu.hostDebug === this) this.hv.cpu.hostDebug = null;
    this.m.onResume?.();
  }

  /** The last stop (the one in effect while stopped). */
  get lastStop(): Stop | null {
    return this.stop;
  }

  // ------------------------------------------------------------------ threads

  /** The vcpus gdb sees as threads: those that have been brought up. */
  vcpus(): Vcpu[] {
    return this.domain.vcpus.filter((v) => v.context !== null || this.hv.current === v);
  }

  vcpu(id: number): Vcpu | null {
    return this.vcpus().find((v) => v.id === id) ?? null;
  }

  private currentVcpu(): Vcpu {
    const cur = this.hv.current;
    if (cur !== null && cur.domain === this.domain) return cur;
    return this.vcpus()[0] ?? this.domain.vcpus[0];
  }

  /** The vcpu the last stop was in. */
  stoppedVcpu(): number {
    return this.stop?.kind === "signal" ? this.stop.vcpu : this.currentVcpu().id;
  }

  // ------------------------------------------------------------------ registers

  /** The 16 general registers in gdb's i386 order: eax ecx edx ebx esp ebp esi edi eip eflags cs ss ds es fs gs. */
  registers(v: Vcpu): number[] {
    const cpu = this.hv.cpu;
    const onCpu = this.hv.current === v;
    const c = v.context;
    const regs = onCpu ? cpu.regs : (c?.regs ?? new Int32Array(8));
    const sel = onCpu ? cpu.segSel : (c?.segSel ?? new Int32Array(8));
    const gprs = GPR_ORDER.map((r) => regs[r] >>> 0);
    const eip = onCpu ? cpu.eip : (c?.eip ?? 0);
    const eflags = onCpu ? cpu.getFlags() : (c?.eflags ?? 0);
    return [...gprs, eip >>> 0, eflags >>> 0, ...[CS, SS, DS, ES, FS, GS].map((s) => sel[s] & 0xffff)];
  }

  /**
   * Sets general register n (gdb's numbering), if canWriteRegister allows it. EFLAGS takes only
   * the bits a guest kernel can set with popf (arithmetic flags, TF, DF), never IOPL or IF.
   */
  private setRegister(v: Vcpu, n: number, value: number): void {
    const onCpu = this.hv.current === v;
    const cpu = this.hv.cpu;
    const c = v.context;
    const old = this.registers(v)[n];
    if (n === 9) value = (old & ~(ARITH_FLAGS | TF | DF)) | (value & (ARITH_FLAGS | TF | DF));
    // gdb's G resends every register: only a real change takes the run off its record (a
    // segment register's value is unchanged, canWriteRegister saw to it).
    if (n > 9 || value >>> 0 === old) return;
    this.m.noteWrite?.();
    if (n < 8) {
      if (onCpu) cpu.regs[GPR_ORDER[n]] = value;
      else if (c) c.regs[GPR_ORDER[n]] = value;
    } else if (n === 8) {
      if (onCpu) {
        // int32, as the CPU keeps EIP: an unsigned value past 2^31 makes V8's field a double.
        cpu.eip = value | 0;
        cpu.dropFetch();
      } else if (c) c.eip = value | 0;
    } else if (onCpu) cpu.setFlags(value);
    else if (c) c.eflags = value;
  }

  /** v's x87 unit: the CPU's while v is on it, else its saved context's (null before it ran). */
  private fpuOf(v: Vcpu): Fpu | null {
    return this.hv.current === v ? this.hv.cpu.fpu : (v.context?.fpu ?? null);
  }

  /** gdb's register n of v as target-order (little-endian) bytes (registerSize(n) of them). */
  register(v: Vcpu, n: number): Uint8Array {
    const out = new Uint8Array(registerSize(n));
    const dv = new DataView(out.buffer);
    if (n < ST0) {
      dv.setUint32(0, this.registers(v)[n], true);
      return out;
    }
    // A vcpu that never ran has the fninit state.
    const f = this.fpuOf(v) ?? new Fpu();
    if (n < FCTRL) {
      const x = new X80();
      f.getX80(f.phys(n - ST0), x);
      dv.setUint32(0, x.lo, true);
      dv.setUint32(4, x.hi, true);
      dv.setUint16(8, x.se, true);
    } else {
      dv.setUint32(0, X87_CONTROL[n - FCTRL].get(f) >>> 0, true);
    }
    return out;
  }

  /**
   * Whether writeRegister would take these bytes for register n of v (a G packet checks all
   * before it sets any). Segment registers take only their value (a selector load needs the
   * descriptor checks a guest's own load gets; gdb writes all of them in a G); a control
   * register's value must fit its field (16 bits, fop 11); a vcpu that never ran has nothing
   * to write to.
   */
  canWriteRegister(v: Vcpu, n: number, bytes: Uint8Array): boolean {
    if (n < 0 || n >= GDB_REGS || bytes.length !== registerSize(n)) return false;
    const value = new DataView(bytes.buffer, bytes.byteOffset, bytes.length).getUint32(0, true);
    if (n < ST0) {
      if (this.hv.current !== v && v.context === null) return false;
      return n <= 9 || this.registers(v)[n] === (value & 0xffff);
    }
    if (this.fpuOf(v) === null) return false;
    return n < FCTRL || value <= X87_CONTROL[n - FCTRL].max;
  }

  /**
   * Writes gdb's register n of v (bytes as register() gives them) if canWriteRegister allows:
   * the general registers as setRegister does; st0-st7 keep their tags (ftag says which are
   * empty, as hardware's tag word does). An unchanged value is no write.
   */
  writeRegister(v: Vcpu, n: number, bytes: Uint8Array): boolean {
    if (!this.canWriteRegister(v, n, bytes)) return false;
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
    if (n < ST0) {
      this.setRegister(v, n, dv.getUint32(0, true));
      return true;
    }
    if (this.register(v, n).every((b, i) => b === bytes[i])) return true;
    this.m.noteWrite?.();
    const f = this.fpuOf(v) as Fpu;
    if (n < FCTRL) {
      const i = f.phys(n - ST0);
      const empty = f.empty[i];
      f.setX80(i, dv.getUint16(8, true), dv.getUint32(4, true), dv.getUint32(0, true));
      f.empty[i] = empty;
    } else X87_CONTROL[n - FCTRL].set(f, dv.getUint32(0, true));
    return true;
  }

  // ------------------------------------------------------------------ memory

  private cr3Of(v: Vcpu): number {
    if (this.hv.current === v) return this.hv.cpu.cr3;
    return v.context?.cr3 ?? v.baseMfn * 4096;
  }

  /**
   * The machine address of guest virtual address va in v's address space, or -1 where it is
   * not mapped. Reads the page tables only (no accessed bits set, no TLB filled).
   */
  translate(v: Vcpu, va: number): number {
    const cpu = this.hv.cpu;
    const pde = cpu.physRead32((this.cr3Of(v) & ~0xfff) + ((va >>> 22) << 2));
    if ((pde & _PAGE_PRESENT) === 0) return -1;
    let ma: number;
    if ((pde & _PAGE_PSE) !== 0 && (cpu.cr4 & CR4_PSE) !== 0)
      ma = ((pde & 0xffc00000) | (va & 0x3fffff)) >>> 0;
    else {
      const pte = cpu.physRead32((pde & ~0xfff) + (((va >>> 12) & 0x3ff) << 2));
      if ((pte & _PAGE_PRESENT) === 0) return -1;
      ma = ((pte & ~0xfff) | (va & 0xfff)) >>> 0;
    }
    return ma < cpu.memSize ? ma : -1;
  }

  /** Reads up to len bytes at va; stops short at the first unmapped byte. */
  readMemory(v: Vcpu, va: number, len: number): Uint8Array {
    const out = new Uint8Array(len);
    const mem = this.hv.cpu.mem8;
    let done = 0;
    while (done < len) {
      const at = (va + done) >>> 0;
      const ma = this.translate(v, at);
      if (ma < 0) break;
      const n = Math.min(len - done, 4096 - (at & 0xfff));
      out.set(mem.subarray(ma, ma + n), done);
      done += n;
    }
    return out.subarray(0, done);
  }

  /**
   * Writes bytes at va, all or nothing: every page must be mapped, be the domain's own and
   * be an ordinary page (a page table, GDT or LDT changes only through the hypercalls that
   * check it).
   */
  writeMemory(v: Vcpu, va: number, bytes: Uint8Array): boolean {
    const frames = this.hv.frames;
    const parts: Array<[number, number, number]> = [];
    for (let done = 0; done < bytes.length; ) {
      const at = (va + done) >>> 0;
      const ma = this.translate(v, at);
      if (ma < 0) return false;
      const mfn = ma >>> 12;
      const type = frames.typeInfo[mfn] & PGT_type_mask;
      if (!this.domain.pages.has(mfn) || (type !== PGT_none && type !== PGT_writable_page)) return false;
      const n = Math.min(bytes.length - done, 4096 - (at & 0xfff));
      parts.push([ma, done, n]);
      done += n;
    }
    const cpu = this.hv.cpu;
    // The same bytes again are no write: the run stays on its record.
    if (parts.every(([ma, off, n]) => cpu.mem8.subarray(ma, ma + n).every((b, i) => b === bytes[off + i])))
      return true;
    this.m.noteWrite?.();
    for (const [ma, off, n] of parts) {
      cpu.mem8.set(bytes.subarray(off, off + n), ma);
      cpu.invalidateCode(ma, n);
    }
    return true;
  }

  // ------------------------------------------------------------------ breakpoints and watchpoints

  /** Z packets: 0 software, 1 hardware breakpoint, 2 write, 3 read, 4 access watchpoint. */
  insertPoint(type: number, addr: number, len: number): boolean {
    addr >>>= 0;
    if (type === 0 || type === 1) {
      if (!this.breaks.has(addr) && this.pointCount() >= MAX_POINTS) return false;
      this.breaks.set(addr, type === 0 ? "sw" : "hw");
    } else if (type >= 2 && type <= 4) {
      if (len < 1 || len > MAX_WATCH_LEN || this.pointCount() >= MAX_POINTS) return false;
      const wt: WatchType = type === 2 ? "watch" : type === 3 ? "rwatch" : "awatch";
      if (!this.watches.some((w) => w.type === wt && w.addr === addr && w.len === len))
        this.watches.push({ type: wt, addr, len });
      this.updateWatchPages();
    } else return false;
    this.arm();
    return true;
  }

  removePoint(type: number, addr: number, len: number): boolean {
    addr >>>= 0;
    if (type === 0 || type === 1) this.breaks.delete(addr);
    else if (type >= 2 && type <= 4) {
      const wt: WatchType = type === 2 ? "watch" : type === 3 ? "rwatch" : "awatch";
      this.watches = this.watches.filter((w) => !(w.type === wt && w.addr === addr && w.len === len));
      this.updateWatchPages();
    } else return false;
    this.arm();
    return true;
  }

  private pointCount(): number {
    return this.breaks.size + this.watches.length;
  }

  private updateWatchPages(): void {
    this.watchPages.clear();
    for (const w of this.watches) {
      // An access of up to 4 bytes starting 3 before the range may touch it.
      for (let a = w.addr - 3; a < w.addr + w.len; a += 1) this.watchPages.add((a >>> 0) >>> 12);
    }
    // Entries already in the TLB would let accesses past translate(), which reports them.
    this.hv.cpu.flushTlb();
  }

  /** The CPU hook is attached only while something needs a look at every instruction. */
  private arm(): void {
    const needed =
      this.attached &&
      (this.breaks.size > 0 ||
        this.watches.length > 0 ||
        this.stepFrom !== null ||
        this.collect !== null ||
        Number.isFinite(this.stopAt));
    this.hv.cpu.hostDebug = needed ? this : null;
    if (needed) this.hv.cpu.armDebug();
  }

  // ------------------------------------------------------------------ the CPU's hooks

  private ours(): boolean {
    return this.hv.current?.domain === this.domain;
  }

  /** Records a stop (or, collecting, notes it and goes on); true when the run must stop. */
  private hit(stop: Stop): boolean {
    // A hit's position is its instruction's: a watchpoint is seen after the writer retired.
    const at = this.hv.cpu.retiredTotal - (stop.kind === "signal" && stop.watch ? 1 : 0);
    if (this.collect !== null && at < this.stopAt) {
      this.collect.push({ at, stop });
      return false;
    }
    this.stopHere(stop);
    return true;
  }

  /** Stops the run where it is, from inside it (a hook), with this stop. */
  private stopHere(stop: Stop): void {
    this.stop = stop;
    this.hv.requestStop();
    this.m.onStop?.();
  }

  before(lin: number): boolean {
    if (!this.ours()) return false;
    const cpu = this.hv.cpu;
    const vcpu = this.currentVcpu().id;
    if (cpu.retiredTotal >= this.stopAt) {
      this.stopHere({ kind: "signal", signal: Sig.TRAP, vcpu });
      return true;
    }
    if (this.watchHit !== null) {
      const watch = this.watchHit;
      this.watchHit = null;
      if (this.hit({ kind: "signal", signal: Sig.TRAP, vcpu, watch })) return true;
    }
    const step = this.stepFrom;
    if (step !== null && (cpu.retiredTotal !== step.retired || lin !== step.lin)) {
      this.stopHere({ kind: "signal", signal: Sig.TRAP, vcpu });
      return true;
    }
    if (this.skipLin === lin) {
      this.skipLin = -1;
      return false;
    }
    this.skipLin = -1;
    const b = this.breaks.get(lin >>> 0);
    return b !== undefined && this.hit({ kind: "signal", signal: Sig.TRAP, vcpu, breakpoint: b });
  }

  after(): boolean {
    if (this.watchHit === null || !this.ours()) return false;
    const watch = this.watchHit;
    this.watchHit = null;
    return this.hit({ kind: "signal", signal: Sig.TRAP, vcpu: this.currentVcpu().id, watch });
  }

  access(lin: number, write: boolean): void {
    if (!this.ours()) return;
    for (const w of this.watches) {
      if (lin >>> 0 < (w.addr - 3) >>> 0 || lin >>> 0 >= (w.addr + w.len) >>> 0) continue;
      if (w.type === "watch" ? write : w.type === "rwatch" ? !write : true) {
        this.watchHit = { type: w.type, addr: w.addr };
        return;
      }
    }
  }

  /**
   * A fault the guest has no handler for (its trap table has no address for the vector)
   * stops before Xen bounces it to EIP 0 (faults Xen fixes itself, as writable page tables,
   * never get here), at the faulting instruction, as gdb shows a signal. Resumed with that
   * signal (gdb's continue after it), Xen bounces it as it would have.
   */
  unhandledFault(v: Vcpu, vector: number): boolean {
    this.passingFault = false;
    if (v.domain !== this.domain || !this.attached || signalOf(vector) === Sig.TRAP) return false;
    return this.faultStop(v, vector);
  }

  /** A fault about to crash the domain (whatever its trap table says) stops it first. */
  fatalFault(v: Vcpu, _why: string): boolean {
    if (v.domain !== this.domain || !this.attached) return false;
    return this.faultStop(v, this.hv.cpu.exitVector);
  }

  private faultStop(v: Vcpu, vector: number): boolean {
    // Passed on by gdb: this exception goes to Xen, crash and all.
    if (this.passFault || this.passingFault || this.passSignals.has(signalOf(vector))) {
      this.passFault = false;
      this.passingFault = true;
      return false;
    }
    this.stopHere({ kind: "signal", signal: signalOf(vector), vcpu: v.id });
    return true;
  }

  // ------------------------------------------------------------------ running

  /** Ctrl-C: the running target stops at the next look (a few ms of guest time at most). */
  interrupt(): void {
    this.interrupted = true;
    this.hv.requestStop();
  }

  /**
   * Continue (step = false) or single-step (step = true) from the current stop. signal: the
   * signal gdb resumes with; the fault's own signal lets a fatal fault crash the domain.
   */
  async resume(step: boolean, signal = 0): Promise<Stop> {
    const prev = this.stop;
    this.passFault = prev?.kind === "signal" && signal !== 0 && signal === prev.signal && signal !== Sig.TRAP;
    return this.runFrom(step);
  }

  private async runFrom(step: boolean): Promise<Stop> {
    const cpu = this.hv.cpu;
    const v = this.currentVcpu();
    const lin = this.hv.current === v ? (cpu.segBase[CS] + cpu.eip) | 0 : (v.context?.eip ?? 0);
    this.stepFrom = step ? { retired: cpu.retiredTotal, lin } : null;
    this.skipLin = lin;
    this.watchHit = null;
    this.interrupted = false;
    this.stop = null;
    this.arm();
    this.m.onResume?.();
    const ended = await this.m.runUntilStopped(() => this.stop !== null || this.interrupted);
    this.stepFrom = null;
    this.arm();
    this.m.onStop?.();
    if (ended !== null) this.stop = ended;
    else if (this.stop === null) this.stop = { kind: "signal", signal: Sig.INT, vcpu: this.currentVcpu().id };
    return this.stop;
  }

  // ------------------------------------------------------------------ reverse execution

  /**
   * The machine rebuilt and replayed to position `at`, stopped before the first instruction
   * there. collectFrom: from that position on the breakpoints and watchpoints are live and
   * their hits (at positions before `at`) are returned, none stopping; the way before it (all
   * of it without collectFrom) is run at full speed with none armed.
   */
  private async replayTo(at: Position, collectFrom?: Position): Promise<Array<{ at: Position; stop: Stop }>> {
    const m = this.m;
    if (m.rewind === undefined || m.approach === undefined)
      throw new Error("this target cannot run backwards");
    const saved = { breaks: [...this.breaks], watches: this.watches };
    this.stepFrom = null;
    this.skipLin = -1;
    this.watchHit = null;
    const hits: Array<{ at: Position; stop: Stop }> = [];
    const quiet = collectFrom ?? at;
    if (m.rewindTo !== undefined) m.rewindTo(quiet - APPROACH_MARGIN);
    else m.rewind();
    this.hv.debugHook = this;
    this.breaks.clear();
    this.watches = [];
    this.updateWatchPages();
    this.arm();
    await m.approach(quiet - APPROACH_MARGIN);
    if (collectFrom !== undefined && this.hv.cpu.retiredTotal < collectFrom) {
      // The last instructions short of the window one at a time, to stop exactly at its start.
      this.stopAt = collectFrom;
      this.stop = null;
      this.arm();
      m.onResume?.();
      await m.runUntilStopped(() => this.stop !== null);
      m.onStop?.();
    }
    if (collectFrom !== undefined) {
      for (const [addr, kind] of saved.breaks) this.breaks.set(addr, kind);
      this.watches = saved.watches;
      this.updateWatchPages();
      this.skipLin = -1;
    }
    this.collect = collectFrom !== undefined ? hits : null;
    this.stopAt = at;
    this.stop = null;
    this.arm();
    m.onResume?.();
    if (this.hv.cpu.retiredTotal < at) await m.runUntilStopped(() => this.stop !== null);
    m.onStop?.();
    this.collect = null;
    this.stopAt = Number.POSITIVE_INFINITY;
    this.breaks.clear();
    for (const [addr, kind] of saved.breaks) this.breaks.set(addr, kind);
    this.watches = saved.watches;
    this.updateWatchPages();
    this.arm();
    return hits;
  }

  /** bs: back to before the last instruction this vcpu retired. */
  async reverseStep(): Promise<Stop> {
    const here = this.hv.cpu.retiredTotal;
    if (here === 0) return this.historyBegin();
    await this.replayTo(here - 1);
    return this.stop ?? this.historyBegin();
  }

  /**
   * bc: back to the last breakpoint or watchpoint hit before here, or the start of history.
   * The hits are looked for in windows going back from here, each four times the last, each
   * a replay at full speed to its start and one instruction at a time through it, so a recent
   * hit is found without stepping through the whole run.
   */
  async reverseContinue(): Promise<Stop> {
    const here = this.hv.cpu.retiredTotal;
    let end = here;
    for (let size = FIRST_WINDOW; ; size *= 4) {
      const start = Math.max(0, end - size);
      const last = (await this.replayTo(end, start)).pop();
      if (last !== undefined) {
        // A watchpoint stops before the writing instruction when going backwards, as gdb
        // expects (it compares the value it saw with the one there now: the old one).
        await this.replayTo(last.at);
        this.stop = last.stop;
        return last.stop;
      }
      if (start === 0) break;
      end = start;
    }
    await this.replayTo(0);
    return this.historyBegin();
  }

  private historyBegin(): Stop {
    this.stop = { kind: "signal", signal: Sig.TRAP, vcpu: this.currentVcpu().id, history: "begin" };
    return this.stop;
  }
}
