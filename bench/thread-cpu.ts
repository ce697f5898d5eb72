/**
 * CPU time of a process from its threads' nanosecond counters, for the benchmarks that time
 * another process (bench:linux's QEMU) or their own threads: /proc/PID/stat's utime and stime
 * count in 10 ms ticks, so a phase of one or two ticks has a ratio that is mostly rounding.
 */
import { readdirSync, readFileSync } from "node:fs";

/** A thread's time on a CPU so far, ns (the first field of its schedstat); NaN where /proc lacks it. */
export function schedNs(pid: number, tid: number | string): number {
  try {
    return Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "latin1").split(" ")[0]);
  } catch {
    return Number.NaN;
  }
}

/**
 * Reads a process's CPU time summed over its threads, ms. Each thread's last reading is kept,
 * so a thread that ends between two reads (QEMU's and V8's worker threads come and go) keeps
 * what it had used when last seen instead of dropping out of the sum; what it used after that
 * is lost (never more than one read's interval of that thread).
 */
export class ThreadCpu {
  private readonly seen = new Map<string, number>();
  constructor(private readonly pid: number) {}

  /** The sum so far, ms; NaN where /proc lacks the process. */
  ms(): number {
    let tids: string[];
    try {
      tids = readdirSync(`/proc/${this.pid}/task`);
    } catch {
      return this.seen.size === 0 ? Number.NaN : this.sum();
    }
    for (const tid of tids) {
      const ns = schedNs(this.pid, tid);
      if (!Number.isNaN(ns)) this.seen.set(tid, ns);
    }
    return this.seen.size === 0 ? Number.NaN : this.sum();
  }

  private sum(): number {
    let ns = 0;
    for (const v of this.seen.values()) ns += v;
    return ns / 1e6;
  }
}
