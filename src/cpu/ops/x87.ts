/**
 * x87 instructions: the escapes D8-DF (one handler per escape byte, switching on the ModRM
 * reg field and on memory / register form) and wait/fwait (9B).
 *
 * CR0.EM or CR0.TS raise #NM before any escape executes (fwait: only TS with MP), which is
 * what lazy FPU context switching relies on. Unmasked x87 exceptions are recorded (ES, B)
 * and suppress the result but are never delivered as #MF. See fpu.ts for the number model.
 */
import type { Cpu } from "../cpu.js";
import { P_O16 } from "../decode.js";
import {
  addX80,
  classX80,
  cmpX80,
  divX80,
  type Fpu,
  FSW_B,
  FSW_C0,
  FSW_C1,
  FSW_C2,
  FSW_C3,
  FSW_DE,
  FSW_OE,
  FSW_PE,
  FSW_UE,
  FSW_ZE,
  f32Bits,
  f32FromBits,
  f64FromBits,
  f64HiBits,
  f64LoBits,
  f64ToX80,
  INDEFINITE,
  INT,
  int64ToX80,
  isSNaN,
  K_BAD,
  K_NAN,
  mulX80,
  pow2,
  RES,
  roundFlags,
  sqrtX80,
  X_INVALID,
  X_NAN,
  X_OK,
  X_ZERODIV,
  X80,
  x80ToF32,
  x80ToF64,
  x80ToInt,
} from "../fpu.js";
import { AF, CF, CR0_EM, CR0_MP, CR0_TS, CS, EAX, NM, OF, PF, SF, UD, ZF } from "../regs.js";
import type { Def } from "./table.js";

const X = new X80();
const Y = new X80();
/** frstor scratch: the eight registers read before anything is changed. */
const RS_SE = new Uint16Array(8);
const RS_HI = new Uint32Array(8);
const RS_LO = new Uint32Array(8);

const TWO63 = 2 ** 63;
const CC_UNORDERED = FSW_C3 | FSW_C2 | FSW_C0;
/** Condition codes of a compare result: greater, less, equal, unordered. */
const CMP_CC = [0, FSW_C0, FSW_C3, CC_UNORDERED];
const CMP_EFLAGS = [0, CF, ZF, ZF | PF | CF];

// ------------------------------------------------------------------ entry checks

/** #NM when CR0.EM or CR0.TS is set. */
function nm(cpu: Cpu): void {
  if ((cpu.cr0 & (CR0_EM | CR0_TS)) !== 0) cpu.fault(NM, 0);
}

/** Records the instruction pointer and opcode of a non-control instruction; clears C1. */
function begin(cpu: Cpu, s: number, esc: number): Fpu {
  const f = cpu.fpu;
  f.noStore = false;
  f.fip = cpu.instrStart;
  f.fcs = cpu.segSel[CS];
  f.fop = ((esc & 7) << 8) | cpu.dc.modrm[s];
  f.sw &= ~FSW_C1;
  return f;
}

/** Effective address of the memory operand; records the operand pointer. */
function operand(cpu: Cpu, s: number, f: Fpu): number {
  const off = cpu.ea(s);
  f.fdp = off;
  f.fds = cpu.segSel[cpu.dc.seg[s]];
  return off;
}

function ud(cpu: Cpu): never {
  return cpu.fault(UD, 0);
}

// ------------------------------------------------------------------ memory formats

/** Checks that seg:off is writable (faults now, before a multi-part store writes anything). */
function probe(cpu: Cpu, seg: number, off: number): void {
  cpu.rmwRd8(seg, off);
}

function rdF32(cpu: Cpu, f: Fpu, seg: number, off: number): number {
  const b = cpu.rd32(seg, off);
  if ((b & 0x7f800000) === 0x7f800000) {
    if ((b & 0x7fffff) !== 0 && (b & 0x400000) === 0) f.invalid(); // SNaN
  } else if ((b & 0x7f800000) === 0 && (b & 0x7fffff) !== 0 && !f.raise(FSW_DE)) {
    f.noStore = true;
  }
  return f32FromBits(b);
}

function rdF64(cpu: Cpu, f: Fpu, seg: number, off: number): number {
  const lo = cpu.rd32(seg, off);
  let hi = cpu.rd32(seg, (off + 4) | 0);
  const mant = (hi & 0xfffff) | lo;
  if ((hi & 0x7ff00000) === 0x7ff00000) {
    if (mant !== 0 && (hi & 0x80000) === 0) {
      f.invalid();
      hi |= 0x80000;
    }
  } else if ((hi & 0x7ff00000) === 0 && mant !== 0 && !f.raise(FSW_DE)) {
    f.noStore = true;
  }
  return f64FromBits(hi, lo);
}

function wr64(cpu: Cpu, seg: number, off: number, hi: number, lo: number): void {
  probe(cpu, seg, off);
  cpu.wr32(seg, (off + 4) | 0, hi);
  cpu.wr32(seg, off, lo);
}

function wr80(cpu: Cpu, seg: number, off: number, se: number, hi: number, lo: number): void {
  probe(cpu, seg, off);
  cpu.wr16(seg, (off + 8) | 0, se & 0xffff);
  cpu.wr32(seg, (off + 4) | 0, hi);
  cpu.wr32(seg, off, lo);
}

// ------------------------------------------------------------------ arithmetic helpers

/** v with its quiet bit set. */
function quiet(v: number): number {
  const hi = f64HiBits(v);
  return f64FromBits(hi | 0x80000, f64LoBits());
}

/** Result of an operation with a NaN operand (x87 rules: the larger significand wins). */
function nan2(f: Fpu, x: number, y: number): number {
  if ((isSNaN(x) || isSNaN(y)) && !f.invalid()) return 0;
  if (Number.isNaN(x) && Number.isNaN(y)) {
    const xh = f64HiBits(x) & 0xfffff;
    const xl = f64LoBits();
    const yh = f64HiBits(y) & 0xfffff;
    const yl = f64LoBits();
    return quiet(yh > xh || (yh === xh && yl > xl) ? y : x);
  }
  return quiet(Number.isNaN(x) ? x : y);
}

function nan1(f: Fpu, x: number): number {
  if (isSNaN(x) && !f.invalid()) return 0;
  return quiet(x);
}

