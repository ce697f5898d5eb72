/**
 * The scheduling framework (semantics.md §7.1): physical CPUs with a local clock, a run queue,
 * the running vcpu, the periodic 10 ms tick and the end of the current slice. The policy
 * (sched_policy.ts) decides whom to run. Several physical CPUs are simulated on the one
 * emulated core by interleaving them deterministically: the CPU whose clock is furthest
 * behind runs next, for at most QUANTUM ahead of the others.
 */
import { Trc } from "../public/trace.js";
import { HZ, VirqMar } from "../public/xen.js";
import type { TimerWatch, Vcpu } from "./domain.js";
import { DomainState } from "./domain.js";
import { sendGuestVirq } from "./event_channel.js";
import type { Hypervisor } from "./hypervisor.js";
import { RunQueue, type SchedPolicy } from "./sched_policy.js";
import { updateDomainTime } from "./schedule.js";
import { upcallMask, upcallPending } from "./traps.js";

const TICK_NS = 1e9 / HZ;
/** How far one physical CPU may run ahead of the others, in ns. */
const QUANTUM_NS = 1_000_000;

export class PhysicalCpu {
  readonly rq = new RunQueue();
  /** This CPU's clock in cycles (its TSC). */
  cycles = 0;
  curr: Vcpu | null = null;
  /** Cycle count at which the current slice ends. */
  sliceEnd = 0;
  needResched = true;
  lastSchedCycles = 0;
  /** Ticks so far, and the cycle count of the next. */
  tick = 0;
  nextTick = 0;
  lastTickCycles = 0;
  /** Cycles spent idle. */
  idleCycles = 0;

  constructor(readonly id: number) {}
}

export class Scheduler implements TimerWatch {
  readonly pcpus: PhysicalCpu[] = [];
  /** The physical CPU being run (whose clock is "now"). */
  cur: PhysicalCpu;
  private readonly tickCycles: number;
  private readonly quantumCycles: number;
  /**
   * The earliest one-shot deadline (ns) of the running domains' vcpus on each physical CPU,
   * +Infinity when none, valid unless deadlinesDirty: an exit then costs no scan of the
   * domains (100 idle domains exit tens of thousands of times a second). Kept by the
   * domains' setters (TimerWatch): a lower deadline updates it, anything that may raise it
   * marks it dirty and the next use rescans.
   */
  private readonly earliest: Float64Array;
  private deadlinesDirty = true;

  constructor(
    private readonly hv: Hypervisor,
    readonly policy: SchedPolicy,
    nrCpus: number,
  ) {
    if (!Number.isInteger(nrCpus) || nrCpus < 1 || nrCpus > 32)
      throw new RangeError(`CPUs must be 1..32, not ${nrCpus}`);
    this.tickCycles = hv.clock.cyclesAt(TICK_NS);
    this.quantumCycles = hv.clock.cyclesAt(QUANTUM_NS);
    for (let i = 0; i < nrCpus; i++) {
      const p = new PhysicalCpu(i);
      p.nextTick = this.tickCycles;
      this.pcpus.push(p);
    }
    this.cur = this.pcpus[0];
    this.earliest = new Float64Array(nrCpus);
  }

  /** TimerWatch: v's one-shot timer went from old to ns (-1: none). */
  deadlineSet(v: Vcpu, old: number, ns: number): void {
    if (this.deadlinesDirty || v.domain.state !== DomainState.Running) return;
    const p = v.processor;
    if (ns >= 0 && ns < this.earliest[p]) this.earliest[p] = ns;
    else if (old >= 0 && old <= this.earliest[p]) this.deadlinesDirty = true;
  }

  /** TimerWatch: a vcpu moved, a domain changed state or was created. */
  changed(): void {
    this.deadlinesDirty = true;
  }

  /** The earliest one-shot deadline (ns) of a running domain's vcpu on p, or +Infinity. */
  earliestDeadline(p: PhysicalCpu): number {
    if (this.deadlinesDirty) {
      const e = this.earliest;
      e.fill(Number.POSITIVE_INFINITY);
      for (const d of this.hv.domains.values()) {
        if (d.state !== DomainState.Running) continue;
        for (const v of d.vcpus) {
          const t = v.timerDeadline;
          if (t >= 0 && t < e[v.processor]) e[v.processor] = t;
        }
      }
      this.deadlinesDirty = false;
    }
    return this.earliest[p.id];
  }

  /** domain_runnable: not paused, not blocked, not shut down or crashed. */
  runnable(v: Vcpu): boolean {
    return v.domain.state === DomainState.Running && !v.domain.paused && !v.blocked && !v.down;
  }

  /** domain_wake: queue a vcpu that became runnable; preempt if the policy says so. */
  wake(v: Vcpu): void {
    if (!this.runnable(v)) return;
    const p = this.pcpus[v.processor];
    if (p.curr === v) return;
    this.hv.tbufs?.record(this.hv, p.id, Trc.SCHED_WAKE, v.domain.id, v.id);
    if (this.policy.wake(p.rq, v, p.curr)) this.resched(p);
  }

