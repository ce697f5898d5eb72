/**
 * System instructions: segment register moves and loads, far transfers, int n / iret, hlt,
 * cli/sti, port I/O (with IOPL and the TSS I/O bitmap), descriptor-table and control-register
 * instructions, MSRs. The descriptor logic lives in ../segments.ts.
 */
import type { Cpu } from "../cpu.js";
import { P_A16, P_O16, P_REP } from "../decode.js";
import {
  BP,
  BR,
  CR0_PE,
  CR0_PG,
  CR0_TS,
  CS,
  DB,
  DF,
  DS,
  EAX,
  ECX,
  EDI,
  EDX,
  ES,
  ESI,
  Exit,
  FS,
  GP,
  GS,
  IF,
  IOPL,
  LDTR,
  NP,
  OFV,
  SS,
  TR,
  UD,
  ZF,
} from "../regs.js";
import {
  descBase,
  descLimit,
  farCall,
  farJump,
  farReturn,
  iret,
  lastDescriptorHi,
  lastDescriptorLo,
  loadSeg,
  readDescriptor,
} from "../segments.js";
import type { Def } from "./table.js";

function gp0(cpu: Cpu): never {
  return cpu.fault(GP, 0);
}

function needCpl0(cpu: Cpu): void {
  if (cpu.cpl !== 0) gp0(cpu);
}

/**
 * For a handler whose first check is CPL 0 (a PV kernel's privileged instructions, emulated
 * by the hypervisor): true, with #GP(0) raised without a throw (cpu.raise), when CPL is not
 * 0; the handler returns at once.
 */
function notCpl0(cpu: Cpu): boolean {
  if (cpu.cpl === 0) return false;
  cpu.raise(GP, 0);
  return true;
}

function iopl(cpu: Cpu): number {
  return (cpu.flags & IOPL) >>> 12;
}

function setZF(cpu: Cpu, z: boolean): void {
  const f = cpu.getFlags();
  cpu.setFlags(z ? f | ZF : f & ~ZF);
}

// ---------------------------------------------------------------- segment registers

function movEwSw32(cpu: Cpu, s: number): void {
  const r = (cpu.dc.modrm[s] >> 3) & 7;
  if (r > 5) cpu.fault(UD, 0);
  const m = cpu.dc.modrm[s];
  // A register destination gets the selector zero-extended; memory gets 16 bits.
  if (m >= 0xc0) cpu.regs[m & 7] = cpu.segSel[r];
  else cpu.wr16(cpu.dc.seg[s], cpu.ea(s), cpu.segSel[r]);
}

function movEwSw16(cpu: Cpu, s: number): void {
  const r = (cpu.dc.modrm[s] >> 3) & 7;
  if (r > 5) cpu.fault(UD, 0);
  cpu.setRm16(s, cpu.segSel[r]);
}

function movSwEw(cpu: Cpu, s: number): void {
  const r = (cpu.dc.modrm[s] >> 3) & 7;
  if (r === CS || r > 5) cpu.fault(UD, 0);
  loadSeg(cpu, r, cpu.rm16(s));
}

function pushSeg32(seg: number) {
  return (cpu: Cpu): void => cpu.push32(cpu.segSel[seg]);
}
function pushSeg16(seg: number) {
  return (cpu: Cpu): void => cpu.push16(cpu.segSel[seg]);
}
function popSeg32(seg: number) {
  // The pop's stack pointer change is rolled back by the run loop if the load faults.
  return (cpu: Cpu): void => loadSeg(cpu, seg, cpu.pop32() & 0xffff);
}
function popSeg16(seg: number) {
  return (cpu: Cpu): void => loadSeg(cpu, seg, cpu.pop16());
}

/** lds/les/lfs/lgs/lss: offset then selector from memory; the segment is loaded first. */
function loadFar32(seg: number) {
  return (cpu: Cpu, s: number): void => {
    const m = cpu.dc.modrm[s];
    if (m >= 0xc0) cpu.fault(UD, 0);
    const sg = cpu.dc.seg[s];
    const ea = cpu.ea(s);
    const off = cpu.rd32(sg, ea);
    const sel = cpu.rd16(sg, (ea + 4) | 0);
    loadSeg(cpu, seg, sel);
    cpu.regs[(m >> 3) & 7] = off;
  };
}
function loadFar16(seg: number) {
  return (cpu: Cpu, s: number): void => {
    const m = cpu.dc.modrm[s];
    if (m >= 0xc0) cpu.fault(UD, 0);
    const sg = cpu.dc.seg[s];
    const ea = cpu.ea(s);
    const a16 = (cpu.dc.pfx[s] & P_A16) !== 0;
    const off = cpu.rd16(sg, ea);
    const sel = cpu.rd16(sg, a16 ? (ea + 2) & 0xffff : (ea + 2) | 0);
    loadSeg(cpu, seg, sel);
    cpu.regs16[((m >> 3) & 7) << 1] = off;
  };
}

