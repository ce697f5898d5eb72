/**
 * Data movement, the stack, EFLAGS moves, near control flow, cpuid/rdtsc and the nops.
 *
 * Handlers run with cpu.eip already after the instruction. Anything that can fault does its
 * memory accesses before changing registers other than EIP/ESP (which the run loop rolls
 * back), so a fault leaves the instruction undone.
 */
import type { Cpu } from "../cpu.js";
import * as decodeNs from "../decode.js";
import * as regsNs from "../regs.js";
import type { Def, DefReg } from "./table.js";

// Module-level copies of imported constants: V8 constant-folds these, whereas each use of an
// imported binding in optimized code costs a module-cell load and a TDZ check (hot paths).
const { P_A16 } = decodeNs;
const {
  AC,
  AF,
  CF,
  CS,
  DF,
  EAX,
  EBP,
  EBX,
  ECX,
  EDX,
  ESP,
  GP,
  ID,
  IF,
  IOPL,
  NT,
  OF,
  PF,
  RF,
  SF,
  SS,
  TF,
  UD,
  VM,
  ZF,
} = regsNs;

// ------------------------------------------------------------------ helpers

function regOf(cpu: Cpu, s: number): number {
  return (cpu.dc.modrm[s] >> 3) & 7;
}

/** Sets EIP to a near target, raising #GP(0) (EIP unchanged) beyond the CS limit. */
function jumpTo(cpu: Cpu, target: number): void {
  if (target >>> 0 > cpu.segHi[CS]) cpu.fault(GP, 0);
  cpu.eip = target;
}

function jrel32(cpu: Cpu, s: number): void {
  const t = (cpu.eip + cpu.dc.imm[s]) | 0;
  if (t >>> 0 > cpu.segHi[CS]) cpu.fault(GP, 0);
  cpu.eip = t;
}

function jrel16(cpu: Cpu, s: number): void {
  const t = (cpu.eip + cpu.dc.imm[s]) & 0xffff;
  if (t > cpu.segHi[CS]) cpu.fault(GP, 0);
  cpu.eip = t;
}

// ------------------------------------------------------------------ mov

function movRm8R8(cpu: Cpu, s: number): void {
  cpu.setRm8(s, cpu.reg8(regOf(cpu, s)));
}
function movRm16R16(cpu: Cpu, s: number): void {
  cpu.setRm16(s, cpu.regs16[regOf(cpu, s) << 1]);
}
function movRm32R32(cpu: Cpu, s: number): void {
  cpu.setRm32(s, cpu.regs[regOf(cpu, s)]);
}
function movR8Rm8(cpu: Cpu, s: number): void {
  cpu.setReg8(regOf(cpu, s), cpu.rm8(s));
}
function movR16Rm16(cpu: Cpu, s: number): void {
  cpu.regs16[regOf(cpu, s) << 1] = cpu.rm16(s);
}
function movR32Rm32(cpu: Cpu, s: number): void {
  cpu.regs[regOf(cpu, s)] = cpu.rm32(s);
}

// Register forms (ModRM mod = 3) of the hot ones.
function movRm32R32R(cpu: Cpu, s: number): void {
  const m = cpu.dc.modrm[s];
  cpu.regs[m & 7] = cpu.regs[(m >> 3) & 7];
}
function movR32Rm32R(cpu: Cpu, s: number): void {
  const m = cpu.dc.modrm[s];
  cpu.regs[(m >> 3) & 7] = cpu.regs[m & 7];
}
function movRm8R8R(cpu: Cpu, s: number): void {
  const m = cpu.dc.modrm[s];
  cpu.setReg8(m & 7, cpu.reg8((m >> 3) & 7));
}
function movR8Rm8R(cpu: Cpu, s: number): void {
  const m = cpu.dc.modrm[s];
  cpu.setReg8((m >> 3) & 7, cpu.reg8(m & 7));
}
function movzx8to32R(cpu: Cpu, s: number): void {
  const m = cpu.dc.modrm[s];
  cpu.regs[(m >> 3) & 7] = cpu.reg8(m & 7);
}

// A0-A3: moffs (base = index = -1, disp = offset, so cpu.ea works).
function movAlMoffs(cpu: Cpu, s: number): void {
  cpu.regs8[0] = cpu.rd8(cpu.dc.seg[s], cpu.ea(s));
}
function movAxMoffs(cpu: Cpu, s: number): void {
  cpu.regs16[0] = cpu.rd16(cpu.dc.seg[s], cpu.ea(s));
}
function movEaxMoffs(cpu: Cpu, s: number): void {
  cpu.regs[EAX] = cpu.rd32(cpu.dc.seg[s], cpu.ea(s));
}
function movMoffsAl(cpu: Cpu, s: number): void {
  cpu.wr8(cpu.dc.seg[s], cpu.ea(s), cpu.regs8[0]);
}
function movMoffsAx(cpu: Cpu, s: number): void {
  cpu.wr16(cpu.dc.seg[s], cpu.ea(s), cpu.regs16[0]);
}
function movMoffsEax(cpu: Cpu, s: number): void {
  cpu.wr32(cpu.dc.seg[s], cpu.ea(s), cpu.regs[EAX]);
}