/** The default result of an invalid operation (0 and noStore when unmasked). */
function invalidResult(f: Fpu): number {
  return f.invalid() ? INDEFINITE : 0;
}

const OPA = new X80();
const OPB = new X80();
const ZERO80 = new X80();

/** Applies the outcome of an x80 operation; false when nothing is to be stored. */
function finish(f: Fpu, st: number): boolean {
  switch (st) {
    case X_OK: {
      const fl = roundFlags;
      if (fl !== 0) {
        f.sw |= fl & FSW_C1;
        if (fl & ~FSW_C1) f.raise(fl & ~FSW_C1);
      }
      return true;
    }
    case X_INVALID:
      if (!f.invalid()) return false;
      RES.se = 0xffff;
      RES.hi = 0xc0000000;
      RES.lo = 0;
      return true;
    case X_ZERODIV:
      if (!f.raise(FSW_ZE)) {
        f.noStore = true;
        return false;
      }
      return true;
    case X_NAN:
      return true;
    default:
      return f.invalid(); // a signaling NaN operand
  }
}

/**
 * RES = x op y for the arithmetic sub-opcodes: 0 add, 1 mul, 4 sub (x - y), 5 subr (y - x),
 * 6 div (x / y), 7 divr (y / x), in extended precision with the rounding control. Returns
 * false when an unmasked exception suppresses the result.
 */
function arith(f: Fpu, op: number, x: X80, y: X80): boolean {
  const rc = f.rc();
  let st: number;
  switch (op) {
    case 0:
      st = addX80(x, y, false, rc);
      break;
    case 1:
      st = mulX80(x, y, rc);
      break;
    case 4:
      st = addX80(x, y, true, rc);
      break;
    case 5:
      st = addX80(y, x, true, rc);
      break;
    case 6:
      st = divX80(x, y, rc);
      break;
    default:
      st = divX80(y, x, rc);
      break;
  }
  return finish(f, st);
}

function isSNaNX(x: X80): boolean {
  const k = classX80(x.se, x.hi, x.lo);
  return k === K_BAD || (k === K_NAN && (x.hi & 0x40000000) === 0);
}

/** Compares x with y: 0 greater, 1 less, 2 equal, 3 unordered (IE unless quiet with QNaNs). */
function compare(f: Fpu, x: X80, y: X80, quietNaN: boolean): number {
  const r = cmpX80(x, y);
  if (r === 3 && (!quietNaN || isSNaNX(x) || isSNaNX(y))) f.invalid();
  return r;
}

/** Compares ST(0) with ST(i) (both non-empty). */
function compareSt(f: Fpu, i: number, quietNaN: boolean): number {
  f.getX80(f.phys(0), OPA);
  f.getX80(f.phys(i), OPB);
  return compare(f, OPA, OPB, quietNaN);
}

/** fcom/fucom ST(0), ST(i): sets C3 C2 C0 (C1 cleared). */
function fcomReg(f: Fpu, i: number, quietNaN: boolean): void {
  if (f.isEmpty(0) || f.isEmpty(i)) {
    f.underflow();
    f.setCC(CC_UNORDERED);
    return;
  }
  f.setCC(CMP_CC[compareSt(f, i, quietNaN)]);
}

/** fcomi/fucomi ST(0), ST(i): sets ZF PF CF, clears OF SF AF. */
function fcomi(cpu: Cpu, f: Fpu, i: number, quietNaN: boolean, pop: boolean): void {
  let r = 3;
  if (f.isEmpty(0) || f.isEmpty(i)) f.underflow();
  else r = compareSt(f, i, quietNaN);
  cpu.setFlags((cpu.getFlags() & ~(CF | PF | AF | ZF | SF | OF)) | CMP_EFLAGS[r]);
  if (pop && !f.noStore) f.pop();
}

/** Arithmetic or compare with a memory operand y (in OPB): D8/DC/DA/DE memory forms. */
function memOp(f: Fpu, sub: number, y: X80): void {
  if (f.noStore) return;
  const cmp = sub === 2 || sub === 3;
  if (f.isEmpty(0)) {
    if (!f.underflow()) return;
    if (cmp) {
      f.setCC(CC_UNORDERED);
      if (sub === 3) f.pop();
    } else {
      f.set(0, INDEFINITE);
    }
    return;
  }
  const d = f.phys(0);
  f.getX80(d, OPA);
  if (cmp) {
    f.setCC(CMP_CC[compare(f, OPA, y, false)]);
    if (sub === 3) f.pop();
    return;
  }
  if (arith(f, sub, OPA, y) && !f.noStore) f.setX80(d, RES.se, RES.hi, RES.lo);
}

/** Memory operands converted exactly to 80 bits (in OPB). */
function memF32(cpu: Cpu, f: Fpu, seg: number, off: number): X80 {
  f64ToX80(rdF32(cpu, f, seg, off), OPB);
  return OPB;
}
function memF64(cpu: Cpu, f: Fpu, seg: number, off: number): X80 {
  f64ToX80(rdF64(cpu, f, seg, off), OPB);
  return OPB;
}
function memInt(v: number): X80 {
  int64ToX80(v < 0 ? -1 : 0, v, OPB);
  return OPB;
}

/** Register arithmetic: dest ST(0) (D8) or ST(i) (DC, DE with pop). */
function regArith(f: Fpu, sub: number, i: number, toI: boolean, pop: boolean): void {
  const dest = toI ? i : 0;
  if (f.isEmpty(0) || f.isEmpty(i)) {
    if (!f.underflow()) return;
    f.set(dest, INDEFINITE);
  } else {
    f.getX80(f.phys(0), OPA);
    f.getX80(f.phys(i), OPB);
    if (!arith(f, sub, OPA, OPB) || f.noStore) return;
    f.setX80(f.phys(dest), RES.se, RES.hi, RES.lo);
  }
  if (pop) f.pop();
}

// ------------------------------------------------------------------ loads and stores

/** Pushes the 80-bit value in X exactly. */
function pushX80(f: Fpu, x: X80): void {
  const d = f.push(0);
  if (d >= 0) f.setX80(d, x.se, x.hi, x.lo);
}

