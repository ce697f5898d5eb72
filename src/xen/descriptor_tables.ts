/**
 * Guest descriptor tables (semantics.md §3): the check every guest descriptor passes
 * (check_descriptor), set_gdt, update_descriptor, MMUEXT_SET_LDT with the lazily mapped shadow
 * LDT, and set_fast_trap. The guest's GDT and LDT frames are mapped into its vcpu's slice of
 * the per-domain area (0xFF400000 + (vcpu << 17): PTEs 0..15 the GDT, 16..31 the LDT); the
 * frames hold GDT/LDT type references while mapped, so the guest can never map them writable
 * and every descriptor in them has passed checkDescriptor. Segment limits are what keep the
 * guest out of Xen's area (abi.md §3.1), and checkDescriptor is what bounds them.
 */
import { LDTR } from "../cpu/regs.js";
import {
  _PAGE_ACCESSED,
  _PAGE_DIRTY,
  _PAGE_PRESENT,
  _PAGE_RW,
  DESC_TYPE_CALL_GATE,
  DESCRIPTOR_BASE_LIMIT,
  FAST_TRAP_VECTOR_INT80,
  FAST_TRAP_VECTORS_FIRST,
  FAST_TRAP_VECTORS_LAST,
  GDT_ENTRIES_PER_PAGE,
  GDT_ENTRY_SIZE,
  GUEST_SEGMENT_END,
  MAX_LDT_ENTRIES,
  NR_RESERVED_GDT_ENTRIES_MAR,
  PAGE_SIZE,
  PERDOMAIN_LDT_OFFSET,
  PERDOMAIN_VCPU_SHIFT,
  PERDOMAIN_VIRT_START,
  SELECTOR_TI,
  TI_DPL_MASK,
  TI_IF,
} from "../public/arch_x86_32.js";
import { EFAULT, EINVAL, EPERM } from "../public/errno.js";
import { ABIS, type GuestAbi } from "./abi.js";
import { validCodeSel } from "./callbacks.js";
import { xenGdtEntries } from "./descriptors.js";
import type { Vcpu } from "./domain.js";
import { PGT_gdt_page, PGT_ldt_page, PGT_type_mask, PGT_writable_page } from "./frame_table.js";
import type { Hypervisor } from "./hypervisor.js";
import { DOP_FLUSH_TLB, DOP_RELOAD_LDT } from "./mmu.js";
import { ptwrFlushAll } from "./ptwr.js";

// Descriptor high-word fields (Intel SDM vol. 3 §3.4.5).
const SEG_P = 0x8000;
const SEG_DPL = 0x6000;
const SEG_S = 0x1000;
const SEG_TYPE = 0xf00;
const SEG_CODE = 0x800;
const SEG_EXPAND_DOWN = 0x400;
const SEG_G = 0x800000;
/** Bits 7:5 of a call gate's high word (reserved, must be zero). */
const GATE_RESERVED = 0xe0;
/** Per-domain PTE flags of the GDT and shadow-LDT mappings (Xen's __PAGE_HYPERVISOR). */
const PAGE_HYPERVISOR = _PAGE_PRESENT | _PAGE_RW | _PAGE_ACCESSED | _PAGE_DIRTY;
/** Per-domain PTEs per vcpu, and where the shadow-LDT ones start. */
const PTES_PER_VCPU = 32;
const LDT_PTE_FIRST = 16;
const GDT_PTE_COUNT = 16;
/** Access byte of the LDT descriptor Xen loads: present, type 2 (LDT). */
const LDT_DESC_ACCESS = 0x82;

/** An 8-byte descriptor as two 32-bit words; checkDescriptor may rewrite its limit. */
export interface Descriptor {
  lo: number;
  hi: number;
}

/**
 * check_descriptor (semantics.md §3.1, abi.md §3.4): true when the guest may install the
 * descriptor. A code/data segment reaching past 0xFC400000 (or wrapping) is truncated in place
 * to end there, which needs G=1; an expand-down segment that would not wrap is truncated so
 * that it does. Arithmetic is 32-bit as in Xen: a G=1 limit field of 0xFFFFF scales to 0.
 */
