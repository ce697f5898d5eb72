/**
 * tsxend's run loop takes each turn as a microtask (src/daemon/runloop.ts): V8 builds a message
 * object, walking the stack, for every exception thrown outside one (from a timer or an
 * immediate callback), and the CPU unwinds each guest fault with a throw. The hypervisor
 * must see no timer frame below it, and the loop must still run, pace and stop as before.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { RunLoop } from "../src/daemon/runloop.js";
import type { DomainManager } from "../src/tools/domains.js";
import type { Hypervisor, RunResult } from "../src/xen/hypervisor.js";

/** A hypervisor that records the stack of each run() and advances 2 ms of guest time. */
function fakeHypervisor(stacks: string[], idleAfter: number) {
  let now = 0;
  let runs = 0;
  return {
    nowNs: () => now,
    run(limitNs: number): RunResult {
      const limit = Error.stackTraceLimit;
      Error.stackTraceLimit = 100;
      stacks.push(new Error("run").stack ?? "");
      Error.stackTraceLimit = limit;
      now = Math.min(limitNs, now + 2e6);
      return ++runs >= idleAfter ? { kind: "idle", why: "test" } : { kind: "time-limit" };
    },
  };
}

const manager = { pumpConsoles() {}, handleStops() {} } as unknown as DomainManager;

describe("tsxend's run loop turns", () => {
  it("run the hypervisor from a microtask, not under the immediate or timer callback", async () => {
    const stacks: string[] = [];
    const hv = fakeHypervisor(stacks, 3);
    const errors: unknown[] = [];
    const loop = new RunLoop(hv as unknown as Hypervisor, manager, "fast", (e) => errors.push(e));
    loop.start();
    // The third run reports idle: the next turn comes from a 20 ms timer.
    while (stacks.length < 4) await new Promise((r) => setTimeout(r, 5));
    await loop.stop();
    assert.deepEqual(errors, []);
    for (const s of stacks) {
      // turn, the closure that called it, then V8's microtask runner (no JS frame, or Node's
      // task queue when async hooks are on), never the timer or immediate callback itself.
      const lines = s.split("\n");
      const t = lines.findIndex((l) => /RunLoop\.turn/.test(l));
      assert.ok(t > 0, s);
      assert.match(lines[t + 1], /runloop\.js/, s);
      assert.doesNotMatch(lines[t + 2] ?? "", /timers|processImmediate|listOnTimeout/, s);
    }
  });

  it("a stop between the immediate and its microtask runs no further slice", async () => {
    const stacks: string[] = [];
    const hv = fakeHypervisor(stacks, 1_000_000);
    const loop = new RunLoop(hv as unknown as Hypervisor, manager, "fast", () => {});
    loop.start();
    await loop.stop();
    await new Promise((r) => setTimeout(r, 30));
    assert.equal(stacks.length, 0);
  });
});
