/**
 * x86 to WebAssembly for a compiled block (blocks.ts chose its instructions and flags; this
 * writes one wasm function for it, backend.ts batches them into modules). The forms of
 * codegen.ts are written inline: moves, lea, movzx/movsx, the 8- and 32-bit ALU operations,
 * test, inc/dec, shifts by a constant, imul, push/pop, call/ret and the near jumps. Any other
 * instruction calls its handler through an import, with the lazy flags handed over first.
 *
 * Registers stay in memory (the Cpu's regs view), so a handler, a fault or the JS CPU sees
 * them at any point; a block also keeps those it read or wrote in locals, written through
 * (Gen.valid), so reading one again loads nothing. The last lazy-flag record lives in locals (fa, fb, fx, its kind and
 * size known here) and is written to the io words before anything that may show it to JS:
 * an exit, a handler call, a slow memory access (which may fault), a fault. Memory accesses
 * check the segment (Cpu.segChk) and the TLB inline and go to guest RAM directly; a miss, a
 * page-crossing access, a write to a code frame or a 16-bit stack takes the JS path, the
 * same as the JS block's. The imports record the instruction index first, so a fault unwinds
 * to the wrapper with the state the JS block would have.
 */

import { FLAGS_KEPT, TLB_SUP_READ } from "../cpu.js";
import { type DecodeCache, EA_BASE, EA_DISP, EA_SIB, isJcc, P_A16 } from "../decode.js";
import { L_ADC, L_ADD, L_DEC, L_INC, L_LOGIC, L_NONE, L_RES, L_SBB, L_SUB } from "../flags.js";
import { ADC, ADD, AND, CMP, OR, SBB, SUB, XOR } from "../ops/alu.js";
import { ROL, ROR, SAL, SAR, SHL, SHR } from "../ops/alu-shift.js";
import {
  AF,
  CF,
  CS,
  DE,
  DF,
  DS,
  EFLAGS_FIXED,
  ES,
  ESP,
  FS,
  GP,
  GS,
  IF,
  IOPL,
  NT,
  OF,
  PF,
  reg8Index as r8,
  SF,
  SS,
  TF,
  VIF,
  VIP,
  VM,
  ZF,
} from "../regs.js";
import { D_ACCESSED, D_CODE, D_CONFORMING, D_G, D_P, D_RW, D_S, IRET_FLAGS } from "../segments.js";
import {
  IO_BAIL,
  IO_BLK,
  IO_CPL,
  IO_DONE,
  IO_EIP,
  IO_FAULT,
  IO_FLAGS,
  IO_FLAT,
  IO_GDTB,
  IO_GDTL,
  IO_HOPS,
  IO_LZA,
  IO_LZB,
  IO_LZOP,
  IO_LZRES,
  IO_LZSIZE,
  IO_RBLOCKS,
  IO_RDMASK,
  IO_SAVEDESP,
  IO_SS32,
  IO_STOP,
  IO_WRMASK,
  SEG_ATTR,
  SEG_LIMIT,
  SEG_RDU,
  SEG_WRU,
  ST_CODEPAGE,
  ST_IO,
  ST_SEGCHK,
} from "./arena.js";
import { Code, type FuncType, I32, Op, uleb, VOID } from "./emit.js";

/**
 * The function types of every module, in the order first asked for. Each type index used
 * (imports, thunks, blocks, hub, chain) comes from sig() below, never written as a number: a
 * signature has one owner, and reordering this table cannot silently mismatch a function.
 */
export const TYPES: FuncType[] = [];
/** The index in TYPES of (i32 x params) -> (i32 x results), added on first use. */
function sig(params: number, results = 1): number {
  for (let i = 0; i < TYPES.length; i++) {
    if (TYPES[i].params.length === params && TYPES[i].results.length === results) return i;
  }
  TYPES.push({ params: new Array<number>(params).fill(I32), results: new Array<number>(results).fill(I32) });
  return TYPES.length - 1;
}

// Imported functions (index = order in IMPORTS).
export const IMPORTS = [
  "rd8",
  "rd16",
  "rd32",
  "wr8",
  "wr32",
  "rmwRd8",
  "rmwRd32",
  "rmwWr8",
  "rmwWr32",
  "push",
  "pop",
  "fault",
  "call",
  "cond",
  "wr16",
  "rmwRd16",
  "rmwWr16",
] as const;
const F = Object.fromEntries(IMPORTS.map((n, i) => [n, i])) as Record<(typeof IMPORTS)[number], number>;
/** Parameter count of each import (all i32, one i32 result): the JS functions' arity. */
export const IMPORT_PARAMS = [3, 3, 3, 4, 4, 3, 3, 2, 2, 2, 1, 3, 2, 1, 4, 3, 2];
/** Type index (TYPES) of each import. */
export const IMPORT_TYPES = IMPORT_PARAMS.map((n) => sig(n));
/**
 * Type of a block function: (budget, EIP at its start, instructions retired before it) ->
 * (instructions retired with it, EIP after it). The budget and counts are those of the whole
 * run (a chain's), so a chain passes its own and takes the result as it is.
 */
export const BLOCK_TYPE = sig(3, 2);

/**
 * The memory accesses' slow paths shared by a module's blocks: functions 0 to 8 of every
 * block module (its blocks follow), each taking an import's arguments and DONE, storing DONE
 * (as callJs does) and calling the import. A site keeps one direct call instead of the store
 * and the import's call: less code for V8 to allocate registers over in each block.
 */
export const THUNKS = ["rd8", "rd16", "rd32", "rmwRd8", "rmwRd16", "rmwRd32", "wr8", "wr16", "wr32"] as const;
/** Parameter count of each thunk: its import's, then DONE. */
const THUNK_PARAMS = THUNKS.map((name) => IMPORT_PARAMS[F[name]] + 1);
/** Type index (TYPES) of each thunk. */
export const THUNK_TYPES = THUNK_PARAMS.map((n) => sig(n));
function thunk(name: (typeof THUNKS)[number]): number {
  return IMPORTS.length + THUNKS.indexOf(name);
}
/** The body of thunk j (THUNKS) for the state area at S. */
export function thunkBody(S: number, j: number): number[] {
  const c = new Code();
  const n = THUNK_PARAMS[j] - 1;
  c.i32(0)
    .get(n)
    .mem(Op.store, S + ST_IO + 4 * IO_DONE);
  for (let i = 0; i < n; i++) c.get(i);
  c.call(F[THUNKS[j]]);
  return c.b;
}

// Parameters (the budget, the block's EIP, what the run retired before it), then locals.
const BUDGET = 0;
const E0 = 1;
const DONE = 2;
const FA = 3;
const FB = 4;
const FX = 5;
const A = 6;
const B = 7;
const X = 8;
const LIN = 9;
const E = 10;
const P = 11;
const O = 12;
const V = 13;
const HIT = 14;
const EIP = 15;
const SS32 = 16;
const T = 17;
const RMW = 18;
/** Locals R0 .. R0 + 7: the write-through cache of the 8 registers (Gen.valid). */
const R0 = 19;
/** Locals after the three parameters. */
export const LOCALS = 24;

const INT_MIN = -0x80000000;

/** A handler called from a block: the wrapper's import runs fn(cpu, slot). */
export interface Site {
  fn: (cpu: never, slot: number) => void;
  slot: number;
  /** Block offset of the instruction's end (EIP before a control transfer's handler). */
  end: number;
  control: boolean;
}

// Per-instruction flags of a block (blocks.ts).
export const F_STACK = 1;
export const F_CONTROL = 2;
export const F_CHECK = 4;
export const F_BRANCH = 8;
export const F_TRACE = 16;
export const F_RETURN = 32;

/** The block, as blocks.ts laid it out. */
export interface BlockPlan {
  slots: number[];
  offs: number[];
  ends: number[];
  flags: number[];
  fns: ((cpu: never, slot: number) => void)[];
  /** Per instruction: a jump back to the block's start (blocks.ts loops()). */
  loops: boolean[];
}

/**
 * The instruction index j > k of a block at block offset target (j = n: past the last one,
 * when it is not a control transfer), or -1.
 */
export function skipTarget(offs: number[], target: number, k: number, flags: number[]): number {
  const n = flags.length;
  for (let j = k + 1; j < n; j++) if (offs[j] === target) return j;
  return offs[n] === target && (flags[n - 1] & F_CONTROL) === 0 ? n : -1;
}

/** A forward branch's label (its inner block's depth) and the flag record its taken path left. */
interface Skip {
  label: number;
  /** Taken paths emitted: 0 (none reaches the label) or 1. */
  taken: number;
  op: number;
  size: number;
  dirty: boolean;
}

class Gen {
  readonly c = new Code();
  /** The flag record in fa/fb/fx: kind (0: the io words hold it) and size. */
  op = 0;
  size = 32;
  /** fa/fb/fx hold a record the io words do not have yet. */
  dirty = false;
  depth = 0;
  loopLevel = -1;
  k = 0;
  /** Instruction k's handler and whether it is a control transfer (for a form's slow path). */
  siteFn: Site["fn"] = () => {};
  siteControl = false;
  inline = 0;
  /** The open forward-branch labels (skip), innermost last. */
  readonly skips: Skip[] = [];
  /**
   * The open inner loops (midLoops), innermost last: the head's instruction, the loop's
   * depth, and its place on blockBody's stack of open labels (which closes it at its end).
   */
  readonly heads: { j: number; level: number; at: number }[] = [];
  /** The IO_FLAT bits this block's accesses took as flat (check), and where unflat wrote them. */
  used = 0;
  readonly guards: number[] = [];
  /**
   * Registers whose local (R0 + r) holds what memory holds (a write-through cache: memory
   * always has the register, so a handler, a fault or an exit needs no write-back). A read
   * of a valid register is its local; any other read loads and keeps it; a 32-bit store
   * writes both. Anything else writing a register (a handler, the push and pop imports, an
   * 8- or 16-bit store) clears its bit. A structure's end keeps the bits valid at its start
   * and not cleared inside it (any path reaching the end then has local = memory); a loop's
   * head assumes none (its back edges come from anywhere in it).
   */
  valid = 0;
  /** Per open structure: the valid bits at its start and the bits cleared inside it. */
  private readonly starts: number[] = [];
  private readonly cleared: number[] = [];

  constructor(
    readonly dc: DecodeCache,
    readonly S: number,
    readonly T: number,
    readonly sites: Site[],
    /** IO_FLAT as the block is compiled: the segments whose checks it may leave out. */
    readonly flat = 0,
  ) {}