function movRm8Imm(cpu: Cpu, s: number): void {
  if (regOf(cpu, s) !== 0) cpu.fault(UD, 0);
  cpu.setRm8(s, cpu.dc.imm[s] & 0xff);
}
function movRm16Imm(cpu: Cpu, s: number): void {
  if (regOf(cpu, s) !== 0) cpu.fault(UD, 0);
  cpu.setRm16(s, cpu.dc.imm[s] & 0xffff);
}
function movRm32Imm(cpu: Cpu, s: number): void {
  if (regOf(cpu, s) !== 0) cpu.fault(UD, 0);
  cpu.setRm32(s, cpu.dc.imm[s]);
}

function movzx8to16(cpu: Cpu, s: number): void {
  cpu.regs16[regOf(cpu, s) << 1] = cpu.rm8(s);
}
function movzx8to32(cpu: Cpu, s: number): void {
  cpu.regs[regOf(cpu, s)] = cpu.rm8(s);
}
function movzx16to32(cpu: Cpu, s: number): void {
  cpu.regs[regOf(cpu, s)] = cpu.rm16(s);
}
function movsx8to16(cpu: Cpu, s: number): void {
  cpu.regs16[regOf(cpu, s) << 1] = (cpu.rm8(s) << 24) >> 24;
}
function movsx8to32(cpu: Cpu, s: number): void {
  cpu.regs[regOf(cpu, s)] = (cpu.rm8(s) << 24) >> 24;
}
function movsx16to32(cpu: Cpu, s: number): void {
  cpu.regs[regOf(cpu, s)] = (cpu.rm16(s) << 16) >> 16;
}

function lea16(cpu: Cpu, s: number): void {
  if (cpu.dc.modrm[s] >= 0xc0) cpu.fault(UD, 0);
  cpu.regs16[regOf(cpu, s) << 1] = cpu.ea(s);
}
function lea32(cpu: Cpu, s: number): void {
  if (cpu.dc.modrm[s] >= 0xc0) cpu.fault(UD, 0);
  cpu.regs[regOf(cpu, s)] = cpu.ea(s);
}

function xchg8(cpu: Cpu, s: number): void {
  const r = regOf(cpu, s);
  const v = cpu.modRm8(s);
  cpu.putRm8(s, cpu.reg8(r));
  cpu.setReg8(r, v);
}
function xchg16(cpu: Cpu, s: number): void {
  const r = regOf(cpu, s) << 1;
  const v = cpu.modRm16(s);
  cpu.putRm16(s, cpu.regs16[r]);
  cpu.regs16[r] = v;
}
function xchg32(cpu: Cpu, s: number): void {
  const r = regOf(cpu, s);
  const v = cpu.modRm32(s);
  cpu.putRm32(s, cpu.regs[r]);
  cpu.regs[r] = v;
}

function nop(_cpu: Cpu, _s: number): void {}

function xlat(cpu: Cpu, s: number): void {
  const off =
    (cpu.dc.pfx[s] & P_A16) !== 0
      ? (cpu.regs16[EBX << 1] + cpu.regs8[0]) & 0xffff
      : (cpu.regs[EBX] + cpu.regs8[0]) | 0;
  cpu.regs8[0] = cpu.rd8(cpu.dc.seg[s], off);
}

// ------------------------------------------------------------------ stack

function pushImm16(cpu: Cpu, s: number): void {
  cpu.push16(cpu.dc.imm[s] & 0xffff);
}
function pushImm32(cpu: Cpu, s: number): void {
  cpu.push32(cpu.dc.imm[s]);
}
function pushRm16(cpu: Cpu, s: number): void {
  cpu.push16(cpu.rm16(s));
}
function pushRm32(cpu: Cpu, s: number): void {
  cpu.push32(cpu.rm32(s));
}
function popRm16(cpu: Cpu, s: number): void {
  if (regOf(cpu, s) !== 0) cpu.fault(UD, 0);
  // The effective address uses ESP after the pop (Intel); a faulting write rolls ESP back.
  cpu.setRm16(s, cpu.pop16());
}
function popRm32(cpu: Cpu, s: number): void {
  if (regOf(cpu, s) !== 0) cpu.fault(UD, 0);
  cpu.setRm32(s, cpu.pop32());
}

/** popa's values, read before any register changes (a fault then leaves them intact). */
const popaTmp = new Int32Array(8);

