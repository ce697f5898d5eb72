/**
 * The memory-management hypercalls (semantics.md §1.8-§1.10): mmu_update with its extended
 * commands, update_va_mapping and update_va_mapping_otherdomain, and the per-CPU deferred
 * operations they run on the way out.
 */

import { _PAGE_PRESENT, _PAGE_RW, HYPERVISOR_VIRT_START } from "../public/arch_x86_32.js";
import { EFAULT, EINVAL, EPERM, ESRCH } from "../public/errno.js";
import {
  DomId,
  MMU_UPDATE_CMD_MASK,
  MMUEXT_CMD_MASK,
  MMUEXT_CMD_SHIFT,
  MMUEXT_DOMID_SHIFT,
  MmuExtMar,
  UvmfMar,
} from "../public/xen.js";
import { mapLdtShadowPage, setLdt } from "./descriptor_tables.js";
import { type Domain, DomainState, type Vcpu } from "./domain.js";
import {
  PGT_l1_page_table,
  PGT_l2_page_table,
  PGT_type_mask,
  PGT_va_mask,
  PGT_writable_page,
} from "./frame_table.js";
import { arrayAccessOk } from "./guest_access.js";
import type { Hypervisor } from "./hypervisor.js";
import type { MmHost } from "./mm.js";
import { ptwrFlushAll } from "./ptwr.js";
import { markDirty, markDirtyMachphys } from "./shadow.js";

/** Xen's per-CPU deferred_ops bits (hv.deferredOps), processed only by runDeferredOps. */
export const DOP_FLUSH_TLB = 1;
export const DOP_RELOAD_LDT = 2;

/** mmu_update's count: bit 31 = resumed call, bits 16..30 = the FD's domid (semantics.md §1.8). */
const MMU_UPDATE_PREEMPTED = 0x80000000;
const MMU_UPDATE_PREEMPT_FDOM_SHIFT = 16;
const MMU_UPDATE_PREEMPT_FDOM_MASK = 0x7fff;

/** Per-call state of one mmu_update batch: the foreign domain (null = none, use the caller). */
export interface Batch {
  fd: number | null;
}

/** FLUSH_CACHE and order > 0 reservations need IS_CAPABLE_PHYSDEV; dom0 is the one such domain. */
export function isPhysdevCapable(d: Domain): boolean {
  return d.physdevCapable;
}

/**
 * The end of mmu_update and update_va_mapping: a deferred TLB flush (unless the caller flushes
 * anyway) and the LDT page-0 pre-map after an LDT change (semantics.md §1.10).
 */
export function takeDeferredOps(hv: Hypervisor): number {
  const ops = hv.deferredOps;
  hv.deferredOps = 0;
  return ops;
}

export function reloadLdt(hv: Hypervisor, v: Vcpu): void {
  // Failure is ignored: the guest's first LDT access will fault it in (semantics.md §3.4).
  mapLdtShadowPage(hv, v, 0);
}

/**
 * mmu_update(reqs, count, pdone[, foreigndom]): requests in order, stopping at the first
 * failure (not counted); *pdone gets the number done whatever happened; no rollback. The
 * request layout and command numbers are the domain's revision's (abi.ts); at JUL the foreign
 * domain is the 4th argument (abi.md §1.4).
 */
export function doMmuUpdate(
  hv: Hypervisor,
  v: Vcpu,
  reqs: number,
  count: number,
  pdone: number,
  foreignDom: number | null = null,
): number {
  ptwrFlushAll(hv, v.domain);
  const batch: Batch = { fd: null };
  const progress = { done: 0, i: 0 };
  let rc: number;
  if (foreignDom !== null && !setForeignDomArg(hv, v, batch, foreignDom)) rc = -EINVAL;
  else rc = runBatch(hv, v, batch, reqs, count >>> 0, pdone, progress);
  const ops = takeDeferredOps(hv);
  if (ops & DOP_FLUSH_TLB) hv.cpu.flushTlb();
  if (ops & DOP_RELOAD_LDT) reloadLdt(hv, v);
  // The FD lasts for this call only (batch goes out of scope). Xen ignores a failed write of
  // *pdone (__put_user); so do we.
  if (pdone !== 0) hv.guest.write32(pdone, (progress.done + progress.i) >>> 0);
  return rc;
}

