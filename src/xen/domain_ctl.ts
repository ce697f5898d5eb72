/**
 * Domain life cycle for dom0_op (semantics.md §8.1, §8.3): creating a domain with its memory
 * (do_createdomain), killing it and releasing every frame and reference (domain_kill,
 * relinquish_memory) and freeing it with its last page, loading and reading a vcpu's full
 * execution context (set_info_guest / getdomaininfo's ctxt), and building dom0 itself.
 */
import { CpuContext } from "../cpu/context.js";
import { CR0_ET, CR0_NE, CR0_PE, CR0_PG, CR0_WP, CS, DS, ES, FS, GS, LDTR, SS, TR } from "../cpu/regs.js";
import {
  _PAGE_ACCESSED,
  _PAGE_DIRTY,
  _PAGE_PRESENT,
  _PAGE_RW,
  GDT_ENTRY_SIZE,
  M2P_INVALID_ENTRY,
} from "../public/arch_x86_32.js";
import { EcfFlags, ExecutionContext, FullExecutionContext, INITIAL_TOPDOM } from "../public/dom0_ops.js";
import { EINVAL, ENOMEM } from "../public/errno.js";
import { Trc } from "../public/trace.js";
import { DomId, MAX_VIRT_CPUS, TrapInfo } from "../public/xen.js";
import type { AbiName, GuestAbi } from "./abi.js";
import { doSetDebugreg } from "./callbacks.js";
import { destroyGdt, doSetFastTrap, gdtVirtStart, invalidateShadowLdt, setGdt } from "./descriptor_tables.js";
import { loadGuestSegment, xenGdtEntries } from "./descriptors.js";
import { type Domain, DomainState, type Vcpu } from "./domain.js";
import { closeAllPorts } from "./event_channel.js";
import { NO_OWNER, PGT_l2_page_table, PGT_pinned, PGT_type_mask, PGT_validated } from "./frame_table.js";
import { destroyGrantTable, releaseDevMappings, resizeGrantTable } from "./grant_table.js";
import type { Hypervisor } from "./hypervisor.js";
import { ptwrFlushAll } from "./ptwr.js";
import { shadowModeOff } from "./shadow.js";
import { TraceBuffers } from "./trace.js";

const IOPL_MASK = 0x3000;
const IF = 0x200;
const GDT_ENTRIES_PER_PAGE = 512;
const CR0_GUEST = CR0_PE | CR0_ET | CR0_NE | CR0_WP | CR0_PG;

/** Xen's domain-id allocator state (per machine). */
const idState = new WeakMap<Hypervisor, { last: number; top: number }>();

/** The machine's domain-id allocator state, if it has one yet (checkpoint.ts keeps it). */
export function domainIdState(hv: Hypervisor): object | undefined {
  return idState.get(hv);
}

/** A domain whose vcpu runs TypeScript (dom0's toolstack) rather than guest code. */
export function isHostDomain(d: Domain): boolean {
  return d.hostUpcall !== null;
}

/**
 * The id for CREATEDOMAIN (semantics.md §8.2): an explicit 0 < id < DOMID_FIRST_RESERVED must
 * be free (-EINVAL); otherwise search cyclically from the last id handed out + 1 within
 * 1..topdom-1, then above topdom (raising it). -ENOMEM when none is free.
 */
export function allocDomainId(hv: Hypervisor, requested: number): number {
  if (requested > 0 && requested < DomId.FIRST_RESERVED)
    return hv.domains.has(requested) ? -EINVAL : requested;
  let st = idState.get(hv);
  if (st === undefined) {
    st = { last: 0, top: INITIAL_TOPDOM };
    idState.set(hv, st);
  }
  for (let i = 1; i < st.top; i++) {
    const id = ((st.last + i - 1) % (st.top - 1)) + 1;
    if (!hv.domains.has(id)) {
      st.last = id;
      return id;
    }
  }
  for (let id = st.top; id < DomId.FIRST_RESERVED; id++) {
    if (!hv.domains.has(id)) {
      st.top = id + 1;
      st.last = id;
      return id;
    }
  }
  return -ENOMEM;
}

/** CPU placement: -1 (as u32) = the CPU with fewest vcpus, else cpu mod ncpus. */
export function placeCpu(hv: Hypervisor, cpu: number): number {
  const n = hv.sched.pcpus.length;
  if (cpu >>> 0 !== 0xffffffff) return (cpu >>> 0) % n;
  const load = new Array<number>(n).fill(0);
  for (const d of hv.domains.values()) for (const v of d.vcpus) load[v.processor]++;
  let best = 0;
  for (let c = 1; c < n; c++) if (load[c] < load[best]) best = c;
  return best;
}

