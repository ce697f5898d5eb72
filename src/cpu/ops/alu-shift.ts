/**
 * Shifts and rotates: C0/C1 (imm8), D0/D1 (by 1), D2/D3 (by CL) with ModRM reg
 * rol ror rcl rcr shl shr sal(=shl) sar, and shld/shrd (0F A4 A5 AC AD).
 *
 * The count is masked to 5 bits; a masked count of 0 changes no flag (the operand is still
 * written back, as hardware does). Flags the SDM leaves undefined follow QEMU, the reference
 * the test vectors come from: OF is computed by the count-1 formula for every count, AF is 0
 * after shifts, rotates touch only CF and OF, and rcl/rcr of 8/16 bits rotate by count mod
 * 9/17 (a zero remainder changes nothing). A 16-bit shld/shrd with a count above 16 shifts
 * the 48-bit dest:src:dest, as Intel processors do.
 */
import type { Cpu } from "../cpu.js";
import * as regsNs from "../regs.js";
import type { Def, DefReg, Handler } from "./table.js";

// Module-level copies of imported constants: V8 constant-folds these, whereas each use of an
// imported binding in optimized code costs a module-cell load and a TDZ check (hot paths).
const { CF, OF } = regsNs;

export const ROL = 0;
export const ROR = 1;
const RCL = 2;
const RCR = 3;
/** Shl; 6 (sal) is the same operation. */
export const SHL = 4;
export const SHR = 5;
export const SAL = 6;
export const SAR = 7;

/** Sets CF and OF of a rotate; the other flags stay. */
function rotFlags(cpu: Cpu, cf: number, of: number): void {
  const f = cpu.getFlags();
  cpu.flags = (f & ~(CF | OF)) | cf | (of << 11);
}

/** Flags of a shift: CF, OF as given, AF 0, SF/ZF/PF from the result. */
function shiftFlags(cpu: Cpu, r: number, size: number, cf: number, of: number): void {
  cpu.lazyRes(r, size, cf | (of << 11));
}

// ------------------------------------------------------------------ 8-bit

function shift8(cpu: Cpu, op: number, v: number, c: number): number {
  if (c === 0) return v;
  let r: number;
  let t: number;
  switch (op) {
    case ROL:
      t = c & 7;
      r = ((v << t) | (v >>> (8 - t))) & 0xff;
      rotFlags(cpu, r & 1, ((r >> 7) ^ r) & 1);
      return r;
    case ROR:
      t = c & 7;
      r = ((v >>> t) | (v << (8 - t))) & 0xff;
      rotFlags(cpu, r >> 7, ((r >> 7) ^ (r >> 6)) & 1);
      return r;
    case RCL:
      t = c % 9;
      if (t === 0) return v;
      r = ((v << t) | (cpu.cf() << (t - 1)) | (t > 1 ? v >>> (9 - t) : 0)) & 0xff;
      rotFlags(cpu, (v >>> (8 - t)) & 1, ((v ^ r) >> 7) & 1);
      return r;
    case RCR:
      t = c % 9;
      if (t === 0) return v;
      r = ((v >>> t) | (cpu.cf() << (8 - t)) | (t > 1 ? v << (9 - t) : 0)) & 0xff;
      rotFlags(cpu, (v >>> (t - 1)) & 1, ((v ^ r) >> 7) & 1);
      return r;
    case SHR:
      r = v >>> c;
      t = v >>> (c - 1);
      shiftFlags(cpu, r, 8, t & 1, ((t ^ r) >> 7) & 1);
      return r;
    case SAR:
      t = (v << 24) >> 24;
      r = (t >> c) & 0xff;
      shiftFlags(cpu, r, 8, (t >> (c - 1)) & 1, 0);
      return r;
    default: {
      // shl / sal
      r = (v << c) & 0xff;
      const cf = ((v << (c - 1)) >> 7) & 1;
      shiftFlags(cpu, r, 8, cf, (r >> 7) ^ cf);
      return r;
    }
  }
}