function stF32(cpu: Cpu, f: Fpu, seg: number, off: number, pop: boolean): void {
  let bits: number;
  if (f.isEmpty(0)) {
    if (!f.underflow()) return;
    bits = 0xffc00000;
  } else {
    const v = f.st(0);
    const i = f.phys(0);
    if (!f.rawOk[i]) {
      f64ToX80(v, X);
      bits = f32Bits(Number.isNaN(v) ? v : x80ToF32(X.se, X.hi, X.lo, f.rc()));
    } else {
      bits = f32Bits(Number.isNaN(v) ? v : x80ToF32(f.rawSe[i], f.rawHi[i], f.rawLo[i], f.rc()));
    }
    if (Number.isNaN(v)) {
      if (isSNaN(v) && !f.invalid()) return;
    } else {
      const r = f32FromBits(bits);
      if (r !== v) {
        let fl = FSW_PE;
        if (!Number.isFinite(r)) fl |= FSW_OE;
        else if (Math.abs(r) < 1.1754943508222875e-38) fl |= FSW_UE;
        if (!f.raise(fl) && fl !== FSW_PE) return;
      }
    }
  }
  cpu.wr32(seg, off, bits | 0);
  if (pop) f.pop();
}

function stF64(cpu: Cpu, f: Fpu, seg: number, off: number, pop: boolean): void {
  let hi: number;
  let lo: number;
  if (f.isEmpty(0)) {
    if (!f.underflow()) return;
    hi = 0xfff80000;
    lo = 0;
  } else {
    const i = f.phys(0);
    const v = f.rawOk[i] ? x80ToF64(f.rawSe[i], f.rawHi[i], f.rawLo[i], f.rc()) : f.regs[i];
    hi = f64HiBits(v);
    lo = f64LoBits();
    if (Number.isNaN(v)) {
      if (isSNaN(v) && !f.invalid()) return;
      hi |= 0x80000;
    } else if (f.rawOk[i]) {
      f64ToX80(v, X);
      if (X.se !== f.rawSe[i] || X.hi !== f.rawHi[i] || X.lo !== f.rawLo[i]) {
        let fl = FSW_PE;
        if (!Number.isFinite(v) || (f.rawSe[i] & 0x7fff) - 16383 > 1023) fl |= FSW_OE;
        else if (Math.abs(v) < 2.2250738585072014e-308) fl |= FSW_UE;
        if (!f.raise(fl) && fl !== FSW_PE) return;
      }
    }
  }
  wr64(cpu, seg, off, hi | 0, lo | 0);
  if (pop) f.pop();
}

function stF80(cpu: Cpu, f: Fpu, seg: number, off: number): void {
  if (f.isEmpty(0)) {
    if (!f.underflow()) return;
    wr80(cpu, seg, off, 0xffff, 0xc0000000 | 0, 0);
  } else {
    f.getX80(f.phys(0), X);
    wr80(cpu, seg, off, X.se, X.hi | 0, X.lo | 0);
  }
  f.pop();
}

/** fist/fistp m16/m32/m64 with the rounding control. */
function fist(cpu: Cpu, f: Fpu, seg: number, off: number, bits: number, pop: boolean): void {
  let hi = 0;
  let lo = 0;
  let ok = false;
  if (f.isEmpty(0)) {
    if (!f.underflow()) return;
  } else {
    f.getX80(f.phys(0), X);
    ok = x80ToInt(X.se, X.hi, X.lo, f.rc(), bits);
    if (!ok) {
      if (!f.invalid()) return;
    } else {
      hi = INT.hi;
      lo = INT.lo;
      if (INT.inexact) f.raise(FSW_PE);
    }
  }
  if (!ok) {
    // The integer indefinite.
    hi = 0x80000000 | 0;
    lo = bits === 16 ? 0x8000 : bits === 32 ? 0x80000000 | 0 : 0;
  }
  if (bits === 16) cpu.wr16(seg, off, lo & 0xffff);
  else if (bits === 32) cpu.wr32(seg, off, lo);
  else wr64(cpu, seg, off, hi, lo);
  if (pop) f.pop();
}

/** fild m64: exact (the 80-bit shadow keeps all 64 bits). */
function fild64(cpu: Cpu, f: Fpu, seg: number, off: number): void {
  const lo = cpu.rd32(seg, off);
  const hi = cpu.rd32(seg, (off + 4) | 0);
  int64ToX80(hi, lo, X);
  pushX80(f, X);
}

function fld80(cpu: Cpu, f: Fpu, seg: number, off: number): void {
  const lo = cpu.rd32(seg, off) >>> 0;
  const hi = cpu.rd32(seg, (off + 4) | 0) >>> 0;
  const se = cpu.rd16(seg, (off + 8) | 0);
  X.se = se;
  X.hi = hi;
  X.lo = lo;
  pushX80(f, X);
}

/** fbld: 18 packed BCD digits and a sign byte. */
function fbld(cpu: Cpu, f: Fpu, seg: number, off: number): void {
  const lo = cpu.rd32(seg, off) >>> 0;
  const hi = cpu.rd32(seg, (off + 4) | 0) >>> 0;
  const se = cpu.rd16(seg, (off + 8) | 0);
  let h = 0;
  let l = 0;
  for (let k = 17; k >= 0; k--) {
    const d =
      k < 8 ? (lo >>> (4 * k)) & 15 : k < 16 ? (hi >>> (4 * (k - 8))) & 15 : (se >>> (4 * (k - 16))) & 15;
    const t = l * 10 + d;
    const carry = Math.floor(t / 4294967296);
    l = t - carry * 4294967296;
    h = h * 10 + carry;
  }
  int64ToX80(h | 0, l | 0, X);
  X.se |= se & 0x8000;
  pushX80(f, X);
}