/** The requests of one call; progress.i counts the successful ones (semantics.md §1.8). */
function runBatch(
  hv: Hypervisor,
  v: Vcpu,
  batch: Batch,
  reqs: number,
  count: number,
  pdone: number,
  progress: { done: number; i: number },
): number {
  const abi = v.domain.abi;
  if (abi.mmuUpdateForeignDomArg !== null) {
    // JUL: only the preemption flag is special; the FD is an argument of its own.
    if (count & MMU_UPDATE_PREEMPTED) {
      count = (count & ~MMU_UPDATE_PREEMPTED) >>> 0;
      if (pdone !== 0) progress.done = hv.guest.read32(pdone) ?? 0;
    }
  } else if (count >>> 16 !== 0) {
    // A fresh batch holds < 0x10000 requests; otherwise this must be a resumed call.
    if ((count & MMU_UPDATE_PREEMPTED) === 0) return -EINVAL;
    const domid = (count >>> MMU_UPDATE_PREEMPT_FDOM_SHIFT) & MMU_UPDATE_PREEMPT_FDOM_MASK;
    count &= 0xffff;
    if (pdone !== 0) progress.done = hv.guest.read32(pdone) ?? 0;
    if (domid !== v.domain.id && !setForeignDom(hv, v, batch, domid)) return -EINVAL;
  }
  const L = abi.mmuUpdate;
  if (!arrayAccessOk(reqs, count, L.SIZE)) return -EFAULT;
  for (; progress.i < count; progress.i++) {
    // The request word by word, allocating nothing; the whole of it must be readable.
    const va = (reqs + progress.i * L.SIZE) >>> 0;
    const g = hv.guest;
    if (!g.readable(va, L.SIZE)) return -EFAULT;
    // JUL's u64 ptr: a high word names a machine address beyond any frame (non-PAE), which
    // fails like any bad frame; the high word of val is dropped (a non-PAE PTE is 32 bits).
    if (abi.mmuUpdateWide && g.peek32(va + L.ptr + 4) !== 0) return -EINVAL;
    if (!mmuRequest(hv, v, batch, g.peek32(va + L.ptr) >>> 0, g.peek32(va + L.val) >>> 0)) {
      return -EINVAL;
    }
  }
  return 0;
}

function mmuRequest(hv: Hypervisor, v: Vcpu, b: Batch, ptr: number, val: number): boolean {
  const M = v.domain.abi.mmu;
  switch (ptr & MMU_UPDATE_CMD_MASK) {
    case M.NORMAL_PT_UPDATE:
      return normalPtUpdate(hv, v, b, ptr, val);
    case M.MACHPHYS_UPDATE: {
      // The frame must belong to the FD (or the caller); the value is not checked.
      const mfn = ptr >>> 12;
      if (!hv.frames.isRam(mfn) || !hv.mm.getPage(mfn, b.fd ?? v.domain.id)) return false;
      hv.setM2p(mfn, val);
      markDirtyMachphys(hv, mfn);
      hv.mm.putPage(mfn);
      return true;
    }
    case M.EXTENDED_COMMAND:
      return extendedCommand(hv, v, b, (ptr & ~3) >>> 0, val);
    default:
      return false;
  }
}

/**
 * MMU_NORMAL_PT_UPDATE: the frame holding the entry belongs to the caller (never the FD); its
 * current type decides between a checked L1 write, a checked L2 write and a plain store into a
 * page that can be typed writable (semantics.md §1.8).
 */
function normalPtUpdate(hv: Hypervisor, v: Vcpu, b: Batch, ptr: number, val: number): boolean {
  const d = v.domain.id;
  const ft = hv.frames;
  const ma = ptr >>> 0;
  const mfn = ma >>> 12;
  if (!ft.isRam(mfn) || !hv.mm.getPage(mfn, d)) return false;
  let ok = false;
  const ti = ft.typeInfo[mfn];
  switch (ti & PGT_type_mask) {
    case PGT_l1_page_table:
      // Keep the back-pointer: a type reference with the page's own va. At type count 0 this
      // validates the whole table and the put below devalidates it again.
      if (hv.mm.getPageType(mfn, ti & (PGT_type_mask | PGT_va_mask))) {
        ok = hv.mm.modL1Entry(ma, val | 0, b.fd ?? d, d);
        hv.mm.putPageType(mfn);
      }
      break;
    case PGT_l2_page_table:
      if (hv.mm.getPageType(mfn, PGT_l2_page_table)) {
        ok = hv.mm.modL2Entry(mfn, (ma & 0xfff) >>> 2, val | 0, d);
        hv.mm.putPageType(mfn);
      }
      break;
    default:
      if (hv.mm.getPageType(mfn, PGT_writable_page)) {
        hv.write32(ma, val);
        hv.mm.putPageType(mfn);
        ok = true;
      }
  }
  hv.mm.putPage(mfn);
  return ok;
}

