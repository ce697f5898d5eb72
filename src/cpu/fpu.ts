/**
 * x87 FPU state and number formats.
 *
 * Registers hold IEEE doubles (Float64Array), not 80-bit extended values: arithmetic has
 * double precision and double range. To keep exact round trips where software relies on
 * them (fld m80 / fstp m80, fnsave / frstor, fild m64 / fistp m64 used for 64-bit copies,
 * fbld / fbstp), each physical register also has an optional exact 80-bit shadow (`raw*`),
 * valid until the register is written by anything other than a move.
 *
 * Exceptions: the status word flags are set (IE with SF for stack faults, ZE, DE, and PE /
 * OE / UE on conversions to memory formats and integers); masked responses (QNaN
 * indefinite, integer indefinite...) follow the SDM. Unmasked exceptions only suppress the
 * result and set ES/B: #MF is never delivered (neither at the next x87 instruction nor at
 * fwait). PE/OE/UE are not computed for arithmetic on registers, and the precision control
 * field is ignored (always double precision); the rounding control is honoured for
 * conversions to integers (fist/fistp, fbstp, frndint) and the constants fldpi etc.
 */

// Status word bits.
export const FSW_IE = 1 << 0;
export const FSW_DE = 1 << 1;
export const FSW_ZE = 1 << 2;
export const FSW_OE = 1 << 3;
export const FSW_UE = 1 << 4;
export const FSW_PE = 1 << 5;
export const FSW_SF = 1 << 6;
export const FSW_ES = 1 << 7;
export const FSW_C0 = 1 << 8;
export const FSW_C1 = 1 << 9;
export const FSW_C2 = 1 << 10;
export const FSW_C3 = 1 << 14;
export const FSW_B = 1 << 15;
export const FSW_TOP = 7 << 11;
export const FSW_CC = FSW_C0 | FSW_C1 | FSW_C2 | FSW_C3;

/** Control word after fninit: all exceptions masked, extended precision, round to nearest. */
export const FCW_INIT = 0x037f;

// Scratch views for bit conversions (module-level: nothing allocated per instruction).
const F64 = new Float64Array(1);
const U64 = new Uint32Array(F64.buffer); // [0] low, [1] high
const F32 = new Float32Array(1);
const U32F = new Uint32Array(F32.buffer);

/** The double with these bits (hi, lo: uint32 or int32). */
export function f64FromBits(hi: number, lo: number): number {
  U64[0] = lo;
  U64[1] = hi;
  return F64[0];
}

/** High 32 bits of a double (uint32); the low ones are then in f64LoBits(). */
export function f64HiBits(v: number): number {
  F64[0] = v;
  return U64[1];
}
export function f64LoBits(): number {
  return U64[0];
}

/** Bits of a float32 rounded (to nearest) from v; NaNs keep their payload, quieted. */
export function f32Bits(v: number): number {
  if (Number.isNaN(v)) {
    F64[0] = v;
    const hi = U64[1];
    return ((hi & 0x80000000) | 0x7fc00000 | ((hi & 0xfffff) << 3) | (U64[0] >>> 29)) >>> 0;
  }
  F32[0] = v;
  return U32F[0];
}

/** A float32 given by its bits as a double (NaNs quieted, payload kept). */
export function f32FromBits(b: number): number {
  if ((b & 0x7f800000) === 0x7f800000 && (b & 0x7fffff) !== 0) {
    return f64FromBits((b & 0x80000000) | 0x7ff80000 | ((b & 0x7fffff) >>> 3), (b & 7) << 29);
  }
  U32F[0] = b;
  return F32[0];
}

/** The QNaN indefinite (negative quiet NaN, what masked invalid operations produce). */
export const INDEFINITE = f64FromBits(0xfff80000, 0);

/** True when v is a signaling NaN (quiet bit clear). */
export function isSNaN(v: number): boolean {
  if (!Number.isNaN(v)) return false;
  F64[0] = v;
  return (U64[1] & 0x80000) === 0;
}

/** 2^n as a double, exact for -1074 <= n <= 1023. */
export function pow2(n: number): number {
  if (n > 1023) return Number.POSITIVE_INFINITY;
  if (n >= -1022) return f64FromBits((n + 1023) << 20, 0);
  if (n < -1074) return 0;
  const p = n + 1074; // bit position in a denormal
  return p >= 32 ? f64FromBits(1 << (p - 32), 0) : f64FromBits(0, (1 << p) >>> 0);
}

/** An 80-bit value: sign and exponent (16 bits), significand high and low (uint32). */
export class X80 {
  se = 0;
  hi = 0;
  lo = 0;
}