function pusha16(cpu: Cpu, _s: number): void {
  const r = cpu.regs16;
  const sp = r[ESP << 1];
  cpu.push16(r[0]);
  cpu.push16(r[2]);
  cpu.push16(r[4]);
  cpu.push16(r[6]);
  cpu.push16(sp);
  cpu.push16(r[10]);
  cpu.push16(r[12]);
  cpu.push16(r[14]);
}
function pusha32(cpu: Cpu, _s: number): void {
  const r = cpu.regs;
  const sp = r[ESP];
  cpu.push32(r[0]);
  cpu.push32(r[1]);
  cpu.push32(r[2]);
  cpu.push32(r[3]);
  cpu.push32(sp);
  cpu.push32(r[5]);
  cpu.push32(r[6]);
  cpu.push32(r[7]);
}
function popa16(cpu: Cpu, _s: number): void {
  const st32 = cpu.stack32();
  const sp = cpu.stackPointer();
  for (let i = 0; i < 8; i++) {
    const off = st32 ? (sp + i * 2) | 0 : (sp + i * 2) & 0xffff;
    popaTmp[i] = i === 3 ? 0 : cpu.rd16(SS, off);
  }
  const r = cpu.regs16;
  r[14] = popaTmp[0];
  r[12] = popaTmp[1];
  r[10] = popaTmp[2];
  r[6] = popaTmp[4];
  r[4] = popaTmp[5];
  r[2] = popaTmp[6];
  r[0] = popaTmp[7];
  cpu.setStackPointer(st32 ? (sp + 16) | 0 : (sp + 16) & 0xffff);
}
function popa32(cpu: Cpu, _s: number): void {
  const st32 = cpu.stack32();
  const sp = cpu.stackPointer();
  for (let i = 0; i < 8; i++) {
    const off = st32 ? (sp + i * 4) | 0 : (sp + i * 4) & 0xffff;
    popaTmp[i] = i === 3 ? 0 : cpu.rd32(SS, off);
  }
  const r = cpu.regs;
  r[7] = popaTmp[0];
  r[6] = popaTmp[1];
  r[5] = popaTmp[2];
  r[3] = popaTmp[4];
  r[2] = popaTmp[5];
  r[1] = popaTmp[6];
  r[0] = popaTmp[7];
  cpu.setStackPointer(st32 ? (sp + 32) | 0 : (sp + 32) & 0xffff);
}

function enterImpl(cpu: Cpu, s: number, o16: boolean): void {
  const alloc = cpu.dc.imm[s] & 0xffff;
  const level = cpu.dc.imm2[s] & 31;
  const st32 = cpu.stack32();
  const n = o16 ? 2 : 4;
  let sp = cpu.stackPointer();
  sp = st32 ? (sp - n) | 0 : (sp - n) & 0xffff;
  if (o16) cpu.wr16(SS, sp, cpu.regs16[EBP << 1]);
  else cpu.wr32(SS, sp, cpu.regs[EBP]);
  // FrameTemp: ESP (whole register) for a 32-bit operand, SP for a 16-bit one.
  const frame = o16 ? sp & 0xffff : st32 ? sp : (cpu.regs[ESP] & ~0xffff) | sp;
  if (level > 0) {
    let bp = st32 ? cpu.regs[EBP] : cpu.regs16[EBP << 1];
    for (let i = 1; i < level; i++) {
      bp = st32 ? (bp - n) | 0 : (bp - n) & 0xffff;
      sp = st32 ? (sp - n) | 0 : (sp - n) & 0xffff;
      if (o16) cpu.wr16(SS, sp, cpu.rd16(SS, bp));
      else cpu.wr32(SS, sp, cpu.rd32(SS, bp));
    }
    sp = st32 ? (sp - n) | 0 : (sp - n) & 0xffff;
    if (o16) cpu.wr16(SS, sp, frame);
    else cpu.wr32(SS, sp, frame);
  }
  if (o16) cpu.regs16[EBP << 1] = frame;
  else cpu.regs[EBP] = frame;
  cpu.setStackPointer(st32 ? (sp - alloc) | 0 : (sp - alloc) & 0xffff);
}
function enter16(cpu: Cpu, s: number): void {
  enterImpl(cpu, s, true);
}
function enter32(cpu: Cpu, s: number): void {
  enterImpl(cpu, s, false);
}

function leave16(cpu: Cpu, _s: number): void {
  if (cpu.stack32()) cpu.regs[ESP] = cpu.regs[EBP];
  else cpu.regs16[ESP << 1] = cpu.regs16[EBP << 1];
  cpu.regs16[EBP << 1] = cpu.pop16();
}
function leave32(cpu: Cpu, _s: number): void {
  if (cpu.stack32()) cpu.regs[ESP] = cpu.regs[EBP];
  else cpu.regs16[ESP << 1] = cpu.regs16[EBP << 1];
  cpu.regs[EBP] = cpu.pop32();
}

