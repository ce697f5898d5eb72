/**
 * The switch's segment-cache skip (Cpu.segStamp, CpuContext.save/switchIn) under attack,
 * beside a hashed victim: two domains of the same image (guests/hostile/seg_stamp.c), whose
 * segment caches are word for word the same but for what each loads, yield to each other
 * after loading DS, ES, FS and GS with selectors that differ from the other's in the selector
 * alone, the DPL alone, the accessed bit alone or the limit, and check after every yield that
 * each register holds its own selector and FS its own descriptor's limit.
 *
 * Mutations: loadSegmentCache's short path (selector, DPL or accessed bit only) moving no
 * stamp fails selectors_after_yields in both domains (92 of 256 reads; test/hostile-segkeep
 * does not see it: its domains' descriptors differ in base); the full path moving none fails
 * too (neither domain gets as far as its first line).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { TR } from "../src/cpu/regs.js";
import { InvariantError } from "../src/xen/invariants.js";
import { besideVictim, runSeededPair, yieldHandovers } from "./support/attack.js";

/** The guest's CHECK lines (hostile_init's own among them). */
const CHECKS = 5;

describe("the switch's segment-cache skip under attack", () => {
  for (const backend of ["wasm", "js"] as const)
    it(`${backend} blocks: two domains with the same caches but for the selectors, DPLs, accessed bits and limits each loads before yielding see only their own; the victim untouched`, () => {
      const b = besideVictim(backend);
      const seen = yieldHandovers(b.hv);
      runSeededPair(b, "seg_stamp", CHECKS);
      // The CPU went from one of them to the other at most of their 2 x 64 x 2 yields.
      const { yields, handovers } = seen();
      assert.ok(handovers > 200, `yields by another domain than the last: ${handovers} of ${yields}`);
      b.assertVictimIntact();
    });

  it("a host's write to a saved context's segments without segmentsWritten() is caught at the switch-in (TSXEN_CHECK_INVARIANTS); with it, the CPU gets the write", () => {
    for (const told of [false, true]) {
      const b = besideVictim("wasm");
      b.hv.checkInvariantsAfterHypercall = true;
      const doms = [1, 2].map((seed) =>
        b.launch({ guest: "hostile_seg_stamp", name: `segstamp${seed}`, cmdline: `seed=${seed}` }),
      );
      // Both in their quiet yields: switches that load no segment, so the switch-in skips.
      b.runUntil(() => doms.every((d) => /PASS rounds/.test(b.text(d))), 4000, 100_000);
      const v = doms.find((d) => b.hv.current?.domain !== d)?.vcpus[0];
      assert.ok(v?.context, "a vcpu off the CPU");
      // TR: the switch-in's reload of DS-GS from their selectors (Xen's) would rewrite theirs.
      const base = v.context.segBase[TR] ^ 0x1000;
      v.context.segBase[TR] = base;
      if (told) v.context.segmentsWritten();
      let seen = -1;
      const run = () =>
        b.runUntil(
          () => {
            if (b.hv.current === v) seen = b.hv.cpu.segBase[TR];
            return seen !== -1;
          },
          400,
          100_000,
        );
      if (!told) assert.throws(run, InvariantError);
      else {
        run();
        assert.equal(seen, base);
      }
    }
  });
});
