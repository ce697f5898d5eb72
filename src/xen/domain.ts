/**
 * Domains and virtual CPUs: what the hypervisor keeps for each (semantics.md §8.1), apart
 * from the memory rules (mm.ts) and the event-channel table (event_channel.ts).
 */

import type { CpuContext } from "../cpu/context.js";
import { storeAsDoubles } from "../cpu/doubles.js";
import { NR_PIRQS } from "../public/event_channel.js";
import { NR_VIRQS } from "../public/xen.js";
import { ABIS, DEFAULT_ABI, type GuestAbi } from "./abi.js";
import { type EventChannels, newEventChannels } from "./event_channel.js";
import { type BvtParams, defaultBvtParams } from "./sched_policy.js";
import type { LogDirty } from "./shadow.js";

/** Why a domain stopped running for good. */
export const enum DomainState {
  Running = 0,
  Shutdown = 1,
  Crashed = 2,
  Dying = 3,
}

/**
 * Told of every change the scheduler's next-deadline cache depends on (scheduler.ts
 * earliestDeadline): a vcpu's one-shot timer or physical CPU, a domain's state.
 */
export interface TimerWatch {
  deadlineSet(v: Vcpu, old: number, ns: number): void;
  changed(): void;
}

/** Words of Vcpu.segKeep: 5 of key, 11 for each of DS, ES, FS, GS (switch_segments.ts). */
export const SEG_KEEP_WORDS = 5 + 4 * 11;

export class Vcpu {
  // The virtual IDT (set_trap_table): per vector, cs, address and flags (DPL | TI_IF).
  // Handler addresses (trapAddress, eventEip, failsafeEip, fastTrapEip) are int32, as the CPU
  // keeps EIP: a kernel at 0xc0000000 and up stays a small integer when a bounce loads it
  // (unsigned, V8 turns the CPU's EIP field into a heap number; test/exits-eipsmi). Compare
  // them unsigned with `>>> 0`; save images report them unsigned (domain_ctl's put).
  readonly trapCs = new Uint16Array(256);
  readonly trapAddress = new Int32Array(256);
  readonly trapFlags = new Uint8Array(256);
  eventCs = 0;
  eventEip = 0;
  failsafeCs = 0;
  failsafeEip = 0;
  /** The ring-1 stack used when a bounce interrupts ring 3 (stack_switch). */
  kernelSs = 0;
  kernelEsp = 0;
  /** Virtual CR2, CR0.TS, debug registers. */
  guestCr2 = 0;
  guestTs = false;
  readonly debugreg = new Uint32Array(8);
  /** Virtual IOPL (from the initial context's EFLAGS.IOPL), for emulated port I/O and cli/sti. */
  iopl = 0;
  /** The guest's own I/O bitmap (physdev SET_IOBITMAP): guest VA and port limit, 0 when none. */
  iobmp = 0;
  iobmpLimit = 0;
  /** Fast trap vector (set_fast_trap), 0 when none. */
  fastTrap = 0;
  /**
   * The gate set_fast_trap built from the trap table at the time (Xen writes a real IDT gate):
   * a later set_trap_table does not change it (semantics.md §4.9).
   */
  fastTrapCs = 0;
  fastTrapEip = 0;
  fastTrapDpl = 0;
  /** The guest's LDT (MMUEXT_SET_LDT): linear base and entries; pages shadowed so far. */
  ldtBase = 0;
  ldtEnts = 0;
  shadowLdtMapCount = 0;
  #timerDeadline = -1;
  /** One-shot timer deadline in ns of system time, or -1. */
  get timerDeadline(): number {
    return this.#timerDeadline;
  }
  set timerDeadline(ns: number) {
    const old = this.#timerDeadline;
    this.#timerDeadline = ns;
    this.domain.timerWatch?.deadlineSet(this, old, ns);
  }
  blocked = false;
  /**
   * EAX at a SCHEDOP_yield (the hypercall number), until the scheduler decides: Xen's
   * do_yield switches away inside __enter_scheduler, whose context switch never comes back
   * through the hypercall's result store, so a yield that lets another vcpu run resumes with
   * this EAX; one that finds no other vcpu returns 0 (seen on real Xen, issue 17).
   */
  yieldEax = 0;
  /** JUL SCHEDOP_vcpu_down: not runnable until SCHEDOP_vcpu_up. */
  down = false;
  /** Port bound to each VIRQ, 0 when none (port 0 is never bound to a VIRQ). */
  readonly virqPort = new Int32Array(NR_VIRQS);
  /** Machine frame of the current base page table (L2). */
  baseMfn = 0;
  /** Saved register state while the vcpu is not on a physical CPU. */
  context: CpuContext | null = null;
  /** What the last switch-in reload of the data segments read (switch_segments.ts). */
  readonly segKeep = new Int32Array(SEG_KEEP_WORDS);
  /** Virtual time consumed, in ns. */
  cpuTimeNs = 0;
  #processor = 0;
  /** The physical CPU this vcpu runs on. */
  get processor(): number {
    return this.#processor;
  }
  set processor(cpu: number) {
    this.#processor = cpu;
    this.domain.timerWatch?.changed();
  }
  /** DONEINIT: the first SETDOMAININFO applied everything (later ones only registers). */
  doneInit = false;
  /** ECF_I387_VALID / ECF_IN_KERNEL of the last SETDOMAININFO, and its 256-byte FPU image. */
  fpuValid = false;
  inKernel = true;
  fpuImage: Uint8Array | null = null;
  /** CPUPINNED (DOM0_PINCPUDOMAIN). */
  cpuPinned = false;
  /** BVT actual and effective virtual time; the tick count when it last stopped running. */
  avt = 0;
  evt = 0;
  sleepTick = 0;

