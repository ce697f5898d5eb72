/**
 * The memory-management hypercalls (semantics.md §1.8-§1.9): update_va_mapping for now;
 * mmu_update and the extended commands follow.
 */
import { EINVAL } from "../public/errno.js";
import { _PAGE_PRESENT, _PAGE_RW, HYPERVISOR_VIRT_START } from "../public/arch_x86_32.js";
import { UvmfMar } from "../public/xen.js";
import type { Vcpu } from "./domain.js";
import { PGT_l1_page_table, PGT_type_mask } from "./frame_table.js";
import type { Hypervisor } from "./hypervisor.js";

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
