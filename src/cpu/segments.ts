/**
 * Protected-mode segmentation (Intel SDM vol. 2 and 3, i686, 32-bit code segments):
 * descriptor loads with the architectural checks, far jmp/call/ret through code segments and
 * call gates, iret, and interrupt/exception delivery through the IDT (architectural mode).
 *
 * Every transfer does all its checks, descriptor reads and stack writes BEFORE it changes any
 * register, so a fault leaves the CPU as it was before the instruction (the run loop restores
 * only EIP and ESP). Hardware sets descriptor accessed bits as it loads them; so do we, which
 * may happen before a later check faults (as on hardware).
 *
 * Not supported (raise #GP instead): task switches (jmp/call to a TSS or task gate, task-gate
 * interrupts, iret with NT=1) and virtual-8086 mode (iret to VM=1).
 *
 * Host helpers (for a hypervisor running the CPU in host mode, where every fault exits):
 * loadSegment, enterRing, iretTo, deliverInterrupt, readDescriptor, readTssStack; run them
 * inside hostCall so a fault is reported in cpu.exitVector/exitErrorCode/exitCr2 instead of
 * thrown.
 *
 * Descriptor accessed bits are written with implicit supervisor writes: with CR0.WP set, a
 * descriptor table on a read-only page faults (#PF) when a descriptor without the accessed
 * bit is loaded, as on hardware; keep the tables writable or descriptors pre-accessed.
 */
import type { Cpu } from "./cpu.js";
import {
  AC,
  AF,
  CF,
  CS,
  DF,
  DS,
  ES,
  ESP,
  FS,
  GP,
  GS,
  ID,
  IF,
  IOPL,
  LDTR,
  NP,
  NT,
  OF,
  PF,
  RF,
  SF,
  SS,
  SS_VEC,
  TF,
  TR,
  TS,
  VIF,
  VIP,
  VM,
  ZF,
} from "./regs.js";
import { TLB_SUP_READ } from "./tlb_bits.js";

// Descriptor high-dword bits (also for the wasm blocks' segment loads, wasm/gen.ts segFast).
export const D_ACCESSED = 0x100;
export const D_RW = 0x200; // readable code / writable data
export const D_CONFORMING = 0x400; // conforming code / expand-down data
export const D_CODE = 0x800;
export const D_S = 0x1000; // code or data (not system)
export const D_P = 0x8000;
export const D_G = 0x800000;

// ---------------------------------------------------------------- descriptor reads

/** The descriptor last read by readDesc, and its linear address. */
let dLo = 0;
let dHi = 0;
let dAddr = 0;

/**
 * Reads the GDT/LDT descriptor of selector sel into dLo/dHi (implicit supervisor reads).
 * Returns false when the selector's index is beyond the table limit (or the LDT is null).
 */
export function readDescriptor(cpu: Cpu, sel: number): boolean {
  const idx = sel & 0xfff8;
  let base: number;
  let limit: number;
  if (sel & 4) {
    if ((cpu.segAttr[LDTR] & 0x80) === 0) return false;
    base = cpu.segBase[LDTR];
    limit = cpu.segLimit[LDTR] >>> 0;
  } else {
    base = cpu.gdtrBase;
    limit = cpu.gdtrLimit >>> 0;
  }
  if (idx + 7 > limit) return false;
  dAddr = (base + idx) | 0;
  dLo = cpu.sysRead32(dAddr);
  dHi = cpu.sysRead32((dAddr + 4) | 0);
  return true;
}

/** Low and high dwords of the descriptor last read by readDescriptor. */
export function lastDescriptorLo(): number {
  return dLo;
}
export function lastDescriptorHi(): number {
  return dHi;
}

/**
 * A descriptor's base, byte-granular limit (after G scaling) and cache attributes, each int32
 * (the one decoding for the CPU and the hypervisor: an unsigned 4 GiB limit would be a heap
 * number wherever the call is not inlined; test/scale-alloc).
 */
export function descBase(lo: number, hi: number): number {
  return (lo >>> 16) | ((hi & 0xff) << 16) | (hi & 0xff000000);
}

export function descLimit(lo: number, hi: number): number {
  const l = (lo & 0xffff) | (hi & 0xf0000);
  return hi & D_G ? (l << 12) | 0xfff : l;
}

/** Cache attributes: access byte | flags nibble << 12 (see Cpu.segAttr). */
export function descAttr(hi: number): number {
  return (hi >>> 8) & 0xf0ff;
}

function dplOf(hi: number): number {
  return (hi >>> 13) & 3;
}

/** Sets the accessed bit of the descriptor last read (at dAddr) as hardware does on a load. */
function setAccessed(cpu: Cpu, addr: number, hi: number): number {
  if ((hi & D_ACCESSED) === 0) {
    hi |= D_ACCESSED;
    cpu.sysWrite32((addr + 4) | 0, hi);
  }
  return hi;
}

/** True when [off, off+size-1] is inside a segment with this limit and attr. */
function inLimits(limit: number, attr: number, off: number, size: number): boolean {
  if ((attr & 0x80) === 0) return false;
  const lim = limit >>> 0;
  const o = off >>> 0;
  const end = o + size - 1;
  if ((attr & 0x0c) === 0x04) {
    // Expand-down data: valid offsets are (limit, 0xffff or 0xffffffff].
    return o > lim && end <= (attr & 0x4000 ? 0xffffffff : 0xffff);
  }
  return end <= lim;
}

function gp(cpu: Cpu, code: number): never {
  return cpu.fault(GP, code);
}

// ---------------------------------------------------------------- segment register loads

