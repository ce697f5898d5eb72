/**
 * The hypercall gate (semantics.md §4.11): int $0x82 from ring 1, EAX = number (masked to 5
 * bits), EBX..EDI = arguments, result in EAX; and multicall (§4.12).
 */
import { EAX, EBX, ECX, EDI, EDX, ESI } from "../cpu/regs.js";
import { EFAULT, EINVAL, ENOSYS } from "../public/errno.js";
import { Trc } from "../public/trace.js";
import { HypercallJul, HypercallMar, NR_HYPERCALLS } from "../public/xen.js";
import type { GuestAbi } from "./abi.js";
import {
  doFpuTaskswitch,
  doGetDebugreg,
  doSetCallbacks,
  doSetDebugreg,
  doSetTrapTable,
  doStackSwitch,
} from "./callbacks.js";
import { compatSetTimerOp, compatUpdateVaMapping, compatUpdateVaMappingOtherdomain } from "./compat.js";
import { doConsoleIo } from "./console.js";
import { doSetFastTrap, doSetGdt, doUpdateDescriptor } from "./descriptor_tables.js";
import { doDomMemOp } from "./dom_mem_op.js";
import { doDom0Op } from "./dom0_ops.js";
import type { Vcpu } from "./domain.js";
import { doEventChannelOp } from "./event_channel.js";
import { doGrantTableOp } from "./grant_table.js";
import { arrayAccessOk } from "./guest_access.js";
import type { Hypervisor } from "./hypervisor.js";
import { checkInvariants, InvariantError } from "./invariants.js";
import { doMmuUpdate } from "./mmu.js";
import { doMmuextOp } from "./mmuext_op.js";
import { doPhysdevOp } from "./physdev.js";
import { ptwrFlushAll } from "./ptwr.js";
import { doSchedOp } from "./schedule.js";
import { doVmAssist, doXenVersion } from "./version.js";

/** A hypercall handler: arguments as unsigned 32-bit values; returns the value for EAX. */
export type HypercallHandler = (
  hv: Hypervisor,
  v: Vcpu,
  a1: number,
  a2: number,
  a3: number,
  a4: number,
  a5: number,
) => number;

const notImplemented: HypercallHandler = () => -ENOSYS;

/** The table, indexed by hypercall number; unused and not-yet-implemented slots give -ENOSYS. */
export const HYPERCALLS: HypercallHandler[] = new Array<HypercallHandler>(NR_HYPERCALLS).fill(notImplemented);
HYPERCALLS[HypercallMar.set_trap_table] = (hv, v, a1) => doSetTrapTable(hv, v, a1);
HYPERCALLS[HypercallMar.dom0_op] = (hv, v, a1) => doDom0Op(hv, v, a1);
HYPERCALLS[HypercallMar.mmu_update] = (hv, v, a1, a2, a3, a4) =>
  doMmuUpdate(hv, v, a1, a2, a3, v.domain.abi.mmuUpdateForeignDomArg === null ? null : a4);
HYPERCALLS[HypercallMar.stack_switch] = (_hv, v, a1, a2) => doStackSwitch(v, a1, a2);
HYPERCALLS[HypercallMar.set_callbacks] = (_hv, v, a1, a2, a3, a4) => doSetCallbacks(v, a1, a2, a3, a4);
HYPERCALLS[HypercallMar.fpu_taskswitch] = (hv, v, a1) => doFpuTaskswitch(hv, v, a1);
HYPERCALLS[HypercallMar.sched_op] = (hv, v, a1) => doSchedOp(hv, v, a1);
HYPERCALLS[HypercallMar.set_debugreg] = (hv, v, a1, a2) => doSetDebugreg(hv, v, a1, a2);
HYPERCALLS[HypercallMar.get_debugreg] = (_hv, v, a1) => doGetDebugreg(v, a1);
HYPERCALLS[HypercallMar.multicall] = (hv, v, a1, a2) => doMulticall(hv, v, a1, a2);
HYPERCALLS[HypercallMar.update_va_mapping] = (hv, v, a1, a2, a3, a4, a5) =>
  compatUpdateVaMapping(hv, v, [a1, a2, a3, a4, a5]);