export function checkDescriptor(d: Descriptor, abi: GuestAbi = ABIS["2005-03"]): boolean {
  const a = d.lo >>> 0;
  const b = d.hi >>> 0;
  // A not-present descriptor always faults when loaded.
  if ((b & SEG_P) === 0) return true;
  // DPL 0 would hand out ring 0 (directly, or through a call gate).
  if ((b & SEG_DPL) === 0) return false;
  if ((b & SEG_S) === 0) {
    // System descriptors: only call gates into a selector the guest may use.
    if ((b & SEG_TYPE) >>> 8 !== DESC_TYPE_CALL_GATE) return false;
    if (!validCodeSel(a >>> 16, abi)) return false;
    return (b & GATE_RESERVED) === 0;
  }
  const base = ((b & 0xff000000) | ((b & 0xff) << 16) | (a >>> 16)) >>> 0;
  if (base >= DESCRIPTOR_BASE_LIMIT) return false;
  let limit = ((b & 0xf0000) | (a & 0xffff)) + 1;
  if (b & SEG_G) limit = (limit << 12) >>> 0;
  const end = (base + limit) >>> 0;
  let newLimit: number;
  if ((b & (SEG_CODE | SEG_EXPAND_DOWN)) === SEG_EXPAND_DOWN) {
    // Expand-down: the valid offsets run from base+limit up to 4 GiB; unless that wraps
    // below base, it covers Xen's area.
    if (end <= base) return true;
    newLimit = (0x100000000 - (base & 0xfffff000)) >>> 0;
  } else {
    if (end > base && end <= GUEST_SEGMENT_END) return true;
    newLimit = GUEST_SEGMENT_END - base;
  }
  // Byte-granular limits are not worth truncating (Xen refuses them).
  if ((b & SEG_G) === 0) return false;
  const field = ((newLimit >>> 12) - 1) & 0xfffff;
  d.lo = ((a & ~0xffff) | (field & 0xffff)) >>> 0;
  d.hi = ((b & ~0xf0000) | (field & 0xf0000)) >>> 0;
  return true;
}

/**
 * alloc_segdesc_page: a frame takes GDT/LDT type only if all 512 descriptors pass the check;
 * truncated descriptors are written back into the frame.
 */
export function validateDescriptorPage(
  host: { read32(ma: number): number; write32(ma: number, v: number): void },
  mfn: number,
  abi: GuestAbi = ABIS["2005-03"],
): boolean {
  const base = mfn * PAGE_SIZE;
  const d: Descriptor = { lo: 0, hi: 0 };
  for (let i = 0; i < GDT_ENTRIES_PER_PAGE; i++) {
    const ma = base + i * GDT_ENTRY_SIZE;
    d.lo = host.read32(ma);
    d.hi = host.read32(ma + 4);
    const lo = d.lo;
    const hi = d.hi;
    if (!checkDescriptor(d, abi)) return false;
    if (d.lo !== lo) host.write32(ma, d.lo);
    if (d.hi !== hi) host.write32(ma + 4, d.hi);
  }
  return true;
}

// ------------------------------------------------------------------ per-domain area

/** GDT_VIRT_START(v): where the vcpu's GDT frames are mapped. */
export function gdtVirtStart(v: Vcpu): number {
  return (PERDOMAIN_VIRT_START + (v.id << PERDOMAIN_VCPU_SHIFT)) >>> 0;
}

/** LDT_VIRT_START(v): where the vcpu's shadow LDT is mapped, page by page on demand. */
export function ldtVirtStart(v: Vcpu): number {
  return (gdtVirtStart(v) + PERDOMAIN_LDT_OFFSET) >>> 0;
}

/** Machine address of per-domain PTE i (0..31) of vcpu v. */
function perdomainPte(v: Vcpu, i: number): number {
  return v.domain.perdomainMfn * PAGE_SIZE + (v.id * PTES_PER_VCPU + i) * 4;
}

// ------------------------------------------------------------------ set_gdt

/**
 * set_gdt(frame_list, entries) (hypercall 2, semantics.md §3.2). The bounds follow the domain's
 * revision: MAR 296..8192 (the guest's frame 0 holds Xen's entries), JUL 0..7168 (Xen's entries
 * are in GDT page 14, never in a guest frame). abi.md §1.3, §1.4
 */
