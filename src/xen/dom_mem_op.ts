/**
 * dom_mem_op(op, extent_list, nr_extents, extent_order, domid) (hypercall 12, semantics.md
 * §8.4): a domain gives machine memory back to Xen or takes more, up to its max_pages, in
 * extents of 2^order contiguous frames. Returns the number of extents done, not an errno,
 * except for the argument checks.
 */
import { EINVAL, ENOSYS, EPERM, ESRCH } from "../public/errno.js";
import { DomId, MEMOP_CMD_MASK, MEMOP_EXTENT_SHIFT, MemOp } from "../public/xen.js";
import { type Domain, DomainState, type Vcpu } from "./domain.js";
import { PGT_pinned } from "./frame_table.js";
import { arrayAccessOk } from "./guest_access.js";
import type { Hypervisor } from "./hypervisor.js";
import { isPhysdevCapable } from "./mmu.js";

export function doDomMemOp(
  hv: Hypervisor,
  v: Vcpu,
  op: number,
  extentList: number,
  nrExtents: number,
  extentOrder: number,
  domid: number,
): number {
  const start = op >>> MEMOP_EXTENT_SHIFT;
  const cmd = op & MEMOP_CMD_MASK;
  nrExtents >>>= 0;
  if (start > nrExtents) return -EINVAL;
  let d: Domain | undefined;
  const id = domid & 0xffff;
  if (id === DomId.SELF) d = v.domain;
  else if (!v.domain.privileged) return -EPERM;
  else if ((d = hv.domains.get(id)) === undefined) return -ESRCH;
  switch (cmd) {
    case MemOp.increase_reservation:
      return increaseReservation(hv, v, d, extentList, start, nrExtents, extentOrder >>> 0);
    case MemOp.decrease_reservation:
      return decreaseReservation(hv, d, extentList, start, nrExtents, extentOrder >>> 0);
    default:
      return -ENOSYS;
  }
}

/**
 * alloc_dom_mem: each extent is 2^order new frames (count allocated|1, type none, contents and
 * M2P left as they were); the first MFN goes into extent_list[i].
 */
function increaseReservation(
  hv: Hypervisor,
  v: Vcpu,
  d: Domain,
  list: number,
  start: number,
  n: number,
  order: number,
): number {
  if (!arrayAccessOk(list, n, 4)) return start;
  // Larger extents are for I/O-capable domains only (the *caller*'s capability).
  if (order !== 0 && !isPhysdevCapable(v.domain)) return start;
  if (order > 31) return start;
  const pages = 2 ** order;
  for (let i = start; i < n; i++) {
    if (d.state === DomainState.Dying || d.totPages + pages > d.maxPages) return i;
    const first = hv.mem.allocContiguous(pages);
    if (first < 0) return i;
    for (let k = 0; k < pages; k++) {
      hv.frames.assign(first + k, d.id);
      d.pages.add(first + k);
    }
    if (!hv.guest.write32((list + i * 4) >>> 0, first)) return i;
  }
  return n;
}

/**
 * free_dom_mem: for each page of each extent, unpin it if pinned and drop its allocation
 * reference; a page still mapped lives on until its last reference goes. A bad page stops the
 * call with that extent's index, earlier pages of the extent already freed.
 */
function decreaseReservation(
  hv: Hypervisor,
  d: Domain,
  list: number,
  start: number,
  n: number,
  order: number,
): number {
  if (!arrayAccessOk(list, n, 4)) return start;
  const ft = hv.frames;
  const mm = hv.mm;
  const pages = order > 31 ? Number.POSITIVE_INFINITY : 2 ** order;
  for (let i = start; i < n; i++) {
    const first = hv.guest.read32((list + i * 4) >>> 0);
    if (first === null) return i;
    for (let k = 0; k < pages; k++) {
      const mfn = first + k;
      if (mfn >= ft.nrFrames || !mm.getPage(mfn, d.id)) return i;
      // A Xen-heap page shared with the domain (shared_info) is not the domain's to free:
      // Xen would have put it on the domain heap while still in use (docs/DEVIATIONS.md).
      if (!d.pages.has(mfn)) {
        mm.putPage(mfn);
        return i;
      }
      if (ft.typeInfo[mfn] & PGT_pinned) {
        ft.typeInfo[mfn] &= ~PGT_pinned;
        mm.putPageAndType(mfn);
      }
      if (ft.allocated[mfn]) {
        ft.allocated[mfn] = 0;
        mm.putPage(mfn);
      }
      mm.putPage(mfn);
    }
  }
  return n;
}