HYPERCALLS[HypercallMar.set_timer_op] = (hv, v, a1, a2) => compatSetTimerOp(hv, v, a1, a2);
HYPERCALLS[HypercallMar.event_channel_op] = (hv, v, a1) => doEventChannelOp(hv, v, a1);
HYPERCALLS[HypercallMar.physdev_op] = (hv, v, a1) => doPhysdevOp(hv, v, a1);
HYPERCALLS[HypercallMar.grant_table_op] = (hv, v, a1, a2, a3) => doGrantTableOp(hv, v, a1, a2, a3);
HYPERCALLS[HypercallMar.xen_version] = (hv, v, a1, a2) => doXenVersion(hv, v, a1, a2);
HYPERCALLS[HypercallMar.console_io] = (hv, v, a1, a2, a3) => doConsoleIo(hv, v, a1, a2, a3);
HYPERCALLS[HypercallMar.vm_assist] = (_hv, v, a1, a2) => doVmAssist(v, a1, a2);
HYPERCALLS[HypercallMar.dom_mem_op] = (hv, v, a1, a2, a3, a4, a5) => doDomMemOp(hv, v, a1, a2, a3, a4, a5);
HYPERCALLS[HypercallMar.update_va_mapping_otherdomain] = (hv, v, a1, a2, a3, a4, a5) =>
  compatUpdateVaMappingOtherdomain(hv, v, [a1, a2, a3, a4, a5]);
HYPERCALLS[HypercallJul.mmuext_op] = (hv, v, a1, a2, a3, a4) => doMmuextOp(hv, v, a1, a2, a3, a4);
HYPERCALLS[HypercallMar.set_gdt] = (hv, v, a1, a2) => doSetGdt(hv, v, a1, a2);
HYPERCALLS[HypercallMar.update_descriptor] = (hv, v, a1, a2, a3) => doUpdateDescriptor(hv, v, a1, a2, a3);
HYPERCALLS[HypercallMar.set_fast_trap] = (_hv, v, a1) => doSetFastTrap(v, a1);

/**
 * Hypercalls that may load a base pointer, change a page's type or count, or free or move a
 * frame: the caller's writable-page-table state is flushed before they run (Xen of the time
 * flushed only in mmu_update, update_va_mapping and grant mapping; DEVIATIONS.md). A multicall
 * flushes once for its whole batch: no guest store can reopen a window between its entries.
 */
const FLUSHES_PTWR = new Uint8Array(NR_HYPERCALLS);
for (const nr of [
  HypercallMar.mmu_update,
  HypercallJul.mmuext_op,
  HypercallMar.update_va_mapping,
  HypercallMar.update_va_mapping_otherdomain,
  HypercallMar.dom_mem_op,
  HypercallMar.grant_table_op,
  HypercallMar.set_gdt,
  HypercallMar.update_descriptor,
  HypercallMar.dom0_op,
  HypercallMar.multicall,
  HypercallMar.vm_assist,
])
  FLUSHES_PTWR[nr] = 1;

/** Executes the hypercall in the vcpu's registers (EIP already after int $0x82). */
export function doHypercall(hv: Hypervisor, v: Vcpu): void {
  const r = hv.cpu.regs;
  const nr = r[EAX] & (NR_HYPERCALLS - 1);
  if (FLUSHES_PTWR[nr]) ptwrFlushAll(hv, v.domain);
  hv.trace?.(v, nr);
  hv.tbufs?.record(hv, v.processor, Trc.HYPERCALL_BASE + nr, v.domain.id, v.id);
  const rc = hypercallHandler(v.domain.abi, nr)(
    hv,
    v,
    r[EBX] >>> 0,
    r[ECX] >>> 0,
    r[EDX] >>> 0,
    r[ESI] >>> 0,
    r[EDI] >>> 0,
  );
  // A handler that descheduled or crashed the domain still leaves its result in EAX.
  r[EAX] = rc;
  hv.afterHypercall?.(v, nr);
  if (hv.checkInvariantsAfterHypercall) assertInvariants(hv, `hypercall ${nr}`);
}