export function doSetGdt(hv: Hypervisor, v: Vcpu, frameList: number, entries: number): number {
  const g = v.domain.abi.gdt;
  entries >>>= 0;
  if (entries < g.minEntries || entries > g.maxEntries) return -EINVAL;
  const nrPages = Math.ceil(entries / GDT_ENTRIES_PER_PAGE);
  const raw = nrPages === 0 ? new Uint8Array(0) : hv.guest.copyFrom(frameList, nrPages * 4);
  if (raw === null) return -EFAULT;
  const dv = new DataView(raw.buffer);
  const frames: number[] = [];
  for (let i = 0; i < nrPages; i++) frames.push(dv.getUint32(i * 4, true));
  const rc = setGdt(hv, v, frames);
  if (rc === 0) {
    hv.cpu.flushTlb();
    hv.cpu.gdtrBase = gdtVirtStart(v);
    hv.cpu.gdtrLimit = g.fixedLimit ?? entries * GDT_ENTRY_SIZE - 1;
  }
  return rc;
}

export function setGdt(hv: Hypervisor, v: Vcpu, frames: number[]): number {
  const d = v.domain.id;
  const mm = hv.mm;
  const maxPage = hv.frames.nrFrames;
  const g = v.domain.abi.gdt;
  if (!g.reservedInGuestFrame) return setGdtSeparateReserved(hv, v, frames);
  const f0 = frames[0];
  if (f0 >= maxPage) return -EINVAL;
  // Frame 0 still holding Xen's DPL-0 entries (a GDT used before) fails the check: zap the
  // reserved range through a writable reference and try again.
  if (!mm.getPageAndType(f0, d, PGT_gdt_page)) {
    if (!mm.getPageAndType(f0, d, PGT_writable_page)) return -EINVAL;
    const start = f0 * PAGE_SIZE + g.firstReservedEntry * GDT_ENTRY_SIZE;
    for (let o = 0; o < NR_RESERVED_GDT_ENTRIES_MAR * GDT_ENTRY_SIZE; o += 4) hv.write32(start + o, 0);
    mm.putPageAndType(f0);
    if (!mm.getPageAndType(f0, d, PGT_gdt_page)) return -EINVAL;
  }
  for (let i = 1; i < frames.length; i++) {
    if (frames[i] >= maxPage || !mm.getPageAndType(frames[i], d, PGT_gdt_page)) {
      while (i-- > 0) mm.putPageAndType(frames[i]);
      return -EINVAL;
    }
  }
  // Xen's reserved descriptors: the flat selectors live in every guest GDT.
  const start = f0 * PAGE_SIZE + g.firstReservedEntry * GDT_ENTRY_SIZE;
  for (let o = 0; o < NR_RESERVED_GDT_ENTRIES_MAR * GDT_ENTRY_SIZE; o += 4) hv.write32(start + o, 0);
  for (const [index, lo, hi] of xenGdtEntries(g.firstReservedEntry)) {
    hv.write32(f0 * PAGE_SIZE + index * GDT_ENTRY_SIZE, lo);
    hv.write32(f0 * PAGE_SIZE + index * GDT_ENTRY_SIZE + 4, hi);
  }
  destroyGdt(hv, v);
  for (let i = 0; i < frames.length; i++)
    hv.write32(perdomainPte(v, i), frames[i] * PAGE_SIZE + PAGE_HYPERVISOR);
  // The LDT descriptor lives in the GDT's frame 0 (Xen rewrites it on each LDT load).
  if (v.ldtEnts !== 0) writeLdtDescriptor(hv, v);
  return 0;
}

/**
 * JUL set_gdt: every guest frame must validate as it is (Xen's entries live in the separate
 * reserved page 14, which stays mapped); entries may be 0 (no guest GDT at all).
 */
function setGdtSeparateReserved(hv: Hypervisor, v: Vcpu, frames: number[]): number {
  const d = v.domain.id;
  for (let i = 0; i < frames.length; i++) {
    if (frames[i] >= hv.frames.nrFrames || !hv.mm.getPageAndType(frames[i], d, PGT_gdt_page)) {
      while (i-- > 0) hv.mm.putPageAndType(frames[i]);
      return -EINVAL;
    }
  }
  destroyGdt(hv, v);
  for (let i = 0; i < frames.length; i++)
    hv.write32(perdomainPte(v, i), frames[i] * PAGE_SIZE + PAGE_HYPERVISOR);
  return 0;
}