// ------------------------------------------------------------------ flags

/** pushf/popf in virtual-8086 mode need IOPL 3. */
function checkVm(cpu: Cpu): void {
  if ((cpu.flags & VM) !== 0 && (cpu.flags & IOPL) !== IOPL) cpu.fault(GP, 0);
}

function pushf16(cpu: Cpu, _s: number): void {
  checkVm(cpu);
  cpu.push16(cpu.getFlags() & 0xffff);
}
function pushf32(cpu: Cpu, _s: number): void {
  checkVm(cpu);
  // VM and RF read as 0 in the pushed image.
  cpu.push32(cpu.getFlags() & 0x00fcffff);
}

const POPF_BASE = CF | PF | AF | ZF | SF | TF | DF | OF | NT | AC | ID;

/** The EFLAGS bits popf may change at the current CPL and IOPL (IOPL at CPL 0, IF at CPL <= IOPL). */
function popfMask(cpu: Cpu): number {
  if (cpu.cpl === 0) return POPF_BASE | IOPL | IF;
  return cpu.cpl <= (cpu.flags & IOPL) >> 12 ? POPF_BASE | IF : POPF_BASE;
}

function popf16(cpu: Cpu, _s: number): void {
  checkVm(cpu);
  const v = cpu.pop16();
  const mask = popfMask(cpu) & 0xffff;
  cpu.setFlags((cpu.getFlags() & ~mask) | (v & mask));
}
function popf32(cpu: Cpu, _s: number): void {
  checkVm(cpu);
  const v = cpu.pop32();
  const mask = popfMask(cpu);
  // VM, VIF, VIP are kept; RF is cleared.
  cpu.setFlags((cpu.getFlags() & ~mask & ~RF) | (v & mask));
}

const SAHF_MASK = SF | ZF | AF | PF | CF;

function lahf(cpu: Cpu, _s: number): void {
  cpu.regs8[1] = (cpu.getFlags() & SAHF_MASK) | 2;
}
function sahf(cpu: Cpu, _s: number): void {
  cpu.setFlags((cpu.getFlags() & ~SAHF_MASK) | (cpu.regs8[1] & SAHF_MASK));
}
function clc(cpu: Cpu, _s: number): void {
  cpu.setCF(0);
}
function stc(cpu: Cpu, _s: number): void {
  cpu.setCF(1);
}
function cmc(cpu: Cpu, _s: number): void {
  cpu.setCF(cpu.cf() ^ 1);
}
function cld(cpu: Cpu, _s: number): void {
  cpu.flags &= ~DF;
}
function std(cpu: Cpu, _s: number): void {
  cpu.flags |= DF;
}

// ------------------------------------------------------------------ near control flow

function jmpRm16(cpu: Cpu, s: number): void {
  jumpTo(cpu, cpu.rm16(s));
}
function jmpRm32(cpu: Cpu, s: number): void {
  jumpTo(cpu, cpu.rm32(s));
}

function callRel16(cpu: Cpu, s: number): void {
  const t = (cpu.eip + cpu.dc.imm[s]) & 0xffff;
  if (t > cpu.segHi[CS]) cpu.fault(GP, 0);
  cpu.push16(cpu.eip & 0xffff);
  cpu.eip = t;
}
function callRel32(cpu: Cpu, s: number): void {
  const t = (cpu.eip + cpu.dc.imm[s]) | 0;
  if (t >>> 0 > cpu.segHi[CS]) cpu.fault(GP, 0);
  cpu.push32(cpu.eip);
  cpu.eip = t;
}
function callRm16(cpu: Cpu, s: number): void {
  const t = cpu.rm16(s);
  if (t > cpu.segHi[CS]) cpu.fault(GP, 0);
  cpu.push16(cpu.eip & 0xffff);
  cpu.eip = t;
}
function callRm32(cpu: Cpu, s: number): void {
  const t = cpu.rm32(s);
  if (t >>> 0 > cpu.segHi[CS]) cpu.fault(GP, 0);
  cpu.push32(cpu.eip);
  cpu.eip = t;
}

function ret16(cpu: Cpu, _s: number): void {
  jumpTo(cpu, cpu.pop16());
}
function ret32(cpu: Cpu, _s: number): void {
  jumpTo(cpu, cpu.pop32());
}
function retImm16(cpu: Cpu, s: number): void {
  const t = cpu.pop16();
  jumpTo(cpu, t);
  cpu.setStackPointer(
    cpu.stack32() ? (cpu.regs[ESP] + cpu.dc.imm[s]) | 0 : (cpu.regs16[ESP << 1] + cpu.dc.imm[s]) & 0xffff,
  );
}
function retImm32(cpu: Cpu, s: number): void {
  const t = cpu.pop32();
  jumpTo(cpu, t);
  cpu.setStackPointer(
    cpu.stack32() ? (cpu.regs[ESP] + cpu.dc.imm[s]) | 0 : (cpu.regs16[ESP << 1] + cpu.dc.imm[s]) & 0xffff,
  );
}

