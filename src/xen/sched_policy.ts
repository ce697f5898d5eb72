/**
 * Scheduling policies (semantics.md §7.2): Borrowed Virtual Time, Xen's only built-in policy
 * of that time, and a plain round-robin as the second policy chosen at boot. A policy owns
 * each physical CPU's run queue; the framework (scheduler.ts) asks it whom to run next.
 */
import type { Vcpu } from "./domain.js";

/** Xen's scheduler ids (DOM0_SCHED_ID). */
export const SCHED_BVT = 0;
export const SCHED_RROBIN = 3;

/** BVT's constants: the minimum charging unit and the default context-switch allowance. */
export const MCU_NS = 100_000;
export const DEFAULT_CTX_ALLOW_NS = 5_000_000;
export const DEFAULT_MCU_ADVANCE = 10;
export const DEFAULT_WARPL_NS = 2000 * 1_000_000;
export const DEFAULT_WARPU_NS = 1000 * 1_000_000;
/** svt wrap protection: above this, every virtual time on the CPU is shifted down. */
const SVT_WRAP_AT = 0xf0000000;
const SVT_WRAP_BY = 0xe0000000;

/** Per-domain BVT parameters (DOM0_ADJUSTDOM). */
export interface BvtParams {
  mcuAdvance: number;
  warpback: boolean;
  warp: boolean;
  warpValue: number;
  warplNs: number;
  warpuNs: number;
  /** System time (ns) at which the warp ends (warpl) / warping may resume (warpu); -1: none. */
  warpEndNs: number;
  unwarpEndNs: number;
}

export function defaultBvtParams(): BvtParams {
  return {
    mcuAdvance: DEFAULT_MCU_ADVANCE,
    warpback: false,
    warp: false,
    warpValue: 0,
    warplNs: DEFAULT_WARPL_NS,
    warpuNs: DEFAULT_WARPU_NS,
    warpEndNs: -1,
    unwarpEndNs: -1,
  };
}

/**
 * What a policy decides: the next vcpu (null = idle) and how long it may run. A policy may
 * hand back the same object each time: read it before its next decision.
 */
export interface Decision {
  next: Vcpu | null;
  sliceNs: number;
}

/** A policy's one Decision object, filled in and handed back. */
function decide(d: Decision, next: Vcpu | null, sliceNs: number): Decision {
  d.next = next;
  d.sliceNs = sliceNs;
  return d;
}

export interface SchedPolicy {
  readonly id: number;
  readonly name: string;
  /** Global context-switch allowance in ns (DOM0_SCHEDCTL; BVT only). */
  ctxAllowNs: number;
  /** A vcpu became runnable on CPU q (queue it). Returns true if it should preempt `curr`. */
  wake(q: RunQueue, v: Vcpu, curr: Vcpu | null, currRanNs: number): boolean;
  /** A vcpu stopped being runnable (remove it if queued). */
  sleep(q: RunQueue, v: Vcpu): void;
  /** Charge prev for ranNs and choose the next vcpu among q's runnable ones, at time nowNs. */
  doSchedule(q: RunQueue, prev: Vcpu | null, ranNs: number, prevRunnable: boolean, nowNs: number): Decision;
}

/**
 * A physical CPU's run queue and the policy's per-CPU state. The queued vcpus are
 * items[0..length); later slots hold null. The array itself never shrinks: V8 gives an array
 * whose length falls to 0 a new backing store at the next push (152 bytes a tick for 100 idle
 * domains, whose queue empties at every block), and unshift copied it each time.
 */
export class RunQueue {
  private readonly items: (Vcpu | null)[] = [null];
  /** Vcpus queued. */
  length = 0;
  /** BVT system virtual time. */
  svt = 0;

  /** The i-th queued vcpu (i < length). */
  at(i: number): Vcpu {
    return this.items[i] as Vcpu;
  }

  push(v: Vcpu): void {
    if (this.length === this.items.length) this.items.push(v);
    else this.items[this.length] = v;
    this.length++;
  }

  /** Puts v at the head, moving the others up in place. */
  addFirst(v: Vcpu): void {
    this.push(v);
    const q = this.items;
    for (let j = this.length - 1; j > 0; j--) q[j] = q[j - 1];
    q[0] = v;
  }

  /** Removes v if queued, keeping the others' order. */
  remove(v: Vcpu): void {
    const i = this.indexOf(v);
    if (i < 0) return;
    const q = this.items;
    for (let j = i + 1; j < this.length; j++) q[j - 1] = q[j];
    q[--this.length] = null;
  }

  has(v: Vcpu): boolean {
    return this.indexOf(v) >= 0;
  }

  private indexOf(v: Vcpu): number {
    for (let i = 0; i < this.length; i++) if (this.items[i] === v) return i;
    return -1;
  }
}

/** BVT (semantics.md §7.2), with the slice unit [QUIRK] fixed: MCU counts times MCU_NS. */
export class BvtPolicy implements SchedPolicy {
  readonly id = SCHED_BVT;
  readonly name = "bvt";
  ctxAllowNs = DEFAULT_CTX_ALLOW_NS;
  /** doSchedule's answer, reused: the scheduler reads it at once (no object a decision). */
  private readonly d: Decision = { next: null, sliceNs: 0 };