/**
 * mov/pop/lds... to DS, ES, FS, GS or SS at privilege cpl with all the architectural checks
 * (faults with the selector error code). Loading CS this way is not allowed (#UD).
 */
export function loadSegAs(cpu: Cpu, seg: number, sel: number, cpl: number): void {
  sel &= 0xffff;
  if (seg === SS) {
    if ((sel & 0xfffc) === 0) gp(cpu, 0);
    if (!readDescriptor(cpu, sel)) gp(cpu, sel & 0xfffc);
    const hi = dHi;
    if ((sel & 3) !== cpl || (hi & (D_S | D_CODE | D_RW)) !== (D_S | D_RW) || dplOf(hi) !== cpl) {
      gp(cpu, sel & 0xfffc);
    }
    if ((hi & D_P) === 0) cpu.fault(SS_VEC, sel & 0xfffc);
    const lo = dLo;
    const h = setAccessed(cpu, dAddr, hi);
    cpu.loadSegmentCache(SS, sel, descBase(lo, h), descLimit(lo, h), descAttr(h));
    return;
  }
  if (seg === CS || seg > GS) cpu.fault(6, 0);
  if ((sel & 0xfffc) === 0) {
    cpu.loadNullSegment(seg, sel);
    return;
  }
  if (!readDescriptor(cpu, sel)) gp(cpu, sel & 0xfffc);
  const hi = dHi;
  // Data, or readable code.
  if ((hi & D_S) === 0 || (hi & (D_CODE | D_RW)) === D_CODE) gp(cpu, sel & 0xfffc);
  if ((hi & (D_CODE | D_CONFORMING)) !== (D_CODE | D_CONFORMING)) {
    const dpl = dplOf(hi);
    if ((sel & 3) > dpl || cpl > dpl) gp(cpu, sel & 0xfffc);
  }
  if ((hi & D_P) === 0) cpu.fault(NP, sel & 0xfffc);
  const lo = dLo;
  const h = setAccessed(cpu, dAddr, hi);
  cpu.loadSegmentCache(seg, sel, descBase(lo, h), descLimit(lo, h), descAttr(h));
}

/** mov/pop/lds... to a segment register at the current CPL (the instructions' path). */
export function loadSeg(cpu: Cpu, seg: number, sel: number): void {
  loadSegAs(cpu, seg, sel, cpu.cpl);
}

/**
 * After a return to an outer ring: null ES, DS, FS, GS that the new CPL may not use, a present
 * data or non-conforming code segment with DPL < cpl (iret's rule). Unrolled (every iret and
 * far ret to an outer ring: the loop was ~350 host instructions), the test written out at each
 * (as a function V8 did not inline it into iretCommon: ~40 host instructions a call).
 */
function nullInaccessibleSegs(cpu: Cpu, cpl: number): void {
  const a = cpu.segAttr;
  let t = a[ES];
  if ((t & 0x80) !== 0 && (t & 0x1c) !== 0x1c && ((t >>> 5) & 3) < cpl) cpu.loadNullSegment(ES, 0);
  t = a[DS];
  if ((t & 0x80) !== 0 && (t & 0x1c) !== 0x1c && ((t >>> 5) & 3) < cpl) cpu.loadNullSegment(DS, 0);
  t = a[FS];
  if ((t & 0x80) !== 0 && (t & 0x1c) !== 0x1c && ((t >>> 5) & 3) < cpl) cpu.loadNullSegment(FS, 0);
  t = a[GS];
  if ((t & 0x80) !== 0 && (t & 0x1c) !== 0x1c && ((t >>> 5) & 3) < cpl) cpu.loadNullSegment(GS, 0);
}

// ---------------------------------------------------------------- stacks outside the current one

/** Values of a frame to write, FR[0] pushed first (highest address). */
const FR = new Int32Array(48);
let frN = 0;

function probeWrite(cpu: Cpu, lin: number, len: number, user: boolean): void {
  cpu.translate(lin, true, user);
  const last = (lin + len - 1) | 0;
  if (((last ^ lin) & ~0xfff) !== 0) cpu.translate(last & ~0xfff, true, user);
}

function writeAs(cpu: Cpu, lin: number, v: number, size: number, user: boolean): void {
  if ((lin & 0xfff) <= 0x1000 - size) {
    const p = cpu.translate(lin, true, user);
    if (size === 4) cpu.physWrite32(p, v);
    else cpu.physWrite16(p, v);
    return;
  }
  for (let i = 0; i < size; i++) cpu.physWrite8(cpu.translate((lin + i) | 0, true, user), v >> (i * 8));
}

/**
 * Checks that FR[0..frN-1] (size 2 or 4 bytes each) fits below offset sp of a stack segment
 * given by base/limit/attr (#SS(ssErr)) and translates every page it touches with the
 * privilege of `user` (#PF), writing nothing: frameFlush writes it once every other check
 * has passed. Returns the new stack offset (16-bit when attr.B = 0).
 */
let frLin = 0;
let frSize = 4;
let frUser = false;
function frameCheck(
  cpu: Cpu,
  base: number,
  limit: number,
  attr: number,
  sp: number,
  size: number,
  user: boolean,
  ssErr: number,
): number {
  const bytes = frN * size;
  const newSp = attr & 0x4000 ? (sp - bytes) | 0 : (sp - bytes) & 0xffff;
  if (!inLimits(limit, attr, newSp, bytes)) cpu.fault(SS_VEC, ssErr);
  frLin = (base + newSp) | 0;
  frSize = size;
  frUser = user;
  if (bytes > 0) probeWrite(cpu, frLin, bytes, user);
  return newSp;
}

