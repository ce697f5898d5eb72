/**
 * The scheduler's deadline queue (src/xen/scheduler.ts) under attack, beside a victim: a guest
 * (guests/hostile/timer_storm.c) sets its one-shot timer earlier again and again, 1 us apart
 * up to 1 ms or 2.5-4.5 ms ahead of now, so nearly every set is an out-of-order insertion that shifts the
 * stale entries it left behind, and every REBUILD_AT of them the queue is rebuilt from a scan;
 * now and then a cancel or a later deadline among them. Beside it an idle kernel ticks every
 * 1 ms (guests/bench/idle.c: at each tick it arms the next), its deadlines in among the
 * attacker's, and the hashed victim sleeps.
 *
 * Checked from outside after every hypercall: no vcpu's deadline stays pending past due (20 us
 * of slack). The ticker's ticks all arrive, each 1 ms (+ at most 20 us) after the last, as many
 * as the virtual time allows; the attacker's own timer fires at its last deadline of each round
 * (its checks); the victim's frames hash the same. The attack must have done what it is for:
 * many shifted entries and many rebuilds.
 *
 * Mutations (each fails here, none hangs: the run is bounded in virtual time): a rebuild that
 * drops a vcpu; an insertion one place short of where it belongs.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { HypercallMar } from "../src/public/xen.js";
import { DomainState } from "../src/xen/domain.js";
import { deadlineStats } from "../src/xen/scheduler.js";
import { besideVictim } from "./support/attack.js";
import { assertGuestPassed } from "./support/console.js";

/** The guest's CHECK lines. */
const CHECKS = 6;
const ROUNDS = 24;
const N = 1000;
/** Odd rounds set N deadlines, even ones N / 5. */
const SETS = (ROUNDS / 2) * (N + N / 5);
/** How long a due deadline may stay pending, in ns. */
const SLACK_NS = 20_000;

describe("the deadline queue under a timer storm", () => {
  for (const backend of ["wasm", "js"] as const)
    it(`${backend} blocks: a guest setting its timer earlier again and again beside a 1 ms ticker: every timer fires on time, the ticker keeps its ticks, the victim untouched`, () => {
      const b = besideVictim(backend);
      const m = b.m;
      const ticker = b.launch({ guest: "bench_idle", name: "ticker", cmdline: "tick_ms=1" });
      assert.equal(m.hv.run(m.hv.nowNs() + 20e6).kind, "time-limit");
      assert.match(b.text(ticker), /idle: ready, tick 1 ms/);

      const armed: number[] = [];
      const overdue: string[] = [];
      m.hv.afterHypercall = (v, nr) => {
        const now = m.hv.nowNs();
        if (v.domain === ticker && nr === HypercallMar.set_timer_op) armed.push(now);
        for (const d of m.hv.domains.values())
          for (const u of d.vcpus)
            if (u.timerDeadline >= 0 && u.timerDeadline < now - SLACK_NS && overdue.length < 10)
              overdue.push(`${d.name}: due ${u.timerDeadline}, now ${now}`);
      };
      const shifted0 = deadlineStats.shifted;
      const rebuilds0 = deadlineStats.rebuilds;
      const t0 = m.hv.nowNs();
      const attacker = b.launch({
        guest: "hostile_timer_storm",
        name: "storm",
        cmdline: `rounds=${ROUNDS} n=${N}`,
      });
      // Bounded in virtual time: a lost timer fails the checks below, it does not hang.
      b.runUntil(() => /DONE/.test(b.text(attacker)), 400);
      const t1 = m.hv.nowNs();
      m.hv.afterHypercall = null;

      const text = b.text(attacker);
      assertGuestPassed(text);
      assert.match(text, new RegExp(`DONE passed=${CHECKS} failed=0`), text);
      assert.match(text, new RegExp(`STORM rounds=${ROUNDS} sets=${SETS}`), text);
      assert.deepEqual(overdue, [], "deadlines pending past due");
      // The storm did what it is for: insertions that shift, and rebuilds.
      const shifted = deadlineStats.shifted - shifted0;
      const rebuilds = deadlineStats.rebuilds - rebuilds0;
      assert.ok(shifted > SETS * 100, `${shifted} entries shifted`);
      assert.ok(rebuilds > SETS / 2000, `${rebuilds} rebuilds`);
      // The ticker's ticks: each 1 ms after the last (~2 us to take it and arm the next), all
      // through the storm.
      assert.equal(ticker.state, DomainState.Running, "the ticker lives");
      const gaps = armed.slice(1).map((t, i) => t - armed[i]);
      const off = gaps.filter((g) => g < 1e6 || g > 1e6 + 20_000);
      assert.deepEqual(off, [], `gaps between ticks (ns): ${gaps.slice(0, 50).join(" ")}`);
      assert.ok(
        armed.length >= Math.floor((t1 - t0) / (1e6 + 20_000)),
        `${armed.length} ticks in ${t1 - t0} ns`,
      );
      b.assertVictimIntact();
    });
});
