/**
 * The hypervisor: machine memory and its frame table, the domains, the physical CPU, the
 * virtual clock and the run loop that turns CPU exits into Xen's behaviour. One physical CPU
 * for now; vcpus are switched on it by saving and restoring their register state.
 */
import { CpuContext } from "../cpu/context.js";
import { CPU_FAULT, Cpu } from "../cpu/cpu.js";
import { storeAsDoubles } from "../cpu/doubles.js";
import { EAX, EBX, ECX, EDI, EDX, ESI, Exit } from "../cpu/regs.js";
import { VirtualClock } from "../machine/clock.js";
import { IrqController } from "../machine/irq.js";
import { framesInMiB, MachineMemory } from "../machine/memory.js";
import { type PciBus, standardPciBus } from "../machine/pci.js";
import {
  _PAGE_ACCESSED,
  _PAGE_DIRTY,
  _PAGE_PRESENT,
  _PAGE_RW,
  M2P_INVALID_ENTRY,
  M2P_UNSET_ENTRY,
} from "../public/arch_x86_32.js";
import { Trc } from "../public/trace.js";
import { DomId, VirqMar } from "../public/xen.js";
import { type AbiName, abiByName, DEFAULT_ABI } from "./abi.js";
import { ConsoleRing } from "./console_ring.js";
import { invalidateShadowLdt, validateDescriptorPage } from "./descriptor_tables.js";
import { xenGdtEntries } from "./descriptors.js";
import { Domain, DomainState, type Vcpu } from "./domain.js";
import { releaseDomain } from "./domain_ctl.js";
import { sendGuestVirq } from "./event_channel.js";
import {
  FrameTable,
  PGT_gdt_page,
  PGT_l2_page_table,
  PGT_validated,
  PGT_writable_page,
} from "./frame_table.js";
import {
  createGrantTable,
  gnttabCheckUnmap,
  gnttabNotifyTransfer,
  gnttabPrepareForTransfer,
} from "./grant_table.js";
import { GuestMemory } from "./guest_access.js";
import { assertInvariants, doHypercall } from "./hypercall.js";
import { InvariantError } from "./invariants.js";
import { GuestIrqs, nextMachineInterruptNs, serviceMachineInterrupts } from "./irq.js";
import { Mm, type MmHost } from "./mm.js";
import { domainIomemInPfn, physdevInitDom0 } from "./physdev.js";
import { PtwrInfo, ptwrBeforeDevalidate, ptwrFlushAll } from "./ptwr.js";
import { makePolicy } from "./sched_policy.js";
import { Scheduler } from "./scheduler.js";
import { reloadSwitchedIn } from "./switch_segments.js";
import type { TraceBuffers } from "./trace.js";
import {
  deliverEvents,
  fastTrapInRun,
  handleException,
  pageFaultInRun,
  upcallMask,
  upcallPending,
} from "./traps.js";

export interface HypervisorOptions {
  /** Machine memory in MiB (default 128). */
  memoryMiB?: number;
  /** Virtual TSC frequency in Hz (must divide 1 GHz). */
  tscHz?: number;
  /** Console output of a domain (console_io writes), byte for byte. */
  onConsole?: (domain: Domain, bytes: Uint8Array) => void;
  /** Hypervisor messages (what Xen would printk). */
  onLog?: (message: string) => void;
  /** Scheduling policy chosen at boot: "bvt" (Xen's) or "rrobin". */
  scheduler?: string;
  /** Physical CPUs (simulated, interleaved deterministically). */
  cpus?: number;
  /** Check the frame table's invariants after every hypercall (default: env TSXEN_CHECK_INVARIANTS=1). */
  checkInvariants?: boolean;
}

/** Size of the serial input ring (consoleInput drops what does not fit). */
export const CONSOLE_RING = 128;

/** Why run() returned. */
export type RunResult =
  | { kind: "shutdown"; domain: Domain; reason: number }
  | { kind: "crashed"; domain: Domain; why: string }
  | { kind: "time-limit" }
  /** run's host deadline passed first: nothing happened to the machine, run again to go on. */
  | { kind: "host-limit" }
  | { kind: "idle"; why: string }
  /** A host debugger asked the run to stop (requestStop). */
  | { kind: "stopped" };