/** Exact conversion of a double to 80-bit extended (every double is representable). */
export function f64ToX80(v: number, out: X80): void {
  F64[0] = v;
  const hi = U64[1];
  const lo = U64[0];
  const sign = (hi >>> 16) & 0x8000;
  const e = (hi >>> 20) & 0x7ff;
  let mh = hi & 0xfffff;
  let ml = lo;
  if (e === 0x7ff) {
    out.se = sign | 0x7fff;
    out.hi = (0x80000000 | (mh << 11) | (ml >>> 21)) >>> 0;
    out.lo = (ml << 11) >>> 0;
    return;
  }
  if (e === 0) {
    if ((mh | ml) === 0) {
      out.se = sign;
      out.hi = 0;
      out.lo = 0;
      return;
    }
    // A double denormal is a normal extended value: normalize.
    let exp = 1;
    while ((mh & 0x100000) === 0) {
      mh = (mh << 1) | (ml >>> 31);
      ml = (ml << 1) >>> 0;
      exp--;
    }
    out.se = sign | (exp - 1023 + 16383);
    out.hi = (0x80000000 | ((mh & 0xfffff) << 11) | (ml >>> 21)) >>> 0;
    out.lo = (ml << 11) >>> 0;
    return;
  }
  out.se = sign | (e - 1023 + 16383);
  out.hi = (0x80000000 | (mh << 11) | (ml >>> 21)) >>> 0;
  out.lo = (ml << 11) >>> 0;
}

// Results of shiftRound.
let qHi = 0;
let qLo = 0;
let qInexact = false;

/**
 * Shifts the 64-bit significand (hi, lo) right by sh bits with rounding: mode 0 nearest
 * even, 1 down, 2 up, 3 toward zero (neg: the value is negative, for the directed modes).
 * Sets qHi/qLo (the rounded magnitude) and qInexact.
 */
function shiftRound(hi: number, lo: number, sh: number, mode: number, neg: boolean): void {
  let qh = 0;
  let ql = 0;
  let rh = 0;
  let rl = 0;
  let hh = 0;
  let hl = 0;
  hi >>>= 0;
  lo >>>= 0;
  let cmp: number; // remainder compared with half an ulp: -1, 0, 1 (or -2: no remainder)
  if (sh <= 0) {
    qHi = hi;
    qLo = lo;
    qInexact = false;
    return;
  }
  if (sh < 32) {
    ql = ((lo >>> sh) | (hi << (32 - sh))) >>> 0;
    qh = hi >>> sh;
    rl = (lo & ((1 << sh) - 1)) >>> 0;
    hl = (1 << (sh - 1)) >>> 0;
  } else if (sh === 32) {
    ql = hi;
    rl = lo;
    hl = 0x80000000;
  } else if (sh < 64) {
    ql = hi >>> (sh - 32);
    rh = (hi & ((1 << (sh - 32)) - 1)) >>> 0;
    rl = lo;
    hh = (1 << (sh - 33)) >>> 0;
  } else if (sh === 64) {
    rh = hi;
    rl = lo;
    hh = 0x80000000;
  } else {
    rl = hi | lo ? 1 : 0; // below half an ulp (any nonzero remainder)
    hh = 0x80000000;
  }
  if ((rh | rl) === 0) cmp = -2;
  else if (rh !== hh) cmp = rh > hh ? 1 : -1;
  else cmp = rl > hl ? 1 : rl < hl ? -1 : 0;
  let up = false;
  if (cmp !== -2) {
    if (mode === 0) up = cmp > 0 || (cmp === 0 && (ql & 1) === 1);
    else if (mode === 1) up = neg;
    else if (mode === 2) up = !neg;
  }
  if (up) {
    ql = (ql + 1) >>> 0;
    if (ql === 0) qh = (qh + 1) >>> 0;
  }
  qHi = qh;
  qLo = ql;
  qInexact = cmp !== -2;
}

/** An 80-bit value as the nearest double (unsupported encodings give the indefinite). */
export function x80ToF64(se: number, hi: number, lo: number, rc = 0): number {
  const neg = (se & 0x8000) !== 0;
  const e = se & 0x7fff;
  hi >>>= 0;
  lo >>>= 0;
  if (e === 0x7fff) {
    if ((hi & 0x80000000) === 0) return INDEFINITE; // pseudo-infinity / pseudo-NaN
    if (((hi & 0x7fffffff) | lo) === 0) return neg ? Number.NEGATIVE_INFINITY : Number.POSITIVE_INFINITY;
    const dh = ((neg ? 0x80000000 : 0) | 0x7ff00000 | ((hi & 0x7fffffff) >>> 11)) >>> 0;
    let dl = ((hi << 21) | (lo >>> 11)) >>> 0;
    if ((dh & 0xfffff) === 0 && dl === 0) dl = 1;
    return f64FromBits(dh, dl);
  }
  if ((hi | lo) === 0) return neg ? -0 : 0;
  if (e !== 0 && (hi & 0x80000000) === 0) return INDEFINITE; // unnormal
  return roundFinite(neg, e, hi, lo, rc, 11, 1023, 2 ** 1024, Number.MAX_VALUE);
}

/**
 * A finite, non-zero 80-bit value (biased exponent e, significand hi:lo) rounded under rc to a
 * binary format whose significand is 64 - shBase bits, normal exponents up to maxE (the
 * smallest is 1 - maxE), values from `limit` up overflowing to infinity or, when rc rounds
 * toward zero, to maxFinite.
 */