// ---------------------------------------------------------------- interrupts, far transfers

function intN(cpu: Cpu, s: number): void {
  cpu.softInt(cpu.dc.imm[s] & 0xff);
}
function int3(cpu: Cpu): void {
  cpu.softInt(BP);
}
function into(cpu: Cpu): void {
  if (cpu.of()) cpu.softInt(OFV);
}
/** int1 (ICEBP): a #DB trap delivered like a hardware exception (no gate DPL check). */
function int1(cpu: Cpu): void {
  cpu.trap(DB, -1, false);
}

function iret32(cpu: Cpu): void {
  iret(cpu, false);
}
function iret16(cpu: Cpu): void {
  iret(cpu, true);
}

function jmpFarPtr(cpu: Cpu, s: number): void {
  farJump(cpu, cpu.dc.imm2[s], cpu.dc.imm[s], (cpu.dc.pfx[s] & P_O16) !== 0);
}
function callFarPtr(cpu: Cpu, s: number): void {
  farCall(cpu, cpu.dc.imm2[s], cpu.dc.imm[s], (cpu.dc.pfx[s] & P_O16) !== 0);
}

/** Reads an m16:32 / m16:16 far pointer: offset in farOff, selector returned. */
let farOff = 0;
function readFarPtr(cpu: Cpu, s: number): number {
  const m = cpu.dc.modrm[s];
  if (m >= 0xc0) cpu.fault(UD, 0);
  const sg = cpu.dc.seg[s];
  const ea = cpu.ea(s);
  if (cpu.dc.pfx[s] & P_O16) {
    farOff = cpu.rd16(sg, ea);
    return cpu.rd16(sg, cpu.dc.pfx[s] & P_A16 ? (ea + 2) & 0xffff : (ea + 2) | 0);
  }
  farOff = cpu.rd32(sg, ea);
  return cpu.rd16(sg, cpu.dc.pfx[s] & P_A16 ? (ea + 4) & 0xffff : (ea + 4) | 0);
}

function jmpFarMem(cpu: Cpu, s: number): void {
  const sel = readFarPtr(cpu, s);
  farJump(cpu, sel, farOff, (cpu.dc.pfx[s] & P_O16) !== 0);
}
function callFarMem(cpu: Cpu, s: number): void {
  const sel = readFarPtr(cpu, s);
  farCall(cpu, sel, farOff, (cpu.dc.pfx[s] & P_O16) !== 0);
}

function retFar(cpu: Cpu, s: number): void {
  farReturn(cpu, 0, (cpu.dc.pfx[s] & P_O16) !== 0);
}
function retFarImm(cpu: Cpu, s: number): void {
  farReturn(cpu, cpu.dc.imm[s] & 0xffff, (cpu.dc.pfx[s] & P_O16) !== 0);
}

function hlt(cpu: Cpu): void {
  if (notCpl0(cpu)) return;
  cpu.exitReason = Exit.Halt;
  cpu.runEnd = 0;
}

function cli(cpu: Cpu): void {
  if (cpu.cpl > iopl(cpu)) cpu.raise(GP, 0);
  else cpu.flags &= ~IF;
}
function sti(cpu: Cpu): void {
  if (cpu.cpl > iopl(cpu)) cpu.raise(GP, 0);
  else cpu.flags |= IF;
}

// ---------------------------------------------------------------- port I/O

/** CPL > IOPL: the TSS I/O permission bitmap must allow every byte of the access. */
function checkIo(cpu: Cpu, port: number, size: number): void {
  if (cpu.cpl <= iopl(cpu)) return;
  const attr = cpu.segAttr[TR];
  // A present 32-bit TSS (available or busy) with room for the bitmap base.
  if ((attr & 0x9d) !== 0x89) gp0(cpu);
  const limit = cpu.segLimit[TR] >>> 0;
  if (limit < 103) gp0(cpu);
  const base = cpu.segBase[TR];
  const off = cpu.sysRead16((base + 102) | 0) + (port >>> 3);
  if (off + 1 > limit) gp0(cpu);
  const bits = cpu.sysRead16((base + off) | 0);
  if ((bits >>> (port & 7)) & ((1 << size) - 1)) gp0(cpu);
}