/** A host debugger (the gdb stub's target) watching the hypervisor. */
export interface HypervisorDebugHook {
  /**
   * A fault of vcpu v that Xen would bounce to the guest, which has no handler for it (EIP 0
   * in its trap table): true leaves it unbounced, at the faulting instruction, the run stopped.
   */
  unhandledFault(v: Vcpu, vector: number): boolean;
  /**
   * A fault of vcpu v is about to crash its domain (no handler, or none that can run): true
   * keeps the domain as it is, at the faulting instruction, and the hook stops the run.
   */
  fatalFault(v: Vcpu, why: string): boolean;
}

/** Virtual cycles charged for each exit into the hypervisor (about 1 µs at 100 MHz). */
const EXIT_COST_CYCLES = 100;
/** Most instructions run between two looks at the timers when nothing else is due. */
const MAX_SLICE = 1 << 20;
/**
 * run()'s looks at the host clock for its hostDeadlineMs: about every HOST_LOOK_MS, at most
 * HOST_LOOK_MAX turns of its loop (exits, mostly) apart (a look costs about as much as an exit).
 */
const HOST_LOOK_MS = 1;
const HOST_LOOK_MAX = 64;

export class Hypervisor implements MmHost {
  readonly mem: MachineMemory;
  readonly cpu: Cpu;
  readonly frames: FrameTable;
  readonly mm: Mm;
  readonly clock: VirtualClock;
  readonly guest: GuestMemory;
  readonly domains = new Map<number, Domain>();
  current: Vcpu | null = null;
  /** Added to system time to form the wall clock (DOM0_SETTIME). */
  wallClockOffsetUs = 0;
  trace: ((v: Vcpu, hypercall: number) => void) | null = null;
  /** Fast trap gates taken inside the CPU's run, without an exit (traps.ts fastTrapInRun). */
  fastTrapsInRun = 0;
  /** Page faults bounced inside the CPU's run (traps.ts pageFaultInRun). */
  pageFaultsInRun = 0;
  /** Called after every hypercall from a guest (tests run the invariant checker here). */
  afterHypercall: ((v: Vcpu, hypercall: number) => void) | null = null;
  /**
   * Recompute the frame table's invariants after every hypercall (a broken one throws an
   * InvariantError out of run()). Costly; on in the test suite.
   */
  checkInvariantsAfterHypercall: boolean;
  /** Xen's per-CPU deferred_ops (mmu.ts DOP_*), run at the end of mmu_update/update_va_mapping. */
  deferredOps = 0;
  /** Writable page-table state of the one physical CPU (semantics.md §2). */
  readonly ptwr = new PtwrInfo();
  /** The machine's physical interrupt lines (and NMI sources). */
  readonly irq = new IrqController();
  /** The machine's PCI bus (physdev_op's PCI ops, semantics.md §9.1); INTx wired to this.irq. */
  readonly pci: PciBus = standardPciBus(this.irq);
  /** Which domains each physical IRQ is bound to (bind_pirq, semantics.md §5.5). */
  readonly guestIrqs = new GuestIrqs();
  private readonly m2pFrames: number[] = [];
  private readonly m2pL1: number;
  private nextDomid = 1;
  /** Xen's console ring: printk output, drained by DOM0_READCONSOLE (semantics.md §9.2). */
  readonly consoleRing = new ConsoleRing();
  /** Trace buffers (DOM0_GETTBUFS), created with dom0; null before. */
  tbufs: TraceBuffers | null = null;
  /** A host debugger; null when none is attached. */
  debugHook: HypervisorDebugHook | null = null;
  /** The vcpu whose exception exit is being handled (for debugHook.fatalFault). */
  private faultingVcpu: Vcpu | null = null;
  /** Host work queued from inside the hypervisor (dom0 upcalls), run between exits. */
  private readonly deferred: Array<() => void> = [];
  readonly sched: Scheduler;
  /**
   * cpu.retiredTotal when the current physical CPU's clock was last brought up to date (a
   * double from the start: past 2^31 a few seconds into a guest).
   */
  retiredSynced = 0;
  private result: RunResult | null = null;
  private readonly consoleIn: number[] = [];
  private readonly onConsole: (domain: Domain, bytes: Uint8Array) => void;
  private readonly onLog: (message: string) => void;