  // --- state words
  ld(addr: number): this {
    const r = this.regAt(addr);
    if (r < 0) this.c.i32(0).mem(Op.load, addr);
    else if ((this.valid & (1 << r)) !== 0) this.c.get(R0 + r);
    else {
      this.c
        .i32(0)
        .mem(Op.load, addr)
        .tee(R0 + r);
      this.valid |= 1 << r;
    }
    return this;
  }
  /** The register a 32-bit word at addr is (-1: not a register's word). */
  private regAt(addr: number): number {
    const d = addr - this.S;
    return d >= 0 && d < 32 && (d & 3) === 0 ? d >> 2 : -1;
  }
  /** Registers (bits) written other than through the cache. */
  clobber(bits: number): void {
    this.valid &= ~bits;
    if (this.cleared.length > 0) this.cleared[this.cleared.length - 1] |= bits;
  }
  io(w: number): number {
    return this.S + ST_IO + 4 * w;
  }
  reg(r: number): number {
    return this.S + 4 * r;
  }
  /** Stores what emit leaves at addr. */
  put(addr: number, emit: () => void, op: number = Op.store): void {
    this.c.i32(0);
    emit();
    const d = addr - this.S;
    if (d < 0 || d >= 32) this.c.mem(op, addr);
    else if (op === Op.store && (d & 3) === 0) {
      this.c.tee(R0 + (d >> 2)).mem(op, addr);
      this.valid |= 1 << (d >> 2);
    } else {
      this.c.mem(op, addr);
      this.clobber(1 << (d >> 2));
    }
  }
  open(kind: number, type = VOID): void {
    this.c.op(kind, type);
    this.depth++;
    this.starts.push(this.valid);
    this.cleared.push(0);
    if (kind === Op.loop) this.valid = 0;
  }
  else(): void {
    this.c.op(Op.else);
    this.valid = this.starts[this.starts.length - 1];
  }
  close(): void {
    this.c.op(Op.end);
    this.depth--;
    const cleared = this.cleared.pop() as number;
    this.valid = (this.starts.pop() as number) & ~cleared;
    if (this.cleared.length > 0) this.cleared[this.cleared.length - 1] |= cleared;
  }

  // --- lazy flags
  flushCode(): void {
    if (!this.dirty) return;
    const c = this.c;
    this.put(this.io(IO_LZOP), () => c.i32(this.op));
    if (this.op !== L_RES) {
      this.put(this.io(IO_LZA), () => c.get(FA));
      this.put(this.io(IO_LZB), () => c.get(FB));
    }
    this.put(this.io(IO_LZRES), () => c.get(FX));
    this.put(this.io(IO_LZSIZE), () => c.i32(this.size));
  }
  flush(): void {
    this.flushCode();
    this.dirty = false;
  }
  record(op: number, size: number): void {
    this.op = op;
    this.size = size;
    this.dirty = true;
  }
  /** The io words are the record again (after a handler, or for a call that reads them). */
  forget(): void {
    this.flush();
    this.op = 0;
  }

  /**
   * Calls import fn with its arguments on the stack, IO_DONE stored first: an import is the
   * only way from a block to JS, and a handler's retired count and a fault's unwinding read it.
   */
  callJs(fn: number): Code {
    return this.c.i32(0).get(DONE).mem(Op.store, this.io(IO_DONE)).call(fn);
  }
  /**
   * After a memory import's call on a slow path that goes on: the values the block keeps in
   * locals are read again from where the call left them (the registers cached, DONE, the
   * flag record, all written through or stored before the call), so that none is live across
   * the call. V8's register allocator spills a value live across any call (every register is
   * caller-saved) at its definition, on the fast path too (the eleventh round). The flag
   * record only when the call's slow path wrote it to the io words first (`flushed`).
   */
  reload(flushed = true): void {
    const c = this.c;
    for (let r = 0; r < 8; r++)
      if ((this.valid & (1 << r)) !== 0)
        c.i32(0)
          .mem(Op.load, this.reg(r))
          .set(R0 + r);
    c.i32(0).mem(Op.load, this.io(IO_DONE)).set(DONE);
    if (flushed && this.op !== 0) {
      if (this.op !== L_RES) {
        c.i32(0).mem(Op.load, this.io(IO_LZA)).set(FA);
        c.i32(0).mem(Op.load, this.io(IO_LZB)).set(FB);
      }
      c.i32(0).mem(Op.load, this.io(IO_LZRES)).set(FX);
    }
  }

  // --- exits and faults
  /**
   * Leaves the block: `count` more instructions retired, EIP from the EIP local. (A write to
   * a code frame, HIT, also moved the fetch window: the import set IO_STOP for a chain.)
   */
  exit(count: number): void {
    this.flushCode();
    this.c.get(DONE).i32(count).op(Op.add).get(EIP).op(Op.return);
  }
  eipAt(off: number): void {
    this.c.get(E0).i32(off).op(Op.add).set(EIP);
  }
  fault(vector: number, error: number): void {
    this.flushCode();
    this.c.i32(this.k).i32(vector).i32(error);
    this.callJs(F.fault).op(Op.drop);
  }
  /** #GP(0) when the EIP local is beyond the CS limit (as jrel32 checks). */
  csCheck(): void {
    if ((this.flat & (1 << CS)) !== 0) {
      // CS flat: every EIP is within its limit (while the guards find it flat).
      this.used |= 1 << CS;
      return;
    }
    this.c.get(EIP).i32(INT_MIN).op(Op.xor);
    this.ld(this.S + ST_SEGCHK + (CS * 32 + 3) * 4).c.op(Op.gtS);
    this.open(Op.if);
    this.fault(GP, 0);
    this.close();
  }

  /**
   * Leaves a non-zero value when a segment this block took as flat (used, written in at the
   * end: blockBody) is not flat now (Cpu.syncSegChk keeps IO_FLAT).
   */
  unflat(): void {
    const c = this.c;
    c.b.push(Op.const);
    this.guards.push(c.b.length);
    c.b.push(0x80, 0x80, 0x80, 0x80, 0x00);
    this.ld(this.io(IO_FLAT)).c.i32(-1).op(Op.xor, Op.and);
  }

  // --- memory
  /**
   * After a memory import: a #PF it took (recorded, not thrown: IO_FAULT) returns -1, and the
   * wrapper or chain unwinds as for a thrown fault (the flag record is in the io words: every
   * slow path writes it before its call).
   */
  held(): void {
    this.ld(this.io(IO_FAULT));
    this.open(Op.if);
    this.c.i32(-1).get(E0).op(Op.return);
    this.close();
  }
  /**
   * Branches to the enclosing label (depth 0: the slow path) unless the fast path applies,
   * with LIN, E, P set when it does: the segment allows the access, the TLB entry grants it,
   * it stays in its page (and, for a write, the frame holds no decoded code). The offset is
   * in O. Each test is its own br_if, which TurboFan makes a compare and a jump; one `if` on
   * the tests and-ed together cost a setcc, a zero-extension and an and per test.
   */
  check(size: number, seg: number, write: boolean): void {
    const c = this.c;
    const chk = this.S + ST_SEGCHK + seg * 128;
    const r = (seg * 32 + (write ? SEG_WRU : SEG_RDU) + (size >> 1) * 2) * 4;
    const bit = (write ? 0x100 : 1) << seg;
    if ((this.flat & bit) !== 0) {
      // Flat: every offset passes and the linear address is the offset. Its wrap past 2^32
      // is an access crossing a page end, which the slow path checks. The block's guards
      // (unflat) see that the segment is still flat.
      this.used |= bit;
      c.get(O).tee(LIN);
    } else if ((this.flat & (bit << 16)) !== 0) {
      // Zero-based: the linear address is the offset; only the upper bound is checked.
      this.used |= bit << 16;
      c.get(O);
      this.ld(this.S + ST_SEGCHK + r + 4)
        .c.op(Op.gtU)
        .br(Op.brIf, 0)
        .get(O)
        .tee(LIN);
    } else {
      // The offset against the segment's unbiased bounds, unsigned (Cpu.syncSegChk).
      c.get(O);
      this.ld(this.S + ST_SEGCHK + r)
        .c.op(Op.ltU)
        .br(Op.brIf, 0)
        .get(O);
      this.ld(this.S + ST_SEGCHK + r + 4)
        .c.op(Op.gtU)
        .br(Op.brIf, 0);
      this.ld(chk).c.get(O).op(Op.add).tee(LIN);
    }
    c.i32(12).op(Op.shrU).i32(2).op(Op.shl).mem(Op.load, this.T).tee(E);
    this.ld(this.io(write ? IO_WRMASK : IO_RDMASK))
      .c.op(Op.and, Op.eqz)
      .br(Op.brIf, 0);
    if (size > 1)
      c.get(LIN)
        .i32(0xfff)
        .op(Op.and)
        .i32(0x1000 - size)
        .op(Op.gtU)
        .br(Op.brIf, 0);
    if (write)
      c.get(E)
        .i32(12)
        .op(Op.shrU)
        .mem(Op.load8u, this.S + ST_CODEPAGE)
        .br(Op.brIf, 0);
    c.get(E).i32(~0xfff).op(Op.and).get(LIN).i32(0xfff).op(Op.and, Op.or).set(P);
  }
  /**
   * The fast path (check passed) or the slow one, leaving `type` (I32 or VOID) on the
   * stack: an outer block the fast path leaves by br, and an inner one check's tests leave.
   */
  access(size: number, seg: number, write: boolean, type: number, fast: () => void, slow: () => void): void {
    this.open(Op.block, type);
    this.open(Op.block);
    this.check(size, seg, write);
    fast();
    this.c.br(Op.br, 1);
    this.close();
    slow();
    this.close();
  }
  /** Reads size bytes at seg:(addr) onto the stack. */
  read(size: number, seg: number, addr: () => void): void {
    const c = this.c;
    addr();
    c.set(O);
    this.access(
      size,
      seg,
      false,
      I32,
      () => c.get(P).mem(size === 1 ? Op.load8u : size === 2 ? Op.load16u : Op.load, 0),
      () => {
        this.flushCode();
        c.i32(this.k).i32(seg).get(O).get(DONE);
        c.call(thunk(size === 1 ? "rd8" : size === 2 ? "rd16" : "rd32"));
        this.held();
        this.reload();
      },
    );
  }
  /** Writes V (8, 16 or 32 bits) at seg:(addr); a write through JS sets HIT to codeHit. */
  write(size: number, seg: number, addr: () => void): void {
    const c = this.c;
    addr();
    c.set(O);
    this.access(
      size,
      seg,
      true,
      VOID,
      () =>
        c
          .get(P)
          .get(V)
          .mem(size === 1 ? Op.store8 : size === 2 ? Op.store16 : Op.store, 0),
      () => {
        this.flushCode();
        c.i32(this.k).i32(seg).get(O).get(V).get(DONE);
        c.call(thunk(size === 1 ? "wr8" : size === 2 ? "wr16" : "wr32")).set(HIT);
        this.held();
        this.reload();
      },
    );
  }
  /** The read of a read-modify-write (write permission checked): value on the stack, RMW says which path. */
  rmwRead(size: number, seg: number, addr: () => void): void {
    const c = this.c;
    addr();
    c.set(O);
    this.access(
      size,
      seg,
      true,
      I32,
      () =>
        c
          .i32(1)
          .set(RMW)
          .get(P)
          .mem(size === 1 ? Op.load8u : size === 2 ? Op.load16u : Op.load, 0),
      () => {
        c.i32(0).set(RMW);
        this.flushCode();
        c.i32(this.k).i32(seg).get(O).get(DONE);
        c.call(thunk(size === 1 ? "rmwRd8" : size === 2 ? "rmwRd16" : "rmwRd32"));
        this.held();
        this.reload();
      },
    );
  }
  /** Commits X to where rmwRead read. */
  rmwWrite(size: number): void {
    const c = this.c;
    c.get(RMW);
    this.open(Op.if);
    c.get(P)
      .get(X)
      .mem(size === 1 ? Op.store8 : size === 2 ? Op.store16 : Op.store, 0);
    this.else();
    c.i32(this.k).get(X);
    this.callJs(size === 1 ? F.rmwWr8 : size === 2 ? F.rmwWr16 : F.rmwWr32).set(HIT);
    this.reload(false);
    this.close();
  }
  /** Pushes V. */
  push(): void {
    const c = this.c;
    c.get(SS32);
    this.open(Op.if);
    this.write(4, SS, () => this.ld(this.reg(ESP)).c.i32(4).op(Op.sub));
    this.put(this.reg(ESP), () => c.get(O));
    this.else();
    this.flushCode();
    c.i32(this.k).get(V);
    this.callJs(F.push).set(HIT);
    this.clobber(1 << ESP);
    this.held();
    this.reload();
    this.close();
  }
  /** Pops into V. */
  pop(): void {
    const c = this.c;
    c.get(SS32);
    this.open(Op.if);
    this.read(4, SS, () => this.ld(this.reg(ESP)));
    c.set(V);
    this.put(this.reg(ESP), () => c.get(O).i32(4).op(Op.add));
    this.else();
    this.flushCode();
    c.i32(this.k);
    this.callJs(F.pop).set(V);
    this.clobber(1 << ESP);
    this.held();
    this.reload();
    this.close();
  }