function inAlIb(cpu: Cpu, s: number): void {
  const port = cpu.dc.imm[s] & 0xff;
  checkIo(cpu, port, 1);
  cpu.setReg8(0, cpu.io.read(port, 1) & 0xff);
}
function inEaxIb(cpu: Cpu, s: number): void {
  const port = cpu.dc.imm[s] & 0xff;
  checkIo(cpu, port, 4);
  cpu.regs[EAX] = cpu.io.read(port, 4);
}
function inAxIb(cpu: Cpu, s: number): void {
  const port = cpu.dc.imm[s] & 0xff;
  checkIo(cpu, port, 2);
  cpu.regs16[0] = cpu.io.read(port, 2);
}
function outIbAl(cpu: Cpu, s: number): void {
  const port = cpu.dc.imm[s] & 0xff;
  checkIo(cpu, port, 1);
  cpu.io.write(port, 1, cpu.regs[EAX] & 0xff);
}
function outIbEax(cpu: Cpu, s: number): void {
  const port = cpu.dc.imm[s] & 0xff;
  checkIo(cpu, port, 4);
  cpu.io.write(port, 4, cpu.regs[EAX]);
}
function outIbAx(cpu: Cpu, s: number): void {
  const port = cpu.dc.imm[s] & 0xff;
  checkIo(cpu, port, 2);
  cpu.io.write(port, 2, cpu.regs[EAX] & 0xffff);
}
function inAlDx(cpu: Cpu): void {
  const port = cpu.regs16[EDX << 1];
  checkIo(cpu, port, 1);
  cpu.setReg8(0, cpu.io.read(port, 1) & 0xff);
}
function inEaxDx(cpu: Cpu): void {
  const port = cpu.regs16[EDX << 1];
  checkIo(cpu, port, 4);
  cpu.regs[EAX] = cpu.io.read(port, 4);
}
function inAxDx(cpu: Cpu): void {
  const port = cpu.regs16[EDX << 1];
  checkIo(cpu, port, 2);
  cpu.regs16[0] = cpu.io.read(port, 2);
}
function outDxAl(cpu: Cpu): void {
  const port = cpu.regs16[EDX << 1];
  checkIo(cpu, port, 1);
  cpu.io.write(port, 1, cpu.regs[EAX] & 0xff);
}
function outDxEax(cpu: Cpu): void {
  const port = cpu.regs16[EDX << 1];
  checkIo(cpu, port, 4);
  cpu.io.write(port, 4, cpu.regs[EAX]);
}
function outDxAx(cpu: Cpu): void {
  const port = cpu.regs16[EDX << 1];
  checkIo(cpu, port, 2);
  cpu.io.write(port, 2, cpu.regs[EAX] & 0xffff);
}

const REP_CHUNK = 65536;

/** ins: port DX -> ES:[EDI] (no override); the write is checked before the port is read. */
function insN(size: 1 | 2 | 4) {
  return (cpu: Cpu, s: number): void => {
    const pfx = cpu.dc.pfx[s];
    const a16 = (pfx & P_A16) !== 0;
    const rep = (pfx & (P_REP | 2)) !== 0;
    const port = cpu.regs16[EDX << 1];
    checkIo(cpu, port, size);
    const step = cpu.flags & DF ? -size : size;
    let n = 0;
    for (;;) {
      if (rep && (a16 ? cpu.regs16[ECX << 1] : cpu.regs[ECX]) === 0) return;
      const di = a16 ? cpu.regs16[EDI << 1] : cpu.regs[EDI];
      if (size === 1) cpu.rmwRd8(ES, di);
      else if (size === 2) cpu.rmwRd16(ES, di);
      else cpu.rmwRd32(ES, di);
      const v = cpu.io.read(port, size);
      if (size === 1) cpu.rmwWr8(v & 0xff);
      else if (size === 2) cpu.rmwWr16(v & 0xffff);
      else cpu.rmwWr32(v);
      if (a16) cpu.regs16[EDI << 1] = di + step;
      else cpu.regs[EDI] = (di + step) | 0;
      if (!rep) return;
      if (a16) cpu.regs16[ECX << 1]--;
      else cpu.regs[ECX] = (cpu.regs[ECX] - 1) | 0;
      if (++n >= REP_CHUNK && cpu.retired + 1 >= cpu.runEnd) {
        if ((a16 ? cpu.regs16[ECX << 1] : cpu.regs[ECX]) !== 0) cpu.eip = cpu.instrStart;
        return;
      }
    }
  };
}

