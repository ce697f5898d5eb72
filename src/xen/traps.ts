/**
 * Guest exceptions, bounce frames and callbacks (semantics.md §4): what happens when the CPU
 * exits with a fault or software interrupt, how Xen builds the frame on the guest's ring-1
 * stack, and the event upcall on every return to the guest.
 */
import { CPU_FAULT, type Cpu } from "../cpu/cpu.js";
import { CS, DS, EAX, ES, ESP, FS, GS, NT, RF, SS, TF, VM } from "../cpu/regs.js";
import { HYPERCALL_VECTOR, SELECTOR_TI, TI_DPL_MASK, TI_IF } from "../public/arch_x86_32.js";
import { HypercallJul, HypercallMar, NR_HYPERCALLS, SharedInfo, VcpuInfo } from "../public/xen.js";
import { gdtFaultSelector, handleLdtFault, inShadowLdt, shadowLdtForSelector } from "./descriptor_tables.js";
import {
  BOUNCE_CS,
  BOUNCE_SS,
  checkBounceSegment,
  checkedSegment,
  checkGuestSegment,
  decodeDescriptor,
  loadGuestSegment,
  readDescriptor,
} from "./descriptors.js";
import type { Vcpu } from "./domain.js";
import { emulatePrivilegedOp } from "./emulate.js";
import { doHypercall } from "./hypercall.js";
import type { Hypervisor } from "./hypervisor.js";
import { InvariantError } from "./invariants.js";
import { ptwrBeforeGuestStackWrite, ptwrMayTakeFault, ptwrPageFault, ptwrStackWriteFlushes } from "./ptwr.js";
import { gpfEmulate4gb } from "./seg_fixup.js";

// Exception vectors as Xen names them.
const TRAP_debug = 1;
const TRAP_int3 = 3;
const TRAP_overflow = 4;
const TRAP_no_device = 7;
const TRAP_double_fault = 8;
const TRAP_no_segment = 11;
const TRAP_gp_fault = 13;
const TRAP_page_fault = 14;
const TRAP_machine_check = 18;
const NMI = 2;
const DR6 = 6;
/** DR6 B0-B3: which breakpoint conditions were met. */
const DR6_B0_B3 = 0xf;

/** Exceptions whose bounce frame carries the error code (10-14, 17). */
function pushesErrorCode(vector: number): boolean {
  return (vector >= 10 && vector <= 14) || vector === 17;
}

/** bounce()'s frame, reused: the exit path allocates nothing. */
const frameWords = new Int32Array(7);

/**
 * create_bounce_frame (semantics.md §4.2): pushes [cr2] [error] EIP CS EFLAGS [ESP SS] on the
 * ring-1 stack (the kernel stack from stack_switch when ring 3 was interrupted) and enters
 * handlerCs:handlerEip. A fault while writing the frame crashes the domain; returns false then.
 * handlerEip is int32 (the Vcpu's handler fields are stored so), as the CPU keeps EIP: a kernel
 * address at 0xc0000000 and up is then a small integer, where as unsigned it would be a heap
 * number allocated at this call (every upcall of an idle domain; test/scale-alloc).
 */
