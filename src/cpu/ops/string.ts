/**
 * String instructions: movs, cmps, stos, lods, scas (byte/word/dword), with rep/repe/repne.
 *
 * The source is dc.seg[s]:ESI (DS unless overridden), the destination always ES:EDI; under
 * 0x67 the registers are SI/DI/CX. A rep runs as a loop inside the handler: ECX/ESI/EDI are
 * written back after every element, so a fault leaves them at the faulting iteration (the
 * run loop rolls back only EIP and ESP). After MAX_ITER elements with work left, EIP goes
 * back to the instruction so it resumes on the next step.
 *
 * rep movs/stos with DF = 0 (and repne scasb) run in page-bounded chunks straight on
 * physical memory when both pages are in the TLB and the whole chunk is inside the segment
 * limits; anything else (a TLB miss, a page-crossing element, a limit) takes the exact
 * element-by-element path, which also raises the faults.
 */
import type { Cpu } from "../cpu.js";
import * as decodeNs from "../decode.js";
import * as flagsNs from "../flags.js";
import * as regsNs from "../regs.js";
import type { Def } from "./table.js";

// Module-level copies of imported constants: V8 constant-folds these, whereas each use of an
// imported binding in optimized code costs a module-cell load and a TDZ check (hot paths).
const { P_A16, P_REP, P_REPNE } = decodeNs;
const { L_SUB } = flagsNs;
const { DF, ECX, EDI, ES, ESI } = regsNs;

const REPS = P_REP | P_REPNE;
/** Elements per handler call before the instruction is resumed from the run loop. */
const MAX_ITER = 65536;

const SI = ESI << 1;
const DI = EDI << 1;
const CX = ECX << 1;

// ------------------------------------------------------------------ index register helpers

function srcIdx(cpu: Cpu, a16: boolean): number {
  return a16 ? cpu.regs16[SI] : cpu.regs[ESI];
}
function dstIdx(cpu: Cpu, a16: boolean): number {
  return a16 ? cpu.regs16[DI] : cpu.regs[EDI];
}
function setSrc(cpu: Cpu, a16: boolean, v: number): void {
  if (a16) cpu.regs16[SI] = v;
  else cpu.regs[ESI] = v;
}
function setDst(cpu: Cpu, a16: boolean, v: number): void {
  if (a16) cpu.regs16[DI] = v;
  else cpu.regs[EDI] = v;
}
/** The rep count, unsigned. */
function count(cpu: Cpu, a16: boolean): number {
  return a16 ? cpu.regs16[CX] : cpu.regs[ECX] >>> 0;
}
function setCount(cpu: Cpu, a16: boolean, v: number): void {
  if (a16) cpu.regs16[CX] = v;
  else cpu.regs[ECX] = v;
}
function step(a16: boolean, v: number, d: number): number {
  return a16 ? (v + d) & 0xffff : (v + d) | 0;
}
/** Element stride: size, negated when DF is set. */
function delta(cpu: Cpu, size: number): number {
  return (cpu.flags & DF) !== 0 ? -size : size;
}

// ------------------------------------------------------------------ single elements

function rdN(cpu: Cpu, seg: number, off: number, size: number): number {
  return size === 1 ? cpu.rd8(seg, off) : size === 2 ? cpu.rd16(seg, off) : cpu.rd32(seg, off);
}
function wrN(cpu: Cpu, seg: number, off: number, size: number, v: number): void {
  if (size === 1) cpu.wr8(seg, off, v);
  else if (size === 2) cpu.wr16(seg, off, v);
  else cpu.wr32(seg, off, v);
}
function accN(cpu: Cpu, size: number): number {
  return size === 1 ? cpu.regs8[0] : size === 2 ? cpu.regs16[0] : cpu.regs[0];
}
function setAccN(cpu: Cpu, size: number, v: number): void {
  if (size === 1) cpu.regs8[0] = v;
  else if (size === 2) cpu.regs16[0] = v;
  else cpu.regs[0] = v;
}
function cmpFlags(cpu: Cpu, a: number, b: number, size: number): void {
  const res = size === 4 ? (a - b) | 0 : (a - b) & (size === 1 ? 0xff : 0xffff);
  cpu.lazy(L_SUB, a, b, res, size << 3);
}

// ------------------------------------------------------------------ fast chunks (DF = 0)