/**
 * do_createdomain + alloc_new_dom_mem: a paused, unconstructed domain with ⌈memory_kb/4⌉
 * pages, M2P[mfn] = 0, 1, 2… in allocation order. Returns the domain or -errno.
 */
export function createDomainOp(
  hv: Hypervisor,
  memoryKb: number,
  cpu: number,
  requestedId: number,
): Domain | number {
  const id = allocDomainId(hv, requestedId);
  if (id < 0) return id;
  const pages = Math.ceil((memoryKb >>> 0) / 4);
  // Xen-heap pages of a domain: shared_info, default GDT, per-domain L1.
  if (pages + 3 > hv.mem.freeFrames) return -ENOMEM;
  const d = hv.createDomain(`domain-${id}`, Math.max(1, pages), false, undefined, id);
  if (pages === 0) {
    // createDomain wants one page; CREATEDOMAIN with memory_kb 0 makes an empty domain.
    const [mfn] = d.pages;
    hv.frames.allocated[mfn] = 0;
    d.maxPages = 0;
    hv.mm.putPage(mfn);
  }
  let pfn = 0;
  for (const mfn of d.pages) hv.setM2p(mfn, pfn++);
  for (const v of d.vcpus) v.processor = placeCpu(hv, cpu);
  hv.tbufs?.record(hv, hv.sched.cur.id, Trc.SCHED_DOM_ADD, d.id, 0);
  return d;
}

/**
 * SETDOMAININITIALMEM (and CREATEDOMAIN's rule): grow to ⌈kb/4⌉ pages, never shrink; max_pages
 * is set to the new size even when lower. New pages get M2P entries after the existing ones.
 */
export function setInitialMemory(hv: Hypervisor, d: Domain, memoryKb: number): number {
  const want = Math.ceil((memoryKb >>> 0) / 4);
  const add = want - d.pages.size;
  if (add > hv.mem.freeFrames) return -ENOMEM;
  let pfn = d.pages.size;
  for (let i = 0; i < add; i++) {
    const mfn = hv.mem.allocFrame();
    hv.frames.assign(mfn, d.id);
    d.pages.add(mfn);
    hv.setM2p(mfn, pfn++);
  }
  d.maxPages = want;
  return 0;
}

// ---------------------------------------------------------------------------------------------
// Destruction

/**
 * domain_kill (semantics.md §8.1): pause, mark dying, take the vcpus off the scheduler and
 * release the memory — shadow mode off, base pointers, GDTs and shadow LDTs dropped, then for
 * every page: unpin, drop the allocation reference, force-devalidate a validated L2 (breaking
 * linear-page-table cycles). Event channels are closed. Pages other domains still map keep the
 * domain as a zombie until the last goes; otherwise it is freed at once.
 */
export function domainKill(hv: Hypervisor, d: Domain): void {
  hv.pauseDomain(d);
  if (d.state === DomainState.Dying) return;
  d.state = DomainState.Dying;
  for (const v of d.vcpus) {
    hv.sched.sleep(v);
    hv.tbufs?.record(hv, v.processor, Trc.SCHED_DOM_REM, d.id, v.id);
  }
  ptwrFlushAll(hv, d);
  releaseDevMappings(hv, d);
  shadowModeOff(hv, d);
  closeAllPorts(hv, d);
  for (const v of d.vcpus) {
    if (v.baseMfn !== 0) {
      const base = v.baseMfn;
      v.baseMfn = 0;
      hv.mm.putPageAndType(base);
    }
    invalidateShadowLdt(hv, v);
    destroyGdt(hv, v);
    v.timerDeadline = -1;
  }
  relinquishMemory(hv, d);
  if (d.pages.size === 0) releaseDomain(hv, d);
}

function relinquishMemory(hv: Hypervisor, d: Domain): void {
  const ft = hv.frames;
  for (const mfn of [...d.pages]) {
    // The temporary reference: the page may already be gone (freed by an earlier page's release).
    if (!hv.mm.getPage(mfn, d.id)) continue;
    if (ft.typeInfo[mfn] & PGT_pinned) {
      ft.typeInfo[mfn] &= ~PGT_pinned;
      hv.mm.putPageAndType(mfn);
    }
    if (ft.allocated[mfn]) {
      ft.allocated[mfn] = 0;
      hv.mm.putPage(mfn);
    }
    const ti = ft.typeInfo[mfn];
    if ((ti & PGT_type_mask) === PGT_l2_page_table && (ti & PGT_validated) !== 0) {
      ft.typeInfo[mfn] = ti & ~PGT_validated;
      hv.mm.releaseL2Entries(mfn);
    }
    hv.mm.putPage(mfn);
  }
}

