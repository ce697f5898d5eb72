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
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { launchDomain } from "../src/tools/launch.js";
import { DomainState } from "../src/xen/domain.js";
import { assertGuestPassed, consoleMachine } from "./support/console.js";
import { guestPath } from "./support/guests.js";
import { frameHashes, launchVictim } from "./support/victim.js";

/** The guest's CHECK lines: 8 to set up, 14 a round (15 in the first), 7 at the end. */
const CHECKS = 8 + 12 * 14 + 1 + 7;

describe("the ACTIVE writable window drops its region's translations", () => {
  for (const backend of ["wasm", "js"] as const)
    it(`${backend} blocks: reads after stores into the hooked L1 see the stored entries, never a cached one; a frame given back is not reachable; the victim untouched`, () => {
      const m = consoleMachine(64);
      m.hv.cpu.backend = backend;
      const victim = launchVictim(m);
      const before = frameHashes(m.hv, victim.pages);
      let regions = 0;
      const invalidate = m.hv.cpu.invalidateRegion.bind(m.hv.cpu);
      m.hv.cpu.invalidateRegion = (slot: number) => {
        regions++;
        invalidate(slot);
      };
      const d = launchDomain(m.hv, {
        name: "ptwr_tlb",
        image: readFileSync(guestPath("hostile_ptwr_tlb")),
        memoryMiB: 8, // as test/hostile's attackers: its top frames lie beyond the bootstrap mapping
        cmdline: `victim=${victim.id}`,
      }).domain;
      for (let i = 0; i < 200 && !/DONE/.test(m.out.get(d) ?? ""); i++) m.hv.run(m.hv.nowNs() + 10_000_000);
      const text = m.out.get(d) ?? "";
      assertGuestPassed(text);
      assert.match(text, new RegExp(`DONE passed=${CHECKS} failed=0`), text);
      // An ACTIVE window opened at each store that found none open: 4 a round (the two
      // restores share one), 1 at the end (the two clears share one).
      assert.equal(regions, 12 * 4 + 1, "ACTIVE windows opened");
      assert.deepEqual(frameHashes(m.hv, victim.pages), before, "the victim's frames");
      assert.equal(victim.state, DomainState.Running, "the victim is alive");
      assert.equal((m.out.get(victim) ?? "").split("\n").length, 2, "the victim printed nothing more");
    });
});
