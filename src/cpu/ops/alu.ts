/**
 * Integer arithmetic and logic: add/or/adc/sbb/and/sub/xor/cmp in all their forms, test,
 * inc/dec, not/neg, the BCD adjusts, cbw/cwd and salc. Shifts, multiplies and divides, and
 * the bit/condition instructions live in alu-shift.ts, alu-muldiv.ts and alu-bits.ts and are
 * registered from here.
 *
 * Flags are lazy (flags.ts): a handler records its operands and result; where Intel leaves a
 * flag undefined we do what QEMU (the reference the test vectors come from) does.
 */
import type { Cpu } from "../cpu.js";
import * as flagsNs from "../flags.js";
import * as regsNs from "../regs.js";
import { registerBits } from "./alu-bits.js";
import { registerMulDiv } from "./alu-muldiv.js";
import { registerShift } from "./alu-shift.js";
import type { Def, DefReg, Handler } from "./table.js";

// Module-level copies of imported constants: V8 constant-folds these, whereas each use of an
// imported binding in optimized code costs a module-cell load and a TDZ check (hot paths).
const { L_ADC, L_ADD, L_DEC, L_INC, L_LOGIC, L_SBB, L_SUB, PARITY } = flagsNs;
const { AF, CF, DE, OF, PF, SF, ZF } = regsNs;

// The eight ALU operations, numbered as opcode bits 5-3 of 00-3F and the ModRM reg of 80-83.
export const ADD = 0;
export const OR = 1;
export const ADC = 2;
export const SBB = 3;
export const AND = 4;
/** Sub: the default case of the alu functions below, shared with cmp. */
export const SUB = 5;
export const XOR = 6;
export const CMP = 7;

/** ALU operation of a handler id: opcode bits 5-3 (00-3D) sit at id bits 8-6. */
function opOf(cpu: Cpu, s: number): number {
  return (cpu.dc.op[s] >> 6) & 7;
}

/** ModRM reg field of slot s. */
function regOf(cpu: Cpu, s: number): number {
  return (cpu.dc.modrm[s] >> 3) & 7;
}

// ------------------------------------------------------------------ ALU cores

function alu8(cpu: Cpu, op: number, a: number, b: number): number {
  let r: number;
  let c: number;
  switch (op) {
    case ADD:
      r = (a + b) & 0xff;
      cpu.lazy(L_ADD, a, b, r, 8);
      return r;
    case OR:
      r = a | b;
      cpu.lazy(L_LOGIC, a, b, r, 8);
      return r;
    case ADC:
      c = cpu.cf();
      r = (a + b + c) & 0xff;
      cpu.lazy(c ? L_ADC : L_ADD, a, b, r, 8);
      return r;
    case SBB:
      c = cpu.cf();
      r = (a - b - c) & 0xff;
      cpu.lazy(c ? L_SBB : L_SUB, a, b, r, 8);
      return r;
    case AND:
      r = a & b;
      cpu.lazy(L_LOGIC, a, b, r, 8);
      return r;
    case XOR:
      r = a ^ b;
      cpu.lazy(L_LOGIC, a, b, r, 8);
      return r;
    default:
      r = (a - b) & 0xff;
      cpu.lazy(L_SUB, a, b, r, 8);
      return r;
  }
}

function alu16(cpu: Cpu, op: number, a: number, b: number): number {
  let r: number;
  let c: number;
  switch (op) {
    case ADD:
      r = (a + b) & 0xffff;
      cpu.lazy(L_ADD, a, b, r, 16);
      return r;
    case OR:
      r = a | b;
      cpu.lazy(L_LOGIC, a, b, r, 16);
      return r;
    case ADC:
      c = cpu.cf();
      r = (a + b + c) & 0xffff;
      cpu.lazy(c ? L_ADC : L_ADD, a, b, r, 16);
      return r;
    case SBB:
      c = cpu.cf();
      r = (a - b - c) & 0xffff;
      cpu.lazy(c ? L_SBB : L_SUB, a, b, r, 16);
      return r;
    case AND:
      r = a & b;
      cpu.lazy(L_LOGIC, a, b, r, 16);
      return r;
    case XOR:
      r = a ^ b;
      cpu.lazy(L_LOGIC, a, b, r, 16);
      return r;
    default:
      r = (a - b) & 0xffff;
      cpu.lazy(L_SUB, a, b, r, 16);
      return r;
  }
}

