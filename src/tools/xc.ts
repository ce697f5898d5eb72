/**
 * libxc for tsxen: typed wrappers over dom0_op (and the few other hypercalls the domain
 * builder needs), each issued by dom0 through the hypervisor's ordinary dispatch. A failure
 * throws XcError with the errno; `dom0Op` gives the raw return value for callers (and tests)
 * that want it. Layouts come from src/public (abi.md §2.11, §2.12).
 */

import { _PAGE_ACCESSED, _PAGE_DIRTY, _PAGE_PRESENT, _PAGE_RW } from "../public/arch_x86_32.js";
import {
  CONSOLE_RING_CLEAR,
  CONSOLE_RING_SIZE,
  CREATEDOMAIN_ANY_CPU,
  DOM0_INTERFACE_VERSION,
  DOM0_INTERFACE_VERSION_JUL,
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
  Dom0PinCpuDomain,
  Dom0ReadConsole,
  Dom0SchedId,
  Dom0SetDomainInfo,
  Dom0SetDomainInfoJul,
  Dom0SetDomainInitialMem,
  Dom0SetDomainMaxMem,
  Dom0SetDomainVmAssistXen20,
  Dom0SetTime,
  Dom0ShadowControl,
  DomFlags,
  ExecutionContext,
  FullExecutionContext,
  ShadowOp,
  VcpuGuestContextJul,
} from "../public/dom0_ops.js";
import { ESRCH } from "../public/errno.js";
import {
  EvtchnBindInterdomain,
  EvtchnClose,
  EvtchnOp,
  EvtchnOpMar,
  EvtchnSend,
} from "../public/event_channel.js";
import { SchedAdjdomCmd, SchedCtlCmd, SchedInfo } from "../public/sched_ctl.js";
import {
  DomId,
  HypercallMar,
  MemOp,
  MMUEXT_DOMID_SHIFT,
  MmuExtMar,
  MmuExtOpJul,
  MmuMar,
  Shutdown,
  TrapInfo,
} from "../public/xen.js";
import {
  julContextFromMar,
  julUnionFromMar,
  marContextFromJul,
  marUnionFromJul,
} from "../xen/dom0_compat.js";
import { type Dom0, XcError } from "./dom0.js";

export { XcError };

/** The union of one dom0_op: offsets are relative to it (abi.md §2.11.3). */
export interface OpFields {
  u32(off: number, value: number): void;
  u16(off: number, value: number): void;
  u64(off: number, value: number): void;
}

/** The op after the call: the union's words as the hypervisor left them. */
export interface OpResult {
  rc: number;
  u32(off: number): number;
  s32(off: number): number;
  u16(off: number): number;
  u64(off: number): number;
}

/**
 * Issues dom0_op `cmd` from dom0: the 80-byte op marshalled into dom0's buffers, `fill` sets
 * the union, `extra` may reserve more buffers first (returning nothing). Never throws for a
 * failing call: rc is the hypercall's return.
 */
export function dom0Op(
  dom0: Dom0,
  cmd: number,
  fill: (u: OpFields, alloc: (n: number, init?: Uint8Array) => number) => void = () => {},
  version = DOM0_INTERFACE_VERSION,
): OpResult {
  if (isJulDom0(dom0)) return dom0OpJul(dom0, cmd, fill, version);
  const s = dom0.scratch();
  const bytes = new Uint8Array(Dom0Op.SIZE);
  const dv = new DataView(bytes.buffer);
  dv.setUint32(Dom0Op.cmd, cmd >>> 0, true);
  dv.setUint32(Dom0Op.interface_version, version >>> 0, true);
  fill(fieldsAt(dv, Dom0Op.u), (n, init) => s.alloc(n, init));
  const va = s.alloc(Dom0Op.SIZE, bytes);
  const rc = dom0.hypercall(HypercallMar.dom0_op, va);
  return resultAt(rc, new DataView(dom0.read(va, Dom0Op.SIZE).buffer), Dom0Op.u);
}

/** Writers for a union that starts at `base` in dv. */
function fieldsAt(dv: DataView, base: number): OpFields {
  return {
    u32: (off, value) => dv.setUint32(base + off, value >>> 0, true),
    u16: (off, value) => dv.setUint16(base + off, value & 0xffff, true),
    u64: (off, value) => {
      dv.setUint32(base + off, (value % 2 ** 32) >>> 0, true);
      dv.setUint32(base + off + 4, Math.floor(value / 2 ** 32) >>> 0, true);
    },
  };
}

/** Readers for a union that starts at `base` in dv, with the call's rc. */
function resultAt(rc: number, dv: DataView, base: number): OpResult {
  return {
    rc,
    u32: (off) => dv.getUint32(base + off, true),
    s32: (off) => dv.getInt32(base + off, true),
    u16: (off) => dv.getUint16(base + off, true),
    u64: (off) => dv.getUint32(base + off, true) + dv.getUint32(base + off + 4, true) * 2 ** 32,
  };
}

/** Whether dom0 speaks the July-2005 dom0_op (428-byte op, natural alignment). */
export function isJulDom0(dom0: Dom0): boolean {
  return dom0.domain.abi.dom0Op.SIZE !== Dom0Op.SIZE;
}

/**
 * dom0Op for a July dom0: the caller fills the MAR form as usual; the fields are moved into the
 * JUL union (dom0_compat.ts, the same tables the hypervisor uses) and back. Commands whose
 * JUL struct differs in meaning have their own wrappers (`dom0OpJulRaw`).
 */
