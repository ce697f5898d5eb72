/**
 * Page ownership, reference counts and page types: get_page / put_page, get_page_type /
 * put_page_type with validation of L1 and L2 tables, and the checked update of one entry
 * (semantics.md §1.2-§1.7). Every guest page-table write goes through here, so a guest can
 * never map a frame it does not own, nor map one of its page tables writable.
 */
import {
  _PAGE_ACCESSED,
  _PAGE_DIRTY,
  _PAGE_PRESENT,
  _PAGE_RW,
  L1_DISALLOW_MASK,
  L2_DISALLOW_MASK,
  ROOT_PAGETABLE_FIRST_XEN_SLOT,
} from "../public/arch_x86_32.js";
import { DomId } from "../public/xen.js";
import {
  COUNT_MAX,
  type FrameTable,
  PGT_count_mask,
  PGT_gdt_page,
  PGT_l1_page_table,
  PGT_l2_page_table,
  PGT_ldt_page,
  PGT_pinned,
  PGT_type_mask,
  PGT_va_mask,
  PGT_va_mutable,
  PGT_va_shift,
  PGT_va_unknown,
  PGT_validated,
  PGT_writable_page,
} from "./frame_table.js";

/** What the page-type rules need from the rest of the hypervisor. */
export interface MmHost {
  readonly frames: FrameTable;
  /** Reads a 32-bit word of machine memory (unsigned). */
  read32(ma: number): number;
  /** Writes a 32-bit word of machine memory (keeping the CPU's decoded-code cache coherent). */
  write32(ma: number, value: number): void;
  isPrivileged(domid: number): boolean;
  /** The frames Xen maps into slots 1008 (read-only M2P) and 1021 (per-domain) of an L2. */
  m2pL1Frame(): number;
  perdomainFrame(domid: number): number;
  /** The last general reference to a frame went: give it back to the heap. */
  frameFreed(mfn: number, owner: number): void;
  /** A frame changed type: no stale translation may survive (Xen's tlbflush on type change). */
  flushTlbs(): void;
  /**
   * gnttab_check_unmap (semantics.md §1.4, §6.3): was this PTE of domain `mapper` onto a frame
   * of `owner` a grant mapping? If so the grant's pin is dropped and true returned (the frame
   * then holds no reference for it). Absent until grant tables exist: nothing is a grant.
   */
  grantCheckUnmap?(owner: number, mapper: number, mfn: number, readonly: boolean): boolean;
  /**
   * gnttab_prepare_for_transfer (MMUEXT_TRANSFER_PAGE): receiver's grant entry `ref` is exactly
   * GTF_accept_transfer for `sender`; marks it committed. Absent until grant tables exist.
   */
  grantPrepareTransfer?(receiver: number, sender: number, ref: number): boolean;
  /**
   * domain_iomem_in_pfn (semantics.md §1.4 step 3): a physdev-capable domain may map this non-RAM
   * frame because it lies in a memory BAR of a PCI device assigned to it. Absent: never.
   */
  ioMemoryAllowed?(domid: number, mfn: number): boolean;
  /** gnttab_notify_transfer: writes the transferred frame into the receiver's grant entry. */
  grantNotifyTransfer?(receiver: number, ref: number, mfn: number): void;
  /** A validated page table is about to drop its entries' references (ptwr flush hook). */
  beforeDevalidate?(mfn: number): void;
  /** invalidate_shadow_ldt of the domain's vcpu 0 (semantics.md §1.4, §1.10). */
  invalidateShadowLdt?(domid: number): void;
  /** alloc_segdesc_page: every descriptor of a would-be GDT/LDT page passes check_descriptor. */
  checkDescriptorPage?(mfn: number): boolean;
}

/** Xen's slots written into every validated L2. */
export const LINEAR_PT_SLOT = 1019;
export const PERDOMAIN_SLOT = 1021;
const M2P_SLOT = ROOT_PAGETABLE_FIRST_XEN_SLOT;
const XEN_RO_FLAGS = _PAGE_PRESENT | _PAGE_ACCESSED | _PAGE_DIRTY;
const XEN_RW_FLAGS = XEN_RO_FLAGS | _PAGE_RW;
/** The bits whose change forces a full re-check of an L1 entry (frame, RW, present). */
const L1_FASTPATH_MASK = 0xfffff000 | _PAGE_RW | _PAGE_PRESENT;
/**
 * The same for L2 entries. Xen of March 2005 compared only frame and present, letting a guest
 * turn a read-only linear PDE writable [QUIRK, XSA-182]; like fixed Xen we compare RW too.
 */