function alu32(cpu: Cpu, op: number, a: number, b: number): number {
  let r: number;
  let c: number;
  switch (op) {
    case ADD:
      r = (a + b) | 0;
      cpu.lazy(L_ADD, a, b, r, 32);
      return r;
    case OR:
      r = a | b;
      cpu.lazy(L_LOGIC, a, b, r, 32);
      return r;
    case ADC:
      c = cpu.cf();
      r = (a + b + c) | 0;
      cpu.lazy(c ? L_ADC : L_ADD, a, b, r, 32);
      return r;
    case SBB:
      c = cpu.cf();
      r = (a - b - c) | 0;
      cpu.lazy(c ? L_SBB : L_SUB, a, b, r, 32);
      return r;
    case AND:
      r = a & b;
      cpu.lazy(L_LOGIC, a, b, r, 32);
      return r;
    case XOR:
      r = a ^ b;
      cpu.lazy(L_LOGIC, a, b, r, 32);
      return r;
    default:
      r = (a - b) | 0;
      cpu.lazy(L_SUB, a, b, r, 32);
      return r;
  }
}

// ------------------------------------------------------------------ add..xor (not cmp)

const aluEbGb: Handler = (cpu, s) => {
  const a = cpu.modRm8(s);
  cpu.putRm8(s, alu8(cpu, opOf(cpu, s), a, cpu.reg8(regOf(cpu, s))));
};
const aluEwGw: Handler = (cpu, s) => {
  const a = cpu.modRm16(s);
  cpu.putRm16(s, alu16(cpu, opOf(cpu, s), a, cpu.regs16[regOf(cpu, s) << 1]));
};
const aluEdGd: Handler = (cpu, s) => {
  const a = cpu.modRm32(s);
  cpu.putRm32(s, alu32(cpu, opOf(cpu, s), a, cpu.regs[regOf(cpu, s)]));
};
const aluGbEb: Handler = (cpu, s) => {
  const b = cpu.rm8(s);
  const r = regOf(cpu, s);
  cpu.setReg8(r, alu8(cpu, opOf(cpu, s), cpu.reg8(r), b));
};
const aluGwEw: Handler = (cpu, s) => {
  const b = cpu.rm16(s);
  const r = regOf(cpu, s) << 1;
  cpu.regs16[r] = alu16(cpu, opOf(cpu, s), cpu.regs16[r], b);
};
const aluGdEd: Handler = (cpu, s) => {
  const b = cpu.rm32(s);
  const r = regOf(cpu, s);
  cpu.regs[r] = alu32(cpu, opOf(cpu, s), cpu.regs[r], b);
};
const aluAlIb: Handler = (cpu, s) => {
  cpu.regs8[0] = alu8(cpu, opOf(cpu, s), cpu.regs8[0], cpu.dc.imm[s] & 0xff);
};
const aluAxIw: Handler = (cpu, s) => {
  cpu.regs16[0] = alu16(cpu, opOf(cpu, s), cpu.regs16[0], cpu.dc.imm[s] & 0xffff);
};
const aluEaxId: Handler = (cpu, s) => {
  cpu.regs[0] = alu32(cpu, opOf(cpu, s), cpu.regs[0], cpu.dc.imm[s]);
};
/** 80/82 /0-6, 81 /0-6, 83 /0-6: the operation is the ModRM reg (= id & 7). */
const grpEbIb: Handler = (cpu, s) => {
  const a = cpu.modRm8(s);
  cpu.putRm8(s, alu8(cpu, cpu.dc.op[s] & 7, a, cpu.dc.imm[s] & 0xff));
};
const grpEwIw: Handler = (cpu, s) => {
  const a = cpu.modRm16(s);
  cpu.putRm16(s, alu16(cpu, cpu.dc.op[s] & 7, a, cpu.dc.imm[s] & 0xffff));
};
const grpEdId: Handler = (cpu, s) => {
  const a = cpu.modRm32(s);
  cpu.putRm32(s, alu32(cpu, cpu.dc.op[s] & 7, a, cpu.dc.imm[s]));
};