function dom0OpJul(
  dom0: Dom0,
  cmd: number,
  fill: (u: OpFields, alloc: (n: number, init?: Uint8Array) => number) => void,
  version: number,
): OpResult {
  let marUnion: Uint8Array = new Uint8Array(Dom0Op.SIZE - Dom0Op.u);
  const mdv = new DataView(marUnion.buffer);
  const r = dom0OpJulRaw(
    dom0,
    cmd,
    (_u, alloc) => fill(fieldsAt(mdv, 0), alloc),
    version === DOM0_INTERFACE_VERSION ? DOM0_INTERFACE_VERSION_JUL : version,
    (jul) => julUnionFromMar(cmd, marUnion, jul),
  );
  marUnion = marUnionFromJul(cmd, r.union, marUnion.length) ?? marUnion;
  return resultAt(r.rc, new DataView(marUnion.buffer), 0);
}

/** A July dom0_op with its union filled directly; returns rc and the union as left. */
export function dom0OpJulRaw(
  dom0: Dom0,
  cmd: number,
  fill: (u: DataView, alloc: (n: number, init?: Uint8Array) => number) => void,
  version = DOM0_INTERFACE_VERSION_JUL,
  encode?: (julUnion: Uint8Array) => void,
): { rc: number; union: Uint8Array; dv: DataView } {
  const E = Dom0OpJul;
  const s = dom0.scratch();
  const bytes = new Uint8Array(E.SIZE);
  const dv = new DataView(bytes.buffer);
  dv.setUint32(E.cmd, cmd >>> 0, true);
  dv.setUint32(E.interface_version, version >>> 0, true);
  fill(new DataView(bytes.buffer, E.u), (n, init) => s.alloc(n, init));
  encode?.(bytes.subarray(E.u));
  const va = s.alloc(E.SIZE, bytes);
  const rc = dom0.hypercall(dom0.nr("dom0_op"), va);
  const union = dom0.read(va, E.SIZE).subarray(E.u);
  return { rc, union, dv: new DataView(union.buffer, union.byteOffset, union.byteLength) };
}

function check(name: string, r: OpResult): OpResult {
  if (r.rc < 0) throw new XcError(name, -r.rc);
  return r;
}

/** dom0Op that throws XcError(name) on failure. */
function xcOp(dom0: Dom0, name: string, cmd: number, fill?: Parameters<typeof dom0Op>[2]): OpResult {
  return check(name, dom0Op(dom0, cmd, fill));
}

// ---------------------------------------------------------------------------------------------
// Domains

/** DOM0_CREATEDOMAIN: memory allocated now, the domain paused. Returns its id. */
export function xcDomainCreate(dom0: Dom0, opts: { memoryKb: number; cpu?: number; domid?: number }): number {
  const C = Dom0CreateDomain;
  const r = xcOp(dom0, "DOM0_CREATEDOMAIN", Dom0Cmd.CREATEDOMAIN, (u) => {
    u.u32(C.memory_kb, opts.memoryKb);
    u.u32(C.cpu, opts.cpu ?? CREATEDOMAIN_ANY_CPU);
    u.u16(C.domain, opts.domid ?? 0);
  });
  return r.u16(C.domain);
}

function domainOnly(dom0: Dom0, cmd: number, name: string, domid: number): void {
  xcOp(dom0, name, cmd, (u) => u.u16(Dom0DomainOnly.domain, domid));
}

export function xcDomainPause(dom0: Dom0, domid: number): void {
  domainOnly(dom0, Dom0Cmd.PAUSEDOMAIN, "DOM0_PAUSEDOMAIN", domid);
}

export function xcDomainUnpause(dom0: Dom0, domid: number): void {
  domainOnly(dom0, Dom0Cmd.UNPAUSEDOMAIN, "DOM0_UNPAUSEDOMAIN", domid);
}

export function xcDomainDestroy(dom0: Dom0, domid: number): void {
  domainOnly(dom0, Dom0Cmd.DESTROYDOMAIN, "DOM0_DESTROYDOMAIN", domid);
}

/** DOM0_GETMEMLIST: the domain's MFNs in page-list (p2m) order, at most maxPfns. */
export function xcGetMemList(dom0: Dom0, domid: number, maxPfns: number): number[] {
  const G = Dom0GetMemList;
  let buf = 0;
  const r = xcOp(dom0, "DOM0_GETMEMLIST", Dom0Cmd.GETMEMLIST, (u, alloc) => {
    buf = alloc(maxPfns * 4);
    u.u16(G.domain, domid);
    u.u32(G.max_pfns, maxPfns);
    u.u32(G.buffer, buf);
  });
  const n = r.u32(G.num_pfns);
  const raw = new DataView(dom0.read(buf, n * 4).buffer);
  return Array.from({ length: n }, (_, i) => raw.getUint32(i * 4, true));
}

/** A vcpu's registers and boot state (full_execution_context_t, abi.md §2.11.5). */
export interface VcpuContext {
  flags: number;
  regs: {
    eax: number;
    ebx: number;
    ecx: number;
    edx: number;
    esi: number;
    edi: number;
    ebp: number;
    esp: number;
  };
  eip: number;
  eflags: number;
  cs: number;
  ss: number;
  ds: number;
  es: number;
  fs: number;
  gs: number;
  /** Virtual IDT: 256 entries (vector i at index i). */
  traps: Array<{ vector: number; flags: number; cs: number; address: number }>;
  fastTrapIdx: number;
  ldtBase: number;
  ldtEnts: number;
  gdtFrames: number[];
  gdtEnts: number;
  kernelSs: number;
  kernelEsp: number;
  /** Machine address of the L2. */
  ptBase: number;
  debugreg: number[];
  eventCs: number;
  eventEip: number;
  failsafeCs: number;
  failsafeEip: number;
  vmAssist: number;
  /** The 256-byte FPU image (opaque). */
  fpu: Uint8Array;
}

const REG_OFFSETS = ["ebx", "ecx", "edx", "esi", "edi", "ebp", "eax"] as const;

