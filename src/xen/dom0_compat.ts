/**
 * dom0_op of the July-2005 interface (abi.md §2.11.1, §2.11.5 "JUL dom0 structs"), translated at
 * the boundary into the March form the core's handler runs (dom0_ops.ts), and its outputs back
 * — the same per-domain "compat" idea as compat.ts, for the caller's (dom0's) revision.
 *
 * Most commands only moved fields (natural alignment instead of packing): a table of
 * [JUL offset, MAR offset, size] per command converts both ways. The rest differ in meaning and
 * are decoded here: CREATEDOMAIN (no memory), GETDOMAININFO (all vcpus, no context),
 * SETDOMAININFO / GETVCPUCONTEXT (vcpu_guest_context_t), READCONSOLE, PINCPUDOMAIN (a cpumap),
 * PHYSINFO and TBUFCONTROL. The translation is pure byte shuffling, so the toolstack reuses it
 * to speak July when dom0 is a July domain.
 */
import {
  CREATEDOMAIN_ANY_CPU,
  Dom0AddMemtype,
  Dom0AddMemtypeJul,
  Dom0Cmd,
  Dom0CmdJul,
  Dom0CreateDomain,
  Dom0CreateDomainJul,
  Dom0Debug,
  Dom0DelMemtype,
  Dom0DomainOnly,
  Dom0DomainOnlyJul,
  Dom0GetMemList,
  Dom0GetMemListJul,
  Dom0GetPageFrameInfo,
  Dom0GetPageFrameInfo2,
  Dom0GetPageFrameInfo2Jul,
  Dom0GetPageFrameInfoJul,
  Dom0IoportPermission,
  Dom0Microcode,
  Dom0MicrocodeJul,
  Dom0Msr,
  Dom0PerfcControl,
  Dom0PerfcControlJul,
  Dom0ReadMemtype,
  Dom0ReadMemtypeJul,
  Dom0SchedId,
  Dom0SetDomainMaxMem,
  Dom0SetDomainMaxMemJul,
  Dom0SetTime,
  Dom0ShadowControl,
  Dom0ShadowControlJul,
  EcfFlags,
  FullExecutionContext,
  VcpuGuestContextJul,
} from "../public/dom0_ops.js";
import { SchedAdjdomCmd, SchedAdjdomCmdJul, SchedCtlCmd, SchedCtlCmdJul } from "../public/sched_ctl.js";

/** One moved field: its offset in the JUL union, in the MAR union, and its size. */
type Field = readonly [jul: number, mar: number, size: 2 | 4 | 8];

const same = (size: 2 | 4 | 8, ...offs: number[]): Field[] => offs.map((o) => [o, o, size] as const);

/** The fields named in `sizes`, at their offsets in the JUL struct and in the MAR struct. */
function moved<K extends string>(
  jul: Readonly<Record<NoInfer<K>, number>>,
  mar: Readonly<Record<NoInfer<K>, number>>,
  sizes: Readonly<Record<K, 2 | 4 | 8>>,
): Field[] {
  return (Object.keys(sizes) as K[]).map((k) => [jul[k], mar[k], sizes[k]] as const);
}

/**
 * Commands whose JUL struct is the MAR struct with fields moved. CREATEDOMAIN's domain is here
 * too (its other MAR inputs are filled in by `marRequest`).
 */