// jcc: one function per condition and operand size (no switch in the hot path).
function jo32(cpu: Cpu, s: number): void {
  if (cpu.of() !== 0) jrel32(cpu, s);
}
function jno32(cpu: Cpu, s: number): void {
  if (cpu.of() === 0) jrel32(cpu, s);
}
function jb32(cpu: Cpu, s: number): void {
  if (cpu.cf() !== 0) jrel32(cpu, s);
}
function jnb32(cpu: Cpu, s: number): void {
  if (cpu.cf() === 0) jrel32(cpu, s);
}
function jz32(cpu: Cpu, s: number): void {
  if (cpu.zf() !== 0) jrel32(cpu, s);
}
function jnz32(cpu: Cpu, s: number): void {
  if (cpu.zf() === 0) jrel32(cpu, s);
}
function jbe32(cpu: Cpu, s: number): void {
  if ((cpu.cf() | cpu.zf()) !== 0) jrel32(cpu, s);
}
function ja32(cpu: Cpu, s: number): void {
  if ((cpu.cf() | cpu.zf()) === 0) jrel32(cpu, s);
}
function js32(cpu: Cpu, s: number): void {
  if (cpu.sf() !== 0) jrel32(cpu, s);
}
function jns32(cpu: Cpu, s: number): void {
  if (cpu.sf() === 0) jrel32(cpu, s);
}
function jp32(cpu: Cpu, s: number): void {
  if (cpu.pf() !== 0) jrel32(cpu, s);
}
function jnp32(cpu: Cpu, s: number): void {
  if (cpu.pf() === 0) jrel32(cpu, s);
}
function jl32(cpu: Cpu, s: number): void {
  if (cpu.lt() !== 0) jrel32(cpu, s);
}
function jge32(cpu: Cpu, s: number): void {
  if (cpu.lt() === 0) jrel32(cpu, s);
}
function jle32(cpu: Cpu, s: number): void {
  if ((cpu.lt() | cpu.zf()) !== 0) jrel32(cpu, s);
}
function jg32(cpu: Cpu, s: number): void {
  if ((cpu.lt() | cpu.zf()) === 0) jrel32(cpu, s);
}
function jo16(cpu: Cpu, s: number): void {
  if (cpu.of() !== 0) jrel16(cpu, s);
}
function jno16(cpu: Cpu, s: number): void {
  if (cpu.of() === 0) jrel16(cpu, s);
}
function jb16(cpu: Cpu, s: number): void {
  if (cpu.cf() !== 0) jrel16(cpu, s);
}
function jnb16(cpu: Cpu, s: number): void {
  if (cpu.cf() === 0) jrel16(cpu, s);
}
function jz16(cpu: Cpu, s: number): void {
  if (cpu.zf() !== 0) jrel16(cpu, s);
}
function jnz16(cpu: Cpu, s: number): void {
  if (cpu.zf() === 0) jrel16(cpu, s);
}
function jbe16(cpu: Cpu, s: number): void {
  if ((cpu.cf() | cpu.zf()) !== 0) jrel16(cpu, s);
}
function ja16(cpu: Cpu, s: number): void {
  if ((cpu.cf() | cpu.zf()) === 0) jrel16(cpu, s);
}
function js16(cpu: Cpu, s: number): void {
  if (cpu.sf() !== 0) jrel16(cpu, s);
}
function jns16(cpu: Cpu, s: number): void {
  if (cpu.sf() === 0) jrel16(cpu, s);
}
function jp16(cpu: Cpu, s: number): void {
  if (cpu.pf() !== 0) jrel16(cpu, s);
}
function jnp16(cpu: Cpu, s: number): void {
  if (cpu.pf() === 0) jrel16(cpu, s);
}
function jl16(cpu: Cpu, s: number): void {
  if (cpu.lt() !== 0) jrel16(cpu, s);
}
function jge16(cpu: Cpu, s: number): void {
  if (cpu.lt() === 0) jrel16(cpu, s);
}
function jle16(cpu: Cpu, s: number): void {
  if ((cpu.lt() | cpu.zf()) !== 0) jrel16(cpu, s);
}
function jg16(cpu: Cpu, s: number): void {
  if ((cpu.lt() | cpu.zf()) === 0) jrel16(cpu, s);
}
const JCC32 = [
  jo32,
  jno32,
  jb32,
  jnb32,
  jz32,
  jnz32,
  jbe32,
  ja32,
  js32,
  jns32,
  jp32,
  jnp32,
  jl32,
  jge32,
  jle32,
  jg32,
];
const JCC16 = [
  jo16,
  jno16,
  jb16,
  jnb16,
  jz16,
  jnz16,
  jbe16,
  ja16,
  js16,
  jns16,
  jp16,
  jnp16,
  jl16,
  jge16,
  jle16,
  jg16,
];