function extendedCommand(hv: Hypervisor, v: Vcpu, b: Batch, ptr: number, val: number): boolean {
  const mfn = ptr >>> 12;
  const d = v.domain;
  switch (val & MMUEXT_CMD_MASK) {
    case MmuExtMar.PIN_L1_TABLE:
      return hv.frames.isRam(mfn) && hv.mm.pin(mfn, b.fd ?? d.id, PGT_l1_page_table);
    case MmuExtMar.PIN_L2_TABLE:
      return hv.frames.isRam(mfn) && hv.mm.pin(mfn, b.fd ?? d.id, PGT_l2_page_table);
    case MmuExtMar.UNPIN_TABLE:
      return hv.frames.isRam(mfn) && hv.mm.unpin(mfn, b.fd ?? d.id);
    case MmuExtMar.NEW_BASEPTR:
      // new_guest_cr3: the caller's own L2 (never the FD); the CR3 load flushes, so a
      // deferred flush is cancelled, but only on success.
      // (newBasePointer also invalidates the shadow LDT.)
      if (!hv.newBasePointer(v, mfn)) return false;
      hv.deferredOps &= ~DOP_FLUSH_TLB;
      return true;
    case MmuExtMar.TLB_FLUSH_LOCAL:
      hv.deferredOps |= DOP_FLUSH_TLB;
      return true;
    case MmuExtMar.INVLPG_LOCAL:
      hv.cpu.invlpg(ptr);
      return true;
    case MmuExtMar.FLUSH_CACHE:
      // wbinvd: nothing to do in an emulator, but only physdev-capable domains may ask.
      return isPhysdevCapable(d);
    case MmuExtMar.SET_LDT:
      return setLdt(hv, v, ptr, val >>> MMUEXT_CMD_SHIFT);
    case MmuExtMar.SET_FOREIGNDOM:
      return setForeignDom(hv, v, b, val >>> MMUEXT_DOMID_SHIFT);
    case MmuExtMar.CLEAR_FOREIGNDOM:
      b.fd = null;
      return true;
    case MmuExtMar.TRANSFER_PAGE:
      return transferPage(hv, d, ptr, val);
    case MmuExtMar.REASSIGN_PAGE:
      return reassignPage(hv, d, b, mfn);
    default:
      // L3/L4 pins and NEW_USER_BASEPTR are x86_64-only; TLB_FLUSH_MULTI and INVLPG_MULTI are
      // declared in the header but not implemented at this commit.
      return false;
  }
}

/**
 * JUL set_foreigndom (the FD argument of mmu_update / mmuext_op): DOMID_SELF means none;
 * otherwise the MAR SET_FOREIGNDOM rules. The argument is a domid_t (16 bits).
 */
export function setForeignDomArg(hv: Hypervisor, v: Vcpu, b: Batch, domid: number): boolean {
  domid &= 0xffff;
  b.fd = null;
  if (domid === DomId.SELF) return true;
  return setForeignDom(hv, v, b, domid);
}

/**
 * SET_FOREIGNDOM: drop any FD first; an unprivileged caller may only name DOMID_IO; a
 * privileged one any real domain (itself included), DOMID_XEN or DOMID_IO. DOMID_SELF is not
 * special (semantics.md §1.8).
 */
function setForeignDom(hv: Hypervisor, v: Vcpu, b: Batch, domid: number): boolean {
  b.fd = null;
  if (!v.domain.privileged) {
    if (domid !== DomId.IO) return false;
  } else if (!hv.domains.has(domid) && domid !== DomId.XEN && domid !== DomId.IO) {
    return false;
  }
  b.fd = domid;
  return true;
}

/** A frame the domain owns but that is not on its page list: a Xen-heap page shared with it. */
function isXenHeapFrame(hv: Hypervisor, mfn: number): boolean {
  const owner = hv.frames.owner[mfn];
  if (owner === DomId.XEN) return true;
  const d = hv.domains.get(owner);
  return d !== undefined && !d.pages.has(mfn);
}

/** The frame holds only its allocation reference and belongs to d. */
function onlyAllocationRef(hv: Hypervisor, mfn: number, d: Domain): boolean {
  const ft = hv.frames;
  return ft.count[mfn] === 1 && ft.allocated[mfn] === 1 && ft.owner[mfn] === d.id;
}

/**
 * MMUEXT_TRANSFER_PAGE: give a page with no references but its allocation to another domain
 * through that domain's grant entry `ref` (semantics.md §1.8). Xen unlinked the page before
 * checking the receiver and leaked it when a check failed [QUIRK]; like fixed Xen we check the
 * receiver first (docs/DEVIATIONS.md).
 */