// ------------------------------------------------------------------ 16-bit

function shift16(cpu: Cpu, op: number, v: number, c: number): number {
  if (c === 0) return v;
  let r: number;
  let t: number;
  switch (op) {
    case ROL:
      t = c & 15;
      r = ((v << t) | (v >>> (16 - t))) & 0xffff;
      rotFlags(cpu, r & 1, ((r >> 15) ^ r) & 1);
      return r;
    case ROR:
      t = c & 15;
      r = ((v >>> t) | (v << (16 - t))) & 0xffff;
      rotFlags(cpu, r >> 15, ((r >> 15) ^ (r >> 14)) & 1);
      return r;
    case RCL:
      t = c % 17;
      if (t === 0) return v;
      r = ((v << t) | (cpu.cf() << (t - 1)) | (t > 1 ? v >>> (17 - t) : 0)) & 0xffff;
      rotFlags(cpu, (v >>> (16 - t)) & 1, ((v ^ r) >> 15) & 1);
      return r;
    case RCR:
      t = c % 17;
      if (t === 0) return v;
      r = ((v >>> t) | (cpu.cf() << (16 - t)) | (t > 1 ? v << (17 - t) : 0)) & 0xffff;
      rotFlags(cpu, (v >>> (t - 1)) & 1, ((v ^ r) >> 15) & 1);
      return r;
    case SHR:
      r = v >>> c;
      t = v >>> (c - 1);
      shiftFlags(cpu, r, 16, t & 1, ((t ^ r) >> 15) & 1);
      return r;
    case SAR:
      t = (v << 16) >> 16;
      r = (t >> c) & 0xffff;
      shiftFlags(cpu, r, 16, (t >> (c - 1)) & 1, 0);
      return r;
    default: {
      r = (v << c) & 0xffff;
      const cf = ((v << (c - 1)) >> 15) & 1;
      shiftFlags(cpu, r, 16, cf, (r >> 15) ^ cf);
      return r;
    }
  }
}

// ------------------------------------------------------------------ 32-bit

function shift32(cpu: Cpu, op: number, v: number, c: number): number {
  if (c === 0) return v;
  let r: number;
  let t: number;
  switch (op) {
    case ROL:
      r = (v << c) | (v >>> (32 - c));
      rotFlags(cpu, r & 1, ((r >>> 31) ^ r) & 1);
      return r;
    case ROR:
      r = (v >>> c) | (v << (32 - c));
      rotFlags(cpu, r >>> 31, ((r >>> 31) ^ (r >>> 30)) & 1);
      return r;
    case RCL:
      r = (v << c) | (cpu.cf() << (c - 1)) | (c > 1 ? v >>> (33 - c) : 0);
      rotFlags(cpu, (v >>> (32 - c)) & 1, (v ^ r) >>> 31);
      return r;
    case RCR:
      r = (v >>> c) | (cpu.cf() << (32 - c)) | (c > 1 ? v << (33 - c) : 0);
      rotFlags(cpu, (v >>> (c - 1)) & 1, (v ^ r) >>> 31);
      return r;
    case SHR:
      r = (v >>> c) | 0;
      t = v >>> (c - 1);
      shiftFlags(cpu, r, 32, t & 1, (t ^ r) >>> 31);
      return r;
    case SAR:
      r = v >> c;
      shiftFlags(cpu, r, 32, (v >> (c - 1)) & 1, 0);
      return r;
    default: {
      r = v << c;
      const cf = (v << (c - 1)) >>> 31;
      shiftFlags(cpu, r, 32, cf, (r >>> 31) ^ cf);
      return r;
    }
  }
}

// ------------------------------------------------------------------ group handlers