/**
 * destroy_gdt: unmap the vcpu's GDT frames and drop their type and general references. Only
 * the pages guest frames may occupy (MAR all 16, JUL 0..13: page 14 is Xen's reserved page).
 */
export function destroyGdt(hv: Hypervisor, v: Vcpu): void {
  const n = Math.min(GDT_PTE_COUNT, v.domain.abi.gdt.guestPages);
  for (let i = 0; i < n; i++) {
    const ma = perdomainPte(v, i);
    const pte = hv.read32(ma);
    if ((pte & _PAGE_PRESENT) === 0) continue;
    hv.write32(ma, 0);
    const mfn = pte >>> 12;
    // Xen's default GDT frame holds no guest reference.
    if (mfn !== v.domain.defaultGdtMfn) hv.mm.putPageAndType(mfn);
  }
}

/** The frame mapped as page 0 of the vcpu's current GDT. */
function gdtFrame0(hv: Hypervisor, v: Vcpu): number {
  const pte = hv.read32(perdomainPte(v, 0));
  return pte & _PAGE_PRESENT ? pte >>> 12 : -1;
}

// ------------------------------------------------------------------ update_descriptor

/** update_descriptor(ma, lo, hi) (hypercall 10, semantics.md §3.3). */
export function doUpdateDescriptor(hv: Hypervisor, v: Vcpu, ma: number, lo: number, hi: number): number {
  ma >>>= 0;
  const mfn = ma >>> 12;
  const desc: Descriptor = { lo: lo >>> 0, hi: hi >>> 0 };
  const d = v.domain;
  if ((ma & 7) !== 0 || mfn >= hv.frames.nrFrames || !checkDescriptor(desc, d.abi)) return -EINVAL;
  if (!hv.mm.getPage(mfn, d.id)) return -EINVAL;
  let rc = -EINVAL;
  const index = (ma & (PAGE_SIZE - 1)) >>> 3;
  let type: number;
  switch (hv.frames.typeInfo[mfn] & PGT_type_mask) {
    case PGT_gdt_page: {
      type = PGT_gdt_page;
      // MAR: Xen's reserved entries of any vcpu's live GDT are not the guest's to change (at
      // JUL they are in Xen's own page, never in a guest frame).
      const g = d.abi.gdt;
      if (
        g.reservedInGuestFrame &&
        index >= g.firstReservedEntry &&
        index < g.firstReservedEntry + g.nrReservedEntries
      ) {
        if (d.vcpus.some((w) => gdtFrame0(hv, w) === mfn)) type = -1;
      }
      break;
    }
    case PGT_ldt_page:
      type = PGT_ldt_page;
      break;
    default:
      type = PGT_writable_page;
  }
  if (type !== -1 && hv.mm.getPageType(mfn, type)) {
    hv.write32(ma, desc.lo);
    hv.write32(ma + 4, desc.hi);
    hv.mm.putPageType(mfn);
    rc = 0;
  }
  hv.mm.putPage(mfn);
  return rc;
}

// ------------------------------------------------------------------ LDT

/**
 * MMUEXT_SET_LDT (semantics.md §3.4): ptr = LDT base (page aligned), ents descriptors.
 * Returns false for a bad request (the batch stops with -EINVAL).
 */
export function setLdt(hv: Hypervisor, v: Vcpu, ptr: number, ents: number): boolean {
  ptr >>>= 0;
  if ((ptr & (PAGE_SIZE - 1)) !== 0 || ents > MAX_LDT_ENTRIES) return false;
  const end = ptr + ents * GDT_ENTRY_SIZE;
  if (end > 0xffffffff || end > GUEST_SEGMENT_END) return false;
  if (v.ldtBase === ptr && v.ldtEnts === ents) return true;
  invalidateShadowLdt(hv, v);
  v.ldtBase = ptr;
  v.ldtEnts = ents;
  loadLdt(hv, v);
  // Page 0 is pre-mapped at the end of the batch (a failure there is silent).
  hv.deferredOps &= ~DOP_FLUSH_TLB;
  if (ents !== 0) hv.deferredOps |= DOP_RELOAD_LDT;
  return true;
}

