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

/**
 * Makes these number fields of o doubles to V8 from the start, keeping their values (call it in
 * the constructor). A count of cycles passes 2^31, the largest small integer, after 21.5 s at
 * 100 MHz (one of ns after 2.1 s): a field V8 held as a small integer becomes a double then,
 * which retires the shape of every object of the class and deoptimizes every optimized function
 * that used one, once a process and mid-run (100 idle domains: ~20 functions, the scheduler's
 * and the run loop's, re-optimized over the next seconds; bench:scale's spiky window). A field
 * that is a double from the start never changes shape.
 */
export function storeAsDoubles<T extends object>(o: T, keys: readonly (keyof T & string)[]): void {
  const r = o as unknown as Record<string, number>;
  for (const k of keys) {
    const v = r[k];
    r[k] = 0.5;
    r[k] = v;
  }
}
