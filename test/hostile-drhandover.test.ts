/**
 * The switch's debug-register hand-over (CpuContext.dr: the CPU runs on the running context's
 * own DR array) under attack, beside a hashed victim: two domains of the same image
 * (guests/hostile/dr_handover.c) set DR0-3, DR6 and DR7 to values of their own each round, in
 * turns aim an instruction breakpoint at code both run, yield to each other, then run that
 * code: only the armed one may take #DB, with its own slot's bit and its own DR6 bits.
 *
 * Mutations: switchIn leaving the CPU on the outgoing context's array fails both domains (57
 * of 64 rounds' p_bp wrong, 3 of 32 armed rounds hit, 60 DR6 reads wrong); set_debugreg not
 * writing the running vcpu's registers on the CPU fails them too (no armed round hits).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { besideVictim, runSeededPair, yieldHandovers } from "./support/attack.js";

/** The guest's CHECK lines. */
const CHECKS = 6;

describe("the switch's debug-register hand-over under attack", () => {
  for (const backend of ["wasm", "js"] as const)
    it(`${backend} blocks: two domains arming breakpoints on the same code in turns across yields each take only their own #DB and read back only their own DR0-7; the victim untouched`, () => {
      const b = besideVictim(backend);
      const seen = yieldHandovers(b.hv);
      const doms = runSeededPair(b, "dr_handover", CHECKS);
      // The CPU went from one of them to the other at most of their 2 x 64 x 2 yields.
      const { yields, handovers } = seen();
      assert.ok(handovers > 200, `yields by another domain than the last: ${handovers} of ${yields}`);
      // Each took #DB in its own 32 armed rounds only.
      for (const d of doms) assert.equal(d.vcpus[0].debugreg[7], 0);
      b.assertVictimIntact();
    });
});
