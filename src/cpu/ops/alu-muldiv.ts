/**
 * mul, imul (one, two and three operands), div and idiv.
 *
 * Multiplies set CF = OF = "the high half is significant"; SF/ZF/PF (undefined in the SDM)
 * come from the low half of the product and AF is 0, as QEMU does. Divides raise #DE for a
 * zero divisor and for a quotient that does not fit, before touching any register; they
 * leave the flags unchanged (undefined in the SDM).
 * 64-bit products and dividends are handled in 16-bit limbs: no bigint, no allocation.
 */
import type { Cpu } from "../cpu.js";
import * as regsNs from "../regs.js";
import type { Def, Handler } from "./table.js";

// Module-level copies of imported constants: V8 constant-folds these, whereas each use of an
// imported binding in optimized code costs a module-cell load and a TDZ check (hot paths).
const { CF, DE, EAX, EDX, OF } = regsNs;

const CFOF = CF | OF;

/** High half of the last mulHi* product; remainder of the last udiv64. */
let hiOut = 0;
let remOut = 0;

/** Low 32 bits of a*b; the unsigned high 32 bits go to hiOut. */
function mulU32(a: number, b: number): number {
  const al = a & 0xffff;
  const ah = a >>> 16;
  const bl = b & 0xffff;
  const bh = b >>> 16;
  const ll = al * bl;
  const lh = al * bh;
  const hl = ah * bl;
  const mid = (ll >>> 16) + (lh & 0xffff) + (hl & 0xffff);
  hiOut = (ah * bh + (lh >>> 16) + (hl >>> 16) + (mid >>> 16)) | 0;
  return Math.imul(a, b);
}

/** Low 32 bits of the signed product a*b; the signed high 32 bits go to hiOut. */
function mulS32(a: number, b: number): number {
  const lo = mulU32(a, b);
  hiOut = (hiOut - (a < 0 ? b : 0) - (b < 0 ? a : 0)) | 0;
  return lo;
}

/**
 * Unsigned (hi:lo) / d for uint32 hi, lo and 0 < d < 2^32 (as non-negative numbers).
 * Returns the quotient (a non-negative number), or -1 when it needs more than 32 bits;
 * the remainder goes to remOut. Long division in 16-bit steps keeps every value below 2^48.
 */
function udiv64(hi: number, lo: number, d: number): number {
  if (hi >= d) return -1;
  if (hi === 0) {
    const q = Math.floor(lo / d);
    remOut = lo - q * d;
    return q;
  }
  let x = hi * 65536 + (lo >>> 16);
  const q1 = Math.floor(x / d);
  x = (x - q1 * d) * 65536 + (lo & 0xffff);
  const q0 = Math.floor(x / d);
  remOut = x - q0 * d;
  return q1 * 65536 + q0;
}

// ------------------------------------------------------------------ one-operand mul/imul

const mulEb: Handler = (cpu, s) => {
  const p = cpu.regs8[0] * cpu.rm8(s);
  cpu.regs16[0] = p;
  cpu.lazyRes(p & 0xff, 8, p > 0xff ? CFOF : 0);
};
const mulEw: Handler = (cpu, s) => {
  const p = cpu.regs16[0] * cpu.rm16(s);
  const lo = p & 0xffff;
  const hi = p >>> 16;
  cpu.regs16[0] = lo;
  cpu.regs16[4] = hi;
  cpu.lazyRes(lo, 16, hi !== 0 ? CFOF : 0);
};
const mulEd: Handler = (cpu, s) => {
  const lo = mulU32(cpu.regs[EAX], cpu.rm32(s));
  cpu.regs[EAX] = lo;
  cpu.regs[EDX] = hiOut;
  cpu.lazyRes(lo, 32, hiOut !== 0 ? CFOF : 0);
};
const imulEb: Handler = (cpu, s) => {
  const p = ((cpu.regs8[0] << 24) >> 24) * ((cpu.rm8(s) << 24) >> 24);
  cpu.regs16[0] = p;
  cpu.lazyRes(p & 0xff, 8, p !== (p << 24) >> 24 ? CFOF : 0);
};
const imulEw: Handler = (cpu, s) => {
  const p = ((cpu.regs16[0] << 16) >> 16) * ((cpu.rm16(s) << 16) >> 16);
  cpu.regs16[0] = p;
  cpu.regs16[4] = p >> 16;
  cpu.lazyRes(p & 0xffff, 16, p !== (p << 16) >> 16 ? CFOF : 0);
};
const imulEd: Handler = (cpu, s) => {
  const lo = mulS32(cpu.regs[EAX], cpu.rm32(s));
  cpu.regs[EAX] = lo;
  cpu.regs[EDX] = hiOut;
  cpu.lazyRes(lo, 32, hiOut !== lo >> 31 ? CFOF : 0);
};

// ------------------------------------------------------------------ two/three-operand imul

function imul16(cpu: Cpu, a: number, b: number): number {
  const p = ((a << 16) >> 16) * ((b << 16) >> 16);
  const r = p & 0xffff;
  cpu.lazyRes(r, 16, p !== (p << 16) >> 16 ? CFOF : 0);
  return r;
}
function imul32(cpu: Cpu, a: number, b: number): number {
  const r = Math.imul(a, b);
  // The double product is exact whenever the true product fits in 32 bits.
  cpu.lazyRes(r, 32, a * b !== r ? CFOF : 0);
  return r;
}