const shEb1: Handler = (cpu, s) => cpu.putRm8(s, shift8(cpu, cpu.dc.op[s] & 7, cpu.modRm8(s), 1));
const shEw1: Handler = (cpu, s) => cpu.putRm16(s, shift16(cpu, cpu.dc.op[s] & 7, cpu.modRm16(s), 1));
const shEd1: Handler = (cpu, s) => cpu.putRm32(s, shift32(cpu, cpu.dc.op[s] & 7, cpu.modRm32(s), 1));
const shEbCl: Handler = (cpu, s) =>
  cpu.putRm8(s, shift8(cpu, cpu.dc.op[s] & 7, cpu.modRm8(s), cpu.regs8[4] & 0x1f));
const shEwCl: Handler = (cpu, s) =>
  cpu.putRm16(s, shift16(cpu, cpu.dc.op[s] & 7, cpu.modRm16(s), cpu.regs8[4] & 0x1f));
const shEdCl: Handler = (cpu, s) =>
  cpu.putRm32(s, shift32(cpu, cpu.dc.op[s] & 7, cpu.modRm32(s), cpu.regs8[4] & 0x1f));
const shEbIb: Handler = (cpu, s) =>
  cpu.putRm8(s, shift8(cpu, cpu.dc.op[s] & 7, cpu.modRm8(s), cpu.dc.imm[s] & 0x1f));
const shEwIb: Handler = (cpu, s) =>
  cpu.putRm16(s, shift16(cpu, cpu.dc.op[s] & 7, cpu.modRm16(s), cpu.dc.imm[s] & 0x1f));
const shEdIb: Handler = (cpu, s) =>
  cpu.putRm32(s, shift32(cpu, cpu.dc.op[s] & 7, cpu.modRm32(s), cpu.dc.imm[s] & 0x1f));

// Register forms (ModRM mod = 3) of the hot 32-bit ones.
const shEdIbR: Handler = (cpu, s) => {
  const dc = cpu.dc;
  const r = dc.modrm[s] & 7;
  cpu.regs[r] = shift32(cpu, dc.op[s] & 7, cpu.regs[r], dc.imm[s] & 0x1f);
};
const shEd1R: Handler = (cpu, s) => {
  const dc = cpu.dc;
  const r = dc.modrm[s] & 7;
  cpu.regs[r] = shift32(cpu, dc.op[s] & 7, cpu.regs[r], 1);
};
const shEdClR: Handler = (cpu, s) => {
  const dc = cpu.dc;
  const r = dc.modrm[s] & 7;
  cpu.regs[r] = shift32(cpu, dc.op[s] & 7, cpu.regs[r], cpu.regs8[4] & 0x1f);
};

// ------------------------------------------------------------------ shld / shrd

/** 2^k for k = 0..32 (doubles: the 16-bit forms shift a 48-bit value exactly). */
const POW2 = new Float64Array(33);
for (let k = 0; k <= 32; k++) POW2[k] = 2 ** k;

function shld16(cpu: Cpu, d: number, src: number, c: number): number {
  if (c === 0) return d;
  const x = d * POW2[32] + src * POW2[16] + d;
  const r = Math.floor(x / POW2[32 - c]) % 65536;
  const t = Math.floor(x / POW2[33 - c]) % 65536;
  const cf = (t >> 15) & 1;
  shiftFlags(cpu, r, 16, cf, ((t ^ r) >> 15) & 1);
  return r;
}
function shrd16(cpu: Cpu, d: number, src: number, c: number): number {
  if (c === 0) return d;
  const x = d * POW2[32] + src * POW2[16] + d;
  const r = Math.floor(x / POW2[c]) % 65536;
  const t = Math.floor(x / POW2[c - 1]) % 65536;
  shiftFlags(cpu, r, 16, t & 1, ((t ^ r) >> 15) & 1);
  return r;
}
function shld32(cpu: Cpu, d: number, src: number, c: number): number {
  if (c === 0) return d;
  const r = (d << c) | (src >>> (32 - c));
  const cf = (d >>> (32 - c)) & 1;
  shiftFlags(cpu, r, 32, cf, (r >>> 31) ^ cf);
  return r;
}
function shrd32(cpu: Cpu, d: number, src: number, c: number): number {
  if (c === 0) return d;
  const r = (d >>> c) | (src << (32 - c));
  const t = c === 1 ? d : (d >>> (c - 1)) | (src << (33 - c));
  shiftFlags(cpu, r, 32, t & 1, (t ^ r) >>> 31);
  return r;
}

