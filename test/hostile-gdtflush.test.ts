/**
 * set_gdt's TLB flush under attack, beside a hashed victim (guests/hostile/gdt_flush.c). The
 * fast trap's bounce inside the run reads the gate's code descriptor through the CPU's TLB
 * (traps.ts bounceInRun, descriptors.ts readWords), as the CPU's own segment loads do, so no
 * TLB entry may outlive the per-domain GDT mapping set_gdt rewrites. The attacker switches
 * between two GDT frames whose descriptor 1 (the gate's CS) differs only in its limit, the
 * TLB entry of the GDT's first page warmed before each switch: through A's descriptor the
 * handler runs, through B's the int faults #GP(0) and the handler must not run. Then the old
 * frame, writable again, holds a DPL-0 code descriptor: still #GP(0), still ring 1.
 *
 * Mutation: doSetGdt without its flushTlb fails this test (the stale entry reads A's
 * descriptor: the handler runs under B); with TSXEN_CHECK_INVARIANTS=1 bounceInRun's
 * walk comparison throws first.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { attackBeside } from "./support/attack.js";

/** The guest's CHECK lines: 4 of setup, 2 a round for 8 rounds, 3 totals, 6 after. */
const CHECKS = 29;

describe("set_gdt's TLB flush under attack", () => {
  for (const backend of ["wasm", "js"] as const)
    it(`${backend} blocks: the fast trap's in-run bounce reads the GDT in force, never a stale TLB entry of the old frame; the victim untouched`, () => {
      let inRun0 = 0;
      const { hv } = attackBeside(backend, "gdt_flush", CHECKS, 2000, {
        before: (b) => void (inRun0 = b.hv.fastTrapsInRun),
      });
      // The handler's 16 runs went through the in-run bounce (the path that reads the TLB).
      assert.ok(hv.fastTrapsInRun - inRun0 >= 16, `${hv.fastTrapsInRun - inRun0} fast traps in the run`);
    });
});