/** outs: seg:[ESI] (DS or the override) -> port DX. */
function outsN(size: 1 | 2 | 4) {
  return (cpu: Cpu, s: number): void => {
    const pfx = cpu.dc.pfx[s];
    const a16 = (pfx & P_A16) !== 0;
    const rep = (pfx & (P_REP | 2)) !== 0;
    const seg = cpu.dc.seg[s];
    const port = cpu.regs16[EDX << 1];
    checkIo(cpu, port, size);
    const step = cpu.flags & DF ? -size : size;
    let n = 0;
    for (;;) {
      if (rep && (a16 ? cpu.regs16[ECX << 1] : cpu.regs[ECX]) === 0) return;
      const si = a16 ? cpu.regs16[ESI << 1] : cpu.regs[ESI];
      const v = size === 1 ? cpu.rd8(seg, si) : size === 2 ? cpu.rd16(seg, si) : cpu.rd32(seg, si);
      cpu.io.write(port, size, v);
      if (a16) cpu.regs16[ESI << 1] = si + step;
      else cpu.regs[ESI] = (si + step) | 0;
      if (!rep) return;
      if (a16) cpu.regs16[ECX << 1]--;
      else cpu.regs[ECX] = (cpu.regs[ECX] - 1) | 0;
      if (++n >= REP_CHUNK && cpu.retired + 1 >= cpu.runEnd) {
        if ((a16 ? cpu.regs16[ECX << 1] : cpu.regs[ECX]) !== 0) cpu.eip = cpu.instrStart;
        return;
      }
    }
  };
}

// ---------------------------------------------------------------- 0F 00 group

/** sldt/str: a register gets the selector zero-extended (32-bit form); memory 16 bits. */
function storeSel(cpu: Cpu, s: number, v: number): void {
  const m = cpu.dc.modrm[s];
  if (m >= 0xc0) {
    if (cpu.dc.pfx[s] & P_O16) cpu.regs16[(m & 7) << 1] = v;
    else cpu.regs[m & 7] = v;
  } else {
    cpu.wr16(cpu.dc.seg[s], cpu.ea(s), v);
  }
}

function sldt(cpu: Cpu, s: number): void {
  storeSel(cpu, s, cpu.segSel[LDTR]);
}
function str(cpu: Cpu, s: number): void {
  storeSel(cpu, s, cpu.segSel[TR]);
}

function lldt(cpu: Cpu, s: number): void {
  if (notCpl0(cpu)) return;
  const sel = cpu.rm16(s);
  if ((sel & 0xfffc) === 0) {
    cpu.loadSegmentCache(LDTR, sel, 0, 0, 0);
    return;
  }
  if (sel & 4 || !readDescriptor(cpu, sel)) gp(cpu, sel & 0xfffc);
  const lo = lastDescriptorLo();
  const hi = lastDescriptorHi();
  if ((hi & 0x1f00) !== 0x0200) gp(cpu, sel & 0xfffc);
  if ((hi & 0x8000) === 0) cpu.fault(NP, sel & 0xfffc);
  cpu.loadSegmentCache(LDTR, sel, descBase(lo, hi), descLimit(lo, hi), (hi >>> 8) & 0xf0ff);
}

function ltr(cpu: Cpu, s: number): void {
  if (notCpl0(cpu)) return;
  const sel = cpu.rm16(s);
  if ((sel & 0xfffc) === 0) gp0(cpu);
  if (sel & 4 || !readDescriptor(cpu, sel)) gp(cpu, sel & 0xfffc);
  const lo = lastDescriptorLo();
  let hi = lastDescriptorHi();
  const type = (hi >>> 8) & 0x1f;
  if (type !== 0x09 && type !== 0x01) gp(cpu, sel & 0xfffc);
  if ((hi & 0x8000) === 0) cpu.fault(NP, sel & 0xfffc);
  // Mark the TSS busy in the descriptor.
  hi |= 0x200;
  const tbl = cpu.gdtrBase + (sel & 0xfff8);
  cpu.sysWrite32((tbl + 4) | 0, hi);
  cpu.loadSegmentCache(TR, sel, descBase(lo, hi), descLimit(lo, hi), (hi >>> 8) & 0xf0ff);
}

