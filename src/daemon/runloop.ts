/**
 * Runs the hypervisor in short slices between turns of the event loop, so the daemon's API
 * stays responsive while guests run, and paces guest time against the wall clock.
 *
 * The hypervisor's clock is virtual and deterministic (DESIGN.md decision 4). For interactive
 * use the daemon maps it onto real time: guest time may not run ahead of the wall clock (a
 * guest waiting 1 s on a timer waits 1 s), and when the emulated CPU is slower than real time
 * the debt is forgotten rather than repaid in a burst. `fast` pacing runs guests flat out.
 */
import type { DomainManager } from "../tools/domains.js";
import type { Hypervisor } from "../xen/hypervisor.js";
import { nextMachineInterruptNs } from "../xen/irq.js";

export type Pacing = "realtime" | "fast";

/** Wall-clock time spent in the hypervisor per turn of the event loop. */
const TURN_MS = 15;
/** Guest time per call of hv.run: bounds how long one call can take. */
const RUN_STEP_NS = 2_000_000;
/** The least guest time worth a call of hv.run. */
const MIN_STEP_NS = 1_000_000;
/** Further behind the wall clock than this, guest time stops trying to catch up. */
const MAX_LAG_NS = 100_000_000;
/**
 * How late (wall-clock) a timer may be served so one wake-up serves many: Xen's timer_slop
 * (50 us there, on guest time) applied to the host's sleeps; guest time is not affected.
 * 100 idle domains ticking at 100 Hz are 10,000 deadlines a second: served 1 ms at a time,
 * each tick found its domain's state gone from the host's caches after the sleep; a burst of
 * 50 ms runs each domain five times while its state is still cached. Guest time stays exact:
 * it never runs ahead of the wall clock, and where runs are cut does not change it.
 */
export const TIMER_SLOP_MS = 50;
/**
 * The slop once no domain has done I/O for QUIET_MS (as an OS's timer slack for a task nobody
 * watches): 100 idle domains' first ticks after each sleep read their state from memory, ~300
 * lines a domain, so fewer wake-ups are most of what is left to save. Nothing a guest sees
 * changes (its timers fire at their virtual time), only how late by the wall clock a quiet
 * burst runs; any I/O (console output or input, a dom0 event: rings and the control
 * interface, an API request) goes back to TIMER_SLOP_MS at once.
 */
export const IDLE_SLOP_MS = 500;
/** Wall-clock ms without I/O after which the loop sleeps with the idle slop. */
export const QUIET_MS = 2000;
/** The longest sleep while guests wait on timers (an event from outside kicks it anyway). */
const MAX_SLEEP_MS = 1000;

export class RunLoop {
  private running = false;
  private timer: NodeJS.Timeout | NodeJS.Immediate | null = null;
  private baseWallMs = 0;
  private baseGuestNs = 0;
  private stopped: (() => void) | null = null;
  private busy = false;
  /** Guest time (ns) the loop chose to let pass unrun while it slept: lag that is no debt. */
  private sleptNs = 0;
  /** Scheduler.onWake while the loop sleeps on timers. */
  private readonly wakeHook = (): void => this.kick();
  /** performance.now() at the last I/O seen (noteIo), and Hypervisor.deferrals then. */
  private lastIoMs = 0;
  /** Consoles attached (watch). */
  private watchers = 0;
  private seenDeferrals = 0;

  constructor(
    private readonly hv: Hypervisor,
    private readonly manager: DomainManager,
    private readonly pacing: Pacing,
    private readonly onError: (e: unknown) => void,
    private readonly slopMs = TIMER_SLOP_MS,
    /** The slop when quiet (IDLE_SLOP_MS); never below slopMs. */
    private readonly idleSlopMs = IDLE_SLOP_MS,
    private readonly quietMs = QUIET_MS,
  ) {}

  /**
   * A domain did I/O, the daemon was asked something or guest time fell behind: the sleeps of
   * the next quietMs use the short slop.
   */
  noteIo(): void {
    this.lastIoMs = performance.now();
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.noteIo();
    this.rebase();
    this.schedule(0);
  }

  /** Stops after the current slice; resolves when no slice is running. */
  stop(): Promise<void> {
    this.running = false;
    this.unhook();
    if (this.timer !== null) {
      clearTimeout(this.timer as NodeJS.Timeout);
      clearImmediate(this.timer as NodeJS.Immediate);
      this.timer = null;
    }
    if (!this.busy) return Promise.resolve();
    return new Promise((resolve) => {
      this.stopped = resolve;
    });
  }

  /** Something changed (a domain was created, unpaused, got input): run soon. */
  kick(): void {
    this.noteIo();
    if (!this.running || this.busy) return;
    if (this.timer !== null) {
      clearTimeout(this.timer as NodeJS.Timeout);
      clearImmediate(this.timer as NodeJS.Immediate);
    }
    this.schedule(0);
  }

