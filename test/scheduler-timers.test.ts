/**
 * The scheduler's next-deadline cache (scheduler.ts earliestDeadline): an exit no longer
 * scans every domain for one-shot timers, so the cache must say exactly what the scan said.
 * Idle domains (guests/bench/idle.c) re-arm their timers at different rates on two CPUs,
 * beside spinners, while domains are paused, moved and killed; the run is compared with one
 * whose scheduler scans every domain at each exit, as it did before the cache.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { launchDomain } from "../src/tools/launch.js";
import { DomainState } from "../src/xen/domain.js";
import { domainKill } from "../src/xen/domain_ctl.js";
import { Hypervisor } from "../src/xen/hypervisor.js";
import type { PhysicalCpu } from "../src/xen/scheduler.js";
import { writeElf32 } from "./helpers/elf32_writer.js";
import { guestPath } from "./support/guests.js";

/** A guest that never stops computing: `inc eax; jmp .-1`. */
const spinner = writeElf32({
  entry: 0xc0000000,
  segments: [{ vaddr: 0xc0000000, data: Uint8Array.from([0x40, 0xeb, 0xfd]) }],
  xenGuest: "GUEST_OS=spin,XEN_VER=3.0,LOADER=generic",
});

/** The earliest deadline on p by a scan of every running domain (the scheduler before the cache). */
function scanned(hv: Hypervisor, p: PhysicalCpu): number {
  let t = Number.POSITIVE_INFINITY;
  for (const d of hv.domains.values()) {
    if (d.state !== DomainState.Running) continue;
    for (const v of d.vcpus)
      if (v.processor === p.id && v.timerDeadline >= 0 && v.timerDeadline < t) t = v.timerDeadline;
  }
  return t;
}

interface Outcome {
  /** Every timer that fired: domain, physical CPU and that CPU's clock (cycles) then. */
  fires: string[];
  retired: number;
  cpuTimes: number[];
  /** runTimers calls where the cache and the scan disagreed (only checked with the cache). */
  mismatches: number;
  /** Fires later than the deadline's cycle plus one exit's cost, when it was ahead at the previous call. */
  late: string[];
  /** Due timers fired from the heap's top alone, and calls where several were due (a scan). */
  sole: number;
  several: number;
}

function scenario(withCache: boolean): Outcome {
  const hv = new Hypervisor({ memoryMiB: 96, cpus: 2, tscHz: 10_000_000 });
  const idle = readFileSync(guestPath("bench_idle"));
  const ticks = [1, 2, 3, 5, 7, 10, 1, 4];
  const doms = ticks.map(
    (t, i) =>
      launchDomain(hv, { name: `idle${i}`, image: idle, memoryMiB: 4, cmdline: `tick_ms=${t}` }).domain,
  );
  for (const [i, d] of doms.entries()) hv.sched.migrate(d.vcpus[0], i % 2);
  const spinners = [0, 1].map((cpu) => {
    const d = launchDomain(hv, { name: `spin${cpu}`, image: spinner, memoryMiB: 4 }).domain;
    hv.sched.migrate(d.vcpus[0], cpu);
    return d;
  });
  const sched = hv.sched;
  const out: Outcome = { fires: [], retired: 0, cpuTimes: [], mismatches: 0, late: [], sole: 0, several: 0 };
  if (!withCache) {
    sched.earliestDeadline = (p: PhysicalCpu) => scanned(hv, p);
    // No heap either: every due timer is found by the scan.
    sched.soleDue = () => null;
  } else {
    const soleDue = sched.soleDue.bind(sched);
    sched.soleDue = (p: PhysicalCpu) => {
      const nowNs = sched.dueNs;
      const v = soleDue(p);
      if (v !== null) out.sole++;
      else if (scanned(hv, p) <= nowNs) out.several++;
      return v;
    };
  }
  const before = new Map<number, number>();
  const lastCycles = new Map<number, number>();
  const runTimers = sched.runTimers.bind(sched);
  sched.runTimers = (p: PhysicalCpu) => {
    if (withCache && sched.earliestDeadline(p) !== scanned(hv, p)) out.mismatches++;
    before.clear();
    for (const d of hv.domains.values()) for (const v of d.vcpus) before.set(d.id, v.timerDeadline);
    runTimers(p);
    for (const d of hv.domains.values()) {
      const was = before.get(d.id) ?? -1;
      if (was < 0 || d.vcpus[0].timerDeadline >= 0) continue;
      if (d.state !== DomainState.Running) continue;
      out.fires.push(`${d.id}@${p.id}:${p.cycles}`);
      const due = hv.clock.cyclesAt(was);
      // Due after this CPU's previous look: the horizon must have stopped it at the deadline.
      if ((lastCycles.get(p.id) ?? 0) < due && p.cycles > due + 100)
        out.late.push(`${d.id}: ${p.cycles} > ${due}`);
    }
    lastCycles.set(p.id, p.cycles);
  };
  hv.run(60e6);
  hv.pauseDomain(doms[2]);
  hv.run(90e6);
  hv.unpauseDomain(doms[2]);
  hv.sched.migrate(doms[3].vcpus[0], 0);
  hv.run(120e6);
  domainKill(hv, doms[4]);
  hv.run(160e6);
  hv.sched.migrate(doms[5].vcpus[0], 1);
  hv.run(200e6);
  out.retired = hv.cpu.retiredTotal;
  out.cpuTimes = [...doms, ...spinners].map((d) => d.vcpus[0].cpuTimeNs);
  return out;
}