/** Writes the frame checked by frameCheck (FR[0] at the highest address). */
function frameFlush(cpu: Cpu): void {
  for (let i = 0; i < frN; i++) writeAs(cpu, (frLin + (frN - 1 - i) * frSize) | 0, FR[i], frSize, frUser);
}

/** ESP after setting the stack offset sp on a stack with attributes attr. */
function espFor(attr: number, oldEsp: number, sp: number): number {
  return attr & 0x4000 ? sp | 0 : (oldEsp & ~0xffff) | (sp & 0xffff);
}

// TSS stack for an inner ring, read by tssStack.
let tssSs = 0;
let tssEsp = 0;

/** Reads SS:ESP for ring `dpl` from the current TSS (#TS(TR selector + ext) when too short). */
function tssStack(cpu: Cpu, dpl: number, ext: number): void {
  const attr = cpu.segAttr[TR];
  const base = cpu.segBase[TR];
  const limit = cpu.segLimit[TR] >>> 0;
  const trErr = (cpu.segSel[TR] & 0xfffc) + ext;
  if ((attr & 0x80) === 0) cpu.fault(TS, trErr);
  if (attr & 8) {
    const off = 4 + dpl * 8;
    if (off + 5 > limit) cpu.fault(TS, trErr);
    tssEsp = cpu.sysRead32((base + off) | 0);
    tssSs = cpu.sysRead16((base + off + 4) | 0);
  } else {
    const off = 2 + dpl * 4;
    if (off + 3 > limit) cpu.fault(TS, trErr);
    tssEsp = cpu.sysRead16((base + off) | 0);
    tssSs = cpu.sysRead16((base + off + 2) | 0);
  }
}

// Scratch copies of a code (c*) and a stack (s*) descriptor being checked.
let cLo = 0;
let cHi = 0;
let cAddr = 0;
let sLo = 0;
let sHi = 0;
let sAddr = 0;

/**
 * Checks the new stack segment of an inner-ring transfer (call gate or interrupt) for ring
 * dpl; faults with #TS(sel + ext) / #SS(sel + ext). Leaves the descriptor in sLo/sHi/sAddr.
 */
function checkInnerStack(cpu: Cpu, ss: number, dpl: number, ext: number): void {
  if ((ss & 0xfffc) === 0) cpu.fault(TS, ext);
  const err = (ss & 0xfffc) + ext;
  if (!readDescriptor(cpu, ss)) cpu.fault(TS, err);
  if ((ss & 3) !== dpl || dplOf(dHi) !== dpl || (dHi & (D_S | D_CODE | D_RW)) !== (D_S | D_RW)) {
    cpu.fault(TS, err);
  }
  if ((dHi & D_P) === 0) cpu.fault(SS_VEC, err);
  sLo = dLo;
  sHi = dHi;
  sAddr = dAddr;
}

/** Checks the stack segment of a return to an outer ring rpl (ret/iret): #GP(sel), #SS(sel). */
function checkOuterStack(cpu: Cpu, ss: number, rpl: number): void {
  if ((ss & 0xfffc) === 0) gp(cpu, 0);
  if (!readDescriptor(cpu, ss)) gp(cpu, ss & 0xfffc);
  if ((ss & 3) !== rpl || (dHi & (D_S | D_CODE | D_RW)) !== (D_S | D_RW) || dplOf(dHi) !== rpl) {
    gp(cpu, ss & 0xfffc);
  }
  if ((dHi & D_P) === 0) cpu.fault(SS_VEC, ss & 0xfffc);
  sLo = dLo;
  sHi = dHi;
  sAddr = dAddr;
}

/** Loads SS from sLo/sHi (checked) and sets ESP for stack offset sp. */
function commitStack(cpu: Cpu, ss: number, sp: number): void {
  const attr = descAttr(sHi);
  cpu.loadSegmentCache(SS, ss, descBase(sLo, sHi), descLimit(sLo, sHi), attr);
  cpu.regs[ESP] = espFor(attr, cpu.regs[ESP], sp);
}

/** Loads CS from cLo/cHi with RPL = cpl, sets CPL and EIP. */
function commitCode(cpu: Cpu, sel: number, cpl: number, eip: number): void {
  cpu.loadSegmentCache(CS, (sel & 0xfffc) | cpl, descBase(cLo, cHi), descLimit(cLo, cHi), descAttr(cHi));
  if (cpu.cpl !== cpl) cpu.setCpl(cpl);
  cpu.eip = eip;
}

function saveCode(): void {
  cLo = dLo;
  cHi = dHi;
  cAddr = dAddr;
}

/** Checks that eip is within the code segment in cLo/cHi: #GP(err). */
function checkEip(cpu: Cpu, eip: number, err: number): void {
  if (eip >>> 0 > descLimit(cLo, cHi) >>> 0) gp(cpu, err);
}

// ---------------------------------------------------------------- far jmp / call

/**
 * Checks a direct far jmp/call target code segment (descriptor in dLo/dHi) at CPL cpl:
 * conforming DPL <= CPL, non-conforming RPL <= CPL and DPL = CPL; present.
 */
function checkDirectCode(cpu: Cpu, sel: number, cpl: number): void {
  const dpl = dplOf(dHi);
  if (dHi & D_CONFORMING) {
    if (dpl > cpl) gp(cpu, sel & 0xfffc);
  } else if ((sel & 3) > cpl || dpl !== cpl) {
    gp(cpu, sel & 0xfffc);
  }
  if ((dHi & D_P) === 0) cpu.fault(NP, sel & 0xfffc);
  saveCode();
}