function roundFinite(
  neg: boolean,
  e: number,
  hi: number,
  lo: number,
  rc: number,
  shBase: number,
  maxE: number,
  limit: number,
  maxFinite: number,
): number {
  let E = (e === 0 ? 1 : e) - 16383;
  // Normalize (denormals and pseudo-denormals).
  if ((hi & 0x80000000) === 0) {
    if (hi === 0) {
      hi = lo;
      lo = 0;
      E -= 32;
    }
    const z = Math.clz32(hi);
    if (z > 0) {
      hi = ((hi << z) | (lo >>> (32 - z))) >>> 0;
      lo = (lo << z) >>> 0;
      E -= z;
    }
  }
  let m = Number.POSITIVE_INFINITY;
  if (E <= maxE) {
    const minE = 1 - maxE;
    const sh = E >= minE ? shBase : shBase + (minE - E);
    shiftRound(hi, lo, sh, rc, neg);
    m = (qHi * 4294967296 + qLo) * pow2(E - 63 + sh);
    if (m >= limit) m = Number.POSITIVE_INFINITY;
  }
  // Overflow: infinity, or the largest finite value when rounding toward zero.
  if (m === Number.POSITIVE_INFINITY && !(rc === 0 || (rc === 2 && !neg) || (rc === 1 && neg))) {
    m = maxFinite;
  }
  return neg ? -m : m;
}

/**
 * An 80-bit value rounded to single precision under rounding control rc, as a double (exactly
 * representable as a float32); overflow gives infinity or the largest finite float32.
 */
export function x80ToF32(se: number, hi: number, lo: number, rc = 0): number {
  const e = se & 0x7fff;
  if (e === 0x7fff || (hi | lo) >>> 0 === 0) return Math.fround(x80ToF64(se, hi, lo, rc));
  const neg = (se & 0x8000) !== 0;
  hi >>>= 0;
  lo >>>= 0;
  if (e !== 0 && (hi & 0x80000000) === 0) return INDEFINITE;
  return roundFinite(neg, e, hi, lo, rc, 40, 127, 2 ** 128, 3.4028234663852886e38);
}

/** Writes the 80-bit encoding of the integer (hi:lo, two's complement int64) to out. */
export function int64ToX80(hi: number, lo: number, out: X80): void {
  let h = hi >>> 0;
  let l = lo >>> 0;
  let sign = 0;
  if (hi < 0) {
    sign = 0x8000;
    l = (~l + 1) >>> 0;
    h = (~h + (l === 0 ? 1 : 0)) >>> 0;
  }
  if ((h | l) === 0) {
    out.se = 0;
    out.hi = 0;
    out.lo = 0;
    return;
  }
  let exp = 16383 + 63;
  if (h === 0) {
    h = l;
    l = 0;
    exp -= 32;
  }
  const z = Math.clz32(h);
  if (z > 0) {
    h = ((h << z) | (l >>> (32 - z))) >>> 0;
    l = (l << z) >>> 0;
    exp -= z;
  }
  out.se = sign | exp;
  out.hi = h;
  out.lo = l;
}

/** Result of x80ToInt: high and low halves (int32), and whether it was inexact. */
export const INT = { hi: 0, lo: 0, inexact: false };

/**
 * Rounds an 80-bit value to an integer with rounding mode rc (0 nearest, 1 down, 2 up,
 * 3 chop) into INT.hi:INT.lo. Returns false when it is a NaN or infinity, or does not fit
 * in `bits` (16, 32, 64) as a signed integer.
 */
export function x80ToInt(se: number, hi: number, lo: number, rc: number, bits: number): boolean {
  const neg = (se & 0x8000) !== 0;
  const e = se & 0x7fff;
  INT.inexact = false;
  if (e === 0x7fff) return false;
  if ((hi | lo) === 0) {
    INT.hi = 0;
    INT.lo = 0;
    return true;
  }
  const E = (e === 0 ? 1 : e) - 16383;
  const sh = 63 - E;
  if (sh < 0) return false;
  shiftRound(hi, lo, sh, rc, neg);
  INT.inexact = qInexact;
  let h = qHi;
  let l = qLo;
  // Range: magnitude up to 2^(bits-1) - 1, or 2^(bits-1) when negative.
  if (bits === 64) {
    if (h > 0x80000000 || (h === 0x80000000 && (l !== 0 || !neg))) return false;
  } else {
    const lim = bits === 32 ? 0x80000000 : 0x8000;
    if (h !== 0 || l > lim || (l === lim && !neg)) return false;
  }
  if (neg) {
    l = (~l + 1) >>> 0;
    h = (~h + (l === 0 ? 1 : 0)) >>> 0;
  }
  INT.hi = h | 0;
  INT.lo = l | 0;
  return true;
}

/** The x87 unit: eight registers, stack top, tags, status and control words, pointers. */
export class Fpu {
  /** Physical registers R0-R7 (ST(i) is R[(top + i) & 7]). */
  readonly regs = new Float64Array(8);
  /** 1 when the register's tag is empty. */
  readonly empty = new Uint8Array(8);
  /** 1 when raw* holds the register's exact 80-bit value. */
  readonly rawOk = new Uint8Array(8);
  readonly rawSe = new Uint16Array(8);
  readonly rawHi = new Uint32Array(8);
  readonly rawLo = new Uint32Array(8);
  top = 0;
  /** Status word without the TOP field. */
  sw = 0;
  cw = FCW_INIT;
  /** Last instruction pointer (offset, CS selector, 11-bit opcode) and operand pointer. */
  fip = 0;
  fcs = 0;
  fop = 0;
  fdp = 0;
  fds = 0;
  /** Set when an unmasked exception suppressed the current instruction's result. */
  noStore = false;
  /** Scratch for conversions. */
  readonly x = new X80();