export function encodeContext(c: VcpuContext): Uint8Array {
  const F = FullExecutionContext;
  const X = ExecutionContext;
  const out = new Uint8Array(F.SIZE);
  const dv = new DataView(out.buffer);
  const put = (off: number, v: number): void => dv.setUint32(off, v >>> 0, true);
  put(F.flags, c.flags);
  for (const r of REG_OFFSETS) put(F.cpu_ctxt + X[r], c.regs[r]);
  put(F.cpu_ctxt + X.esp, c.regs.esp);
  put(F.cpu_ctxt + X.eip, c.eip);
  put(F.cpu_ctxt + X.eflags, c.eflags);
  for (const s of ["cs", "ss", "ds", "es", "fs", "gs"] as const) put(F.cpu_ctxt + X[s], c[s]);
  out.set(c.fpu.subarray(0, F.FPU_CTXT_SIZE), F.fpu_ctxt);
  c.traps.slice(0, 256).forEach((t, i) => {
    const e = F.trap_ctxt + i * TrapInfo.SIZE;
    dv.setUint8(e + TrapInfo.vector, t.vector);
    dv.setUint8(e + TrapInfo.flags, t.flags);
    dv.setUint16(e + TrapInfo.cs, t.cs, true);
    put(e + TrapInfo.address, t.address);
  });
  put(F.fast_trap_idx, c.fastTrapIdx);
  put(F.ldt_base, c.ldtBase);
  put(F.ldt_ents, c.ldtEnts);
  for (const [i, f] of c.gdtFrames.slice(0, F.GDT_FRAMES).entries()) put(F.gdt_frames + i * 4, f);
  put(F.gdt_ents, c.gdtEnts);
  put(F.kernel_ss, c.kernelSs);
  put(F.kernel_esp, c.kernelEsp);
  put(F.pt_base, c.ptBase);
  for (const [i, d] of c.debugreg.slice(0, 8).entries()) put(F.debugreg + i * 4, d);
  put(F.event_callback_cs, c.eventCs);
  put(F.event_callback_eip, c.eventEip);
  put(F.failsafe_callback_cs, c.failsafeCs);
  put(F.failsafe_callback_eip, c.failsafeEip);
  put(F.vm_assist, c.vmAssist);
  return out;
}

export function decodeContext(b: Uint8Array): VcpuContext {
  const F = FullExecutionContext;
  const X = ExecutionContext;
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const get = (off: number): number => dv.getUint32(off, true);
  const reg = (off: number): number => get(F.cpu_ctxt + off);
  return {
    flags: get(F.flags),
    regs: {
      eax: reg(X.eax),
      ebx: reg(X.ebx),
      ecx: reg(X.ecx),
      edx: reg(X.edx),
      esi: reg(X.esi),
      edi: reg(X.edi),
      ebp: reg(X.ebp),
      esp: reg(X.esp),
    },
    eip: reg(X.eip),
    eflags: reg(X.eflags),
    cs: reg(X.cs),
    ss: reg(X.ss),
    ds: reg(X.ds),
    es: reg(X.es),
    fs: reg(X.fs),
    gs: reg(X.gs),
    traps: Array.from({ length: 256 }, (_, i) => {
      const e = F.trap_ctxt + i * TrapInfo.SIZE;
      return {
        vector: dv.getUint8(e + TrapInfo.vector),
        flags: dv.getUint8(e + TrapInfo.flags),
        cs: dv.getUint16(e + TrapInfo.cs, true),
        address: get(e + TrapInfo.address),
      };
    }),
    fastTrapIdx: get(F.fast_trap_idx),
    ldtBase: get(F.ldt_base),
    ldtEnts: get(F.ldt_ents),
    gdtFrames: Array.from({ length: F.GDT_FRAMES }, (_, i) => get(F.gdt_frames + i * 4)),
    gdtEnts: get(F.gdt_ents),
    kernelSs: get(F.kernel_ss),
    kernelEsp: get(F.kernel_esp),
    ptBase: get(F.pt_base),
    debugreg: Array.from({ length: 8 }, (_, i) => get(F.debugreg + i * 4)),
    eventCs: get(F.event_callback_cs),
    eventEip: get(F.event_callback_eip),
    failsafeCs: get(F.failsafe_callback_cs),
    failsafeEip: get(F.failsafe_callback_eip),
    vmAssist: get(F.vm_assist),
    fpu: b.slice(F.fpu_ctxt, F.fpu_ctxt + F.FPU_CTXT_SIZE),
  };
}

/** DOM0_GETDOMAININFO, decoded. */
export interface DomainInfo {
  domid: number;
  vcpu: number;
  flags: number;
  dying: boolean;
  crashed: boolean;
  shutdown: boolean;
  paused: boolean;
  blocked: boolean;
  running: boolean;
  cpu: number;
  shutdownReason: number;
  totPages: number;
  maxPages: number;
  sharedInfoFrame: number;
  cpuTimeNs: number;
  context?: VcpuContext;
}

/**
 * DOM0_GETDOMAININFO for the first domain with id >= domid (null when there is none), vcpu
 * `vcpu`, with its full context if asked.
 */