/** fbstp: rounds ST(0) with the rounding control to 18 BCD digits. */
function fbstp(cpu: Cpu, f: Fpu, seg: number, off: number): void {
  let se = 0xffff;
  let hi = 0xc0000000;
  let lo = 0;
  if (f.isEmpty(0)) {
    if (!f.underflow()) return;
  } else {
    f.getX80(f.phys(0), X);
    const neg = (X.se & 0x8000) !== 0;
    let ok = x80ToInt(X.se, X.hi, X.lo, f.rc(), 64);
    let h = INT.hi >>> 0;
    let l = INT.lo >>> 0;
    if (ok && neg) {
      l = (~l + 1) >>> 0;
      h = (~h + (l === 0 ? 1 : 0)) >>> 0;
    }
    // |value| < 10^18 = 0x0de0b6b3a7640000.
    if (ok && (h > 0x0de0b6b3 || (h === 0x0de0b6b3 && l >= 0xa7640000))) ok = false;
    if (!ok) {
      if (!f.invalid()) return;
    } else {
      if (INT.inexact) f.raise(FSW_PE);
      se = neg ? 0x8000 : 0;
      hi = 0;
      lo = 0;
      for (let k = 0; k < 18; k++) {
        const qh = Math.floor(h / 10);
        const t = (h - qh * 10) * 4294967296 + l;
        const ql = Math.floor(t / 10);
        const d = t - ql * 10;
        h = qh;
        l = ql;
        if (k < 8) lo |= d << (4 * k);
        else if (k < 16) hi |= d << (4 * (k - 8));
        else se |= d << (4 * (k - 16));
      }
    }
  }
  wr80(cpu, seg, off, se, hi | 0, lo | 0);
  f.pop();
}

// ------------------------------------------------------------------ environment

/** Stores the environment (28 bytes, or 14 under 0x66) at seg:off. */
function storeEnv(cpu: Cpu, f: Fpu, seg: number, off: number, o16: boolean): void {
  if (o16) {
    cpu.wr16(seg, off, f.cw);
    cpu.wr16(seg, (off + 2) | 0, f.statusWord());
    cpu.wr16(seg, (off + 4) | 0, f.tagWord());
    cpu.wr16(seg, (off + 6) | 0, f.fip & 0xffff);
    cpu.wr16(seg, (off + 8) | 0, f.fcs);
    cpu.wr16(seg, (off + 10) | 0, f.fdp & 0xffff);
    cpu.wr16(seg, (off + 12) | 0, f.fds);
  } else {
    // Reserved halves read as ones, as Intel processors store them.
    cpu.wr32(seg, off, f.cw | 0xffff0000);
    cpu.wr32(seg, (off + 4) | 0, f.statusWord() | 0xffff0000);
    cpu.wr32(seg, (off + 8) | 0, f.tagWord() | 0xffff0000);
    cpu.wr32(seg, (off + 12) | 0, f.fip);
    cpu.wr32(seg, (off + 16) | 0, f.fcs | (f.fop << 16));
    cpu.wr32(seg, (off + 20) | 0, f.fdp);
    cpu.wr32(seg, (off + 24) | 0, f.fds | 0xffff0000);
  }
}

// Environment read by readEnv (applied only once every read has succeeded).
let envCw = 0;
let envSw = 0;
let envTag = 0;
let envFip = 0;
let envFcs = 0;
let envFop = 0;
let envFdp = 0;
let envFds = 0;

function readEnv(cpu: Cpu, seg: number, off: number, o16: boolean): void {
  if (o16) {
    envCw = cpu.rd16(seg, off);
    envSw = cpu.rd16(seg, (off + 2) | 0);
    envTag = cpu.rd16(seg, (off + 4) | 0);
    envFip = cpu.rd16(seg, (off + 6) | 0);
    envFcs = cpu.rd16(seg, (off + 8) | 0);
    envFop = 0;
    envFdp = cpu.rd16(seg, (off + 10) | 0);
    envFds = cpu.rd16(seg, (off + 12) | 0);
  } else {
    envCw = cpu.rd32(seg, off) & 0xffff;
    envSw = cpu.rd32(seg, (off + 4) | 0) & 0xffff;
    envTag = cpu.rd32(seg, (off + 8) | 0) & 0xffff;
    envFip = cpu.rd32(seg, (off + 12) | 0);
    const d4 = cpu.rd32(seg, (off + 16) | 0);
    envFcs = d4 & 0xffff;
    envFop = (d4 >>> 16) & 0x7ff;
    envFdp = cpu.rd32(seg, (off + 20) | 0);
    envFds = cpu.rd32(seg, (off + 24) | 0) & 0xffff;
  }
}

function applyEnv(f: Fpu): void {
  f.cw = (envCw & 0x1f3f) | 0x40;
  f.setStatusWord(envSw);
  f.setTagWord(envTag);
  f.fip = envFip;
  f.fcs = envFcs;
  f.fop = envFop;
  f.fdp = envFdp;
  f.fds = envFds;
}

function fnstenv(cpu: Cpu, f: Fpu, seg: number, off: number, o16: boolean): void {
  probe(cpu, seg, (off + (o16 ? 13 : 27)) | 0);
  probe(cpu, seg, off);
  storeEnv(cpu, f, seg, off, o16);
  f.cw |= 0x3f; // fnstenv masks all exceptions
}

function fnsave(cpu: Cpu, f: Fpu, seg: number, off: number, o16: boolean): void {
  const envLen = o16 ? 14 : 28;
  probe(cpu, seg, (off + envLen + 79) | 0);
  probe(cpu, seg, off);
  storeEnv(cpu, f, seg, off, o16);
  for (let k = 0; k < 8; k++) {
    f.getX80(f.phys(k), X);
    const a = (off + envLen + 10 * k) | 0;
    cpu.wr32(seg, a, X.lo | 0);
    cpu.wr32(seg, (a + 4) | 0, X.hi | 0);
    cpu.wr16(seg, (a + 8) | 0, X.se);
  }
  f.reset();
}

function frstor(cpu: Cpu, f: Fpu, seg: number, off: number, o16: boolean): void {
  const envLen = o16 ? 14 : 28;
  readEnv(cpu, seg, off, o16);
  for (let k = 0; k < 8; k++) {
    const a = (off + envLen + 10 * k) | 0;
    RS_LO[k] = cpu.rd32(seg, a);
    RS_HI[k] = cpu.rd32(seg, (a + 4) | 0);
    RS_SE[k] = cpu.rd16(seg, (a + 8) | 0);
  }
  applyEnv(f);
  for (let k = 0; k < 8; k++) {
    const i = f.phys(k);
    const e = f.empty[i];
    f.setX80(i, RS_SE[k], RS_HI[k], RS_LO[k]);
    f.empty[i] = e;
  }
}

