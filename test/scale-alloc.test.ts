/**
 * The idle tick's one-shot fire allocates nothing in the scheduler (issue 16, scale): past
 * 2^30 cycles a time passed as an argument to a call V8 does not inline is boxed, a heap number
 * every fire; runTimers leaves it in Scheduler.dueNs for soleDue. Two idle domains ticking each
 * 1 ms run past 2^30 cycles (their code optimized), then V8's sampling heap profiler, keeping
 * what minor and major GCs freed, watches 1 s of guest time (2,000 fires): no sample may fall
 * in runTimers or soleDue. Mutation (dist copy), failing it: soleDue(p, nowNs) as before
 * (33,856 bytes sampled in runTimers).
 *
 * In the same window the event upcall's bounce (every tick: the timer's event) allocates
 * nothing: the callback's EIP is int32 as set_callbacks stores it (a kernel address at 0xc0000000
 * and up is then a small integer; as unsigned it was a heap number at the call to bounce, which
 * V8 does not inline there), and checkGuestSegment's limit and base are int32 (a 4 GiB limit as
 * unsigned was a heap number where descLimit is not inlined). Mutations (dist copy), each failing
 * it: doSetCallbacks storing the event EIP without `| 0`. The same window
 * in a child node with --no-turbo-inlining (every call a call, as where V8 declines to inline):
 * the upcall's bounce and its CS check allocate nothing there either. Mutation failing only that
 * one: descLimit returning its 4 GiB limit `>>> 0` (descLimit's bytes, 32,832 on a8c796b).
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { Session } from "node:inspector/promises";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { launchDomain } from "../src/tools/launch.js";
import { Hypervisor } from "../src/xen/hypervisor.js";
import { guestPath } from "./support/guests.js";

type Node = { callFrame: { functionName: string }; selfSize: number; children: Node[] };

/** The upcall's bounce and the descriptor checks it makes (traps.ts, descriptors.ts). */
const BOUNCE_PATH = [
  "deliverEvents",
  "bounce",
  "loadBounceSegment",
  "loadGuestSegment",
  "checkGuestSegment",
  "descLimit",
  "descBase",
];

/**
 * Two idle domains ticking each 1 ms run past 2^30 cycles, then 1 s of guest time (2,000
 * fires) is watched by V8's sampling heap profiler: bytes sampled by function.
 */
async function idleWindowBytes(): Promise<Map<string, number>> {
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
  return bytes;
}

if (process.env.TSXEN_SCALE_ALLOC_CHILD === "1") {
  // The child run: the window's bytes as JSON, no tests.
  const bytes = await idleWindowBytes();
  process.stdout.write(JSON.stringify(Object.fromEntries(bytes)));
} else {
  describe("scale: the idle tick's allocations", () => {
    it("runTimers, soleDue and the upcall's bounce allocate nothing a fire past 2^30 cycles", async () => {
      const bytes = await idleWindowBytes();
      assert.equal(bytes.get("runTimers") ?? 0, 0, "runTimers' bytes");
      assert.equal(bytes.get("soleDue") ?? 0, 0, "soleDue's bytes");
      for (const f of BOUNCE_PATH) assert.equal(bytes.get(f) ?? 0, 0, `${f}'s bytes`);
    });

    it("the upcall's bounce allocates nothing with no call inlined", () => {
      const out = execFileSync(process.execPath, ["--no-turbo-inlining", fileURLToPath(import.meta.url)], {
        env: { ...process.env, TSXEN_SCALE_ALLOC_CHILD: "1" },
        encoding: "utf8",
        maxBuffer: 1 << 24,
      });
      const bytes = new Map(Object.entries(JSON.parse(out) as Record<string, number>));
      // The child's window sampled: without inlining the scheduler's doubles are boxed.
      assert.ok((bytes.get("earliestDeadline") ?? 0) + (bytes.get("topNs") ?? 0) > 0, "the child's samples");
      for (const f of BOUNCE_PATH) assert.equal(bytes.get(f) ?? 0, 0, `${f}'s bytes`);
    });
  });
}