// Register forms (ModRM mod = 3) of the hot ones: no operand-form dispatch at run time.
const aluEbGbR: Handler = (cpu, s) => {
  const m = cpu.dc.modrm[s];
  cpu.setReg8(m & 7, alu8(cpu, opOf(cpu, s), cpu.reg8(m & 7), cpu.reg8((m >> 3) & 7)));
};
const aluEdGdR: Handler = (cpu, s) => {
  const m = cpu.dc.modrm[s];
  const regs = cpu.regs;
  regs[m & 7] = alu32(cpu, opOf(cpu, s), regs[m & 7], regs[(m >> 3) & 7]);
};
const aluGdEdR: Handler = (cpu, s) => {
  const m = cpu.dc.modrm[s];
  const regs = cpu.regs;
  regs[(m >> 3) & 7] = alu32(cpu, opOf(cpu, s), regs[(m >> 3) & 7], regs[m & 7]);
};
const grpEdIdR: Handler = (cpu, s) => {
  const dc = cpu.dc;
  const r = dc.modrm[s] & 7;
  cpu.regs[r] = alu32(cpu, dc.op[s] & 7, cpu.regs[r], dc.imm[s]);
};

// ------------------------------------------------------------------ cmp (reads only)

function cmp8(cpu: Cpu, a: number, b: number): void {
  cpu.lazy(L_SUB, a, b, (a - b) & 0xff, 8);
}
function cmp16(cpu: Cpu, a: number, b: number): void {
  cpu.lazy(L_SUB, a, b, (a - b) & 0xffff, 16);
}
function cmp32(cpu: Cpu, a: number, b: number): void {
  cpu.lazy(L_SUB, a, b, (a - b) | 0, 32);
}

const cmpEbGb: Handler = (cpu, s) => cmp8(cpu, cpu.rm8(s), cpu.reg8(regOf(cpu, s)));
const cmpEwGw: Handler = (cpu, s) => cmp16(cpu, cpu.rm16(s), cpu.regs16[regOf(cpu, s) << 1]);
const cmpEdGd: Handler = (cpu, s) => cmp32(cpu, cpu.rm32(s), cpu.regs[regOf(cpu, s)]);
const cmpGbEb: Handler = (cpu, s) => {
  const b = cpu.rm8(s);
  cmp8(cpu, cpu.reg8(regOf(cpu, s)), b);
};
const cmpGwEw: Handler = (cpu, s) => {
  const b = cpu.rm16(s);
  cmp16(cpu, cpu.regs16[regOf(cpu, s) << 1], b);
};
const cmpGdEd: Handler = (cpu, s) => {
  const b = cpu.rm32(s);
  cmp32(cpu, cpu.regs[regOf(cpu, s)], b);
};
const cmpAlIb: Handler = (cpu, s) => cmp8(cpu, cpu.regs8[0], cpu.dc.imm[s] & 0xff);
const cmpAxIw: Handler = (cpu, s) => cmp16(cpu, cpu.regs16[0], cpu.dc.imm[s] & 0xffff);
const cmpEaxId: Handler = (cpu, s) => cmp32(cpu, cpu.regs[0], cpu.dc.imm[s]);
const cmpEbIb: Handler = (cpu, s) => cmp8(cpu, cpu.rm8(s), cpu.dc.imm[s] & 0xff);
const cmpEwIw: Handler = (cpu, s) => cmp16(cpu, cpu.rm16(s), cpu.dc.imm[s] & 0xffff);
const cmpEdId: Handler = (cpu, s) => cmp32(cpu, cpu.rm32(s), cpu.dc.imm[s]);

