/**
 * The scheduling framework (semantics.md §7.1): physical CPUs with a local clock, a run queue,
 * the running vcpu, the periodic 10 ms tick and the end of the current slice. The policy
 * (sched_policy.ts) decides whom to run. Several physical CPUs are simulated on the one
 * emulated core by interleaving them deterministically: the CPU whose clock is furthest
 * behind runs next, for at most QUANTUM ahead of the others.
 */
import { storeAsDoubles } from "../cpu/doubles.js";
import { Trc } from "../public/trace.js";
import { HZ, VirqMar } from "../public/xen.js";
import type { TimerWatch, Vcpu } from "./domain.js";
import { DomainState } from "./domain.js";
import { sendGuestVirq } from "./event_channel.js";
import type { Hypervisor } from "./hypervisor.js";
import { RunQueue, type SchedPolicy } from "./sched_policy.js";
import { refreshDomainTime } from "./schedule.js";
import { upcallMask, upcallPending } from "./traps.js";

const TICK_NS = 1e9 / HZ;
/** How far one physical CPU may run ahead of the others, in ns. */
const QUANTUM_NS = 1_000_000;
/**
 * Entries in one CPU's deadline queue past which it is rebuilt from a scan (stale ones go):
 * also the most an out-of-order push shifts (a guest setting its deadline earlier again and
 * again leaves its later entries behind), ~2.5 K host instructions, a hypercall's cost.
 */
const REBUILD_AT = 512;

/** Counts for tests: entries moved by out-of-order pushes, and rebuilds from a scan. */
export const deadlineStats = { shifted: 0, rebuilds: 0 };

const byDeadline = (a: Vcpu, b: Vcpu): number => a.timerDeadline - b.timerDeadline;

/**
 * The (deadline ns, vcpu) entries of one CPU in deadline order, earliest at `head`: a sorted
 * buffer rather than a heap, because a deadline set is nearly always the latest (a periodic
 * tick sets now + period while the others' are sooner), so a push appends and a pop moves
 * `head`, where a heap's pop sifted through log n levels (100 idle domains: ~300 host
 * instructions a tick). A deadline earlier than the last is inserted by shifting the later
 * ones (at most REBUILD_AT, stale ones included). Ties may
 * come out in any order, as from the heap: only the earliest value is asked, and soleDue
 * leaves several due at once to the scan. The buffers never shrink (no store to reallocate).
 */
export class DeadlineQueue {
  private ns = new Float64Array(64);
  private vs: (Vcpu | null)[] = new Array<Vcpu | null>(64).fill(null);
  private head = 0;
  private tail = 0;

  get size(): number {
    return this.tail - this.head;
  }

  topNs(): number {
    return this.ns[this.head];
  }

  topVcpu(): Vcpu {
    return this.vs[this.head] as Vcpu;
  }

  clear(): void {
    this.vs.fill(null, this.head, this.tail);
    this.head = 0;
    this.tail = 0;
  }

  push(t: number, v: Vcpu): void {
    if (this.tail === this.ns.length) this.room();
    const ns = this.ns;
    const vs = this.vs;
    let i = this.tail++;
    // The latest so far (the usual case): appended. Else the later ones move up by one.
    while (i > this.head && ns[i - 1] > t) {
      ns[i] = ns[i - 1];
      vs[i] = vs[i - 1];
      i--;
      deadlineStats.shifted++;
    }
    ns[i] = t;
    vs[i] = v;
  }

  /**
   * Empties the queue and fills it with these vcpus' deadlines (each timerDeadline >= 0): sorted
   * once, then appended, so a rebuild of n vcpus costs O(n log n) where n pushes in domain order
   * could shift O(n^2) entries. Reorders `vcpus`.
   */
  refill(vcpus: Vcpu[]): void {
    this.clear();
    vcpus.sort(byDeadline);
    for (const v of vcpus) this.push(v.timerDeadline, v);
  }

  pop(): void {
    this.vs[this.head++] = null;
    if (this.head === this.tail) this.head = this.tail = 0;
  }

  /** Space for one more at tail: the entries moved down to 0, or the buffers doubled. */
  private room(): void {
    const n = this.tail - this.head;
    if (this.head > 0 && n < this.ns.length >> 1) {
      this.ns.copyWithin(0, this.head, this.tail);
      for (let i = 0; i < n; i++) this.vs[i] = this.vs[this.head + i];
      this.vs.fill(null, n, this.tail);
    } else {
      const ns = new Float64Array(this.ns.length * 2);
      ns.set(this.ns.subarray(this.head, this.tail));
      const vs = new Array<Vcpu | null>(this.ns.length * 2).fill(null);
      for (let i = 0; i < n; i++) vs[i] = this.vs[this.head + i];
      this.ns = ns;
      this.vs = vs;
    }
    this.head = 0;
    this.tail = n;
  }
}

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

  constructor(readonly id: number) {
    // Cycle counts pass 2^31 after 21.5 s at 100 MHz: doubles from the start (storeAsDoubles).
    storeAsDoubles(this, [
      "cycles",
      "sliceEnd",
      "lastSchedCycles",
      "nextTick",
      "lastTickCycles",
      "idleCycles",
    ]);
  }
}