  /** domain_sleep: a vcpu stopped being runnable. */
  sleep(v: Vcpu): void {
    const p = this.pcpus[v.processor];
    if (p.curr === v) this.resched(p);
    else this.policy.sleep(p.rq, v);
  }

  /** Moves a (not running) vcpu to another physical CPU (DOM0_PINCPUDOMAIN). */
  migrate(v: Vcpu, cpu: number): void {
    const from = this.pcpus[v.processor];
    if (from.curr === v) {
      from.curr = null;
      this.resched(from);
    }
    this.policy.sleep(from.rq, v);
    v.processor = cpu;
    this.wake(v);
  }

  private resched(p: PhysicalCpu): void {
    p.needResched = true;
    if (p === this.cur) this.hv.cpu.runEnd = 0;
  }

  /** __enter_scheduler on p (semantics.md §7.1). */
  schedule(p: PhysicalCpu): void {
    const prev = p.curr;
    const ranNs = this.hv.clock.ns(p.cycles - p.lastSchedCycles);
    // An event that arrived before the block keeps the vcpu runnable.
    if (prev?.blocked && upcallPending(this.hv, prev) !== 0 && upcallMask(this.hv, prev) === 0)
      prev.blocked = false;
    const d = this.policy.doSchedule(
      p.rq,
      prev,
      ranNs,
      prev !== null && this.runnable(prev),
      this.hv.clock.ns(p.cycles),
    );
    p.curr = d.next;
    p.lastSchedCycles = p.cycles;
    p.sliceEnd = p.cycles + Math.max(1, this.hv.clock.cyclesAt(d.sliceNs));
    p.needResched = false;
    if (prev !== null) prev.sleepTick = p.tick;
    const next = d.next;
    if (prev !== null && prev.yieldEax !== 0) {
      if (next !== prev) this.hv.setGuestEax(prev, prev.yieldEax);
      prev.yieldEax = 0;
    }
    if (next !== null && next !== prev) {
      this.hv.tbufs?.record(this.hv, p.id, Trc.SCHED_SWITCH, next.domain.id, next.id);
      updateDomainTime(this.hv, next, p.lastTickCycles);
      if (next.sleepTick !== p.tick) sendGuestVirq(this.hv, next, VirqMar.TIMER);
    }
  }

  /** The periodic tick and the one-shot timers due on p. */
  runTimers(p: PhysicalCpu): void {
    if (p.cycles >= p.nextTick) {
      const n = Math.floor((p.cycles - p.nextTick) / this.tickCycles) + 1;
      p.lastTickCycles = p.nextTick + (n - 1) * this.tickCycles;
      p.nextTick += n * this.tickCycles;
      p.tick += n;
      const v = p.curr;
      if (v !== null && this.runnable(v)) {
        updateDomainTime(this.hv, v, p.lastTickCycles);
        sendGuestVirq(this.hv, v, VirqMar.TIMER);
      }
    }
    const nowNs = this.hv.clock.ns(p.cycles);
    // Scanned only when one is due: the same loop in the same order as before, so timers
    // fire in the same order at the same virtual time.
    if (this.earliestDeadline(p) > nowNs) return;
    for (const d of this.hv.domains.values()) {
      if (d.state !== DomainState.Running) continue;
      for (const v of d.vcpus) {
        if (v.processor !== p.id || v.timerDeadline < 0 || v.timerDeadline > nowNs) continue;
        v.timerDeadline = -1;
        updateDomainTime(this.hv, v, p.lastTickCycles);
        sendGuestVirq(this.hv, v, VirqMar.TIMER);
      }
    }
  }

  /** The next cycle count at which something is due on p (tick, slice end, a one-shot). */
  nextEvent(p: PhysicalCpu): number {
    const next = Math.min(p.nextTick, p.curr !== null ? p.sliceEnd : Number.POSITIVE_INFINITY);
    const deadline = this.earliestDeadline(p);
    return deadline === Number.POSITIVE_INFINITY ? next : Math.min(next, this.hv.clock.cyclesAt(deadline));
  }

  /** Is anything ever going to happen: a runnable vcpu, or a one-shot timer somewhere? */
  anythingPending(): boolean {
    for (const p of this.pcpus) if (p.curr !== null || p.rq.queue.length > 0 || p.needResched) return true;
    for (const d of this.hv.domains.values()) {
      if (d.state !== DomainState.Running || d.paused) continue;
      for (const v of d.vcpus) if (v.timerDeadline >= 0 || !v.blocked) return true;
    }
    return false;
  }

  /** The physical CPU to run next: the one furthest behind (lowest id on ties). */
  pickCpu(): PhysicalCpu {
    let best = this.pcpus[0];
    for (const p of this.pcpus) if (p.cycles < best.cycles) best = p;
    return best;
  }

  /** How far p may run: its next event, and QUANTUM past the slowest other CPU. */
  horizon(p: PhysicalCpu): number {
    let h = this.nextEvent(p);
    for (const o of this.pcpus)
      if (o !== p) h = Math.min(h, Math.max(o.cycles, p.cycles) + this.quantumCycles);
    return h;
  }
}