/**
 * The last reference went: unlink the domain, free its Xen-heap frames (shared_info, default
 * GDT, per-domain L1). The frames are scrubbed so nothing of the domain survives.
 */
export function releaseDomain(hv: Hypervisor, d: Domain): void {
  if (!hv.domains.has(d.id) || hv.domains.get(d.id) !== d) return;
  hv.domains.delete(d.id);
  destroyGrantTable(hv, d);
  for (const mfn of [d.sharedInfoMfn, d.defaultGdtMfn, d.perdomainMfn]) {
    if (mfn < 0 || hv.frames.owner[mfn] === NO_OWNER) continue;
    hv.frames.release(mfn);
    hv.setM2p(mfn, M2P_INVALID_ENTRY);
    hv.scrubFrame(mfn);
    hv.mem.freeFrame(mfn);
  }
  d.sharedInfoMfn = d.defaultGdtMfn = d.perdomainMfn = -1;
  hv.cpu.flushTlb();
}

// ---------------------------------------------------------------------------------------------
// The full execution context (semantics.md §8.3, abi.md §2.11.5)

/**
 * set_info_guest: loads a full_execution_context_t (bytes as copied from the caller) into
 * vcpu `vcpuId` of d; marks d constructed. Returns 0 or -errno.
 */
export function setInfoGuest(hv: Hypervisor, d: Domain, vcpuId: number, ctx: Uint8Array): number {
  const F = FullExecutionContext;
  const X = ExecutionContext;
  const dv = new DataView(ctx.buffer, ctx.byteOffset, ctx.byteLength);
  const u32 = (off: number): number => dv.getUint32(off, true);
  const reg = (off: number): number => u32(F.cpu_ctxt + off);
  if (vcpuId >= MAX_VIRT_CPUS) return -EINVAL;
  const v = d.vcpus[vcpuId];
  if (v === undefined) return -EINVAL;
  // A constructed domain must be paused by the controller; a host domain always runs.
  if (d.constructed && (!d.paused || isHostDomain(d))) return -EINVAL;
  const flags = u32(F.flags);
  const cs = reg(X.cs) & 0xffff;
  const ss = reg(X.ss) & 0xffff;
  if ((flags & EcfFlags.VMX_GUEST) === 0 && ((cs & 3) === 0 || (ss & 3) === 0)) return -EINVAL;

  return hv.onVcpu(v, () => {
    const cpu = hv.cpu;
    v.fpuValid = (flags & EcfFlags.I387_VALID) !== 0;
    v.inKernel = (flags & EcfFlags.IN_KERNEL) !== 0;
    v.fpuImage = ctx.slice(F.fpu_ctxt, F.fpu_ctxt + F.FPU_CTXT_SIZE);
    if (!v.fpuValid) cpu.fpu.reset();
    const r = cpu.regs;
    r[3] = reg(X.ebx);
    r[1] = reg(X.ecx);
    r[2] = reg(X.edx);
    r[6] = reg(X.esi);
    r[7] = reg(X.edi);
    r[5] = reg(X.ebp);
    r[0] = reg(X.eax);
    r[4] = reg(X.esp);
    cpu.eip = reg(X.eip) | 0;
    const eflags = reg(X.eflags);
    // Virtual IOPL; EFLAGS.IOPL cleared. IF forced on as fixed Xen does (docs/DEVIATIONS.md).
    v.iopl = (eflags & IOPL_MASK) >>> 12;
    cpu.setFlags((eflags & ~IOPL_MASK) | IF | 2);

    if (!v.doneInit) {
      const rc = firstContext(hv, d, v, dv);
      if (rc !== 0) return rc;
      v.doneInit = true;
    }
    // Segment registers from the selectors, through the vcpu's GDT (Xen reloads them on the
    // return to the guest; one that does not load is left null, to fault on use).
    const ring = cs & 3;
    cpu.setCpl(ring);
    const sel = [
      [CS, cs],
      [SS, ss],
      [DS, reg(X.ds) & 0xffff],
      [ES, reg(X.es) & 0xffff],
      [FS, reg(X.fs) & 0xffff],
      [GS, reg(X.gs) & 0xffff],
    ];
    for (const [seg, s] of sel) {
      if (!loadGuestSegment(cpu, seg, s, ring, seg === CS, seg === SS)) cpu.loadSegmentCache(seg, s, 0, 0, 0);
    }
    d.constructed = true;
    return 0;
  });
}

