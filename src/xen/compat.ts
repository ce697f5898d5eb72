/**
 * Hypercall argument translation at the guest boundary: registers of the domain's interface
 * revision (abi.ts) into the core's calling convention, like later Xen's compat layer. Only
 * conventions that moved between registers or changed encoding live here; struct layouts are
 * read from `v.domain.abi` by each family's marshalling code.
 */
import { EFAULT } from "../public/errno.js";
import { UvmfJul, UvmfMar } from "../public/xen.js";
import type { Vcpu } from "./domain.js";
import type { Hypervisor } from "./hypervisor.js";
import { doUpdateVaMapping, doUpdateVaMappingOtherdomain } from "./mmu.js";
import { doSetTimerOp } from "./schedule.js";

/**
 * JUL update_va_mapping flags (flush type in bits 1:0, target in bits 31:2) as the core's MAR
 * flags, plus the VCPU-bitmap pointer Xen reads (0 when none).
 *
 * Tolerated quirk (real-guests.md, docs/DEVIATIONS.md): Mini-OS of July 2005 still passes the
 * flags in EDX, which JUL Xen reads as the PTE's high word. A non-PAE PTE has no high word, so
 * a non-zero EDX is taken as a second, local flush request (the union of both is flushed):
 * flushing more than asked is always safe, and such guests get the flush they meant.
 */
function julFlags(flags: number, pteHigh: number): { mar: number; bitmap: number } {
  let mar = 0;
  let bitmap = 0;
  const type = flags & UvmfJul.FLUSHTYPE_MASK;
  if (type === UvmfJul.TLB_FLUSH) mar |= UvmfMar.FLUSH_TLB;
  else if (type === UvmfJul.INVLPG) mar |= UvmfMar.INVLPG;
  const target = (flags & ~UvmfJul.FLUSHTYPE_MASK) >>> 0;
  if (mar !== 0 && target !== UvmfJul.LOCAL && target !== UvmfJul.ALL) bitmap = target;
  if (pteHigh !== 0) {
    const quirk = pteHigh & UvmfJul.FLUSHTYPE_MASK;
    if (quirk === UvmfJul.TLB_FLUSH) mar |= UvmfMar.FLUSH_TLB;
    else if (quirk === UvmfJul.INVLPG) mar |= UvmfMar.INVLPG;
  }
  return { mar, bitmap };
}

function pick(a: readonly number[], i: number | null): number {
  return i === null ? 0 : a[i];
}

/** update_va_mapping in the domain's convention: MAR (va, pte, flags), JUL (va, pte_lo, pte_hi, flags). */
export function compatUpdateVaMapping(hv: Hypervisor, v: Vcpu, a: readonly number[]): number {
  const u = v.domain.abi.uvm;
  if (u.pteHighArg === null) return doUpdateVaMapping(hv, v, a[0], a[1], a[u.flagsArg]);
  const f = julFlags(a[u.flagsArg], pick(a, u.pteHighArg));
  const rc = doUpdateVaMapping(hv, v, a[0], a[1], f.mar);
  // Xen reads the VCPU bitmap after the update; a bad pointer turns the result into -EFAULT.
  if (f.bitmap !== 0 && hv.guest.read32(f.bitmap) === null) return -EFAULT;
  return rc;
}

/** update_va_mapping_otherdomain: MAR (va, pte, flags, domid), JUL (va, pte_lo, pte_hi, flags, domid). */
export function compatUpdateVaMappingOtherdomain(hv: Hypervisor, v: Vcpu, a: readonly number[]): number {
  const u = v.domain.abi.uvm;
  const domid = a[u.domidArg];
  if (u.pteHighArg === null) return doUpdateVaMappingOtherdomain(hv, v, a[0], a[1], a[u.flagsArg], domid);
  const f = julFlags(a[u.flagsArg], pick(a, u.pteHighArg));
  const rc = doUpdateVaMappingOtherdomain(hv, v, a[0], a[1], f.mar, domid);
  if (rc === 0 && f.bitmap !== 0 && hv.guest.read32(f.bitmap) === null) return -EFAULT;
  return rc;
}

/**
 * set_timer_op(u64): MAR EBX = high, ECX = low; JUL EBX = low, ECX = high. The two words as
 * arguments, not an array: an idle domain makes the call every tick.
 */
export function compatSetTimerOp(hv: Hypervisor, v: Vcpu, ebx: number, ecx: number): number {
  return v.domain.abi.timerHighArg === 0 ? doSetTimerOp(hv, v, ebx, ecx) : doSetTimerOp(hv, v, ecx, ebx);
}