  constructor() {
    this.reset();
  }

  /** The state after fninit (register contents are kept, as hardware does). */
  reset(): void {
    this.cw = FCW_INIT;
    this.sw = 0;
    this.top = 0;
    this.empty.fill(1);
    this.fip = 0;
    this.fcs = 0;
    this.fop = 0;
    this.fdp = 0;
    this.fds = 0;
    this.noStore = false;
  }

  /** Copies the whole x87 state of another unit (a host switching contexts). */
  copyFrom(o: Fpu): void {
    this.regs.set(o.regs);
    this.empty.set(o.empty);
    this.rawOk.set(o.rawOk);
    this.rawSe.set(o.rawSe);
    this.rawHi.set(o.rawHi);
    this.rawLo.set(o.rawLo);
    this.top = o.top;
    this.sw = o.sw;
    this.cw = o.cw;
    this.fip = o.fip;
    this.fcs = o.fcs;
    this.fop = o.fop;
    this.fdp = o.fdp;
    this.fds = o.fds;
    this.noStore = o.noStore;
  }

  statusWord(): number {
    return (this.sw & ~FSW_TOP) | (this.top << 11);
  }

  setStatusWord(v: number): void {
    this.sw = v & 0xffff & ~FSW_TOP;
    this.top = (v >> 11) & 7;
  }

  /** Full tag word (two bits per physical register: valid, zero, special, empty). */
  tagWord(): number {
    let w = 0;
    const x = this.x;
    for (let i = 0; i < 8; i++) {
      let t: number;
      if (this.empty[i]) t = 3;
      else {
        this.getX80(i, x);
        const e = x.se & 0x7fff;
        if (e === 0 && (x.hi | x.lo) === 0) t = 1;
        else if (e === 0 || e === 0x7fff || (x.hi & 0x80000000) === 0) t = 2;
        else t = 0;
      }
      w |= t << (i * 2);
    }
    return w;
  }

  /** Loads the tag word: only "empty or not" is kept (hardware recomputes the rest). */
  setTagWord(w: number): void {
    for (let i = 0; i < 8; i++) this.empty[i] = ((w >> (i * 2)) & 3) === 3 ? 1 : 0;
  }

  /** The 80-bit value of physical register i. */
  getX80(i: number, out: X80): void {
    if (this.rawOk[i]) {
      out.se = this.rawSe[i];
      out.hi = this.rawHi[i];
      out.lo = this.rawLo[i];
    } else {
      f64ToX80(this.regs[i], out);
    }
  }

  /** Sets physical register i to an exact 80-bit value (and its double approximation). */
  setX80(i: number, se: number, hi: number, lo: number): void {
    this.regs[i] = x80ToF64(se, hi, lo);
    this.empty[i] = 0;
    this.rawOk[i] = 1;
    this.rawSe[i] = se;
    this.rawHi[i] = hi;
    this.rawLo[i] = lo;
  }

  /** Physical index of ST(k). */
  phys(k: number): number {
    return (this.top + k) & 7;
  }

  /** ST(k), assumed non-empty. */
  st(k: number): number {
    return this.regs[(this.top + k) & 7];
  }

  isEmpty(k: number): boolean {
    return this.empty[(this.top + k) & 7] !== 0;
  }

  /** ST(k) = v (tag made non-empty). */
  set(k: number, v: number): void {
    const i = (this.top + k) & 7;
    this.regs[i] = v;
    this.empty[i] = 0;
    this.rawOk[i] = 0;
  }

  /** Copies ST(from) to ST(to), keeping the exact value. */
  copy(from: number, to: number): void {
    const a = (this.top + from) & 7;
    const b = (this.top + to) & 7;
    this.regs[b] = this.regs[a];
    this.empty[b] = 0;
    this.rawOk[b] = this.rawOk[a];
    this.rawSe[b] = this.rawSe[a];
    this.rawHi[b] = this.rawHi[a];
    this.rawLo[b] = this.rawLo[a];
  }

  pop(): void {
    this.empty[this.top] = 1;
    this.top = (this.top + 1) & 7;
  }

  /**
   * Pushes v. Returns the physical register written, or -1 on a masked stack overflow
   * (the indefinite was pushed) or -2 on an unmasked one (nothing pushed).
   */
  push(v: number): number {
    const i = (this.top - 1) & 7;
    if (!this.empty[i]) {
      this.sw |= FSW_IE | FSW_SF | FSW_C1;
      if ((this.cw & FSW_IE) === 0) {
        this.unmasked();
        return -2;
      }
      this.top = i;
      this.regs[i] = INDEFINITE;
      this.empty[i] = 0;
      this.rawOk[i] = 0;
      return -1;
    }
    this.sw &= ~FSW_C1;
    this.top = i;
    this.regs[i] = v;
    this.empty[i] = 0;
    this.rawOk[i] = 0;
    return i;
  }

  private unmasked(): void {
    this.sw |= FSW_ES | FSW_B;
    this.noStore = true;
  }

