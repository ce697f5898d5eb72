/**
 * The hypervisor: machine memory and its frame table, the domains, the physical CPU, the
 * virtual clock and the run loop that turns CPU exits into Xen's behaviour. One physical CPU
 * for now; vcpus are switched on it by saving and restoring their register state.
 */
import { CpuContext } from "../cpu/context.js";
import { Cpu, CPU_FAULT } from "../cpu/cpu.js";
import { CR0_ET, CR0_NE, CR0_PE, CR0_PG, CR0_WP, CS, DS, ES, Exit, FS, GS, SS } from "../cpu/regs.js";
import { VirtualClock } from "../machine/clock.js";
import { MachineMemory } from "../machine/memory.js";
import {
  _PAGE_ACCESSED,
  _PAGE_DIRTY,
  _PAGE_PRESENT,
  _PAGE_RW,
  FIRST_RESERVED_GDT_ENTRY_MAR,
  M2P_INVALID_ENTRY,
  M2P_UNSET_ENTRY,
  NR_RESERVED_GDT_ENTRIES_MAR,
  PERDOMAIN_VIRT_START,
  SelectorsMar,
} from "../public/arch_x86_32.js";
import { DomId, HZ, VirqMar } from "../public/xen.js";
import { decodeDescriptor, xenGdtEntries } from "./descriptors.js";
import { Domain, DomainState, type Vcpu } from "./domain.js";
import { sendGuestVirq } from "./event_channel.js";
import { FrameTable, PGT_gdt_page, PGT_l2_page_table, PGT_validated, PGT_writable_page } from "./frame_table.js";
import { GuestMemory } from "./guest_access.js";
import { Mm, type MmHost } from "./mm.js";
import { updateDomainTime } from "./schedule.js";
import { deliverEvents, handleException } from "./traps.js";

export interface HypervisorOptions {
  /** Machine memory in MiB (default 128). */
  memoryMiB?: number;
  /** Virtual TSC frequency in Hz (must divide 1 GHz). */
  tscHz?: number;
  /** Console output of a domain (console_io writes), byte for byte. */
  onConsole?: (domain: Domain, bytes: Uint8Array) => void;
  /** Hypervisor messages (what Xen would printk). */
  onLog?: (message: string) => void;
}

/** Why run() returned. */
export type RunResult =
  | { kind: "shutdown"; domain: Domain; reason: number }
  | { kind: "crashed"; domain: Domain; why: string }
  | { kind: "time-limit" }
  | { kind: "idle"; why: string };