/**
 * loop/loope/loopne (kind 0 loopne, 1 loope, 2 loop): the counter is ECX, or CX under 0x67.
 * The target is checked before the count is written, so a #GP leaves ECX as it was.
 */
function loopImpl(cpu: Cpu, s: number, kind: number, o16: boolean): void {
  const a16 = (cpu.dc.pfx[s] & P_A16) !== 0;
  const count = a16 ? (cpu.regs16[ECX << 1] - 1) & 0xffff : (cpu.regs[ECX] - 1) | 0;
  let taken = count !== 0;
  if (taken && kind !== 2) taken = cpu.zf() === kind;
  if (taken) {
    if (o16) jrel16(cpu, s);
    else jrel32(cpu, s);
  }
  if (a16) cpu.regs16[ECX << 1] = count;
  else cpu.regs[ECX] = count;
}
function loopne32(cpu: Cpu, s: number): void {
  loopImpl(cpu, s, 0, false);
}
function loope32(cpu: Cpu, s: number): void {
  loopImpl(cpu, s, 1, false);
}
function loop32(cpu: Cpu, s: number): void {
  loopImpl(cpu, s, 2, false);
}
function loopne16(cpu: Cpu, s: number): void {
  loopImpl(cpu, s, 0, true);
}
function loope16(cpu: Cpu, s: number): void {
  loopImpl(cpu, s, 1, true);
}
function loop16(cpu: Cpu, s: number): void {
  loopImpl(cpu, s, 2, true);
}
function jecxz32(cpu: Cpu, s: number): void {
  const c = (cpu.dc.pfx[s] & P_A16) !== 0 ? cpu.regs16[ECX << 1] : cpu.regs[ECX];
  if (c === 0) jrel32(cpu, s);
}
function jecxz16(cpu: Cpu, s: number): void {
  const c = (cpu.dc.pfx[s] & P_A16) !== 0 ? cpu.regs16[ECX << 1] : cpu.regs[ECX];
  if (c === 0) jrel16(cpu, s);
}

// ------------------------------------------------------------------ cpuid, rdtsc

/** "GenuineIntel" as EBX, EDX, ECX. */
const VENDOR_EBX = 0x756e6547;
const VENDOR_EDX = 0x49656e69;
const VENDOR_ECX = 0x6c65746e;
/** Family 6, model 8, stepping 3 (a Pentium III, Coppermine). */
const CPUID_SIGNATURE = 0x683;
/**
 * Leaf 1 EDX: only what this CPU implements: FPU (0), PSE (3), TSC (4), MSR (5), CX8 (8),
 * PGE (13), CMOV (15). No VME, DE, PAE, MCE, APIC, SEP, MTRR, PAT, MMX, FXSR, SSE.
 */
const CPUID_FEATURES = (1 << 0) | (1 << 3) | (1 << 4) | (1 << 5) | (1 << 8) | (1 << 13) | (1 << 15);
const CPUID_MAX = 2;

function cpuid(cpu: Cpu, _s: number): void {
  const r = cpu.regs;
  let leaf = r[EAX] >>> 0;
  // An unsupported leaf (basic or extended: this model has no extended leaves) returns the highest.
  if (leaf > CPUID_MAX) leaf = CPUID_MAX;
  switch (leaf) {
    case 0:
      r[EAX] = CPUID_MAX;
      r[EBX] = VENDOR_EBX;
      r[EDX] = VENDOR_EDX;
      r[ECX] = VENDOR_ECX;
      break;
    case 1:
      r[EAX] = CPUID_SIGNATURE;
      r[EBX] = 0;
      r[ECX] = 0;
      r[EDX] = CPUID_FEATURES;
      break;
    default:
      // Cache and TLB descriptors of a Pentium III: 256 KiB L2, 16 KiB L1 I/D, the TLBs.
      r[EAX] = 0x03020101;
      r[EBX] = 0;
      r[ECX] = 0;
      r[EDX] = 0x0c040882;
      break;
  }
}

const CR4_TSD = 1 << 2;

