/**
 * sched_op (6) and set_timer_op (15), and the time kept in shared_info (semantics.md §7.3,
 * §7.4). The scheduler itself (which vcpu runs) is in hypervisor.ts for now: one policy,
 * round-robin over runnable vcpus.
 */

import { EAX } from "../cpu/regs.js";
import { EINVAL, ENOSYS, ESRCH } from "../public/errno.js";
import {
  MAX_VIRT_CPUS,
  SCHEDOP_CMDMASK,
  SCHEDOP_REASONSHIFT,
  SCHEDOP_VCPUSHIFT,
  SharedInfo,
  Shutdown,
} from "../public/xen.js";
import type { Vcpu } from "./domain.js";
import type { Hypervisor } from "./hypervisor.js";
import { setUpcallMask, upcallPending } from "./traps.js";

export function doSchedOp(hv: Hypervisor, v: Vcpu, op: number): number {
  const S = v.domain.abi.schedOp;
  switch (op & SCHEDOP_CMDMASK) {
    case S.yield:
      v.yieldEax = hv.cpu.regs[EAX];
      hv.yieldVcpu(v);
      return 0;
    case S.block:
      // Events are enabled; an event already pending keeps the vcpu runnable and returns 0.
      setUpcallMask(hv, v, 0);
      if (upcallPending(hv, v) !== 0) return 0;
      hv.block(v);
      // Xen's do_block sleeps in __enter_scheduler, whose context switch never comes back
      // through the hypercall's result store: the vcpu resumes with EAX still holding the
      // hypercall number (seen on real Xen, issue 17). Returning EAX unchanged keeps it so.
      return hv.cpu.regs[EAX];
    case S.shutdown: {
      const reason = (op >>> SCHEDOP_REASONSHIFT) & 0xff;
      hv.shutdownDomain(v.domain, reason, reason === Shutdown.crash);
      return 0;
    }
    case S.vcpu_down:
      return vcpuUpDown(hv, v, op >>> SCHEDOP_VCPUSHIFT, true);
    case S.vcpu_up:
      return vcpuUpDown(hv, v, op >>> SCHEDOP_VCPUSHIFT, false);
    default:
      return -ENOSYS;
  }
}

/**
 * JUL SCHEDOP_vcpu_down / vcpu_up (abi.md §1.4): mark a VCPU of the caller's domain not
 * runnable, or runnable again and wake it. Xen's bound check was `vcpu > MAX_VIRT_CPUS`, one
 * past the array [QUIRK]; like later Xen we refuse vcpu == MAX_VIRT_CPUS too (DEVIATIONS.md).
 */
function vcpuUpDown(hv: Hypervisor, v: Vcpu, vcpu: number, down: boolean): number {
  if (vcpu >= MAX_VIRT_CPUS) return -EINVAL;
  const target = v.domain.vcpus[vcpu];
  if (target === undefined) return -ESRCH;
  if (down) {
    target.down = true;
    hv.sched.sleep(target);
    if (target === v) hv.yieldVcpu(v);
  } else if (target.down) {
    target.down = false;
    hv.sched.wake(target);
  }
  return 0;
}

/** set_timer_op(hi, lo): absolute system time in ns; 0 cancels; the past fires at once. */
export function doSetTimerOp(_hv: Hypervisor, v: Vcpu, hi: number, lo: number): number {
  const deadline = hi * 2 ** 32 + lo;
  v.timerDeadline = deadline === 0 ? -1 : deadline;
  return 0;
}

/**
 * update_dom_time: the version protocol around cpu_freq, TSC, system time and wall clock.
 * Run at each switch and timer fire (twice a tick of an idle domain), so the words go straight
 * into the frame through the CPU's Int32Array, as physWrite32 stores them (one check for
 * decoded code in the frame, all fields aligned in one page), with no call returning or taking
 * a boxed double. A 64-bit field's low word is the value itself: the store's ToInt32 keeps its
 * low 32 bits (the values are whole and below 2^53), with no floating-point modulo.
 */
export function updateDomainTime(hv: Hypervisor, v: Vcpu, tickCycles: number): void {
  const cpu = hv.cpu;
  const frame = v.domain.sharedInfoMfn;
  if (cpu.codePage[frame] !== 0) cpu.codeWritten(frame);
  const m = cpu.mem32;
  const w = frame << 10;
  const clk = hv.clock;
  const ns = clk.ns(tickCycles);
  const hz = clk.tscHz;
  const usecs = Math.floor(ns / 1000) + hv.wallClockOffsetUs;
  const secs = Math.floor(usecs / 1e6);
  m[w + (SharedInfo.time_version1 >> 2)] = m[w + (SharedInfo.time_version1 >> 2)] + 1;
  m[w + (SharedInfo.cpu_freq >> 2)] = hz;
  m[w + (SharedInfo.cpu_freq >> 2) + 1] = Math.floor(hz / 2 ** 32);
  m[w + (SharedInfo.tsc_timestamp >> 2)] = tickCycles;
  m[w + (SharedInfo.tsc_timestamp >> 2) + 1] = Math.floor(tickCycles / 2 ** 32);
  m[w + (SharedInfo.system_time >> 2)] = ns;
  m[w + (SharedInfo.system_time >> 2) + 1] = Math.floor(ns / 2 ** 32);
  m[w + (SharedInfo.wc_sec >> 2)] = clk.bootEpochSeconds + secs;
  // A wall clock set before the boot epoch (DOM0_SETTIME) makes usecs negative: floor modulo.
  m[w + (SharedInfo.wc_usec >> 2)] = usecs - secs * 1e6;
  m[w + (SharedInfo.time_version2 >> 2)] = m[w + (SharedInfo.time_version2 >> 2)] + 1;
  v.domain.timeStamp = tickCycles;
}

/**
 * update_dom_time as Xen gates it (semantics.md §7.4): the block is written only when it does
 * not hold the last tick's stamp yet. An idle domain's timer fires and the domain is switched
 * in within the same tick: its block was written twice a tick, the second time with the same
 * words (only the versions moved). The stamp written last is kept host-side (Domain.timeStamp,
 * -1 before any): Xen compares the shared info's own tsc_timestamp, which a new domain's first
 * switch-in at tick 0 would find equal and leave its block unwritten; here it is written, as
 * before, and a guest's own writes to its shared info change nothing.
 */
export function refreshDomainTime(hv: Hypervisor, v: Vcpu, tickCycles: number): void {
  if (v.domain.timeStamp !== tickCycles) updateDomainTime(hv, v, tickCycles);
}