function regOf16(cpu: Cpu, s: number): number {
  return cpu.regs16[(cpu.dc.modrm[s] >> 2) & 0xe];
}
function regOf32(cpu: Cpu, s: number): number {
  return cpu.regs[(cpu.dc.modrm[s] >> 3) & 7];
}

const shldEwIb: Handler = (cpu, s) =>
  cpu.putRm16(s, shld16(cpu, cpu.modRm16(s), regOf16(cpu, s), cpu.dc.imm[s] & 0x1f));
const shldEdIb: Handler = (cpu, s) =>
  cpu.putRm32(s, shld32(cpu, cpu.modRm32(s), regOf32(cpu, s), cpu.dc.imm[s] & 0x1f));
const shldEwCl: Handler = (cpu, s) =>
  cpu.putRm16(s, shld16(cpu, cpu.modRm16(s), regOf16(cpu, s), cpu.regs8[4] & 0x1f));
const shldEdCl: Handler = (cpu, s) =>
  cpu.putRm32(s, shld32(cpu, cpu.modRm32(s), regOf32(cpu, s), cpu.regs8[4] & 0x1f));
const shrdEwIb: Handler = (cpu, s) =>
  cpu.putRm16(s, shrd16(cpu, cpu.modRm16(s), regOf16(cpu, s), cpu.dc.imm[s] & 0x1f));
const shrdEdIb: Handler = (cpu, s) =>
  cpu.putRm32(s, shrd32(cpu, cpu.modRm32(s), regOf32(cpu, s), cpu.dc.imm[s] & 0x1f));
const shrdEwCl: Handler = (cpu, s) =>
  cpu.putRm16(s, shrd16(cpu, cpu.modRm16(s), regOf16(cpu, s), cpu.regs8[4] & 0x1f));
const shrdEdCl: Handler = (cpu, s) =>
  cpu.putRm32(s, shrd32(cpu, cpu.modRm32(s), regOf32(cpu, s), cpu.regs8[4] & 0x1f));

export function registerShift(def: Def, defReg: DefReg): void {
  for (let sub = 0; sub < 8; sub++) {
    defReg(0, 0xc1, sub, 32, shEdIbR);
    defReg(0, 0xd1, sub, 32, shEd1R);
    defReg(0, 0xd3, sub, 32, shEdClR);
    def(0, 0xc0, sub, 0, shEbIb);
    def(0, 0xc1, sub, 16, shEwIb);
    def(0, 0xc1, sub, 32, shEdIb);
    def(0, 0xd0, sub, 0, shEb1);
    def(0, 0xd1, sub, 16, shEw1);
    def(0, 0xd1, sub, 32, shEd1);
    def(0, 0xd2, sub, 0, shEbCl);
    def(0, 0xd3, sub, 16, shEwCl);
    def(0, 0xd3, sub, 32, shEdCl);
  }
  def(1, 0xa4, 0, 16, shldEwIb);
  def(1, 0xa4, 0, 32, shldEdIb);
  def(1, 0xa5, 0, 16, shldEwCl);
  def(1, 0xa5, 0, 32, shldEdCl);
  def(1, 0xac, 0, 16, shrdEwIb);
  def(1, 0xac, 0, 32, shrdEdIb);
  def(1, 0xad, 0, 16, shrdEwCl);
  def(1, 0xad, 0, 32, shrdEdCl);
}