  /** Invalid operation; true when masked (the caller stores the default result). */
  invalid(): boolean {
    this.sw |= FSW_IE;
    if (this.cw & FSW_IE) return true;
    this.unmasked();
    return false;
  }

  /** Stack underflow (an empty register read); true when masked. */
  underflow(): boolean {
    this.sw = (this.sw & ~FSW_C1) | FSW_IE | FSW_SF;
    if (this.cw & FSW_IE) return true;
    this.unmasked();
    return false;
  }

  /**
   * Raises other exception flags (ZE, DE, OE, UE, PE); true when all are masked. An
   * unmasked one sets ES and B only: the caller decides whether the result is suppressed.
   */
  raise(flags: number): boolean {
    this.sw |= flags;
    if ((this.cw & flags) === flags) return true;
    this.sw |= FSW_ES | FSW_B;
    return false;
  }

  /** Sets C3 C2 C1 C0 (the other status bits kept). */
  setCC(cc: number): void {
    this.sw = (this.sw & ~FSW_CC) | cc;
  }

  /** Rounding control (0 nearest, 1 down, 2 up, 3 chop). */
  rc(): number {
    return (this.cw >> 10) & 3;
  }
}

// ------------------------------------------------------------------ 80-bit arithmetic
//
// Exact extended-precision add, subtract, multiply, divide and square root with the
// rounding control (precision control ignored: 64-bit significands always). Significands
// live in scratch arrays of 16-bit limbs (10 limbs = 160 bits, limb 0 least significant);
// nothing is allocated.

const NL = 10;
const LA = new Float64Array(NL);
const LB = new Float64Array(NL);
const LQ = new Float64Array(NL);

function lzero(a: Float64Array): void {
  a.fill(0);
}

/** Puts the 64-bit value hi:lo at limb offset `at` (0 = lowest) of a (zeroed first). */
function lload(a: Float64Array, hi: number, lo: number, at: number): void {
  a.fill(0);
  a[at] = lo & 0xffff;
  a[at + 1] = lo >>> 16;
  a[at + 2] = hi & 0xffff;
  a[at + 3] = hi >>> 16;
}

function lisZero(a: Float64Array): boolean {
  for (let i = 0; i < NL; i++) if (a[i] !== 0) return false;
  return true;
}

/** Index of the highest set bit, or -1. */
function ltop(a: Float64Array): number {
  for (let i = NL - 1; i >= 0; i--) if (a[i] !== 0) return i * 16 + 31 - Math.clz32(a[i]);
  return -1;
}

function lshl(a: Float64Array, n: number): void {
  const w = n >> 4;
  const b = n & 15;
  for (let i = NL - 1; i >= 0; i--) {
    const s = i - w;
    let v = s >= 0 ? a[s] * (1 << b) : 0;
    if (b !== 0 && s - 1 >= 0) v += Math.floor(a[s - 1] / (1 << (16 - b)));
    a[i] = v % 65536;
  }
}

/** Shifts right by n, ORing every bit shifted out into bit 0 (sticky). */
function lshrSticky(a: Float64Array, n: number): void {
  if (n <= 0) return;
  if (n >= NL * 16) {
    const nz = !lisZero(a);
    a.fill(0);
    a[0] = nz ? 1 : 0;
    return;
  }
  const w = n >> 4;
  const b = n & 15;
  let sticky = 0;
  for (let i = 0; i < w; i++) sticky |= a[i];
  if (b !== 0) sticky |= a[w] % (1 << b);
  for (let i = 0; i < NL; i++) {
    const s = i + w;
    let v = s < NL ? Math.floor(a[s] / (1 << b)) : 0;
    if (b !== 0 && s + 1 < NL) v += (a[s + 1] % (1 << b)) * (1 << (16 - b));
    a[i] = v;
  }
  if (sticky !== 0) a[0] = a[0] - (a[0] % 2) + 1;
}

/** a += b; returns the carry out. */
function ladd(a: Float64Array, b: Float64Array): number {
  let c = 0;
  for (let i = 0; i < NL; i++) {
    const v = a[i] + b[i] + c;
    c = v >= 65536 ? 1 : 0;
    a[i] = v - c * 65536;
  }
  return c;
}

/** a -= b (a >= b). */
function lsub(a: Float64Array, b: Float64Array): void {
  let br = 0;
  for (let i = 0; i < NL; i++) {
    let v = a[i] - b[i] - br;
    br = v < 0 ? 1 : 0;
    if (br) v += 65536;
    a[i] = v;
  }
}

function lcmp(a: Float64Array, b: Float64Array): number {
  for (let i = NL - 1; i >= 0; i--) if (a[i] !== b[i]) return a[i] > b[i] ? 1 : -1;
  return 0;
}

/** The rounded result of the last x80 operation. */
export const RES = new X80();
/** Status flags (PE, UE, OE, C1 for "rounded up") produced by the last rounding. */
export let roundFlags = 0;

/**
 * Rounds sign * a * 2^exp0 (a nonzero) to extended precision with rounding control rc into
 * RES; sets roundFlags.
 */