/**
 * Reads and checks a call gate (in dLo/dHi, selector gsel) and its target code segment
 * (left in cLo/cHi). Returns the target code selector; gate offset in gateOff.
 */
let gateOff = 0;
function checkCallGate(cpu: Cpu, gsel: number, cpl: number): number {
  const gdpl = dplOf(dHi);
  if (gdpl < cpl || gdpl < (gsel & 3)) gp(cpu, gsel & 0xfffc);
  if ((dHi & D_P) === 0) cpu.fault(NP, gsel & 0xfffc);
  const is32 = (dHi & 0x800) !== 0;
  gateOff = is32 ? (dLo & 0xffff) | (dHi & 0xffff0000) : dLo & 0xffff;
  const sel = dLo >>> 16;
  if ((sel & 0xfffc) === 0) gp(cpu, 0);
  if (!readDescriptor(cpu, sel)) gp(cpu, sel & 0xfffc);
  if ((dHi & (D_S | D_CODE)) !== (D_S | D_CODE) || dplOf(dHi) > cpl) gp(cpu, sel & 0xfffc);
  if ((dHi & D_P) === 0) cpu.fault(NP, sel & 0xfffc);
  saveCode();
  return sel;
}

/** Far jmp to sel:off (jmp ptr16:32, jmp m16:32). o16: 16-bit operand size. */
export function farJump(cpu: Cpu, sel: number, off: number, o16: boolean): void {
  const cpl = cpu.cpl;
  if ((sel & 0xfffc) === 0) gp(cpu, 0);
  if (!readDescriptor(cpu, sel)) gp(cpu, sel & 0xfffc);
  if (dHi & D_S) {
    if ((dHi & D_CODE) === 0) gp(cpu, sel & 0xfffc);
    checkDirectCode(cpu, sel, cpl);
    const eip = o16 ? off & 0xffff : off;
    checkEip(cpu, eip, 0);
    cHi = setAccessed(cpu, cAddr, cHi);
    commitCode(cpu, sel, cpl, eip);
    return;
  }
  const type = (dHi >>> 8) & 0xf;
  if (type === 0x4 || type === 0xc) {
    const gsel = sel;
    const csel = checkCallGate(cpu, gsel, cpl);
    // jmp through a call gate never changes privilege.
    const dpl = dplOf(cHi);
    if (cHi & D_CONFORMING ? dpl > cpl : dpl !== cpl) gp(cpu, csel & 0xfffc);
    const eip = type === 0x4 ? gateOff & 0xffff : gateOff;
    checkEip(cpu, eip, 0);
    cHi = setAccessed(cpu, cAddr, cHi);
    commitCode(cpu, csel, cpl, eip);
    return;
  }
  // Task gates and TSS descriptors would switch tasks: not supported.
  gp(cpu, sel & 0xfffc);
}

/** Far call to sel:off (call ptr16:32, call m16:32); the return address is cpu.eip. */
export function farCall(cpu: Cpu, sel: number, off: number, o16: boolean): void {
  const cpl = cpu.cpl;
  if ((sel & 0xfffc) === 0) gp(cpu, 0);
  if (!readDescriptor(cpu, sel)) gp(cpu, sel & 0xfffc);
  if (dHi & D_S) {
    if ((dHi & D_CODE) === 0) gp(cpu, sel & 0xfffc);
    checkDirectCode(cpu, sel, cpl);
    const eip = o16 ? off & 0xffff : off;
    frN = 2;
    FR[0] = cpu.segSel[CS];
    FR[1] = cpu.eip;
    pushCurrent(cpu, o16 ? 2 : 4);
    checkEip(cpu, eip, 0);
    cHi = setAccessed(cpu, cAddr, cHi);
    commitPushes(cpu);
    commitCode(cpu, sel, cpl, eip);
    return;
  }
  const type = (dHi >>> 8) & 0xf;
  if (type !== 0x4 && type !== 0xc) gp(cpu, sel & 0xfffc); // task gates / TSS: not supported
  const size = type === 0xc ? 4 : 2;
  const count = dHi & 0x1f;
  const csel = checkCallGate(cpu, sel, cpl);
  const eip = size === 2 ? gateOff & 0xffff : gateOff;
  const dpl = dplOf(cHi);
  if ((cHi & D_CONFORMING) === 0 && dpl < cpl) {
    // More privilege: stack switch from the TSS, copy `count` parameters.
    tssStack(cpu, dpl, 0);
    const ss = tssSs;
    const esp = tssEsp;
    checkInnerStack(cpu, ss, dpl, 0);
    const oldSp = cpu.stackPointer();
    const stk32 = cpu.stack32();
    frN = 0;
    FR[frN++] = cpu.segSel[SS];
    FR[frN++] = cpu.regs[ESP];
    for (let i = count - 1; i >= 0; i--) {
      const o = stk32 ? (oldSp + i * size) | 0 : (oldSp + i * size) & 0xffff;
      FR[frN++] = size === 4 ? cpu.rd32(SS, o) : cpu.rd16(SS, o);
    }
    FR[frN++] = cpu.segSel[CS];
    FR[frN++] = cpu.eip;
    const sattr = descAttr(sHi);
    const sp = frameCheck(cpu, descBase(sLo, sHi), descLimit(sLo, sHi), sattr, esp, size, false, ss & 0xfffc);
    checkEip(cpu, eip, 0);
    cHi = setAccessed(cpu, cAddr, cHi);
    sHi = setAccessed(cpu, sAddr, sHi);
    frameFlush(cpu);
    commitStack(cpu, ss, sp);
    commitCode(cpu, csel, dpl, eip);
    return;
  }
  // Same privilege (conforming, or DPL = CPL).
  frN = 2;
  FR[0] = cpu.segSel[CS];
  FR[1] = cpu.eip;
  pushCurrent(cpu, size);
  checkEip(cpu, eip, 0);
  cHi = setAccessed(cpu, cAddr, cHi);
  commitPushes(cpu);
  commitCode(cpu, csel, cpl, eip);
}