/** load_LDT: the LDT descriptor in GDT slot 265 of the current GDT, and LDTR loaded from it. */
function loadLdt(hv: Hypervisor, v: Vcpu): void {
  const cpu = hv.cpu;
  if (v.ldtEnts === 0) {
    cpu.loadSegmentCache(LDTR, 0, 0, 0, 0);
    return;
  }
  writeLdtDescriptor(hv, v);
  cpu.loadSegmentCache(
    LDTR,
    v.domain.abi.gdt.ldtEntry << 3,
    ldtVirtStart(v),
    v.ldtEnts * GDT_ENTRY_SIZE - 1,
    LDT_DESC_ACCESS,
  );
}

/** The LDT descriptor goes into the GDT page that holds Xen's entries (MAR frame 0, JUL page 14). */
function writeLdtDescriptor(hv: Hypervisor, v: Vcpu): void {
  const g = v.domain.abi.gdt;
  const pte = hv.read32(perdomainPte(v, g.reservedPage));
  if ((pte & _PAGE_PRESENT) === 0) return;
  const frame = pte >>> 12;
  const base = ldtVirtStart(v);
  const limit = v.ldtEnts * GDT_ENTRY_SIZE - 1;
  const ma = frame * PAGE_SIZE + (g.ldtEntry - g.reservedPage * GDT_ENTRIES_PER_PAGE) * GDT_ENTRY_SIZE;
  hv.write32(ma, ((base << 16) | (limit & 0xffff)) >>> 0);
  hv.write32(
    ma + 4,
    ((base & 0xff000000) | (LDT_DESC_ACCESS << 8) | (limit & 0xf0000) | ((base >>> 16) & 0xff)) >>> 0,
  );
}

/**
 * map_ldt_shadow_page: map page `page` of the guest's LDT (found through the guest's page
 * tables at ldt_base) into the shadow LDT, taking an LDT type reference (validating the frame
 * on a type change). False when the guest PTE is not present or the frame cannot be an LDT.
 */
export function mapLdtShadowPage(hv: Hypervisor, v: Vcpu, page: number): boolean {
  // Only pages the LDT covers (a deferred pre-map may come after SET_LDT to an empty LDT).
  if (page * GDT_ENTRIES_PER_PAGE >= v.ldtEnts) return false;
  // A type change ahead: a writable-window L1 may hold an unchecked RW mapping of the frame,
  // which must be counted (or the domain crashed) before the frame can become an LDT page.
  ptwrFlushAll(hv, v.domain);
  if (!v.domain.runnable) return false;
  const va = (v.ldtBase + page * PAGE_SIZE) >>> 0;
  const pde = hv.read32(v.baseMfn * PAGE_SIZE + (va >>> 22) * 4);
  if ((pde & _PAGE_PRESENT) === 0) return false;
  const l1e = hv.read32((pde & ~0xfff) + ((va >>> 12) & 1023) * 4);
  if ((l1e & _PAGE_PRESENT) === 0) return false;
  const ma = perdomainPte(v, LDT_PTE_FIRST + page);
  // A page already shadowed keeps its reference (cannot fault: it is present).
  if (hv.read32(ma) & _PAGE_PRESENT) return false;
  const mfn = l1e >>> 12;
  if (mfn >= hv.frames.nrFrames || !hv.mm.getPageAndType(mfn, v.domain.id, PGT_ldt_page)) return false;
  // RW forced on: Xen itself writes the LDT (accessed bits, 4 GiB-segment fix-ups).
  hv.write32(ma, (l1e | _PAGE_RW) >>> 0);
  v.shadowLdtMapCount++;
  hv.cpu.invlpg((ldtVirtStart(v) + page * PAGE_SIZE) | 0);
  return true;
}

/**
 * Xen loads guest selectors (bounce CS and SS) through its own mappings, where an LDT page not
 * yet shadowed faults into Xen and is fixed up like a guest fault: shadow it first.
 */