const L2_FASTPATH_MASK = 0xfffff000 | _PAGE_RW | _PAGE_PRESENT;

export class Mm {
  constructor(private readonly host: MmHost) {}

  private get ft(): FrameTable {
    return this.host.frames;
  }

  // ------------------------------------------------------------------ general references

  getPage(mfn: number, d: number): boolean {
    const ft = this.ft;
    if (mfn < 0 || mfn >= ft.nrFrames) return false;
    const c = ft.count[mfn];
    if (c === 0 || c >= COUNT_MAX || ft.owner[mfn] !== d) return false;
    ft.count[mfn] = c + 1;
    return true;
  }

  putPage(mfn: number): void {
    const ft = this.ft;
    const c = ft.count[mfn] - 1;
    if (c < 0) throw new Error(`put_page on frame ${mfn} with no references`);
    ft.count[mfn] = c;
    if (c === 0) {
      const owner = ft.owner[mfn];
      ft.release(mfn);
      this.host.frameFreed(mfn, owner);
    }
  }

  // ------------------------------------------------------------------ type references

  /** get_page_type (semantics.md §1.3). type may carry an L1's va back-pointer. */
  getPageType(mfn: number, type: number): boolean {
    const ft = this.ft;
    let x = ft.typeInfo[mfn];
    const count = x & PGT_count_mask;
    if (count === PGT_count_mask) return false;
    if (count === 0) {
      if ((x & (PGT_type_mask | PGT_va_mask)) !== type) {
        // A type change: nothing may keep using the old type's mappings.
        this.host.flushTlbs();
        x = (x & ~(PGT_type_mask | PGT_va_mask | PGT_validated)) | type;
        if ((type & PGT_type_mask) === PGT_writable_page) x |= PGT_validated;
      }
    } else if ((x & (PGT_type_mask | PGT_va_mask)) !== type) {
      if ((x & PGT_type_mask) !== (type & PGT_type_mask)) return false;
      // Same type, different va back-pointer.
      // A fixed back-pointer asked for with any other va (including mutable: pinning an L1
      // that is already hooked) becomes unknown (semantics.md §1.3, §1.7).
      if ((x & PGT_va_mask) === PGT_va_mutable) x = (x & ~PGT_va_mask) | (type & PGT_va_mask);
      else x = (x & ~PGT_va_mask) | PGT_va_unknown;
    }
    ft.typeInfo[mfn] = x + 1;
    if ((x & PGT_validated) === 0) {
      if (!this.allocPageType(mfn, x & PGT_type_mask)) {
        ft.typeInfo[mfn] = 0;
        return false;
      }
      ft.typeInfo[mfn] |= PGT_validated;
    }
    return true;
  }

  putPageType(mfn: number): void {
    const ft = this.ft;
    const x = ft.typeInfo[mfn];
    if ((x & PGT_count_mask) === 0) throw new Error(`put_page_type on frame ${mfn} with no type references`);
    let nx = x - 1;
    if ((nx & PGT_count_mask) === 0) {
      const t = x & PGT_type_mask;
      if ((t === PGT_l1_page_table || t === PGT_l2_page_table) && (x & PGT_validated) !== 0) {
        // Devalidation: the table's entries drop their references.
        nx &= ~PGT_validated;
        ft.typeInfo[mfn] = nx;
        this.freePageType(mfn, t);
        return;
      }
    } else if ((nx & PGT_count_mask) === 1 && (nx & PGT_pinned) !== 0) {
      nx = (nx & ~PGT_va_mask) | PGT_va_mutable;
    }
    ft.typeInfo[mfn] = nx;
  }

  getPageAndType(mfn: number, d: number, type: number): boolean {
    if (!this.getPage(mfn, d)) return false;
    if (!this.getPageType(mfn, type)) {
      this.putPage(mfn);
      return false;
    }
    return true;
  }

  putPageAndType(mfn: number): void {
    this.putPageType(mfn);
    this.putPage(mfn);
  }

  // ------------------------------------------------------------------ validation