/** The first SETDOMAININFO of a vcpu: everything else, in Xen's order (semantics.md §8.3). */
function firstContext(hv: Hypervisor, d: Domain, v: Vcpu, dv: DataView): number {
  const F = FullExecutionContext;
  const u32 = (off: number): number => dv.getUint32(off, true);
  for (let i = 0; i < 256; i++) {
    const e = F.trap_ctxt + i * TrapInfo.SIZE;
    v.trapFlags[i] = dv.getUint8(e + TrapInfo.flags);
    v.trapCs[i] = dv.getUint16(e + TrapInfo.cs, true);
    v.trapAddress[i] = u32(e + TrapInfo.address);
  }
  const frc = doSetFastTrap(v, u32(F.fast_trap_idx));
  if (frc !== 0) return frc;
  v.ldtBase = u32(F.ldt_base);
  v.ldtEnts = u32(F.ldt_ents);
  v.kernelSs = u32(F.kernel_ss) & 0xffff;
  v.kernelEsp = u32(F.kernel_esp);
  for (let i = 0; i < 8; i++) doSetDebugreg(hv, v, i, u32(F.debugreg + i * 4));
  v.eventCs = u32(F.event_callback_cs) & 0xffff;
  v.eventEip = u32(F.event_callback_eip) | 0; // int32, as the CPU keeps EIP (Vcpu.trapAddress)
  v.failsafeCs = u32(F.failsafe_callback_cs) & 0xffff;
  v.failsafeEip = u32(F.failsafe_callback_eip) | 0;
  if (v.id === 0) d.vmAssist = u32(F.vm_assist);

  const cpu = hv.cpu;
  const base = u32(F.pt_base) >>> 12;
  ptwrFlushAll(hv, d); // a new base pointer: no unchecked window may go live in it
  if (!hv.frames.isRam(base) || !hv.mm.getPageAndType(base, d.id, PGT_l2_page_table)) return -EINVAL;
  v.baseMfn = base;
  cpu.cr0 = CR0_GUEST;
  cpu.setCr3(base * 4096);
  cpu.gdtrBase = gdtVirtStart(v);
  cpu.gdtrLimit = d.abi.gdt.defaultLimit;
  cpu.loadSegmentCache(LDTR, 0, 0, 0, 0);
  cpu.loadSegmentCache(TR, 0, 0, 0, 0x8b);
  const ents = u32(F.gdt_ents);
  if (ents !== 0) {
    const g = d.abi.gdt;
    let rc = -EINVAL;
    if (ents >= g.minEntries && ents <= g.maxEntries) {
      const frames: number[] = [];
      for (let i = 0; i < Math.ceil(ents / GDT_ENTRIES_PER_PAGE); i++) frames.push(u32(F.gdt_frames + i * 4));
      rc = setGdt(hv, v, frames);
    }
    if (rc !== 0) {
      v.baseMfn = 0;
      hv.mm.putPageAndType(base);
      return rc;
    }
    cpu.flushTlb();
    cpu.gdtrLimit = g.fixedLimit ?? ents * GDT_ENTRY_SIZE - 1;
  }
  return 0;
}

