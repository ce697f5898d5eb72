/**
 * Segment descriptors as the hypervisor sees them: reading one from the vcpu's GDT/LDT,
 * decoding it into the CPU's cache form, and Xen's own GDT entries (abi.md §3.2).
 */
import type { Cpu } from "../cpu/cpu.js";
import { LDTR } from "../cpu/regs.js";
import { descAttr, descBase, descLimit } from "../cpu/segments.js";
import * as tlbNs from "../cpu/tlb_bits.js";
import { FIRST_RESERVED_GDT_ENTRY_MAR, FlatDescriptors, SELECTOR_TI } from "../public/arch_x86_32.js";
import { walkPageTables } from "./guest_access.js";

// A plain const, not an imported binding (a module cell V8 loads and hole-checks at each use).
const { TLB_SUP_READ } = tlbNs;

/** A descriptor decoded into the CPU's cache fields. */
export interface SegmentCache {
  base: number;
  /** Byte-granular limit after G scaling. */
  limit: number;
  /** Access byte | flags nibble << 12 (the CPU's segAttr layout). */
  attr: number;
}

export function decodeDescriptor(lo: number, hi: number): SegmentCache {
  return { base: descBase(lo, hi) >>> 0, limit: descLimit(lo, hi) >>> 0, attr: descAttr(hi) };
}

/** Reads the descriptor a selector names (linear reads through the guest's tables), or null. */
export function readDescriptor(cpu: Cpu, sel: number): { lo: number; hi: number } | null {
  return readWords(cpu, sel, false) ? { lo: wordLo, hi: wordHi } : null;
}

/** The words readWords read last. */
let wordLo = 0;
let wordHi = 0;

/**
 * readDescriptor without its object (each bounce loads the handler's CS): true with the
 * descriptor in wordLo/wordHi, or false. tlb: read through an entry the CPU's TLB holds for a
 * supervisor read of the descriptor's page, when it holds one, as the CPU's own loads read.
 */
function readWords(cpu: Cpu, sel: number, tlb: boolean): boolean {
  const ldt = (sel & SELECTOR_TI) !== 0;
  const base = ldt ? cpu.segBase[LDTR] : cpu.gdtrBase;
  const limit = ldt ? cpu.segLimit[LDTR] >>> 0 : cpu.gdtrLimit >>> 0;
  const off = sel & ~7;
  if (off + 7 > limit || (ldt && (cpu.segAttr[LDTR] & 0x80) === 0)) return false;
  const lin = (base + off) | 0;
  // The tables lie in Xen's per-domain area, whose entries only Xen writes, flushing the TLB
  // when it does (set_gdt, the shadow LDT's invalidation, CR3): a held entry is where the walk
  // would go, its accessed bits set when it was filled. Both words when they share a page.
  const e = tlb ? cpu.tlb[lin >>> 12] : 0;
  if ((e & TLB_SUP_READ) !== 0 && (lin & 0xfff) <= 0xff8) {
    const p = ((e & ~0xfff) | (lin & 0xfff)) >>> 0;
    wordLo = cpu.physRead32(p);
    wordHi = cpu.physRead32(p + 4);
    return true;
  }
  const p0 = walkPageTables(cpu, lin, false);
  // Both words in one page (always, for an aligned table): a second walk would find the
  // same frame (or fail the same way) and set no bit the first did not.
  const same = (lin & 0xfff) <= 0xff8;
  const p1 = !same ? walkPageTables(cpu, (lin + 4) | 0, false) : p0 === -1 ? -1 : p0 + 4;
  if (p0 === -1 || p1 === -1) return false;
  wordLo = cpu.physRead32(p0);
  wordHi = cpu.physRead32(p1);
  return true;
}

/**
 * Loads a segment register for the guest from a selector, as the return to the guest would:
 * the descriptor must be present, with DPL = RPL = the target ring for CS/SS (code for CS,
 * writable data for SS); returns false when the hardware would fault. tlb: the descriptor
 * read through the CPU's TLB where it holds the page (readWords).
 */
export function loadGuestSegment(
  cpu: Cpu,
  seg: number,
  sel: number,
  ring: number,
  isCs: boolean,
  isSs: boolean,
  tlb = false,
): boolean {
  if ((sel & ~3) === 0) {
    if (isCs || isSs) return false;
    cpu.loadSegmentCache(seg, sel, 0, 0, 0);
    return true;
  }
  if (!checkGuestSegment(cpu, sel, ring, isCs, isSs, tlb)) return false;
  cpu.loadSegmentCache(seg, sel, checkedSegment[0], checkedSegment[1], checkedSegment[2]);
  return true;
}

/** The cache fields (base, limit, attr) of the descriptor checkGuestSegment passed last. */
export const checkedSegment = new Int32Array(3);

/**
 * loadGuestSegment's checks on a selector that is not null, loading nothing: true with the
 * descriptor's cache fields in checkedSegment, or false where the load would fail. tlb: the
 * descriptor read through the CPU's TLB when it holds the page (readWords).
 */