/**
 * How many whole elements from seg:off (a segment-relative offset) fit before the end of the
 * page, the end of `n` elements and (under 0x67) the 64 KiB wrap, and lie inside the
 * segment's limits for the access; 0 when the first one does not.
 */
function chunkElems(
  cpu: Cpu,
  seg: number,
  off: number,
  n: number,
  size: number,
  a16: boolean,
  write: boolean,
): number {
  const o = off >>> 0;
  const lin = (cpu.segBase[seg] + off) | 0;
  let bytes = 0x1000 - (lin & 0xfff);
  if (a16 && 0x10000 - o < bytes) bytes = 0x10000 - o;
  let k = (bytes / size) | 0;
  if (n < k) k = n;
  if (k === 0) return 0;
  const hi = write ? cpu.segWHi[seg] : cpu.segHi[seg];
  if (o < cpu.segLo[seg] || o + k * size - 1 > hi) return 0;
  return k;
}

/**
 * Physical address of linear lin when its page is in the TLB for this access (unsigned: a
 * frame above 2 GiB sets bit 31 of the entry), else -1.
 */
function tlbPhys(cpu: Cpu, lin: number, write: boolean): number {
  const e = cpu.tlb[lin >>> 12];
  if ((e & (write ? cpu.wrMask : cpu.rdMask)) === 0) return -1;
  return ((e & ~0xfff) | (lin & 0xfff)) >>> 0;
}

/** Copies up to n elements; returns how many (0: take the exact path for one element). */
function movsChunk(
  cpu: Cpu,
  seg: number,
  si: number,
  di: number,
  n: number,
  size: number,
  a16: boolean,
): number {
  let k = chunkElems(cpu, seg, si, n, size, a16, false);
  if (k === 0) return 0;
  const kd = chunkElems(cpu, ES, di, k, size, a16, true);
  if (kd === 0) return 0;
  k = kd;
  const ps = tlbPhys(cpu, (cpu.segBase[seg] + si) | 0, false);
  if (ps < 0) return 0;
  const pd = tlbPhys(cpu, (cpu.segBase[ES] + di) | 0, true);
  if (pd < 0) return 0;
  const bytes = k * size;
  if (cpu.codePage[pd >>> 12] !== 0) cpu.codeWritten(pd >>> 12);
  const m = cpu.mem8;
  if (pd > ps && pd < ps + bytes) {
    // Overlap where a forward element copy reads what it wrote: element by element.
    if (size === 1) {
      for (let i = 0; i < bytes; i++) m[pd + i] = m[ps + i];
    } else {
      const v = cpu.memView;
      for (let i = 0; i < bytes; i += size) {
        if (size === 2) v.setUint16(pd + i, v.getUint16(ps + i, true), true);
        else v.setInt32(pd + i, v.getInt32(ps + i, true), true);
      }
    }
  } else {
    m.copyWithin(pd, ps, ps + bytes);
  }
  return k;
}

function stosChunk(cpu: Cpu, di: number, n: number, size: number, a16: boolean, val: number): number {
  const k = chunkElems(cpu, ES, di, n, size, a16, true);
  if (k === 0) return 0;
  const pd = tlbPhys(cpu, (cpu.segBase[ES] + di) | 0, true);
  if (pd < 0) return 0;
  if (cpu.codePage[pd >>> 12] !== 0) cpu.codeWritten(pd >>> 12);
  const end = pd + k * size;
  if (size === 1) {
    cpu.mem8.fill(val, pd, end);
  } else if (size === 2) {
    if ((pd & 1) === 0) cpu.mem16.fill(val, pd >>> 1, end >>> 1);
    else for (let p = pd; p < end; p += 2) cpu.memView.setUint16(p, val, true);
  } else if ((pd & 3) === 0) {
    cpu.mem32.fill(val, pd >>> 2, end >>> 2);
  } else {
    for (let p = pd; p < end; p += 4) cpu.memView.setInt32(p, val, true);
  }
  return k;
}

// ------------------------------------------------------------------ movs