  constructor(opts: HypervisorOptions = {}) {
    // Frames 0..0x100 are I/O space, as on a PC (semantics.md §1.2): never allocated.
    this.mem = new MachineMemory(opts.memoryMiB ?? 128, 0x101);
    this.checkInvariantsAfterHypercall =
      opts.checkInvariants ?? globalThis.process?.env?.TSXEN_CHECK_INVARIANTS === "1";
    this.cpu = new Cpu(this.mem.bytes);
    this.cpu.softIntHook = (vector) => fastTrapInRun(this, vector);
    this.cpu.faultHook = () => pageFaultInRun(this);
    this.frames = new FrameTable(this.mem.nrFrames, this.mem.ramEnd);
    this.mm = new Mm(this);
    this.clock = new VirtualClock(opts.tscHz);
    this.guest = new GuestMemory(this.cpu);
    this.onConsole = opts.onConsole ?? (() => {});
    const log = opts.onLog ?? (() => {});
    this.onLog = (message) => {
      this.consoleRing.printk(message);
      log(message);
    };
    this.sched = new Scheduler(this, makePolicy(opts.scheduler ?? "bvt"), opts.cpus ?? 1);
    this.cpu.tscNow = () => this.nowCycles();
    this.m2pL1 = this.setUpM2p();
    storeAsDoubles(this, ["retiredSynced"]);
  }

  // ------------------------------------------------------------------ MmHost

  read32(ma: number): number {
    return this.cpu.physRead32(ma) >>> 0;
  }

  write32(ma: number, value: number): void {
    this.cpu.physWrite32(ma, value | 0);
  }

  isPrivileged(domid: number): boolean {
    return this.domains.get(domid)?.privileged ?? false;
  }

  ioMemoryAllowed(domid: number, mfn: number): boolean {
    const d = this.domains.get(domid);
    return d !== undefined && domainIomemInPfn(this, d, mfn);
  }

  m2pL1Frame(): number {
    return this.m2pL1;
  }

  perdomainFrame(domid: number): number {
    return this.domains.get(domid)?.perdomainMfn ?? 0;
  }

  frameFreed(mfn: number, owner: number): void {
    const d = this.domains.get(owner);
    d?.pages.delete(mfn);
    this.cpu.flushTlb();
    // A dying domain's page is scrubbed before anyone can get it (semantics.md §1.2), when it is
    // handed out again; its decoded code goes now. A live owner's goes back as it is, as in Xen.
    const dying = d === undefined || d.state === DomainState.Dying;
    if (dying) this.cpu.invalidateCode(mfn * 4096, 4096);
    this.mem.freeFrame(mfn, dying);
    // A dying domain is freed with its last page (semantics.md §8.1).
    if (d !== undefined && dying && d.pages.size === 0) releaseDomain(this, d);
  }

  /**
   * Zeroes a frame from the host, and drops the CPU's decoded code of it: a host write does not
   * pass the CPU's store checks, and a frame's next owner must not run what it held.
   */
  scrubFrame(mfn: number): void {
    this.mem.zeroFrame(mfn);
    this.cpu.invalidateCode(mfn * 4096, 4096);
  }

  flushTlbs(): void {
    this.cpu.flushTlb();
  }

  beforeDevalidate(mfn: number): void {
    ptwrBeforeDevalidate(this, mfn);
  }

  checkDescriptorPage(mfn: number): boolean {
    // Call-gate targets are checked against the owner's revision of VALID_CODESEL.
    return validateDescriptorPage(this, mfn, this.domains.get(this.frames.owner[mfn])?.abi);
  }

  invalidateShadowLdt(domid: number): void {
    const d = this.domains.get(domid);
    if (d) invalidateShadowLdt(this, d.vcpus[0]);
  }

  grantCheckUnmap(owner: number, mapper: number, mfn: number, readonly: boolean): boolean {
    return gnttabCheckUnmap(this, owner, mapper, mfn, readonly);
  }

  grantPrepareTransfer(receiver: number, sender: number, ref: number): boolean {
    return gnttabPrepareForTransfer(this, receiver, sender, ref);
  }

