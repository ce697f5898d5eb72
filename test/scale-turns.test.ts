/**
 * The run loop's per-turn paths trimmed for idle domains (issue 16, scale), each against what
 * it replaced, with two idle domains beside a hashed victim:
 * - the scheduler's indexed loops over the physical CPUs: pickCpu (the CPU furthest behind,
 *   the lowest id on ties) and horizon, checked at every call of a three-CPU run against the
 *   scans they replace, each CPU picked and each bounding another's horizon;
 * - the machine interrupt controller's next periodic edge, asked by the run loop only when a
 *   periodic device is attached: with one attached, every edge is seen at its due time.
 * Mutations (dist copy), each failing it: pickCpu from index 2, or taking the last of equals;
 * horizon from index 1; the run loop never asking the periodic edge (54 of 200 edges seen).
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { launchDomain } from "../src/tools/launch.js";
import type { Domain } from "../src/xen/domain.js";
import { Hypervisor } from "../src/xen/hypervisor.js";
import type { PhysicalCpu } from "../src/xen/scheduler.js";
import { guestPath } from "./support/guests.js";
import { frameHashes, launchVictim } from "./support/victim.js";

function machine(cpus: number) {
  const out = new Map<Domain, string>();
  const hv = new Hypervisor({
    memoryMiB: 64,
    cpus,
    onConsole: (d, b) => void out.set(d, (out.get(d) ?? "") + Buffer.from(b).toString("latin1")),
  });
  const victim = launchVictim({ hv, out });
  const before = frameHashes(hv, victim.pages);
  const image = readFileSync(guestPath("bench_idle"));
  const idle = [0, 1].map(
    (i) => launchDomain(hv, { name: `idle${i}`, image, memoryMiB: 16, cmdline: "tick_ms=1" }).domain,
  );
  const victimIntact = () => {
    assert.deepEqual(frameHashes(hv, victim.pages), before, "the victim's frames");
    assert.equal((out.get(victim) ?? "").split("\n").length, 2, "the victim printed nothing more");
  };
  return { hv, idle, victimIntact };
}

describe("scale: the run loop's per-turn paths", () => {
  it("pickCpu and horizon answer as the scans they replace, on three CPUs", () => {
    const { hv, idle, victimIntact } = machine(3);
    // CPU 0 the victim's and a ticker's, CPU 1 empty (its clock jumps), CPU 2 a ticker's.
    hv.sched.migrate(idle[1].vcpus[0], 2);
    const sched = hv.sched;
    // scheduler.ts QUANTUM_NS (1 ms): how far a CPU may run past the slowest other one.
    const quantum = hv.clock.cyclesAt(1_000_000);
    const pick = sched.pickCpu.bind(sched);
    const horizon = sched.horizon.bind(sched);
    let picks = 0;
    let ties = 0;
    const picked = [0, 0, 0];
    let horizons = 0;
    /** By CPU: how often it bound another CPU's horizon (its clock + the quantum the least). */
    const boundBy = [0, 0, 0];
    sched.pickCpu = () => {
      // The scan it replaced: the first CPU with the fewest cycles.
      let want = sched.pcpus[0];
      for (const p of sched.pcpus) if (p.cycles < want.cycles) want = p;
      const got = pick();
      assert.equal(got.id, want.id, "pickCpu: the CPU the scan picks");
      picks++;
      picked[got.id]++;
      if (sched.pcpus.some((p) => p !== got && p.cycles === got.cycles)) ties++;
      return got;
    };
    sched.horizon = (p: PhysicalCpu) => {
      let want = sched.nextEvent(p);
      let by = -1;
      for (const o of sched.pcpus) {
        const h = Math.max(o.cycles, p.cycles) + quantum;
        if (o !== p && h < want) {
          want = h;
          by = o.id;
        }
      }
      const got = horizon(p);
      assert.equal(got, want, `horizon of CPU ${p.id}`);
      horizons++;
      if (by >= 0) boundBy[by]++;
      return got;
    };
    const ran = idle.map((d) => d.vcpus[0].cpuTimeNs);
    hv.run(hv.nowNs() + 200e6);
    // Each ticker ran through the run (1 ms ticks: ~200 wakeups each).
    for (const [i, d] of idle.entries()) assert.ok(d.vcpus[0].cpuTimeNs > ran[i], `${d.name} ran`);
    assert.ok(picks > 300, `${picks} picks`);
    assert.ok(ties > 10, `${ties} picks among CPUs at the same cycle`);
    for (let i = 0; i < 3; i++) assert.ok(picked[i] > 50, `CPU ${i} picked ${picked[i]} times`);
    assert.ok(horizons > 300, `${horizons} horizons`);
    for (let i = 0; i < 3; i++)
      assert.ok(boundBy[i] > 10, `CPU ${i} bound another's horizon ${boundBy[i]} times`);
    victimIntact();
  });

  it("a periodic device's edge ends the turn at its due time (the horizon asks it only when one is attached)", () => {
    const { hv, victimIntact } = machine(1);
    const irq = hv.irq;
    const LINE = 5;
    const PERIOD_NS = 250_000;
    irq.attachPeriodic(LINE, PERIOD_NS, hv.nowNs());
    irq.startup(LINE);
    const tick = irq.tick.bind(irq);
    let edges = 0;
    let worst = 0;
    irq.tick = (nowNs: number) => {
      const due = irq.nextDueNs();
      if (nowNs >= due) {
        edges++;
        worst = Math.max(worst, nowNs - due);
      }
      tick(nowNs);
    };
    hv.run(hv.nowNs() + 50e6);
    // Nobody bound the line: each edge is acked and ended as spurious, the next one due.
    assert.ok(edges >= 195, `${edges} edges seen in 50 ms of 250 us periods`);
    // Seen at the turn that reaches it: within a cycle (cyclesAt rounds up to whole cycles).
    assert.ok(worst < hv.clock.ns(1) + 1e-6, `an edge seen ${worst} ns after its due time`);
    victimIntact();
  });
});