const cmpEbGbR: Handler = (cpu, s) => {
  const m = cpu.dc.modrm[s];
  cmp8(cpu, cpu.reg8(m & 7), cpu.reg8((m >> 3) & 7));
};
const cmpEdGdR: Handler = (cpu, s) => {
  const m = cpu.dc.modrm[s];
  cmp32(cpu, cpu.regs[m & 7], cpu.regs[(m >> 3) & 7]);
};
const cmpGdEdR: Handler = (cpu, s) => {
  const m = cpu.dc.modrm[s];
  cmp32(cpu, cpu.regs[(m >> 3) & 7], cpu.regs[m & 7]);
};
const cmpEdIdR: Handler = (cpu, s) => cmp32(cpu, cpu.regs[cpu.dc.modrm[s] & 7], cpu.dc.imm[s]);

// ------------------------------------------------------------------ test

const testEbGb: Handler = (cpu, s) => {
  const r = cpu.rm8(s) & cpu.reg8(regOf(cpu, s));
  cpu.lazy(L_LOGIC, 0, 0, r, 8);
};
const testEwGw: Handler = (cpu, s) => {
  const r = cpu.rm16(s) & cpu.regs16[regOf(cpu, s) << 1];
  cpu.lazy(L_LOGIC, 0, 0, r, 16);
};
const testEdGd: Handler = (cpu, s) => {
  const r = cpu.rm32(s) & cpu.regs[regOf(cpu, s)];
  cpu.lazy(L_LOGIC, 0, 0, r, 32);
};
const testEdGdR: Handler = (cpu, s) => {
  const m = cpu.dc.modrm[s];
  cpu.lazy(L_LOGIC, 0, 0, cpu.regs[m & 7] & cpu.regs[(m >> 3) & 7], 32);
};
const testEbIbR: Handler = (cpu, s) =>
  cpu.lazy(L_LOGIC, 0, 0, cpu.reg8(cpu.dc.modrm[s] & 7) & cpu.dc.imm[s] & 0xff, 8);
const testAlIb: Handler = (cpu, s) => cpu.lazy(L_LOGIC, 0, 0, cpu.regs8[0] & cpu.dc.imm[s] & 0xff, 8);
const testAxIw: Handler = (cpu, s) => cpu.lazy(L_LOGIC, 0, 0, cpu.regs16[0] & cpu.dc.imm[s] & 0xffff, 16);
const testEaxId: Handler = (cpu, s) => cpu.lazy(L_LOGIC, 0, 0, cpu.regs[0] & cpu.dc.imm[s], 32);
const testEbIb: Handler = (cpu, s) => cpu.lazy(L_LOGIC, 0, 0, cpu.rm8(s) & cpu.dc.imm[s] & 0xff, 8);
const testEwIw: Handler = (cpu, s) => cpu.lazy(L_LOGIC, 0, 0, cpu.rm16(s) & cpu.dc.imm[s] & 0xffff, 16);
const testEdId: Handler = (cpu, s) => cpu.lazy(L_LOGIC, 0, 0, cpu.rm32(s) & cpu.dc.imm[s], 32);

// ------------------------------------------------------------------ inc/dec (CF kept)

function inc8(cpu: Cpu, a: number): number {
  const r = (a + 1) & 0xff;
  cpu.keepCF();
  cpu.lazy(L_INC, a, 1, r, 8);
  return r;
}
function dec8(cpu: Cpu, a: number): number {
  const r = (a - 1) & 0xff;
  cpu.keepCF();
  cpu.lazy(L_DEC, a, 1, r, 8);
  return r;
}
function inc16(cpu: Cpu, a: number): number {
  const r = (a + 1) & 0xffff;
  cpu.keepCF();
  cpu.lazy(L_INC, a, 1, r, 16);
  return r;
}
function dec16(cpu: Cpu, a: number): number {
  const r = (a - 1) & 0xffff;
  cpu.keepCF();
  cpu.lazy(L_DEC, a, 1, r, 16);
  return r;
}
function inc32(cpu: Cpu, a: number): number {
  const r = (a + 1) | 0;
  cpu.keepCF();
  cpu.lazy(L_INC, a, 1, r, 32);
  return r;
}
function dec32(cpu: Cpu, a: number): number {
  const r = (a - 1) | 0;
  cpu.keepCF();
  cpu.lazy(L_DEC, a, 1, r, 32);
  return r;
}

