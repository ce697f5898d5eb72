/**
 * Physical interrupt lines: an IO-APIC-like controller with lines 0..nrLines-1, each edge- or
 * level-triggered, enabled (started up) or not, and masked while in service. Devices raise
 * lines; the host's interrupt handler takes the next pending line, acks it and later ends it.
 * It also latches the two NMI sources of a PC (memory parity, I/O check).
 * It knows nothing of Xen.
 */

export type Trigger = "edge" | "level";

/** Why the NMI line was asserted (a PC's port 0x61 bits 7 and 6). */
export const enum NmiReason {
  Parity = 1,
  IoCheck = 2,
}

/** A device attached to one line: asserts it on demand from the host. */
export interface IrqDevice {
  readonly line: number;
  /** Asserts the line (an edge for edge lines; held until lower() for level lines). */
  raise(): void;
  /** De-asserts a level line (the device was serviced). No effect on edge lines. */
  lower(): void;
}

interface PeriodicSource {
  line: number;
  periodNs: number;
  nextNs: number;
}

export class IrqController {
  private readonly level: Uint8Array;
  /** Started up (Linux/Xen startup()/shutdown()): raises on a disabled line are not latched. */
  private readonly enabled: Uint8Array;
  /** Acked and not yet ended: a level line stays masked until end(). */
  private readonly inService: Uint8Array;
  /** Latched edge, or level asserted. */
  private readonly pending: Uint8Array;
  private readonly asserted: Uint8Array;
  private readonly periodic: PeriodicSource[] = [];
  private nmi = 0;
  /**
   * False when nextPending's last scan found no line and nothing since could have made one
   * deliverable (set by raise, startup, end, setTrigger): the run loop asks at every exit.
   */
  private maybePending = true;
  /** Count of raises per line, for diagnostics. */
  readonly raised: Uint32Array;

  constructor(readonly nrLines = 24) {
    this.level = new Uint8Array(nrLines);
    this.enabled = new Uint8Array(nrLines);
    this.inService = new Uint8Array(nrLines);
    this.pending = new Uint8Array(nrLines);
    this.asserted = new Uint8Array(nrLines);
    this.raised = new Uint32Array(nrLines);
  }

  private check(line: number): void {
    if (!Number.isInteger(line) || line < 0 || line >= this.nrLines) {
      throw new RangeError(`IRQ line ${line} does not exist (0..${this.nrLines - 1})`);
    }
  }

  /** True for an existing line number. */
  has(line: number): boolean {
    return Number.isInteger(line) && line >= 0 && line < this.nrLines;
  }

  setTrigger(line: number, trigger: Trigger): void {
    this.check(line);
    this.level[line] = trigger === "level" ? 1 : 0;
    this.maybePending = true;
  }

  trigger(line: number): Trigger {
    this.check(line);
    return this.level[line] ? "level" : "edge";
  }

  // ------------------------------------------------------------------ host (interrupt handler) side

  /** Enables the line; a level line already asserted becomes pending. */
  startup(line: number): void {
    this.check(line);
    this.enabled[line] = 1;
    this.inService[line] = 0;
    if (this.level[line] && this.asserted[line]) this.pending[line] = 1;
    this.maybePending = true;
  }

  /** Disables the line and forgets a latched edge. */
  shutdown(line: number): void {
    this.check(line);
    this.enabled[line] = 0;
    this.inService[line] = 0;
    this.pending[line] = 0;
  }

  isEnabled(line: number): boolean {
    this.check(line);
    return this.enabled[line] === 1;
  }

  isInService(line: number): boolean {
    this.check(line);
    return this.inService[line] === 1;
  }

  /** The lowest enabled line with an interrupt to deliver and not masked in service, or -1. */
  nextPending(): number {
    if (!this.maybePending) return -1;
    for (let l = 0; l < this.nrLines; l++) {
      if (this.pending[l] && this.enabled[l] && !(this.level[l] && this.inService[l])) return l;
    }
    this.maybePending = false;
    return -1;
  }

  /** Acknowledges delivery: the edge is consumed; a level line is masked until end(). */
  ack(line: number): void {
    this.check(line);
    this.pending[line] = 0;
    this.inService[line] = 1;
  }

  /** End of interrupt: unmasks; a level line still asserted fires again. */
  end(line: number): void {
    this.check(line);
    this.inService[line] = 0;
    if (this.enabled[line] && this.level[line] && this.asserted[line]) this.pending[line] = 1;
    this.maybePending = true;
  }

  // ------------------------------------------------------------------ device side

  /** A device asserts the line. */
  raise(line: number): void {
    this.check(line);
    this.raised[line]++;
    this.maybePending = true;
    if (this.level[line]) {
      this.asserted[line] = 1;
      if (this.enabled[line]) this.pending[line] = 1;
    } else if (this.enabled[line]) {
      this.pending[line] = 1;
    }
  }

  /** A device de-asserts a level line (an undelivered level interrupt goes away with it). */
  lower(line: number): void {
    this.check(line);
    if (!this.level[line]) return;
    this.asserted[line] = 0;
    this.pending[line] = 0;
  }

  /** A device wired to a line, raised by host-side calls (a NIC, a disk controller...). */
  attachDevice(line: number, trigger: Trigger = "level"): IrqDevice {
    this.setTrigger(line, trigger);
    return { line, raise: () => this.raise(line), lower: () => this.lower(line) };
  }

  /**
   * A periodic device (like the RTC's periodic interrupt): an edge on `line` every periodNs of
   * machine time, the first one periodNs after `startNs`.
   */
  attachPeriodic(line: number, periodNs: number, startNs = 0): void {
    this.check(line);
    if (!(periodNs > 0)) throw new RangeError(`period must be positive, not ${periodNs}`);
    this.setTrigger(line, "edge");
    this.periodic.push({ line, periodNs, nextNs: startNs + periodNs });
  }

  /** Whether any periodic device is attached (most machines have none). */
  get hasPeriodic(): boolean {
    return this.periodic.length > 0;
  }

  /** Raises every periodic line due by nowNs (missed periods coalesce into one edge). */
  tick(nowNs: number): void {
    for (const p of this.periodic) {
      if (nowNs < p.nextNs) continue;
      this.raise(p.line);
      p.nextNs += Math.floor((nowNs - p.nextNs) / p.periodNs + 1) * p.periodNs;
    }
  }

  /** Machine time of the next periodic edge on an enabled line, or +Infinity. */
  nextDueNs(): number {
    let next = Number.POSITIVE_INFINITY;
    for (const p of this.periodic) if (this.enabled[p.line]) next = Math.min(next, p.nextNs);
    return next;
  }

  // ------------------------------------------------------------------ NMI

  /** Asserts NMI with a reason (memory parity or I/O check). */
  raiseNmi(reason: NmiReason): void {
    this.nmi |= reason;
  }

  /** Takes the latched NMI reasons (bits of NmiReason), clearing them; 0 when none. */
  takeNmi(): number {
    const r = this.nmi;
    this.nmi = 0;
    return r;
  }
}