function gp(cpu: Cpu, code: number): never {
  return cpu.fault(GP, code);
}

/** Reads the selector's descriptor for verr/verw/lar/lsl: false when null or out of table. */
function probeDesc(cpu: Cpu, sel: number): boolean {
  if ((sel & 0xfffc) === 0) return false;
  return readDescriptor(cpu, sel);
}

/** DPL >= max(CPL, RPL) unless conforming code. */
function visible(cpu: Cpu, sel: number, hi: number): boolean {
  if ((hi & 0x1c00) === 0x1c00) return true;
  const dpl = (hi >>> 13) & 3;
  return dpl >= cpu.cpl && dpl >= (sel & 3);
}

function verr(cpu: Cpu, s: number): void {
  const sel = cpu.rm16(s);
  let ok = false;
  if (probeDesc(cpu, sel)) {
    const hi = lastDescriptorHi();
    // Data, or readable code.
    ok = (hi & 0x1000) !== 0 && (hi & 0xa00) !== 0x800 && visible(cpu, sel, hi);
  }
  setZF(cpu, ok);
}

function verw(cpu: Cpu, s: number): void {
  const sel = cpu.rm16(s);
  let ok = false;
  if (probeDesc(cpu, sel)) {
    const hi = lastDescriptorHi();
    ok = (hi & 0x1a00) === 0x1200 && visible(cpu, sel, hi);
  }
  setZF(cpu, ok);
}

// System types valid for lar (TSS, LDT, call and task gates) and for lsl (TSS and LDT).
const LAR_SYS = (1 << 1) | (1 << 2) | (1 << 3) | (1 << 4) | (1 << 5) | (1 << 9) | (1 << 11) | (1 << 12);
const LSL_SYS = (1 << 1) | (1 << 2) | (1 << 3) | (1 << 9) | (1 << 11);

function larLslCheck(cpu: Cpu, sel: number, sysTypes: number): boolean {
  if (!probeDesc(cpu, sel)) return false;
  const hi = lastDescriptorHi();
  if ((hi & 0x1000) === 0 && ((sysTypes >>> ((hi >>> 8) & 0xf)) & 1) === 0) return false;
  return visible(cpu, sel, hi);
}

function lar32(cpu: Cpu, s: number): void {
  const sel = cpu.rm16(s);
  const ok = larLslCheck(cpu, sel, LAR_SYS);
  if (ok) cpu.regs[(cpu.dc.modrm[s] >> 3) & 7] = lastDescriptorHi() & 0x00f0ff00;
  setZF(cpu, ok);
}
function lar16(cpu: Cpu, s: number): void {
  const sel = cpu.rm16(s);
  const ok = larLslCheck(cpu, sel, LAR_SYS);
  if (ok) cpu.regs16[((cpu.dc.modrm[s] >> 3) & 7) << 1] = lastDescriptorHi() & 0xff00;
  setZF(cpu, ok);
}
function lsl32(cpu: Cpu, s: number): void {
  const sel = cpu.rm16(s);
  const ok = larLslCheck(cpu, sel, LSL_SYS);
  if (ok) cpu.regs[(cpu.dc.modrm[s] >> 3) & 7] = descLimit(lastDescriptorLo(), lastDescriptorHi());
  setZF(cpu, ok);
}
function lsl16(cpu: Cpu, s: number): void {
  const sel = cpu.rm16(s);
  const ok = larLslCheck(cpu, sel, LSL_SYS);
  if (ok) cpu.regs16[((cpu.dc.modrm[s] >> 3) & 7) << 1] = descLimit(lastDescriptorLo(), lastDescriptorHi());
  setZF(cpu, ok);
}

function arpl(cpu: Cpu, s: number): void {
  const src = cpu.regs16[((cpu.dc.modrm[s] >> 3) & 7) << 1];
  const dst = cpu.modRm16(s);
  if ((dst & 3) < (src & 3)) {
    cpu.putRm16(s, (dst & ~3) | (src & 3));
    setZF(cpu, true);
  } else {
    setZF(cpu, false);
  }
}

// ---------------------------------------------------------------- 0F 01 group

function memOnly(cpu: Cpu, s: number): void {
  if (cpu.dc.modrm[s] >= 0xc0) cpu.fault(UD, 0);
}