  grantNotifyTransfer(receiver: number, ref: number, mfn: number): void {
    gnttabNotifyTransfer(this, receiver, ref, mfn);
  }

  /** A hypervisor message (what Xen would printk to its console). */
  log(message: string): void {
    this.onLog(message);
  }

  // ------------------------------------------------------------------ machine set-up

  /** Allocates a frame owned by Xen (count allocated|1), or throws when memory is exhausted. */
  private allocXenFrame(type = 0): number {
    const mfn = this.mem.allocFrame();
    if (mfn < 0) throw new Error("out of machine memory for the hypervisor's own frames");
    this.scrubFrame(mfn);
    this.frames.assign(mfn, DomId.XEN);
    this.frames.typeInfo[mfn] = type;
    return mfn;
  }

  /**
   * The machine-to-phys table: dom_xen's frames, typed as descriptor pages with one type
   * reference so they can only ever be mapped read-only (semantics.md §1.8), mapped by one
   * L1 that every validated L2 installs at slot 1008 without RW or USER.
   */
  private setUpM2p(): number {
    const n = Math.ceil((this.mem.nrFrames * 4) / 4096);
    const l1 = this.allocXenFrame();
    for (let i = 0; i < n; i++) {
      const f = this.allocXenFrame(PGT_gdt_page | PGT_validated | 1);
      // Xen's boot fill: every entry M2P_UNSET_ENTRY until something sets it.
      new Uint32Array(this.mem.bytes.buffer, f * 4096, 1024).fill(M2P_UNSET_ENTRY);
      this.m2pFrames.push(f);
      this.mem.write32(l1 * 4096 + i * 4, (f * 4096) | _PAGE_PRESENT | _PAGE_ACCESSED | _PAGE_DIRTY);
    }
    return l1;
  }

  /** M2P[mfn] = value (the read-only table guests see at 0xFC000000). */
  setM2p(mfn: number, value: number): void {
    this.write32(this.m2pFrames[mfn >>> 10] * 4096 + (mfn & 1023) * 4, value);
  }

  // ------------------------------------------------------------------ domains

  /**
   * DOM0_CREATEDOMAIN: a paused domain with nrPages frames of memory, its shared_info page,
   * per-domain area and default GDT.
   */
  createDomain(
    name: string,
    nrPages: number,
    privileged = false,
    abi: AbiName = DEFAULT_ABI,
    id?: number,
  ): Domain {
    if (!Number.isInteger(nrPages) || nrPages < 1)
      throw new RangeError(`domain memory must be at least one page`);
    if (nrPages > this.mem.freeFrames - 4) {
      throw new RangeError(
        `not enough free machine memory for ${framesInMiB(nrPages)} MiB: ${framesInMiB(this.mem.freeFrames - 4)} MiB are free`,
      );
    }
    const guestAbi = abiByName(abi);
    if (guestAbi === null) throw new RangeError(`unknown guest interface revision ${JSON.stringify(abi)}`);
    if (id !== undefined && this.domains.has(id)) throw new RangeError(`domain ${id} exists`);
    while (id === undefined && this.domains.has(this.nextDomid)) this.nextDomid++;
    const d = new Domain(id ?? this.nextDomid++, name, privileged);
    d.abi = guestAbi;
    d.maxPages = nrPages;
    this.domains.set(d.id, d);
    d.timerWatch = this.sched;
    this.sched.changed();
    if (privileged) physdevInitDom0(this, d);
    // shared_info: a Xen page shared writable with the domain (semantics.md §1.11).
    d.sharedInfoMfn = this.allocXenFrame();
    this.frames.owner[d.sharedInfoMfn] = d.id;
    this.frames.typeInfo[d.sharedInfoMfn] = PGT_writable_page | PGT_validated | 1;
    this.setM2p(d.sharedInfoMfn, M2P_INVALID_ENTRY);
    // The grant table's shared page, another Xen page shared with the domain (semantics.md §6.1).
    if (!createGrantTable(this, d)) throw new Error("out of machine memory for the hypervisor's own frames");
    // The default GDT holds only Xen's reserved entries; the per-domain L1 maps it as GDT page
    // gdt.reservedPage (MAR 0, JUL 14: abi.md §3.2).
    d.defaultGdtMfn = this.allocXenFrame();
    const gdtPageBase = guestAbi.gdt.reservedPage * 512;
    for (const [index, lo, hi] of xenGdtEntries(guestAbi.gdt.firstReservedEntry)) {
      this.mem.write32(d.defaultGdtMfn * 4096 + (index - gdtPageBase) * 8, lo);
      this.mem.write32(d.defaultGdtMfn * 4096 + (index - gdtPageBase) * 8 + 4, hi);
    }
    d.perdomainMfn = this.allocXenFrame();
    this.mem.write32(
      d.perdomainMfn * 4096 + guestAbi.gdt.reservedPage * 4,
      (d.defaultGdtMfn * 4096) | _PAGE_PRESENT | _PAGE_RW | _PAGE_ACCESSED | _PAGE_DIRTY,
    );
    for (let i = 0; i < nrPages; i++) {
      const mfn = this.mem.allocFrame();
      this.frames.assign(mfn, d.id);
      d.pages.add(mfn);
    }
    return d;
  }