function movs(cpu: Cpu, s: number, size: number): void {
  const dc = cpu.dc;
  const pfx = dc.pfx[s];
  const seg = dc.seg[s];
  const a16 = (pfx & P_A16) !== 0;
  const d = delta(cpu, size);
  let si = srcIdx(cpu, a16);
  let di = dstIdx(cpu, a16);
  if ((pfx & REPS) === 0) {
    wrN(cpu, ES, di, size, rdN(cpu, seg, si, size));
    setSrc(cpu, a16, step(a16, si, d));
    setDst(cpu, a16, step(a16, di, d));
    return;
  }
  let n = count(cpu, a16);
  let done = 0;
  while (n > 0) {
    if (done >= MAX_ITER) {
      cpu.eip = cpu.instrStart;
      return;
    }
    let k = d > 0 ? movsChunk(cpu, seg, si, di, n, size, a16) : 0;
    if (k === 0) {
      wrN(cpu, ES, di, size, rdN(cpu, seg, si, size));
      k = 1;
    }
    si = step(a16, si, d * k);
    di = step(a16, di, d * k);
    n -= k;
    done += k;
    setSrc(cpu, a16, si);
    setDst(cpu, a16, di);
    setCount(cpu, a16, n);
  }
}

// ------------------------------------------------------------------ stos

function stos(cpu: Cpu, s: number, size: number): void {
  const pfx = cpu.dc.pfx[s];
  const a16 = (pfx & P_A16) !== 0;
  const d = delta(cpu, size);
  const val = accN(cpu, size);
  let di = dstIdx(cpu, a16);
  if ((pfx & REPS) === 0) {
    wrN(cpu, ES, di, size, val);
    setDst(cpu, a16, step(a16, di, d));
    return;
  }
  let n = count(cpu, a16);
  let done = 0;
  while (n > 0) {
    if (done >= MAX_ITER) {
      cpu.eip = cpu.instrStart;
      return;
    }
    let k = d > 0 ? stosChunk(cpu, di, n, size, a16, val) : 0;
    if (k === 0) {
      wrN(cpu, ES, di, size, val);
      k = 1;
    }
    di = step(a16, di, d * k);
    n -= k;
    done += k;
    setDst(cpu, a16, di);
    setCount(cpu, a16, n);
  }
}

// ------------------------------------------------------------------ lods

function lods(cpu: Cpu, s: number, size: number): void {
  const dc = cpu.dc;
  const pfx = dc.pfx[s];
  const seg = dc.seg[s];
  const a16 = (pfx & P_A16) !== 0;
  const d = delta(cpu, size);
  let si = srcIdx(cpu, a16);
  if ((pfx & REPS) === 0) {
    setAccN(cpu, size, rdN(cpu, seg, si, size));
    setSrc(cpu, a16, step(a16, si, d));
    return;
  }
  let n = count(cpu, a16);
  let done = 0;
  while (n > 0) {
    if (done >= MAX_ITER) {
      cpu.eip = cpu.instrStart;
      return;
    }
    setAccN(cpu, size, rdN(cpu, seg, si, size));
    si = step(a16, si, d);
    n--;
    done++;
    setSrc(cpu, a16, si);
    setCount(cpu, a16, n);
  }
}

// ------------------------------------------------------------------ cmps

function cmps(cpu: Cpu, s: number, size: number): void {
  const dc = cpu.dc;
  const pfx = dc.pfx[s];
  const seg = dc.seg[s];
  const a16 = (pfx & P_A16) !== 0;
  const d = delta(cpu, size);
  let si = srcIdx(cpu, a16);
  let di = dstIdx(cpu, a16);
  if ((pfx & REPS) === 0) {
    const a = rdN(cpu, seg, si, size);
    const b = rdN(cpu, ES, di, size);
    setSrc(cpu, a16, step(a16, si, d));
    setDst(cpu, a16, step(a16, di, d));
    cmpFlags(cpu, a, b, size);
    return;
  }
  // repe (F3) stops on a difference, repne (F2) on equality.
  const stopOnEqual = (pfx & P_REPNE) !== 0;
  let n = count(cpu, a16);
  let done = 0;
  while (n > 0) {
    if (done >= MAX_ITER) {
      cpu.eip = cpu.instrStart;
      return;
    }
    const a = rdN(cpu, seg, si, size);
    const b = rdN(cpu, ES, di, size);
    si = step(a16, si, d);
    di = step(a16, di, d);
    n--;
    done++;
    setSrc(cpu, a16, si);
    setDst(cpu, a16, di);
    setCount(cpu, a16, n);
    cmpFlags(cpu, a, b, size);
    if ((a === b) === stopOnEqual) return;
  }
}

// ------------------------------------------------------------------ scas