/** 0F AF imul Gv, Ev. */
const imulGwEw: Handler = (cpu, s) => {
  const b = cpu.rm16(s);
  const r = (cpu.dc.modrm[s] >> 2) & 0xe;
  cpu.regs16[r] = imul16(cpu, cpu.regs16[r], b);
};
const imulGdEd: Handler = (cpu, s) => {
  const b = cpu.rm32(s);
  const r = (cpu.dc.modrm[s] >> 3) & 7;
  cpu.regs[r] = imul32(cpu, cpu.regs[r], b);
};
/** 69 iv / 6B ib: imul Gv, Ev, imm (the decoder sign-extends both immediates). */
const imulGwEwI: Handler = (cpu, s) => {
  const v = imul16(cpu, cpu.rm16(s), cpu.dc.imm[s] & 0xffff);
  cpu.regs16[(cpu.dc.modrm[s] >> 2) & 0xe] = v;
};
const imulGdEdI: Handler = (cpu, s) => {
  const v = imul32(cpu, cpu.rm32(s), cpu.dc.imm[s]);
  cpu.regs[(cpu.dc.modrm[s] >> 3) & 7] = v;
};

// ------------------------------------------------------------------ div/idiv

const divEb: Handler = (cpu, s) => {
  const d = cpu.rm8(s);
  if (d === 0) cpu.fault(DE, 0);
  const n = cpu.regs16[0];
  const q = Math.floor(n / d);
  if (q > 0xff) cpu.fault(DE, 0);
  cpu.regs16[0] = ((n - q * d) << 8) | q;
};
const divEw: Handler = (cpu, s) => {
  const d = cpu.rm16(s);
  if (d === 0) cpu.fault(DE, 0);
  const n = ((cpu.regs16[4] << 16) | cpu.regs16[0]) >>> 0;
  const q = Math.floor(n / d);
  if (q > 0xffff) cpu.fault(DE, 0);
  cpu.regs16[0] = q;
  cpu.regs16[4] = n - q * d;
};
const divEd: Handler = (cpu, s) => {
  const d = cpu.rm32(s) >>> 0;
  if (d === 0) cpu.fault(DE, 0);
  const q = udiv64(cpu.regs[EDX] >>> 0, cpu.regs[EAX] >>> 0, d);
  if (q < 0) cpu.fault(DE, 0);
  cpu.regs[EAX] = q | 0;
  cpu.regs[EDX] = remOut | 0;
};
const idivEb: Handler = (cpu, s) => {
  const d = (cpu.rm8(s) << 24) >> 24;
  if (d === 0) cpu.fault(DE, 0);
  const n = (cpu.regs16[0] << 16) >> 16;
  const q = Math.trunc(n / d);
  if (q > 127 || q < -128) cpu.fault(DE, 0);
  cpu.regs16[0] = (((n % d) & 0xff) << 8) | (q & 0xff);
};
const idivEw: Handler = (cpu, s) => {
  const d = (cpu.rm16(s) << 16) >> 16;
  if (d === 0) cpu.fault(DE, 0);
  const n = (cpu.regs16[4] << 16) | cpu.regs16[0];
  const q = Math.trunc(n / d);
  if (q > 32767 || q < -32768) cpu.fault(DE, 0);
  cpu.regs16[0] = q;
  cpu.regs16[4] = n % d;
};
const idivEd: Handler = (cpu, s) => {
  const d = cpu.rm32(s);
  if (d === 0) cpu.fault(DE, 0);
  let hi = cpu.regs[EDX];
  let lo = cpu.regs[EAX];
  const neg = hi < 0;
  if (neg) {
    // Negate the 64-bit dividend to its magnitude.
    hi = ~hi + (lo === 0 ? 1 : 0);
    lo = -lo;
  }
  const qm = udiv64(hi >>> 0, lo >>> 0, Math.abs(d));
  if (qm < 0 || qm > (neg !== d < 0 ? 0x80000000 : 0x7fffffff)) cpu.fault(DE, 0);
  cpu.regs[EAX] = neg !== d < 0 ? -qm | 0 : qm | 0;
  cpu.regs[EDX] = neg ? -remOut | 0 : remOut | 0;
};

export function registerMulDiv(def: Def): void {
  def(0, 0xf6, 4, 0, mulEb);
  def(0, 0xf7, 4, 16, mulEw);
  def(0, 0xf7, 4, 32, mulEd);
  def(0, 0xf6, 5, 0, imulEb);
  def(0, 0xf7, 5, 16, imulEw);
  def(0, 0xf7, 5, 32, imulEd);
  def(0, 0xf6, 6, 0, divEb);
  def(0, 0xf7, 6, 16, divEw);
  def(0, 0xf7, 6, 32, divEd);
  def(0, 0xf6, 7, 0, idivEb);
  def(0, 0xf7, 7, 16, idivEw);
  def(0, 0xf7, 7, 32, idivEd);
  def(1, 0xaf, 0, 16, imulGwEw);
  def(1, 0xaf, 0, 32, imulGdEd);
  def(0, 0x69, 0, 16, imulGwEwI);
  def(0, 0x69, 0, 32, imulGdEdI);
  def(0, 0x6b, 0, 16, imulGwEwI);
  def(0, 0x6b, 0, 32, imulGdEdI);
}