function roundPack(neg: boolean, a: Float64Array, exp0: number, rc: number): void {
  const p = ltop(a);
  const E = p + exp0;
  if (p < 159) lshl(a, 159 - p);
  let biased = E + 16383;
  let tiny = false;
  if (biased <= 0) {
    lshrSticky(a, 1 - biased);
    biased = 0;
    tiny = true;
  }
  const half = a[5] >= 0x8000;
  const rest = (a[5] & 0x7fff) !== 0 || a[4] !== 0 || a[3] !== 0 || a[2] !== 0 || a[1] !== 0 || a[0] !== 0;
  const inexact = half || rest;
  let up = false;
  if (rc === 0) up = half && (rest || (a[6] & 1) === 1);
  else if (rc === 1) up = neg && inexact;
  else if (rc === 2) up = !neg && inexact;
  let flags = 0;
  if (up) {
    flags |= FSW_C1;
    let i = 6;
    while (i < NL) {
      a[i] += 1;
      if (a[i] < 65536) break;
      a[i] = 0;
      i++;
    }
    if (i === NL) {
      a[9] = 0x8000;
      biased++;
    } else if (biased === 0 && a[9] >= 0x8000) {
      biased = 1;
    }
  }
  if (inexact) flags |= FSW_PE;
  if (tiny && inexact) flags |= FSW_UE;
  if (biased >= 0x7fff) {
    // Overflow: infinity or the largest finite value, per the rounding direction.
    flags = FSW_OE | FSW_PE;
    const toInf = rc === 0 || (rc === 2 && !neg) || (rc === 1 && neg);
    RES.se = (neg ? 0x8000 : 0) | (toInf ? 0x7fff : 0x7ffe);
    RES.hi = toInf ? 0x80000000 : 0xffffffff;
    RES.lo = toInf ? 0 : 0xffffffff;
    roundFlags = toInf ? flags | FSW_C1 : flags;
    return;
  }
  RES.se = (neg ? 0x8000 : 0) | biased;
  RES.hi = (a[9] * 65536 + a[8]) >>> 0;
  RES.lo = (a[7] * 65536 + a[6]) >>> 0;
  roundFlags = flags;
}

/** Classes of an 80-bit value. */
export const K_ZERO = 0;
export const K_FINITE = 1;
export const K_INF = 2;
export const K_NAN = 3;
/** Unsupported encodings (pseudo-NaN/infinity, unnormals): invalid operands. */
export const K_BAD = 4;

export function classX80(se: number, hi: number, lo: number): number {
  const e = se & 0x7fff;
  const j = (hi & 0x80000000) !== 0;
  if (e === 0x7fff) {
    if (!j) return K_BAD;
    return ((hi & 0x7fffffff) | lo) === 0 ? K_INF : K_NAN;
  }
  if (e === 0) return (hi | lo) === 0 ? K_ZERO : K_FINITE;
  return j ? K_FINITE : K_BAD;
}

/** Unbiased exponent of bit 63 of the significand (denormals: the minimum exponent). */
function expOf(se: number): number {
  const e = se & 0x7fff;
  return (e === 0 ? 1 : e) - 16383;
}

function setRes(se: number, hi: number, lo: number): void {
  RES.se = se;
  RES.hi = hi >>> 0;
  RES.lo = lo >>> 0;
  roundFlags = 0;
}

/** Outcome of an x80 operation (besides RES / roundFlags). */
export const X_OK = 0;
/** Invalid operation: the caller stores the indefinite when IM is masked. */
export const X_INVALID = 1;
/** Division of a finite nonzero value by zero: RES holds the signed infinity. */
export const X_ZERODIV = 2;
/** RES is a NaN propagated from an operand; X_SNAN when one was signaling (IE). */
export const X_NAN = 3;
export const X_SNAN = 4;

/** NaN propagation: the operand NaN with the larger significand, quieted. */
function nanPick(a: X80, ka: number, b: X80, kb: number): number {
  let src = a;
  if (ka !== K_NAN) src = b;
  else if (kb === K_NAN) {
    const ah = a.hi & 0x3fffffff;
    const bh = b.hi & 0x3fffffff;
    if (bh > ah || (bh === ah && b.lo > a.lo)) src = b;
  }
  const snan = (ka === K_NAN && (a.hi & 0x40000000) === 0) || (kb === K_NAN && (b.hi & 0x40000000) === 0);
  setRes(src.se, src.hi | 0x40000000, src.lo);
  return snan ? X_SNAN : X_NAN;
}

