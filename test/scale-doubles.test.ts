/**
 * The scheduler's cycle counts and a vcpu's ns are doubles to V8 from the start (issue 16, the
 * idle goal's spiky window). At 100 MHz a physical CPU's cycles pass 2^31, the largest small
 * integer, after 21.5 s of guest time: a field V8 held as a small integer then became a double,
 * which retired PhysicalCpu's shape and deoptimized ~20 optimized functions at once (schedule,
 * runTimers, nextEvent, earliestDeadline, the run loop's slice, Hypervisor.run, ...), then
 * re-optimized over the next seconds: bench:scale's idle windows from ~21 s of guest time on
 * at 9-13 % of a core against ~5. A child node with --allow-natives-syntax asks %HaveSameMap
 * of an object made before the values grew and the one that holds them: a field that changed
 * representation gives the holder a new shape. Mutations (dist copy), each failing it: the
 * PhysicalCpu constructor without storeAsDoubles (both cases); storeAsDoubles storing nothing;
 * the Vcpu constructor without it (cpuTimeNs), without the timerDeadline store.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { describe, it } from "node:test";

const url = (p: string) => new URL(p, import.meta.url).href;

function child(code: string): Record<string, unknown> {
  const out = execFileSync(process.execPath, ["--allow-natives-syntax", "--input-type=module", "-e", code], {
    encoding: "utf8",
  });
  return JSON.parse(out) as Record<string, unknown>;
}

describe("scale: cycle and ns fields keep their objects' shape past 2^31", () => {
  it("an idle domain run 22 s: the physical CPU's and the vcpu's shape unchanged", () => {
    const r = child(`
      import { readFileSync } from "node:fs";
      const { launchDomain } = await import(${JSON.stringify(url("../src/tools/launch.js"))});
      const { Hypervisor } = await import(${JSON.stringify(url("../src/xen/hypervisor.js"))});
      const { PhysicalCpu } = await import(${JSON.stringify(url("../src/xen/scheduler.js"))});
      const { Vcpu } = await import(${JSON.stringify(url("../src/xen/domain.js"))});
      const { guestPath } = await import(${JSON.stringify(url("./support/guests.js"))});
      const hv = new Hypervisor({ memoryMiB: 64, onConsole: () => {} });
      const { domain: d } = launchDomain(hv, { name: "idle", image: readFileSync(guestPath("bench_idle")), memoryMiB: 16,
        cmdline: "tick_ms=10" });
      const p0 = new PhysicalCpu(7);
      const v0 = new Vcpu(d, 7);
      const p = hv.sched.pcpus[0];
      const v = d.vcpus[0];
      const before = { p: %HaveSameMap(p, p0), v: %HaveSameMap(v, v0) };
      hv.run(22e9);
      process.stdout.write(JSON.stringify({ before, cycles: p.cycles, nextTick: p.nextTick,
        deadline: v.timerDeadline, p: %HaveSameMap(p, p0), v: %HaveSameMap(v, v0) }));`);
    assert.deepEqual(r.before, { p: true, v: true });
    assert.ok(
      (r.cycles as number) > 2 ** 31 && (r.nextTick as number) > 2 ** 31,
      `cycles ${r.cycles} past 2^31`,
    );
    assert.ok((r.deadline as number) > 2 ** 31, `deadline ${r.deadline} ns past 2^31`);
    assert.equal(r.p, true, "PhysicalCpu's shape unchanged");
    assert.equal(r.v, true, "Vcpu's shape unchanged");
  });

  it("each field given a value past 2^31 keeps the shape", () => {
    const r = child(`
      const { PhysicalCpu } = await import(${JSON.stringify(url("../src/xen/scheduler.js"))});
      const { Domain, Vcpu } = await import(${JSON.stringify(url("../src/xen/domain.js"))});
      const out = {};
      for (const f of ["cycles", "sliceEnd", "lastSchedCycles", "nextTick", "lastTickCycles", "idleCycles"]) {
        const a = new PhysicalCpu(0);
        const b = new PhysicalCpu(1);
        a[f] = 2 ** 40 + 1;
        out[f] = [%HaveSameMap(a, b), a[f] === 2 ** 40 + 1, b[f]];
      }
      const d = new Domain(1, "d", false);
      for (const f of ["cpuTimeNs", "timerDeadline"]) {
        const a = new Vcpu(d, 0);
        const b = new Vcpu(d, 1);
        a[f] = 2 ** 40 + 1;
        out[f] = [%HaveSameMap(a, b), a[f] === 2 ** 40 + 1, b[f]];
      }
      process.stdout.write(JSON.stringify(out));`);
    assert.deepEqual(r, {
      cycles: [true, true, 0],
      sliceEnd: [true, true, 0],
      lastSchedCycles: [true, true, 0],
      nextTick: [true, true, 0],
      lastTickCycles: [true, true, 0],
      idleCycles: [true, true, 0],
      cpuTimeNs: [true, true, 0],
      timerDeadline: [true, true, -1],
    });
  });
});