let pendingSp = 0;
/** Writes FR on the current stack (checks first; #SS(0)); ESP is set by commitPushes. */
function pushCurrent(cpu: Cpu, size: number): void {
  pendingSp = frameCheck(
    cpu,
    cpu.segBase[SS],
    cpu.segLimit[SS],
    cpu.segAttr[SS],
    cpu.stackPointer(),
    size,
    cpu.cpl === 3,
    0,
  );
}
function commitPushes(cpu: Cpu): void {
  frameFlush(cpu);
  cpu.regs[ESP] = espFor(cpu.segAttr[SS], cpu.regs[ESP], pendingSp);
}

// ---------------------------------------------------------------- far ret / iret

/** Checks a return code segment (ret/iret) at CPL cpl; leaves it in cLo/cHi. */
function checkReturnCode(cpu: Cpu, sel: number, cpl: number): void {
  if ((sel & 0xfffc) === 0) gp(cpu, 0);
  if (!readDescriptor(cpu, sel)) gp(cpu, sel & 0xfffc);
  if ((dHi & (D_S | D_CODE)) !== (D_S | D_CODE)) gp(cpu, sel & 0xfffc);
  const rpl = sel & 3;
  if (rpl < cpl) gp(cpu, sel & 0xfffc);
  const dpl = dplOf(dHi);
  if (dHi & D_CONFORMING ? dpl > rpl : dpl !== rpl) gp(cpu, sel & 0xfffc);
  if ((dHi & D_P) === 0) cpu.fault(NP, sel & 0xfffc);
  saveCode();
}

/** Stack offset k bytes above the current stack pointer. */
function stackOff(cpu: Cpu, k: number): number {
  return cpu.stack32() ? (cpu.regs[ESP] + k) | 0 : (cpu.regs[ESP] + k) & 0xffff;
}

/** Far ret (CB, CA imm16): imm bytes of parameters released. */
export function farReturn(cpu: Cpu, imm: number, o16: boolean): void {
  const cpl = cpu.cpl;
  const size = o16 ? 2 : 4;
  let eip: number;
  let cs: number;
  if (o16) {
    eip = cpu.rd16(SS, stackOff(cpu, 0));
    cs = cpu.rd16(SS, stackOff(cpu, 2));
  } else {
    eip = cpu.rd32(SS, stackOff(cpu, 0));
    cs = cpu.rd32(SS, stackOff(cpu, 4)) & 0xffff;
  }
  checkReturnCode(cpu, cs, cpl);
  const rpl = cs & 3;
  if (rpl === cpl) {
    checkEip(cpu, eip, 0);
    cHi = setAccessed(cpu, cAddr, cHi);
    cpu.setStackPointer(stackOff(cpu, 2 * size + imm));
    commitCode(cpu, cs, cpl, eip);
    return;
  }
  // Return to an outer ring: pop SS:ESP too.
  let esp: number;
  let ss: number;
  if (o16) {
    esp = cpu.rd16(SS, stackOff(cpu, 4 + imm));
    ss = cpu.rd16(SS, stackOff(cpu, 6 + imm));
  } else {
    esp = cpu.rd32(SS, stackOff(cpu, 8 + imm));
    ss = cpu.rd32(SS, stackOff(cpu, 12 + imm)) & 0xffff;
  }
  checkOuterStack(cpu, ss, rpl);
  checkEip(cpu, eip, 0);
  cHi = setAccessed(cpu, cAddr, cHi);
  sHi = setAccessed(cpu, sAddr, sHi);
  const attr = descAttr(sHi);
  const newSp = attr & 0x4000 ? (esp + imm) | 0 : (esp + imm) & 0xffff;
  commitStack(cpu, ss, o16 && attr & 0x4000 ? newSp & 0xffff : newSp);
  commitCode(cpu, cs, rpl, eip);
  nullInaccessibleSegs(cpu, rpl);
}

/** The flags an iret always takes from its frame (IF, IOPL, VIF, VIP by privilege: iretFlags). */
export const IRET_FLAGS = CF | PF | AF | ZF | SF | TF | DF | OF | NT | RF | AC | ID;

/** EFLAGS after an iret/host return executed at privilege cpl (size 2: only the low word). */
function iretFlags(cpu: Cpu, v: number, cpl: number, size: number): number {
  const old = cpu.getFlags();
  let mask = IRET_FLAGS;
  if (cpl <= (old & IOPL) >>> 12) mask |= IF;
  if (cpl === 0) mask |= IOPL | VIF | VIP;
  if (size === 2) mask &= 0xffff;
  return (old & ~mask) | (v & mask);
}

/**
 * The protected-mode part of iret once EIP, CS and EFLAGS are known: at privilege cpl, to
 * ring RPL(cs). Outer returns take SS:ESP from readOuter (the stack) or the given values.
 * sameSp: the stack offset after popping the frame (same-level return).
 */
