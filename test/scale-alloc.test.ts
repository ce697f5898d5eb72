/**
 * The idle tick's one-shot fire allocates nothing in the scheduler (issue 16, scale): past
 * 2^30 cycles a time passed as an argument to a call V8 does not inline is boxed, a heap number
 * every fire; runTimers leaves it in Scheduler.dueNs for soleDue. Two idle domains ticking each
 * 1 ms run past 2^30 cycles (their code optimized), then V8's sampling heap profiler, keeping
 * what minor and major GCs freed, watches 1 s of guest time (2,000 fires): no sample may fall
 * in runTimers or soleDue. Mutation (dist copy), failing it: soleDue(p, nowNs) as before
 * (33,856 bytes sampled in runTimers).
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { Session } from "node:inspector/promises";
import { describe, it } from "node:test";
import { launchDomain } from "../src/tools/launch.js";
import { Hypervisor } from "../src/xen/hypervisor.js";
import { guestPath } from "./support/guests.js";

type Node = { callFrame: { functionName: string }; selfSize: number; children: Node[] };

describe("scale: the idle tick's allocations", () => {
  it("runTimers and soleDue allocate nothing a fire past 2^30 cycles", async () => {
    const hv = new Hypervisor({ memoryMiB: 64, onConsole: () => {} });
    const image = readFileSync(guestPath("bench_idle"));
    const idle = [0, 1].map(
      (i) => launchDomain(hv, { name: `idle${i}`, image, memoryMiB: 16, cmdline: "tick_ms=1" }).domain,
    );
    let t = 0;
    const run = (ms: number) => {
      t += ms * 1e6;
      assert.equal(hv.run(t).kind, "time-limit");
    };
    for (let i = 0; i < 150; i++) run(100);
    assert.ok(hv.sched.pcpus[0].cycles > 2 ** 30, "past 2^30 cycles");
    const session = new Session();
    session.connect();
    await session.post("HeapProfiler.startSampling", {
      samplingInterval: 64,
      includeObjectsCollectedByMinorGC: true,
      includeObjectsCollectedByMajorGC: true,
    });
    const before = idle.map((d) => d.vcpus[0].cpuTimeNs);
    // A known allocation in the window: the profiler is sampling.
    const witness = () => Array.from({ length: 4096 }, (_, i) => ({ i }));
    const kept = witness();
    run(1000);
    const { profile } = (await session.post("HeapProfiler.stopSampling")) as { profile: { head: Node } };
    session.disconnect();
    assert.ok(
      idle.every((d, i) => d.vcpus[0].cpuTimeNs > before[i]),
      "both domains ran",
    );
    const bytes = new Map<string, number>();
    const walk = (n: Node) => {
      const f = n.callFrame.functionName;
      bytes.set(f, (bytes.get(f) ?? 0) + n.selfSize);
      for (const c of n.children) walk(c);
    };
    walk(profile.head);
    assert.equal(kept.length, 4096);
    assert.ok((bytes.get("witness") ?? 0) + (bytes.get("from") ?? 0) > 0, "the witness's samples");
    assert.equal(bytes.get("runTimers") ?? 0, 0, "runTimers' bytes");
    assert.equal(bytes.get("soleDue") ?? 0, 0, "soleDue's bytes");
  });
});