// ------------------------------------------------------------------ D9 register forms

/** fld1, fldl2t, fldl2e, fldpi, fldlg2, fldln2, fldz (rounded per RC as hardware does). */
const CONST_SE = [0x3fff, 0x4000, 0x3fff, 0x4000, 0x3ffd, 0x3ffe, 0];
const CONST_HI = [0x80000000, 0xd49a784b, 0xb8aa3b29, 0xc90fdaa2, 0x9a209a84, 0xb17217f7, 0];
const CONST_LO = [0, 0xcd1b8afe, 0x5c17f0bc, 0x2168c235, 0xfbcff799, 0xd1cf79ac, 0];
/** +1: the exact value is above the nearest (RC up adds one); -1: below (down/chop subtract). */
const CONST_DIR = [0, 1, -1, -1, -1, -1, 0];

function fldConst(f: Fpu, k: number): void {
  let lo = CONST_LO[k];
  const rc = f.rc();
  if (CONST_DIR[k] > 0 && rc === 2) lo += 1;
  else if (CONST_DIR[k] < 0 && (rc === 1 || rc === 3)) lo -= 1;
  X.se = CONST_SE[k];
  X.hi = CONST_HI[k];
  X.lo = lo >>> 0;
  pushX80(f, X);
}

function fxam(f: Fpu): void {
  const i = f.phys(0);
  f.getX80(i, X);
  const c1 = X.se & 0x8000 ? FSW_C1 : 0;
  let cc: number;
  if (f.empty[i]) cc = FSW_C3 | FSW_C0;
  else {
    const e = X.se & 0x7fff;
    const j = (X.hi & 0x80000000) !== 0;
    const frac = ((X.hi & 0x7fffffff) | X.lo) !== 0;
    if (e === 0x7fff) cc = !j ? 0 : frac ? FSW_C0 : FSW_C2 | FSW_C0;
    else if (e === 0) cc = j || frac ? FSW_C3 | FSW_C2 : FSW_C3;
    else cc = j ? FSW_C2 : 0;
  }
  f.setCC(cc | c1);
}

/** Unary operations on ST(0): fchs fabs fsqrt frndint f2xm1 fsin fcos (by the low ModRM byte). */
function unary(f: Fpu, m: number): void {
  if (f.isEmpty(0)) {
    if (f.underflow()) f.set(0, INDEFINITE);
    return;
  }
  const i = f.phys(0);
  const x = f.regs[i];
  if (m === 0xe0 || m === 0xe1) {
    // fchs / fabs: exact, NaNs included (sign bit only).
    const hi = f64HiBits(x);
    const lo = f64LoBits();
    const nh = m === 0xe0 ? hi ^ 0x80000000 : hi & 0x7fffffff;
    f.regs[i] = f64FromBits(nh, lo);
    if (f.rawOk[i]) f.rawSe[i] = m === 0xe0 ? f.rawSe[i] ^ 0x8000 : f.rawSe[i] & 0x7fff;
    return;
  }
  if (Number.isNaN(x)) {
    const r = nan1(f, x);
    if (!f.noStore) f.set(0, r);
    return;
  }
  let r: number;
  switch (m) {
    case 0xfa: // fsqrt (exact, with the rounding control)
      f.getX80(i, OPA);
      if (finish(f, sqrtX80(OPA, f.rc())) && !f.noStore) f.setX80(i, RES.se, RES.hi, RES.lo);
      return;
    case 0xfc: // frndint
      frndint(f);
      return;
    case 0xf0: // f2xm1
      r = Math.expm1(x * Math.LN2);
      break;
    case 0xfe: // fsin
    case 0xff: // fcos
      if (!Number.isFinite(x)) {
        r = invalidResult(f);
        break;
      }
      if (Math.abs(x) >= TWO63) {
        f.setCC((f.sw & (FSW_C0 | FSW_C3)) | FSW_C2);
        return;
      }
      f.sw &= ~FSW_C2;
      r = m === 0xfe ? Math.sin(x) : Math.cos(x);
      break;
    default:
      return;
  }
  if (!f.noStore) f.set(0, r);
}

function frndint(f: Fpu): void {
  const i = f.phys(0);
  f.getX80(i, X);
  const e = X.se & 0x7fff;
  if (e === 0x7fff || (e === 0 && (X.hi | X.lo) === 0) || e - 16383 >= 63) return;
  if (!x80ToInt(X.se, X.hi, X.lo, f.rc(), 64)) {
    f.set(0, TWO63); // a positive value rounded up to 2^63
  } else {
    int64ToX80(INT.hi, INT.lo, Y);
    if ((INT.hi | INT.lo) === 0) Y.se = X.se & 0x8000; // keeps the sign of zero
    f.setX80(i, Y.se, Y.hi, Y.lo);
  }
  if (INT.inexact) f.raise(FSW_PE);
}

/** D9 F1-F9 family working on ST(0) and ST(1) or pushing. */
function transcend(f: Fpu, m: number): void {
  const two = m === 0xf1 || m === 0xf3 || m === 0xf5 || m === 0xf8 || m === 0xf9 || m === 0xfd;
  if (f.isEmpty(0) || (two && f.isEmpty(1))) {
    if (!f.underflow()) return;
    f.set(0, INDEFINITE);
    if (m === 0xf1 || m === 0xf3 || m === 0xf9) {
      f.set(1, INDEFINITE);
      f.pop();
    } else if (m === 0xf2 || m === 0xf4 || m === 0xfb) {
      f.push(INDEFINITE);
    }
    return;
  }
  const x = f.st(0);
  const y = two ? f.st(1) : 0;
  switch (m) {
    case 0xf1: // fyl2x: ST(1) = ST(1) * log2(ST(0)), pop
    case 0xf9: // fyl2xp1: ST(1) = ST(1) * log2(ST(0) + 1), pop
    case 0xf3: {
      // fpatan: ST(1) = atan2(ST(1), ST(0)), pop
      let r: number;
      if (Number.isNaN(x) || Number.isNaN(y)) r = nan2(f, x, y);
      else if (m === 0xf3) r = Math.atan2(y, x);
      else if (m === 0xf1) {
        if (x < 0) r = invalidResult(f);
        else {
          if (x === 0 && y !== 0 && Number.isFinite(y) && !f.raise(FSW_ZE)) return;
          r = y * Math.log2(x);
          if (Number.isNaN(r)) r = invalidResult(f);
        }
      } else {
        r = (y * Math.log1p(x)) / Math.LN2;
        if (Number.isNaN(r)) r = invalidResult(f);
      }
      if (f.noStore) return;
      f.set(1, r);
      f.pop();
      return;
    }
    case 0xf2:
      // fptan: ST(0) = tan, push 1.0
      replaceAndPush(f, x, Math.tan(x), 1);
      return;
    case 0xfb:
      // fsincos: ST(0) = sin, push cos
      replaceAndPush(f, x, Math.sin(x), Math.cos(x));
      return;
    case 0xf4:
      fxtract(f, x);
      return;
    case 0xf5: // fprem1
    case 0xf8: // fprem
      fprem(f, x, y, m === 0xf5);
      return;
    case 0xfd:
      fscale(f, x, y);
      return;
  }
}

