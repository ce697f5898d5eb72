/**
 * The ACTIVE writable window's unhook drops only its region's translations (src/xen/ptwr.ts,
 * Cpu.invalidateRegion; Xen flushes the whole TLB there), under attack beside a hashed victim:
 * guests/hostile/ptwr_tlb.c caches the translations of two pages of the window's region,
 * retargets, clears and restores their entries with plain stores into the hooked L1 and reads
 * them with no invlpg in between, twelve rounds; each read must see what was stored (or fault
 * when cleared), never the frame the entry named before; at the end it gives one frame back
 * to Xen and its VA must fault. The victim's frames hash the same before and after.
 *
 * Mutations: no invalidation at the unhook (the stale translation reads frame A after the
 * retarget), or the neighbouring region's instead, fail it.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { besideVictim } from "./support/attack.js";
import { assertGuestPassed } from "./support/console.js";

/** The guest's CHECK lines: 8 to set up, 14 a round (15 in the first), 7 at the end. */
const CHECKS = 8 + 12 * 14 + 1 + 7;

describe("the ACTIVE writable window drops its region's translations", () => {
  for (const backend of ["wasm", "js"] as const)
    it(`${backend} blocks: reads after stores into the hooked L1 see the stored entries, never a cached one; a frame given back is not reachable; the victim untouched`, () => {
      const b = besideVictim(backend);
      let regions = 0;
      const invalidate = b.hv.cpu.invalidateRegion.bind(b.hv.cpu);
      b.hv.cpu.invalidateRegion = (slot: number) => {
        regions++;
        invalidate(slot);
      };
      const d = b.launch({
        guest: "hostile_ptwr_tlb",
        name: "ptwr_tlb",
        memoryMiB: 8, // as test/hostile's attackers: its top frames lie beyond the bootstrap mapping
        cmdline: `victim=${b.victim.id}`,
      });
      b.runUntil(() => /DONE/.test(b.text(d)), 200, 10_000_000);
      const text = b.text(d);
      assertGuestPassed(text);
      assert.match(text, new RegExp(`DONE passed=${CHECKS} failed=0`), text);
      // An ACTIVE window opened at each store that found none open: 4 a round (the two
      // restores share one), 1 at the end (the two clears share one).
      assert.equal(regions, 12 * 4 + 1, "ACTIVE windows opened");
      b.assertVictimIntact();
    });
});