describe("one-shot timers with the deadline heaps", () => {
  it("fire on the same CPU at the same cycle as with a scan of every domain at each exit", () => {
    const cached = scenario(true);
    const scan = scenario(false);
    assert.equal(cached.mismatches, 0, "the cache disagreed with a scan");
    assert.deepEqual(cached.late, []);
    assert.deepEqual(scan.late, []);
    // Hundreds of fires: tick rates of 1-10 ms over 200 ms on 6-7 live domains.
    assert.ok(cached.fires.length > 300, `only ${cached.fires.length} timers fired`);
    assert.deepEqual(cached.fires, scan.fires);
    assert.equal(cached.retired, scan.retired);
    assert.deepEqual(cached.cpuTimes, scan.cpuTimes);
    // Most fires come off the heap without a scan; the rest were due together.
    assert.ok(
      cached.sole > cached.fires.length * 0.8,
      `${cached.sole} of ${cached.fires.length} from the heap`,
    );
    assert.equal(scan.sole, 0);
  });
});

describe("the deadline heap against a scan", () => {
  /** Three spinning domains on CPU 0 whose timers the test sets itself. */
  function three() {
    const hv = new Hypervisor({ memoryMiB: 64 });
    const vs = [0, 1, 2].map(
      (i) => launchDomain(hv, { name: `s${i}`, image: spinner, memoryMiB: 4 }).domain.vcpus[0],
    );
    return { hv, p: hv.sched.pcpus[0], vs };
  }

  it("finds the sole due timer, leaves several to the scan, and drops moved and dead ones", () => {
    const { hv, p, vs } = three();
    const sched = hv.sched;
    vs[0].timerDeadline = 5e6;
    vs[1].timerDeadline = 5e6;
    vs[2].timerDeadline = 9e6;
    // soleDue asks at the time runTimers left in dueNs.
    const at = (ns: number) => {
      sched.dueNs = ns;
      return p;
    };
    assert.equal(sched.soleDue(at(4e6)), null, "nothing is due yet");
    assert.equal(sched.soleDue(at(6e6)), null, "two are due: the scan fires them");
    assert.equal(sched.earliestDeadline(p), 5e6, "the one taken off to look is back");
    vs[1].timerDeadline = -1;
    assert.equal(sched.soleDue(at(6e6)), vs[0]);
    vs[0].timerDeadline = 7e6;
    assert.equal(sched.earliestDeadline(p), 7e6, "the 5 ms entry went stale when it moved");
    hv.pauseDomain(vs[0].domain);
    assert.equal(sched.earliestDeadline(p), scanned(hv, p));
    domainKill(hv, vs[2].domain);
    assert.equal(sched.earliestDeadline(p), scanned(hv, p));
    // A vcpu re-arming later and later while another's timer stays first: stale entries pile
    // up under the top until the heap is rebuilt; the answer stays the scan's.
    hv.unpauseDomain(vs[0].domain);
    vs[1].timerDeadline = 1e6;
    for (let i = 0; i < 10_000; i++) vs[0].timerDeadline = 2e6 + i;
    assert.equal(sched.earliestDeadline(p), 1e6);
    vs[1].timerDeadline = -1;
    assert.equal(sched.earliestDeadline(p), 2e6 + 9_999);
    assert.equal(sched.earliestDeadline(p), scanned(hv, p));
  });

  it("runTimers fires every due timer when several are due at once", () => {
    const { hv, p, vs } = three();
    vs[2].timerDeadline = 3e6;
    vs[0].timerDeadline = 3e6;
    vs[1].timerDeadline = 8e6;
    p.cycles = hv.clock.cyclesAt(4e6);
    hv.sched.runTimers(p);
    assert.deepEqual(
      vs.map((v) => v.timerDeadline),
      [-1, 8e6, -1],
      "both due timers fired, the later one kept",
    );
    assert.equal(hv.sched.earliestDeadline(p), 8e6);
  });
});