/**
 * fptan and fsincos: ST(0) becomes `first` and `second` is pushed; a NaN or infinite operand
 * gives the NaN / indefinite in both, |x| >= 2^63 only sets C2, and a full stack pushes the
 * indefinite after the flags.
 */
function replaceAndPush(f: Fpu, x: number, first: number, second: number): void {
  if (Number.isNaN(x) || !Number.isFinite(x)) {
    const r = Number.isNaN(x) ? nan1(f, x) : invalidResult(f);
    if (f.noStore) return;
    f.set(0, r);
    f.push(r);
    return;
  }
  if (Math.abs(x) >= TWO63) {
    f.sw |= FSW_C2;
    return;
  }
  f.sw &= ~FSW_C2;
  if (!f.isEmpty(7)) {
    // Stack overflow: nothing but the flags and the indefinite pushed.
    f.push(0);
    return;
  }
  f.set(0, first);
  f.push(second);
}

function fxtract(f: Fpu, x: number): void {
  if (!f.isEmpty(7)) {
    f.push(0); // stack overflow
    return;
  }
  if (Number.isNaN(x)) {
    const r = nan1(f, x);
    if (f.noStore) return;
    f.set(0, r);
    f.push(r);
    return;
  }
  if (x === 0) {
    if (!f.raise(FSW_ZE)) return;
    f.set(0, Number.NEGATIVE_INFINITY);
    f.push(x);
    return;
  }
  if (!Number.isFinite(x)) {
    f.set(0, Number.POSITIVE_INFINITY);
    f.push(x);
    return;
  }
  f.getX80(f.phys(0), X);
  let e = X.se & 0x7fff;
  let hi = X.hi;
  let lo = X.lo;
  if (e === 0) {
    // Denormal (only possible for an exact 80-bit value): normalize.
    e = 1;
    while ((hi & 0x80000000) === 0) {
      hi = ((hi << 1) | (lo >>> 31)) >>> 0;
      lo = (lo << 1) >>> 0;
      e--;
    }
  }
  const sign = X.se & 0x8000;
  f.set(0, e - 16383);
  const d = f.push(0);
  if (d >= 0) f.setX80(d, sign | 0x3fff, hi, lo);
}

function fprem(f: Fpu, x: number, y: number, ieee: boolean): void {
  let r: number;
  let q = 0;
  if (Number.isNaN(x) || Number.isNaN(y)) r = nan2(f, x, y);
  else if (!Number.isFinite(x) || y === 0) r = invalidResult(f);
  else if (!Number.isFinite(y)) r = x;
  else {
    r = x % y;
    const ay = Math.abs(y);
    const y8 = y * 8;
    const r8 = Number.isFinite(y8) ? x % y8 : x;
    q = Math.round(Math.abs(r8 - r) / ay);
    if (ieee) {
      const ar = Math.abs(r) * 2;
      if (ar > ay || (ar === ay && (q & 1) === 1)) {
        r = x > 0 ? r - ay : r + ay;
        q++;
      }
    }
    q &= 7;
  }
  if (f.noStore) return;
  f.set(0, r);
  f.setCC((q & 4 ? FSW_C0 : 0) | (q & 2 ? FSW_C3 : 0) | (q & 1 ? FSW_C1 : 0));
}

function fscale(f: Fpu, x: number, y: number): void {
  let r: number;
  if (Number.isNaN(x) || Number.isNaN(y)) r = nan2(f, x, y);
  else if (y === Number.POSITIVE_INFINITY) r = x === 0 ? invalidResult(f) : x * y;
  else if (y === Number.NEGATIVE_INFINITY) r = Number.isFinite(x) ? x * 0 : invalidResult(f);
  else {
    let n = Math.trunc(y);
    if (n > 4000) n = 4000;
    if (n < -4000) n = -4000;
    r = x;
    while (n > 1023) {
      r *= pow2(1023);
      n -= 1023;
    }
    while (n < -1022) {
      r *= pow2(-1022);
      n += 1022;
    }
    r *= pow2(n);
  }
  if (!f.noStore) f.set(0, r);
}

// ------------------------------------------------------------------ escapes

function escD8(cpu: Cpu, s: number): void {
  nm(cpu);
  const f = begin(cpu, s, 0xd8);
  const m = cpu.dc.modrm[s];
  const sub = (m >> 3) & 7;
  if (m < 0xc0) {
    const off = operand(cpu, s, f);
    memOp(f, sub, memF32(cpu, f, cpu.dc.seg[s], off));
  } else if (sub === 2 || sub === 3) {
    fcomReg(f, m & 7, false);
    if (sub === 3 && !f.noStore) f.pop();
  } else {
    regArith(f, sub, m & 7, false, false);
  }
}