/** RES = a + b (sub: a - b) with rounding control rc. */
export function addX80(a: X80, b: X80, sub: boolean, rc: number): number {
  const ka = classX80(a.se, a.hi, a.lo);
  const kb = classX80(b.se, b.hi, b.lo);
  if (ka === K_BAD || kb === K_BAD) return X_INVALID;
  if (ka === K_NAN || kb === K_NAN) return nanPick(a, ka, b, kb);
  const na = (a.se & 0x8000) !== 0;
  const nb = ((b.se & 0x8000) !== 0) !== sub;
  if (ka === K_INF || kb === K_INF) {
    if (ka === K_INF && kb === K_INF && na !== nb) return X_INVALID;
    setRes(ka === K_INF ? (na ? 0xffff : 0x7fff) : nb ? 0xffff : 0x7fff, 0x80000000, 0);
    return X_OK;
  }
  if (ka === K_ZERO && kb === K_ZERO) {
    const neg = na === nb ? na : rc === 1;
    setRes(neg ? 0x8000 : 0, 0, 0);
    return X_OK;
  }
  if (ka === K_ZERO || kb === K_ZERO) {
    // x + 0 = x (a denormal stays as it is: exact).
    const x = ka === K_ZERO ? b : a;
    const neg = ka === K_ZERO ? nb : na;
    setRes((x.se & 0x7fff) | (neg ? 0x8000 : 0), x.hi, x.lo);
    return X_OK;
  }
  let ea = expOf(a.se);
  let eb = expOf(b.se);
  // LA: the operand with the larger exponent, LB the other, both with bit 63 at bit 159.
  let negBig = na;
  let negSmall = nb;
  if (ea >= eb) {
    lload(LA, a.hi, a.lo, 6);
    lload(LB, b.hi, b.lo, 6);
  } else {
    lload(LA, b.hi, b.lo, 6);
    lload(LB, a.hi, a.lo, 6);
    const t = ea;
    ea = eb;
    eb = t;
    negBig = nb;
    negSmall = na;
  }
  lshrSticky(LB, ea - eb);
  let neg = negBig;
  if (negBig === negSmall) {
    // The top limb has room: significands are below 2^160 and the sum below 2^161...
    // shift both right by one first so the carry fits.
    lshrSticky(LA, 1);
    lshrSticky(LB, 1);
    ladd(LA, LB);
    roundPack(neg, LA, ea - 158, rc);
    return X_OK;
  }
  const c = lcmp(LA, LB);
  if (c === 0) {
    setRes(rc === 1 ? 0x8000 : 0, 0, 0);
    return X_OK;
  }
  if (c > 0) lsub(LA, LB);
  else {
    lsub(LB, LA);
    LA.set(LB);
    neg = negSmall;
  }
  roundPack(neg, LA, ea - 159, rc);
  return X_OK;
}

/** RES = a * b. */
export function mulX80(a: X80, b: X80, rc: number): number {
  const ka = classX80(a.se, a.hi, a.lo);
  const kb = classX80(b.se, b.hi, b.lo);
  if (ka === K_BAD || kb === K_BAD) return X_INVALID;
  if (ka === K_NAN || kb === K_NAN) return nanPick(a, ka, b, kb);
  const neg = ((a.se ^ b.se) & 0x8000) !== 0;
  if (ka === K_INF || kb === K_INF) {
    if (ka === K_ZERO || kb === K_ZERO) return X_INVALID;
    setRes(neg ? 0xffff : 0x7fff, 0x80000000, 0);
    return X_OK;
  }
  if (ka === K_ZERO || kb === K_ZERO) {
    setRes(neg ? 0x8000 : 0, 0, 0);
    return X_OK;
  }
  lload(LA, a.hi, a.lo, 0);
  lload(LB, b.hi, b.lo, 0);
  lzero(LQ);
  for (let i = 0; i < 4; i++) {
    let carry = 0;
    for (let j = 0; j < 4; j++) {
      const v = LQ[i + j] + LA[i] * LB[j] + carry;
      carry = Math.floor(v / 65536);
      LQ[i + j] = v - carry * 65536;
    }
    LQ[i + 4] += carry;
  }
  roundPack(neg, LQ, expOf(a.se) + expOf(b.se) - 126, rc);
  return X_OK;
}

/** RES = a / b. */
export function divX80(a: X80, b: X80, rc: number): number {
  const ka = classX80(a.se, a.hi, a.lo);
  const kb = classX80(b.se, b.hi, b.lo);
  if (ka === K_BAD || kb === K_BAD) return X_INVALID;
  if (ka === K_NAN || kb === K_NAN) return nanPick(a, ka, b, kb);
  const neg = ((a.se ^ b.se) & 0x8000) !== 0;
  if (ka === K_INF) {
    if (kb === K_INF) return X_INVALID;
    setRes(neg ? 0xffff : 0x7fff, 0x80000000, 0);
    return X_OK;
  }
  if (kb === K_INF) {
    setRes(neg ? 0x8000 : 0, 0, 0);
    return X_OK;
  }
  if (kb === K_ZERO) {
    if (ka === K_ZERO) return X_INVALID;
    setRes(neg ? 0xffff : 0x7fff, 0x80000000, 0);
    return X_ZERODIV;
  }
  if (ka === K_ZERO) {
    setRes(neg ? 0x8000 : 0, 0, 0);
    return X_OK;
  }
  // Normalize both significands (denormals) so the quotient has a known magnitude.
  lload(LA, a.hi, a.lo, 0);
  lload(LB, b.hi, b.lo, 0);
  let exp = expOf(a.se) - expOf(b.se);
  const pa = ltop(LA);
  const pb = ltop(LB);
  lshl(LA, 63 - pa);
  lshl(LB, 63 - pb);
  exp += pa - pb;
  if (lcmp(LA, LB) < 0) {
    lshl(LA, 1);
    exp--;
  }
  lzero(LQ);
  for (let k = 0; k < 67; k++) {
    lshl(LQ, 1);
    if (lcmp(LA, LB) >= 0) {
      lsub(LA, LB);
      LQ[0] += 1;
    }
    lshl(LA, 1);
  }
  lshl(LQ, 1);
  if (!lisZero(LA)) LQ[0] += 1;
  roundPack(neg, LQ, exp - 67, rc);
  return X_OK;
}

