/**
 * The shadow LDT's flush under attack, beside a hashed victim (guests/hostile/ldt_flush.c).
 * Xen maps the guest's LDT pages lazily into the per-domain shadow-LDT area
 * (descriptor_tables.ts mapLdtShadowPage) and invalidateShadowLdt drops them all, flushing the
 * TLB, when SET_LDT changes the LDT or a read-only mapping of an LDT page goes: no selector
 * load may then read the old frame through a translation that outlived its mapping. The
 * attacker switches, 8 rounds, between two 2-page LDTs whose page-1 descriptors differ (base
 * and limit; present or not), page 1 warmed in the TLB before each switch; then writes
 * whole-space descriptors into the old LDT frame (writable once no LDT page) and into an
 * in-use LDT frame whose read-only mapping it dropped: every load must read the LDT in force
 * (or #PF at the guest's own LDT address), never the forged frame.
 *
 * Mutation: invalidateShadowLdt without its flushTlb fails this test (page 0 is re-mapped
 * with an invlpg, page 1's stale translation stays): B's descriptors read through A's, and the
 * forged in-use frame read instead of the #PF. The old frame made writable changes its type,
 * whose flush (mm.ts getPageType's flushTlbs) also drops the translation: only both dropped
 * let its forged descriptors be read.
 *
 * Every domain's shadow LDT lies at the same address of its per-domain area, so across a
 * switch of domains only the CR3 load's flush keeps one from reading the other's LDT frame
 * (guests/hostile/ldt_switch.c, two copies yielding to each other 40 rounds). Mutation: a CR3
 * load that keeps the per-domain area's translations (as global pages would) fails it (one
 * domain reads its own descriptor in 40 of 120 checks).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { DomainState, type Vcpu } from "../src/xen/domain.js";
import { attackBeside, besideVictim } from "./support/attack.js";
import { assertGuestPassed } from "./support/console.js";

/** The guest's CHECK lines: 2 of setup, 7 a round for 8 rounds, 4 totals, 3 of the smaller
 * LDT, 11 of the in-use page's unmapping and 2 after. */
const CHECKS = 76;

describe("the shadow LDT's flush under attack", () => {
  for (const backend of ["wasm", "js"] as const)
    it(`${backend} blocks: selector loads read the LDT in force, never a stale shadow-LDT translation of the old or a forged frame; the victim untouched`, () => {
      attackBeside(backend, "ldt_flush", CHECKS, 2000);
    });

  for (const backend of ["wasm", "js"] as const)
    it(`${backend} blocks: across switches between two domains, each reads its own shadow LDT, never the other's through a translation kept; the victim untouched`, () => {
      const b = besideVictim(backend);
      const doms = [1, 2].map((mode) =>
        b.launch({ guest: "hostile_ldt_switch", name: `ldtswitch${mode}`, cmdline: `mode=${mode}` }),
      );
      // Count the switches from one attacker straight to the other (the flush under test).
      const hv = b.hv as unknown as { switchTo(v: Vcpu): void; current: Vcpu | null };
      const switchTo = hv.switchTo.bind(hv);
      let across = 0;
      hv.switchTo = (v: Vcpu) => {
        const from = hv.current?.domain;
        if (from !== undefined && from !== v.domain && doms.includes(from) && doms.includes(v.domain))
          across++;
        switchTo(v);
      };
      b.runUntil(() => doms.every((d) => d.state !== DomainState.Running), 2000);
      for (const d of doms) {
        const text = b.text(d);
        assertGuestPassed(text);
        assert.match(text, /DONE passed=3 failed=0/, text);
      }
      assert.ok(across >= 40, `${across} switches between the attackers`);
      b.assertVictimIntact();
    });
});