  private evtOf(v: Vcpu): number {
    const p = v.domain.bvt;
    return p.warp ? v.avt - p.warpValue : v.avt;
  }

  wake(q: RunQueue, v: Vcpu, curr: Vcpu | null, currRanNs: number): boolean {
    if (!q.has(v)) q.addFirst(v);
    if (v.avt < q.svt) v.avt = q.svt;
    v.evt = this.evtOf(v);
    if (curr === null) return true;
    // The running vcpu's evt as of now (bvt_wake's calc_avt): with the evt its slice began at,
    // a CPU-bound vcpu kept a woken one off the CPU for its whole slice (up to 10 ctx_allow).
    const currEvt = curr.evt + Math.ceil(currRanNs / MCU_NS) * curr.domain.bvt.mcuAdvance;
    return v.evt <= currEvt;
  }

  sleep(q: RunQueue, v: Vcpu): void {
    q.remove(v);
  }

  /**
   * The warp and unwarp timers (semantics.md §7.2), checked at each scheduling decision: a
   * warp lasts warpl, then waits warpu before it may resume (if warpback is set).
   */
  private runWarpTimers(q: RunQueue, nowNs: number): void {
    for (let i = 0; i < q.length; i++) {
      const v = q.at(i);
      const p = v.domain.bvt;
      if (p.warpEndNs >= 0 && nowNs >= p.warpEndNs) {
        p.warpEndNs = -1;
        p.warp = false;
        if (p.warpuNs === 0) p.warpback = false;
        else p.unwarpEndNs = nowNs + p.warpuNs;
      }
      if (p.unwarpEndNs >= 0 && nowNs >= p.unwarpEndNs) {
        p.unwarpEndNs = -1;
        if (p.warpback) p.warp = true;
      }
      v.evt = this.evtOf(v);
    }
  }

  doSchedule(q: RunQueue, prev: Vcpu | null, ranNs: number, prevRunnable: boolean, nowNs: number): Decision {
    this.runWarpTimers(q, nowNs);
    const d = this.pick(q, prev, ranNs, prevRunnable);
    const p = d.next?.domain.bvt;
    if (p?.warp && p.warplNs > 0 && p.warpEndNs < 0) p.warpEndNs = nowNs + p.warplNs;
    return d;
  }

  private pick(q: RunQueue, prev: Vcpu | null, ranNs: number, prevRunnable: boolean): Decision {
    if (prev !== null) {
      prev.avt += Math.ceil(ranNs / MCU_NS) * prev.domain.bvt.mcuAdvance;
      prev.evt = this.evtOf(prev);
      q.remove(prev);
      if (prevRunnable) q.push(prev);
    }
    if (q.length === 0) return decide(this.d, null, this.ctxAllowNs);
    let first: Vcpu = q.at(0);
    let second: Vcpu | null = null;
    let minAvt = first.avt;
    for (let i = 1; i < q.length; i++) {
      const v = q.at(i);
      if (v.avt < minAvt) minAvt = v.avt;
      if (v.evt < first.evt) {
        second = first;
        first = v;
      } else if (second === null || v.evt < second.evt) {
        second = v;
      }
    }
    q.svt = minAvt;
    if (q.svt >= SVT_WRAP_AT) {
      q.svt -= SVT_WRAP_BY;
      for (let i = 0; i < q.length; i++) {
        const v = q.at(i);
        v.avt -= SVT_WRAP_BY;
        v.evt -= SVT_WRAP_BY;
      }
    }
    if (second === null) return decide(this.d, first, 10 * this.ctxAllowNs);
    const mcus = Math.max(0, Math.floor((second.evt - first.evt) / first.domain.bvt.mcuAdvance));
    return decide(this.d, first, mcus * MCU_NS + this.ctxAllowNs);
  }
}

/** Round-robin: a fixed slice, runnable vcpus in turn. */
export class RoundRobinPolicy implements SchedPolicy {
  readonly id = SCHED_RROBIN;
  readonly name = "rrobin";
  ctxAllowNs = DEFAULT_CTX_ALLOW_NS;
  /** doSchedule's answer, reused (as BvtPolicy's). */
  private readonly d: Decision = { next: null, sliceNs: 0 };
  sliceNs = 10_000_000;

  wake(q: RunQueue, v: Vcpu, curr: Vcpu | null): boolean {
    if (!q.has(v)) q.push(v);
    return curr === null;
  }

  sleep(q: RunQueue, v: Vcpu): void {
    q.remove(v);
  }

  doSchedule(
    q: RunQueue,
    prev: Vcpu | null,
    _ranNs: number,
    prevRunnable: boolean,
    _nowNs: number,
  ): Decision {
    if (prev !== null) {
      q.remove(prev);
      if (prevRunnable) q.push(prev);
    }
    return decide(this.d, q.length > 0 ? q.at(0) : null, this.sliceNs);
  }
}

export function makePolicy(name: string): SchedPolicy {
  if (name === "bvt") return new BvtPolicy();
  if (name === "rrobin") return new RoundRobinPolicy();
  throw new Error(`unknown scheduler "${name}" (known: bvt, rrobin)`);
}