  /** The effective address of slot s, or null for the rare forms (the handler's). */
  ea(s: number): (() => void) | null {
    const dc = this.dc;
    const m = dc.eam[s];
    const d = dc.disp[s];
    const c = this.c;
    switch (m & 3) {
      case EA_DISP:
        return () => c.i32(d);
      case EA_BASE:
        return () =>
          this.ld(this.reg((m >> 2) & 7))
            .c.i32(d)
            .op(Op.add);
      case EA_SIB:
        return () => {
          this.ld(this.reg((m >> 2) & 7));
          this.ld(this.reg((m >> 5) & 7))
            .c.i32((m >> 8) & 3)
            .op(Op.shl, Op.add)
            .i32(d)
            .op(Op.add);
        };
      default: {
        if ((dc.pfx[s] & P_A16) !== 0 || dc.base[s] >= 0 || dc.index[s] < 0) return null;
        const i = dc.index[s];
        const sc = dc.scale[s];
        return () => this.ld(this.reg(i)).c.i32(sc).op(Op.shl).i32(d).op(Op.add);
      }
    }
  }

  // --- flags
  /** X = A op B with its record (adc/sbb: aluCarry). */
  alu(op: number, size: number): boolean {
    if (op === ADC || op === SBB) {
      this.aluCarry(op === ADC, size);
      return true;
    }
    const o =
      op === ADD
        ? Op.add
        : op === OR
          ? Op.or
          : op === AND
            ? Op.and
            : op === XOR
              ? Op.xor
              : op === SUB || op === CMP
                ? Op.sub
                : 0;
    if (o === 0) return false;
    const c = this.c;
    c.get(A).get(B).op(o);
    if (size < 32 && (o === Op.add || o === Op.sub)) c.i32(size === 8 ? 0xff : 0xffff).op(Op.and);
    c.set(X).get(A).set(FA).get(B).set(FB).get(X).set(FX);
    this.record(op === ADD ? L_ADD : op === SUB || op === CMP ? L_SUB : L_LOGIC, size);
    return true;
  }
  /**
   * CF (0 or 1) onto the stack, as Cpu.cf() makes it from the record: from the locals when
   * the kind is known here, else from the io words (the kinds with a carry; any other: the
   * flags word's CF).
   */
  carryIn(): void {
    const c = this.c;
    switch (this.op) {
      case L_ADD:
        c.get(FX).get(FA).op(Op.ltU);
        return;
      case L_ADC:
        c.get(FX).get(FA).op(Op.leU);
        return;
      case L_SUB:
        c.get(FA).get(FB).op(Op.ltU);
        return;
      case L_SBB:
        c.get(FA).get(FB).op(Op.leU);
        return;
      case L_LOGIC:
        c.i32(0);
        return;
      case L_INC:
      case L_DEC:
      case L_RES:
        this.ld(this.io(IO_FLAGS)).c.i32(CF).op(Op.and);
        return;
    }
    this.ld(this.io(IO_LZOP)).c.set(T);
    const res = () => this.ld(this.io(IO_LZRES));
    const a = () => this.ld(this.io(IO_LZA));
    const b = () => this.ld(this.io(IO_LZB));
    // (kind = K) & (its carry condition), or-ed over the four kinds with a carry (logic: 0)...
    c.i32(0);
    const kinds: [number, () => void, () => void, number][] = [
      [L_ADD, res, a, Op.ltU],
      [L_ADC, res, a, Op.leU],
      [L_SUB, a, b, Op.ltU],
      [L_SBB, a, b, Op.leU],
    ];
    for (const [kind, l, r, cmp] of kinds) {
      l();
      r();
      c.op(cmp).get(T).i32(kind).op(Op.eq, Op.and, Op.or);
    }
    // ...and the flags word's CF for the kinds that keep it there (none, inc, dec, res).
    this.ld(this.io(IO_FLAGS)).c.i32(CF).op(Op.and);
    c.get(T)
      .i32(L_ADD)
      .op(Op.sub)
      .i32(L_LOGIC - L_ADD + 1)
      .op(Op.ltU, Op.select);
  }
  /**
   * adc (or sbb): X = A + B + CF (A - B - CF), masked to size, as alu8/16/32; the record's
   * kind is L_ADC (L_SBB) when CF was set, else L_ADD (L_SUB), so it is written to the io
   * words as the handler leaves it, and unknown here after.
   */
  aluCarry(adc: boolean, size: number): void {
    const c = this.c;
    this.carryIn();
    c.set(T);
    c.get(A)
      .get(B)
      .op(adc ? Op.add : Op.sub)
      .get(T)
      .op(adc ? Op.add : Op.sub);
    if (size < 32) c.i32(size === 8 ? 0xff : 0xffff).op(Op.and);
    c.set(X);
    this.put(this.io(IO_LZOP), () =>
      c
        .i32(adc ? L_ADD : L_SUB)
        .get(T)
        .op(Op.add),
    );
    this.put(this.io(IO_LZA), () => c.get(A));
    this.put(this.io(IO_LZB), () => c.get(B));
    this.put(this.io(IO_LZRES), () => c.get(X));
    this.put(this.io(IO_LZSIZE), () => c.i32(size));
    this.op = 0;
    this.dirty = false;
  }
  /** test: X = A & B, recorded with zero operands as the handlers do. */
  test(size: number): void {
    this.c.get(A).get(B).op(Op.and).set(X).i32(0).set(FA).i32(0).set(FB).get(X).set(FX);
    this.record(L_LOGIC, size);
  }
  /** CF, OF and AF replaced (cf, of: 0/1 emitters), ZF/SF/PF from X (of `size` bits). */
  resFlags(cf: () => void, of: () => void, size = 32): void {
    const c = this.c;
    this.put(this.io(IO_FLAGS), () => {
      this.ld(this.io(IO_FLAGS))
        .c.i32(~(CF | OF | AF))
        .op(Op.and);
      cf();
      c.op(Op.or);
      of();
      c.i32(11).op(Op.shl, Op.or);
    });
    c.get(X).set(FX);
    this.record(L_RES, size);
  }
  /**
   * X = A shifted by n (1-31) of `size` bits (8: A is the byte, X masked), shl/sal, shr or sar,
   * with its flags as shift8 and shift32 leave them: CF the last bit out, OF (count-1 formula)
   * from the top bits (0 for sar).
   */
  shiftBy(sub: number, n: number, size: number): void {
    const c = this.c;
    const top = size - 1;
    const mask = () => {
      if (size < 32) c.i32(size === 8 ? 0xff : 0xffff).op(Op.and);
    };
    if (sub === SHR) {
      c.get(A)
        .i32(n)
        .op(Op.shrU)
        .set(X)
        .get(A)
        .i32(n - 1)
        .op(Op.shrU)
        .set(T);
      this.resFlags(
        () => c.get(T).i32(1).op(Op.and),
        () => {
          c.get(T).get(X).op(Op.xor).i32(top).op(Op.shrU);
          if (size < 32) c.i32(1).op(Op.and);
        },
        size,
      );
    } else if (sub === SAR) {
      // T: A sign-extended from its size.
      c.get(A);
      if (size < 32)
        c.i32(32 - size)
          .op(Op.shl)
          .i32(32 - size)
          .op(Op.shrS);
      c.tee(T).i32(n).op(Op.shrS);
      mask();
      c.set(X);
      this.resFlags(
        () =>
          c
            .get(T)
            .i32(n - 1)
            .op(Op.shrS)
            .i32(1)
            .op(Op.and),
        () => c.i32(0),
        size,
      );
    } else {
      c.get(A).i32(n).op(Op.shl);
      mask();
      c.set(X)
        .get(A)
        .i32(n - 1)
        .op(Op.shl)
        .i32(top)
        .op(Op.shrU)
        .i32(1)
        .op(Op.and)
        .set(T);
      this.resFlags(
        () => c.get(T),
        () => c.get(X).i32(top).op(Op.shrU).get(T).op(Op.xor),
        size,
      );
    }
  }
  /**
   * After a rotation of A into X (ROL or ROR), the flags as the handler leaves them
   * (rotFlags): every flag of the record before it made plain (getFlags: PF, AF, ZF, SF from
   * the record, in fa/fb/fx when known here, else in the io words), CF and OF of the
   * rotation; the record is then the flags word alone (L_NONE).
   */
  rotFlags(rol: boolean): void {
    const c = this.c;
    const op = this.op;
    /** PF, ZF and SF of the result in FX, of `size` (or-ed into what is on the stack). */
    const pzs = (size: () => void) => {
      // PF: an even count of ones in the result's low byte.
      c.get(FX).i32(0xff).op(Op.and, Op.popcnt).i32(1).op(Op.and).i32(1).op(Op.xor).i32(2).op(Op.shl, Op.or);
      c.get(FX).op(Op.eqz).i32(6).op(Op.shl, Op.or);
      c.get(FX);
      size();
      c.i32(1).op(Op.sub, Op.shrU).i32(1).op(Op.and).i32(7).op(Op.shl, Op.or);
    };
    if (op === 0) this.ld(this.io(IO_LZOP)).c.set(T);
    this.put(this.io(IO_FLAGS), () => {
      if (op === 0) {
        // The record in the io words, of any kind (L_NONE: the flags word is all of it).
        c.get(T).op(Op.eqz);
        this.open(Op.if, I32);
        this.ld(this.io(IO_FLAGS))
          .c.i32(~(CF | OF))
          .op(Op.and);
        this.else();
        this.ld(this.io(IO_LZRES)).c.set(FX);
        // AF: kept for L_RES, 0 for logic, else from the operands.
        this.ld(this.io(IO_FLAGS)).c.i32(AF).op(Op.and);
        this.ld(this.io(IO_LZA)).ld(this.io(IO_LZB)).c.op(Op.xor).get(FX).op(Op.xor).i32(AF).op(Op.and);
        c.get(T).i32(L_RES).op(Op.eq, Op.select);
        c.i32(0).get(T).i32(L_LOGIC).op(Op.ne, Op.select);
        this.ld(this.io(IO_FLAGS))
          .c.i32(~(CF | PF | AF | ZF | SF | OF))
          .op(Op.and, Op.or);
        pzs(() => this.ld(this.io(IO_LZSIZE)));
        this.close();
      } else {
        this.ld(this.io(IO_FLAGS))
          .c.i32(~(CF | PF | AF | ZF | SF | OF) | (op === L_RES ? AF : 0))
          .op(Op.and);
        if (op === L_ADD || op === L_SUB || op === L_INC || op === L_DEC)
          c.get(FA).get(FB).op(Op.xor).get(FX).op(Op.xor).i32(AF).op(Op.and, Op.or);
        pzs(() => c.i32(this.size));
      }
      if (rol) {
        c.get(X).i32(1).op(Op.and, Op.or);
        c.get(X).i32(31).op(Op.shrU).get(X).op(Op.xor);
      } else {
        c.get(X).i32(31).op(Op.shrU, Op.or);
        c.get(X).i32(31).op(Op.shrU).get(X).i32(30).op(Op.shrU, Op.xor);
      }
      c.i32(1).op(Op.and).i32(11).op(Op.shl, Op.or);
    });
    this.put(this.io(IO_LZOP), () => c.i32(L_NONE));
    this.op = 0;
    this.dirty = false;
  }
  /** cpu.keepCF() before an inc/dec: CF of the record into the flags word (carryIn). */
  keepCF(): void {
    // These keep CF in the flags word already.
    if (this.op === L_INC || this.op === L_DEC || this.op === L_RES) return;
    this.put(this.io(IO_FLAGS), () => {
      this.ld(this.io(IO_FLAGS)).c.i32(~CF).op(Op.and);
      this.carryIn();
      this.c.op(Op.or);
    });
  }
  /** inc (or dec) of A into X with its record (X masked to size). */
  incDec(inc: boolean, size = 32): void {
    this.keepCF();
    this.c
      .get(A)
      .i32(1)
      .op(inc ? Op.add : Op.sub);
    if (size < 32) this.c.i32(size === 8 ? 0xff : 0xffff).op(Op.and);
    this.c.set(X).get(A).set(FA).i32(1).set(FB).get(X).set(FX);
    this.record(inc ? L_INC : L_DEC, size);
  }
  /** Condition cc (0-15) as an i32 (non-zero: holds); false when it took the import. */
  cond(cc: number): boolean {
    const c = this.c;
    const neg = (cc & 1) !== 0;
    const sh = 32 - this.size;
    const signed = (l: number) => {
      c.get(l);
      if (sh !== 0) c.i32(sh).op(Op.shl);
    };
    const cmp = (l: () => void, r: () => void, yes: number, no: number): boolean => {
      l();
      r();
      c.op(neg ? no : yes);
      return true;
    };
    const zero = (yes: number, no: number) =>
      cmp(
        () => signed(FX),
        () => c.i32(0),
        yes,
        no,
      );
    const t = cc >> 1;
    if (this.op === L_SUB) {
      switch (t) {
        case 1:
          return cmp(
            () => c.get(FA),
            () => c.get(FB),
            Op.ltU,
            Op.geU,
          );
        case 2:
          return zero(Op.eq, Op.ne);
        case 3:
          return cmp(
            () => c.get(FA),
            () => c.get(FB),
            Op.leU,
            Op.gtU,
          );
        case 4:
          return zero(Op.ltS, Op.geS);
        case 6:
          return cmp(
            () => signed(FA),
            () => signed(FB),
            Op.ltS,
            Op.geS,
          );
        case 7:
          return cmp(
            () => signed(FA),
            () => signed(FB),
            Op.leS,
            Op.gtS,
          );
      }
    } else if (this.op === L_LOGIC) {
      switch (t) {
        case 1:
          c.i32(neg ? 1 : 0);
          return true;
        case 2:
        case 3:
          return zero(Op.eq, Op.ne);
        case 4:
        case 6:
          return zero(Op.ltS, Op.geS);
        case 7:
          return zero(Op.leS, Op.gtS);
      }
    }
    if (this.op !== 0 && (t === 2 || t === 4))
      return zero(t === 2 ? Op.eq : Op.ltS, t === 2 ? Op.ne : Op.geS);
    this.forget();
    c.i32(cc).call(F.cond);
    return false;
  }

