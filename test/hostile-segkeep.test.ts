/**
 * The switch-in reload of the data segments kept per vcpu (src/xen/switch_segments.ts) under
 * attack, beside a hashed victim: two domains (guests/hostile/seg_keep.c) yield to each other
 * with the same selectors in FS and GS over descriptors of their own at different bases, and
 * between yields rewrite their descriptors (base, limit, accessed bit, not present), switch
 * their GDT frame (the GDT mapping's PTE) and back, swap selectors with no hypercall, move to
 * an LDT selector, remap the LDT's page with update_va_mapping (which reloads nothing: the
 * switch-in's reload must then read the new frame's descriptor) and drop the LDT under it.
 * After every change and every switch each must read only its
 * own markers through the descriptors in force: no stale cache kept across a change, none of
 * the other domain's. The yields must really alternate and most switch-ins be kept, or the
 * kept path was not tested; with TSXEN_CHECK_INVARIANTS=1 every kept switch-in is also checked
 * against the descriptors read afresh. The victim's frames and Xen's default GDT frames hash
 * the same before and after.
 *
 * Mutations: an LDT selector kept like a GDT one, or every switch-in kept, read the old LDT
 * descriptor after the remap (ldt_remapped_seen fails). Dropping one compare of a GDT
 * selector's words, PTE, selector or cache survives here: a domain changes what such a reload
 * reads only by set_gdt, update_descriptor, mmu_update or a multicall, and each reloads the
 * segments at its return, so the caches already match; those compares guard writers other
 * than the vcpu itself (test/switch-segments changes each input while the vcpu is out).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { switchSegmentStats } from "../src/xen/switch_segments.js";
import { besideVictim, runSeededPair, yieldHandovers } from "./support/attack.js";
import { frameHashes } from "./support/victim.js";

/** The guest's CHECK lines. */
const CHECKS = 35;

describe("the kept switch-in segment reload under attack", () => {
  for (const backend of ["wasm", "js"] as const)
    it(`${backend} blocks: two domains with the same selectors over their own descriptors, rewritten, remapped and swapped between yields, each see only their own descriptors in force; the victim untouched`, () => {
      const b = besideVictim(backend);
      const victimGdt = frameHashes(b.hv, [b.victim.defaultGdtMfn]);
      const seen = yieldHandovers(b.hv);
      const kept0 = switchSegmentStats.kept;
      const reloaded0 = switchSegmentStats.reloaded;
      runSeededPair(b, "seg_keep", CHECKS);
      // The CPU went from one attacker to the other at most yields, and most switch-ins kept
      // their reload (the others reloaded: the changes, the LDT selectors).
      const { yields, handovers } = seen();
      assert.ok(handovers > 100, `yields by another domain than the last: ${handovers} of ${yields}`);
      const kept = switchSegmentStats.kept - kept0;
      const reloaded = switchSegmentStats.reloaded - reloaded0;
      assert.ok(kept > 80, `${kept} switch-ins kept`);
      assert.ok(reloaded > 20, `${reloaded} switch-ins reloaded`);
      b.assertVictimIntact();
      assert.deepEqual(frameHashes(b.hv, [b.victim.defaultGdtMfn]), victimGdt, "the victim's default GDT");
    });
});