function protectedReturn(
  cpu: Cpu,
  eip: number,
  cs: number,
  fl: number,
  cpl: number,
  size: number,
  sameSp: number,
  outerEsp: number,
  outerSs: number,
): void {
  checkReturnCode(cpu, cs, cpl);
  const rpl = cs & 3;
  if (rpl === cpl) {
    checkEip(cpu, eip, 0);
    cHi = setAccessed(cpu, cAddr, cHi);
    const f = iretFlags(cpu, fl, cpl, size);
    cpu.setStackPointer(sameSp);
    commitCode(cpu, cs, cpl, eip);
    cpu.setFlags(f);
    return;
  }
  checkOuterStack(cpu, outerSs, rpl);
  checkEip(cpu, eip, 0);
  cHi = setAccessed(cpu, cAddr, cHi);
  sHi = setAccessed(cpu, sAddr, sHi);
  const f = iretFlags(cpu, fl, cpl, size);
  const attr = descAttr(sHi);
  commitStack(cpu, outerSs, size === 2 && attr & 0x4000 ? outerEsp & 0xffff : outerEsp);
  commitCode(cpu, cs, rpl, eip);
  cpu.setFlags(f);
  nullInaccessibleSegs(cpu, rpl);
}

/** iret (CF) in protected mode, 32-bit (o16 false) or 16-bit frame. */
export function iret(cpu: Cpu, o16: boolean): void {
  if (!o16 && iretFast(cpu)) return;
  // Task return (NT = 1) would switch tasks: not supported.
  if (cpu.flags & NT) gp(cpu, 0);
  const cpl = cpu.cpl;
  let eip: number;
  let cs: number;
  let fl: number;
  const size = o16 ? 2 : 4;
  if (o16) {
    eip = cpu.rd16(SS, stackOff(cpu, 0));
    cs = cpu.rd16(SS, stackOff(cpu, 2));
    fl = cpu.rd16(SS, stackOff(cpu, 4));
  } else {
    eip = cpu.rd32(SS, stackOff(cpu, 0));
    cs = cpu.rd32(SS, stackOff(cpu, 4)) & 0xffff;
    fl = cpu.rd32(SS, stackOff(cpu, 8));
    // Return to virtual-8086 mode: not supported.
    if (fl & VM && cpl === 0) gp(cpu, 0);
  }
  let esp = 0;
  let ss = 0;
  if ((cs & 3) > cpl) {
    if (o16) {
      esp = cpu.rd16(SS, stackOff(cpu, 6));
      ss = cpu.rd16(SS, stackOff(cpu, 8));
    } else {
      esp = cpu.rd32(SS, stackOff(cpu, 12));
      ss = cpu.rd32(SS, stackOff(cpu, 16)) & 0xffff;
    }
  }
  protectedReturn(cpu, eip, cs, fl, cpl, size, stackOff(cpu, 3 * size), esp, ss);
}

/**
 * The inline iret iret() tries first: iretCommon; iretNever (tests compare with the full path
 * alone); iretCounted once a test has asked iretInlineCount, so the product path counts nothing.
 */
let iretFast: (cpu: Cpu) => boolean = iretCommon;
let iretCounting = false;
let iretInlineRuns = 0;
function iretNever(_cpu: Cpu): boolean {
  return false;
}
function iretCounted(cpu: Cpu): boolean {
  if (!iretCommon(cpu)) return false;
  iretInlineRuns++;
  return true;
}
export function setIretInline(on: boolean): void {
  iretFast = !on ? iretNever : iretCounting ? iretCounted : iretCommon;
}
/** irets iretCommon completed since the first call (tests: which cases it takes); counting from then on. */
export function iretInlineCount(): number {
  if (!iretCounting) {
    iretCounting = true;
    if (iretFast === iretCommon) iretFast = iretCounted;
  }
  return iretInlineRuns;
}

/**
 * readDescriptor for a GDT selector whose descriptor reads without a walk (which may fault):
 * false (nothing read) for the LDT, past the GDT's limit, across a page or without a
 * supervisor-read TLB entry, which the full path takes. The words are read through the entry
 * here, as sysRead32 reads them on a hit: readDescriptor's call was ~160 host instructions an
 * iret's descriptor (it is not inlined into iretCommon).
 */
function gdtDescriptorInTlb(cpu: Cpu, sel: number): boolean {
  const idx = sel & 0xfff8;
  const a = (cpu.gdtrBase + idx) | 0;
  const e = cpu.tlb[a >>> 12];
  if (sel & 4 || (a & 0xfff) > 0xff8 || (e & TLB_SUP_READ) === 0 || idx + 7 > cpu.gdtrLimit >>> 0)
    return false;
  const p = (e & ~0xfff) | (a & 0xfff);
  dAddr = a;
  dLo = cpu.physRead32(p);
  dHi = cpu.physRead32(p + 4);
  return true;
}

/**
 * A 32-bit iret's common case without a fault or a write: CPL 1-3, NT clear, a 32-bit stack
 * whose aligned frame lies inside SS's limits and in one page the TLB maps for a read at this CPL,
 * to the same ring or an outer one through GDT descriptors read through the TLB that pass
 * checkReturnCode's and checkOuterStack's checks already accessed, EIP within CS's limit.
 * Then it commits exactly as protectedReturn does (the same helpers, in the same order);
 * otherwise it returns false having changed nothing, and the full path runs (and faults,
 * walks, or sets an accessed bit). Every check is made afresh: nothing is kept between irets.
 */