export function bounce(
  hv: Hypervisor,
  v: Vcpu,
  handlerCs: number,
  handlerEip: number,
  errorCode: number,
  cr2: number | null,
): boolean {
  const cpu = hv.cpu;
  const fromRing = cpu.cpl;
  const eip = cpu.eip;
  const cs = cpu.segSel[CS];
  const eflags = cpu.getFlags();
  const ss = cpu.segSel[SS];
  const esp = cpu.regs[ESP];
  const abi = v.domain.abi;
  // JUL create_bounce_frame: a handler at EIP 0 is fatal (abi.md §2.2.3).
  if (abi.bounceToZeroCrashes && handlerEip === 0)
    return crashOnBounce(hv, v, "bounce to a handler at EIP 0");
  // JUL: the CS slot's bits 16..23 carry the upcall mask as it was before this bounce.
  const csSlot = abi.bounceSavesUpcallMask ? (cs | (upcallMask(hv, v) << 16)) >>> 0 : cs;
  ptwrBeforeGuestStackWrite(hv, v, fromRing === 1 ? esp : v.kernelEsp);
  try {
    if (fromRing !== 1) {
      cpu.setCpl(1);
      shadowLdtForSelector(hv, v, v.kernelSs);
      if (!loadBounceSegment(hv, SS, v.kernelSs, false, true))
        return crashOnBounce(hv, v, "bad kernel stack selector");
      cpu.regs[ESP] = v.kernelEsp;
    }
    // The frame's words in push order, pushed at once (Cpu.pushWords: the same writes and faults).
    const f = frameWords;
    let n = 0;
    if (fromRing !== 1) {
      f[n++] = ss;
      f[n++] = esp;
    }
    f[n++] = eflags;
    f[n++] = csSlot;
    f[n++] = eip;
    if (errorCode >= 0) f[n++] = errorCode;
    if (cr2 !== null) f[n++] = cr2;
    cpu.pushWords(f, n);
  } catch (e) {
    if (e !== CPU_FAULT) throw e;
    return crashOnBounce(hv, v, "fault while writing a bounce frame");
  }
  shadowLdtForSelector(hv, v, handlerCs);
  if (!loadBounceSegment(hv, CS, handlerCs, true, false))
    return crashOnBounce(hv, v, "bad handler code selector");
  cpu.eip = handlerEip;
  cpu.setFlags(eflags & ~(TF | NT | RF | VM));
  return true;
}

/**
 * bounce()'s load of the handler's CS or the kernel's SS at ring 1. A GDT selector's
 * descriptor is read through the CPU's TLB where it holds the page, as bounceInRun reads it
 * (readWords: the tables lie in Xen's per-domain area, whose mappings only Xen changes, flushing
 * the TLB when it does): every upcall's CS check walked the page tables (~240 host
 * instructions); and the checks themselves are the memo's for the same words
 * (checkBounceSegment). An LDT selector (its shadow page just mapped) reads through the walk.
 */
function loadBounceSegment(hv: Hypervisor, seg: number, sel: number, isCs: boolean, isSs: boolean): boolean {
  const cpu = hv.cpu;
  if ((sel & SELECTOR_TI) !== 0 || (sel & ~3) === 0) return loadGuestSegment(cpu, seg, sel, 1, isCs, isSs);
  const ok = checkBounceSegment(cpu, sel, isSs ? BOUNCE_SS : BOUNCE_CS);
  if (hv.checkInvariantsAfterHypercall) walkAgrees(cpu, sel, isCs, isSs, ok);
  if (ok) cpu.loadSegmentCache(seg, sel, checkedSegment[0], checkedSegment[1], checkedSegment[2]);
  return ok;
}

function crashOnBounce(hv: Hypervisor, v: Vcpu, why: string): false {
  hv.crashDomain(v.domain, `${why} (kernel stack ${hex(v.kernelSs)}:${hex(v.kernelEsp)})`);
  return false;
}

function hex(n: number): string {
  return `0x${(n >>> 0).toString(16)}`;
}

/** do_trap: bounce through the guest's virtual IDT entry, honouring its IF flag. */
export function reflectTrap(
  hv: Hypervisor,
  v: Vcpu,
  vector: number,
  errorCode: number,
  cr2: number | null,
  useIf = true,
): void {
  // A debugger sees a fault the guest cannot handle before it is bounced to EIP 0.
  if (v.trapAddress[vector] === 0 && !hv.cpu.exitSoft && hv.debugHook?.unhandledFault(v, vector)) return;
  if (!bounce(hv, v, v.trapCs[vector], v.trapAddress[vector], errorCode, cr2)) return;
  if (useIf && v.trapFlags[vector] & TI_IF) setUpcallMask(hv, v, 1);
}

function vcpuInfo(v: Vcpu): number {
  return v.domain.sharedInfoMfn * 4096 + SharedInfo.vcpu_data + v.id * VcpuInfo.SIZE;
}

export function setUpcallMask(hv: Hypervisor, v: Vcpu, mask: number): void {
  hv.cpu.physWrite8(vcpuInfo(v) + VcpuInfo.evtchn_upcall_mask, mask);
}

export function upcallMask(hv: Hypervisor, v: Vcpu): number {
  return hv.cpu.physRead8(vcpuInfo(v) + VcpuInfo.evtchn_upcall_mask);
}

export function upcallPending(hv: Hypervisor, v: Vcpu): number {
  return hv.cpu.physRead8(vcpuInfo(v) + VcpuInfo.evtchn_upcall_pending);
}