/** 40-47 / 48-4F: the register is opcode bits 2-0 (id bits 5-3). */
const incR16: Handler = (cpu, s) => {
  const r = (cpu.dc.op[s] >> 2) & 0xe;
  cpu.regs16[r] = inc16(cpu, cpu.regs16[r]);
};
const incR32: Handler = (cpu, s) => {
  const r = (cpu.dc.op[s] >> 3) & 7;
  cpu.regs[r] = inc32(cpu, cpu.regs[r]);
};
const decR16: Handler = (cpu, s) => {
  const r = (cpu.dc.op[s] >> 2) & 0xe;
  cpu.regs16[r] = dec16(cpu, cpu.regs16[r]);
};
const decR32: Handler = (cpu, s) => {
  const r = (cpu.dc.op[s] >> 3) & 7;
  cpu.regs[r] = dec32(cpu, cpu.regs[r]);
};
const incEb: Handler = (cpu, s) => cpu.putRm8(s, inc8(cpu, cpu.modRm8(s)));
const decEb: Handler = (cpu, s) => cpu.putRm8(s, dec8(cpu, cpu.modRm8(s)));
const incEw: Handler = (cpu, s) => cpu.putRm16(s, inc16(cpu, cpu.modRm16(s)));
const decEw: Handler = (cpu, s) => cpu.putRm16(s, dec16(cpu, cpu.modRm16(s)));
const incEd: Handler = (cpu, s) => cpu.putRm32(s, inc32(cpu, cpu.modRm32(s)));
const decEd: Handler = (cpu, s) => cpu.putRm32(s, dec32(cpu, cpu.modRm32(s)));

// ------------------------------------------------------------------ not / neg

const notEb: Handler = (cpu, s) => cpu.putRm8(s, ~cpu.modRm8(s) & 0xff);
const notEw: Handler = (cpu, s) => cpu.putRm16(s, ~cpu.modRm16(s) & 0xffff);
const notEd: Handler = (cpu, s) => cpu.putRm32(s, ~cpu.modRm32(s));
/** neg is 0 - x: CF = (x != 0), the rest as for sub. */
const negEb: Handler = (cpu, s) => {
  const b = cpu.modRm8(s);
  const r = -b & 0xff;
  cpu.lazy(L_SUB, 0, b, r, 8);
  cpu.putRm8(s, r);
};
const negEw: Handler = (cpu, s) => {
  const b = cpu.modRm16(s);
  const r = -b & 0xffff;
  cpu.lazy(L_SUB, 0, b, r, 16);
  cpu.putRm16(s, r);
};
const negEd: Handler = (cpu, s) => {
  const b = cpu.modRm32(s);
  const r = -b | 0;
  cpu.lazy(L_SUB, 0, b, r, 32);
  cpu.putRm32(s, r);
};

// ------------------------------------------------------------------ BCD and conversions

/** Sets SF, ZF, PF from the byte al and the given CF/AF/OF bits; the other flags stay. */
function setBcdFlags(cpu: Cpu, al: number, cfafof: number): void {
  const f = cpu.getFlags() & ~(CF | PF | AF | ZF | SF | OF);
  cpu.setFlags(f | cfafof | (PARITY[al] << 2) | (al === 0 ? ZF : 0) | (al & 0x80));
}

/** 27 daa (SDM: AF/CF from the low/high adjust; OF undefined, 0 here). */
const daa: Handler = (cpu) => {
  const f = cpu.getFlags();
  const old = cpu.regs8[0];
  let al = old;
  let out = 0;
  if ((al & 0x0f) > 9 || f & AF) {
    al = (al + 6) & 0xff;
    out |= AF;
  }
  if (old > 0x99 || f & CF) {
    al = (al + 0x60) & 0xff;
    out |= CF;
  }
  cpu.regs8[0] = al;
  setBcdFlags(cpu, al, out);
};