function rdtsc(cpu: Cpu, _s: number): void {
  if ((cpu.cr4 & CR4_TSD) !== 0 && cpu.cpl > 0) cpu.fault(GP, 0);
  // The halves of an integral number as BigInt.asIntN(32, t) and t >> 32n give them (ToInt32
  // is modulo 2^32; dividing by 2^32 is exact), without a BigInt per rdtsc (Linux's delay
  // loops run it millions of times).
  const t = cpu.tscNow();
  cpu.regs[EAX] = t | 0;
  cpu.regs[EDX] = Math.floor(t / 4294967296) | 0;
}

// ------------------------------------------------------------------ registration

/**
 * Register-in-opcode forms (B0+r, B8+r, 50+r, 58+r, 90+r, 0F C8+r): the register is opcode
 * bits 2-0, which sit at id bits 5-3. One function per form (not one closure per register)
 * keeps the call sites in the run loop monomorphic.
 */
function regOfOp(cpu: Cpu, s: number): number {
  return (cpu.dc.op[s] >> 3) & 7;
}
function movR16Imm(cpu: Cpu, s: number): void {
  cpu.regs16[regOfOp(cpu, s) << 1] = cpu.dc.imm[s];
}
function movR32Imm(cpu: Cpu, s: number): void {
  cpu.regs[regOfOp(cpu, s)] = cpu.dc.imm[s];
}
function movR8Imm(cpu: Cpu, s: number): void {
  cpu.setReg8(regOfOp(cpu, s), cpu.dc.imm[s]);
}
function pushR16(cpu: Cpu, s: number): void {
  cpu.push16(cpu.regs16[regOfOp(cpu, s) << 1]);
}
function pushR32(cpu: Cpu, s: number): void {
  cpu.push32(cpu.regs[regOfOp(cpu, s)]);
}
function popR16(cpu: Cpu, s: number): void {
  const v = cpu.pop16();
  cpu.regs16[regOfOp(cpu, s) << 1] = v;
}
function popR32(cpu: Cpu, s: number): void {
  const v = cpu.pop32();
  cpu.regs[regOfOp(cpu, s)] = v;
}
function xchgAxR(cpu: Cpu, s: number): void {
  const r = regOfOp(cpu, s) << 1;
  const v = cpu.regs16[r];
  cpu.regs16[r] = cpu.regs16[0];
  cpu.regs16[0] = v;
}
function xchgEaxR(cpu: Cpu, s: number): void {
  const r = regOfOp(cpu, s);
  const v = cpu.regs[r];
  cpu.regs[r] = cpu.regs[EAX];
  cpu.regs[EAX] = v;
}
function bswapR32(cpu: Cpu, s: number): void {
  const r = regOfOp(cpu, s);
  const v = cpu.regs[r];
  cpu.regs[r] = (v << 24) | ((v & 0xff00) << 8) | ((v >>> 8) & 0xff00) | (v >>> 24);
}
/** Undefined by Intel; real P6 hardware (and QEMU) give 0 in the low word. */
function bswapR16(cpu: Cpu, s: number): void {
  cpu.regs16[regOfOp(cpu, s) << 1] = 0;
}