/** Cycles between periodic ticks (HZ = 100). */
const TICK_NS = 1e9 / HZ;
/** Most instructions run between two looks at the timers when nothing else is due. */
const MAX_SLICE = 1 << 20;

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
  private readonly m2pFrames: number[] = [];
  private readonly m2pL1: number;
  private nextDomid = 1;
  private nextTickCycles: number;
  private lastTickCycles = 0;
  private result: RunResult | null = null;
  private readonly consoleIn: number[] = [];
  private readonly onConsole: (domain: Domain, bytes: Uint8Array) => void;
  private readonly onLog: (message: string) => void;
  private rrCursor = 0;

  constructor(opts: HypervisorOptions = {}) {
    // Frames 0..0x100 are I/O space, as on a PC (semantics.md §1.2): never allocated.
    this.mem = new MachineMemory(opts.memoryMiB ?? 128, 0x101);
    this.cpu = new Cpu(this.mem.bytes);
    this.frames = new FrameTable(this.mem.nrFrames);
    this.mm = new Mm(this);
    this.clock = new VirtualClock(opts.tscHz);
    this.guest = new GuestMemory(this.cpu);
    this.onConsole = opts.onConsole ?? (() => {});
    this.onLog = opts.onLog ?? (() => {});
    this.nextTickCycles = this.clock.cyclesAt(TICK_NS);
    this.cpu.readTsc = () => BigInt(this.nowCycles());
    this.m2pL1 = this.setUpM2p();
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

  m2pL1Frame(): number {
    return this.m2pL1;
  }

  perdomainFrame(domid: number): number {
    return this.domains.get(domid)?.perdomainMfn ?? 0;
  }

  frameFreed(mfn: number, owner: number): void {
    this.domains.get(owner)?.pages.delete(mfn);
    this.cpu.flushTlb();
    this.mem.freeFrame(mfn);
  }

  flushTlbs(): void {
    this.cpu.flushTlb();
  }

  // ------------------------------------------------------------------ machine set-up

  /** Allocates a frame owned by Xen (count allocated|1), or throws when memory is exhausted. */
  private allocXenFrame(type = 0): number {
    const mfn = this.mem.allocFrame();
    if (mfn < 0) throw new Error("out of machine memory for the hypervisor's own frames");
    this.mem.zeroFrame(mfn);
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
      this.mem.bytes.fill(0x55, f * 4096, (f + 1) * 4096);
      this.m2pFrames.push(f);
      this.mem.write32(l1 * 4096 + i * 4, (f * 4096) | _PAGE_PRESENT | _PAGE_ACCESSED | _PAGE_DIRTY);
    }
    void M2P_UNSET_ENTRY;
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
  createDomain(name: string, nrPages: number, privileged = false): Domain {
    if (!Number.isInteger(nrPages) || nrPages < 1) throw new RangeError(`domain memory must be at least one page`);
    if (nrPages > this.mem.freeFrames - 3) {
      throw new RangeError(
        `not enough free machine memory for ${nrPages} pages (${this.mem.freeFrames} frames free)`,
      );
    }
    const d = new Domain(this.nextDomid++, name, privileged);
    d.maxPages = nrPages;
    this.domains.set(d.id, d);
    // shared_info: a Xen page shared writable with the domain (semantics.md §1.11).
    d.sharedInfoMfn = this.allocXenFrame();
    this.frames.owner[d.sharedInfoMfn] = d.id;
    this.frames.typeInfo[d.sharedInfoMfn] = PGT_writable_page | PGT_validated | 1;
    this.setM2p(d.sharedInfoMfn, M2P_INVALID_ENTRY);
    // The default GDT holds only Xen's reserved entries; the per-domain L1 maps it.
    d.defaultGdtMfn = this.allocXenFrame();
    for (const [index, lo, hi] of xenGdtEntries()) {
      this.mem.write32(d.defaultGdtMfn * 4096 + index * 8, lo);
      this.mem.write32(d.defaultGdtMfn * 4096 + index * 8 + 4, hi);
    }
    d.perdomainMfn = this.allocXenFrame();
    this.mem.write32(d.perdomainMfn * 4096, (d.defaultGdtMfn * 4096) | _PAGE_PRESENT | _PAGE_RW | _PAGE_ACCESSED | _PAGE_DIRTY);
    for (let i = 0; i < nrPages; i++) {
      const mfn = this.mem.allocFrame();
      this.frames.assign(mfn, d.id);
      d.pages.add(mfn);
    }
    return d;
  }

  /**
   * The end of building (DOM0_SETDOMAININFO's role for vcpu 0): pin the bootstrap L2, take it
   * as the base pointer and load the initial registers (abi.md §4.5).
   */
  startDomain(
    d: Domain,
    l2Mfn: number,
    regs: { eip: number; esp: number; esi: number; eflags: number },
    kernelStack: { ss: number; esp: number },
  ): void {
    if (!this.mm.pin(l2Mfn, d.id, PGT_l2_page_table)) {
      throw new Error(`the bootstrap page directory (frame ${l2Mfn}) does not validate`);
    }
    const v = d.vcpus[0];
    if (!this.mm.getPageAndType(l2Mfn, d.id, PGT_l2_page_table)) throw new Error("cannot take the base pointer");
    v.baseMfn = l2Mfn;
    const S = SelectorsMar;
    v.trapCs.fill(S.FLAT_KERNEL_CS);
    v.eventCs = v.failsafeCs = S.FLAT_KERNEL_CS;
    v.kernelSs = kernelStack.ss;
    v.kernelEsp = kernelStack.esp;
    const ctx = new CpuContext();
    ctx.eip = regs.eip;
    ctx.eflags = regs.eflags | 2;
    ctx.regs[4] = regs.esp;
    ctx.regs[6] = regs.esi;
    ctx.cpl = 1;
    ctx.cr0 = CR0_PE | CR0_ET | CR0_NE | CR0_WP | CR0_PG;
    ctx.cr3 = l2Mfn * 4096;
    ctx.gdtrBase = PERDOMAIN_VIRT_START + (v.id << 17);
    ctx.gdtrLimit = (FIRST_RESERVED_GDT_ENTRY_MAR + NR_RESERVED_GDT_ENTRIES_MAR) * 8 - 1;
    const flat = (seg: number, sel: number): void => {
      const index = sel >>> 3;
      const c = decodeDescriptor(
        this.mem.read32(d.defaultGdtMfn * 4096 + index * 8),
        this.mem.read32(d.defaultGdtMfn * 4096 + index * 8 + 4),
      );
      ctx.segSel[seg] = sel;
      ctx.segBase[seg] = c.base;
      ctx.segLimit[seg] = c.limit;
      ctx.segAttr[seg] = c.attr | 1; // accessed, as the load would set it
    };
    flat(CS, S.FLAT_KERNEL_CS);
    for (const seg of [SS, DS, ES, FS, GS]) flat(seg, S.FLAT_KERNEL_DS);
    ctx.segAttr[6] = 0;
    ctx.segAttr[7] = 0x8b;
    v.context = ctx;
    d.paused = false;
  }

  /** SCHEDOP_shutdown for a domU: it never runs again; dom0 hears of it (VIRQ_DOM_EXC). */
  shutdownDomain(d: Domain, reason: number, crashed: boolean): void {
    if (d.state !== DomainState.Running) return;
    d.state = crashed ? DomainState.Crashed : DomainState.Shutdown;
    d.shutdownCode = reason;
    this.notifyDom0(VirqMar.DOM_EXC);
    this.result ??= crashed
      ? { kind: "crashed", domain: d, why: "the guest reported a crash (SCHEDOP_shutdown, reason crash)" }
      : { kind: "shutdown", domain: d, reason };
  }

  /** domain_crash: the guest did something fatal. */
  crashDomain(d: Domain, why: string): void {
    if (d.state !== DomainState.Running) return;
    this.onLog(`domain ${d.id} (${d.name}) crashed: ${why}`);
    d.state = DomainState.Crashed;
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
    for (const b of bytes) if (this.consoleIn.length < 128) this.consoleIn.push(b);
  }

  consoleRead(count: number): Uint8Array {
    return Uint8Array.from(this.consoleIn.splice(0, Math.min(count, this.consoleIn.length)));
  }

  // ------------------------------------------------------------------ scheduling

  nowCycles(): number {
    return this.clock.cycles(this.cpu.retired);
  }

  nowNs(): number {
    return this.clock.ns(this.nowCycles());
  }

  block(v: Vcpu): void {
    v.blocked = true;
    if (this.current === v) this.cpu.runEnd = 0;
  }

  wake(v: Vcpu): void {
    v.blocked = false;
  }

  yieldVcpu(v: Vcpu): void {
    if (this.current === v) this.cpu.runEnd = 0;
  }

  private runnableVcpus(): Vcpu[] {
    const out: Vcpu[] = [];
    for (const d of this.domains.values()) if (d.runnable) for (const v of d.vcpus) if (!v.blocked) out.push(v);
    return out;
  }

  private switchTo(v: Vcpu): void {
    if (this.current === v) return;
    if (this.current?.context) this.current.context.save(this.cpu);
    this.current = v;
    v.context?.restore(this.cpu);
    updateDomainTime(this, v, this.lastTickCycles);
  }

  /** Fires due one-shot timers and the periodic tick; returns the next cycle anything is due. */
  private runTimers(): number {
    const now = this.nowCycles();
    if (now >= this.nextTickCycles) {
      this.lastTickCycles = this.nextTickCycles;
      const ticks = Math.floor((now - this.nextTickCycles) / this.clock.cyclesAt(TICK_NS)) + 1;
      this.nextTickCycles += ticks * this.clock.cyclesAt(TICK_NS);
      const cur = this.current;
      if (cur?.domain.runnable && !cur.blocked) {
        updateDomainTime(this, cur, this.lastTickCycles);
        sendGuestVirq(this, cur, VirqMar.TIMER);
      }
    }
    let next = this.nextTickCycles;
    const nowNs = this.clock.ns(now);
    for (const d of this.domains.values()) {
      if (d.state !== DomainState.Running) continue;
      for (const v of d.vcpus) {
        if (v.timerDeadline < 0) continue;
        if (v.timerDeadline <= nowNs) {
          v.timerDeadline = -1;
          updateDomainTime(this, v, this.lastTickCycles);
          sendGuestVirq(this, v, VirqMar.TIMER);
        } else {
          next = Math.min(next, this.clock.cyclesAt(v.timerDeadline));
        }
      }
    }
    return next;
  }

  /**
   * Runs the machine until a domain shuts down or crashes, every domain is blocked with
   * nothing to wake it, or system time reaches limitNs.
   */
  run(limitNs = Number.POSITIVE_INFINITY): RunResult {
    const limitCycles = Number.isFinite(limitNs) ? this.clock.cyclesAt(limitNs) : Number.POSITIVE_INFINITY;
    this.result = null;
    while (this.result === null) {
      const next = Math.min(this.runTimers(), limitCycles);
      if (this.nowCycles() >= limitCycles) return { kind: "time-limit" };
      const ready = this.runnableVcpus();
      if (ready.length === 0) {
        if (!this.anyTimerPending()) {
          return { kind: "idle", why: "every domain is blocked with no timer set" };
        }
        // Idle: the clock jumps to the next thing due.
        this.clock.idleCycles += Math.max(0, next - this.nowCycles());
        continue;
      }
      const v = ready[this.rrCursor++ % ready.length];
      this.switchTo(v);
      deliverEvents(this, v);
      if (!v.domain.runnable) continue;
      const budget = Math.max(1, Math.min(next - this.nowCycles(), MAX_SLICE));
      const before = this.cpu.retired;
      const exit = this.cpu.run(budget);
      v.cpuTimeNs += this.clock.ns(this.cpu.retired - before);
      try {
        this.handleExit(v, exit);
      } catch (e) {
        if (e === CPU_FAULT) this.crashDomain(v.domain, "fault inside the hypervisor's handling of an exit");
        else this.crashDomain(v.domain, `internal error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
      }
    }
    return this.result;
  }

  private anyTimerPending(): boolean {
    for (const d of this.domains.values()) {
      if (d.state !== DomainState.Running || d.paused) continue;
      for (const v of d.vcpus) if (v.timerDeadline >= 0) return true;
    }
    return false;
  }

  private handleExit(v: Vcpu, exit: Exit): void {
    switch (exit) {
      case Exit.Budget:
        return;
      case Exit.Halt:
        // hlt is privileged: at ring 1 the CPU raises #GP, so a Halt exit cannot come from a guest.
        this.crashDomain(v.domain, "the guest halted the processor");
        return;
      case Exit.Exception:
        handleException(this, v);
        return;
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
    if (!this.frames.isRam(mfn) || !this.mm.getPageAndType(mfn, v.domain.id, PGT_l2_page_table)) return false;
    const old = v.baseMfn;
    v.baseMfn = mfn;
    if (this.current === v) this.cpu.setCr3(mfn * 4096);
    else if (v.context) v.context.cr3 = mfn * 4096;
    if (old !== 0) this.mm.putPageAndType(old);
    return true;
  }

  /** Privileged-instruction emulation on #GP(0) (semantics.md §4.8); false = reflect #GP. */
  emulatePrivileged(_v: Vcpu): boolean {
    return false;
  }
}