/** 2F das. */
const das: Handler = (cpu) => {
  const f = cpu.getFlags();
  const old = cpu.regs8[0];
  let al = old;
  let out = 0;
  if ((al & 0x0f) > 9 || f & AF) {
    out |= AF;
    if (al < 6 || f & CF) out |= CF;
    al = (al - 6) & 0xff;
  }
  if (old > 0x99 || f & CF) {
    al = (al - 0x60) & 0xff;
    out |= CF;
  }
  cpu.regs8[0] = al;
  setBcdFlags(cpu, al, out);
};

/** 37 aaa: AX += 106h when adjusting (a carry out of AL reaches AH); AL &= 0Fh. */
const aaa: Handler = (cpu) => {
  const f = cpu.getFlags();
  const al = cpu.regs8[0];
  if ((al & 0x0f) > 9 || f & AF) {
    cpu.regs16[0] = (cpu.regs16[0] + 0x106) & 0xff0f;
    cpu.setFlags(f | CF | AF);
  } else {
    cpu.regs8[0] = al & 0x0f;
    cpu.setFlags(f & ~(CF | AF));
  }
};

/** 3F aas: AX -= 106h when adjusting; AL &= 0Fh. */
const aas: Handler = (cpu) => {
  const f = cpu.getFlags();
  const al = cpu.regs8[0];
  if ((al & 0x0f) > 9 || f & AF) {
    cpu.regs16[0] = (cpu.regs16[0] - 0x106) & 0xff0f;
    cpu.setFlags(f | CF | AF);
  } else {
    cpu.regs8[0] = al & 0x0f;
    cpu.setFlags(f & ~(CF | AF));
  }
};

/** D4 ib aam: #DE when the base is 0; SF/ZF/PF from AL, CF/OF/AF cleared. */
const aam: Handler = (cpu, s) => {
  const base = cpu.dc.imm[s] & 0xff;
  if (base === 0) cpu.fault(DE, 0);
  const al = cpu.regs8[0];
  const lo = al % base;
  cpu.regs16[0] = (((al / base) | 0) << 8) | lo;
  cpu.lazy(L_LOGIC, 0, 0, lo, 8);
};

/** D5 ib aad: AL = AL + AH * base, AH = 0. */
const aad: Handler = (cpu, s) => {
  const base = cpu.dc.imm[s] & 0xff;
  const al = (cpu.regs8[0] + cpu.regs8[1] * base) & 0xff;
  cpu.regs16[0] = al;
  cpu.lazy(L_LOGIC, 0, 0, al, 8);
};

const cbw: Handler = (cpu) => {
  cpu.regs16[0] = (cpu.regs8[0] << 24) >> 24;
};
const cwde: Handler = (cpu) => {
  cpu.regs[0] = (cpu.regs16[0] << 16) >> 16;
};
const cwd: Handler = (cpu) => {
  cpu.regs16[4] = cpu.regs16[0] & 0x8000 ? 0xffff : 0;
};
const cdq: Handler = (cpu) => {
  cpu.regs[2] = cpu.regs[0] >> 31;
};
/** D6 salc (undocumented): AL = CF ? FFh : 0, flags unchanged. */
const salc: Handler = (cpu) => {
  cpu.regs8[0] = cpu.cf() ? 0xff : 0;
};

// ------------------------------------------------------------------ registration