  // --- the exit stubs' forms
  /**
   * Inline code for the instructions a guest's fault and event-upcall stubs run around the
   * exit (Exits in ARCHITECTURE: each was a call out of wasm on every #PF bounce and upcall),
   * as their handlers do them, or false (nothing emitted): pusha, popa, push of a segment
   * register, cld, std, call r/m32, mov moffs from AL or EAX, mov r/m8 with an immediate,
   * not r/m32, xchg r/m32 with a register, bsf Gd, Ed. 32-bit operands only (o16 never
   * comes here).
   */
  stubForm(s: number, next: number): boolean {
    const dc = this.dc;
    const c = this.c;
    const id = dc.op[s];
    const opc = (id >> 3) & 0x1ff;
    const sub = id & 7;
    const m = dc.modrm[s];
    const isReg = m >= 0xc0;
    const rm = m & 7;
    const rg = (m >> 3) & 7;
    const sg = (dc.eam[s] >> 10) & 7;
    const reg = (r: number) => this.ld(this.reg(r));
    const setReg = (r: number, l: number) => this.put(this.reg(r), () => c.get(l));
    const push = (value: () => void) => {
      value();
      c.set(V);
      this.push();
    };
    switch (opc) {
      case 0x60:
        // pusha, as pusha32: ESP as it was before the first push, each push a fault point.
        reg(ESP).c.set(A);
        for (const r of [0, 1, 2, 3, -1, 5, 6, 7]) push(r < 0 ? () => c.get(A) : () => reg(r));
        return true;
      case 0x61: {
        // popa, as popa32: seven dwords read (ESP's skipped) before any register is written,
        // the offsets and ESP's update within 16 bits on a 16-bit stack.
        reg(ESP).c.set(A);
        c.i32(-1).i32(0xffff).get(SS32).op(Op.select).set(B);
        const at = (i: number) => () =>
          c
            .get(A)
            .i32(i * 4)
            .op(Op.add)
            .get(B)
            .op(Op.and);
        for (const i of [0, 1, 2, 4, 5, 6, 7]) this.read(4, SS, at(i));
        // The stack holds the values read, EAX's (i = 7) on top.
        for (const r of [0, 1, 2, 3, 5, 6, 7]) {
          c.set(V);
          setReg(r, V);
        }
        this.put(this.reg(ESP), () => {
          c.get(A).get(B).i32(-1).op(Op.xor, Op.and);
          at(8)();
          c.op(Op.or);
        });
        return true;
      }
      case 0x06:
      case 0x0e:
      case 0x16:
      case 0x1e:
      case 0x1a0:
      case 0x1a8: {
        // push of a segment register: its selector (word 1 of its segChk words), as pushSeg32.
        const seg = opc >= 0x1a0 ? (opc >> 3) & 7 : opc >> 3;
        push(() => this.ld(this.S + ST_SEGCHK + (seg * 32 + 1) * 4));
        return true;
      }
      case 0x07:
      case 0x1f:
      case 0x1a1:
      case 0x1a9: {
        // pop es/ds/fs/gs (32-bit stack), as popSeg32 when the load changes nothing.
        const seg = opc === 0x07 ? ES : opc === 0x1f ? DS : opc === 0x1a1 ? FS : GS;
        this.orHandler(s, next, () => {
          c.get(SS32).op(Op.eqz).br(Op.brIf, 0);
          this.read(4, SS, () => reg(ESP));
          c.i32(0xffff).op(Op.and).set(A);
          this.segFast(seg, false);
          this.put(this.reg(ESP), () => c.get(O).i32(4).op(Op.add));
        });
        return true;
      }
      case 0x8e:
        // mov es/ds/fs/gs, r16, as movSwEw when the load changes nothing (the memory form,
        // and CS or SS, are the handler's).
        if (!isReg || rg === CS || rg === SS || rg > GS) return false;
        this.orHandler(s, next, () => {
          reg(rm).c.i32(0xffff).op(Op.and).set(A);
          this.segFast(rg, false);
        });
        return true;
      case 0xcf:
        this.orHandler(s, next, () => this.iretFast());
        return true;
      case 0x1b3: {
        // btr Ed, Gd, as btxEdGd (the bit offset signed, reaching dwords beyond a memory
        // operand) after a record whose CF, OF and AF are the flags word's (none, L_RES) or 0
        // (logic): CF is the bit, and a logic record becomes L_RES with the same result, so
        // ZF, SF, PF, OF and AF read as before (as setCF leaves them). After an arithmetic
        // record, known here or found in the io words, the handler's.
        const known = this.op === L_LOGIC || this.op === L_RES;
        if (this.op !== 0 && !known) return false;
        const ma = isReg ? null : this.ea(s);
        if (!isReg && ma === null) return false;
        const btr = (logic: () => void) => {
          reg(rg).c.set(B);
          if (isReg) reg(rm);
          else
            this.rmwRead(4, sg, () => {
              (ma as () => void)();
              c.get(B).i32(5).op(Op.shrS).i32(2).op(Op.shl, Op.add);
            });
          c.tee(A).i32(1).get(B).op(Op.shl).i32(-1).op(Op.xor, Op.and).set(X);
          if (isReg) setReg(rm, X);
          else this.rmwWrite(4);
          this.put(this.io(IO_FLAGS), () => {
            this.ld(this.io(IO_FLAGS))
              .c.i32(~(CF | OF | AF))
              .i32(~CF);
            logic();
            c.op(Op.select, Op.and).get(A).get(B).op(Op.shrU).i32(1).op(Op.and, Op.or);
          });
        };
        if (known) {
          btr(() => c.i32(this.op === L_LOGIC ? 1 : 0));
          if (this.op === L_LOGIC) this.record(L_RES, this.size);
          return true;
        }
        this.orHandler(s, next, () => {
          this.ld(this.io(IO_LZOP)).c.tee(T).i32(L_NONE).op(Op.ne);
          c.get(T).i32(L_RES).op(Op.ne, Op.and).get(T).i32(L_LOGIC).op(Op.ne, Op.and).br(Op.brIf, 0);
          btr(() => c.get(T).i32(L_LOGIC).op(Op.eq));
          c.get(T).i32(L_LOGIC).op(Op.eq);
          this.open(Op.if);
          this.put(this.io(IO_LZOP), () => c.i32(L_RES));
          this.close();
        });
        return true;
      }
      case 0xfc:
      case 0xfd:
        this.put(this.io(IO_FLAGS), () => {
          this.ld(this.io(IO_FLAGS));
          if (opc === 0xfc) c.i32(~DF).op(Op.and);
          else c.i32(DF).op(Op.or);
        });
        return true;
      case 0xff:
        if (sub !== 2) return false;
        // call r/m32 (ends the block), as callRm32: the target read, the CS limit, the push.
        if (isReg) reg(rm);
        else {
          const ma = this.ea(s);
          if (ma === null) return false;
          this.read(4, sg, ma);
        }
        c.set(EIP);
        this.csCheck();
        push(() => c.get(E0).i32(next).op(Op.add));
        return true;
      case 0xa2:
      case 0xa3: {
        // mov moffs8, al and mov moffs32, eax (the offset is the displacement).
        const at = this.ea(s);
        if (at === null) return false;
        if (opc === 0xa3) reg(0);
        else c.i32(0).mem(Op.load8u, this.S + r8(0));
        c.set(V);
        this.write(opc === 0xa3 ? 4 : 1, sg, at);
        return true;
      }
      case 0xc6: {
        // mov r/m8, imm8 (reg field 0; any other is the handler's #UD), as movRm8Imm.
        if (rg !== 0) return false;
        c.i32(dc.imm[s] & 0xff).set(V);
        if (isReg) {
          this.put(this.S + r8(rm), () => c.get(V), Op.store8);
          return true;
        }
        const ma = this.ea(s);
        if (ma === null) return false;
        this.write(1, sg, ma);
        return true;
      }
      case 0x1bc: {
        // bsf Gd, Ed, as bsfGdEd: the record a logic op on the source leaves (ZF: source 0),
        // the destination the lowest set bit's index (popcnt of the bits below it), unchanged
        // for a source of 0.
        if (isReg) reg(rm);
        else {
          const ma = this.ea(s);
          if (ma === null) return false;
          this.read(4, sg, ma);
        }
        c.set(A).i32(0).set(FA).i32(0).set(FB).get(A).set(FX);
        this.record(L_LOGIC, 32);
        c.get(A);
        this.open(Op.if);
        this.put(this.reg(rg), () =>
          c.i32(0).get(A).op(Op.sub).get(A).op(Op.and).i32(1).op(Op.sub, Op.popcnt),
        );
        this.close();
        return true;
      }
      case 0xf7:
      case 0x87: {
        if (opc === 0xf7 && sub !== 2) return false;
        const ma = isReg ? null : this.ea(s);
        if (!isReg && ma === null) return false;
        // not r/m32 (notEd) or xchg r/m32, Gd (xchg32): the operand read with the write's
        // checks, then written; no flags.
        if (isReg) reg(rm);
        else this.rmwRead(4, sg, ma as () => void);
        c.set(A);
        if (opc === 0xf7) c.get(A).i32(-1).op(Op.xor).set(X);
        else reg(rg).c.set(X);
        if (isReg) setReg(rm, X);
        else this.rmwWrite(4);
        if (opc === 0x87) setReg(rg, A);
        return true;
      }
    }
    return false;
  }