export class Scheduler implements TimerWatch {
  readonly pcpus: PhysicalCpu[] = [];
  /** The physical CPU being run (whose clock is "now"). */
  cur: PhysicalCpu;
  private readonly tickCycles: number;
  private readonly quantumCycles: number;
  /**
   * The one-shot deadlines (ns) of the running domains' vcpus on each physical CPU, earliest
   * first, valid unless deadlinesDirty: neither an exit nor a timer's fire costs a scan of the
   * domains (100 idle domains wake 10,000 times a second). Kept by the domains' setters
   * (TimerWatch): each deadline set is pushed, and entries that no longer match their vcpu
   * are dropped when they reach the top; a vcpu moved or a domain's state changed marks it
   * dirty and the next use rebuilds it from a scan.
   */
  private readonly queues: DeadlineQueue[] = [];
  private deadlinesDirty = true;
  /**
   * The time (ns) soleDue asks at, set by runTimers: past 2^30 a double passed to a call V8
   * does not inline is boxed (16 bytes a fire), a double field stored in place.
   */
  dueNs = 0.5;
  /** Each CPU's vcpus with a deadline, gathered by a rebuild (kept: no arrays a rebuild). */
  private readonly rebuildLists: Vcpu[][] = [];

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
    for (let i = 0; i < nrCpus; i++) {
      this.queues.push(new DeadlineQueue());
      this.rebuildLists.push([]);
    }
  }

  /** TimerWatch: v's one-shot timer went from old to ns (-1: none). */
  deadlineSet(v: Vcpu, _old: number, ns: number): void {
    if (this.deadlinesDirty || v.domain.state !== DomainState.Running || ns < 0) return;
    const h = this.queues[v.processor];
    // Stale entries below the top are only dropped by a rebuild: bound them.
    if (h.size >= REBUILD_AT) this.deadlinesDirty = true;
    else h.push(ns, v);
  }

  /** TimerWatch: a vcpu moved, a domain changed state or was created. */
  changed(): void {
    this.deadlinesDirty = true;
  }

  /** The earliest one-shot deadline (ns) of a running domain's vcpu on p, or +Infinity. */
  earliestDeadline(p: PhysicalCpu): number {
    // Small, so V8 inlines it where it is asked (runTimers, soleDue, nextEvent): a call that
    // returned the deadline boxed it, ~130 bytes a tick for 100 idle domains.
    if (this.deadlinesDirty) this.rebuildQueues();
    const h = this.queues[p.id];
    while (h.size > 0 && !this.live(h.topNs(), h.topVcpu(), p)) h.pop();
    return h.size > 0 ? h.topNs() : Number.POSITIVE_INFINITY;
  }

  private rebuildQueues(): void {
    const lists = this.rebuildLists;
    for (const l of lists) l.length = 0;
    for (const d of this.hv.domains.values()) {
      if (d.state !== DomainState.Running) continue;
      for (const v of d.vcpus) if (v.timerDeadline >= 0) lists[v.processor].push(v);
    }
    for (let i = 0; i < lists.length; i++) this.queues[i].refill(lists[i]);
    this.deadlinesDirty = false;
    deadlineStats.rebuilds++;
  }

  /**
   * A queue entry still stands for v's timer: what the scan of the running domains would find.
   * A domain leaves hv.domains only in releaseDomain, after domainKill made it Dying and set its
   * deadlines to -1, so a Running state says it is still there (no map lookup a timer's fire).
   */
  private live(ns: number, v: Vcpu, p: PhysicalCpu): boolean {
    return v.timerDeadline === ns && v.processor === p.id && v.domain.state === DomainState.Running;
  }

  /**
   * The one vcpu whose timer is due on p at dueNs when exactly one is (the usual case), else
   * null (the caller scans, to fire several in the domains' order as before).
   */
  soleDue(p: PhysicalCpu): Vcpu | null {
    const nowNs = this.dueNs;
    if (this.earliestDeadline(p) > nowNs) return null;
    const h = this.queues[p.id];
    const ns = h.topNs();
    const v = h.topVcpu();
    h.pop();
    if (this.earliestDeadline(p) <= nowNs) {
      h.push(ns, v);
      return null;
    }
    return v;
  }

  /** domain_runnable: not paused, not blocked, not shut down or crashed. */
  runnable(v: Vcpu): boolean {
    return v.domain.state === DomainState.Running && !v.domain.paused && !v.blocked && !v.down;
  }

  /**
   * Called when a vcpu becomes runnable, while set: the daemon's run loop sets it while it
   * sleeps, so an event from outside a run (a frame from the network, a toolstack hypercall)
   * wakes it at once however long it meant to sleep.
   */
  onWake: (() => void) | null = null;

  /** domain_wake: queue a vcpu that became runnable; preempt if the policy says so. */
  wake(v: Vcpu): void {
    if (!this.runnable(v)) return;
    if (this.onWake !== null) this.onWake();
    const p = this.pcpus[v.processor];
    if (p.curr === v) return;
    this.hv.tbufs?.record(this.hv, p.id, Trc.SCHED_WAKE, v.domain.id, v.id);
    if (this.policy.wake(p.rq, v, p.curr, this.hv.clock.ns(p.cycles - p.lastSchedCycles))) this.resched(p);
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
      refreshDomainTime(this.hv, next, p.lastTickCycles);
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
        refreshDomainTime(this.hv, v, p.lastTickCycles);
        sendGuestVirq(this.hv, v, VirqMar.TIMER);
      }
    }
    const nowNs = this.hv.clock.ns(p.cycles);
    // Scanned only when several are due: the same loop in the same order as before, so
    // timers fire in the same order at the same virtual time.
    if (this.earliestDeadline(p) > nowNs) return;
    this.dueNs = nowNs;
    const sole = this.soleDue(p);
    if (sole !== null) {
      sole.timerDeadline = -1;
      refreshDomainTime(this.hv, sole, p.lastTickCycles);
      sendGuestVirq(this.hv, sole, VirqMar.TIMER);
      return;
    }
    for (const d of this.hv.domains.values()) {
      if (d.state !== DomainState.Running) continue;
      for (const v of d.vcpus) {
        if (v.processor !== p.id || v.timerDeadline < 0 || v.timerDeadline > nowNs) continue;
        v.timerDeadline = -1;
        refreshDomainTime(this.hv, v, p.lastTickCycles);
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
    const ps = this.pcpus;
    for (let i = 0; i < ps.length; i++) {
      const p = ps[i];
      if (p.curr !== null || p.rq.length > 0 || p.needResched) return true;
      // A live deadline of a domain not paused: one the scan below would find (an idle tick
      // asks this once; the scan's iterator over the domains cost ~200 host instructions).
      if (this.earliestDeadline(p) !== Number.POSITIVE_INFINITY && !this.queues[p.id].topVcpu().domain.paused)
        return true;
    }
    for (const d of this.hv.domains.values()) {
      if (d.state !== DomainState.Running || d.paused) continue;
      for (const v of d.vcpus) if (v.timerDeadline >= 0 || !v.blocked) return true;
    }
    return false;
  }

  /**
   * For a host that sleeps between runs (the daemon's run loop), after a run: -Infinity when a
   * vcpu is running, queued or about to be scheduled (guest time must go on now); else the
   * earliest one-shot deadline (ns) on any physical CPU, +Infinity when none is set. Until
   * then nothing a guest sees happens: the periodic tick of an idle CPU runs no guest code and
   * is left out, and a later run covers the stretch whenever it is made.
   */
  nextWakeNs(): number {
    let next = Number.POSITIVE_INFINITY;
    for (const p of this.pcpus) {
      if (p.curr !== null || p.rq.length > 0 || p.needResched) return Number.NEGATIVE_INFINITY;
      next = Math.min(next, this.earliestDeadline(p));
    }
    return next;
  }

  /** The physical CPU to run next: the one furthest behind (lowest id on ties). */
  pickCpu(): PhysicalCpu {
    // Indexed, as in horizon and anythingPending: a for-of here was compiled with its
    // iterator's close (a try around the body), at every turn of the run loop.
    const ps = this.pcpus;
    let best = ps[0];
    for (let i = 1; i < ps.length; i++) if (ps[i].cycles < best.cycles) best = ps[i];
    return best;
  }

  /** Whether pickCpu would pick another CPU than p, were p at `cycles` (the first of the least). */
  picksOther(p: PhysicalCpu, cycles: number): boolean {
    let before = true;
    for (const o of this.pcpus) {
      if (o === p) before = false;
      else if (before ? o.cycles <= cycles : o.cycles < cycles) return true;
    }
    return false;
  }

  /** How far p may run: its next event, and QUANTUM past the slowest other CPU. */
  horizon(p: PhysicalCpu): number {
    let h = this.nextEvent(p);
    const ps = this.pcpus;
    for (let i = 0; i < ps.length; i++) {
      const o = ps[i];
      if (o !== p) h = Math.min(h, Math.max(o.cycles, p.cycles) + this.quantumCycles);
    }
    return h;
  }
}
