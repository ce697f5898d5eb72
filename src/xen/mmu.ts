/**
 * The memory-management hypercalls (semantics.md §1.8-§1.9): mmu_update with its extended
 * commands, and update_va_mapping.
 */
import { EFAULT, EINVAL } from "../public/errno.js";
import { _PAGE_PRESENT, _PAGE_RW, HYPERVISOR_VIRT_START } from "../public/arch_x86_32.js";
import {
  DomId,
  MMU_UPDATE_CMD_MASK,
  MMUEXT_CMD_MASK,
  MMUEXT_DOMID_SHIFT,
  MmuExtMar,
  MmuMar,
  MmuUpdateMar,
  UvmfMar,
} from "../public/xen.js";
import type { Vcpu } from "./domain.js";
import {
  PGT_l1_page_table,
  PGT_l2_page_table,
  PGT_type_mask,
  PGT_va_mask,
  PGT_writable_page,
} from "./frame_table.js";
import { arrayAccessOk } from "./guest_access.js";
import type { Hypervisor } from "./hypervisor.js";

/** Per-call state of one mmu_update batch: the foreign domain and the deferred flush. */
interface Batch {
  fd: number;
  flush: boolean;
}

/**
 * mmu_update(reqs, count, pdone): requests in order, stopping at the first failure (not
 * counted); *pdone gets the number done whatever happened; no rollback.
 */
export function doMmuUpdate(hv: Hypervisor, v: Vcpu, reqs: number, count: number, pdone: number): number {
  // Bits 16..31 of count are Xen's continuation encoding: a fresh batch holds < 0x10000.
  if (count >>> 16 !== 0) return -EINVAL;
  let rc = 0;
  let done = 0;
  const batch: Batch = { fd: v.domain.id, flush: false };
  if (!arrayAccessOk(reqs, count, MmuUpdateMar.SIZE)) rc = -EFAULT;
  for (let i = 0; rc === 0 && i < count; i++) {
    const req = hv.guest.copyFrom((reqs + i * MmuUpdateMar.SIZE) >>> 0, MmuUpdateMar.SIZE);
    if (req === null) {
      rc = -EFAULT;
      break;
    }
    const dv = new DataView(req.buffer);
    if (!mmuRequest(hv, v, batch, dv.getUint32(MmuUpdateMar.ptr, true), dv.getUint32(MmuUpdateMar.val, true))) {
      rc = -EINVAL;
      break;
    }
    done++;
  }
  if (batch.flush) hv.cpu.flushTlb();
  if (pdone !== 0 && !hv.guest.write32(pdone, done)) rc = rc || -EFAULT;
  return rc;
}

function mmuRequest(hv: Hypervisor, v: Vcpu, b: Batch, ptr: number, val: number): boolean {
  const d = v.domain.id;
  const ft = hv.frames;
  switch (ptr & MMU_UPDATE_CMD_MASK) {
    case MmuMar.NORMAL_PT_UPDATE: {
      const ma = ptr & ~3;
      const mfn = ma >>> 12;
      if (!ft.isRam(mfn) || !hv.mm.getPage(mfn, d)) return false;
      let ok: boolean;
      const type = ft.typeInfo[mfn] & PGT_type_mask;
      if (type === PGT_l1_page_table && hv.mm.getPageType(mfn, PGT_l1_page_table | (ft.typeInfo[mfn] & PGT_va_mask))) {
        ok = hv.mm.modL1Entry(ma, val | 0, b.fd, d);
        hv.mm.putPageType(mfn);
      } else if (type === PGT_l2_page_table && hv.mm.getPageType(mfn, PGT_l2_page_table)) {
        ok = hv.mm.modL2Entry(mfn, (ma & 0xfff) >>> 2, val | 0, d);
        hv.mm.putPageType(mfn);
      } else if (hv.mm.getPageType(mfn, PGT_writable_page)) {
        hv.write32(ma, val);
        hv.mm.putPageType(mfn);
        ok = true;
      } else {
        ok = false;
      }
      hv.mm.putPage(mfn);
      return ok;
    }
    case MmuMar.MACHPHYS_UPDATE: {
      const mfn = ptr >>> 12;
      if (!ft.isRam(mfn) || ft.owner[mfn] !== b.fd || ft.count[mfn] === 0) return false;
      hv.setM2p(mfn, val);
      return true;
    }
    case MmuMar.EXTENDED_COMMAND:
      return extendedCommand(hv, v, b, ptr & ~3, val);
    default:
      return false;
  }
}