  /**
   * An instruction whose inline fast path `fast` branches to depth 0 when it does not apply
   * (having changed nothing yet), where its handler runs as when it is not inline. The flag
   * record is in the io words on both paths.
   */
  orHandler(s: number, next: number, fast: () => void): void {
    this.forget();
    this.open(Op.block);
    this.open(Op.block);
    fast();
    this.c.br(Op.br, 1);
    this.close();
    this.handler(this.siteFn, s, next, this.siteControl);
    this.close();
  }
  /**
   * The load of selector A into seg (DS, ES, FS, GS; CS for iret's return at its own level:
   * `code`) when it changes nothing, else a branch to depth 0 (the handler, which does the
   * load with segments.ts's checks and faults). It changes nothing when A is the selector
   * loaded, in the GDT and inside its limit, its descriptor (both words in one page, the TLB
   * granting a supervisor read: a miss, or a walk's side effects, are the handler's) passes
   * the load's checks (loadSegAs; checkReturnCode for CS), has its accessed bit set, and
   * gives the cached base, limit and attributes (loadSegmentCache would return at once).
   * The descriptor's high word is left in B.
   */
  segFast(seg: number, code: boolean): void {
    const c = this.c;
    const w = (i: number) => this.S + ST_SEGCHK + (seg * 32 + i) * 4;
    const dpl = () => c.get(B).i32(13).op(Op.shrU).i32(3).op(Op.and);
    const rpl = () => c.get(A).i32(3).op(Op.and);
    const slowIf = () => c.br(Op.brIf, 0);
    c.get(A);
    this.ld(w(1)).c.op(Op.ne);
    slowIf();
    c.get(A).i32(0xfffc).op(Op.and, Op.eqz);
    slowIf();
    c.get(A).i32(4).op(Op.and);
    slowIf();
    c.get(A).i32(0xfff8).op(Op.and).i32(7).op(Op.add);
    this.ld(this.io(IO_GDTL)).c.op(Op.gtU);
    slowIf();
    this.ld(this.io(IO_GDTB)).c.get(A).i32(0xfff8).op(Op.and, Op.add).tee(LIN);
    c.i32(0xfff).op(Op.and).i32(0xff8).op(Op.gtU);
    slowIf();
    c.get(LIN).i32(12).op(Op.shrU).i32(2).op(Op.shl).mem(Op.load, this.T).tee(E);
    c.i32(TLB_SUP_READ).op(Op.and, Op.eqz);
    slowIf();
    c.get(E).i32(~0xfff).op(Op.and).get(LIN).i32(0xfff).op(Op.and, Op.or).tee(P);
    c.mem(Op.load, 4).tee(B).i32(D_ACCESSED).op(Op.and, Op.eqz);
    slowIf();
    if (code) {
      // Code, at RPL = CPL: DPL = RPL, or DPL <= RPL when conforming.
      rpl();
      this.ld(this.io(IO_CPL)).c.op(Op.ne);
      slowIf();
      c.get(B)
        .i32(D_S | D_CODE)
        .op(Op.and)
        .i32(D_S | D_CODE)
        .op(Op.ne);
      slowIf();
      dpl();
      rpl().op(Op.gtU);
      dpl();
      rpl().op(Op.ne).get(B).i32(D_CONFORMING).op(Op.and, Op.select);
      slowIf();
    } else {
      // Data or readable code; unless conforming code, DPL >= RPL and CPL.
      c.get(B).i32(D_S).op(Op.and, Op.eqz);
      slowIf();
      c.get(B)
        .i32(D_CODE | D_RW)
        .op(Op.and)
        .i32(D_CODE)
        .op(Op.eq);
      slowIf();
      c.get(B)
        .i32(D_CODE | D_CONFORMING)
        .op(Op.and)
        .i32(D_CODE | D_CONFORMING)
        .op(Op.ne);
      rpl();
      dpl().op(Op.gtU);
      this.ld(this.io(IO_CPL));
      dpl().op(Op.gtU, Op.or, Op.and);
      slowIf();
    }
    c.get(B).i32(D_P).op(Op.and, Op.eqz);
    slowIf();
    // The cache it would load: base, limit (G scaled), attributes.
    c.get(P).mem(Op.load, 0).tee(X).i32(16).op(Op.shrU);
    c.get(B).i32(0xff).op(Op.and).i32(16).op(Op.shl, Op.or);
    c.get(B).i32(0xff000000).op(Op.and, Op.or);
    this.ld(w(0)).c.op(Op.ne);
    slowIf();
    c.get(X).i32(0xffff).op(Op.and).get(B).i32(0xf0000).op(Op.and, Op.or).tee(E);
    c.i32(12).op(Op.shl).i32(0xfff).op(Op.or).get(E).get(B).i32(D_G).op(Op.and, Op.select);
    this.ld(w(SEG_LIMIT)).c.op(Op.ne);
    slowIf();
    c.get(B).i32(8).op(Op.shrU).i32(0xf0ff).op(Op.and);
    this.ld(w(SEG_ATTR)).c.op(Op.ne);
    slowIf();
  }
  /**
   * iret (32-bit, on a 32-bit stack) to the same privilege level and the same CS, as
   * segments.ts iret does it then: EIP, CS and EFLAGS read in its order (a #PF at the same
   * read), EIP within CS's limit, EFLAGS as iretFlags makes them. NT, a return to another
   * ring, VM, TF (which arms the debug state) and any change of CS are the handler's.
   */
  iretFast(): void {
    const c = this.c;
    const top = (i: number) => () => this.ld(this.reg(ESP)).c.i32(i).op(Op.add);
    c.get(SS32).op(Op.eqz);
    c.br(Op.brIf, 0);
    this.ld(this.io(IO_FLAGS)).c.i32(NT).op(Op.and);
    c.br(Op.brIf, 0);
    this.read(4, SS, top(0));
    c.set(V);
    this.read(4, SS, top(4));
    c.i32(0xffff).op(Op.and).set(A);
    this.read(4, SS, top(8));
    c.tee(RMW)
      .i32(VM | TF)
      .op(Op.and);
    c.br(Op.brIf, 0);
    this.segFast(CS, true);
    c.get(V);
    this.ld(this.S + ST_SEGCHK + (CS * 32 + SEG_LIMIT) * 4).c.op(Op.gtU);
    c.br(Op.brIf, 0);
    // The flags taken from the frame: IF when CPL <= IOPL, IOPL, VIF and VIP at CPL 0.
    c.i32(IRET_FLAGS).i32(IF).i32(0);
    this.ld(this.io(IO_CPL));
    this.ld(this.io(IO_FLAGS)).c.i32(12).op(Op.shrU).i32(3).op(Op.and, Op.leU, Op.select, Op.or);
    c.i32(IOPL | VIF | VIP).i32(0);
    this.ld(this.io(IO_CPL)).c.op(Op.eqz, Op.select, Op.or).set(E);
    this.put(this.io(IO_FLAGS), () => {
      this.ld(this.io(IO_FLAGS)).c.get(E).i32(-1).op(Op.xor, Op.and);
      c.get(RMW).get(E).op(Op.and, Op.or).i32(FLAGS_KEPT).op(Op.and).i32(EFLAGS_FIXED).op(Op.or);
    });
    this.put(this.io(IO_LZOP), () => c.i32(L_NONE));
    this.put(this.reg(ESP), () => c.get(O).i32(4).op(Op.add));
    c.get(V).set(EIP);
  }