export function xcDomainGetInfo(
  dom0: Dom0,
  domid: number,
  opts: { vcpu?: number; withContext?: boolean } = {},
): DomainInfo | null {
  if (isJulDom0(dom0)) return domainGetInfoJul(dom0, domid, opts);
  const G = Dom0GetDomainInfo;
  let ctxVa = 0;
  const r = dom0Op(dom0, Dom0Cmd.GETDOMAININFO, (u, alloc) => {
    if (opts.withContext) ctxVa = alloc(FullExecutionContext.SIZE);
    u.u16(G.domain, domid);
    u.u16(G.exec_domain, opts.vcpu ?? 0);
    u.u32(G.ctxt, ctxVa);
  });
  if (r.rc === -3) return null;
  check("DOM0_GETDOMAININFO", r);
  const flags = r.u32(G.flags);
  const info: DomainInfo = {
    domid: r.u16(G.domain),
    vcpu: r.u16(G.exec_domain),
    flags,
    dying: (flags & DomFlags.DYING) !== 0,
    crashed: (flags & DomFlags.CRASHED) !== 0,
    shutdown: (flags & DomFlags.SHUTDOWN) !== 0,
    paused: (flags & DomFlags.PAUSED) !== 0,
    blocked: (flags & DomFlags.BLOCKED) !== 0,
    running: (flags & DomFlags.RUNNING) !== 0,
    cpu: (flags >>> DomFlags.CPUSHIFT) & DomFlags.CPUMASK,
    shutdownReason: (flags >>> DomFlags.SHUTDOWNSHIFT) & DomFlags.SHUTDOWNMASK,
    totPages: r.u32(G.tot_pages),
    maxPages: r.u32(G.max_pages),
    sharedInfoFrame: r.u32(G.shared_info_frame),
    cpuTimeNs: r.u64(G.cpu_time),
  };
  if (opts.withContext) info.context = decodeContext(dom0.read(ctxVa, FullExecutionContext.SIZE));
  return info;
}

/** GETDOMAININFO (+ GETVCPUCONTEXT for the context) from a July dom0. */
function domainGetInfoJul(
  dom0: Dom0,
  domid: number,
  opts: { vcpu?: number; withContext?: boolean },
): DomainInfo | null {
  const G = Dom0GetDomainInfoJul;
  const r = dom0OpJulRaw(dom0, Dom0CmdJul.GETDOMAININFO, (u) => u.setUint16(G.domain, domid, true));
  if (r.rc === -ESRCH) return null;
  if (r.rc < 0) throw new XcError("DOM0_GETDOMAININFO", -r.rc);
  const u = r.dv;
  const flags = u.getUint32(G.flags, true);
  const id = u.getUint16(G.domain, true);
  const vcpu = opts.vcpu ?? 0;
  const info: DomainInfo = {
    domid: id,
    vcpu,
    flags,
    dying: (flags & DomFlags.DYING) !== 0,
    // July reports a crash as a shutdown with reason crash.
    crashed:
      (flags & DomFlags.SHUTDOWN) !== 0 &&
      ((flags >>> DomFlags.SHUTDOWNSHIFT) & DomFlags.SHUTDOWNMASK) === Shutdown.crash,
    shutdown: (flags & DomFlags.SHUTDOWN) !== 0,
    paused: (flags & DomFlags.PAUSED) !== 0,
    blocked: (flags & DomFlags.BLOCKED) !== 0,
    running: (flags & DomFlags.RUNNING) !== 0,
    cpu: Math.max(0, u.getInt32(G.vcpu_to_cpu + vcpu * 4, true)),
    shutdownReason: (flags >>> DomFlags.SHUTDOWNSHIFT) & DomFlags.SHUTDOWNMASK,
    totPages: u.getUint32(G.tot_pages, true),
    maxPages: u.getUint32(G.max_pages, true),
    sharedInfoFrame: u.getUint32(G.shared_info_frame, true),
    cpuTimeNs: u.getUint32(G.cpu_time, true) + u.getUint32(G.cpu_time + 4, true) * 2 ** 32,
  };
  if (opts.withContext) {
    const V = Dom0GetVcpuContextJul;
    let ctxVa = 0;
    const c = dom0OpJulRaw(dom0, Dom0CmdJul.GETVCPUCONTEXT, (cu, alloc) => {
      ctxVa = alloc(VcpuGuestContextJul.SIZE);
      cu.setUint16(V.domain, id, true);
      cu.setUint16(V.vcpu, vcpu, true);
      cu.setUint32(V.ctxt, ctxVa, true);
    });
    if (c.rc < 0) throw new XcError("DOM0_GETVCPUCONTEXT", -c.rc);
    info.context = decodeContext(marContextFromJul(dom0.read(ctxVa, VcpuGuestContextJul.SIZE)));
  }
  return info;
}

/** Every domain, by iterating GETDOMAININFO from id 0. */
export function xcDomainList(dom0: Dom0): DomainInfo[] {
  const out: DomainInfo[] = [];
  for (let id = 0; id < DomId.FIRST_RESERVED; ) {
    const info = xcDomainGetInfo(dom0, id);
    if (info === null) break;
    out.push(info);
    id = info.domid + 1;
  }
  return out;
}

/** DOM0_SETDOMAININFO (Xen 2.0's BUILDDOMAIN): loads a vcpu's context; marks it constructed. */
export function xcDomainSetContext(
  dom0: Dom0,
  domid: number,
  vcpu: number,
  ctx: VcpuContext | Uint8Array,
): void {
  const S = Dom0SetDomainInfo;
  const bytes = ctx instanceof Uint8Array ? ctx : encodeContext(ctx);
  if (isJulDom0(dom0)) {
    // July: a vcpu_guest_context_t (ctrlreg[3] the page-table base, no fast trap).
    const J = Dom0SetDomainInfoJul;
    const jul = bytes.length === VcpuGuestContextJul.SIZE ? bytes : julContextFromMar(bytes);
    const r = dom0OpJulRaw(dom0, Dom0CmdJul.SETDOMAININFO, (u, alloc) => {
      u.setUint16(J.domain, domid, true);
      u.setUint16(J.vcpu, vcpu, true);
      u.setUint32(J.ctxt, alloc(jul.length, jul), true);
    });
    if (r.rc < 0) throw new XcError("DOM0_SETDOMAININFO", -r.rc);
    return;
  }
  xcOp(dom0, "DOM0_SETDOMAININFO", Dom0Cmd.SETDOMAININFO, (u, alloc) => {
    u.u16(S.domain, domid);
    u.u16(S.exec_domain, vcpu);
    u.u32(S.ctxt, alloc(bytes.length, bytes));
  });
}