  /** SCHEDOP_shutdown for a domU: it never runs again; dom0 hears of it (VIRQ_DOM_EXC). */
  shutdownDomain(d: Domain, reason: number, crashed: boolean): void {
    if (d.state !== DomainState.Running) return;
    d.state = crashed ? DomainState.Crashed : DomainState.Shutdown;
    d.shutdownCode = reason;
    for (const v of d.vcpus) this.sched.sleep(v);
    this.notifyDom0(VirqMar.DOM_EXC);
    this.result ??= crashed
      ? { kind: "crashed", domain: d, why: "the guest reported a crash (SCHEDOP_shutdown, reason crash)" }
      : { kind: "shutdown", domain: d, reason };
  }

  /** domain_crash: the guest did something fatal. */
  crashDomain(d: Domain, why: string): void {
    if (d.state !== DomainState.Running) return;
    const fv = this.faultingVcpu;
    if (fv !== null && fv.domain === d && this.debugHook?.fatalFault(fv, why)) return;
    this.onLog(`domain ${d.id} (${d.name}) crashed: ${why}`);
    d.state = DomainState.Crashed;
    for (const v of d.vcpus) this.sched.sleep(v);
    this.notifyDom0(VirqMar.DOM_EXC);
    this.result ??= { kind: "crashed", domain: d, why };
  }

  private notifyDom0(virq: number): void {
    const dom0 = this.domains.get(0);
    if (dom0) sendGuestVirq(this, dom0.vcpus[0], virq);
  }

  // ------------------------------------------------------------------ console

  consoleWrite(d: Domain, bytes: Uint8Array): void {
    for (const b of bytes) d.consoleOut.push(b);
    this.onConsole(d, bytes);
  }

  /** Queues serial input (128-byte ring; characters beyond it are dropped). */
  consoleInput(bytes: Uint8Array): void {
    const wasEmpty = this.consoleIn.length === 0;
    for (const b of bytes) if (this.consoleIn.length < CONSOLE_RING) this.consoleIn.push(b);
    // A character queued into an empty ring raises VIRQ_CONSOLE on dom0 vcpu0 (semantics.md §9.2).
    if (wasEmpty && this.consoleIn.length > 0) this.notifyDom0(VirqMar.CONSOLE);
  }

  /** Bytes of serial input queued and not yet read. */
  consoleQueued(): number {
    return this.consoleIn.length;
  }

  consoleRead(count: number): Uint8Array {
    return Uint8Array.from(this.consoleIn.splice(0, Math.min(count, this.consoleIn.length)));
  }

  // ------------------------------------------------------------------ scheduling

  /** The current physical CPU's clock, in cycles, including the instructions run so far. */
  nowCycles(): number {
    return this.sched.cur.cycles + (this.cpu.retiredTotal - this.retiredSynced);
  }

  nowNs(): number {
    return this.clock.ns(this.nowCycles());
  }

  block(v: Vcpu): void {
    this.tbufs?.record(this, v.processor, Trc.SCHED_BLOCK, v.domain.id, v.id);
    v.blocked = true;
    this.sched.sleep(v);
  }

  wake(v: Vcpu): void {
    v.blocked = false;
    this.sched.wake(v);
  }

