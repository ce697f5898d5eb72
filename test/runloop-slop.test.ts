/**
 * tsxend's run loop sleeps on timers (src/daemon/runloop.ts pause): once guest time has caught
 * up with the wall clock and no vcpu can run, it sleeps until just past the earliest deadline
 * (Scheduler.nextWakeNs), or the timer slop when that is later, so 100 idle domains' 10,000
 * ticks a second are served a few dozen times a second instead of every millisecond. Guest
 * time never runs ahead of the wall clock, a chosen sleep is no debt to forgive, a runnable
 * vcpu or a console backlog keeps 1 ms turns, and anything that makes a vcpu runnable
 * meanwhile (Scheduler.onWake) wakes the loop at once.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { RunLoop } from "../src/daemon/runloop.js";
import { VirqMar } from "../src/public/xen.js";
import type { DomainManager } from "../src/tools/domains.js";
import { launchDomain } from "../src/tools/launch.js";
import { sendGuestVirq } from "../src/xen/event_channel.js";
import { Hypervisor, type RunResult } from "../src/xen/hypervisor.js";
import { guestPath } from "./support/guests.js";

interface Run {
  wall: number;
  to: number;
}

/** A hypervisor whose runs reach their limit at once; nextWake says what is due. */
function fakeHypervisor(nextWake: (now: number) => number) {
  let now = 0;
  const runs: Run[] = [];
  const hv = {
    sched: { onWake: null as (() => void) | null, nextWakeNs: () => nextWake(now) },
    irq: { nextDueNs: () => Number.POSITIVE_INFINITY },
    nowNs: () => now,
    run(limitNs: number): RunResult {
      now = limitNs;
      runs.push({ wall: performance.now(), to: limitNs });
      return { kind: "time-limit" };
    },
  };
  return { hv, runs };
}

const manager = (backlog = false) =>
  ({ pumpConsoles() {}, handleStops() {}, consoleBacklog: backlog }) as unknown as DomainManager;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs the loop on the fake for ms of wall time; its turns (runs after a pause of 0.9 ms or more). */
async function drive(
  nextWake: (now: number) => number,
  slopMs: number,
  ms: number,
  backlog = false,
): Promise<{ runs: Run[]; turns: number; t0: number; lagMs: number }> {
  const { hv, runs } = fakeHypervisor(nextWake);
  const loop = new RunLoop(hv as unknown as Hypervisor, manager(backlog), "realtime", () => {}, slopMs);
  const t0 = performance.now();
  loop.start();
  await sleep(ms);
  await loop.stop();
  const lagMs = performance.now() - t0 - hv.nowNs() / 1e6;
  let turns = runs.length > 0 ? 1 : 0;
  for (let i = 1; i < runs.length; i++) if (runs[i].wall - runs[i - 1].wall >= 0.9) turns++;
  // Guest time never ahead of the wall clock (the loop's base is taken after t0).
  for (const r of runs) assert.ok(r.to <= (r.wall - t0) * 1e6 + 1e3, `ran to ${r.to} ns at ${r.wall - t0} ms`);
  return { runs, turns, t0, lagMs };
}