/** The context xc_linux_build gives a fresh domU (abi.md §4.5), before the caller's fields. */
export function initialContext(p: {
  eip: number;
  esp: number;
  esi: number;
  eflags: number;
  cs: number;
  ds: number;
  ss: number;
  kernelSs: number;
  kernelEsp: number;
  ptBase: number;
}): VcpuContext {
  return {
    flags: 0,
    regs: { eax: 0, ebx: 0, ecx: 0, edx: 0, esi: p.esi, edi: 0, ebp: 0, esp: p.esp },
    eip: p.eip,
    eflags: p.eflags,
    cs: p.cs,
    ss: p.ss,
    ds: p.ds,
    es: p.ds,
    fs: p.ds,
    gs: p.ds,
    traps: Array.from({ length: 256 }, (_, i) => ({ vector: i, flags: 0, cs: p.cs, address: 0 })),
    fastTrapIdx: 0,
    ldtBase: 0,
    ldtEnts: 0,
    gdtFrames: new Array<number>(16).fill(0),
    gdtEnts: 0,
    kernelSs: p.kernelSs,
    kernelEsp: p.kernelEsp,
    ptBase: p.ptBase,
    debugreg: new Array<number>(8).fill(0),
    eventCs: p.cs,
    eventEip: 0,
    failsafeCs: p.cs,
    failsafeEip: 0,
    vmAssist: 0,
    fpu: new Uint8Array(FullExecutionContext.FPU_CTXT_SIZE),
  };
}

// ---------------------------------------------------------------------------------------------
// Memory

/** DOM0_GETPAGEFRAMEINFO: the type (PageFrameType) of a frame the domain owns. */
export function xcGetPageFrameInfo(dom0: Dom0, domid: number, mfn: number): number {
  const G = Dom0GetPageFrameInfo;
  return xcOp(dom0, "DOM0_GETPAGEFRAMEINFO", Dom0Cmd.GETPAGEFRAMEINFO, (u) => {
    u.u32(G.pfn, mfn);
    u.u16(G.domain, domid);
  }).u32(G.type);
}

/** DOM0_GETPAGEFRAMEINFO2: each MFN OR'ed with its type bits (LPINTAB if pinned, XTAB if not the domain's). */
export function xcGetPageFrameInfo2(dom0: Dom0, domid: number, mfns: readonly number[]): number[] {
  const G = Dom0GetPageFrameInfo2;
  let va = 0;
  xcOp(dom0, "DOM0_GETPAGEFRAMEINFO2", Dom0Cmd.GETPAGEFRAMEINFO2, (u, alloc) => {
    const init = new Uint8Array(mfns.length * 4);
    const dv = new DataView(init.buffer);
    for (const [i, m] of mfns.entries()) dv.setUint32(i * 4, m >>> 0, true);
    va = alloc(init.length, init);
    u.u16(G.domain, domid);
    u.u32(G.num, mfns.length);
    u.u32(G.array, va);
  });
  const raw = new DataView(dom0.read(va, mfns.length * 4).buffer);
  return mfns.map((_, i) => raw.getUint32(i * 4, true));
}

/** DOM0_SETDOMAININITIALMEM (before construction only). */
export function xcSetInitialMem(dom0: Dom0, domid: number, memoryKb: number): void {
  const S = Dom0SetDomainInitialMem;
  xcOp(dom0, "DOM0_SETDOMAININITIALMEM", Dom0Cmd.SETDOMAININITIALMEM, (u) => {
    u.u16(S.domain, domid);
    u.u32(S.initial_memkb, memoryKb);
  });
}

/** DOM0_SETDOMAINMAXMEM, in KiB (max_pages = kb / 4, the April 2005 fix). */
export function xcSetMaxMem(dom0: Dom0, domid: number, maxMemKb: number): void {
  const S = Dom0SetDomainMaxMem;
  xcOp(dom0, "DOM0_SETDOMAINMAXMEM", Dom0Cmd.SETDOMAINMAXMEM, (u) => {
    u.u16(S.domain, domid);
    u.u32(S.max_memkb, maxMemKb);
  });
}

/**
 * mmu_update from dom0: [ptr, val] requests in dom0's revision (MAR u32 pairs; JUL u64 pairs
 * with the foreign domain as the fourth argument, default DOMID_SELF); returns the number done
 * (throws on failure).
 */
export function xcMmuUpdate(
  dom0: Dom0,
  reqs: ReadonlyArray<readonly [number, number]>,
  foreignDom: number = DomId.SELF,
): number {
  const s = dom0.scratch();
  const M = dom0.domain.abi.mmuUpdate;
  const wide = dom0.domain.abi.mmuUpdateWide;
  const bytes = new Uint8Array(reqs.length * M.SIZE);
  const dv = new DataView(bytes.buffer);
  reqs.forEach(([ptr, val], i) => {
    dv.setUint32(i * M.SIZE + M.ptr, ptr >>> 0, true);
    dv.setUint32(i * M.SIZE + M.val, val >>> 0, true);
  });
  const va = s.alloc(bytes.length, bytes);
  const doneVa = s.alloc(4);
  const rc = wide
    ? dom0.hypercall(dom0.nr("mmu_update"), va, reqs.length, doneVa, foreignDom)
    : dom0.hypercall(dom0.nr("mmu_update"), va, reqs.length, doneVa);
  const done = new DataView(dom0.read(doneVa, 4).buffer).getUint32(0, true);
  if (rc < 0) throw new XcError(`mmu_update (request ${done} of ${reqs.length})`, -rc);
  return done;
}