function extendedCommand(hv: Hypervisor, v: Vcpu, b: Batch, ptr: number, val: number): boolean {
  const mfn = ptr >>> 12;
  switch (val & MMUEXT_CMD_MASK) {
    case MmuExtMar.PIN_L1_TABLE:
      return hv.frames.isRam(mfn) && hv.mm.pin(mfn, b.fd, PGT_l1_page_table);
    case MmuExtMar.PIN_L2_TABLE:
      return hv.frames.isRam(mfn) && hv.mm.pin(mfn, b.fd, PGT_l2_page_table);
    case MmuExtMar.UNPIN_TABLE:
      return hv.frames.isRam(mfn) && hv.mm.unpin(mfn, b.fd);
    case MmuExtMar.NEW_BASEPTR:
      b.flush = false; // the CR3 load flushes
      return hv.newBasePointer(v, mfn);
    case MmuExtMar.TLB_FLUSH_LOCAL:
      b.flush = true;
      return true;
    case MmuExtMar.INVLPG_LOCAL:
      hv.cpu.invlpg(ptr);
      return true;
    case MmuExtMar.SET_FOREIGNDOM: {
      const id = val >>> MMUEXT_DOMID_SHIFT;
      b.fd = v.domain.id;
      if (!v.domain.privileged) {
        if (id !== DomId.IO) return false;
      } else if (!hv.domains.has(id) && id !== DomId.XEN && id !== DomId.IO) {
        return false;
      }
      b.fd = id;
      return true;
    }
    case MmuExtMar.CLEAR_FOREIGNDOM:
      b.fd = v.domain.id;
      return true;
    default:
      // FLUSH_CACHE, SET_LDT, TRANSFER_PAGE, REASSIGN_PAGE come with the descriptor-table and
      // grant work; L3/L4 pins, NEW_USER_BASEPTR and the *_MULTI commands fail as in Xen.
      return false;
  }
}

/**
 * update_va_mapping(va, val, flags): a checked write of the L1 entry that maps va in the
 * current address space, then the flush the flags ask for.
 */
export function doUpdateVaMapping(hv: Hypervisor, v: Vcpu, va: number, val: number, flags: number): number {
  if (va >>> 0 >= HYPERVISOR_VIRT_START) return -EINVAL;
  const d = v.domain;
  // The PTE is reached through the linear page table: the L2 entry must be present and map
  // an L1 (a read-only L2 -> L2 linear entry makes the write fault in Xen: -EINVAL).
  const pde = hv.read32(v.baseMfn * 4096 + (va >>> 22) * 4);
  if ((pde & _PAGE_PRESENT) === 0) return -EINVAL;
  const l1 = pde >>> 12;
  if ((pde & _PAGE_RW) === 0 || (hv.frames.typeInfo[l1] & PGT_type_mask) !== PGT_l1_page_table) return -EINVAL;
  const ma = l1 * 4096 + ((va >>> 12) & 1023) * 4;
  if (!hv.mm.modL1Entry(ma, val | 0, d.id, d.id)) return -EINVAL;
  if (flags & UvmfMar.FLUSH_TLB) hv.cpu.flushTlb();
  else if (flags & UvmfMar.INVLPG) hv.cpu.invlpg(va);
  return 0;
}