  private allocPageType(mfn: number, type: number): boolean {
    switch (type) {
      case PGT_l1_page_table:
        return this.allocL1Table(mfn);
      case PGT_l2_page_table:
        return this.allocL2Table(mfn);
      case PGT_gdt_page:
      case PGT_ldt_page:
        return this.host.checkDescriptorPage?.(mfn) ?? true;
      default:
        return true;
    }
  }

  private freePageType(mfn: number, type: number): void {
    this.host.beforeDevalidate?.(mfn);
    const base = mfn * 4096;
    const owner = this.ft.owner[mfn];
    if (type === PGT_l1_page_table) {
      for (let i = 0; i < 1024; i++) this.putPageFromL1e(this.host.read32(base + i * 4), owner);
    } else {
      for (let i = 0; i < M2P_SLOT; i++) this.putPageFromL2e(this.host.read32(base + i * 4), mfn);
    }
  }

  /**
   * Forced devalidation of an L2 by domain destruction (relinquish_memory): its entries drop
   * their references although its type count may not be 0, breaking linear-page-table cycles.
   * The caller has cleared PGT_validated.
   */
  releaseL2Entries(mfn: number): void {
    this.freePageType(mfn, PGT_l2_page_table);
  }

  private allocL1Table(mfn: number): boolean {
    const base = mfn * 4096;
    const d = this.ft.owner[mfn];
    for (let i = 0; i < 1024; i++) {
      if (!this.getPageFromL1e(this.host.read32(base + i * 4), d, d)) {
        while (--i >= 0) this.putPageFromL1e(this.host.read32(base + i * 4), d);
        return false;
      }
    }
    return true;
  }

  private allocL2Table(mfn: number): boolean {
    const base = mfn * 4096;
    const d = this.ft.owner[mfn];
    for (let i = 0; i < M2P_SLOT; i++) {
      if (!this.getPageFromL2e(this.host.read32(base + i * 4), mfn, d, i)) {
        while (--i >= 0) this.putPageFromL2e(this.host.read32(base + i * 4), mfn);
        return false;
      }
    }
    // Xen's private slots (semantics.md §1.5): read-only M2P, the linear page table, per-domain.
    for (let i = M2P_SLOT; i < 1024; i++) this.host.write32(base + i * 4, 0);
    this.host.write32(base + M2P_SLOT * 4, (this.host.m2pL1Frame() * 4096) | XEN_RO_FLAGS);
    this.host.write32(base + LINEAR_PT_SLOT * 4, (mfn * 4096) | XEN_RW_FLAGS);
    this.host.write32(base + PERDOMAIN_SLOT * 4, (this.host.perdomainFrame(d) * 4096) | XEN_RW_FLAGS);
    return true;
  }

  // ------------------------------------------------------------------ entries

  /**
   * get_page_from_l1e (semantics.md §1.4): d is the foreign domain when one is set, else the
   * caller; caller decides I/O privilege when d is DOMID_IO.
   */
  getPageFromL1e(pte: number, d: number, caller: number): boolean {
    if ((pte & _PAGE_PRESENT) === 0) return true;
    if ((pte & L1_DISALLOW_MASK) !== 0) return false;
    const mfn = pte >>> 12;
    if (!this.ft.isRam(mfn)) {
      // I/O mappings take no reference; privileged domains may make any, physdev-capable ones
      // only onto memory BARs of their devices.
      const who = d === DomId.IO ? caller : d;
      return this.host.isPrivileged(who) || (this.host.ioMemoryAllowed?.(who, mfn) ?? false);
    }
    if (pte & _PAGE_RW) return this.getPageAndType(mfn, d, PGT_writable_page);
    return this.getPage(mfn, d);
  }

  /**
   * put_page_from_l1e (semantics.md §1.4): d is the domain whose table held the entry (the
   * caller or the table's owner, never the FD).
   */
  putPageFromL1e(pte: number, d: number): void {
    if ((pte & _PAGE_PRESENT) === 0) return;
    const mfn = pte >>> 12;
    if (!this.ft.isRam(mfn)) return;
    const owner = this.ft.owner[mfn];
    // A foreign frame may be a grant mapping, which holds the grant's pin, not a reference;
    // otherwise it was mapped through the FD and holds an ordinary one.
    if (owner !== d && this.host.grantCheckUnmap?.(owner, d, mfn, (pte & _PAGE_RW) === 0)) return;
    if (pte & _PAGE_RW) {
      this.putPageAndType(mfn);
      return;
    }
    // A read-only mapping of an in-use LDT page goes: Xen drops the owner's whole shadow LDT.
    const ti = this.ft.typeInfo[mfn];
    if ((ti & PGT_type_mask) === PGT_ldt_page && (ti & PGT_count_mask) !== 0)
      this.host.invalidateShadowLdt?.(owner);
    this.putPage(mfn);
  }