/** mmuext_op (JUL, hypercall 26) from dom0: one command on an MFN for a foreign domain. */
export function xcMmuextOp(dom0: Dom0, cmd: number, mfn: number, foreignDom: number = DomId.SELF): void {
  const s = dom0.scratch();
  const E = MmuExtOpJul;
  const bytes = new Uint8Array(E.SIZE);
  const dv = new DataView(bytes.buffer);
  dv.setUint32(E.cmd, cmd >>> 0, true);
  dv.setUint32(E.mfn, mfn >>> 0, true);
  const va = s.alloc(bytes.length, bytes);
  const rc = dom0.hypercall(dom0.nr("mmuext_op"), va, 1, 0, foreignDom);
  if (rc < 0) throw new XcError(`mmuext_op ${cmd}`, -rc);
}

/**
 * dom_mem_op(increase_reservation) issued by dom0 on behalf of domid (the July way to give a
 * new domain its memory); returns the frames allocated.
 */
export function xcIncreaseReservation(dom0: Dom0, domid: number, nrPages: number): number {
  const list = dom0.scratch().alloc(nrPages * 4);
  const rc = dom0.hypercall(dom0.nr("dom_mem_op"), MemOp.increase_reservation, list, nrPages, 0, domid);
  if (rc >= 0 && rc < nrPages) throw new XcError(`dom_mem_op(increase_reservation): ${rc} of ${nrPages}`, 12);
  if (rc < 0) throw new XcError("dom_mem_op(increase_reservation)", -rc);
  return rc;
}

/**
 * dom_mem_op(increase_reservation) for dom0 itself: n fresh pages of its own (netback's
 * alloc_mfn); returns their MFNs, fewer when Xen has no more or max_pages is reached.
 */
export function xcAllocOwnPages(dom0: Dom0, n: number): number[] {
  const list = dom0.scratch().alloc(n * 4);
  const rc = dom0.hypercall(dom0.nr("dom_mem_op"), MemOp.increase_reservation, list, n, 0, DomId.SELF);
  if (rc < 0) throw new XcError("dom_mem_op(increase_reservation)", -rc);
  const raw = new DataView(dom0.read(list, rc * 4).buffer);
  return Array.from({ length: rc }, (_, i) => raw.getUint32(i * 4, true));
}

/**
 * MMUEXT_REASSIGN_PAGE: gives one of dom0's pages (mapped nowhere, its allocation reference
 * only) to domid, as netback flips a received packet's page to the guest.
 */
export function xcReassignPage(dom0: Dom0, mfn: number, domid: number): void {
  xcMmuUpdate(dom0, [
    [MmuMar.EXTENDED_COMMAND, MmuExtMar.SET_FOREIGNDOM | (domid << MMUEXT_DOMID_SHIFT)],
    [(mfn * 4096) | MmuMar.EXTENDED_COMMAND, MmuExtMar.REASSIGN_PAGE],
  ]);
}

// ---------------------------------------------------------------------------------------------
// Scheduling

export function xcSchedId(dom0: Dom0): number {
  return xcOp(dom0, "DOM0_SCHED_ID", Dom0Cmd.SCHED_ID).u32(Dom0SchedId.sched_id);
}

/** DOM0_SCHEDCTL for BVT: sets ctx_allow (ns) when given, returns the current value. */
export function xcBvtCtxAllow(dom0: Dom0, ctxAllowNs?: number): number {
  const S = SchedCtlCmd;
  const r = xcOp(dom0, "DOM0_SCHEDCTL", Dom0Cmd.SCHEDCTL, (u) => {
    u.u32(S.sched_id, 0);
    u.u32(S.direction, ctxAllowNs === undefined ? SchedInfo.GET : SchedInfo.PUT);
    u.u32(S.ctx_allow, ctxAllowNs ?? 0);
  });
  return r.u32(S.ctx_allow);
}

export interface BvtParamsOut {
  mcuAdvance: number;
  warpback: boolean;
  warpValue: number;
  /** As Xen reports them: nanoseconds (although PUT takes milliseconds, quirk Q8). */
  warplNs: number;
  warpuNs: number;
}

/** DOM0_ADJUSTDOM GET for BVT. */
export function xcBvtDomainGet(dom0: Dom0, domid: number): BvtParamsOut {
  const A = SchedAdjdomCmd;
  const r = xcOp(dom0, "DOM0_ADJUSTDOM", Dom0Cmd.ADJUSTDOM, (u) => {
    u.u32(A.sched_id, 0);
    u.u32(A.direction, SchedInfo.GET);
    u.u16(A.domain, domid);
  });
  return {
    mcuAdvance: r.u32(A.mcu_adv),
    warpback: r.u32(A.warpback) !== 0,
    warpValue: r.s32(A.warpvalue),
    warplNs: r.u64(A.warpl),
    warpuNs: r.u64(A.warpu),
  };
}

/** DOM0_ADJUSTDOM PUT for BVT (warpl/warpu in milliseconds). */
export function xcBvtDomainSet(
  dom0: Dom0,
  domid: number,
  p: { mcuAdvance: number; warpback?: boolean; warpValue?: number; warplMs?: number; warpuMs?: number },
): void {
  const A = SchedAdjdomCmd;
  xcOp(dom0, "DOM0_ADJUSTDOM", Dom0Cmd.ADJUSTDOM, (u) => {
    u.u32(A.sched_id, 0);
    u.u32(A.direction, SchedInfo.PUT);
    u.u16(A.domain, domid);
    u.u32(A.mcu_adv, p.mcuAdvance);
    u.u32(A.warpback, p.warpback ? 1 : 0);
    u.u32(A.warpvalue, p.warpValue ?? 0);
    u.u64(A.warpl, p.warplMs ?? 2000);
    u.u64(A.warpu, p.warpuMs ?? 1000);
  });
}