export const JUL_FIELD_MAP: ReadonlyMap<number, readonly Field[]> = new Map<number, readonly Field[]>([
  [
    Dom0CmdJul.GETMEMLIST,
    moved(Dom0GetMemListJul, Dom0GetMemList, { domain: 2, max_pfns: 4, buffer: 4, num_pfns: 4 }),
  ],
  [Dom0CmdJul.SCHEDCTL, moved(SchedCtlCmdJul, SchedCtlCmd, { sched_id: 4, direction: 4, ctx_allow: 4 })],
  [
    Dom0CmdJul.ADJUSTDOM,
    moved(SchedAdjdomCmdJul, SchedAdjdomCmd, {
      sched_id: 4,
      direction: 4,
      domain: 2,
      mcu_adv: 4,
      warpback: 4,
      warpvalue: 4,
      warpl: 8,
      warpu: 8,
    }),
  ],
  [Dom0CmdJul.CREATEDOMAIN, moved(Dom0CreateDomainJul, Dom0CreateDomain, { domain: 2 })],
  [Dom0CmdJul.DESTROYDOMAIN, moved(Dom0DomainOnlyJul, Dom0DomainOnly, { domain: 2 })],
  [Dom0CmdJul.PAUSEDOMAIN, moved(Dom0DomainOnlyJul, Dom0DomainOnly, { domain: 2 })],
  [Dom0CmdJul.UNPAUSEDOMAIN, moved(Dom0DomainOnlyJul, Dom0DomainOnly, { domain: 2 })],
  [
    Dom0CmdJul.MSR,
    same(
      4,
      Dom0Msr.write,
      Dom0Msr.cpu_mask,
      Dom0Msr.msr,
      Dom0Msr.in1,
      Dom0Msr.in2,
      Dom0Msr.out1,
      Dom0Msr.out2,
    ),
  ],
  [Dom0CmdJul.DEBUG, [[0, Dom0Debug.domain, 2]]],
  [
    Dom0CmdJul.SETTIME,
    [...same(4, Dom0SetTime.secs, Dom0SetTime.usecs), ...same(8, Dom0SetTime.system_time)],
  ],
  [
    Dom0CmdJul.GETPAGEFRAMEINFO,
    moved(Dom0GetPageFrameInfoJul, Dom0GetPageFrameInfo, { pfn: 4, domain: 2, type: 4 }),
  ],
  [Dom0CmdJul.SCHED_ID, same(4, Dom0SchedId.sched_id)],
  [
    Dom0CmdJul.SHADOW_CONTROL,
    moved(Dom0ShadowControlJul, Dom0ShadowControl, {
      domain: 2,
      op: 4,
      dirty_bitmap: 4,
      pages: 4,
      fault_count: 4,
      dirty_count: 4,
      dirty_net_count: 4,
      dirty_block_count: 4,
    }),
  ],
  [
    Dom0CmdJul.SETDOMAINMAXMEM,
    moved(Dom0SetDomainMaxMemJul, Dom0SetDomainMaxMem, { domain: 2, max_memkb: 4 }),
  ],
  [
    Dom0CmdJul.GETPAGEFRAMEINFO2,
    moved(Dom0GetPageFrameInfo2Jul, Dom0GetPageFrameInfo2, { domain: 2, num: 4, array: 4 }),
  ],
  [
    Dom0CmdJul.ADD_MEMTYPE,
    moved(Dom0AddMemtypeJul, Dom0AddMemtype, { pfn: 4, nr_pfns: 4, type: 4, handle: 4, reg: 4 }),
  ],
  [Dom0CmdJul.DEL_MEMTYPE, same(4, Dom0DelMemtype.handle, Dom0DelMemtype.reg)],
  [
    Dom0CmdJul.READ_MEMTYPE,
    moved(Dom0ReadMemtypeJul, Dom0ReadMemtype, { reg: 4, pfn: 4, nr_pfns: 4, type: 4 }),
  ],
  [Dom0CmdJul.PERFCCONTROL, moved(Dom0PerfcControlJul, Dom0PerfcControl, { op: 4, nr_counters: 4, desc: 4 })],
  [Dom0CmdJul.MICROCODE, moved(Dom0MicrocodeJul, Dom0Microcode, { data: 4, length: 4 })],
  [
    Dom0CmdJul.IOPORT_PERMISSION,
    same(
      2,
      Dom0IoportPermission.domain,
      Dom0IoportPermission.first_port,
      Dom0IoportPermission.nr_ports,
      Dom0IoportPermission.allow_access,
    ),
  ],
]);

function copyField(from: DataView, fromOff: number, to: DataView, toOff: number, size: number): void {
  if (size === 2) to.setUint16(toOff, from.getUint16(fromOff, true), true);
  else if (size === 4) to.setUint32(toOff, from.getUint32(fromOff, true), true);
  else {
    to.setUint32(toOff, from.getUint32(fromOff, true), true);
    to.setUint32(toOff + 4, from.getUint32(fromOff + 4, true), true);
  }
}

const view = (b: Uint8Array): DataView => new DataView(b.buffer, b.byteOffset, b.byteLength);