describe("tsxend's run loop sleeps on timers", () => {
  it("serves dense deadlines once per slop, keeping pace with the wall clock, and 1 ms turns when a vcpu can run", async () => {
    const dense = (now: number) => now + 100_000;
    const slack = await drive(dense, 50, 700);
    const tight = await drive(dense, 0, 700);
    const runnable = await drive(() => Number.NEGATIVE_INFINITY, 50, 700);
    const backlog = await drive(dense, 50, 700, true);
    const figures = `turns: slop 50 ${slack.turns}, slop 0 ${tight.turns}, runnable ${runnable.turns}, console backlog ${backlog.turns}`;
    // 700 ms / 50 ms, and a few for a loaded machine's late timers and preemptions.
    assert.ok(slack.turns >= 5 && slack.turns <= 24, figures);
    for (const t of [tight, runnable, backlog]) assert.ok(t.turns >= 3 * slack.turns, figures);
    // The sleeps are not debt: guest time ends within a slop (and a late timer) of the wall.
    assert.ok(slack.lagMs < 50 + 150, `lag ${slack.lagMs.toFixed(1)} ms`);
  });

  it("a slop longer than the catch-up bound still keeps pace (a chosen sleep is no debt)", async () => {
    // 150 ms of sleep is past MAX_LAG_NS (100 ms): counted as debt it would be forgiven at each
    // wake-up, and guest time would fall ~150 ms further behind each time.
    const r = await drive((now) => now + 100_000, 150, 1000);
    assert.ok(r.turns >= 4, `turns ${r.turns}`);
    assert.ok(r.lagMs < 150 + 150, `lag ${r.lagMs.toFixed(1)} ms`);
  });

  it("sleeps until a deadline beyond the slop, and serves it on time", async () => {
    const due = 300e6;
    const r = await drive((now) => (now < due ? due : Number.POSITIVE_INFINITY), 20, 500);
    const between = r.runs.filter((x) => x.wall - r.t0 > 40 && x.wall - r.t0 < 290);
    assert.deepEqual(between, [], "no turn while nothing is due");
    const served = r.runs.find((x) => x.to >= due);
    assert.ok(served !== undefined, "the deadline was reached");
    assert.ok(served.wall - r.t0 < 300 + 100, `served at ${(served.wall - r.t0).toFixed(1)} ms`);
  });

  it("wakes at once when a vcpu becomes runnable while it sleeps (Scheduler.onWake)", async () => {
    const { hv, runs } = fakeHypervisor(() => Number.POSITIVE_INFINITY);
    const loop = new RunLoop(hv as unknown as Hypervisor, manager(), "realtime", () => {}, 50);
    loop.start();
    let before = 0;
    let woke = 0;
    try {
      await sleep(100);
      before = runs.length;
      assert.ok(hv.sched.onWake !== null, "the hook is set while the loop sleeps");
      woke = performance.now();
      hv.sched.onWake();
      await sleep(60);
    } finally {
      await loop.stop();
    }
    assert.ok(runs.length > before, "a turn ran");
    assert.ok(runs[before].wall - woke < 50, `woke after ${(runs[before].wall - woke).toFixed(1)} ms`);
    assert.equal(hv.sched.onWake, null, "and the hook is gone once it runs");
  });

  it("Scheduler.nextWakeNs: the earliest deadline of idle domains, -Infinity once one can run; wake calls onWake", () => {
    const hv = new Hypervisor({ memoryMiB: 64 });
    const image = readFileSync(guestPath("bench_idle"));
    const doms = [7, 10, 13].map(
      (t, i) => launchDomain(hv, { name: `idle${i}`, image, memoryMiB: 4, cmdline: `tick_ms=${t}` }).domain,
    );
    assert.equal(hv.sched.nextWakeNs(), Number.NEGATIVE_INFINITY, "booting: runnable");
    assert.equal(hv.run(hv.nowNs() + 500e6).kind, "time-limit");
    const deadlines = doms.map((d) => d.vcpus[0].timerDeadline);
    assert.ok(
      deadlines.every((x) => x > hv.nowNs()),
      `every domain waits on its tick: ${deadlines} at ${hv.nowNs()}`,
    );
    assert.equal(hv.sched.nextWakeNs(), Math.min(...deadlines));
    let wakes = 0;
    hv.sched.onWake = () => wakes++;
    sendGuestVirq(hv, doms[1].vcpus[0], VirqMar.TIMER);
    assert.equal(wakes, 1, "the event from outside woke its vcpu, and the hook heard it");
    assert.equal(hv.sched.nextWakeNs(), Number.NEGATIVE_INFINITY, "it can run now");
    hv.sched.onWake = null;
    assert.equal(hv.run(hv.nowNs() + 100e6).kind, "time-limit");
    assert.ok(Number.isFinite(hv.sched.nextWakeNs()), "blocked again on their timers");
  });
});