/** DOM0_PINCPUDOMAIN: pin vcpu to a CPU, or unpin with cpu -1. */
export function xcDomainPinCpu(dom0: Dom0, domid: number, vcpu: number, cpu: number): void {
  const P = Dom0PinCpuDomain;
  xcOp(dom0, "DOM0_PINCPUDOMAIN", Dom0Cmd.PINCPUDOMAIN, (u) => {
    u.u16(P.domain, domid);
    u.u16(P.exec_domain, vcpu);
    u.u32(P.cpu, cpu);
  });
}

// ---------------------------------------------------------------------------------------------
// Host

/** DOM0_MSR: read (write absent) or write an MSR on the CPUs in cpuMask; returns [lo, hi]. */
export function xcMsr(
  dom0: Dom0,
  msr: number,
  cpuMask: number,
  write?: { lo: number; hi: number },
): [number, number] {
  const M = Dom0Msr;
  const r = xcOp(dom0, "DOM0_MSR", Dom0Cmd.MSR, (u) => {
    u.u32(M.write, write ? 1 : 0);
    u.u32(M.cpu_mask, cpuMask);
    u.u32(M.msr, msr);
    u.u32(M.in1, write?.lo ?? 0);
    u.u32(M.in2, write?.hi ?? 0);
  });
  return [r.u32(M.out1), r.u32(M.out2)];
}

/** DOM0_SETTIME: the wall clock reads (secs, usecs) at system time systemTimeNs. */
export function xcSetTime(dom0: Dom0, secs: number, usecs: number, systemTimeNs: number): void {
  const S = Dom0SetTime;
  xcOp(dom0, "DOM0_SETTIME", Dom0Cmd.SETTIME, (u) => {
    u.u32(S.secs, secs);
    u.u32(S.usecs, usecs);
    u.u64(S.system_time, systemTimeNs);
  });
}

/** DOM0_READCONSOLE: up to `count` bytes of Xen's console ring, optionally clearing it. */
export function xcReadConsole(dom0: Dom0, opts: { count?: number; clear?: boolean } = {}): string {
  const R = Dom0ReadConsole;
  // xend read into 32 KiB, more than the ring holds: the whole ring.
  const count = opts.count ?? 2 * CONSOLE_RING_SIZE;
  let va = 0;
  const r = xcOp(dom0, "DOM0_READCONSOLE", Dom0Cmd.READCONSOLE, (u, alloc) => {
    va = alloc(count);
    u.u32(R.str, va);
    u.u32(R.count, count);
    u.u32(R.cmd, opts.clear ? CONSOLE_RING_CLEAR : 0);
  });
  // Latin-1, byte for byte (Buffer is Node's, and TextDecoder's "latin1" is windows-1252).
  return String.fromCharCode(...dom0.read(va, r.rc));
}

/** DOM0_GETTBUFS: machine address of CPU 0's trace buffer and bytes per CPU. */
export function xcGetTbufs(dom0: Dom0): { machAddr: number; size: number } {
  const T = Dom0GetTbufs;
  const r = xcOp(dom0, "DOM0_GETTBUFS", Dom0Cmd.GETTBUFS);
  return { machAddr: r.u32(T.mach_addr), size: r.u32(T.size) };
}

export interface PhysInfo {
  htPerCore: number;
  cores: number;
  cpuKhz: number;
  totalPages: number;
  freePages: number;
}

export function xcPhysInfo(dom0: Dom0): PhysInfo {
  const P = Dom0PhysInfo;
  const r = xcOp(dom0, "DOM0_PHYSINFO", Dom0Cmd.PHYSINFO);
  return {
    htPerCore: r.u32(P.ht_per_core),
    cores: r.u32(P.cores),
    cpuKhz: r.u32(P.cpu_khz),
    totalPages: r.u32(P.total_pages),
    freePages: r.u32(P.free_pages),
  };
}

/** DOM0_PCIDEV_ACCESS: give a domain a PCI device (it also becomes privileged). */
export function xcPcidevAccess(dom0: Dom0, domid: number, bus: number, dev: number, func: number): void {
  const P = Dom0PcidevAccess;
  xcOp(dom0, "DOM0_PCIDEV_ACCESS", Dom0Cmd.PCIDEV_ACCESS, (u) => {
    u.u16(P.domain, domid);
    u.u32(P.bus, bus);
    u.u32(P.dev, dev);
    u.u32(P.func, func);
    u.u32(P.enable, 1);
  });
}

/** DOM0_IOPORT_PERMISSION. */
export function xcIoportPermission(
  dom0: Dom0,
  domid: number,
  first: number,
  nr: number,
  allow: boolean,
): void {
  const I = Dom0IoportPermission;
  xcOp(dom0, "DOM0_IOPORT_PERMISSION", Dom0Cmd.IOPORT_PERMISSION, (u) => {
    u.u16(I.domain, domid);
    u.u16(I.first_port, first);
    u.u16(I.nr_ports, nr);
    u.u16(I.allow_access, allow ? 1 : 0);
  });
}

export interface ShadowStats {
  fault: number;
  dirty: number;
  dirtyNet: number;
  dirtyBlock: number;
}

/**
 * DOM0_SHADOW_CONTROL. For CLEAN and PEEK pass `pages` (bitmap size in frames): the bitmap
 * comes back, one bit per pseudo-physical frame.
 */