  // --- instructions
  /** Inline code for slot s, or false (nothing emitted) for its handler. */
  inst(s: number, next: number, taken: () => void): boolean {
    const dc = this.dc;
    const c = this.c;
    const id = dc.op[s];
    const o16 = id >> 12 !== 0;
    const opc = (id >> 3) & 0x1ff;
    const sub = id & 7;
    const m = dc.modrm[s];
    const rm = m & 7;
    const rg = (m >> 3) & 7;
    const isReg = m >= 0xc0;
    const imm = dc.imm[s];
    const sg = (dc.eam[s] >> 10) & 7;
    const modrm =
      (opc < 0x40 && (opc & 7) < 4) ||
      [
        0x69, 0x6b, 0x80, 0x81, 0x83, 0x84, 0x85, 0x88, 0x89, 0x8a, 0x8b, 0x8d, 0xc1, 0xc7, 0xd1, 0xf6, 0xf7,
        0xff, 0x1af, 0x1b6, 0x1b7, 0x1be, 0x1bf, 0xd3, 0xc0, 0xd0,
      ].includes(opc) ||
      (opc & 0x1f0) === 0x140 ||
      (opc & 0x1f0) === 0x190;
    const mem = modrm && !isReg ? this.ea(s) : null;
    if (modrm && !isReg && mem === null) return false;
    const ma = mem as () => void;
    const r32 = (r: number) => () => this.ld(this.reg(r));
    const r8v = (r: number) => () => c.i32(0).mem(Op.load8u, this.S + r8(r));
    const r16 = (r: number) => () => c.i32(0).mem(Op.load16u, this.reg(r));
    const set32 = (r: number, l: number) => this.put(this.reg(r), () => c.get(l));
    const set8 = (r: number, l: number) => this.put(this.S + r8(r), () => c.get(l), Op.store8);
    const ALU = new Set([ADD, OR, ADC, SBB, AND, XOR, SUB, CMP]);
    if (o16) {
      if (opc === 0x90) return true; // 66 90: nop
      const set16 = (r: number, l: number) => this.put(this.reg(r), () => c.get(l), Op.store16);
      const rd16 = () => (isReg ? r16(rm)() : this.read(2, sg, ma));
      // mov Gw, Ew and mov Ew, Gw: a register's low half, as movR16Rm16, movRm16R16.
      if (opc === 0x8b || opc === 0x89) {
        if (opc === 0x89) r16(rg)();
        else rd16();
        c.set(V);
        if (opc === 0x8b) set16(rg, V);
        else if (isReg) set16(rm, V);
        else this.write(2, sg, ma);
        return true;
      }
      // add..xor and cmp Ew, Iw (register forms; cmp any), cmp Ew, Gw, as alu16 and cmp16.
      if ((opc === 0x81 || opc === 0x83) && ALU.has(sub) && (isReg || sub === CMP)) {
        rd16();
        c.set(A)
          .i32(imm & 0xffff)
          .set(B);
        this.alu(sub, 16);
        if (sub !== CMP) set16(rm, X);
        return true;
      }
      if (opc === 0x39) {
        rd16();
        c.set(A);
        r16(rg)();
        c.set(B);
        this.alu(CMP, 16);
        return true;
      }
      // inc/dec Ew, as incEw, decEw.
      if (opc === 0xff && sub <= 1) {
        if (isReg) r16(rm)();
        else this.rmwRead(2, sg, ma);
        c.set(A);
        this.incDec(sub === 0, 16);
        if (isReg) set16(rm, X);
        else this.rmwWrite(2);
        return true;
      }
      // mov Ew, Iw, as movRm16Imm (a reg field other than 0 is #UD: the handler's).
      if (opc === 0xc7 && rg === 0) {
        c.i32(imm & 0xffff).set(V);
        if (isReg) set16(rm, V);
        else this.write(2, sg, ma);
        return true;
      }
      return false;
    }
    if (this.stubForm(s, next)) return true;
    // ALU forms 00-3D: the operation in opcode bits 5-3.
    if (opc < 0x40 && (opc & 7) <= 5) {
      const op = (opc >> 3) & 7;
      if (!ALU.has(op)) return false;
      const form = opc & 7;
      const size = form & 1 ? 32 : 8;
      const rv = size === 32 ? r32 : r8v;
      const set = size === 32 ? set32 : set8;
      if (form === 4 || form === 5) {
        rv(0)();
        c.set(A)
          .i32(size === 32 ? imm : imm & 0xff)
          .set(B);
        this.alu(op, size);
        if (op !== CMP) set(0, X);
        return true;
      }
      if (form === 0 || form === 1) {
        // E, G
        if (isReg) {
          rv(rm)();
          c.set(A);
          rv(rg)();
          c.set(B);
          this.alu(op, size);
          if (op !== CMP) set(rm, X);
        } else if (op === CMP) {
          this.read(size / 8, sg, ma);
          c.set(A);
          rv(rg)();
          c.set(B);
          this.alu(op, size);
        } else {
          this.rmwRead(size / 8, sg, ma);
          c.set(A);
          rv(rg)();
          c.set(B);
          this.alu(op, size);
          this.rmwWrite(size / 8);
        }
        return true;
      }
      // G, E
      if (isReg) rv(rm)();
      else this.read(size / 8, sg, ma);
      c.set(B);
      rv(rg)();
      c.set(A);
      this.alu(op, size);
      if (op !== CMP) set(rg, X);
      return true;
    }
    const rmRead = (size: number) => {
      if (isReg) (size === 32 ? r32 : size === 8 ? r8v : r16)(rm)();
      else this.read(size / 8, sg, ma);
    };
    switch (opc) {
      case 0x80:
      case 0x81:
      case 0x83: {
        if (!ALU.has(sub)) return false;
        const size = opc === 0x80 ? 8 : 32;
        const b = size === 8 ? imm & 0xff : imm;
        if (isReg || sub === CMP) {
          rmRead(size);
          c.set(A).i32(b).set(B);
          this.alu(sub, size);
          if (sub !== CMP) (size === 8 ? set8 : set32)(rm, X);
        } else {
          this.rmwRead(size / 8, sg, ma);
          c.set(A).i32(b).set(B);
          this.alu(sub, size);
          this.rmwWrite(size / 8);
        }
        return true;
      }
      case 0xf6:
        if (sub > 1) return false;
        rmRead(8);
        c.set(A)
          .i32(imm & 0xff)
          .set(B);
        this.test(8);
        return true;
      case 0x84:
      case 0x85: {
        const size = opc === 0x84 ? 8 : 32;
        rmRead(size);
        c.set(A);
        (size === 8 ? r8v : r32)(rg)();
        c.set(B);
        this.test(size);
        return true;
      }
      case 0xc1:
      case 0xd1: {
        const n = opc === 0xd1 ? 1 : imm & 0x1f;
        if (n === 0) {
          if (!isReg) {
            this.rmwRead(4, sg, ma);
            c.set(X);
            this.rmwWrite(4);
          }
          return true;
        }
        const rot = sub === ROL || sub === ROR;
        if (!rot && sub !== SHL && sub !== SAL && sub !== SHR && sub !== SAR) return false;
        if (isReg) r32(rm)();
        else this.rmwRead(4, sg, ma);
        c.set(A);
        if (rot) {
          c.get(A)
            .i32(n)
            .op(sub === ROL ? Op.rotl : Op.rotr)
            .set(X);
          this.rotFlags(sub === ROL);
        } else this.shiftBy(sub, n, 32);
        if (isReg) set32(rm, X);
        else this.rmwWrite(4);
        return true;
      }
      case 0xc0:
      case 0xd0: {
        // shl/shr/sar Eb, 1 or imm8, as shift8 (a count of 0 writes the byte back unchanged).
        const n = opc === 0xd0 ? 1 : imm & 0x1f;
        if (sub !== SHL && sub !== SAL && sub !== SHR && sub !== SAR) return false;
        if (isReg) r8v(rm)();
        else this.rmwRead(1, sg, ma);
        c.set(A);
        if (n === 0) c.get(A).set(X);
        else this.shiftBy(sub, n, 8);
        if (isReg) set8(rm, X);
        else this.rmwWrite(1);
        return true;
      }
      case 0xa8:
      case 0xa9:
        // test al, Ib and test eax, Id, as testAlIb, testEaxId.
        (opc === 0xa8 ? r8v : r32)(0)();
        c.set(A)
          .i32(opc === 0xa8 ? imm & 0xff : imm)
          .set(B);
        this.test(opc === 0xa8 ? 8 : 32);
        return true;
      case 0x99:
        // cdq: EDX = EAX's sign.
        r32(0)();
        c.i32(31).op(Op.shrS).set(V);
        set32(2, V);
        return true;
      case 0xd3: {
        // shl/shr/sar r32, cl, as shEdClR: a count of 0 (CL mod 32) changes nothing, flags
        // included, so the record is in the io words on both paths.
        if (!isReg || (sub !== SHL && sub !== SAL && sub !== SHR && sub !== SAR)) return false;
        this.flush();
        c.i32(0)
          .mem(Op.load8u, this.S + r8(1))
          .i32(31)
          .op(Op.and)
          .tee(T);
        this.open(Op.if);
        r32(rm)();
        c.set(A);
        // LIN: the value shifted by the count less one (its last bit out is CF).
        c.get(A)
          .get(T)
          .op(sub === SHR ? Op.shrU : sub === SAR ? Op.shrS : Op.shl)
          .set(X);
        c.get(A)
          .get(T)
          .i32(1)
          .op(Op.sub, sub === SHR ? Op.shrU : sub === SAR ? Op.shrS : Op.shl)
          .set(LIN);
        if (sub === SHR)
          this.resFlags(
            () => c.get(LIN).i32(1).op(Op.and),
            () => c.get(LIN).get(X).op(Op.xor).i32(31).op(Op.shrU),
          );
        else if (sub === SAR)
          this.resFlags(
            () => c.get(LIN).i32(1).op(Op.and),
            () => c.i32(0),
          );
        else
          this.resFlags(
            () => c.get(LIN).i32(31).op(Op.shrU),
            () => c.get(X).i32(31).op(Op.shrU).get(LIN).i32(31).op(Op.shrU, Op.xor),
          );
        set32(rm, X);
        this.flush();
        this.close();
        this.forget();
        return true;
      }
      case 0x69:
      case 0x6b:
      case 0x1af: {
        // imul Gd, Ed (A = Gd, B = Ed) or Gd, Ed, imm (A = Ed, B = imm), as imul32.
        rmRead(32);
        if (opc === 0x1af) {
          c.set(B);
          r32(rg)();
          c.set(A);
        } else c.set(A).i32(imm).set(B);
        c.get(A).get(B).op(Op.mul).set(X);
        c.get(A)
          .op(Op.i64ExtendS)
          .get(B)
          .op(Op.i64ExtendS, Op.i64Mul)
          .get(X)
          .op(Op.i64ExtendS, Op.i64Ne)
          .set(T);
        this.resFlags(
          () => c.get(T),
          () => c.get(T),
        );
        set32(rg, X);
        return true;
      }
      case 0xf7: {
        if (sub === 0) {
          // test Ed, Id, as testEdId.
          rmRead(32);
          c.set(A).i32(imm).set(B);
          this.test(32);
          return true;
        }
        if (sub === 6) {
          // div: EDX:EAX / r/m32, as divEd: #DE when the divisor is 0 or the quotient does not
          // fit 32 bits (both: EDX >= divisor); the remainder is EAX - quotient * divisor.
          rmRead(32);
          c.set(B);
          r32(2)();
          c.get(B).op(Op.geU);
          this.open(Op.if);
          this.fault(DE, 0);
          this.close();
          r32(2)();
          c.op(Op.i64ExtendU).i64(32).op(Op.i64Shl);
          r32(0)();
          c.op(Op.i64ExtendU, Op.i64Or).get(B).op(Op.i64ExtendU, Op.i64DivU, Op.wrap).set(X);
          r32(0)();
          c.get(X).get(B).op(Op.mul, Op.sub).set(V);
          set32(0, X);
          set32(2, V);
          return true;
        }
        if (sub !== 4) return false;
        // mul: EDX:EAX = EAX * r/m32, CF = OF = (EDX != 0), as mulEd.
        rmRead(32);
        c.set(B);
        r32(0)();
        c.set(A).get(A).get(B).op(Op.mul).set(X);
        c.get(A).op(Op.i64ExtendU).get(B).op(Op.i64ExtendU, Op.i64Mul).i64(32).op(Op.i64ShrU, Op.wrap).set(V);
        set32(0, X);
        set32(2, V);
        c.get(V).i32(0).op(Op.ne).set(T);
        this.resFlags(
          () => c.get(T),
          () => c.get(T),
        );
        return true;
      }
      case 0xff:
        if (sub === 4) {
          // jmp r/m32 (ends the block), as jmpRm32: the target read, then the CS limit.
          rmRead(32);
          c.set(EIP);
          this.csCheck();
          return true;
        }
        if (sub === 6) {
          rmRead(32);
          c.set(V);
          this.push();
          return true;
        }
        if (sub > 1) return false;
        if (isReg) {
          r32(rm)();
          c.set(A);
          this.incDec(sub === 0);
          set32(rm, X);
        } else {
          this.rmwRead(4, sg, ma);
          c.set(A);
          this.incDec(sub === 0);
          this.rmwWrite(4);
        }
        return true;
      case 0x90:
        return true;
      case 0x68:
      case 0x6a:
        c.i32(imm).set(V);
        this.push();
        return true;
      case 0xe8:
        // call rel32 (ends the block): EIP after it is the return address.
        this.eipAt(next + imm);
        this.csCheck();
        c.get(E0).i32(next).op(Op.add).set(V);
        this.push();
        return true;
      case 0xc3:
        this.pop();
        c.get(V).set(EIP);
        this.csCheck();
        return true;
      case 0x89:
        if (isReg) {
          r32(rg)();
          c.set(V);
          set32(rm, V);
        } else {
          r32(rg)();
          c.set(V);
          this.write(4, sg, ma);
        }
        return true;
      case 0x88:
        r8v(rg)();
        c.set(V);
        if (isReg) set8(rm, V);
        else this.write(1, sg, ma);
        return true;
      case 0x8b:
      case 0x8a:
        rmRead(opc === 0x8b ? 32 : 8);
        c.set(V);
        (opc === 0x8b ? set32 : set8)(rg, V);
        return true;
      case 0x8d:
        if (isReg) return false;
        ma();
        c.set(V);
        set32(rg, V);
        return true;
      case 0xc7:
        c.i32(imm).set(V);
        if (isReg) set32(rm, V);
        else this.write(4, sg, ma);
        return true;
      case 0x1b6:
      case 0x1b7:
      case 0x1be:
      case 0x1bf: {
        const size = opc & 1 ? 16 : 8;
        rmRead(size);
        if (opc >= 0x1be)
          c.i32(32 - size)
            .op(Op.shl)
            .i32(32 - size)
            .op(Op.shrS);
        c.set(V);
        set32(rg, V);
        return true;
      }
      case 0xeb:
      case 0xe9:
        this.eipAt(next + imm);
        this.csCheck();
        taken();
        return true;
    }
    if (opc >= 0xb8 && opc <= 0xbf) {
      c.i32(imm).set(V);
      set32(opc & 7, V);
      return true;
    }
    if (opc >= 0x50 && opc <= 0x57) {
      r32(opc & 7)();
      c.set(V);
      this.push();
      return true;
    }
    if (opc >= 0x58 && opc <= 0x5f) {
      this.pop();
      set32(opc & 7, V);
      return true;
    }
    if (opc >= 0x40 && opc <= 0x4f) {
      r32(opc & 7)();
      c.set(A);
      this.incDec(opc < 0x48);
      set32(opc & 7, X);
      return true;
    }
    if (opc === 0xa1) {
      // mov eax, moffs32 (the offset is the displacement), as movEaxMoffs.
      const at = this.ea(s);
      if (at === null) return false;
      this.read(4, sg, at);
      c.set(V);
      set32(0, V);
      return true;
    }

    if ((opc & 0x1f0) === 0x190) {
      // setcc Eb: the condition, then the byte written, as setcc.
      this.cond(opc & 15);
      c.i32(0).op(Op.ne).set(V);
      if (isReg) set8(rm, V);
      else this.write(1, sg, ma);
      return true;
    }
    if ((opc & 0x1f0) === 0x140) {
      // cmovcc Gd, Ed: the source read (and its fault) whatever the condition, as cmovGdEd.
      rmRead(32);
      c.set(V);
      this.cond(opc & 15);
      this.open(Op.if);
      set32(rg, V);
      this.close();
      return true;
    }
    if (isJcc(opc)) {
      this.cond(opc & 15);
      this.open(Op.if);
      this.eipAt(next + imm);
      this.csCheck();
      taken();
      this.close();
      return true;
    }
    return false;
  }