/**
 * test_all_events (semantics.md §4.3), on every return to the guest: while an upcall is
 * pending and not masked, bounce to the event callback and mask further upcalls.
 */
export function deliverEvents(hv: Hypervisor, v: Vcpu): void {
  if (v.domain !== hv.current?.domain || !v.domain.runnable) return;
  if (upcallMask(hv, v) !== 0 || upcallPending(hv, v) === 0) return;
  if (!bounce(hv, v, v.eventCs, v.eventEip, -1, null)) return;
  setUpcallMask(hv, v, 1);
}

/** Handles an Exception exit of the CPU for vcpu v (semantics.md §4.1, §4.5, §4.6). */
export function handleException(hv: Hypervisor, v: Vcpu): void {
  const cpu = hv.cpu;
  const vector = cpu.exitVector;
  if (cpu.exitSoft) {
    softwareInterrupt(hv, v, cpu, vector);
    return;
  }
  switch (vector) {
    case NMI:
    case TRAP_double_fault:
    case TRAP_machine_check:
      hv.crashDomain(v.domain, `fatal exception ${vector} at ${hex(cpu.eip)}`);
      return;
    case TRAP_page_fault:
      // Writable page tables come first, as in Xen's do_page_fault (semantics.md §2).
      if (ptwrPageFault(hv, v)) return;
      // The CPU reading an LDT descriptor not yet shadowed (semantics.md §3.4).
      if (handleLdtFault(hv, v)) return;
      {
        const sel = gdtFaultSelector(hv, v);
        if (sel >= 0) {
          generalProtection(hv, v, sel);
          return;
        }
      }
      v.guestCr2 = cpu.exitCr2;
      reflectTrap(hv, v, vector, cpu.exitErrorCode, cpu.exitCr2);
      return;
    case TRAP_gp_fault:
      generalProtection(hv, v, cpu.exitErrorCode);
      return;
    case TRAP_no_device:
      // #NM: the real TS is clear (lazy FPU switching is the host's); bounce when the guest
      // asked for TS (fpu_taskswitch), without the IF flag (semantics.md §4.7).
      if (v.guestTs) {
        v.guestTs = false;
        cpu.cr0 &= ~8;
        reflectTrap(hv, v, vector, -1, null, false);
      } else {
        cpu.cr0 &= ~8;
      }
      return;
    case TRAP_debug: {
      // do_debug (semantics.md §4.1): a B0-B3 hit while the vcpu's DR7 is 0 is spurious
      // (clear DR7, go on); else DR6 is saved for get_debugreg(6) and #DB bounced, IF ignored.
      const dr6 = cpu.dr[DR6] >>> 0;
      if ((dr6 & DR6_B0_B3) !== 0 && v.debugreg[7] === 0) {
        cpu.dr[7] = 0;
        return;
      }
      v.debugreg[6] = dr6;
      reflectTrap(hv, v, vector, -1, null, false);
      return;
    }
    default:
      reflectTrap(hv, v, vector, pushesErrorCode(vector) ? cpu.exitErrorCode : -1, null);
  }
}

/** int n / int3 / into as they reach Xen's IDT (host mode: the CPU did not check a gate). */
function softwareInterrupt(hv: Hypervisor, v: Vcpu, cpu: Cpu, vector: number): void {
  // Xen's gates: 0x82 has DPL 1 (the hypercall), 3 and 4 DPL 3, everything else DPL 0.
  if (vector === HYPERCALL_VECTOR && cpu.cpl <= 1) {
    const nr = cpu.regs[EAX] & (NR_HYPERCALLS - 1);
    doHypercall(hv, v);
    if (RELOADS_SEGMENTS[nr] !== 0) reloadDataSegments(hv, v);
    return;
  }
  if (vector === TRAP_int3 || vector === TRAP_overflow) {
    reflectTrap(hv, v, vector, -1, null);
    return;
  }
  if (vector === v.fastTrap && v.fastTrap !== 0 && v.fastTrapDpl >= cpu.cpl) {
    // The fast trap gate goes straight to the guest handler, events not masked, as the gate
    // set_fast_trap installed (not the trap table's entry now).
    if (fastTrapTargetOk(hv, v, cpu)) bounce(hv, v, v.fastTrapCs, v.fastTrapEip, -1, null);
    return;
  }
  // Through a DPL-0 gate the CPU raises #GP((vector << 3) | 2) at the int instruction.
  cpu.eip = (cpu.eip - 2) | 0;
  generalProtection(hv, v, (vector << 3) | 2);
}