  yieldVcpu(v: Vcpu): void {
    this.tbufs?.record(this, v.processor, Trc.SCHED_YIELD, v.domain.id, v.id);
    const p = this.sched.pcpus[v.processor];
    p.needResched = true;
    if (p === this.sched.cur) this.cpu.runEnd = 0;
  }

  /** Writes vcpu v's EAX, on the core if v is there, else in its saved context. */
  setGuestEax(v: Vcpu, value: number): void {
    if (this.current === v) this.cpu.regs[EAX] = value;
    else if (v.context !== null) v.context.regs[EAX] = value;
  }

  pauseDomain(d: Domain): void {
    if (d.paused) return;
    d.paused = true;
    for (const v of d.vcpus) this.sched.sleep(v);
  }

  unpauseDomain(d: Domain): void {
    if (!d.paused) return;
    d.paused = false;
    for (const v of d.vcpus) this.sched.wake(v);
  }

  /** Puts vcpu v's register state on the emulated core (saving whoever was there). */
  private switchTo(v: Vcpu): void {
    if (this.current === v) return;
    // Writable page tables are flushed when the CPU leaves a vcpu (semantics.md §2 and §7:
    // __enter_scheduler flushes prev's state whenever next != prev), so a window never
    // outlives the address space it was opened in.
    if (this.current) ptwrFlushAll(this, this.current.domain);
    // The CPU runs on the incoming context's own x87 unit (CpuContext.switchIn): nothing is
    // copied, and no unit but the running vcpu's is ever the CPU's.
    const from = this.current?.context;
    if (from) {
      if (v.context) from.save(this.cpu);
      else from.detach(this.cpu);
    }
    this.current = v;
    v.context?.switchIn(this.cpu);
    if (this.checkInvariantsAfterHypercall && v.context && !v.context.segmentsOn(this.cpu))
      throw new InvariantError(
        `d${v.domain.id} v${v.id}: a switch-in left the CPU's segments apart from its context's`,
      );
  }

  /** Folds the instructions the core retired into the current physical CPU's clock. */
  private syncClock(): number {
    const ran = this.cpu.retiredTotal - this.retiredSynced;
    this.sched.cur.cycles += ran;
    this.retiredSynced = this.cpu.retiredTotal;
    return ran;
  }