function storeDtr(cpu: Cpu, s: number, limit: number, base: number): void {
  memOnly(cpu, s);
  const seg = cpu.dc.seg[s];
  const ea = cpu.ea(s);
  const a16 = (cpu.dc.pfx[s] & P_A16) !== 0;
  const b = cpu.dc.pfx[s] & P_O16 ? base & 0xffffff : base;
  // Check both parts before writing either.
  cpu.rmwRd32(seg, a16 ? (ea + 2) & 0xffff : (ea + 2) | 0);
  cpu.wr16(seg, ea, limit);
  cpu.rmwWr32(b);
}
function sgdt(cpu: Cpu, s: number): void {
  storeDtr(cpu, s, cpu.gdtrLimit & 0xffff, cpu.gdtrBase);
}
function sidt(cpu: Cpu, s: number): void {
  storeDtr(cpu, s, cpu.idtrLimit & 0xffff, cpu.idtrBase);
}

let dtrLimit = 0;
function loadDtr(cpu: Cpu, s: number): number {
  memOnly(cpu, s);
  needCpl0(cpu);
  const seg = cpu.dc.seg[s];
  const ea = cpu.ea(s);
  const a16 = (cpu.dc.pfx[s] & P_A16) !== 0;
  dtrLimit = cpu.rd16(seg, ea);
  const base = cpu.rd32(seg, a16 ? (ea + 2) & 0xffff : (ea + 2) | 0);
  return cpu.dc.pfx[s] & P_O16 ? base & 0xffffff : base;
}
function lgdt(cpu: Cpu, s: number): void {
  const base = loadDtr(cpu, s);
  cpu.gdtrBase = base;
  cpu.gdtrLimit = dtrLimit;
}
function lidt(cpu: Cpu, s: number): void {
  const base = loadDtr(cpu, s);
  cpu.idtrBase = base;
  cpu.idtrLimit = dtrLimit;
}

function smsw(cpu: Cpu, s: number): void {
  const m = cpu.dc.modrm[s];
  if (m >= 0xc0) {
    if (cpu.dc.pfx[s] & P_O16) cpu.regs16[(m & 7) << 1] = cpu.cr0 & 0xffff;
    else cpu.regs[m & 7] = cpu.cr0;
  } else {
    cpu.wr16(cpu.dc.seg[s], cpu.ea(s), cpu.cr0 & 0xffff);
  }
}

function lmsw(cpu: Cpu, s: number): void {
  if (notCpl0(cpu)) return;
  const v = cpu.rm16(s);
  // Loads PE, MP, EM, TS; PE cannot be cleared.
  cpu.setCr0((cpu.cr0 & ~0xe) | (v & 0xf) | (cpu.cr0 & CR0_PE));
}

function invlpg(cpu: Cpu, s: number): void {
  memOnly(cpu, s);
  if (notCpl0(cpu)) return;
  cpu.invlpg((cpu.segBase[cpu.dc.seg[s]] + cpu.ea(s)) | 0);
}

// ---------------------------------------------------------------- 0F 0x

function clts(cpu: Cpu): void {
  if (notCpl0(cpu)) return;
  cpu.cr0 &= ~CR0_TS;
}

function invd(cpu: Cpu): void {
  if (notCpl0(cpu)) return;
}

const CR0_NW = 1 << 29;
const CR0_CD = 1 << 30;
/** CR4 bits an i686 without PAE accepts: VME PVI TSD DE PSE MCE PGE PCE OSFXSR OSXMMEXCPT. */
const CR4_VALID = 0x7df;

function movRdCr(cpu: Cpu, s: number): void {
  if (notCpl0(cpu)) return;
  const m = cpu.dc.modrm[s];
  const cr = (m >> 3) & 7;
  let v: number;
  if (cr === 0) v = cpu.cr0;
  else if (cr === 2) v = cpu.cr2;
  else if (cr === 3) v = cpu.cr3;
  else if (cr === 4) v = cpu.cr4;
  else v = cpu.fault(UD, 0);
  cpu.regs[m & 7] = v;
}

function movCrRd(cpu: Cpu, s: number): void {
  const m = cpu.dc.modrm[s];
  const cr = (m >> 3) & 7;
  if (notCpl0(cpu)) return;
  if (cr === 1 || cr > 4) cpu.fault(UD, 0);
  const v = cpu.regs[m & 7];
  if (cr === 0) {
    if ((v & CR0_PG && (v & CR0_PE) === 0) || (v & CR0_NW && (v & CR0_CD) === 0)) gp0(cpu);
    cpu.setCr0(v);
  } else if (cr === 2) {
    cpu.cr2 = v;
  } else if (cr === 3) {
    cpu.setCr3(v & 0xfffff018);
  } else {
    if (v & ~CR4_VALID) gp0(cpu);
    cpu.setCr4(v);
  }
}