  /**
   * What a taken jcc (instruction k, F_BRANCH, not a loop) does: leave the block, or, when its
   * target is an instruction j further on in the block (an if without an else, as blocks.ts
   * does it: labels must nest), go on there through a wasm block it breaks out of, the
   * skipped instructions not retired (DONE; its io word is written at the next import call). The
   * flag record the branch leaves in the locals is kept (`skips`), for closeSkips to write
   * on the taken path only when the two paths' records differ in kind.
   */
  skip(p: BlockPlan, k: number, open: number[]): () => void {
    const j = skipTarget(p.offs, p.ends[k] + this.dc.imm[p.slots[k]], k, p.flags);
    if (j <= 0 || (open.length > 0 && j > open[open.length - 1])) return () => this.exit(k + 1);
    open.push(j);
    this.open(Op.block);
    this.open(Op.block);
    const at: Skip = { label: this.depth, taken: 0, op: 0, size: 0, dirty: false };
    this.skips.push(at);
    return () => {
      // One jcc emits its taken path once; a second would need its own record at the label.
      if (at.taken++ !== 0) throw new Error("a forward branch's taken path emitted twice");
      at.op = this.op;
      at.size = this.size;
      at.dirty = this.dirty;
      if (j > k + 1) {
        this.c
          .get(DONE)
          .i32(j - k - 1)
          .op(Op.sub)
          .set(DONE);
      }
      this.c.br(Op.br, this.depth - at.label);
    };
  }
  /**
   * What a taken jump k back to a loop's head j does (the block's start, or an inner loop's:
   * midLoops): round again from j while the budget allows a whole block (DONE counts the
   * k + 1 - j instructions run since the head as the pass's), else leave with EIP at j.
   */
  back(h: { j: number; level: number }, k: number, n: number): () => void {
    return () => {
      this.c
        .get(DONE)
        .i32(k + 1 - h.j)
        .op(Op.add)
        .tee(DONE)
        .i32(n)
        .op(Op.add)
        .get(BUDGET)
        .op(Op.leU);
      this.open(Op.if);
      this.flushCode();
      this.c.br(Op.br, this.depth - h.level);
      this.close();
      this.exit(h.j);
    };
  }
  /**
   * Closes the forward-branch labels that end before instruction k, where two paths meet.
   * When the taken path's record is of the kind and size the fall-through path's is, both
   * hold it in the locals (fa, fb, fx) and it stays known here, with nothing written.
   * Otherwise each path writes its own to the io words (the taken one after its label, from
   * the locals as the branch left them) and the record is unknown here.
   */
  closeSkips(open: number[], k: number): void {
    while (open.length > 0 && open[open.length - 1] === k) {
      open.pop();
      if (this.heads.length > 0 && this.heads[this.heads.length - 1].at === open.length) {
        // An inner loop's end (midLoops): only its fall-through leaves it.
        this.heads.pop();
        this.close();
        continue;
      }
      const at = this.skips.pop() as Skip;
      if (at.taken === 0 || (at.op !== 0 && at.op === this.op && at.size === this.size)) {
        this.dirty ||= at.dirty;
        this.close();
        this.close();
        continue;
      }
      this.forget();
      this.c.br(Op.br, 1);
      this.close();
      this.op = at.op;
      this.size = at.size;
      this.dirty = at.dirty;
      this.forget();
      this.close();
    }
  }

  /** The handler of instruction k through the call import. */
  handler(fn: Site["fn"], slot: number, end: number, control: boolean): void {
    this.forget();
    this.c.i32(this.k).i32(this.sites.length);
    this.callJs(F.call).set(HIT);
    this.clobber(0xff);
    this.sites.push({ fn, slot, end, control });
    if (control) this.ld(this.io(IO_EIP)).c.set(EIP);
    else {
      // A segment load may have made a segment this block took as flat not flat: the block
      // leaves after the instruction (its last one, a control transfer, has nothing after it).
      this.unflat();
      this.open(Op.if);
      this.eipAt(end);
      this.exit(this.k + 1);
      this.close();
    }
  }
}

/**
 * The block's inner loops: a jcc the block goes on after (F_BRANCH) whose taken target is an
 * earlier instruction j > 0 of the block (j <= k; the block's start is its own loop, p.loops)
 * goes round inside the block, a wasm loop from j to the last such jcc, while the budget
 * allows a whole block, as the block's own loop does: a loop whose head a block followed a
 * jump over, or a loop in a loop, no longer leaves to the chain at each pass. Returns, per
 * instruction, the last back edge of the loop headed there (`last`, -1: none) and, per back
 * edge, its head (`head`, -1: not one). Loops nest or are disjoint: one overlapping an earlier
 * head's is left out (last -1; its jccs leave the block as before).
 */
export function midLoops(dc: DecodeCache, p: BlockPlan): { last: Int32Array; head: Int32Array } {
  const n = p.flags.length;
  const last = new Int32Array(n).fill(-1);
  const head = new Int32Array(n).fill(-1);
  for (let k = 1; k < n; k++) {
    const s = p.slots[k];
    const opc = (dc.op[s] >> 3) & 0x1ff;
    const jcc = dc.op[s] >> 12 === 0 && isJcc(opc);
    if ((p.flags[k] & F_BRANCH) === 0 || p.loops[k] || !jcc) continue;
    const j = p.offs.indexOf(p.ends[k] + dc.imm[s]);
    // Block offsets are unique (blocks.ts follows no jump into code it has).
    if (j > 0 && j <= k && p.offs.lastIndexOf(p.offs[j]) === j) {
      last[j] = k;
      head[k] = j;
    }
  }
  // Nested or disjoint, outer heads first: [j, last[j]] against every earlier kept one.
  for (let j = 1; j < n; j++) {
    if (last[j] < 0) continue;
    for (let i = 1; i < j; i++)
      if (last[i] >= j && last[i] < last[j]) {
        last[j] = -1;
        break;
      }
  }
  return { last, head };
}

/**
 * The function body (locals excluded) of the block plan p, for a Cpu whose state area is at
 * S and TLB at T. Returns the body, the handler sites it calls (indexed from `sites`'s
 * length) and how many instructions were inline.
 */
