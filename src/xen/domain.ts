/**
 * Domains and virtual CPUs: what the hypervisor keeps for each (semantics.md §8.1), apart
 * from the memory rules (mm.ts) and the event-channel table (event_channel.ts).
 */
import { NR_VIRQS } from "../public/xen.js";
import type { CpuContext } from "../cpu/context.js";
import { type EventChannels, newEventChannels } from "./event_channel.js";

/** Why a domain stopped running for good. */
export const enum DomainState {
  Running = 0,
  Shutdown = 1,
  Crashed = 2,
  Dying = 3,
}

export class Vcpu {
  // The virtual IDT (set_trap_table): per vector, cs, address and flags (DPL | TI_IF).
  readonly trapCs = new Uint16Array(256);
  readonly trapAddress = new Uint32Array(256);
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
  /** Fast trap vector (set_fast_trap), 0 when none. */
  fastTrap = 0;
  /** One-shot timer deadline in ns of system time, or -1. */
  timerDeadline = -1;
  blocked = false;
  /** Port bound to each VIRQ, 0 when none (port 0 is never bound to a VIRQ). */
  readonly virqPort = new Int32Array(NR_VIRQS);
  /** Machine frame of the current base page table (L2). */
  baseMfn = 0;
  /** Saved register state while the vcpu is not on a physical CPU. */
  context: CpuContext | null = null;
  /** Virtual time consumed, in ns. */
  cpuTimeNs = 0;

  constructor(
    readonly domain: Domain,
    readonly id: number,
  ) {}
}

export class Domain {
  readonly vcpus: Vcpu[] = [];
  /** Frames owned by the domain, in allocation order (Xen's page_list). */
  readonly pages = new Set<number>();
  maxPages = 0;
  sharedInfoMfn = -1;
  perdomainMfn = -1;
  /** GDT frame Xen gives a domain that never calls set_gdt (its reserved entries only). */
  defaultGdtMfn = -1;
  vmAssist = 0;
  state = DomainState.Running;
  shutdownCode = 0;
  paused = true;
  readonly evtchn: EventChannels = newEventChannels();
  /** Console bytes written by this domain (console_io), kept for the toolstack. */
  readonly consoleOut: number[] = [];

  constructor(
    readonly id: number,
    readonly name: string,
    readonly privileged: boolean,
  ) {
    this.vcpus.push(new Vcpu(this, 0));
  }

  get totPages(): number {
    return this.pages.size;
  }

  get runnable(): boolean {
    return this.state === DomainState.Running && !this.paused;
  }
}