  getPageFromL2e(pde: number, l2mfn: number, d: number, slot: number): boolean {
    if ((pde & _PAGE_PRESENT) === 0) return true;
    if ((pde & L2_DISALLOW_MASK) !== 0) return false;
    const mfn = pde >>> 12;
    if (!this.ft.isRam(mfn)) return false;
    if (this.getPageAndType(mfn, d, PGT_l1_page_table | (slot << PGT_va_shift))) return true;
    // The linear page-table rule: a read-only mapping of an L2 (itself, or a validated one).
    if (pde & _PAGE_RW) return false;
    if (mfn === l2mfn) return true;
    const ti = this.ft.typeInfo[mfn];
    if ((ti & PGT_type_mask) !== PGT_l2_page_table || (ti & PGT_validated) === 0) return false;
    if (!this.getPage(mfn, d)) return false;
    if ((ti & PGT_count_mask) === PGT_count_mask) {
      this.putPage(mfn);
      return false;
    }
    this.ft.typeInfo[mfn] = ti + 1;
    return true;
  }

  putPageFromL2e(pde: number, l2mfn: number): void {
    if ((pde & _PAGE_PRESENT) === 0) return;
    const mfn = pde >>> 12;
    if (mfn === l2mfn || !this.ft.isRam(mfn)) return;
    this.putPageAndType(mfn);
  }

  /** mod_l1_entry: checked write of the L1 entry at machine address ma. */
  modL1Entry(ma: number, nv: number, fd: number, caller: number): boolean {
    const old = this.host.read32(ma);
    if (nv & _PAGE_PRESENT) {
      if (nv & L1_DISALLOW_MASK) return false;
      if (((old ^ nv) & L1_FASTPATH_MASK) === 0) {
        this.host.write32(ma, nv);
        return true;
      }
      if (!this.getPageFromL1e(nv, fd, caller)) return false;
    }
    this.host.write32(ma, nv);
    this.putPageFromL1e(old, caller);
    return true;
  }

  /** mod_l2_entry: checked write of slot `slot` of the L2 at frame l2mfn. */
  modL2Entry(l2mfn: number, slot: number, nv: number, caller: number): boolean {
    if (slot < 0 || slot >= M2P_SLOT) return false;
    const ma = l2mfn * 4096 + slot * 4;
    const old = this.host.read32(ma);
    if (nv & _PAGE_PRESENT) {
      if (nv & L2_DISALLOW_MASK) return false;
      if (((old ^ nv) & L2_FASTPATH_MASK) === 0) {
        this.host.write32(ma, nv);
        return true;
      }
      if (!this.getPageFromL2e(nv, l2mfn, caller, slot)) return false;
    }
    this.host.write32(ma, nv);
    this.putPageFromL2e(old, l2mfn);
    return true;
  }

  // ------------------------------------------------------------------ pinning

  /** MMUEXT_PIN_L1/L2_TABLE against domain d (the FD or the caller). */
  pin(mfn: number, d: number, type: number): boolean {
    const t = type === PGT_l1_page_table ? PGT_l1_page_table | PGT_va_mutable : type;
    if (!this.getPageAndType(mfn, d, t)) return false;
    if (this.ft.typeInfo[mfn] & PGT_pinned) {
      this.putPageAndType(mfn);
      return false;
    }
    this.ft.typeInfo[mfn] |= PGT_pinned;
    return true;
  }

  unpin(mfn: number, d: number): boolean {
    if (!this.getPage(mfn, d)) return false;
    if ((this.ft.typeInfo[mfn] & PGT_pinned) === 0) {
      this.putPage(mfn);
      return false;
    }
    this.ft.typeInfo[mfn] &= ~PGT_pinned;
    this.putPageAndType(mfn);
    this.putPage(mfn);
    return true;
  }
}