  private rebase(): void {
    this.baseWallMs = performance.now();
    this.baseGuestNs = this.hv.nowNs();
  }

  private schedule(delayMs: number): void {
    // The turn runs as a microtask: V8 then throws without building a message object for
    // each exception (a guest fault unwinds the CPU with one), which from a timer or
    // immediate callback costs ~1 us of stack walking a throw (~10x the throw itself).
    const turn = () => queueMicrotask(() => this.turn());
    this.timer = delayMs <= 0 ? setImmediate(turn) : setTimeout(turn, delayMs);
  }

  private turn(): void {
    this.timer = null;
    this.unhook();
    if (!this.running) return;
    this.busy = true;
    let next = 0;
    try {
      next = this.slice();
    } catch (e) {
      this.onError(e);
      next = 100;
    }
    this.busy = false;
    if (!this.running) {
      this.stopped?.();
      return;
    }
    this.schedule(next);
  }

  /** One turn's worth of guest execution; returns the delay before the next turn in ms. */
  private slice(): number {
    const hv = this.hv;
    const start = performance.now();
    for (;;) {
      const now = hv.nowNs();
      let target = Number.POSITIVE_INFINITY;
      if (this.pacing === "realtime") {
        target = this.baseGuestNs + (performance.now() - this.baseWallMs) * 1e6;
        if (target - now > MAX_LAG_NS + this.sleptNs) {
          // The CPU cannot keep up: forget the debt instead of racing to repay it. And sleep
          // with the short slop for a while: a long one's bursts would then be forgotten whole
          // (100 domains at load 11: 2 ms of guest time a second with a 500 ms slop, 12 with 50).
          this.noteIo();
          this.baseGuestNs = now;
          this.baseWallMs = performance.now();
          target = now + RUN_STEP_NS;
        }
        // Ahead of the wall clock (or nearly): wait instead of crawling forward.
        if (now + MIN_STEP_NS > target) return this.pause(now, target);
      }
      this.manager.pumpConsoles();
      // Bounded in host time too: an exit can be slow (invariant checks after each hypercall).
      const r = hv.run(Math.min(target, now + RUN_STEP_NS), start + TURN_MS);
      this.manager.handleStops();
      if (r.kind === "idle") {
        // Nothing will happen until the outside world acts; time stands still meanwhile,
        // then resumes from the wall clock.
        this.rebase();
        return 20;
      }
      if (performance.now() - start >= TURN_MS) return 0;
    }
  }

  /**
   * The wait (ms) once guest time has caught up with the wall clock. A vcpu that can run, or
   * keyboard bytes waiting for room in a ring, go on in 1 ms steps. Otherwise nothing happens
   * before the earliest deadline: sleep until just past it, or the slop if that is later, so the
   * deadlines within it are served together; anything that makes a vcpu runnable meanwhile
   * (Scheduler.onWake) or asks the daemon for something (kick) wakes it at once.
   */
  private pause(now: number, target: number): number {
    const step = Math.max(1, Math.min(10, (now + MIN_STEP_NS - target) / 1e6));
    this.sleptNs = 0;
    const sched = this.hv.sched;
    const next = Math.min(sched.nextWakeNs(), nextMachineInterruptNs(this.hv));
    if (next === Number.NEGATIVE_INFINITY || this.manager.consoleBacklog) return step;
    const ms = Math.min(MAX_SLEEP_MS, Math.max(step, this.slop(), (next + MIN_STEP_NS - target) / 1e6));
    this.sleptNs = ms * 1e6;
    sched.onWake = this.wakeHook;
    return ms;
  }

  /** The slop for this sleep: the idle one once quietMs passed with no I/O. */
  private slop(): number {
    // Dom0's events (a frontend's ring or control message, a VIRQ to dom0) all come through
    // Hypervisor.defer.
    const deferrals = this.hv.deferrals ?? 0;
    if (deferrals !== this.seenDeferrals) {
      this.seenDeferrals = deferrals;
      this.noteIo();
    }
    return this.quiet() ? Math.max(this.slopMs, this.idleSlopMs) : this.slopMs;
  }

  /**
   * Someone watches a domain's output (an attached console): the sleeps use the short slop
   * until the returned function is called, as a user typing `sleep 5; echo` expects the echo
   * on time. Idempotent end.
   */
  watch(): () => void {
    this.watchers++;
    let on = true;
    return () => {
      if (!on) return;
      on = false;
      this.watchers--;
      this.noteIo();
    };
  }

  /** Whether nobody watches and quietMs passed with no I/O seen (noteIo): the sleeps use the idle slop. */
  quiet(): boolean {
    return this.watchers === 0 && performance.now() - this.lastIoMs >= this.quietMs;
  }

  private unhook(): void {
    if (this.hv.sched?.onWake === this.wakeHook) this.hv.sched.onWake = null;
  }
}
