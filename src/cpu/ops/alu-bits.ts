/**
 * Bit and condition instructions: bt/bts/btr/btc, bsf/bsr, setcc, cmovcc, xadd, cmpxchg,
 * cmpxchg8b.
 *
 * bt* change only CF (the SDM leaves OF/SF/AF/PF undefined; we keep them). bsf/bsr set ZF
 * from the source and leave the destination unchanged when it is 0; the undefined flags are
 * those of a logic op on the source, as in QEMU.
 */
import type { Cpu } from "../cpu.js";
import * as decodeNs from "../decode.js";
import * as flagsNs from "../flags.js";
import * as regsNs from "../regs.js";
import type { Def, Handler } from "./table.js";

// Module-level copies of imported constants: V8 constant-folds these, whereas each use of an
// imported binding in optimized code costs a module-cell load and a TDZ check (hot paths).
const { P_A16 } = decodeNs;
const { L_ADD, L_LOGIC, L_SUB } = flagsNs;
const { EAX, EBX, ECX, EDX, UD, ZF } = regsNs;

// ------------------------------------------------------------------ bt, bts, btr, btc

/** bts (1), btr (2), btc (3) applied to v with bit mask m. */
function btModify(kind: number, v: number, m: number): number {
  return kind === 1 ? v | m : kind === 2 ? v & ~m : v ^ m;
}

/**
 * Offset of the word/dword holding bit `off` (signed) of a bit string at the memory operand:
 * the register bit offset may reach beyond the operand, in either direction.
 */
function btAddr16(cpu: Cpu, s: number, off: number): number {
  const a = cpu.ea(s) + ((off >> 4) << 1);
  return cpu.dc.pfx[s] & P_A16 ? a & 0xffff : a | 0;
}
function btAddr32(cpu: Cpu, s: number, off: number): number {
  const a = cpu.ea(s) + ((off >> 5) << 2);
  return cpu.dc.pfx[s] & P_A16 ? a & 0xffff : a | 0;
}

/** 0F A3 bt Ev, Gv. */
const btEwGw: Handler = (cpu, s) => {
  const m = cpu.dc.modrm[s];
  const off = (cpu.regs16[(m >> 2) & 0xe] << 16) >> 16;
  const v = m >= 0xc0 ? cpu.regs16[(m & 7) << 1] : cpu.rd16(cpu.dc.seg[s], btAddr16(cpu, s, off));
  cpu.setCF((v >> (off & 15)) & 1);
};
const btEdGd: Handler = (cpu, s) => {
  const m = cpu.dc.modrm[s];
  const off = cpu.regs[(m >> 3) & 7];
  const v = m >= 0xc0 ? cpu.regs[m & 7] : cpu.rd32(cpu.dc.seg[s], btAddr32(cpu, s, off));
  cpu.setCF((v >>> (off & 31)) & 1);
};

/** 0F AB bts, 0F B3 btr, 0F BB btc Ev, Gv: the kind is opcode bits 4-3 (id bits 7-6). */
const btxEwGw: Handler = (cpu, s) => {
  const kind = (cpu.dc.op[s] >> 6) & 3;
  const m = cpu.dc.modrm[s];
  const off = (cpu.regs16[(m >> 2) & 0xe] << 16) >> 16;
  const mask = 1 << (off & 15);
  let v: number;
  if (m >= 0xc0) {
    v = cpu.regs16[(m & 7) << 1];
    cpu.regs16[(m & 7) << 1] = btModify(kind, v, mask);
  } else {
    v = cpu.rmwRd16(cpu.dc.seg[s], btAddr16(cpu, s, off));
    cpu.rmwWr16(btModify(kind, v, mask));
  }
  cpu.setCF((v >> (off & 15)) & 1);
};
const btxEdGd: Handler = (cpu, s) => {
  const kind = (cpu.dc.op[s] >> 6) & 3;
  const m = cpu.dc.modrm[s];
  const off = cpu.regs[(m >> 3) & 7];
  const mask = 1 << (off & 31);
  let v: number;
  if (m >= 0xc0) {
    v = cpu.regs[m & 7];
    cpu.regs[m & 7] = btModify(kind, v, mask);
  } else {
    v = cpu.rmwRd32(cpu.dc.seg[s], btAddr32(cpu, s, off));
    cpu.rmwWr32(btModify(kind, v, mask));
  }
  cpu.setCF((v >>> (off & 31)) & 1);
};