/** getdomaininfo's ctxt: the vcpu's full execution context as Xen reports it (§8.3). */
export function getVcpuContext(hv: Hypervisor, v: Vcpu): Uint8Array {
  const F = FullExecutionContext;
  const X = ExecutionContext;
  const out = new Uint8Array(F.SIZE);
  const dv = new DataView(out.buffer);
  const put = (off: number, value: number): void => dv.setUint32(off, value >>> 0, true);
  // The live registers if the vcpu is on the CPU, else its saved context.
  const ctx = new CpuContext();
  if (hv.current === v) ctx.save(hv.cpu);
  else if (v.context !== null) {
    ctx.regs.set(v.context.regs);
    ctx.eip = v.context.eip;
    ctx.eflags = v.context.eflags;
    ctx.segSel.set(v.context.segSel);
  }
  let flags = 0;
  if (v.fpuValid) flags |= EcfFlags.I387_VALID;
  if (v.inKernel) flags |= EcfFlags.IN_KERNEL;
  put(F.flags, flags);
  const c = F.cpu_ctxt;
  const r = ctx.regs;
  put(c + X.ebx, r[3]);
  put(c + X.ecx, r[1]);
  put(c + X.edx, r[2]);
  put(c + X.esi, r[6]);
  put(c + X.edi, r[7]);
  put(c + X.ebp, r[5]);
  put(c + X.eax, r[0]);
  put(c + X.eip, ctx.eip);
  put(c + X.cs, ctx.segSel[CS]);
  put(c + X.eflags, (ctx.eflags & ~IOPL_MASK) | (v.iopl << 12));
  put(c + X.esp, r[4]);
  put(c + X.ss, ctx.segSel[SS]);
  put(c + X.es, ctx.segSel[ES]);
  put(c + X.ds, ctx.segSel[DS]);
  put(c + X.fs, ctx.segSel[FS]);
  put(c + X.gs, ctx.segSel[GS]);
  if (v.fpuImage !== null) out.set(v.fpuImage, F.fpu_ctxt);
  for (let i = 0; i < 256; i++) {
    const e = F.trap_ctxt + i * TrapInfo.SIZE;
    dv.setUint8(e + TrapInfo.vector, i);
    dv.setUint8(e + TrapInfo.flags, v.trapFlags[i]);
    dv.setUint16(e + TrapInfo.cs, v.trapCs[i], true);
    put(e + TrapInfo.address, v.trapAddress[i]);
  }
  put(F.fast_trap_idx, v.fastTrap);
  put(F.ldt_base, v.ldtBase);
  put(F.ldt_ents, v.ldtEnts);
  // gdt_frames / gdt_ents only when a guest GDT is installed (its frame 0 is not Xen's).
  const pd = v.domain.perdomainMfn;
  const gdt0 = pd >= 0 ? hv.read32(pd * 4096 + v.id * 32 * 4) : 0;
  if (gdt0 & _PAGE_PRESENT && gdt0 >>> 12 !== v.domain.defaultGdtMfn) {
    let n = 0;
    for (let i = 0; i < F.GDT_FRAMES; i++) {
      const pte = hv.read32(pd * 4096 + (v.id * 32 + i) * 4);
      if ((pte & _PAGE_PRESENT) === 0) break;
      put(F.gdt_frames + i * 4, pte >>> 12);
      n++;
    }
    const limit = hv.current === v ? hv.cpu.gdtrLimit : (v.context?.gdtrLimit ?? 0);
    put(F.gdt_ents, Math.min(n * GDT_ENTRIES_PER_PAGE, Math.floor((limit + 1) / GDT_ENTRY_SIZE)));
  }
  put(F.kernel_ss, v.kernelSs);
  put(F.kernel_esp, v.kernelEsp);
  put(F.pt_base, v.baseMfn * 4096);
  for (let i = 0; i < 8; i++) put(F.debugreg + i * 4, v.debugreg[i]);
  put(F.event_callback_cs, v.eventCs);
  put(F.event_callback_eip, v.eventEip);
  put(F.failsafe_callback_cs, v.failsafeCs);
  put(F.failsafe_callback_eip, v.failsafeEip);
  put(F.vm_assist, v.domain.vmAssist);
  return out;
}

// ---------------------------------------------------------------------------------------------
// dom0

export interface Dom0Layout {
  /** Pages of dom0's memory (one L2, one L1, the rest mapped as its request buffers). */
  pages: number;
  /** Virtual address the buffers are mapped at (4 MiB aligned, below the hypervisor). */
  bufferVa: number;
  /** dom0's interface revision (the toolstack's dom0_op, event and MMU layouts). */
  abi?: AbiName;
}

/**
 * Builds domain 0 (Xen's domain_build.c, for a dom0 whose vcpu runs TypeScript): privileged and
 * physdev-capable, with an L2 and one L1 (pinned, the L2 its base pointer) that map its other
 * pages writable at bufferVa — the toolstack's request buffers — and a ring-1 context on that
 * address space. It is never scheduled: its hypercalls come through Hypervisor.hypercallAs and
 * its upcalls call `upcall`. The trace buffers are created and shared with it.
 */