function iretCommon(cpu: Cpu): boolean {
  const cpl = cpu.cpl;
  if (cpl === 0 || cpu.flags & NT || (cpu.segAttr[SS] & 0x4000) === 0) return false;
  const esp = cpu.regs[ESP] >>> 0;
  const lin = (cpu.segBase[SS] + esp) | 0;
  const e = cpu.tlb[lin >>> 12];
  // The outer frame's 20 bytes checked for both kinds (a same-ring frame needs 12); aligned,
  // so read as words (a TLB entry's frame is in memory).
  if (
    esp < cpu.segLo[SS] ||
    esp + 19 > cpu.segHi[SS] ||
    (lin & 0xfff) > 0xfec ||
    lin & 3 ||
    (e & cpu.rdMask) === 0
  ) {
    return false;
  }
  const m = cpu.mem32;
  const w = ((e & ~0xfff) | (lin & 0xfff)) >>> 2;
  const eip = m[w];
  const cs = m[w + 1] & 0xffff;
  const fl = m[w + 2];
  const rpl = cs & 3;
  if (rpl < cpl || (cs & 0xfffc) === 0 || !gdtDescriptorInTlb(cpu, cs)) return false;
  const ch = dHi;
  const dpl = dplOf(ch);
  if (
    (ch & (D_S | D_CODE | D_P | D_ACCESSED)) !== (D_S | D_CODE | D_P | D_ACCESSED) ||
    (ch & D_CONFORMING ? dpl > rpl : dpl !== rpl)
  ) {
    return false;
  }
  saveCode();
  if (eip >>> 0 > descLimit(cLo, cHi) >>> 0) return false;
  const f = iretFlags(cpu, fl, cpl, 4);
  if (rpl === cpl) {
    cpu.regs[ESP] = (esp + 12) | 0;
    commitCode(cpu, cs, cpl, eip);
    cpu.setFlags(f);
    return true;
  }
  const outerEsp = m[w + 3];
  const ss = m[w + 4] & 0xffff;
  if ((ss & 0xfffc) === 0 || (ss & 3) !== rpl || !gdtDescriptorInTlb(cpu, ss)) return false;
  const sh = dHi;
  if (
    (sh & (D_S | D_CODE | D_RW | D_P | D_ACCESSED)) !== (D_S | D_RW | D_P | D_ACCESSED) ||
    dplOf(sh) !== rpl
  ) {
    return false;
  }
  sLo = dLo;
  sHi = sh;
  sAddr = dAddr;
  commitStack(cpu, ss, outerEsp);
  commitCode(cpu, cs, rpl, eip);
  cpu.setFlags(f);
  nullInaccessibleSegs(cpu, rpl);
  return true;
}

// ---------------------------------------------------------------- interrupt delivery

/**
 * Delivers an interrupt or exception through the IDT: gate checks, the stack switch from the
 * TSS for an inner-ring handler, the frame (with errorCode when >= 0). soft: int n/int3/into
 * (gate DPL is checked against CPL, EXT = 0). May raise a nested fault (thrown CPU_FAULT)
 * before anything is changed.
 */
export function deliverInterrupt(cpu: Cpu, vector: number, errorCode: number, soft: boolean): void {
  const ext = soft ? 0 : 1;
  const cpl = cpu.cpl;
  const idtErr = vector * 8 + 2 + ext;
  if (vector * 8 + 7 > cpu.idtrLimit >>> 0) gp(cpu, idtErr);
  const ga = (cpu.idtrBase + vector * 8) | 0;
  const gLo = cpu.sysRead32(ga);
  const gHi = cpu.sysRead32((ga + 4) | 0);
  const type = (gHi >>> 8) & 0x1f; // with the S bit, which must be 0
  if (type !== 0x0e && type !== 0x0f && type !== 0x06 && type !== 0x07 && type !== 0x05) gp(cpu, idtErr);
  if (soft && dplOf(gHi) < cpl) gp(cpu, vector * 8 + 2);
  if ((gHi & D_P) === 0) cpu.fault(NP, idtErr);
  if (type === 0x05) gp(cpu, idtErr); // task gate: task switches are not supported
  const size = type & 8 ? 4 : 2;
  const eip = size === 4 ? (gLo & 0xffff) | (gHi & 0xffff0000) : gLo & 0xffff;
  const sel = gLo >>> 16;
  if ((sel & 0xfffc) === 0) gp(cpu, ext);
  const selErr = (sel & 0xfffc) + ext;
  if (!readDescriptor(cpu, sel)) gp(cpu, selErr);
  if ((dHi & (D_S | D_CODE)) !== (D_S | D_CODE) || dplOf(dHi) > cpl) gp(cpu, selErr);
  if ((dHi & D_P) === 0) cpu.fault(NP, selErr);
  saveCode();
  const dpl = dplOf(cHi);
  const flags = cpu.getFlags();
  if ((cHi & D_CONFORMING) === 0 && dpl < cpl) {
    // Inner ring: new stack from the TSS.
    tssStack(cpu, dpl, ext);
    const ss = tssSs;
    const esp = tssEsp;
    checkInnerStack(cpu, ss, dpl, ext);
    frN = 0;
    FR[frN++] = cpu.segSel[SS];
    FR[frN++] = cpu.regs[ESP];
    FR[frN++] = flags;
    FR[frN++] = cpu.segSel[CS];
    FR[frN++] = cpu.eip;
    if (errorCode >= 0) FR[frN++] = errorCode;
    const sattr = descAttr(sHi);
    const sp = frameCheck(
      cpu,
      descBase(sLo, sHi),
      descLimit(sLo, sHi),
      sattr,
      esp,
      size,
      dpl === 3,
      (ss & 0xfffc) + ext,
    );
    checkEip(cpu, eip, ext);
    cHi = setAccessed(cpu, cAddr, cHi);
    sHi = setAccessed(cpu, sAddr, sHi);
    frameFlush(cpu);
    commitStack(cpu, ss, sp);
    commitCode(cpu, sel, dpl, eip);
  } else {
    // Same ring (conforming handler or DPL = CPL).
    frN = 0;
    FR[frN++] = flags;
    FR[frN++] = cpu.segSel[CS];
    FR[frN++] = cpu.eip;
    if (errorCode >= 0) FR[frN++] = errorCode;
    const sp = frameCheck(
      cpu,
      cpu.segBase[SS],
      cpu.segLimit[SS],
      cpu.segAttr[SS],
      cpu.stackPointer(),
      size,
      cpl === 3,
      ext,
    );
    checkEip(cpu, eip, ext);
    cHi = setAccessed(cpu, cAddr, cHi);
    frameFlush(cpu);
    cpu.regs[ESP] = espFor(cpu.segAttr[SS], cpu.regs[ESP], sp);
    commitCode(cpu, sel, cpl, eip);
  }
  cpu.setFlags(flags & ~(TF | NT | RF | VM | (type & 1 ? 0 : IF)));
}

