/**
 * The virtual clock. Time advances with retired instructions at a fixed rate (the virtual TSC
 * frequency), plus whatever the host skips while every CPU is idle; so the same guest and
 * options give the same run, byte for byte. Nanoseconds since boot are "system time".
 */
export const DEFAULT_TSC_HZ = 100_000_000;

export class VirtualClock {
  /** Cycles skipped while idle (added to retired instructions to form the TSC). */
  idleCycles = 0;
  /** Whole nanoseconds per cycle: integer arithmetic keeps time exact for 100+ days. */
  readonly nsPerCycle: number;

  constructor(
    readonly tscHz = DEFAULT_TSC_HZ,
    /** Wall-clock seconds (Unix epoch) at system time 0. */
    readonly bootEpochSeconds = 1_112_140_800, // 2005-03-30 00:00:00 UTC
  ) {
    if (!Number.isInteger(tscHz) || tscHz < 1_000_000 || tscHz > 1_000_000_000 || 1e9 % tscHz !== 0) {
      throw new RangeError(`TSC frequency must divide 1 GHz and be at least 1 MHz, not ${tscHz}`);
    }
    this.nsPerCycle = 1e9 / tscHz;
  }

  /** Cycles (TSC ticks) for retired instructions, which run one per cycle. */
  cycles(retired: number): number {
    return retired + this.idleCycles;
  }

  /** System time in ns at the given cycle count. */
  ns(cycles: number): number {
    return cycles * this.nsPerCycle;
  }

  /** The first cycle count at which system time reaches ns. */
  cyclesAt(ns: number): number {
    return Math.ceil(ns / this.nsPerCycle);
  }
}
