/**
 * Trap and callback registration (semantics.md §4.9, §4.10): set_trap_table, stack_switch,
 * set_callbacks, fpu_taskswitch, set_debugreg / get_debugreg.
 */

import { SELECTOR_RPL_MASK, SELECTOR_TI } from "../public/arch_x86_32.js";
import { EFAULT, EINVAL, EPERM } from "../public/errno.js";
import {
  DEBUGREG_ADDR_MAX,
  DR6_FORCED_ONES,
  DR6_FORCED_ZEROS,
  DR7_FORCED_ONES,
  DR7_FORCED_ZEROS,
  DR7_GD,
  DR7_RW_LEN_SHIFT,
  TrapInfo,
} from "../public/xen.js";
import { ABIS, type GuestAbi } from "./abi.js";
import type { Vcpu } from "./domain.js";
import type { Hypervisor } from "./hypervisor.js";

/**
 * VALID_SEL: RPL 1, and an LDT selector or a GDT index outside Xen's reserved range (MAR
 * 256..295; JUL every index from 7168). abi.md §3.3
 */
export function validSel(sel: number, abi: GuestAbi = ABIS["2005-03"]): boolean {
  if ((sel & SELECTOR_RPL_MASK) !== 1) return false;
  if (sel & SELECTOR_TI) return true;
  const index = sel >>> 3;
  const g = abi.gdt;
  return index < g.firstReservedEntry || index >= g.firstReservedEntry + g.nrReservedEntries;
}

/** VALID_CODESEL: the flat kernel CS or a VALID_SEL. */
export function validCodeSel(sel: number, abi: GuestAbi = ABIS["2005-03"]): boolean {
  return sel === abi.selectors.FLAT_KERNEL_CS || validSel(sel, abi);
}

/** set_trap_table: entries until address 0; a bad cs stops with -EPERM, earlier ones stay. */
export function doSetTrapTable(hv: Hypervisor, v: Vcpu, va: number): number {
  for (let p = va; ; p = (p + TrapInfo.SIZE) >>> 0) {
    const e = hv.guest.copyFrom(p, TrapInfo.SIZE);
    if (e === null) return -EFAULT;
    const dv = new DataView(e.buffer);
    const address = dv.getUint32(TrapInfo.address, true);
    if (address === 0) return 0;
    const cs = dv.getUint16(TrapInfo.cs, true);
    if (!validCodeSel(cs, v.domain.abi)) return -EPERM;
    const vector = e[TrapInfo.vector];
    v.trapCs[vector] = cs;
    v.trapAddress[vector] = address;
    v.trapFlags[vector] = e[TrapInfo.flags];
  }
}

/**
 * VALID_STACKSEL: the flat kernel SS or a VALID_SEL. Xen of March 2005 checked only the RPL,
 * so Xen's own ring-1 view of its data segment (0x811) was accepted and the domain died at
 * its next trap from ring 3; later Xen checks the selector (DEVIATIONS.md).
 */
export function validStackSel(sel: number, abi: GuestAbi): boolean {
  return sel === abi.selectors.FLAT_KERNEL_SS || validSel(sel, abi);
}

/** stack_switch(ss, esp): ss must be a guest ring-1 stack selector (else -EPERM). */
export function doStackSwitch(v: Vcpu, ss: number, esp: number): number {
  if ((ss & SELECTOR_RPL_MASK) !== 1 || !validStackSel(ss & 0xffff, v.domain.abi)) return -EPERM;
  v.kernelSs = ss & 0xffff;
  v.kernelEsp = esp;
  return 0;
}

export function doSetCallbacks(v: Vcpu, evCs: number, evEip: number, fsCs: number, fsEip: number): number {
  const abi = v.domain.abi;
  if (!validCodeSel(evCs & 0xffff, abi) || !validCodeSel(fsCs & 0xffff, abi)) return -EPERM;
  v.eventCs = evCs & 0xffff;
  v.eventEip = evEip | 0; // int32, as the CPU keeps EIP (Vcpu.trapAddress)
  v.failsafeCs = fsCs & 0xffff;
  v.failsafeEip = fsEip | 0;
  return 0;
}

/** fpu_taskswitch(set): the guest's virtual CR0.TS; the real TS follows it. Always 0. */
export function doFpuTaskswitch(hv: Hypervisor, v: Vcpu, set: number): number {
  v.guestTs = set !== 0;
  if (v.guestTs) hv.cpu.cr0 |= 8;
  else hv.cpu.cr0 &= ~8;
  return 0;
}

/** set_debugreg (semantics.md §4.10). */
export function doSetDebugreg(hv: Hypervisor, v: Vcpu, reg: number, value: number): number {
  switch (reg) {
    case 0:
    case 1:
    case 2:
    case 3:
      if (value >>> 0 > DEBUGREG_ADDR_MAX) return -EPERM;
      break;
    case 6:
      value = ((value & ~DR6_FORCED_ZEROS) | DR6_FORCED_ONES) >>> 0;
      break;
    case 7:
      if (value !== 0) {
        value = ((value & ~DR7_FORCED_ZEROS) | DR7_FORCED_ONES) >>> 0;
        if (value & DR7_GD) return -EPERM;
        for (let f = DR7_RW_LEN_SHIFT; f < 32; f += 2) if (((value >>> f) & 3) === 2) return -EPERM;
      }
      break;
    default:
      return -EINVAL;
  }
  v.debugreg[reg] = value;
  if (hv.current === v) hv.cpu.dr[reg] = value;
  return 0;
}

export function doGetDebugreg(v: Vcpu, reg: number): number {
  if (reg > 7) return -EINVAL;
  return v.debugreg[reg] | 0;
}