/**
 * The checks the CPU makes on the fast trap gate's target before it pushes anything (INT n
 * through a trap gate): the selector must name a present code segment of DPL <= CPL and the
 * offset must lie within its limit. The selector passed set_trap_table's check, but its
 * descriptor may have changed since, and no address is checked: without this, bounce() would
 * crash the domain where the CPU raises #GP/#NP(selector), and push a frame before an offset
 * beyond the limit faults. The fault is the int's, delivered through Xen's handlers as for any
 * int; returns false after it.
 */
function fastTrapTargetOk(hv: Hypervisor, v: Vcpu, cpu: Cpu): boolean {
  const sel = v.fastTrapCs;
  shadowLdtForSelector(hv, v, sel);
  const d = (sel & ~3) === 0 ? null : readDescriptor(cpu, sel);
  const target = d === null ? null : decodeDescriptor(d.lo, d.hi);
  const access = target === null ? 0 : target.attr;
  let vector = -1;
  let error = sel & 0xfffc;
  if (target === null || (access & 0x18) !== 0x18 || ((access >>> 5) & 3) > cpu.cpl) vector = TRAP_gp_fault;
  else if ((access & 0x80) === 0) vector = TRAP_no_segment;
  else if (v.fastTrapEip >>> 0 > target.limit) [vector, error] = [TRAP_gp_fault, 0];
  if (vector < 0) return true;
  cpu.eip = (cpu.eip - 2) | 0;
  if (vector === TRAP_gp_fault) generalProtection(hv, v, error);
  else reflectTrap(hv, v, vector, error, null);
  return false;
}

/** bounceInRun's frame, reused. */
const inRunWords = new Int32Array(7);

/**
 * The CPU's softIntHook: an int n through the fast trap gate, delivered inside the CPU's run
 * as the hardware delivers it through the gate set_fast_trap wrote (no Xen code runs under
 * real Xen, so no exit: no exit cost, no event check, no scheduler turn). Only where
 * softwareInterrupt's path would succeed (bounceInRun); else false, and the int exits.
 */
export function fastTrapInRun(hv: Hypervisor, vector: number): boolean {
  const v = hv.current;
  if (v === null || vector !== v.fastTrap || vector === 0 || vector === HYPERCALL_VECTOR) return false;
  if (v.fastTrapDpl < hv.cpu.cpl || !v.domain.runnable) return false;
  if (!bounceInRun(hv, v, v.fastTrapCs, v.fastTrapEip, -1, 0, false, true)) return false;
  hv.fastTrapsInRun++;
  return true;
}

/**
 * The CPU's faultHook: a #PF that Xen only propagates to the guest (not the writable-page-table
 * assist's, not in the shadow-LDT or GDT window, a handler to go to, no debugger), bounced
 * inside the CPU's run where handleException's path would succeed (bounceInRun): cr2 kept for
 * the guest, events masked for an interrupt gate, then the exit charged and the run ended where
 * the run loop's next turn would not come straight back here (Hypervisor.exitInRun).
 */
export function pageFaultInRun(hv: Hypervisor): boolean {
  const v = hv.current;
  const cpu = hv.cpu;
  if (v === null || cpu.exitVector !== TRAP_page_fault || cpu.exitSoft) return false;
  if (!v.domain.runnable || hv.debugHook !== null || cpu.debugArmed()) return false;
  if (ptwrMayTakeFault(hv, v) || inShadowLdt(v, cpu.exitCr2) || gdtFaultSelector(hv, v) >= 0) return false;
  if (v.trapAddress[TRAP_page_fault] === 0) return false;
  const cr2 = cpu.exitCr2;
  const cs = v.trapCs[TRAP_page_fault];
  if (!bounceInRun(hv, v, cs, v.trapAddress[TRAP_page_fault], cpu.exitErrorCode, cr2, true, false))
    return false;
  v.guestCr2 = cr2;
  if (v.trapFlags[TRAP_page_fault] & TI_IF) setUpcallMask(hv, v, 1);
  hv.pageFaultsInRun++;
  hv.exitInRun(v);
  return true;
}