// ---------------------------------------------------------------- host helpers

/**
 * Runs a checked helper for the host (outside run()). Returns true on success; on a fault
 * returns false with cpu.exitVector, exitErrorCode and exitCr2 describing it. The helpers
 * below change nothing when they fault (apart from descriptor accessed bits).
 */
export function hostCall(cpu: Cpu, op: (cpu: Cpu) => void): boolean {
  try {
    op(cpu);
    return true;
  } catch (e) {
    if (cpu.catchFault(e)) return false;
    throw e;
  }
}

/**
 * Loads DS, ES, FS, GS or SS from a selector with every architectural check at privilege
 * cpl (default: the current CPL), as mov would. Throws the CPU fault: use inside hostCall.
 */
export function loadSegment(cpu: Cpu, seg: number, selector: number, cpl = cpu.cpl): void {
  loadSegAs(cpu, seg, selector, cpl);
}

/**
 * Transfers to cs:eip at privilege RPL(cs) on the stack ss:esp, first pushing `count` dwords
 * of `frame` (frame[0] first, at the highest address) as an interrupt delivery would (e.g. a
 * hypervisor's bounce frame: [SS, ESP,] EFLAGS, CS, EIP[, error]). Checks: cs is a present
 * code segment usable at RPL(cs) (non-conforming: DPL = RPL; conforming: DPL <= RPL), eip
 * within its limit, ss a present writable data segment with RPL = DPL = RPL(cs), the frame
 * within the stack's limit and mapped (writes use the new ring's privilege). Nothing changes
 * on a fault. Sets SS, ESP, CS, EIP and the CPL; EFLAGS are left to the caller. When the new
 * ring is outer, data segments it may not use are nulled.
 */
export function enterRing(
  cpu: Cpu,
  cs: number,
  eip: number,
  ss: number,
  esp: number,
  frame: ArrayLike<number>,
  count = frame.length,
): void {
  const cpl = cs & 3;
  if ((cs & 0xfffc) === 0) gp(cpu, 0);
  if (!readDescriptor(cpu, cs)) gp(cpu, cs & 0xfffc);
  if ((dHi & (D_S | D_CODE)) !== (D_S | D_CODE)) gp(cpu, cs & 0xfffc);
  const dpl = dplOf(dHi);
  if (dHi & D_CONFORMING ? dpl > cpl : dpl !== cpl) gp(cpu, cs & 0xfffc);
  if ((dHi & D_P) === 0) cpu.fault(NP, cs & 0xfffc);
  saveCode();
  checkOuterStack(cpu, ss, cpl);
  if (count > FR.length) throw new Error("enterRing: frame too large");
  frN = count;
  for (let i = 0; i < count; i++) FR[i] = frame[i] | 0;
  const sattr = descAttr(sHi);
  const sp = frameCheck(cpu, descBase(sLo, sHi), descLimit(sLo, sHi), sattr, esp, 4, cpl === 3, ss & 0xfffc);
  checkEip(cpu, eip, 0);
  cHi = setAccessed(cpu, cAddr, cHi);
  sHi = setAccessed(cpu, sAddr, sHi);
  const outward = cpl > cpu.cpl;
  frameFlush(cpu);
  commitStack(cpu, ss, sp);
  commitCode(cpu, cs, cpl, eip);
  if (outward) nullInaccessibleSegs(cpu, cpl);
}

/**
 * Performs a 32-bit iret's protected-mode return as if executed at privilege asCpl (0 for a
 * hypervisor), with the frame values given rather than popped: to RPL(cs) >= asCpl. When
 * RPL(cs) > asCpl, SS:ESP are loaded from ss/esp with the checks of an outer return (and
 * inaccessible data segments are nulled); otherwise SS is kept and ESP set to esp. EFLAGS
 * follow iret's rules at asCpl (IOPL changes only at 0, IF when asCpl <= IOPL); VM is
 * ignored. Nothing changes on a fault.
 */
export function iretTo(
  cpu: Cpu,
  eip: number,
  cs: number,
  eflags: number,
  esp: number,
  ss: number,
  asCpl = 0,
): void {
  protectedReturn(cpu, eip, cs & 0xffff, eflags & ~VM, asCpl, 4, esp, esp, ss & 0xffff);
}

/**
 * Reads the ring-`ring` stack (SS, ESP) from the current TSS (as an inner-ring transfer
 * would). Returns the selector; ESP in tssStackPointer(). Throws #TS on a short TSS.
 */
export function readTssStack(cpu: Cpu, ring: number): number {
  tssStack(cpu, ring, 0);
  return tssSs;
}
export function tssStackPointer(): number {
  return tssEsp;
}
