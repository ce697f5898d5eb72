/**
 * mmuext_op (hypercall 26, July 2005 interface only; abi.md §2.4): the extended MMU commands
 * that March 2005 carried inside mmu_update (MMU_EXTENDED_COMMAND), now a hypercall of their own
 * with a 12-byte struct, renumbered commands, frame numbers instead of machine addresses, the
 * foreign domain as the 4th argument, and TLB flushes aimed at VCPU sets.
 */
import { EFAULT, EINVAL } from "../public/errno.js";
import { MmuExtJul, MmuExtOpJul } from "../public/xen.js";
import { setLdt } from "./descriptor_tables.js";
import type { Vcpu } from "./domain.js";
import { PGT_l1_page_table, PGT_l2_page_table } from "./frame_table.js";
import { arrayAccessOk } from "./guest_access.js";
import type { Hypervisor } from "./hypervisor.js";
import {
  type Batch,
  DOP_FLUSH_TLB,
  DOP_RELOAD_LDT,
  isPhysdevCapable,
  reassignPage,
  reloadLdt,
  setForeignDomArg,
  takeDeferredOps,
} from "./mmu.js";
import { ptwrFlushAll } from "./ptwr.js";

/** Resumed-call flag in count (Xen's continuation encoding). */
const MMU_UPDATE_PREEMPTED = 0x80000000;

/**
 * mmuext_op(ops, count, pdone, foreigndom): commands in order, stopping at the first failure
 * (-EINVAL, not counted); *pdone = number done; deferred flush / LDT reload at the end.
 */
export function doMmuextOp(
  hv: Hypervisor,
  v: Vcpu,
  ops: number,
  count: number,
  pdone: number,
  fd: number,
): number {
  ptwrFlushAll(hv, v.domain);
  const batch: Batch = { fd: null };
  let done = 0;
  let i = 0;
  let rc = 0;
  count >>>= 0;
  if (count & MMU_UPDATE_PREEMPTED) {
    count = (count & ~MMU_UPDATE_PREEMPTED) >>> 0;
    if (pdone !== 0) done = hv.guest.read32(pdone) ?? 0;
  }
  const E = MmuExtOpJul;
  if (!setForeignDomArg(hv, v, batch, fd)) rc = -EINVAL;
  else if (!arrayAccessOk(ops, count, E.SIZE)) rc = -EFAULT;
  else {
    for (; i < count; i++) {
      const raw = hv.guest.copyFrom((ops + i * E.SIZE) >>> 0, E.SIZE);
      if (raw === null) {
        rc = -EFAULT;
        break;
      }
      const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
      const r = mmuextCommand(
        hv,
        v,
        batch,
        dv.getUint32(E.cmd, true),
        dv.getUint32(E.mfn, true),
        dv.getUint32(E.nr_ents, true),
      );
      if (r !== 0) {
        rc = r;
        break;
      }
    }
  }
  const deferred = takeDeferredOps(hv);
  if (deferred & DOP_FLUSH_TLB) hv.cpu.flushTlb();
  if (deferred & DOP_RELOAD_LDT) reloadLdt(hv, v);
  if (pdone !== 0) hv.guest.write32(pdone, (done + i) >>> 0);
  return rc;
}

/** One command; 0, or -EINVAL / -EFAULT. arg1 = mfn / linear_addr, arg2 = nr_ents / vcpumask. */
function mmuextCommand(hv: Hypervisor, v: Vcpu, b: Batch, cmd: number, arg1: number, arg2: number): number {
  const d = v.domain;
  const owner = b.fd ?? d.id;
  const ok = (x: boolean): number => (x ? 0 : -EINVAL);
  switch (cmd) {
    case MmuExtJul.PIN_L1_TABLE:
      return ok(hv.frames.isRam(arg1) && hv.mm.pin(arg1, owner, PGT_l1_page_table));
    case MmuExtJul.PIN_L2_TABLE:
      return ok(hv.frames.isRam(arg1) && hv.mm.pin(arg1, owner, PGT_l2_page_table));
    case MmuExtJul.UNPIN_TABLE:
      return ok(hv.frames.isRam(arg1) && hv.mm.unpin(arg1, owner));
    case MmuExtJul.NEW_BASEPTR:
      // JUL passes the frame number (MAR: a machine address). The CR3 load flushes: a deferred
      // flush is cancelled, even when the new base pointer is refused (as in Xen).
      hv.deferredOps &= ~DOP_FLUSH_TLB;
      return ok(hv.newBasePointer(v, arg1));
    case MmuExtJul.TLB_FLUSH_LOCAL:
      hv.deferredOps |= DOP_FLUSH_TLB;
      return 0;
    case MmuExtJul.INVLPG_LOCAL:
      hv.cpu.invlpg(arg1 | 0);
      return 0;
    case MmuExtJul.TLB_FLUSH_MULTI:
    case MmuExtJul.INVLPG_MULTI: {
      // The VCPU bitmap must be readable; the one CPU core holds every VCPU's translations.
      if (hv.guest.read32(arg2) === null) return -EINVAL;
      if (cmd === MmuExtJul.TLB_FLUSH_MULTI) hv.cpu.flushTlb();
      else hv.cpu.invlpg(arg1 | 0);
      return 0;
    }
    case MmuExtJul.TLB_FLUSH_ALL:
      hv.cpu.flushTlb();
      return 0;
    case MmuExtJul.INVLPG_ALL:
      hv.cpu.invlpg(arg1 | 0);
      return 0;
    case MmuExtJul.FLUSH_CACHE:
      return ok(isPhysdevCapable(d));
    case MmuExtJul.SET_LDT:
      return ok(setLdt(hv, v, arg1, arg2));
    case MmuExtJul.REASSIGN_PAGE:
      return ok(reassignPage(hv, d, b, arg1));
    default:
      // PIN_L3/L4 and NEW_USER_BASEPTR are x86_64 only; anything else is unknown.
      return -EINVAL;
  }
}