/** 0F BA /4 bt Ev, Ib: the immediate is masked to the operand size (no address change). */
const btEwIb: Handler = (cpu, s) => cpu.setCF((cpu.rm16(s) >> (cpu.dc.imm[s] & 15)) & 1);
const btEdIb: Handler = (cpu, s) => cpu.setCF((cpu.rm32(s) >>> (cpu.dc.imm[s] & 31)) & 1);
/** 0F BA /5 /6 /7 bts btr btc Ev, Ib. */
const btxEwIb: Handler = (cpu, s) => {
  const v = cpu.modRm16(s);
  const bit = cpu.dc.imm[s] & 15;
  cpu.putRm16(s, btModify((cpu.dc.op[s] & 7) - 4, v, 1 << bit));
  cpu.setCF((v >> bit) & 1);
};
const btxEdIb: Handler = (cpu, s) => {
  const v = cpu.modRm32(s);
  const bit = cpu.dc.imm[s] & 31;
  cpu.putRm32(s, btModify((cpu.dc.op[s] & 7) - 4, v, 1 << bit));
  cpu.setCF((v >>> bit) & 1);
};

// ------------------------------------------------------------------ bsf, bsr

const bsfGwEw: Handler = (cpu, s) => {
  const v = cpu.rm16(s);
  cpu.lazy(L_LOGIC, 0, 0, v, 16);
  if (v !== 0) cpu.regs16[(cpu.dc.modrm[s] >> 2) & 0xe] = 31 - Math.clz32(v & -v);
};
const bsfGdEd: Handler = (cpu, s) => {
  const v = cpu.rm32(s);
  cpu.lazy(L_LOGIC, 0, 0, v, 32);
  if (v !== 0) cpu.regs[(cpu.dc.modrm[s] >> 3) & 7] = 31 - Math.clz32(v & -v);
};
const bsrGwEw: Handler = (cpu, s) => {
  const v = cpu.rm16(s);
  cpu.lazy(L_LOGIC, 0, 0, v, 16);
  if (v !== 0) cpu.regs16[(cpu.dc.modrm[s] >> 2) & 0xe] = 31 - Math.clz32(v);
};
const bsrGdEd: Handler = (cpu, s) => {
  const v = cpu.rm32(s);
  cpu.lazy(L_LOGIC, 0, 0, v, 32);
  if (v !== 0) cpu.regs[(cpu.dc.modrm[s] >> 3) & 7] = 31 - Math.clz32(v);
};

// ------------------------------------------------------------------ setcc, cmovcc

/** 0F 90-9F setcc Eb: the condition is the opcode's low nibble (id bits 6-3). */
const setcc: Handler = (cpu, s) => cpu.setRm8(s, cpu.cond((cpu.dc.op[s] >> 3) & 15) ? 1 : 0);

/** 0F 40-4F cmovcc Gv, Ev: the source is read (and may fault) even when the condition fails. */
const cmovGwEw: Handler = (cpu, s) => {
  const v = cpu.rm16(s);
  if (cpu.cond((cpu.dc.op[s] >> 3) & 15)) cpu.regs16[(cpu.dc.modrm[s] >> 2) & 0xe] = v;
};
const cmovGdEd: Handler = (cpu, s) => {
  const v = cpu.rm32(s);
  if (cpu.cond((cpu.dc.op[s] >> 3) & 15)) cpu.regs[(cpu.dc.modrm[s] >> 3) & 7] = v;
};

// ------------------------------------------------------------------ xadd, cmpxchg

/** 0F C0/C1 xadd: src = old dest, dest = sum (the sum wins when both name one register). */
const xaddEbGb: Handler = (cpu, s) => {
  const d = cpu.modRm8(s);
  const r = (cpu.dc.modrm[s] >> 3) & 7;
  const src = cpu.reg8(r);
  const sum = (d + src) & 0xff;
  cpu.lazy(L_ADD, d, src, sum, 8);
  cpu.setReg8(r, d);
  cpu.putRm8(s, sum);
};
const xaddEwGw: Handler = (cpu, s) => {
  const d = cpu.modRm16(s);
  const r = (cpu.dc.modrm[s] >> 2) & 0xe;
  const src = cpu.regs16[r];
  const sum = (d + src) & 0xffff;
  cpu.lazy(L_ADD, d, src, sum, 16);
  cpu.regs16[r] = d;
  cpu.putRm16(s, sum);
};
const xaddEdGd: Handler = (cpu, s) => {
  const d = cpu.modRm32(s);
  const r = (cpu.dc.modrm[s] >> 3) & 7;
  const src = cpu.regs[r];
  const sum = (d + src) | 0;
  cpu.lazy(L_ADD, d, src, sum, 32);
  cpu.regs[r] = d;
  cpu.putRm32(s, sum);
};