/**
 * bounce() inside the CPU's run, only when every step of it would succeed: the handler's CS
 * (a GDT selector; for a gate also DPL <= CPL and the offset within its limit, the CPU's
 * checks: fastTrapTargetOk), the kernel stack's selector when the ring changes (a GDT one),
 * no writable-page-table window the frame would flush, no debugger or single step, and the
 * frame in one page the guest's own tables map writable at ring 1 within SS's limit
 * (Cpu.pushWordsAtOnce, walked as the first push would walk it); then bounce()'s frame and
 * state. The descriptors are read through the CPU's TLB where it holds their page (readWords).
 * Anything else (a bad gate or stack, an LDT selector to shadow) returns false having changed
 * nothing guest-visible the exit path does not change the same way (accessed bits of the
 * walks; CPL, SS, ESP and CR2 put back), and the exit takes that path.
 */
function bounceInRun(
  hv: Hypervisor,
  v: Vcpu,
  handlerCs: number,
  handlerEip: number,
  errorCode: number,
  cr2: number,
  hasCr2: boolean,
  gate: boolean,
): boolean {
  const cpu = hv.cpu;
  const abi = v.domain.abi;
  if (cpu.debugArmed() || (abi.bounceToZeroCrashes && handlerEip === 0)) return false;
  const fromRing = cpu.cpl;
  if ((handlerCs & ~3) === 0 || (handlerCs & SELECTOR_TI) !== 0) return false;
  const csOk = checkBounceSegment(cpu, handlerCs, BOUNCE_CS);
  if (hv.checkInvariantsAfterHypercall) walkAgrees(cpu, handlerCs, true, false, csOk);
  if (!csOk) return false;
  const csBase = checkedSegment[0];
  const csLimit = checkedSegment[1];
  const csAttr = checkedSegment[2];
  if (gate && (((csAttr >>> 5) & 3) > fromRing || handlerEip >>> 0 > csLimit >>> 0)) return false;
  const eip = cpu.eip;
  const eflags = cpu.getFlags();
  const cs = cpu.segSel[CS];
  const esp = cpu.regs[ESP];
  const csSlot = abi.bounceSavesUpcallMask ? (cs | (upcallMask(hv, v) << 16)) >>> 0 : cs;
  const f = inRunWords;
  let n = 0;
  const cr2Was = cpu.cr2;
  if (fromRing !== 1) {
    const ss = v.kernelSs;
    if ((ss & ~3) === 0 || (ss & SELECTOR_TI) !== 0) return false;
    const ssOk = checkBounceSegment(cpu, ss, BOUNCE_SS);
    if (hv.checkInvariantsAfterHypercall) walkAgrees(cpu, ss, false, true, ssOk);
    if (!ssOk) return false;
    if (ptwrStackWriteFlushes(hv, v, v.kernelEsp)) return false;
    f[n++] = cpu.segSel[SS];
    f[n++] = esp;
    // The switch to the kernel stack, undone below if the frame cannot be stored at once.
    const oldSs = cpu.segSel[SS];
    const oldBase = cpu.segBase[SS];
    const oldLimit = cpu.segLimit[SS];
    const oldAttr = cpu.segAttr[SS];
    cpu.setCpl(1);
    cpu.loadSegmentCache(SS, ss, checkedSegment[0], checkedSegment[1], checkedSegment[2]);
    cpu.regs[ESP] = v.kernelEsp;
    n = frameTail(f, n, eflags, csSlot, eip, errorCode, cr2, hasCr2);
    if (!cpu.pushWordsAtOnce(f, n, true)) {
      cpu.cr2 = cr2Was;
      cpu.regs[ESP] = esp;
      cpu.loadSegmentCache(SS, oldSs, oldBase, oldLimit, oldAttr);
      cpu.setCpl(fromRing);
      return false;
    }
  } else {
    if (ptwrStackWriteFlushes(hv, v, esp)) return false;
    n = frameTail(f, n, eflags, csSlot, eip, errorCode, cr2, hasCr2);
    if (!cpu.pushWordsAtOnce(f, n, true)) {
      cpu.cr2 = cr2Was;
      return false;
    }
  }
  cpu.loadSegmentCache(CS, handlerCs, csBase, csLimit, csAttr);
  cpu.eip = handlerEip;
  cpu.setFlags(eflags & ~(TF | NT | RF | VM));
  return true;
}