/**
 * The MAR-form union (Dom0Op.SIZE - 8 bytes) of a JUL union of a table-mapped command, or null
 * when the command has no entry in JUL_FIELD_MAP. MAR inputs JUL lacks get JUL's meaning
 * (CREATEDOMAIN: no memory, automatic CPU placement).
 */
export function marUnionFromJul(cmd: number, jul: Uint8Array, marSize: number): Uint8Array | null {
  const fields = JUL_FIELD_MAP.get(cmd);
  if (fields === undefined) return null;
  const mar = new Uint8Array(marSize);
  const j = view(jul);
  const m = view(mar);
  for (const [jo, mo, size] of fields) copyField(j, jo, m, mo, size);
  if (cmd === Dom0Cmd.CREATEDOMAIN) {
    m.setUint32(Dom0CreateDomain.memory_kb, 0, true);
    m.setUint32(Dom0CreateDomain.cpu, CREATEDOMAIN_ANY_CPU, true);
  }
  return mar;
}

/** Writes a MAR-form union's mapped fields into a JUL union (in place). */
export function julUnionFromMar(cmd: number, mar: Uint8Array, jul: Uint8Array): void {
  const fields = JUL_FIELD_MAP.get(cmd);
  if (fields === undefined) return;
  const j = view(jul);
  const m = view(mar);
  for (const [jo, mo, size] of fields) copyField(m, mo, j, jo, size);
}

// ---------------------------------------------------------------------------------------------
// vcpu_guest_context_t (JUL, 2800 bytes) <-> full_execution_context_t (MAR, 2520 bytes)

/** The fields both contexts share, JUL offset -> MAR offset, sizes in bytes. */
const CTX_FIELDS: ReadonlyArray<readonly [number, number, number]> = (() => {
  const J = VcpuGuestContextJul;
  const F = FullExecutionContext;
  return [
    [J.flags, F.flags, 4],
    [J.user_regs, F.cpu_ctxt, 68],
    [J.trap_ctxt, F.trap_ctxt, 2048],
    [J.ldt_base, F.ldt_base, 4],
    [J.ldt_ents, F.ldt_ents, 4],
    [J.gdt_frames, F.gdt_frames, 64],
    [J.gdt_ents, F.gdt_ents, 4],
    [J.kernel_ss, F.kernel_ss, 4],
    [J.kernel_sp, F.kernel_esp, 4],
    [J.ctrlreg + 3 * 4, F.pt_base, 4],
    [J.debugreg, F.debugreg, 32],
    [J.event_callback_cs, F.event_callback_cs, 4],
    [J.event_callback_eip, F.event_callback_eip, 4],
    [J.failsafe_callback_cs, F.failsafe_callback_cs, 4],
    [J.failsafe_callback_eip, F.failsafe_callback_eip, 4],
    [J.vm_assist, F.vm_assist, 4],
    // The FPU image: MAR keeps a 256-byte prefix of JUL's 512 (quirk Q3).
    [J.fpu_ctxt, F.fpu_ctxt, F.FPU_CTXT_SIZE],
  ] as const;
})();

/**
 * A JUL vcpu_guest_context_t as a MAR full_execution_context_t: ctrlreg[3] is pt_base, there
 * is no fast trap (0), the flags keep their values (VGCF_* = ECF_*).
 */
export function marContextFromJul(jul: Uint8Array): Uint8Array {
  const mar = new Uint8Array(FullExecutionContext.SIZE);
  for (const [jo, mo, n] of CTX_FIELDS) mar.set(jul.subarray(jo, jo + n), mo);
  const flags = view(mar).getUint32(FullExecutionContext.flags, true);
  view(mar).setUint32(
    FullExecutionContext.flags,
    flags & (EcfFlags.I387_VALID | EcfFlags.VMX_GUEST | EcfFlags.IN_KERNEL),
    true,
  );
  return mar;
}

/** A MAR full_execution_context_t as a JUL vcpu_guest_context_t. */
export function julContextFromMar(mar: Uint8Array): Uint8Array {
  const jul = new Uint8Array(VcpuGuestContextJul.SIZE);
  for (const [jo, mo, n] of CTX_FIELDS) jul.set(mar.subarray(mo, mo + n), jo);
  return jul;
}