  /**
   * Runs the machine until a domain shuts down or crashes, every domain is blocked with
   * nothing to wake it, or system time reaches limitNs on every physical CPU; or, when given,
   * the host clock (performance.now()) passes hostDeadlineMs, looked at between exits: a
   * caller on an event loop stays responsive however slow an exit is (invariant checks after
   * each hypercall). Stopping there and running again is the same run: virtual time does not
   * depend on it.
   */
  run(limitNs = Number.POSITIVE_INFINITY, hostDeadlineMs = Number.POSITIVE_INFINITY): RunResult {
    const limitCycles = Number.isFinite(limitNs) ? this.clock.cyclesAt(limitNs) : Number.POSITIVE_INFINITY;
    this.result = null;
    const sched = this.sched;
    const hostBound = Number.isFinite(hostDeadlineMs);
    let lookedAt = hostBound ? performance.now() : 0;
    // Turns between two looks at the host clock, halved while they take long, doubled while
    // quick. The first look is after a turn: every call goes forward, however late.
    let lookEvery = 1;
    let untilLook = 2;
    while (this.result === null) {
      this.runDeferred();
      if (hostBound && --untilLook === 0) {
        const now = performance.now();
        if (now >= hostDeadlineMs) return { kind: "host-limit" };
        lookEvery =
          now - lookedAt > HOST_LOOK_MS
            ? Math.max(1, lookEvery >> 1)
            : Math.min(HOST_LOOK_MAX, lookEvery << 1);
        untilLook = lookEvery;
        lookedAt = now;
      }
      const p = sched.pickCpu();
      if (p.cycles >= limitCycles) return { kind: "time-limit" };
      sched.cur = p;
      this.retiredSynced = this.cpu.retiredTotal;
      sched.runTimers(p);
      serviceMachineInterrupts(this);
      if (p.needResched || p.cycles >= p.sliceEnd || (p.curr !== null && !sched.runnable(p.curr)))
        sched.schedule(p);
      // No periodic device (most machines): nothing due, without the two calls a turn.
      const irqDue = this.irq.hasPeriodic ? nextMachineInterruptNs(this) : Number.POSITIVE_INFINITY;
      const horizon = Math.min(
        sched.horizon(p),
        limitCycles,
        Number.isFinite(irqDue) ? this.clock.cyclesAt(irqDue) : irqDue,
      );
      const v = p.curr;
      if (v === null) {
        if (!sched.anythingPending() && !Number.isFinite(irqDue))
          return { kind: "idle", why: "every domain is blocked with no timer set" };
        // Idle: this CPU's clock jumps to the next thing due.
        p.idleCycles += horizon - p.cycles;
        p.cycles = horizon;
        continue;
      }
      // Switched back onto the CPU: Xen's load_segments reloads DS/ES/FS/GS (semantics.md §4.4),
      // skipped when nothing it reads has changed since the vcpu's last (switch_segments.ts).
      const switched = this.current !== v;
      this.switchTo(v);
      if (switched) reloadSwitchedIn(this, v);
      deliverEvents(this, v);
      if (!sched.runnable(v)) continue;
      let exit: Exit;
      try {
        exit = this.cpu.run(Math.max(1, Math.min(horizon - p.cycles, MAX_SLICE)));
      } catch (e) {
        // An exit taken inside the run broke an invariant: a hypervisor bug, as after an exit.
        if (e instanceof InvariantError) throw e;
        // A bug in the CPU emulation: it costs this domain, never the machine.
        v.cpuTimeNs += this.clock.ns(this.syncClock());
        this.crashDomain(
          v.domain,
          `internal error in the CPU: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`,
        );
        continue;
      }
      v.cpuTimeNs += this.clock.ns(this.syncClock());
      if (exit === Exit.Exception) {
        // Entering and leaving the hypervisor costs time on real hardware too: charging it
        // keeps tight hypercall loops (Mini-OS's yield loop) from stalling virtual time.
        p.cycles += EXIT_COST_CYCLES;
        v.cpuTimeNs += this.clock.ns(EXIT_COST_CYCLES);
      }
      try {
        this.handleExit(v, exit);
      } catch (e) {
        if (e === CPU_FAULT) this.crashDomain(v.domain, "fault inside the hypervisor's handling of an exit");
        else if (e instanceof InvariantError)
          throw e; // a hypervisor bug: fail loudly
        else
          this.crashDomain(
            v.domain,
            `internal error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`,
          );
      }
      this.syncClock();
    }
    this.runDeferred();
    return this.result;
  }

  /**
   * An exit vcpu v's fault took inside the CPU's run (traps.ts pageFaultInRun), accounted as
   * run() accounts one: EXIT_COST_CYCLES on its CPU and vcpu, and off the run's end (its
   * horizon stays where it was in cycles). Then the invariants as after any fault, and the run
   * ended where run()'s next turn would not go straight back into v: another CPU picked (the
   * first one that is not ahead of this one), a reschedule, host work queued, an upcall to
   * deliver, v not runnable. Every other look of that turn (timers, interrupts, the slice, the
   * time limit) is due at the horizon, which the run stops at.
   */
  exitInRun(v: Vcpu): void {
    const p = this.sched.cur;
    p.cycles += EXIT_COST_CYCLES;
    v.cpuTimeNs += this.clock.ns(EXIT_COST_CYCLES);
    this.cpu.runStop -= EXIT_COST_CYCLES;
    if (this.checkInvariantsAfterHypercall) assertInvariants(this, "a fault");
    const now = p.cycles + (this.cpu.retiredTotal - this.retiredSynced);
    if (
      p.needResched ||
      this.deferred.length > 0 ||
      !this.sched.runnable(v) ||
      (upcallMask(this, v) === 0 && upcallPending(this, v) !== 0) ||
      this.sched.picksOther(p, now)
    )
      this.cpu.runEnd = 0;
  }

  /**
   * Ends run() after the current exit, with the machine as it stands (a debugger stopping it);
   * the next run() goes on from there.
   */
  requestStop(): void {
    this.result ??= { kind: "stopped" };
    this.cpu.runEnd = 0;
  }