function escD9(cpu: Cpu, s: number): void {
  nm(cpu);
  const m = cpu.dc.modrm[s];
  const sub = (m >> 3) & 7;
  if (m < 0xc0) {
    const seg = cpu.dc.seg[s];
    if (sub >= 4) {
      // Control instructions: the pointers are not updated.
      const f = cpu.fpu;
      const off = cpu.ea(s);
      const o16 = (cpu.dc.pfx[s] & P_O16) !== 0;
      switch (sub) {
        case 4:
          readEnv(cpu, seg, off, o16);
          applyEnv(f);
          return;
        case 5:
          f.cw = (cpu.rd16(seg, off) & 0x1f3f) | 0x40;
          return;
        case 6:
          fnstenv(cpu, f, seg, off, o16);
          return;
        default:
          cpu.wr16(seg, off, f.cw);
          return;
      }
    }
    if (sub === 1) ud(cpu);
    const f = begin(cpu, s, 0xd9);
    const off = operand(cpu, s, f);
    if (sub === 0) {
      const v = rdF32(cpu, f, seg, off);
      if (!f.noStore) f.push(v);
    } else {
      stF32(cpu, f, seg, off, sub === 3);
    }
    return;
  }
  const i = m & 7;
  switch (sub) {
    case 0: {
      // fld st(i)
      const f = begin(cpu, s, 0xd9);
      if (f.isEmpty(i)) {
        if (f.underflow()) f.push(INDEFINITE);
        return;
      }
      const src = f.phys(i);
      const d = f.push(f.regs[src]);
      if (d >= 0 && f.rawOk[src]) f.setX80(d, f.rawSe[src], f.rawHi[src], f.rawLo[src]);
      return;
    }
    case 1: {
      // fxch st(i)
      const f = begin(cpu, s, 0xd9);
      fxch(f, i);
      return;
    }
    case 2:
      if (m !== 0xd0) ud(cpu);
      begin(cpu, s, 0xd9); // fnop
      return;
    case 3:
      fstReg(begin(cpu, s, 0xd9), i, true); // fstp1 (alias)
      return;
    case 4: {
      if (m !== 0xe0 && m !== 0xe1 && m !== 0xe4 && m !== 0xe5) ud(cpu);
      const f = begin(cpu, s, 0xd9);
      if (m === 0xe5) fxam(f);
      else if (m === 0xe4) {
        // ftst
        if (f.isEmpty(0)) {
          f.underflow();
          f.setCC(CC_UNORDERED);
        } else {
          f.getX80(f.phys(0), OPA);
          f.setCC(CMP_CC[compare(f, OPA, ZERO80, false)]);
        }
      } else unary(f, m);
      return;
    }
    case 5:
      if (m === 0xef) ud(cpu);
      fldConst(begin(cpu, s, 0xd9), i);
      return;
    case 6: {
      const f = begin(cpu, s, 0xd9);
      if (m === 0xf6)
        f.top = (f.top - 1) & 7; // fdecstp
      else if (m === 0xf7)
        f.top = (f.top + 1) & 7; // fincstp
      else if (m === 0xf0) unary(f, m);
      else transcend(f, m);
      return;
    }
    default: {
      const f = begin(cpu, s, 0xd9);
      if (m === 0xf8 || m === 0xf9 || m === 0xfd) transcend(f, m);
      else if (m === 0xfb) transcend(f, m);
      else unary(f, m);
      return;
    }
  }
}

function fxch(f: Fpu, i: number): void {
  if (f.isEmpty(0) || f.isEmpty(i)) {
    if (!f.underflow()) return;
    if (f.isEmpty(0)) f.set(0, INDEFINITE);
    if (f.isEmpty(i)) f.set(i, INDEFINITE);
  }
  const a = f.phys(0);
  const b = f.phys(i);
  const v = f.regs[a];
  f.regs[a] = f.regs[b];
  f.regs[b] = v;
  let t = f.rawOk[a];
  f.rawOk[a] = f.rawOk[b];
  f.rawOk[b] = t;
  t = f.rawSe[a];
  f.rawSe[a] = f.rawSe[b];
  f.rawSe[b] = t;
  t = f.rawHi[a];
  f.rawHi[a] = f.rawHi[b];
  f.rawHi[b] = t;
  t = f.rawLo[a];
  f.rawLo[a] = f.rawLo[b];
  f.rawLo[b] = t;
}

/** fst/fstp st(i). */
function fstReg(f: Fpu, i: number, pop: boolean): void {
  if (f.isEmpty(0)) {
    if (!f.underflow()) return;
    f.set(i, INDEFINITE);
  } else if (i !== 0) {
    f.copy(0, i);
  }
  if (pop) f.pop();
}

/** fcmovcc: cc 0 b, 1 e, 2 be, 3 u; negated for DB. */
function fcmov(cpu: Cpu, f: Fpu, cc: number, negate: boolean, i: number): void {
  let c = cc === 0 ? cpu.cf() : cc === 1 ? cpu.zf() : cc === 2 ? cpu.cf() | cpu.zf() : cpu.pf();
  if (negate) c ^= 1;
  if (f.isEmpty(0) || f.isEmpty(i)) {
    if (f.underflow() && c) f.set(0, INDEFINITE);
    return;
  }
  if (c && i !== 0) f.copy(i, 0);
}

function escDA(cpu: Cpu, s: number): void {
  nm(cpu);
  const m = cpu.dc.modrm[s];
  const sub = (m >> 3) & 7;
  if (m < 0xc0) {
    const f = begin(cpu, s, 0xda);
    const off = operand(cpu, s, f);
    memOp(f, sub, memInt(cpu.rd32(cpu.dc.seg[s], off)));
    return;
  }
  if (sub < 4) {
    fcmov(cpu, begin(cpu, s, 0xda), sub, false, m & 7);
  } else if (m === 0xe9) {
    // fucompp
    const f = begin(cpu, s, 0xda);
    fcomReg(f, 1, true);
    if (!f.noStore) {
      f.pop();
      f.pop();
    }
  } else {
    ud(cpu);
  }
}