export function xcShadowControl(
  dom0: Dom0,
  domid: number,
  op: number,
  pages = 0,
): { pages: number; stats: ShadowStats; bitmap: Uint8Array | null } {
  const S = Dom0ShadowControl;
  const wantBitmap = op === ShadowOp.CLEAN || op === ShadowOp.PEEK;
  let va = 0;
  const bytes = Math.ceil(pages / 64) * 8;
  const r = xcOp(dom0, "DOM0_SHADOW_CONTROL", Dom0Cmd.SHADOW_CONTROL, (u, alloc) => {
    if (wantBitmap && pages > 0) va = alloc(bytes);
    u.u16(S.domain, domid);
    u.u32(S.op, op);
    u.u32(S.dirty_bitmap, va);
    u.u32(S.pages, pages);
  });
  return {
    pages: r.u32(S.pages),
    stats: {
      fault: r.u32(S.fault_count),
      dirty: r.u32(S.dirty_count),
      dirtyNet: r.u32(S.dirty_net_count),
      dirtyBlock: r.u32(S.dirty_block_count),
    },
    bitmap: va !== 0 ? dom0.read(va, bytes) : null,
  };
}

// ---------------------------------------------------------------------------------------------
// Xen 2.0 commands (abi.md §2.11.4)

/** DOM0_IOPL (Xen 2.0, command 14): dom0's own virtual IOPL (domain must be DOMID_SELF). */
export function xcIopl(dom0: Dom0, iopl: number, domid: number = DomId.SELF): void {
  const I = Dom0IoplXen20;
  xcOp(dom0, "DOM0_IOPL", Dom0CmdXen20.IOPL, (u) => {
    u.u16(I.domain, domid);
    u.u32(I.iopl, iopl);
  });
}

/** DOM0_SETDOMAINVMASSIST (Xen 2.0, command 30): vm_assist on another domain. */
export function xcSetDomainVmAssist(dom0: Dom0, domid: number, cmd: number, type: number): void {
  const S = Dom0SetDomainVmAssistXen20;
  xcOp(dom0, "DOM0_SETDOMAINVMASSIST", Dom0CmdXen20.SETDOMAINVMASSIST, (u) => {
    u.u16(S.domain, domid);
    u.u32(S.cmd, cmd);
    u.u32(S.type, type);
  });
}

// ---------------------------------------------------------------------------------------------
// Event channels and foreign mappings (what xcs and privcmd did for the control interface)

function evtchnOp(dom0: Dom0, cmd: number, fill: (dv: DataView) => void): { rc: number; out: DataView } {
  const op = new Uint8Array(EvtchnOpMar.SIZE);
  const dv = new DataView(op.buffer);
  dv.setUint32(EvtchnOpMar.cmd, cmd, true);
  fill(new DataView(op.buffer, EvtchnOpMar.u));
  const va = dom0.scratch().alloc(op.length, op);
  const rc = dom0.hypercall(HypercallMar.event_channel_op, va);
  const back = dom0.read(va, op.length);
  return { rc, out: new DataView(back.buffer, EvtchnOpMar.u) };
}

/** EVTCHNOP_bind_interdomain from dom0: returns [dom0's port, the remote port]. */
export function xcEvtchnBindInterdomain(
  dom0: Dom0,
  dom1: number,
  dom2: number,
  port1: number,
  port2: number,
): [number, number] {
  const B = EvtchnBindInterdomain;
  const r = evtchnOp(dom0, EvtchnOp.bind_interdomain, (u) => {
    u.setUint16(B.dom1, dom1, true);
    u.setUint16(B.dom2, dom2, true);
    u.setUint32(B.port1, port1, true);
    u.setUint32(B.port2, port2, true);
  });
  if (r.rc < 0) throw new XcError("EVTCHNOP_bind_interdomain", -r.rc);
  return [r.out.getUint32(B.port1, true), r.out.getUint32(B.port2, true)];
}

/** EVTCHNOP_send on one of dom0's ports. */
export function xcEvtchnSend(dom0: Dom0, port: number): void {
  const r = evtchnOp(dom0, EvtchnOp.send, (u) => u.setUint32(EvtchnSend.local_port, port, true));
  if (r.rc < 0) throw new XcError("EVTCHNOP_send", -r.rc);
}

/** EVTCHNOP_close of one of dom0's ports (errors ignored when the peer is gone already). */
export function xcEvtchnClose(dom0: Dom0, port: number): number {
  return evtchnOp(dom0, EvtchnOp.close, (u) => {
    u.setUint16(EvtchnClose.dom, DomId.SELF, true);
    u.setUint32(EvtchnClose.port, port, true);
  }).rc;
}

/**
 * Maps another domain's frame into dom0's address space, writable unless `writable` is false
 * (privcmd's mmap: one mmu_update batch [SET_FOREIGNDOM(domid), the PTE in dom0's L1]). Xen
 * refuses a frame that domid does not own (XcError). Returns its address there.
 */
export function xcMapForeignFrame(dom0: Dom0, domid: number, mfn: number, writable = true): number {
  const w = dom0.takeWindow();
  const fd: [number, number] = [
    MmuMar.EXTENDED_COMMAND,
    MmuExtMar.SET_FOREIGNDOM | (domid << MMUEXT_DOMID_SHIFT),
  ];
  const pte = (mfn * 4096 + (_PAGE_PRESENT | (writable ? _PAGE_RW : 0) | _PAGE_ACCESSED | _PAGE_DIRTY)) >>> 0;
  try {
    xcMmuUpdate(dom0, [fd, [w.pteMa | MmuMar.NORMAL_PT_UPDATE, pte]]);
  } catch (e) {
    dom0.releaseWindow(w.va);
    throw e;
  }
  dom0.windowMapped(w.va, mfn, writable);
  return w.va;
}

/** Unmaps a window made by xcMapForeignFrame (its reference on the frame goes). */
export function xcUnmapForeignFrame(dom0: Dom0, va: number): void {
  const pteMa = dom0.windowPte(va);
  if (pteMa === undefined) return;
  xcMmuUpdate(dom0, [[pteMa | MmuMar.NORMAL_PT_UPDATE, 0]]);
  dom0.releaseWindow(va);
}