  /** Host work queued so far: the daemon's run loop takes a change for I/O (runloop.ts slop). */
  deferrals = 0;

  /** Queues host work (a dom0 upcall) to run at the next safe point, outside any hypercall. */
  defer(fn: () => void): void {
    this.deferrals++;
    this.deferred.push(fn);
  }

  /** Runs the queued host work (the run loop does so between exits). */
  runDeferred(): void {
    while (this.deferred.length > 0) this.deferred.shift()?.();
  }

  /** M2P[mfn]. */
  getM2p(mfn: number): number {
    return this.read32(this.m2pFrames[mfn >>> 10] * 4096 + (mfn & 1023) * 4);
  }

  /**
   * A hypercall issued by vcpu v from TypeScript (dom0's toolstack, DESIGN.md decision 2): v's
   * context goes on the CPU, so guest-virtual copies walk v's page tables, the registers carry
   * the arguments, and the same dispatch runs (privilege checks included); then the vcpu that
   * was on the CPU comes back (none if it died meanwhile). Returns EAX.
   */
  hypercallAs(v: Vcpu, nr: number, args: readonly number[] = []): number {
    return this.onVcpu(v, () => {
      const r = this.cpu.regs;
      r[EAX] = nr;
      [EBX, ECX, EDX, ESI, EDI].forEach((reg, i) => {
        r[reg] = args[i] ?? 0;
      });
      doHypercall(this, v);
      return r[EAX] | 0;
    });
  }

  /**
   * Runs fn with vcpu v's context on the CPU (a fresh context if it has none), then puts back
   * the vcpu that was there (none if its domain died meanwhile).
   */
  onVcpu<T>(v: Vcpu, fn: () => T): T {
    const prev = this.current;
    v.context ??= new CpuContext();
    this.switchTo(v);
    try {
      return fn();
    } finally {
      if (
        prev !== null &&
        prev !== v &&
        prev.domain.state !== DomainState.Dying &&
        this.domains.has(prev.domain.id)
      ) {
        this.switchTo(prev);
      } else if (prev !== v) {
        if (this.current === v) v.context.detach(this.cpu);
        this.current = null;
      }
    }
  }

  private handleExit(v: Vcpu, exit: Exit): void {
    switch (exit) {
      case Exit.Budget:
        return;
      case Exit.Halt:
        // hlt is privileged: at ring 1 the CPU raises #GP, so a Halt exit cannot come from a guest.
        this.crashDomain(v.domain, "the guest halted the processor");
        return;
      case Exit.Exception: {
        const soft = this.cpu.exitSoft;
        this.faultingVcpu = soft ? null : v;
        try {
          handleException(this, v);
        } finally {
          this.faultingVcpu = null;
        }
        // Faults reach the page-type rules too (writable page tables, emulated CR3 loads,
        // LDT shadowing): checked like hypercalls, which check themselves.
        if (this.checkInvariantsAfterHypercall && !soft) assertInvariants(this, "a fault");
        return;
      }
      case Exit.TripleFault:
        this.crashDomain(v.domain, "triple fault");
        return;
    }
  }

  /**
   * new_guest_cr3 (MMUEXT_NEW_BASEPTR): take the new L2 as base pointer (validating it), load
   * it, release the old one.
   */
  newBasePointer(v: Vcpu, mfn: number): boolean {
    // Every CR3 load (emulated mov, MMUEXT_NEW_BASEPTR, the builder) flushes first: a window's
    // unchecked entries must not go live in the new address space ([QUIRK] fixed, DEVIATIONS.md).
    ptwrFlushAll(this, v.domain);
    if (!this.frames.isRam(mfn) || !this.mm.getPageAndType(mfn, v.domain.id, PGT_l2_page_table)) return false;
    const old = v.baseMfn;
    v.baseMfn = mfn;
    if (this.current === v) this.cpu.setCr3(mfn * 4096);
    else if (v.context) v.context.cr3 = mfn * 4096;
    if (old !== 0) this.mm.putPageAndType(old);
    // The LDT is linear: its shadow pages go with the old address space (semantics.md §3.4).
    invalidateShadowLdt(this, v);
    return true;
  }
}