function escDB(cpu: Cpu, s: number): void {
  nm(cpu);
  const m = cpu.dc.modrm[s];
  const sub = (m >> 3) & 7;
  if (m < 0xc0) {
    if (sub === 1 || sub === 4 || sub === 6) ud(cpu);
    const f = begin(cpu, s, 0xdb);
    const seg = cpu.dc.seg[s];
    const off = operand(cpu, s, f);
    switch (sub) {
      case 0:
        f.push(cpu.rd32(seg, off));
        return;
      case 2:
      case 3:
        fist(cpu, f, seg, off, 32, sub === 3);
        return;
      case 5:
        fld80(cpu, f, seg, off);
        return;
      default:
        stF80(cpu, f, seg, off);
        return;
    }
  }
  const i = m & 7;
  switch (sub) {
    case 0:
    case 1:
    case 2:
    case 3:
      fcmov(cpu, begin(cpu, s, 0xdb), sub, true, i);
      return;
    case 4: {
      const f = cpu.fpu;
      if (m === 0xe2)
        f.sw &= ~(0xff | FSW_B); // fnclex
      else if (m === 0xe3)
        f.reset(); // fninit
      else if (m !== 0xe0 && m !== 0xe1 && m !== 0xe4) ud(cpu); // fneni/fndisi/fsetpm: no-ops
      return;
    }
    case 5:
    case 6:
      fcomi(cpu, begin(cpu, s, 0xdb), i, sub === 5, false);
      return;
    default:
      ud(cpu);
  }
}

function escDC(cpu: Cpu, s: number): void {
  nm(cpu);
  const f = begin(cpu, s, 0xdc);
  const m = cpu.dc.modrm[s];
  const sub = (m >> 3) & 7;
  if (m < 0xc0) {
    const off = operand(cpu, s, f);
    memOp(f, sub, memF64(cpu, f, cpu.dc.seg[s], off));
  } else if (sub === 2 || sub === 3) {
    fcomReg(f, m & 7, false); // fcom2 / fcomp3 aliases
    if (sub === 3 && !f.noStore) f.pop();
  } else {
    regArith(f, sub, m & 7, true, false);
  }
}

function escDD(cpu: Cpu, s: number): void {
  nm(cpu);
  const m = cpu.dc.modrm[s];
  const sub = (m >> 3) & 7;
  if (m < 0xc0) {
    const seg = cpu.dc.seg[s];
    if (sub >= 4) {
      if (sub === 5) ud(cpu);
      const f = cpu.fpu;
      const off = cpu.ea(s);
      const o16 = (cpu.dc.pfx[s] & P_O16) !== 0;
      if (sub === 4) frstor(cpu, f, seg, off, o16);
      else if (sub === 6) fnsave(cpu, f, seg, off, o16);
      else cpu.wr16(seg, off, f.statusWord());
      return;
    }
    if (sub === 1) ud(cpu);
    const f = begin(cpu, s, 0xdd);
    const off = operand(cpu, s, f);
    if (sub === 0) {
      const v = rdF64(cpu, f, seg, off);
      if (!f.noStore) f.push(v);
    } else {
      stF64(cpu, f, seg, off, sub === 3);
    }
    return;
  }
  const i = m & 7;
  if (sub >= 6) ud(cpu);
  const f = begin(cpu, s, 0xdd);
  switch (sub) {
    case 0:
      f.empty[f.phys(i)] = 1; // ffree
      return;
    case 1:
      fxch(f, i); // fxch4 alias
      return;
    case 2:
    case 3:
      fstReg(f, i, sub === 3);
      return;
    default:
      fcomReg(f, i, true);
      if (sub === 5 && !f.noStore) f.pop();
      return;
  }
}

function escDE(cpu: Cpu, s: number): void {
  nm(cpu);
  const m = cpu.dc.modrm[s];
  const sub = (m >> 3) & 7;
  if (m < 0xc0) {
    const f = begin(cpu, s, 0xde);
    const off = operand(cpu, s, f);
    memOp(f, sub, memInt((cpu.rd16(cpu.dc.seg[s], off) << 16) >> 16));
    return;
  }
  if (sub === 3 && m !== 0xd9) ud(cpu);
  const f = begin(cpu, s, 0xde);
  if (sub === 2 || sub === 3) {
    // fcomp5 alias / fcompp
    fcomReg(f, sub === 3 ? 1 : m & 7, false);
    if (!f.noStore) {
      f.pop();
      if (sub === 3) f.pop();
    }
    return;
  }
  regArith(f, sub, m & 7, true, true);
}

function escDF(cpu: Cpu, s: number): void {
  nm(cpu);
  const m = cpu.dc.modrm[s];
  const sub = (m >> 3) & 7;
  if (m < 0xc0) {
    if (sub === 1) ud(cpu);
    const f = begin(cpu, s, 0xdf);
    const seg = cpu.dc.seg[s];
    const off = operand(cpu, s, f);
    switch (sub) {
      case 0:
        f.push((cpu.rd16(seg, off) << 16) >> 16);
        return;
      case 2:
      case 3:
        fist(cpu, f, seg, off, 16, sub === 3);
        return;
      case 4:
        fbld(cpu, f, seg, off);
        return;
      case 5:
        fild64(cpu, f, seg, off);
        return;
      case 6:
        fbstp(cpu, f, seg, off);
        return;
      default:
        fist(cpu, f, seg, off, 64, true);
        return;
    }
  }
  const i = m & 7;
  switch (sub) {
    case 0: {
      // ffreep (undocumented, executes on P6)
      const f = begin(cpu, s, 0xdf);
      f.empty[f.phys(i)] = 1;
      f.pop();
      return;
    }
    case 1:
      fxch(begin(cpu, s, 0xdf), i); // fxch7 alias
      return;
    case 2:
    case 3:
      fstReg(begin(cpu, s, 0xdf), i, true); // fstp8 / fstp9 aliases
      return;
    case 4:
      if (m !== 0xe0) ud(cpu);
      cpu.regs16[EAX << 1] = cpu.fpu.statusWord(); // fnstsw ax
      return;
    case 5:
    case 6:
      fcomi(cpu, begin(cpu, s, 0xdf), i, sub === 5, true);
      return;
    default:
      ud(cpu);
  }
}

/** wait/fwait: #NM when CR0.TS and CR0.MP are both set (pending exceptions: no #MF). */
function fwait(cpu: Cpu): void {
  if ((cpu.cr0 & (CR0_TS | CR0_MP)) === (CR0_TS | CR0_MP)) cpu.fault(NM, 0);
}

export function registerX87(def: Def): void {
  const esc = [escD8, escD9, escDA, escDB, escDC, escDD, escDE, escDF];
  for (let op = 0; op < 8; op++) {
    for (let sub = 0; sub < 8; sub++) def(0, 0xd8 + op, sub, 0, esc[op]);
  }
  def(0, 0x9b, 0, 0, fwait);
}