const CR4_DE = 1 << 3;

/** DR index after the DR4/DR5 aliasing (#UD when CR4.DE is set). */
function drIndex(cpu: Cpu, r: number): number {
  if (r === 4 || r === 5) {
    if (cpu.cr4 & CR4_DE) cpu.fault(UD, 0);
    return r + 2;
  }
  return r;
}

function movRdDr(cpu: Cpu, s: number): void {
  if (notCpl0(cpu)) return;
  const m = cpu.dc.modrm[s];
  const r = drIndex(cpu, (m >> 3) & 7);
  cpu.regs[m & 7] = cpu.dr[r];
}

function movDrRd(cpu: Cpu, s: number): void {
  if (notCpl0(cpu)) return;
  const m = cpu.dc.modrm[s];
  const r = drIndex(cpu, (m >> 3) & 7);
  const v = cpu.regs[m & 7];
  if (r === 6) cpu.dr[6] = v | 0xffff0ff0;
  else if (r === 7) {
    cpu.dr[7] = (v & ~0xd800) | 0x400;
    cpu.armDebug();
  } else cpu.dr[r] = v;
}

const MSR_TSC = 0x10;

function rdmsr(cpu: Cpu): void {
  if (notCpl0(cpu)) return;
  const idx = cpu.regs[ECX] >>> 0;
  let v: bigint | undefined;
  if (idx === MSR_TSC) v = cpu.readTsc();
  else v = cpu.msrs.get(idx);
  if (v === undefined) {
    gp0(cpu);
    return;
  }
  cpu.regs[EAX] = Number(BigInt.asIntN(32, v));
  cpu.regs[EDX] = Number(BigInt.asIntN(32, v >> 32n));
}

function wrmsr(cpu: Cpu): void {
  if (notCpl0(cpu)) return;
  const idx = cpu.regs[ECX] >>> 0;
  const v = (BigInt(cpu.regs[EDX] >>> 0) << 32n) | BigInt(cpu.regs[EAX] >>> 0);
  if (idx === MSR_TSC) {
    cpu.tscOffset += Number(v - cpu.readTsc());
    return;
  }
  if (!cpu.msrs.has(idx)) gp0(cpu);
  cpu.msrs.set(idx, v);
}

// ---------------------------------------------------------------- bound

function bound32(cpu: Cpu, s: number): void {
  const m = cpu.dc.modrm[s];
  if (m >= 0xc0) cpu.fault(UD, 0);
  const seg = cpu.dc.seg[s];
  const ea = cpu.ea(s);
  const lo = cpu.rd32(seg, ea);
  const hi = cpu.rd32(seg, cpu.dc.pfx[s] & P_A16 ? (ea + 4) & 0xffff : (ea + 4) | 0);
  const v = cpu.regs[(m >> 3) & 7];
  if (v < lo || v > hi) cpu.fault(BR, 0);
}

function bound16(cpu: Cpu, s: number): void {
  const m = cpu.dc.modrm[s];
  if (m >= 0xc0) cpu.fault(UD, 0);
  const seg = cpu.dc.seg[s];
  const ea = cpu.ea(s);
  const lo = (cpu.rd16(seg, ea) << 16) >> 16;
  const hi = (cpu.rd16(seg, cpu.dc.pfx[s] & P_A16 ? (ea + 2) & 0xffff : (ea + 2) | 0) << 16) >> 16;
  const v = (cpu.regs16[((m >> 3) & 7) << 1] << 16) >> 16;
  if (v < lo || v > hi) cpu.fault(BR, 0);
}

// ---------------------------------------------------------------- registration