/** Runs the invariant checker (tests and debugging); a violation is a hypervisor bug. */
export function assertInvariants(hv: Hypervisor, after: string): void {
  const bad = checkInvariants(hv);
  if (bad.length > 0)
    throw new InvariantError(`frame-table invariant broken after ${after}: ${bad.slice(0, 3).join("; ")}`);
}

const PRESENT = new Map<GuestAbi, Uint8Array>();
let lastAbi: GuestAbi | null = null;
let lastPresent: Uint8Array = new Uint8Array(NR_HYPERCALLS);

/**
 * The handler of hypercall nr for an interface revision: the numbers that revision defines
 * (abi.hypercall) reach HYPERCALLS, the others are -ENOSYS (set_fast_trap at JUL, mmuext_op at
 * MAR).
 */
export function hypercallHandler(abi: GuestAbi, nr: number): HypercallHandler {
  // Every exit asks: the last revision's table answers without a Map lookup.
  if (abi === lastAbi) return lastPresent[nr] ? HYPERCALLS[nr] : notImplemented;
  let present = PRESENT.get(abi);
  if (present === undefined) {
    present = new Uint8Array(NR_HYPERCALLS);
    for (const n of Object.values(abi.hypercall)) if (n !== undefined) present[n] = 1;
    PRESENT.set(abi, present);
  }
  lastAbi = abi;
  lastPresent = present;
  return present[nr] ? HYPERCALLS[nr] : notImplemented;
}

let inMulticall = false;

/**
 * multicall(list, n): each entry's result into its result word (MAR args[5], JUL the word at
 * 4 with args from 8: abi.md §2.1); nested multicall is -EINVAL.
 */
function doMulticall(hv: Hypervisor, v: Vcpu, list: number, n: number): number {
  if (inMulticall) return -EINVAL;
  const E = v.domain.abi.multicallEntry;
  if (!arrayAccessOk(list, n, E.SIZE)) return -EFAULT;
  inMulticall = true;
  try {
    for (let i = 0; i < n; i++) {
      const va = (list + i * E.SIZE) >>> 0;
      // The entry word by word, allocating nothing; the whole of it must be readable.
      const g = hv.guest;
      if (!g.readable(va, E.SIZE)) return -EFAULT;
      const op = g.peek32(va + E.op) & (NR_HYPERCALLS - 1);
      // The MULTICALL_ARGS_PASSED (5) arguments.
      const a0 = g.peek32(va + E.args) >>> 0;
      const a1 = g.peek32(va + E.args + 4) >>> 0;
      const a2 = g.peek32(va + E.args + 8) >>> 0;
      const a3 = g.peek32(va + E.args + 12) >>> 0;
      const a4 = g.peek32(va + E.args + 16) >>> 0;
      let rc = hypercallHandler(v.domain.abi, op)(hv, v, a0, a1, a2, a3, a4);
      // A sched_op that blocked or yielded. Xen of 2005 switched away inside it and never
      // came back to the batch, leaving the CPU's multicall flag set (every later multicall
      // there -EINVAL); since 0464e78ebb (2006) the sub-call gives 0 and the preemption check
      // makes the rest a continuation, and so does tsxen (DEVIATIONS.md). Its EAX is the
      // batch's, not the top-level call's "EAX keeps the number" (doSchedOp).
      const descheduled = v.blocked || v.yieldEax !== 0;
      if (descheduled) {
        v.yieldEax = 0;
        rc = 0;
      }
      if (!hv.guest.write32((va + E.result) >>> 0, rc)) return -EFAULT;
      if (!v.domain.runnable) return 0;
      if (descheduled && i + 1 < n) {
        // The rest of the batch as a continuation (int $0x82 re-executed with the remaining
        // entries), run when the vcpu runs again.
        const r = hv.cpu.regs;
        r[EBX] = list + (i + 1) * E.SIZE;
        r[ECX] = n - i - 1;
        hv.cpu.eip = (hv.cpu.eip - 2) | 0;
        return HypercallMar.multicall;
      }
    }
    return 0;
  } finally {
    inMulticall = false;
  }
}