function transferPage(hv: Hypervisor, d: Domain, ptr: number, val: number): boolean {
  const mfn = ptr >>> 12;
  const domid = val >>> MMUEXT_DOMID_SHIFT;
  const ref = (val & 0xff00) | ((ptr >>> 2) & 0xff);
  const e = hv.domains.get(domid);
  if (!hv.frames.isRam(mfn) || isXenHeapFrame(hv, mfn) || e === undefined) return false;
  if (!onlyAllocationRef(hv, mfn, d)) return false;
  // The receiver's headroom counts the page as already gone from the sender (e may be d).
  const receiverPages = e.totPages - (e === d ? 1 : 0);
  if (e.state === DomainState.Dying || receiverPages >= e.maxPages) return false;
  const host: MmHost = hv;
  if (!host.grantPrepareTransfer?.(e.id, d.id, ref)) return false;
  d.pages.delete(mfn);
  e.pages.add(mfn);
  hv.frames.owner[mfn] = e.id;
  // Neither the M2P nor type_info is touched: the receiver fixes its M2P entry itself.
  host.grantNotifyTransfer?.(e.id, ref, mfn);
  return true;
}

/**
 * MMUEXT_REASSIGN_PAGE: a privileged caller gives one of its pages (allocation reference only)
 * to the FD, without a max_pages check (semantics.md §1.8).
 */
export function reassignPage(hv: Hypervisor, d: Domain, b: Batch, mfn: number): boolean {
  if (!d.privileged || b.fd === null) return false;
  const e = hv.domains.get(b.fd);
  if (e !== undefined && e.state === DomainState.Dying) return false;
  // Xen indexed the frame table without a range check; a frame beyond memory simply fails.
  if (!hv.frames.isRam(mfn) || isXenHeapFrame(hv, mfn) || !onlyAllocationRef(hv, mfn, d)) return false;
  d.pages.delete(mfn);
  e?.pages.add(mfn);
  hv.frames.owner[mfn] = b.fd;
  return true;
}

/**
 * The machine address of the PTE for va in the vcpu's current address space, as Xen reaches it
 * through the linear page table: the L2 entry must be present and writable (a read-only linear
 * L2 -> L2 entry makes Xen's write fault), so it maps an L1. -1 when Xen's access would fault.
 */
export function linearPteMa(hv: Hypervisor, v: Vcpu, va: number): number {
  const pde = hv.read32(v.baseMfn * 4096 + (va >>> 22) * 4);
  if ((pde & (_PAGE_PRESENT | _PAGE_RW)) !== (_PAGE_PRESENT | _PAGE_RW)) return -1;
  const l1 = pde >>> 12;
  if (!hv.frames.isRam(l1) || (hv.frames.typeInfo[l1] & PGT_type_mask) !== PGT_l1_page_table) return -1;
  return l1 * 4096 + ((va >>> 12) & 1023) * 4;
}

/**
 * update_va_mapping(va, val, flags): a checked write of the L1 entry that maps va in the
 * current address space, then the deferred ops and the flush the flags ask for (§1.9). fd is
 * the foreign domain of update_va_mapping_otherdomain.
 */
export function doUpdateVaMapping(
  hv: Hypervisor,
  v: Vcpu,
  va: number,
  val: number,
  flags: number,
  fd: number | null = null,
): number {
  if (va >>> 0 >= HYPERVISOR_VIRT_START) return -EINVAL;
  const d = v.domain;
  ptwrFlushAll(hv, d);
  const ma = linearPteMa(hv, v, va);
  const rc = ma >= 0 && hv.mm.modL1Entry(ma, val | 0, fd ?? d.id, d.id) ? 0 : -EINVAL;
  // Log-dirty: the page holding the PTE is dirty (semantics.md §11).
  if (rc === 0 && d.logDirty !== null) markDirty(hv, d, ma >>> 12);
  const ops = takeDeferredOps(hv);
  if (ops & DOP_FLUSH_TLB || flags & UvmfMar.FLUSH_TLB) hv.cpu.flushTlb();
  else if (flags & UvmfMar.INVLPG) hv.cpu.invlpg(va);
  if (ops & DOP_RELOAD_LDT) reloadLdt(hv, v);
  return rc;
}

/**
 * update_va_mapping_otherdomain(va, val, flags, domid): privileged only; the PTE is still in the
 * caller's tables, the mapped frame must belong to domid (§1.9).
 */
export function doUpdateVaMappingOtherdomain(
  hv: Hypervisor,
  v: Vcpu,
  va: number,
  val: number,
  flags: number,
  domid: number,
): number {
  if (!v.domain.privileged) return -EPERM;
  const id = domid & 0xffff;
  if (!hv.domains.has(id)) return -ESRCH;
  return doUpdateVaMapping(hv, v, va, val, flags, id);
}