  constructor(
    readonly domain: Domain,
    readonly id: number,
  ) {
    // ns past 2^31 (2.1 s): doubles from the start (storeAsDoubles).
    storeAsDoubles(this, ["cpuTimeNs"]);
    this.#timerDeadline = 0.5;
    this.#timerDeadline = -1;
  }
}

export class Domain {
  readonly vcpus: Vcpu[] = [];
  /** The guest interface revision this domain speaks (abi.ts); marshalling follows it. */
  abi: GuestAbi = ABIS[DEFAULT_ABI];
  /** Frames owned by the domain, in allocation order (Xen's page_list). */
  readonly pages = new Set<number>();
  maxPages = 0;
  sharedInfoMfn = -1;
  /** The TSC stamp (cycles) the shared info's time block was last written with; -1: never. */
  timeStamp = -1;
  perdomainMfn = -1;
  /** GDT frame Xen gives a domain that never calls set_gdt (its reserved entries only). */
  defaultGdtMfn = -1;
  vmAssist = 0;
  /** I/O ports dom0 granted (Xen's iobmp_mask, a clear bit allows the port); null: none. */
  iobmpMask: Uint8Array | null = null;
  #state = DomainState.Running;
  get state(): DomainState {
    return this.#state;
  }
  set state(s: DomainState) {
    this.#state = s;
    this.timerWatch?.changed();
  }
  /** The scheduler of the hypervisor holding this domain (set when it is created). */
  timerWatch: TimerWatch | null = null;
  shutdownCode = 0;
  paused = true;
  readonly evtchn: EventChannels = newEventChannels();
  /** DF_PHYSDEV: may bind physical IRQs and use the PCI physdev ops (privileged domains always). */
  physdevCapable = false;
  /** Port bound to each physical IRQ (bind_pirq), 0 when none. semantics.md §5.5 */
  readonly pirqToEvtchn = new Int32Array(NR_PIRQS);
  /** Per physical IRQ: delivered and not yet unmask-notified (Xen's pirq_mask). */
  readonly pirqMask = new Uint8Array(NR_PIRQS);
  /** BVT parameters (DOM0_ADJUSTDOM). */
  readonly bvt: BvtParams = defaultBvtParams();
  /** Console bytes written by this domain (console_io), kept for the toolstack. */
  readonly consoleOut: number[] = [];
  /** DF_CONSTRUCTED: a SETDOMAININFO succeeded; only then may the domain be unpaused. */
  constructed = false;
  /** PCI devices granted by DOM0_PCIDEV_ACCESS, as (bus << 8) | (dev << 3) | func. */
  readonly pciDevices = new Set<number>();
  /** Log-dirty state (DOM0_SHADOW_CONTROL), null while shadow mode is off. */
  logDirty: LogDirty | null = null;
  /**
   * A domain whose vcpu runs TypeScript instead of guest code (dom0's toolstack): its event
   * upcalls call this instead of bouncing to a guest callback (DESIGN.md decision 2).
   */
  hostUpcall: ((v: Vcpu) => void) | null = null;

  constructor(
    readonly id: number,
    /** The toolstack's name for it (not part of Xen's interface). */
    public name: string,
    /** DF_PRIVILEGED (DOM0_PCIDEV_ACCESS grants it too, semantics.md §8.2). */
    public privileged: boolean,
  ) {
    this.vcpus.push(new Vcpu(this, 0));
    this.physdevCapable = privileged;
    storeAsDoubles(this, ["timeStamp"]);
  }

  get totPages(): number {
    return this.pages.size;
  }

  get runnable(): boolean {
    return this.state === DomainState.Running && !this.paused;
  }
}