export function registerMove(def: Def, defReg: DefReg): void {
  defReg(0, 0x89, 0, 32, movRm32R32R);
  defReg(0, 0x8b, 0, 32, movR32Rm32R);
  defReg(0, 0x88, 0, 0, movRm8R8R);
  defReg(0, 0x8a, 0, 0, movR8Rm8R);
  defReg(1, 0xb6, 0, 32, movzx8to32R);
  // mov
  def(0, 0x88, 0, 0, movRm8R8);
  def(0, 0x89, 0, 32, movRm32R32);
  def(0, 0x89, 0, 16, movRm16R16);
  def(0, 0x8a, 0, 0, movR8Rm8);
  def(0, 0x8b, 0, 32, movR32Rm32);
  def(0, 0x8b, 0, 16, movR16Rm16);
  def(0, 0xa0, 0, 0, movAlMoffs);
  def(0, 0xa1, 0, 32, movEaxMoffs);
  def(0, 0xa1, 0, 16, movAxMoffs);
  def(0, 0xa2, 0, 0, movMoffsAl);
  def(0, 0xa3, 0, 32, movMoffsEax);
  def(0, 0xa3, 0, 16, movMoffsAx);
  for (let r = 0; r < 8; r++) {
    def(0, 0xb0 + r, 0, 0, movR8Imm);
    def(0, 0xb8 + r, 0, 32, movR32Imm);
    def(0, 0xb8 + r, 0, 16, movR16Imm);
    def(0, 0x50 + r, 0, 32, pushR32);
    def(0, 0x50 + r, 0, 16, pushR16);
    def(0, 0x58 + r, 0, 32, popR32);
    def(0, 0x58 + r, 0, 16, popR16);
    def(1, 0xc8 + r, 0, 32, bswapR32);
    def(1, 0xc8 + r, 0, 16, bswapR16);
    if (r !== 0) {
      def(0, 0x90 + r, 0, 32, xchgEaxR);
      def(0, 0x90 + r, 0, 16, xchgAxR);
    }
  }
  def(0, 0xc6, 0, 0, movRm8Imm);
  def(0, 0xc7, 0, 32, movRm32Imm);
  def(0, 0xc7, 0, 16, movRm16Imm);
  def(1, 0xb6, 0, 32, movzx8to32);
  def(1, 0xb6, 0, 16, movzx8to16);
  def(1, 0xb7, 0, 32, movzx16to32);
  def(1, 0xb7, 0, 16, movR16Rm16);
  def(1, 0xbe, 0, 32, movsx8to32);
  def(1, 0xbe, 0, 16, movsx8to16);
  def(1, 0xbf, 0, 32, movsx16to32);
  def(1, 0xbf, 0, 16, movR16Rm16);
  def(0, 0x8d, 0, 32, lea32);
  def(0, 0x8d, 0, 16, lea16);
  def(0, 0x86, 0, 0, xchg8);
  def(0, 0x87, 0, 32, xchg32);
  def(0, 0x87, 0, 16, xchg16);
  def(0, 0xd7, 0, 0, xlat);

  // stack
  def(0, 0x68, 0, 32, pushImm32);
  def(0, 0x68, 0, 16, pushImm16);
  def(0, 0x6a, 0, 32, pushImm32);
  def(0, 0x6a, 0, 16, pushImm16);
  def(0, 0xff, 6, 32, pushRm32);
  def(0, 0xff, 6, 16, pushRm16);
  def(0, 0x8f, 0, 32, popRm32);
  def(0, 0x8f, 0, 16, popRm16);
  def(0, 0x60, 0, 32, pusha32);
  def(0, 0x60, 0, 16, pusha16);
  def(0, 0x61, 0, 32, popa32);
  def(0, 0x61, 0, 16, popa16);
  def(0, 0xc8, 0, 32, enter32);
  def(0, 0xc8, 0, 16, enter16);
  def(0, 0xc9, 0, 32, leave32);
  def(0, 0xc9, 0, 16, leave16);

  // flags
  def(0, 0x9c, 0, 32, pushf32);
  def(0, 0x9c, 0, 16, pushf16);
  def(0, 0x9d, 0, 32, popf32);
  def(0, 0x9d, 0, 16, popf16);
  def(0, 0x9f, 0, 0, lahf);
  def(0, 0x9e, 0, 0, sahf);
  def(0, 0xf8, 0, 0, clc);
  def(0, 0xf9, 0, 0, stc);
  def(0, 0xf5, 0, 0, cmc);
  def(0, 0xfc, 0, 0, cld);
  def(0, 0xfd, 0, 0, std);

  // near control flow
  def(0, 0xe9, 0, 32, jrel32);
  def(0, 0xe9, 0, 16, jrel16);
  def(0, 0xeb, 0, 32, jrel32);
  def(0, 0xeb, 0, 16, jrel16);
  def(0, 0xff, 4, 32, jmpRm32);
  def(0, 0xff, 4, 16, jmpRm16);
  def(0, 0xe8, 0, 32, callRel32);
  def(0, 0xe8, 0, 16, callRel16);
  def(0, 0xff, 2, 32, callRm32);
  def(0, 0xff, 2, 16, callRm16);
  def(0, 0xc3, 0, 32, ret32);
  def(0, 0xc3, 0, 16, ret16);
  def(0, 0xc2, 0, 32, retImm32);
  def(0, 0xc2, 0, 16, retImm16);
  for (let cc = 0; cc < 16; cc++) {
    def(0, 0x70 + cc, 0, 32, JCC32[cc]);
    def(0, 0x70 + cc, 0, 16, JCC16[cc]);
    def(1, 0x80 + cc, 0, 32, JCC32[cc]);
    def(1, 0x80 + cc, 0, 16, JCC16[cc]);
  }
  def(0, 0xe0, 0, 32, loopne32);
  def(0, 0xe0, 0, 16, loopne16);
  def(0, 0xe1, 0, 32, loope32);
  def(0, 0xe1, 0, 16, loope16);
  def(0, 0xe2, 0, 32, loop32);
  def(0, 0xe2, 0, 16, loop16);
  def(0, 0xe3, 0, 32, jecxz32);
  def(0, 0xe3, 0, 16, jecxz16);

  // cpuid, rdtsc, nops
  def(1, 0xa2, 0, 0, cpuid);
  def(1, 0x31, 0, 0, rdtsc);
  def(0, 0x90, 0, 0, nop);
  def(1, 0x1f, 0, 0, nop);
  def(1, 0x18, 0, 0, nop);
  def(1, 0x0d, 0, 0, nop);
}