/** RES = sqrt(a). */
export function sqrtX80(a: X80, rc: number): number {
  const ka = classX80(a.se, a.hi, a.lo);
  if (ka === K_BAD) return X_INVALID;
  if (ka === K_NAN) return nanPick(a, ka, a, ka);
  if (ka === K_ZERO) {
    setRes(a.se, 0, 0);
    return X_OK;
  }
  if (a.se & 0x8000) return X_INVALID;
  if (ka === K_INF) {
    setRes(0x7fff, 0x80000000, 0);
    return X_OK;
  }
  // value = M * 2^e2 with M the 64-bit significand; make e2 even, then N = M << 66.
  lload(LA, a.hi, a.lo, 0);
  const top = ltop(LA);
  lshl(LA, 63 - top); // denormals: normalize
  let e2 = expOf(a.se) - 63 - (63 - top);
  if (e2 & 1) {
    lshl(LA, 1);
    e2--;
  }
  // N = M' << 66, M' the (64- or 65-bit) significand in LA. floor(sqrt(N)) by the
  // digit-pair method on 32-bit words (rem and root stay below 2^68), then the sticky bit:
  // the same bits as a long division on limbs, some fifty times faster (every fsqrt).
  const m0 = LA[0] + LA[1] * 65536;
  const m1 = LA[2] + LA[3] * 65536;
  const m2 = LA[4];
  let r0 = 0;
  let r1 = 0;
  let r2 = 0;
  let q0 = 0;
  let q1 = 0;
  let q2 = 0;
  for (let p = 65; p >= 0; p--) {
    // The pair p of N: bits 2p-66 and up of M' (N's low 66 bits are zero).
    let digit = 0;
    if (p >= 33) {
      const at = 2 * (p - 33);
      const w = at < 32 ? m0 : at < 64 ? m1 : m2;
      digit = (w >>> (at & 31)) & 3;
    }
    r2 = ((r2 << 2) | (r1 >>> 30)) >>> 0;
    r1 = ((r1 << 2) | (r0 >>> 30)) >>> 0;
    r0 = ((r0 << 2) | digit) >>> 0;
    const t2 = ((q2 << 2) | (q1 >>> 30)) >>> 0;
    const t1 = ((q1 << 2) | (q0 >>> 30)) >>> 0;
    const t0 = ((q0 << 2) | 1) >>> 0;
    q2 = ((q2 << 1) | (q1 >>> 31)) >>> 0;
    q1 = ((q1 << 1) | (q0 >>> 31)) >>> 0;
    q0 = (q0 << 1) >>> 0;
    if (r2 > t2 || (r2 === t2 && (r1 > t1 || (r1 === t1 && r0 >= t0)))) {
      let d = r0 - t0;
      let borrow = d < 0 ? 1 : 0;
      r0 = d + borrow * 4294967296;
      d = r1 - t1 - borrow;
      borrow = d < 0 ? 1 : 0;
      r1 = d + borrow * 4294967296;
      r2 = r2 - t2 - borrow;
      q0 = (q0 | 1) >>> 0;
    }
  }
  // LQ = root << 1 | (remainder != 0).
  const s0 = ((q0 << 1) | ((r0 | r1 | r2) !== 0 ? 1 : 0)) >>> 0;
  const s1 = ((q1 << 1) | (q0 >>> 31)) >>> 0;
  const s2 = ((q2 << 1) | (q1 >>> 31)) >>> 0;
  LQ.fill(0);
  LQ[0] = s0 & 0xffff;
  LQ[1] = s0 >>> 16;
  LQ[2] = s1 & 0xffff;
  LQ[3] = s1 >>> 16;
  LQ[4] = s2 & 0xffff;
  LQ[5] = s2 >>> 16;
  roundPack(false, LQ, e2 / 2 - 33 - 1, rc);
  return X_OK;
}

/** Compares two 80-bit values: 0 a > b, 1 a < b, 2 equal, 3 unordered. */
export function cmpX80(a: X80, b: X80): number {
  const ka = classX80(a.se, a.hi, a.lo);
  const kb = classX80(b.se, b.hi, b.lo);
  if (ka >= K_NAN || kb >= K_NAN) return 3;
  if (ka === K_ZERO && kb === K_ZERO) return 2;
  const na = ka !== K_ZERO && (a.se & 0x8000) !== 0;
  const nb = kb !== K_ZERO && (b.se & 0x8000) !== 0;
  if (na !== nb) return na ? 1 : 0;
  let c: number;
  const ea = ka === K_ZERO ? -1 : a.se & 0x7fff;
  const eb = kb === K_ZERO ? -1 : b.se & 0x7fff;
  if (ea !== eb) c = ea > eb ? 1 : -1;
  else if (a.hi !== b.hi) c = a.hi >>> 0 > b.hi >>> 0 ? 1 : -1;
  else if (a.lo !== b.lo) c = a.lo >>> 0 > b.lo >>> 0 ? 1 : -1;
  else return 2;
  if (na) c = -c;
  return c > 0 ? 0 : 1;
}