export function shadowLdtForSelector(hv: Hypervisor, v: Vcpu, sel: number): void {
  const off = sel & 0xfff8;
  if ((sel & SELECTOR_TI) === 0 || off >= v.ldtEnts * GDT_ENTRY_SIZE) return;
  mapLdtShadowPage(hv, v, off >>> 12);
}

/** invalidate_shadow_ldt: unmap every shadow-LDT page and drop its references. */
export function invalidateShadowLdt(hv: Hypervisor, v: Vcpu): void {
  if (v.shadowLdtMapCount === 0) return;
  v.shadowLdtMapCount = 0;
  for (let i = LDT_PTE_FIRST; i < PTES_PER_VCPU; i++) {
    const ma = perdomainPte(v, i);
    const pte = hv.read32(ma);
    if ((pte & _PAGE_PRESENT) === 0) continue;
    hv.write32(ma, 0);
    hv.mm.putPageAndType(pte >>> 12);
  }
  // Xen defers the flush to the end of the batch (and SET_LDT cancels it); the freed frames
  // must not stay reachable through our TLB, so flush now. Page 0 is mapped again then.
  hv.cpu.flushTlb();
  hv.deferredOps |= DOP_RELOAD_LDT;
}

/**
 * The #PF hook (semantics.md §3.4, §4.6): a fault inside the vcpu's shadow-LDT window (the CPU
 * reading an LDT descriptor) maps that page of the guest's LDT and restarts the instruction.
 * When it cannot be mapped, the fault address becomes the guest's own LDT address and the
 * fault is handled as usual. True when the fault was fixed.
 */
export function handleLdtFault(hv: Hypervisor, v: Vcpu): boolean {
  const cpu = hv.cpu;
  const addr = cpu.exitCr2 >>> 0;
  if (!inShadowLdt(v, addr)) return false;
  const off = addr - ldtVirtStart(v);
  if (mapLdtShadowPage(hv, v, off >>> 12)) return true;
  cpu.exitCr2 = (v.ldtBase + off) | 0;
  return false;
}

/** Whether a #PF at addr lies in v's shadow-LDT window (handleLdtFault's to fix). */
export function inShadowLdt(v: Vcpu, addr: number): boolean {
  const start = ldtVirtStart(v);
  return addr >>> 0 >= start && addr >>> 0 < start + v.ldtEnts * GDT_ENTRY_SIZE;
}

// ------------------------------------------------------------------ set_fast_trap

/**
 * set_fast_trap(idx) (hypercall 11, semantics.md §4.10): idx 0 disables it; otherwise 0x80 or
 * 0x20..0x2F whose virtual IDT entry does not ask for events masked (a trap gate cannot set
 * the upcall mask). Xen returns -1 (= -EPERM) on refusal.
 */
export function doSetFastTrap(v: Vcpu, idx: number): number {
  if (idx === 0) {
    v.fastTrap = 0;
    return 0;
  }
  if (idx !== FAST_TRAP_VECTOR_INT80 && (idx < FAST_TRAP_VECTORS_FIRST || idx > FAST_TRAP_VECTORS_LAST))
    return -EPERM;
  if (v.trapFlags[idx] & TI_IF) return -EPERM;
  v.fastTrap = idx;
  v.fastTrapCs = v.trapCs[idx];
  v.fastTrapEip = v.trapAddress[idx];
  v.fastTrapDpl = v.trapFlags[idx] & TI_DPL_MASK;
  return 0;
}

/**
 * JUL: GDT pages the guest does not own (below page 14 and beyond its set_gdt frames) are not
 * mapped, and the GDT limit always covers page 14, so loading such a selector faults in the
 * per-domain GDT window. Like later Xen (handle_gdt_ldt_mapping_fault) this becomes #GP with
 * the selector as error code (docs/DEVIATIONS.md). Returns that error code, or -1.
 */
export function gdtFaultSelector(hv: Hypervisor, v: Vcpu): number {
  const addr = hv.cpu.exitCr2 >>> 0;
  const start = gdtVirtStart(v);
  if (addr < start || addr >= ldtVirtStart(v)) return -1;
  return (addr - start) & 0xfff8;
}