export function registerSystem(def: Def): void {
  def(0, 0x8c, 0, 32, movEwSw32);
  def(0, 0x8c, 0, 16, movEwSw16);
  def(0, 0x8e, 0, 0, movSwEw);

  const pushes: [number, number, number][] = [
    [0, 0x06, ES],
    [0, 0x0e, CS],
    [0, 0x16, SS],
    [0, 0x1e, DS],
    [1, 0xa0, FS],
    [1, 0xa8, GS],
  ];
  for (const [map, op, seg] of pushes) {
    def(map, op, 0, 32, pushSeg32(seg));
    def(map, op, 0, 16, pushSeg16(seg));
  }
  const pops: [number, number, number][] = [
    [0, 0x07, ES],
    [0, 0x17, SS],
    [0, 0x1f, DS],
    [1, 0xa1, FS],
    [1, 0xa9, GS],
  ];
  for (const [map, op, seg] of pops) {
    def(map, op, 0, 32, popSeg32(seg));
    def(map, op, 0, 16, popSeg16(seg));
  }
  const loads: [number, number, number][] = [
    [0, 0xc4, ES],
    [0, 0xc5, DS],
    [1, 0xb2, SS],
    [1, 0xb4, FS],
    [1, 0xb5, GS],
  ];
  for (const [map, op, seg] of loads) {
    def(map, op, 0, 32, loadFar32(seg));
    def(map, op, 0, 16, loadFar16(seg));
  }

  def(0, 0xcd, 0, 0, intN);
  def(0, 0xcc, 0, 0, int3);
  def(0, 0xce, 0, 0, into);
  def(0, 0xf1, 0, 0, int1);
  def(0, 0xcf, 0, 32, iret32);
  def(0, 0xcf, 0, 16, iret16);
  def(0, 0xea, 0, 0, jmpFarPtr);
  def(0, 0x9a, 0, 0, callFarPtr);
  def(0, 0xff, 5, 0, jmpFarMem);
  def(0, 0xff, 3, 0, callFarMem);
  def(0, 0xcb, 0, 0, retFar);
  def(0, 0xca, 0, 0, retFarImm);
  def(0, 0xf4, 0, 0, hlt);
  def(0, 0xfa, 0, 0, cli);
  def(0, 0xfb, 0, 0, sti);

  def(0, 0xe4, 0, 0, inAlIb);
  def(0, 0xe5, 0, 32, inEaxIb);
  def(0, 0xe5, 0, 16, inAxIb);
  def(0, 0xe6, 0, 0, outIbAl);
  def(0, 0xe7, 0, 32, outIbEax);
  def(0, 0xe7, 0, 16, outIbAx);
  def(0, 0xec, 0, 0, inAlDx);
  def(0, 0xed, 0, 32, inEaxDx);
  def(0, 0xed, 0, 16, inAxDx);
  def(0, 0xee, 0, 0, outDxAl);
  def(0, 0xef, 0, 32, outDxEax);
  def(0, 0xef, 0, 16, outDxAx);
  def(0, 0x6c, 0, 0, insN(1));
  def(0, 0x6d, 0, 32, insN(4));
  def(0, 0x6d, 0, 16, insN(2));
  def(0, 0x6e, 0, 0, outsN(1));
  def(0, 0x6f, 0, 32, outsN(4));
  def(0, 0x6f, 0, 16, outsN(2));

  def(1, 0x00, 0, 0, sldt);
  def(1, 0x00, 1, 0, str);
  def(1, 0x00, 2, 0, lldt);
  def(1, 0x00, 3, 0, ltr);
  def(1, 0x00, 4, 0, verr);
  def(1, 0x00, 5, 0, verw);
  def(1, 0x01, 0, 0, sgdt);
  def(1, 0x01, 1, 0, sidt);
  def(1, 0x01, 2, 0, lgdt);
  def(1, 0x01, 3, 0, lidt);
  def(1, 0x01, 4, 0, smsw);
  def(1, 0x01, 6, 0, lmsw);
  def(1, 0x01, 7, 0, invlpg);
  // lar/lsl: registered for every ModRM reg value (whether or not the decoder groups them).
  for (let sub = 0; sub < 8; sub++) {
    def(1, 0x02, sub, 32, lar32);
    def(1, 0x02, sub, 16, lar16);
    def(1, 0x03, sub, 32, lsl32);
    def(1, 0x03, sub, 16, lsl16);
  }
  def(0, 0x63, 0, 0, arpl);
  def(1, 0x06, 0, 0, clts);
  def(1, 0x08, 0, 0, invd);
  def(1, 0x09, 0, 0, invd);
  def(1, 0x20, 0, 0, movRdCr);
  def(1, 0x22, 0, 0, movCrRd);
  def(1, 0x21, 0, 0, movRdDr);
  def(1, 0x23, 0, 0, movDrRd);
  def(1, 0x32, 0, 0, rdmsr);
  def(1, 0x30, 0, 0, wrmsr);
  def(0, 0x62, 0, 32, bound32);
  def(0, 0x62, 0, 16, bound16);
}