/**
 * With the invariant checks on: bounceInRun's descriptor, read through the CPU's TLB (ok, and
 * checkedSegment), is the one the walk of the tables reads (a per-domain mapping changed
 * without a TLB flush would differ).
 */
function walkAgrees(cpu: Cpu, sel: number, isCs: boolean, isSs: boolean, ok: boolean): void {
  const c = checkedSegment;
  const base = c[0];
  const limit = c[1];
  const attr = c[2];
  const walked = checkGuestSegment(cpu, sel, 1, isCs, isSs, false);
  if (walked !== ok || (ok && (c[0] !== base || c[1] !== limit || c[2] !== attr)))
    throw new InvariantError(`descriptor ${hex(sel)}: the TLB's read and the walk's differ`);
}

/** bounce()'s words after [SS ESP]: EFLAGS, CS, EIP, [error code], [cr2]; the count. */
function frameTail(
  f: Int32Array,
  n: number,
  eflags: number,
  cs: number,
  eip: number,
  errorCode: number,
  cr2: number,
  hasCr2: boolean,
): number {
  f[n++] = eflags;
  f[n++] = cs;
  f[n++] = eip;
  if (errorCode >= 0) f[n++] = errorCode;
  if (hasCr2) f[n++] = cr2;
  return n;
}

/** do_general_protection (semantics.md §4.5). */
function generalProtection(hv: Hypervisor, v: Vcpu, errorCode: number): void {
  const cpu = hv.cpu;
  if ((errorCode & 3) === 2) {
    const vector = errorCode >>> 3;
    if ((v.trapFlags[vector] & TI_DPL_MASK) >= cpu.cpl) {
      cpu.eip = (cpu.eip + 2) | 0;
      reflectTrap(hv, v, vector, -1, null);
      return;
    }
  } else if (errorCode === 0 && (emulatePrivilegedOp(hv, v) || gpfEmulate4gb(hv, v))) {
    return;
  }
  reflectTrap(hv, v, TRAP_gp_fault, errorCode, null);
}

/** The failsafe callback frame: DS ES FS GS, then the usual frame; data segments nulled. */
export function failsafeBounce(hv: Hypervisor, v: Vcpu): void {
  const cpu = hv.cpu;
  const sels = [cpu.segSel[GS], cpu.segSel[FS], cpu.segSel[ES], cpu.segSel[DS]];
  if (!bounce(hv, v, v.failsafeCs, v.failsafeEip, -1, null)) return;
  try {
    // The four selectors sit below EIP: push them after the frame (GS highest, DS lowest).
    for (const s of sels) cpu.push32(s);
  } catch (e) {
    if (e !== CPU_FAULT) throw e;
    hv.crashDomain(v.domain, "fault while writing the failsafe frame");
    return;
  }
  for (const seg of [DS, ES, FS, GS]) cpu.loadSegmentCache(seg, 0, 0, 0, 0);
}

/** Hypercalls that can change a descriptor under a loaded data selector (GDT, LDT, SET_LDT). */
const RELOADS_SEGMENTS = new Uint8Array(NR_HYPERCALLS);
for (const nr of [
  HypercallMar.set_gdt,
  HypercallMar.update_descriptor,
  HypercallMar.mmu_update,
  HypercallMar.multicall,
  HypercallJul.mmuext_op,
])
  RELOADS_SEGMENTS[nr] = 1;

/**
 * The return to the guest reloads DS, ES, FS and GS from their selectors (semantics.md §4.4).
 * The CPU caches descriptors, so this runs where a loaded one can have changed: after the
 * descriptor-table hypercalls and when a vcpu comes back onto the CPU. A not-yet-shadowed LDT
 * page is mapped first (Xen fixes that #PF and retries); any other failure is a failsafe
 * bounce with the old selectors in the frame. Returns false when it bounced (or crashed).
 */
export function reloadDataSegments(hv: Hypervisor, v: Vcpu): boolean {
  if (hv.current !== v || !v.domain.runnable) return true;
  const cpu = hv.cpu;
  for (const seg of [DS, ES, FS, GS]) {
    const sel = cpu.segSel[seg];
    shadowLdtForSelector(hv, v, sel);
    if (!loadGuestSegment(cpu, seg, sel, cpu.cpl, false, false)) {
      failsafeBounce(hv, v);
      return false;
    }
  }
  return true;
}