export function checkGuestSegment(
  cpu: Cpu,
  sel: number,
  ring: number,
  isCs: boolean,
  isSs: boolean,
  tlb = false,
): boolean {
  return readWords(cpu, sel, tlb) && checkWords(sel, ring, isCs, isSs, wordLo, wordHi);
}

/** checkGuestSegment's checks on the descriptor words lo, hi: a function of its arguments only. */
function checkWords(
  sel: number,
  ring: number,
  isCs: boolean,
  isSs: boolean,
  lo: number,
  hi: number,
): boolean {
  // decodeDescriptor's fields, without its object.
  const attr = descAttr(hi);
  const access = attr & 0xff;
  const dpl = (access >>> 5) & 3;
  const present = (access & 0x80) !== 0;
  const isCode = (access & 0x18) === 0x18;
  const isData = (access & 0x18) === 0x10;
  if (!present) return false;
  if (isCs && (!isCode || (sel & 3) !== ring || ((access & 4) === 0 && dpl !== ring))) return false;
  if (isSs && (!isData || (access & 2) === 0 || (sel & 3) !== ring || dpl !== ring)) return false;
  if (!isCs && !isSs && !(isData || (isCode && (access & 2) !== 0))) return false;
  checkedSegment[0] = descBase(lo, hi);
  checkedSegment[1] = descLimit(lo, hi);
  checkedSegment[2] = attr;
  return true;
}

/**
 * The bounce's checks passed last, per role (BOUNCE_CS, BOUNCE_SS: both at ring 1): selector, the descriptor's two words, then base, limit, attr. A memo of checkWords,
 * whose answer depends on the selector and the words only: keyed by the words as read now, it
 * needs no invalidation when a descriptor, the GDT or the vcpu changes (the words then differ,
 * or are the same words with the same answer). Selector 0 (never checked: the callers send a
 * null selector elsewhere) marks an empty slot.
 */
const bounceMemo = new Int32Array(12);

/** checkBounceSegment's roles: the handler's CS, the kernel stack's SS (bounceMemo's slots). */
export const BOUNCE_CS = 0;
export const BOUNCE_SS = 6;

/**
 * checkGuestSegment(cpu, sel, 1, role === BOUNCE_CS, role === BOUNCE_SS, true) for a bounce's
 * GDT selector, not null (the callers send the others elsewhere): the descriptor's words read
 * through the CPU's TLB (readWords' rule), then the memo of the last answer for the same words
 * (bounceMemo) in place of the checks, as every bounce of a domain names the same handler CS.
 * A descriptor past the GDT's limit or a page the TLB does not hold go through
 * checkGuestSegment. role a number, not a boolean: V8 tests a boolean argument's truth the
 * long way where the call is not inlined.
 */
export function checkBounceSegment(cpu: Cpu, sel: number, role: number): boolean {
  const isSs = role !== BOUNCE_CS;
  const off = sel & ~7;
  const lin = (cpu.gdtrBase + off) | 0;
  const e = cpu.tlb[lin >>> 12];
  if (off + 7 > cpu.gdtrLimit >>> 0 || (e & TLB_SUP_READ) === 0 || (lin & 0xfff) > 0xff8)
    return checkGuestSegment(cpu, sel, 1, !isSs, isSs, true);
  const p = ((e & ~0xfff) | (lin & 0xfff)) >>> 0;
  const lo = cpu.physRead32(p);
  const hi = cpu.physRead32(p + 4);
  const c = bounceMemo;
  const m = role;
  if (c[m] === sel && c[m + 1] === lo && c[m + 2] === hi) {
    checkedSegment[0] = c[m + 3];
    checkedSegment[1] = c[m + 4];
    checkedSegment[2] = c[m + 5];
    return true;
  }
  if (!checkWords(sel, 1, !isSs, isSs, lo, hi)) return false;
  c[m] = sel;
  c[m + 1] = lo;
  c[m + 2] = hi;
  c[m + 3] = checkedSegment[0];
  c[m + 4] = checkedSegment[1];
  c[m + 5] = checkedSegment[2];
  return true;
}

/** Xen's reserved GDT entries from `first` (MAR 256, JUL 7168), as [index, lo, hi]. */
export function xenGdtEntries(first = FIRST_RESERVED_GDT_ENTRY_MAR): Array<[number, number, number]> {
  const f = first;
  const d = FlatDescriptors;
  return [
    [f + 1, d.RING0_CS.lo, d.RING0_CS.hi],
    [f + 2, d.RING0_DS.lo, d.RING0_DS.hi],
    [f + 3, d.RING1_CS.lo, d.RING1_CS.hi],
    [f + 4, d.RING1_DS.lo, d.RING1_DS.hi],
    [f + 5, d.RING3_CS.lo, d.RING3_CS.hi],
    [f + 6, d.RING3_DS.lo, d.RING3_DS.hi],
  ];
}
