/**
 * x87 state and domain switches (issue 16, idle scale): the hypervisor hands each vcpu's own
 * x87 unit to the CPU at a switch instead of copying the image in and out
 * (CpuContext.switchIn). No domain may ever see another's x87 registers: two domains with
 * x87 states of their own yield to each other hundreds of times, each checking its whole
 * state after every switch, and a third created while they run must find a new unit
 * (guests/hostile/fpu_snoop.c). The yields must really alternate, or nothing was tested.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { launchDomain } from "../src/tools/launch.js";
import type { Domain } from "../src/xen/domain.js";
import { yieldHandovers } from "./support/attack.js";
import { assertGuestPassed, consoleMachine } from "./support/console.js";
import { guestPath } from "./support/guests.js";

const ROUNDS = 300;

describe("x87 state across domain switches", () => {
  it("two domains yielding to each other each see only their own x87 state; a new domain sees a new unit", () => {
    const m = consoleMachine(64);
    const image = readFileSync(guestPath("hostile_fpu_snoop"));
    const launch = (seed: number): Domain =>
      launchDomain(m.hv, {
        name: `fpu${seed}`,
        image,
        memoryMiB: 4,
        cmdline: `seed=${seed} rounds=${ROUNDS}`,
      }).domain;
    const seen = yieldHandovers(m.hv);
    const a = launch(1);
    const b = launch(6);
    // Both have loaded their own values and are yielding to each other when the third starts.
    for (let i = 0; i < 200 && seen().yields < 40; i++) m.hv.run(m.hv.nowNs() + 100_000);
    assert.ok(seen().yields >= 40, `yields before the third domain: ${seen().yields}`);
    const c = launch(3);
    for (let i = 0; i < 2000; i++) {
      if ([a, b, c].every((d) => /DONE/.test(m.out.get(d) ?? ""))) break;
      m.hv.run(m.hv.nowNs() + 1_000_000);
    }
    for (const [d, seed] of [
      [a, 1],
      [b, 6],
      [c, 3],
    ] as const) {
      const text = m.out.get(d) ?? "";
      assertGuestPassed(text);
      assert.match(text, new RegExp(`FPU seed=${seed} rounds=${ROUNDS} bad=0`));
      assert.match(text, /DONE passed=5 failed=0/, text);
    }
    // The CPU went from one domain to another between most yields.
    const { yields, handovers } = seen();
    assert.ok(handovers > 2 * ROUNDS, `yields by another domain than the last: ${handovers} of ${yields}`);
  });
});