/**
 * 0F B0/B1 cmpxchg: flags of cmp accumulator, dest. On a match dest = src; otherwise the
 * accumulator gets dest and dest is written back with its own value (a locked RMW always
 * writes).
 */
const cmpxchgEbGb: Handler = (cpu, s) => {
  const d = cpu.modRm8(s);
  const acc = cpu.regs8[0];
  cpu.lazy(L_SUB, acc, d, (acc - d) & 0xff, 8);
  if (acc === d) {
    cpu.putRm8(s, cpu.reg8((cpu.dc.modrm[s] >> 3) & 7));
  } else {
    cpu.putRm8(s, d);
    cpu.regs8[0] = d;
  }
};
const cmpxchgEwGw: Handler = (cpu, s) => {
  const d = cpu.modRm16(s);
  const acc = cpu.regs16[0];
  cpu.lazy(L_SUB, acc, d, (acc - d) & 0xffff, 16);
  if (acc === d) {
    cpu.putRm16(s, cpu.regs16[(cpu.dc.modrm[s] >> 2) & 0xe]);
  } else {
    cpu.putRm16(s, d);
    cpu.regs16[0] = d;
  }
};
const cmpxchgEdGd: Handler = (cpu, s) => {
  const d = cpu.modRm32(s);
  const acc = cpu.regs[EAX];
  cpu.lazy(L_SUB, acc, d, (acc - d) | 0, 32);
  if (acc === d) {
    cpu.putRm32(s, cpu.regs[(cpu.dc.modrm[s] >> 3) & 7]);
  } else {
    cpu.putRm32(s, d);
    cpu.regs[EAX] = d;
  }
};

/** 0F C7 /1 cmpxchg8b m64: only ZF changes; the register form is #UD. */
const cmpxchg8b: Handler = (cpu, s) => {
  if (cpu.dc.modrm[s] >= 0xc0) cpu.fault(UD, 0);
  const seg = cpu.dc.seg[s];
  const a = cpu.ea(s);
  const a4 = (a + 4) | 0;
  const lo = cpu.rmwRd32(seg, a);
  const hi = cpu.rmwRd32(seg, a4);
  const f = cpu.getFlags();
  if (lo === cpu.regs[EAX] && hi === cpu.regs[EDX]) {
    cpu.wr32(seg, a, cpu.regs[EBX]);
    cpu.wr32(seg, a4, cpu.regs[ECX]);
    cpu.setFlags(f | ZF);
  } else {
    cpu.wr32(seg, a, lo);
    cpu.wr32(seg, a4, hi);
    cpu.regs[EAX] = lo;
    cpu.regs[EDX] = hi;
    cpu.setFlags(f & ~ZF);
  }
};

export function registerBits(def: Def): void {
  def(1, 0xa3, 0, 16, btEwGw);
  def(1, 0xa3, 0, 32, btEdGd);
  for (const op of [0xab, 0xb3, 0xbb]) {
    def(1, op, 0, 16, btxEwGw);
    def(1, op, 0, 32, btxEdGd);
  }
  def(1, 0xba, 4, 16, btEwIb);
  def(1, 0xba, 4, 32, btEdIb);
  for (let sub = 5; sub < 8; sub++) {
    def(1, 0xba, sub, 16, btxEwIb);
    def(1, 0xba, sub, 32, btxEdIb);
  }
  def(1, 0xbc, 0, 16, bsfGwEw);
  def(1, 0xbc, 0, 32, bsfGdEd);
  def(1, 0xbd, 0, 16, bsrGwEw);
  def(1, 0xbd, 0, 32, bsrGdEd);
  for (let cc = 0; cc < 16; cc++) {
    def(1, 0x90 + cc, 0, 0, setcc);
    def(1, 0x40 + cc, 0, 16, cmovGwEw);
    def(1, 0x40 + cc, 0, 32, cmovGdEd);
  }
  def(1, 0xc0, 0, 0, xaddEbGb);
  def(1, 0xc1, 0, 16, xaddEwGw);
  def(1, 0xc1, 0, 32, xaddEdGd);
  def(1, 0xb0, 0, 0, cmpxchgEbGb);
  def(1, 0xb1, 0, 16, cmpxchgEwGw);
  def(1, 0xb1, 0, 32, cmpxchgEdGd);
  def(1, 0xc7, 1, 0, cmpxchg8b);
}
