/**
 * dom0_op (hypercall 7), MAR (semantics.md §8.2, abi.md §2.11): the privileged administrative
 * interface. do_dom0_op checks privilege (-EPERM), copies the 80-byte op (-EFAULT), checks the
 * interface version (-EACCES), then runs one small function per command; commands with
 * outputs copy the whole op back. Dom0's toolstack reaches this through the same dispatch as
 * any guest (Hypervisor.hypercallAs), so IS_PRIV is checked for real.
 */

import {
  ACM_DEFAULT_SSID_JUL,
  CONSOLE_RING_CLEAR,
  CPUMAP_RUNANYWHERE,
  DOM0_INTERFACE_VERSION,
  DOM0_INTERFACE_VERSION_JUL,
  DOM0_TBUF_GET_INFO,
  Dom0Cmd,
  Dom0CmdJul,
  Dom0CmdXen20,
  Dom0CreateDomain,
  Dom0DomainOnly,
  Dom0GetDomainInfo,
  Dom0GetDomainInfoJul,
  Dom0GetMemList,
  Dom0GetPageFrameInfo,
  Dom0GetPageFrameInfo2,
  Dom0GetTbufs,
  Dom0GetVcpuContextJul,
  Dom0IoplXen20,
  Dom0IoportPermission,
  Dom0Msr,
  Dom0Op,
  Dom0OpJul,
  Dom0PcidevAccess,
  Dom0PhysInfo,
  Dom0PhysInfoJul,
  Dom0PinCpuDomain,
  Dom0PinCpuDomainJul,
  Dom0ReadConsole,
  Dom0ReadConsoleJul,
  Dom0SchedId,
  Dom0SetDomainInfo,
  Dom0SetDomainInfoJul,
  Dom0SetDomainInitialMem,
  Dom0SetDomainMaxMem,
  Dom0SetDomainVmAssistXen20,
  Dom0SetTime,
  Dom0ShadowControl,
  Dom0TbufControlJul,
  DomFlags,
  FullExecutionContext,
  GETPAGEFRAMEINFO2_MAX,
  PageFrameType,
  VcpuGuestContextJul,
} from "../public/dom0_ops.js";
import { E2BIG, EACCES, EFAULT, EINVAL, ENOSYS, ENXIO, EPERM, ESRCH } from "../public/errno.js";
import { SchedAdjdomCmd, SchedCtlCmd, SchedInfo } from "../public/sched_ctl.js";
import { Trc } from "../public/trace.js";
import { DomId, MAX_VIRT_CPUS, Shutdown, VirqMar } from "../public/xen.js";
import { julContextFromMar, julUnionFromMar, marContextFromJul, marUnionFromJul } from "./dom0_compat.js";
import { type Domain, DomainState, type Vcpu } from "./domain.js";
import {
  createDomainOp,
  domainKill,
  getVcpuContext,
  isHostDomain,
  memList,
  setInfoGuest,
  setInitialMemory,
} from "./domain_ctl.js";
import { sendGuestVirq } from "./event_channel.js";
import {
  PGT_count_mask,
  PGT_l1_page_table,
  PGT_l2_page_table,
  PGT_pinned,
  PGT_type_mask,
} from "./frame_table.js";
import type { Hypervisor } from "./hypervisor.js";
import { grantPciAccess } from "./physdev.js";
import { SCHED_BVT, SCHED_RROBIN } from "./sched_policy.js";
import { updateDomainTime } from "./schedule.js";
import { shadowControl } from "./shadow.js";
import { doVmAssist } from "./version.js";

const MSR_TSC = 0x10;
/** Frames checked per batch by GETPAGEFRAMEINFO2. */
const PFINFO2_BATCH = 128;
const IOBMP_BYTES = 8192;