export function registerAlu(def: Def, defReg: DefReg): void {
  for (let op = 0; op < 8; op++) {
    const base = op << 3;
    if (op === CMP) {
      defReg(0, base, 0, 0, cmpEbGbR);
      defReg(0, base + 1, 0, 32, cmpEdGdR);
      defReg(0, base + 3, 0, 32, cmpGdEdR);
      defReg(0, 0x81, op, 32, cmpEdIdR);
      defReg(0, 0x83, op, 32, cmpEdIdR);
      def(0, base, 0, 0, cmpEbGb);
      def(0, base + 1, 0, 16, cmpEwGw);
      def(0, base + 1, 0, 32, cmpEdGd);
      def(0, base + 2, 0, 0, cmpGbEb);
      def(0, base + 3, 0, 16, cmpGwEw);
      def(0, base + 3, 0, 32, cmpGdEd);
      def(0, base + 4, 0, 0, cmpAlIb);
      def(0, base + 5, 0, 16, cmpAxIw);
      def(0, base + 5, 0, 32, cmpEaxId);
      def(0, 0x80, op, 0, cmpEbIb);
      def(0, 0x82, op, 0, cmpEbIb);
      def(0, 0x81, op, 16, cmpEwIw);
      def(0, 0x81, op, 32, cmpEdId);
      def(0, 0x83, op, 16, cmpEwIw);
      def(0, 0x83, op, 32, cmpEdId);
    } else {
      defReg(0, base, 0, 0, aluEbGbR);
      defReg(0, base + 1, 0, 32, aluEdGdR);
      defReg(0, base + 3, 0, 32, aluGdEdR);
      defReg(0, 0x81, op, 32, grpEdIdR);
      defReg(0, 0x83, op, 32, grpEdIdR);
      def(0, base, 0, 0, aluEbGb);
      def(0, base + 1, 0, 16, aluEwGw);
      def(0, base + 1, 0, 32, aluEdGd);
      def(0, base + 2, 0, 0, aluGbEb);
      def(0, base + 3, 0, 16, aluGwEw);
      def(0, base + 3, 0, 32, aluGdEd);
      def(0, base + 4, 0, 0, aluAlIb);
      def(0, base + 5, 0, 16, aluAxIw);
      def(0, base + 5, 0, 32, aluEaxId);
      def(0, 0x80, op, 0, grpEbIb);
      def(0, 0x82, op, 0, grpEbIb);
      def(0, 0x81, op, 16, grpEwIw);
      def(0, 0x81, op, 32, grpEdId);
      def(0, 0x83, op, 16, grpEwIw);
      def(0, 0x83, op, 32, grpEdId);
    }
  }
  for (let r = 0; r < 8; r++) {
    def(0, 0x40 + r, 0, 16, incR16);
    def(0, 0x40 + r, 0, 32, incR32);
    def(0, 0x48 + r, 0, 16, decR16);
    def(0, 0x48 + r, 0, 32, decR32);
  }
  def(0, 0xfe, 0, 0, incEb);
  def(0, 0xfe, 1, 0, decEb);
  def(0, 0xff, 0, 16, incEw);
  def(0, 0xff, 0, 32, incEd);
  def(0, 0xff, 1, 16, decEw);
  def(0, 0xff, 1, 32, decEd);

  def(0, 0x84, 0, 0, testEbGb);
  def(0, 0x85, 0, 16, testEwGw);
  def(0, 0x85, 0, 32, testEdGd);
  defReg(0, 0x85, 0, 32, testEdGdR);
  defReg(0, 0xf6, 0, 0, testEbIbR);
  def(0, 0xa8, 0, 0, testAlIb);
  def(0, 0xa9, 0, 16, testAxIw);
  def(0, 0xa9, 0, 32, testEaxId);
  for (const sub of [0, 1]) {
    def(0, 0xf6, sub, 0, testEbIb);
    def(0, 0xf7, sub, 16, testEwIw);
    def(0, 0xf7, sub, 32, testEdId);
  }
  def(0, 0xf6, 2, 0, notEb);
  def(0, 0xf7, 2, 16, notEw);
  def(0, 0xf7, 2, 32, notEd);
  def(0, 0xf6, 3, 0, negEb);
  def(0, 0xf7, 3, 16, negEw);
  def(0, 0xf7, 3, 32, negEd);

  def(0, 0x27, 0, 0, daa);
  def(0, 0x2f, 0, 0, das);
  def(0, 0x37, 0, 0, aaa);
  def(0, 0x3f, 0, 0, aas);
  def(0, 0xd4, 0, 0, aam);
  def(0, 0xd5, 0, 0, aad);
  def(0, 0x98, 0, 16, cbw);
  def(0, 0x98, 0, 32, cwde);
  def(0, 0x99, 0, 16, cwd);
  def(0, 0x99, 0, 32, cdq);
  def(0, 0xd6, 0, 0, salc);

  registerMulDiv(def);
  registerShift(def, defReg);
  registerBits(def);
}