/** repne scasb over TLB-mapped memory with DF = 0, a page at a time. Returns elements done. */
function scasbChunk(cpu: Cpu, di: number, n: number, a16: boolean, al: number): number {
  const k = chunkElems(cpu, ES, di, n, 1, a16, false);
  if (k === 0) return 0;
  const pd = tlbPhys(cpu, (cpu.segBase[ES] + di) | 0, false);
  if (pd < 0) return 0;
  const m = cpu.mem8;
  const end = pd + k;
  for (let p = pd; p < end; p++) {
    if (m[p] === al) {
      cpu.lazy(L_SUB, al, al, 0, 8);
      return p - pd + 1;
    }
  }
  const b = m[end - 1];
  cpu.lazy(L_SUB, al, b, (al - b) & 0xff, 8);
  return k;
}

function scas(cpu: Cpu, s: number, size: number): void {
  const pfx = cpu.dc.pfx[s];
  const a16 = (pfx & P_A16) !== 0;
  const d = delta(cpu, size);
  const a = accN(cpu, size);
  let di = dstIdx(cpu, a16);
  if ((pfx & REPS) === 0) {
    const b = rdN(cpu, ES, di, size);
    setDst(cpu, a16, step(a16, di, d));
    cmpFlags(cpu, a, b, size);
    return;
  }
  const stopOnEqual = (pfx & P_REPNE) !== 0;
  const fast = stopOnEqual && size === 1 && d > 0;
  let n = count(cpu, a16);
  let done = 0;
  while (n > 0) {
    if (done >= MAX_ITER) {
      cpu.eip = cpu.instrStart;
      return;
    }
    if (fast) {
      const k = scasbChunk(cpu, di, n, a16, a);
      if (k > 0) {
        di = step(a16, di, k);
        n -= k;
        done += k;
        setDst(cpu, a16, di);
        setCount(cpu, a16, n);
        if (cpu.lzRes === 0) return;
        continue;
      }
    }
    const b = rdN(cpu, ES, di, size);
    di = step(a16, di, d);
    n--;
    done++;
    setDst(cpu, a16, di);
    setCount(cpu, a16, n);
    cmpFlags(cpu, a, b, size);
    if ((a === b) === stopOnEqual) return;
  }
}

// ------------------------------------------------------------------ registration

function movsb(cpu: Cpu, s: number): void {
  movs(cpu, s, 1);
}
function movsw(cpu: Cpu, s: number): void {
  movs(cpu, s, 2);
}
function movsd(cpu: Cpu, s: number): void {
  movs(cpu, s, 4);
}
function stosb(cpu: Cpu, s: number): void {
  stos(cpu, s, 1);
}
function stosw(cpu: Cpu, s: number): void {
  stos(cpu, s, 2);
}
function stosd(cpu: Cpu, s: number): void {
  stos(cpu, s, 4);
}
function lodsb(cpu: Cpu, s: number): void {
  lods(cpu, s, 1);
}
function lodsw(cpu: Cpu, s: number): void {
  lods(cpu, s, 2);
}
function lodsd(cpu: Cpu, s: number): void {
  lods(cpu, s, 4);
}
function cmpsb(cpu: Cpu, s: number): void {
  cmps(cpu, s, 1);
}
function cmpsw(cpu: Cpu, s: number): void {
  cmps(cpu, s, 2);
}
function cmpsd(cpu: Cpu, s: number): void {
  cmps(cpu, s, 4);
}
function scasb(cpu: Cpu, s: number): void {
  scas(cpu, s, 1);
}
function scasw(cpu: Cpu, s: number): void {
  scas(cpu, s, 2);
}
function scasd(cpu: Cpu, s: number): void {
  scas(cpu, s, 4);
}

export function registerString(def: Def): void {
  def(0, 0xa4, 0, 0, movsb);
  def(0, 0xa5, 0, 32, movsd);
  def(0, 0xa5, 0, 16, movsw);
  def(0, 0xa6, 0, 0, cmpsb);
  def(0, 0xa7, 0, 32, cmpsd);
  def(0, 0xa7, 0, 16, cmpsw);
  def(0, 0xaa, 0, 0, stosb);
  def(0, 0xab, 0, 32, stosd);
  def(0, 0xab, 0, 16, stosw);
  def(0, 0xac, 0, 0, lodsb);
  def(0, 0xad, 0, 32, lodsd);
  def(0, 0xad, 0, 16, lodsw);
  def(0, 0xae, 0, 0, scasb);
  def(0, 0xaf, 0, 32, scasd);
  def(0, 0xaf, 0, 16, scasw);
}