export function buildDom0(hv: Hypervisor, layout: Dom0Layout, upcall: (v: Vcpu) => void): Domain {
  const { pages, bufferVa } = layout;
  if (hv.domains.has(0)) throw new Error("domain 0 exists already");
  if (!Number.isInteger(pages) || pages < 3 || pages > 1026)
    throw new RangeError(`dom0 pages must be 3..1026, not ${pages}`);
  if (bufferVa % (1 << 22) !== 0 || bufferVa + (pages - 2) * 4096 > 0xfc000000)
    throw new RangeError(`dom0 buffer address 0x${bufferVa.toString(16)} is not a 4 MiB boundary below Xen`);
  const d = hv.createDomain("Domain-0", pages, true, layout.abi, 0);
  d.hostUpcall = upcall;
  const frames = [...d.pages];
  let pfn = 0;
  for (const mfn of frames) hv.setM2p(mfn, pfn++);
  const [l2, l1, ...data] = frames;
  hv.scrubFrame(l2);
  hv.scrubFrame(l1);
  const flags = _PAGE_PRESENT | _PAGE_RW | _PAGE_ACCESSED | _PAGE_DIRTY;
  hv.mem.write32(l2 * 4096 + (bufferVa >>> 22) * 4, (l1 * 4096) | flags);
  data.forEach((mfn, i) => {
    hv.scrubFrame(mfn);
    hv.mem.write32(l1 * 4096 + i * 4, (mfn * 4096) | flags);
  });
  const v = d.vcpus[0];
  if (!hv.mm.pin(l2, 0, PGT_l2_page_table) || !hv.mm.getPageAndType(l2, 0, PGT_l2_page_table))
    throw new Error("dom0's page directory does not validate");
  v.baseMfn = l2;
  const S = d.abi.selectors;
  const ctx = new CpuContext();
  ctx.cpl = 1;
  ctx.cr0 = CR0_GUEST;
  ctx.cr3 = l2 * 4096;
  ctx.eflags = IF | 2;
  ctx.gdtrBase = gdtVirtStart(v);
  ctx.gdtrLimit = d.abi.gdt.defaultLimit;
  v.context = ctx;
  hv.onVcpu(v, () => {
    loadGuestSegment(hv.cpu, CS, S.FLAT_KERNEL_CS, 1, true, false);
    for (const seg of [SS, DS, ES, FS, GS])
      loadGuestSegment(hv.cpu, seg, S.FLAT_KERNEL_DS, 1, false, seg === SS);
    hv.cpu.loadSegmentCache(TR, 0, 0, 0, 0x8b);
  });
  // Xen sets every upcall mask of dom0; its toolstack takes events as callbacks regardless.
  d.constructed = true;
  v.doneInit = true;
  hv.tbufs = TraceBuffers.create(hv, 0);
  return d;
}

/** Frames of d's memory in page-list order (GETMEMLIST). */
export function memList(d: Domain): number[] {
  return [...d.pages];
}

/**
 * Sets the interface revision of a domain that is not yet constructed (tsxen's toolstack
 * extension: dom0_op has no field for it, so the builder names it between CREATEDOMAIN and
 * SETDOMAININFO). Re-lays Xen's reserved GDT entries into the revision's GDT page (MAR page 0,
 * JUL page 14). Returns 0, or -EINVAL once the domain is constructed.
 */
export function setDomainAbi(hv: Hypervisor, d: Domain, abi: GuestAbi): number {
  if (d.constructed) return -EINVAL;
  if (d.abi === abi) return 0;
  // The grant table's size follows the revision (MAR 1 frame, JUL 4: abi.md §2.9.1).
  const rc = resizeGrantTable(hv, d, abi.grant);
  if (rc !== 0) return rc;
  const old = d.abi.gdt.reservedPage;
  d.abi = abi;
  const g = abi.gdt;
  hv.scrubFrame(d.defaultGdtMfn);
  const gdtPageBase = g.reservedPage * GDT_ENTRIES_PER_PAGE;
  for (const [index, lo, hi] of xenGdtEntries(g.firstReservedEntry)) {
    hv.mem.write32(d.defaultGdtMfn * 4096 + (index - gdtPageBase) * 8, lo);
    hv.mem.write32(d.defaultGdtMfn * 4096 + (index - gdtPageBase) * 8 + 4, hi);
  }
  const pd = d.perdomainMfn * 4096;
  const pte = hv.mem.read32(pd + old * 4);
  hv.mem.write32(pd + old * 4, 0);
  hv.mem.write32(pd + g.reservedPage * 4, pte);
  hv.cpu.invalidateCode(d.defaultGdtMfn * 4096, 4096);
  hv.cpu.flushTlb();
  return 0;
}