/** One decoded request: the op bytes and accessors into its union. */
class Op {
  readonly dv: DataView;
  /**
   * @param bytes the request in the core's (MAR) form
   * @param writeBack copies the (possibly updated) request back to the caller in its own
   *   revision's layout; false on a fault
   */
  constructor(
    readonly bytes: Uint8Array,
    readonly writeBack: () => boolean,
  ) {
    this.dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  get cmd(): number {
    return this.dv.getUint32(Dom0Op.cmd, true);
  }
  u32(off: number): number {
    return this.dv.getUint32(Dom0Op.u + off, true);
  }
  s32(off: number): number {
    return this.dv.getInt32(Dom0Op.u + off, true);
  }
  u16(off: number): number {
    return this.dv.getUint16(Dom0Op.u + off, true);
  }
  u64(off: number): number {
    return this.u32(off) + this.u32(off + 4) * 2 ** 32;
  }
  set32(off: number, value: number): void {
    this.dv.setUint32(Dom0Op.u + off, value >>> 0, true);
  }
  set16(off: number, value: number): void {
    this.dv.setUint16(Dom0Op.u + off, value & 0xffff, true);
  }
  set64(off: number, value: number): void {
    this.set32(off, value % 2 ** 32);
    this.set32(off + 4, Math.floor(value / 2 ** 32));
  }
}

/** do_dom0_op(op*). */
export function doDom0Op(hv: Hypervisor, v: Vcpu, opVa: number): number {
  if (!v.domain.privileged) return -EPERM;
  // The caller's revision decides the envelope and layouts (dom0_compat.ts for July).
  if (v.domain.abi.dom0Op.SIZE !== Dom0Op.SIZE) return doDom0OpJul(hv, v, opVa);
  const bytes = hv.guest.copyFrom(opVa, Dom0Op.SIZE);
  if (bytes === null) return -EFAULT;
  const op = new Op(bytes, () => hv.guest.copyTo(opVa, bytes));
  if (op.dv.getUint32(Dom0Op.interface_version, true) !== DOM0_INTERFACE_VERSION) return -EACCES;
  return traced(hv, op.cmd, op.bytes.subarray(Dom0Op.u), () => dispatch(hv, v, op));
}

/** Runs one command between its trace records (the union's first four words). */
function traced(hv: Hypervisor, cmd: number, union: Uint8Array, run: () => number): number {
  const t = hv.tbufs;
  if (t === null || t === undefined || !t.reading) return run();
  const dv = new DataView(union.buffer, union.byteOffset, union.byteLength);
  const w = (i: number): number => dv.getUint32(i * 4, true);
  const cpu = hv.sched.cur.id;
  t.record(hv, cpu, (Trc.DOM0OP_ENTER_BASE + cmd) >>> 0, 0, w(0), w(1), w(2), w(3));
  const rc = run();
  t.record(hv, cpu, (Trc.DOM0OP_LEAVE_BASE + cmd) >>> 0, rc, w(0), w(1), w(2), w(3));
  return rc;
}

/** Writes the whole op back (the commands with outputs); false on a fault. */
function copyBack(_hv: Hypervisor, _opVa: number, op: Op): boolean {
  return op.writeBack();
}

function dispatch(hv: Hypervisor, v: Vcpu, op: Op, opVa = 0): number {
  const dom = (off = 0): Domain | undefined => hv.domains.get(op.u16(off));
  switch (op.cmd) {
    case Dom0Cmd.GETMEMLIST:
      return getMemList(hv, op, opVa);
    case Dom0Cmd.SCHEDCTL:
      return schedCtl(hv, op, opVa);
    case Dom0Cmd.ADJUSTDOM:
      return adjustDom(hv, op, opVa);
    case Dom0Cmd.CREATEDOMAIN: {
      const C = Dom0CreateDomain;
      const d = createDomainOp(hv, op.u32(C.memory_kb), op.u32(C.cpu), op.u16(C.domain));
      if (typeof d === "number") return d;
      op.set16(C.domain, d.id);
      return copyBack(hv, opVa, op) ? 0 : -EFAULT;
    }
    case Dom0Cmd.DESTROYDOMAIN: {
      const d = dom(Dom0DomainOnly.domain);
      if (d === undefined) return -ESRCH;
      if (d === v.domain) return -EINVAL;
      domainKill(hv, d);
      return 0;
    }
    case Dom0Cmd.PAUSEDOMAIN: {
      const d = dom(Dom0DomainOnly.domain);
      if (d === undefined) return -ESRCH;
      if (d === v.domain) return -EINVAL;
      // A host domain (dom0's TypeScript) is never on a CPU: pausing it changes nothing.
      if (!isHostDomain(d)) hv.pauseDomain(d);
      return 0;
    }
    case Dom0Cmd.UNPAUSEDOMAIN: {
      const d = dom(Dom0DomainOnly.domain);
      if (d === undefined) return -ESRCH;
      if (d === v.domain || !d.constructed) return -EINVAL;
      if (!isHostDomain(d) && d.state !== DomainState.Dying) hv.unpauseDomain(d);
      return 0;
    }
    case Dom0Cmd.GETDOMAININFO:
      return getDomainInfo(hv, v, op, opVa);
    case Dom0Cmd.SETDOMAININFO: {
      // Also Xen 2.0's BUILDDOMAIN (13): the same shape with a zero pad where exec_domain is.
      const S = Dom0SetDomainInfo;
      const d = dom(S.domain);
      if (d === undefined) return -ESRCH;
      return setDomainInfo(
        hv,
        d,
        op.u16(S.exec_domain),
        hv.guest.copyFrom(op.u32(S.ctxt), FullExecutionContext.SIZE),
      );
    }
    case Dom0Cmd.MSR:
      return msr(hv, op, opVa);
    case Dom0Cmd.SETTIME:
      return setTime(hv, v, op);
    case Dom0Cmd.GETPAGEFRAMEINFO:
      return getPageFrameInfo(hv, op, opVa);
    case Dom0Cmd.READCONSOLE: {
      const R = Dom0ReadConsole;
      const data = hv.consoleRing.read(op.u32(R.count));
      if (data.length > 0 && !hv.guest.copyTo(op.u32(R.str), data)) return -EFAULT;
      if (op.u32(R.cmd) & CONSOLE_RING_CLEAR) hv.consoleRing.clear();
      return data.length;
    }
    case Dom0Cmd.PINCPUDOMAIN:
      return pinCpuDomain(hv, v, op);
    case Dom0Cmd.GETTBUFS: {
      const t = hv.tbufs;
      if (t === null) return -ENOSYS;
      t.reading = true;
      op.set32(Dom0GetTbufs.mach_addr, t.bufMa[0]);
      op.set32(Dom0GetTbufs.size, t.bytesPerCpu);
      copyBack(hv, opVa, op);
      return 0;
    }
    case Dom0Cmd.PHYSINFO: {
      const P = Dom0PhysInfo;
      op.set32(P.ht_per_core, 1);
      op.set32(P.cores, hv.sched.pcpus.length);
      op.set32(P.cpu_khz, Math.floor(hv.clock.tscHz / 1000));
      // max_page: one past the last RAM frame (a machine reaching 4 GiB stops at its device window).
      op.set32(P.total_pages, hv.frames.ramEnd);
      op.set32(P.free_pages, hv.mem.freeFrames);
      copyBack(hv, opVa, op);
      return 0;
    }
    case Dom0Cmd.PCIDEV_ACCESS: {
      const P = Dom0PcidevAccess;
      return grantPciAccess(
        hv,
        dom(P.domain),
        op.u32(P.bus),
        op.u32(P.dev),
        op.u32(P.func),
        op.u32(P.enable),
      );
    }
    case Dom0Cmd.SCHED_ID:
      op.set32(Dom0SchedId.sched_id, hv.sched.policy.id);
      copyBack(hv, opVa, op);
      return 0;
    case Dom0Cmd.SHADOW_CONTROL:
      return shadowControlOp(hv, v, op, opVa);
    case Dom0Cmd.SETDOMAININITIALMEM: {
      const d = dom(Dom0SetDomainInitialMem.domain);
      if (d === undefined) return -ESRCH;
      if (d.constructed) return -EINVAL;
      return setInitialMemory(hv, d, op.u32(Dom0SetDomainInitialMem.initial_memkb));
    }
    case Dom0Cmd.SETDOMAINMAXMEM: {
      const d = dom(Dom0SetDomainMaxMem.domain);
      if (d === undefined) return -ESRCH;
      // [QUIRK] fixed as in Xen of April 2005: KiB >> 2 (MAR took the value as bytes).
      d.maxPages = op.u32(Dom0SetDomainMaxMem.max_memkb) >>> 2;
      return 0;
    }
    case Dom0Cmd.GETPAGEFRAMEINFO2:
      return getPageFrameInfo2(hv, op);
    case Dom0Cmd.ADD_MEMTYPE:
    case Dom0Cmd.DEL_MEMTYPE:
      // mtrr_add_page / mtrr_del_page on a machine without MTRRs.
      return -ENXIO;
    case Dom0Cmd.READ_MEMTYPE:
      // reg < num_var_ranges, and there are none.
      return -EINVAL;
    case Dom0Cmd.MICROCODE:
      // No microcode loader for the simulated CPU (microcode_update refuses it).
      return -EINVAL;
    case Dom0Cmd.IOPORT_PERMISSION:
      return ioportPermission(hv, op);
    case Dom0CmdXen20.IOPL: {
      // Xen 2.0: only DOMID_SELF, the caller's own virtual IOPL.
      if (op.u16(Dom0IoplXen20.domain) !== DomId.SELF) return -EINVAL;
      v.iopl = op.u32(Dom0IoplXen20.iopl) & 3;
      return 0;
    }
    case Dom0CmdXen20.SETDOMAINVMASSIST: {
      const S = Dom0SetDomainVmAssistXen20;
      const d = dom(S.domain);
      if (d === undefined) return -ESRCH;
      // vm_assist(d, cmd, type), its result ignored as Xen 2.0 did.
      doVmAssist(d.vcpus[0], op.u32(S.cmd), op.u32(S.type));
      return 0;
    }
    default:
      // DEBUG (16) and PERFCCONTROL (34) are declared but not built; unknown commands too.
      return -ENOSYS;
  }
}

// ---------------------------------------------------------------------------------------------

/** SETDOMAININFO's checks and load; ctx (MAR form) is null when it could not be copied in. */
function setDomainInfo(hv: Hypervisor, d: Domain, vcpu: number, ctx: Uint8Array | null): number {
  if (vcpu >= MAX_VIRT_CPUS || d.vcpus[vcpu] === undefined) return -EINVAL;
  if (d.constructed && (!d.paused || isHostDomain(d))) return -EINVAL;
  if (ctx === null) return -EFAULT;
  return setInfoGuest(hv, d, vcpu, ctx);
}

// ---------------------------------------------------------------------------------------------
// July 2005 callers (abi.md §2.11.1, §2.11.5): a 428-byte op, version 0xAAAA100C. Commands
// that only moved fields run through the MAR handler in translation (dom0_compat.ts); the
// ones whose meaning changed are decoded here.

function doDom0OpJul(hv: Hypervisor, v: Vcpu, opVa: number): number {
  const E = Dom0OpJul;
  const jul = hv.guest.copyFrom(opVa, E.SIZE);
  if (jul === null) return -EFAULT;
  const jdv = new DataView(jul.buffer, jul.byteOffset, jul.byteLength);
  if (jdv.getUint32(E.interface_version, true) !== DOM0_INTERFACE_VERSION_JUL) return -EACCES;
  const cmd = jdv.getUint32(E.cmd, true);
  const ju = jul.subarray(E.u);
  const writeBack = (): boolean => hv.guest.copyTo(opVa, jul);
  const special = julSpecial(hv, v, cmd, new DataView(ju.buffer, ju.byteOffset, ju.byteLength), writeBack);
  if (special !== null) return traced(hv, cmd, ju, special);
  const mu = marUnionFromJul(cmd, ju, Dom0Op.SIZE - Dom0Op.u);
  if (mu === null) return -ENOSYS;
  const mar = new Uint8Array(Dom0Op.SIZE);
  mar.set(mu, Dom0Op.u);
  new DataView(mar.buffer).setUint32(Dom0Op.cmd, cmd, true);
  const op = new Op(mar, () => {
    julUnionFromMar(cmd, mar.subarray(Dom0Op.u), ju);
    return writeBack();
  });
  return traced(hv, cmd, ju, () => dispatch(hv, v, op));
}

/** The JUL commands decoded here (null for the table-translated ones). */
function julSpecial(
  hv: Hypervisor,
  caller: Vcpu,
  cmd: number,
  u: DataView,
  writeBack: () => boolean,
): (() => number) | null {
  switch (cmd) {
    case Dom0CmdJul.GETDOMAININFO:
      return () => getDomainInfoJul(hv, caller, u, writeBack);
    case Dom0CmdJul.SETDOMAININFO:
      return () => {
        const S = Dom0SetDomainInfoJul;
        const d = hv.domains.get(u.getUint16(S.domain, true));
        if (d === undefined) return -ESRCH;
        const ctx = hv.guest.copyFrom(u.getUint32(S.ctxt, true), VcpuGuestContextJul.SIZE);
        return setDomainInfo(hv, d, u.getUint16(S.vcpu, true), ctx === null ? null : marContextFromJul(ctx));
      };
    case Dom0CmdJul.GETVCPUCONTEXT:
      return () => {
        const G = Dom0GetVcpuContextJul;
        const d = hv.domains.get(u.getUint16(G.domain, true));
        if (d === undefined) return -ESRCH;
        const want = u.getUint16(G.vcpu, true);
        if (want >= MAX_VIRT_CPUS) return -EINVAL;
        // The first vcpu from the requested one.
        const v = d.vcpus.slice(want).find((x) => x !== undefined);
        if (v === undefined) return -ESRCH;
        const t = Math.round(v.cpuTimeNs);
        u.setUint32(G.cpu_time, t % 2 ** 32, true);
        u.setUint32(G.cpu_time + 4, Math.floor(t / 2 ** 32), true);
        let rc = 0;
        const ctxt = u.getUint32(G.ctxt, true);
        if (ctxt !== 0 && !hv.guest.copyTo(ctxt, julContextFromMar(getVcpuContext(hv, v)))) rc = -EINVAL;
        if (!writeBack()) rc = -EINVAL;
        return rc;
      };
    case Dom0CmdJul.READCONSOLE:
      return () => {
        // read_console_ring: the newest bytes end at buffer + count; buffer/count come back
        // as the used part.
        const R = Dom0ReadConsoleJul;
        const buf = u.getUint32(R.buffer, true);
        const count = u.getUint32(R.count, true);
        const data = hv.consoleRing.read(count);
        const start = (buf + count - data.length) >>> 0;
        if (data.length > 0 && !hv.guest.copyTo(start, data)) return -EFAULT;
        if (u.getUint32(R.clear, true) !== 0) hv.consoleRing.clear();
        u.setUint32(R.buffer, start, true);
        u.setUint32(R.count, data.length, true);
        writeBack();
        return 0;
      };
    case Dom0CmdJul.PINCPUDOMAIN:
      return () => {
        const P = Dom0PinCpuDomainJul;
        const d = hv.domains.get(u.getUint16(P.domain, true));
        if (d === undefined) return -ESRCH;
        const vid = u.getUint16(P.vcpu, true);
        const v = vid < MAX_VIRT_CPUS ? d.vcpus[vid] : undefined;
        if (v === undefined || v === caller) return -EINVAL;
        const raw = hv.guest.copyFrom(u.getUint32(P.cpumap, true), 8);
        if (raw === null) return -EFAULT;
        const map = new DataView(raw.buffer).getBigUint64(0, true);
        if (map === CPUMAP_RUNANYWHERE) {
          v.cpuPinned = false;
          return 0;
        }
        let bit = 0;
        while (bit < 63 && ((map >> BigInt(bit)) & 1n) === 0n) bit++;
        const target = bit % hv.sched.pcpus.length;
        if (target !== v.processor) {
          if (isHostDomain(d)) v.processor = target;
          else hv.sched.migrate(v, target);
        }
        v.cpuPinned = true;
        return 0;
      };
    case Dom0CmdJul.PHYSINFO:
      return () => {
        const P = Dom0PhysInfoJul;
        u.setUint32(P.threads_per_core, 1, true);
        u.setUint32(P.cores_per_socket, hv.sched.pcpus.length, true);
        u.setUint32(P.sockets_per_node, 1, true);
        u.setUint32(P.nr_nodes, 1, true);
        u.setUint32(P.cpu_khz, Math.floor(hv.clock.tscHz / 1000), true);
        u.setUint32(P.total_pages, hv.frames.ramEnd, true);
        u.setUint32(P.free_pages, hv.mem.freeFrames, true);
        writeBack();
        return 0;
      };
    case Dom0CmdJul.TBUFCONTROL:
      return () => {
        const T = Dom0TbufControlJul;
        const t = hv.tbufs;
        if (t === null || t === undefined) return -ENOSYS;
        t.reading = true;
        // Setting the CPU / event masks is accepted and has no effect (every event is traced).
        if (u.getUint8(T.op) === DOM0_TBUF_GET_INFO) {
          u.setUint32(T.mach_addr, t.bufMa[0], true);
          u.setUint32(T.size, t.bytesPerCpu, true);
        }
        writeBack();
        return 0;
      };
    default:
      return null;
  }
}

/**
 * getdomaininfo, JUL: the whole domain (PAUSED/BLOCKED only if every vcpu is, RUNNING if any
 * is; a crash is SHUTDOWN with reason crash; no CPU field), every vcpu's CPU and cpumap.
 */
function getDomainInfoJul(hv: Hypervisor, caller: Vcpu, u: DataView, writeBack: () => boolean): number {
  const G = Dom0GetDomainInfoJul;
  const want = u.getUint16(G.domain, true);
  let d: Domain | undefined;
  for (const e of hv.domains.values()) if (e.id >= want && (d === undefined || e.id < d.id)) d = e;
  if (d === undefined) return -ESRCH;
  u.setUint16(G.domain, d.id, true);
  let flags = DomFlags.PAUSED | DomFlags.BLOCKED;
  let cpuTime = 0;
  let n = 0;
  for (let i = 0; i < MAX_VIRT_CPUS; i++) {
    u.setInt32(G.vcpu_to_cpu + i * 4, -1, true);
    u.setBigUint64(G.cpumap + i * 8, 0n, true);
  }
  for (const v of d.vcpus) {
    if (v === undefined) continue;
    const f = domainFlags(hv, caller, d, v);
    if ((f & DomFlags.PAUSED) === 0) flags &= ~DomFlags.PAUSED;
    if ((f & DomFlags.BLOCKED) === 0) flags &= ~DomFlags.BLOCKED;
    flags |= f & DomFlags.RUNNING;
    u.setInt32(G.vcpu_to_cpu + v.id * 4, v.processor, true);
    u.setBigUint64(G.cpumap + v.id * 8, v.cpuPinned ? 1n << BigInt(v.processor) : CPUMAP_RUNANYWHERE, true);
    cpuTime += v.cpuTimeNs;
    n++;
  }
  let reason = d.shutdownCode;
  if (d.state === DomainState.Dying) flags |= DomFlags.DYING;
  if (d.state === DomainState.Shutdown) flags |= DomFlags.SHUTDOWN;
  if (d.state === DomainState.Crashed) {
    flags |= DomFlags.SHUTDOWN;
    reason = Shutdown.crash;
  }
  flags |= (reason & DomFlags.SHUTDOWNMASK) << DomFlags.SHUTDOWNSHIFT;
  u.setUint32(G.flags, flags >>> 0, true);
  u.setUint32(G.tot_pages, d.totPages, true);
  u.setUint32(G.max_pages, d.maxPages, true);
  u.setUint32(G.shared_info_frame, d.sharedInfoMfn, true);
  const t = Math.round(cpuTime);
  u.setUint32(G.cpu_time, t % 2 ** 32, true);
  u.setUint32(G.cpu_time + 4, Math.floor(t / 2 ** 32), true);
  u.setUint32(G.n_vcpu, n, true);
  u.setUint32(G.ssidref, ACM_DEFAULT_SSID_JUL, true);
  return writeBack() ? 0 : -EINVAL;
}

function getMemList(hv: Hypervisor, op: Op, opVa: number): number {
  const G = Dom0GetMemList;
  const d = hv.domains.get(op.u16(G.domain));
  if (d === undefined) return -EINVAL;
  const max = op.u32(G.max_pfns);
  const buf = op.u32(G.buffer);
  let n = 0;
  let rc = 0;
  for (const mfn of memList(d)) {
    if (n >= max) break;
    if (!hv.guest.write32((buf + n * 4) >>> 0, mfn)) {
      rc = -EFAULT;
      break;
    }
    n++;
  }
  op.set32(G.num_pfns, n);
  copyBack(hv, opVa, op);
  return rc;
}

function schedCtl(hv: Hypervisor, op: Op, opVa: number): number {
  const S = SchedCtlCmd;
  const policy = hv.sched.policy;
  if (op.u32(S.sched_id) !== policy.id) return -EINVAL;
  const put = op.u32(S.direction) === SchedInfo.PUT;
  if (policy.id === SCHED_BVT) {
    // ctx_allow in ns, not validated (semantics.md §7.2); any direction but PUT reads.
    if (put) policy.ctxAllowNs = op.u32(S.ctx_allow);
    else op.set32(S.ctx_allow, policy.ctxAllowNs);
  } else if (policy.id === SCHED_RROBIN) {
    const rr = policy as unknown as { sliceNs: number };
    if (put) rr.sliceNs = Math.max(1, op.u64(S.rrobin_slice));
    else op.set64(S.rrobin_slice, rr.sliceNs);
  }
  hv.tbufs?.record(hv, hv.sched.cur.id, Trc.SCHED_CTL);
  copyBack(hv, opVa, op);
  return 0;
}

function adjustDom(hv: Hypervisor, op: Op, opVa: number): number {
  const A = SchedAdjdomCmd;
  if (op.u32(A.sched_id) !== hv.sched.policy.id) return -EINVAL;
  const dir = op.u32(A.direction);
  if (dir !== SchedInfo.PUT && dir !== SchedInfo.GET) return -EINVAL;
  const d = hv.domains.get(op.u16(A.domain));
  if (d === undefined) return -ESRCH;
  hv.tbufs?.record(hv, hv.sched.cur.id, Trc.SCHED_ADJDOM, d.id);
  if (hv.sched.policy.id === SCHED_BVT) {
    const p = d.bvt;
    if (dir === SchedInfo.PUT) {
      const mcu = op.u32(A.mcu_adv);
      const warpl = op.u64(A.warpl);
      const warpu = op.u64(A.warpu);
      const negative = (off: number): boolean => op.s32(off + 4) < 0;
      // [QUIRK] kept: a rejected PUT (mcu_adv 0, negative warpl/warpu) still returns 0.
      if (mcu !== 0 && !negative(A.warpl) && !negative(A.warpu)) {
        p.mcuAdvance = mcu;
        p.warpback = op.u32(A.warpback) !== 0;
        p.warp = p.warpback;
        p.warpValue = op.s32(A.warpvalue);
        p.warplNs = warpl * 1e6;
        p.warpuNs = warpu * 1e6;
        p.unwarpEndNs = -1;
        if (!p.warpback) p.warpEndNs = -1;
      }
    } else {
      // [QUIRK] kept (Q8): PUT took ms, GET returns ns.
      op.set32(A.mcu_adv, p.mcuAdvance);
      op.set32(A.warpback, p.warpback ? 1 : 0);
      op.set32(A.warpvalue, p.warpValue);
      op.set64(A.warpl, p.warplNs);
      op.set64(A.warpu, p.warpuNs);
    }
  }
  copyBack(hv, opVa, op);
  return 0;
}

/** getdomaininfo: the first domain with id >= the requested one (tools iterate). */
function getDomainInfo(hv: Hypervisor, caller: Vcpu, op: Op, opVa: number): number {
  const G = Dom0GetDomainInfo;
  const want = op.u16(G.domain);
  let d: Domain | undefined;
  for (const e of hv.domains.values()) if (e.id >= want && (d === undefined || e.id < d.id)) d = e;
  if (d === undefined) return -ESRCH;
  const vid = op.u16(G.exec_domain);
  const v = vid < MAX_VIRT_CPUS ? d.vcpus[vid] : undefined;
  if (v === undefined) return -EINVAL;
  op.set16(G.domain, d.id);
  op.set32(G.flags, domainFlags(hv, caller, d, v));
  op.set32(G.tot_pages, d.totPages);
  op.set32(G.max_pages, d.maxPages);
  op.set32(G.shared_info_frame, d.sharedInfoMfn);
  op.set64(G.cpu_time, Math.round(v.cpuTimeNs));
  const ctxt = op.u32(G.ctxt);
  if (ctxt !== 0 && !hv.guest.copyTo(ctxt, getVcpuContext(hv, v))) return -EINVAL;
  return copyBack(hv, opVa, op) ? 0 : -EINVAL;
}

/** DOMFLAGS_*: dying/crashed/shutdown, that vcpu's PAUSED/BLOCKED/RUNNING, CPU, reason. */
export function domainFlags(hv: Hypervisor, caller: Vcpu, d: Domain, v: Vcpu): number {
  let f = 0;
  if (d.state === DomainState.Dying) f |= DomFlags.DYING;
  if (d.state === DomainState.Crashed) f |= DomFlags.CRASHED;
  if (d.state === DomainState.Shutdown) f |= DomFlags.SHUTDOWN;
  if (isHostDomain(d)) {
    // dom0's vcpu runs TypeScript: running while it makes this call, else waiting for events.
    f |= v === caller ? DomFlags.RUNNING : DomFlags.BLOCKED;
  } else {
    if (d.paused) f |= DomFlags.PAUSED;
    if (v.blocked) f |= DomFlags.BLOCKED;
    if (hv.sched.pcpus[v.processor]?.curr === v) f |= DomFlags.RUNNING;
  }
  f |= (v.processor & DomFlags.CPUMASK) << DomFlags.CPUSHIFT;
  f |= (d.shutdownCode & DomFlags.SHUTDOWNMASK) << DomFlags.SHUTDOWNSHIFT;
  return f >>> 0;
}

function msr(hv: Hypervisor, op: Op, opVa: number): number {
  const M = Dom0Msr;
  const mask = op.u32(M.cpu_mask);
  const index = op.u32(M.msr);
  const cpu = hv.cpu;
  for (let c = 0; c < hv.sched.pcpus.length; c++) {
    if (((mask >>> c) & 1) === 0) continue;
    // The simulated CPUs share one MSR file; the TSC is the hypervisor's clock (read-only).
    if (op.u32(M.write)) {
      if (index !== MSR_TSC && cpu.msrs.has(index))
        cpu.msrs.set(index, (BigInt(op.u32(M.in2)) << 32n) | BigInt(op.u32(M.in1)));
    } else {
      const value = index === MSR_TSC ? cpu.readTsc() : (cpu.msrs.get(index) ?? 0n);
      op.set32(M.out1, Number(value & 0xffffffffn));
      op.set32(M.out2, Number((value >> 32n) & 0xffffffffn));
    }
  }
  copyBack(hv, opVa, op);
  return 0;
}

/** SETTIME (semantics.md §7.4): wall clock reads (secs, usecs) at system_time. */
function setTime(hv: Hypervisor, v: Vcpu, op: Op): number {
  const S = Dom0SetTime;
  const tick = hv.sched.cur.lastTickCycles;
  const stimeIrq = hv.clock.ns(tick);
  const wcUs = op.u32(S.secs) * 1e6 + op.u32(S.usecs) + Math.trunc((stimeIrq - op.u64(S.system_time)) / 1000);
  hv.wallClockOffsetUs = wcUs - hv.clock.bootEpochSeconds * 1e6 - Math.floor(stimeIrq / 1000);
  updateDomainTime(hv, v, tick);
  sendGuestVirq(hv, v, VirqMar.TIMER);
  return 0;
}

/** The n<<28 type a frame reports (L1TAB/L2TAB), or NOTAB. */
function frameType(typeInfo: number): number {
  switch (typeInfo & PGT_type_mask) {
    case PGT_l1_page_table:
      return PageFrameType.L1TAB;
    case PGT_l2_page_table:
      return PageFrameType.L2TAB;
    default:
      return PageFrameType.NOTAB;
  }
}

function getPageFrameInfo(hv: Hypervisor, op: Op, opVa: number): number {
  const G = Dom0GetPageFrameInfo;
  const mfn = op.u32(G.pfn);
  const d = hv.domains.get(op.u16(G.domain));
  if (mfn >= hv.frames.nrFrames || d === undefined) return -EINVAL;
  if (hv.frames.owner[mfn] !== d.id || hv.frames.count[mfn] === 0) return -EINVAL;
  const ti = hv.frames.typeInfo[mfn];
  op.set32(G.type, (ti & PGT_count_mask) !== 0 ? frameType(ti) : PageFrameType.NOTAB);
  return copyBack(hv, opVa, op) ? 0 : -EINVAL;
}

function getPageFrameInfo2(hv: Hypervisor, op: Op): number {
  const G = Dom0GetPageFrameInfo2;
  const num = op.u32(G.num);
  if (num > GETPAGEFRAMEINFO2_MAX) return -E2BIG;
  const d = hv.domains.get(op.u16(G.domain));
  if (d === undefined) return -ESRCH;
  const array = op.u32(G.array);
  for (let done = 0; done < num; done += PFINFO2_BATCH) {
    const n = Math.min(PFINFO2_BATCH, num - done);
    const va = (array + done * 4) >>> 0;
    const raw = hv.guest.copyFrom(va, n * 4);
    if (raw === null) return -EINVAL;
    const dv = new DataView(raw.buffer);
    for (let i = 0; i < n; i++) {
      const mfn = dv.getUint32(i * 4, true);
      const ft = hv.frames;
      let word: number;
      if (mfn < ft.nrFrames && ft.owner[mfn] === d.id && ft.count[mfn] !== 0) {
        word = mfn | frameType(ft.typeInfo[mfn]);
        if (ft.typeInfo[mfn] & PGT_pinned) word |= PageFrameType.LPINTAB;
      } else {
        word = mfn | PageFrameType.XTAB;
      }
      dv.setUint32(i * 4, word >>> 0, true);
    }
    if (!hv.guest.copyTo(va, raw)) return -EINVAL;
  }
  return 0;
}

function pinCpuDomain(hv: Hypervisor, caller: Vcpu, op: Op): number {
  const P = Dom0PinCpuDomain;
  const d = hv.domains.get(op.u16(P.domain));
  if (d === undefined) return -ESRCH;
  const v = d.vcpus[op.u16(P.exec_domain)];
  if (v === undefined) return -ESRCH;
  if (v === caller) return -EINVAL;
  const cpu = op.s32(P.cpu);
  if (cpu === -1) {
    v.cpuPinned = false;
    return 0;
  }
  const target = (cpu >>> 0) % hv.sched.pcpus.length;
  if (target !== v.processor) {
    if (isHostDomain(d)) v.processor = target;
    else hv.sched.migrate(v, target);
  }
  v.cpuPinned = true;
  return 0;
}

function shadowControlOp(hv: Hypervisor, caller: Vcpu, op: Op, opVa: number): number {
  const S = Dom0ShadowControl;
  const id = op.u16(S.domain);
  if (id === caller.domain.id) return -EINVAL;
  const r = shadowControl(
    hv,
    hv.domains.get(id),
    op.u32(S.op),
    op.u32(S.dirty_bitmap),
    op.u32(S.pages),
    (va, b) => hv.guest.copyTo(va, b),
  );
  if (r.rc === -ESRCH) return r.rc;
  op.set32(S.pages, r.pages);
  op.set32(S.fault_count, r.stats.fault);
  op.set32(S.dirty_count, r.stats.dirty);
  op.set32(S.dirty_net_count, r.stats.dirtyNet);
  op.set32(S.dirty_block_count, r.stats.dirtyBlock);
  copyBack(hv, opVa, op);
  return r.rc;
}

function ioportPermission(hv: Hypervisor, op: Op): number {
  const I = Dom0IoportPermission;
  const first = op.u16(I.first_port);
  const nr = op.u16(I.nr_ports);
  if (first + nr >= 65536) return -EINVAL;
  const d = hv.domains.get(op.u16(I.domain));
  if (d === undefined) return -ESRCH;
  // [QUIRK] fixed as in Xen of December 2005: a missing mask is created (all ports denied).
  d.iobmpMask ??= new Uint8Array(IOBMP_BYTES).fill(0xff);
  const mask = d.iobmpMask;
  const allow = op.u16(I.allow_access) !== 0;
  for (let p = first; p < first + nr; p++) {
    if (allow) mask[p >>> 3] &= ~(1 << (p & 7));
    else mask[p >>> 3] |= 1 << (p & 7);
  }
  return 0;
}