export function blockBody(
  dc: DecodeCache,
  p: BlockPlan,
  S: number,
  T: number,
  sites: Site[],
  flat = 0,
): { body: number[]; inline: number } {
  const g = new Gen(dc, S, T, sites, flat);
  blockCode(g, dc, p);
  return { body: g.c.b, inline: g.inline };
}

/** Block p's code into g. */
function blockCode(g: Gen, dc: DecodeCache, p: BlockPlan): void {
  const c = g.c;
  const n = p.flags.length;
  // A segment this block takes as flat is not flat now: it does not start, and its wrapper or
  // chain runs its JS function instead (IO_BAIL; IO_STOP ends the chain).
  g.unflat();
  g.open(Op.if);
  g.put(g.io(IO_BAIL), () => c.i32(1));
  g.put(g.io(IO_STOP), () => c.i32(1));
  c.get(DONE).get(E0).op(Op.return);
  g.close();
  g.ld(g.io(IO_SS32)).c.set(SS32);
  const round = p.flags.some((f, k) => (k === n - 1 || (f & F_BRANCH) !== 0) && p.loops[k]);
  if (round) {
    g.open(Op.loop);
    g.loopLevel = g.depth;
  }
  /** Where the open forward-branch labels and inner loops end (instruction indexes), innermost last. */
  const open: number[] = [];
  const mids = midLoops(dc, p);
  /** The inner loops opened, by head (each stays open up to its last back edge). */
  const opened: (Gen["heads"][number] | undefined)[] = [];
  for (let k = 0; k < n; k++) {
    g.k = k;
    const f = p.flags[k];
    g.closeSkips(open, k);
    // An inner loop's head, when the labels open here end after its last back edge (they
    // nest around it); the record goes to the io words first, as a loop's head reads them.
    if (mids.last[k] > 0 && (open.length === 0 || open[open.length - 1] > mids.last[k])) {
      g.forget();
      g.open(Op.loop);
      const h = { j: k, level: g.depth, at: open.length };
      opened[k] = h;
      g.heads.push(h);
      open.push(mids.last[k] + 1);
    }
    if (f & F_STACK) g.put(g.io(IO_SAVEDESP), () => g.ld(g.reg(ESP)));
    if (f & F_CONTROL) g.eipAt(p.ends[k]);
    const head = mids.head[k] >= 0 ? opened[mids.head[k]] : undefined;
    const taken =
      (k === n - 1 || f & F_BRANCH) && p.loops[k]
        ? // Round again while the budget allows a whole pass, as the run loop would.
          g.back({ j: 0, level: g.loopLevel }, k, n)
        : f & F_BRANCH && head !== undefined
          ? g.back(head, k, n)
          : f & F_BRANCH
            ? g.skip(p, k, open)
            : () => {};
    let ok: boolean;
    if (f & F_TRACE) {
      // A jmp or call the block follows: the target's CS check, the return address pushed.
      g.eipAt(p.ends[k] + dc.imm[p.slots[k]]);
      g.csCheck();
      if (((dc.op[p.slots[k]] >> 3) & 0xff) === 0xe8) {
        c.get(E0).i32(p.ends[k]).op(Op.add).set(V);
        g.push();
      }
      ok = true;
    } else if (f & F_RETURN) {
      // Back from a call the block followed: it goes on when the target is the call's return.
      g.pop();
      c.get(V).set(EIP);
      g.csCheck();
      c.get(EIP)
        .get(E0)
        .i32(p.offs[k + 1])
        .op(Op.add, Op.ne);
      g.open(Op.if);
      g.exit(k + 1);
      g.close();
      ok = true;
    } else {
      g.siteFn = p.fns[k];
      g.siteControl = (f & F_CONTROL) !== 0;
      ok = g.inst(p.slots[k], p.ends[k], taken);
    }
    if (ok) g.inline++;
    else g.handler(p.fns[k], p.slots[k], p.ends[k], (f & F_CONTROL) !== 0);
    if (f & F_CHECK) {
      c.get(HIT);
      g.open(Op.if);
      g.eipAt(p.offs[k + 1]);
      g.exit(k + 1);
      g.close();
    }
  }
  g.closeSkips(open, n);
  if (round) g.close();
  if ((p.flags[n - 1] & F_CONTROL) === 0) g.eipAt(p.offs[n]);
  g.exit(n);
  // The flat segments the block's accesses took, into its guards (5-byte signed LEB128).
  for (const at of g.guards)
    for (let i = 0, v = g.used | 0; i < 5; i++, v >>= 7) c.b[at + i] = (v & 0x7f) | (i < 4 ? 0x80 : 0);
}

/**
 * The body of the back end's hub: (i, left) calls table entry i (a block) with budget left
 * at EIP (the io word), puts the EIP it left at in the io word and returns what it retired.
 */
export function hubBody(S: number): number[] {
  const c = new Code();
  const eip = S + ST_IO + 4 * IO_EIP;
  c.get(1).i32(0).mem(Op.load, eip).i32(0).get(0).op(Op.callIndirect);
  uleb(c.b, BLOCK_TYPE);
  c.op(0x00); // table 0
  c.set(2).i32(0).get(2).mem(Op.store, eip);
  return c.b;
}

/** Type of the hub: (table entry, budget) -> instructions retired. */
export const HUB_TYPE = sig(2);
/** The hub's locals after its parameters. */
export const HUB_LOCALS = 1;
/**
 * Type of the chain: (budget, EIP of the page's offset 0, its map's address, whether it may
 * cross pages) -> retired.
 */
export const CHAIN_TYPE = sig(4);
/** The chain's locals after its parameters. */
export const CHAIN_LOCALS = 5;

/** The arena's addresses a chain reads (arena.ts chainAddress, tlbAddress) and its frames. */
export interface ChainAt {
  lens: number;
  index: number;
  maps: number;
  pages: number;
  tlb: number;
  frames: number;
}

/**
 * The body of the chain (backend.ts): runs the wasm blocks of one page one after another
 * without returning to JS, as the JS region does with its table (blocks.ts linkRegion). It
 * looks EIP's page offset up in the page's map of block ids (S's io words, lens and index:
 * the arena's chain arrays) and calls the block's table entry while the budget allows its
 * length; it returns when EIP lands where no chained block starts, when the next block does
 * not fit, and when JS run by an import moved the fetch window or the run's end (IO_STOP:
 * also after a block wrote to a code frame, which drops the fetch window). When EIP leaves
 * the page it goes on in the page EIP is in now as the JS region's hop does (Cpu.hopFetch):
 * EIP within the CS limit, the
 * page in the TLB for a fetch at this CPL, the frame in RAM and its map there (the frame's
 * decoded instructions linked in a region and not dropped since: DecodeCache.chainPage);
 * otherwise it returns and the JS region hops or stops. CS, the masks and the TLB's entries
 * cannot change under a chain without a fetch-window drop (a segment load, a CPL change,
 * invlpg, a flush: IO_STOP), so the segment check and masks are read from the arena as the
 * entry left them. Before each block it records, for a fault's unwinding and the handlers,
 * which block runs and what the chain retired so far.
 */
export function chainBody(S: number, at: ChainAt): number[] {
  const g = new Gen(null as unknown as DecodeCache, S, 0, []);
  const c = g.c;
  const PB = 1;
  const MAP = 2;
  const HOP = 3;
  const RDONE = 4;
  const ID = 5;
  const LEN = 6;
  const LIN = 7;
  const PC = 8;
  // EIP lives in PC: a block takes it as a parameter and returns where it left, and the io
  // word holds the running block's start (for its handlers and a fault) and, at the end, EIP.
  g.ld(g.io(IO_EIP)).c.set(PC);
  c.op(Op.loop, VOID, Op.block, VOID);
  // EIP's page offset; off the page: the hop.
  c.get(PC).get(PB).op(Op.sub).tee(ID).i32(0xfff).op(Op.gtU);
  c.op(Op.if, VOID);
  c.get(HOP).op(Op.eqz).br(Op.brIf, 1);
  // EIP beyond the CS limit (segChk's 1-byte read bound, as hopFetch's segHi).
  c.get(PC).i32(INT_MIN).op(Op.xor);
  g.ld(S + ST_SEGCHK + (CS * 32 + 3) * 4)
    .c.op(Op.gtS)
    .br(Op.brIf, 1);
  // The TLB entry of CS.base + EIP, readable at this CPL.
  g.ld(S + ST_SEGCHK + CS * 128)
    .c.get(PC)
    .op(Op.add)
    .tee(LIN);
  c.i32(12).op(Op.shrU).i32(2).op(Op.shl).mem(Op.load, at.tlb).tee(LEN);
  g.ld(g.io(IO_RDMASK)).c.op(Op.and, Op.eqz).br(Op.brIf, 1);
  // Its frame in RAM, and the frame's map (frame block + 1; 0: none).
  c.get(LEN).i32(12).op(Op.shrU).tee(LEN).i32(at.frames).op(Op.geU).br(Op.brIf, 1);
  c.get(LEN).i32(1).op(Op.shl).mem(Op.load16u, at.pages).tee(LEN).op(Op.eqz).br(Op.brIf, 1);
  c.get(LEN)
    .i32(13)
    .op(Op.shl)
    .i32(at.maps - 0x2000)
    .op(Op.add)
    .set(MAP);
  c.get(PC).get(LIN).i32(0xfff).op(Op.and).tee(ID).op(Op.sub).set(PB);
  g.put(g.io(IO_HOPS), () => g.ld(g.io(IO_HOPS)).c.i32(1).op(Op.add));
  c.op(Op.end);
  // The id at the page offset (0: none; an id's length is 0 until its block is in wasm).
  c.get(ID).i32(1).op(Op.shl).get(MAP).op(Op.add).mem(Op.load16u, 0).tee(ID);
  c.mem(Op.load8u, at.lens).tee(LEN).op(Op.eqz).br(Op.brIf, 0);
  c.get(RDONE).get(LEN).op(Op.add).get(BUDGET).op(Op.gtU).br(Op.brIf, 0);
  // For the block's handlers and a fault's unwinding: where it starts, what the run retired
  // before it (its own count goes on from there), which block runs, and the blocks run.
  g.put(g.io(IO_EIP), () => c.get(PC));
  g.put(g.io(IO_BLK), () => c.get(ID));
  g.put(g.io(IO_RBLOCKS), () => g.ld(g.io(IO_RBLOCKS)).c.i32(1).op(Op.add));
  c.get(BUDGET).get(PC).get(RDONE);
  c.get(ID).i32(2).op(Op.shl).mem(Op.load, at.index).op(Op.callIndirect);
  uleb(c.b, BLOCK_TYPE);
  c.op(0x00); // table 0
  c.set(PC).set(RDONE);
  // A write to a code frame moved the fetch window too (Cpu.codeWritten), so IO_STOP has it.
  g.ld(g.io(IO_STOP)).c.br(Op.brIf, 0);
  c.br(Op.br, 1);
  c.op(Op.end); // the exit block
  g.put(g.io(IO_EIP), () => c.get(PC));
  c.get(RDONE).op(Op.return, Op.end); // the loop
  c.op(Op.unreachable);
  return c.b;
}
