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
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { launchDomain } from "../src/tools/launch.js";
import { DomainState } from "../src/xen/domain.js";
import { assertGuestPassed, consoleMachine } from "./support/console.js";
import { guestPath } from "./support/guests.js";
import { frameHashes, launchVictim } from "./support/victim.js";

/** The guest's CHECK lines: 4 of setup, 2 a round for 8 rounds, 3 totals, 6 after. */
const CHECKS = 29;

describe("set_gdt's TLB flush under attack", () => {
  for (const backend of ["wasm", "js"] as const)
    it(`${backend} blocks: the fast trap's in-run bounce reads the GDT in force, never a stale TLB entry of the old frame; the victim untouched`, () => {
      const m = consoleMachine(64);
      m.hv.cpu.backend = backend;
      const victim = launchVictim(m);
      const before = frameHashes(m.hv, victim.pages);
      const inRun0 = m.hv.fastTrapsInRun;
      const image = readFileSync(guestPath("hostile_gdt_flush"));
      const d = launchDomain(m.hv, { name: "gdtflush", image, memoryMiB: 4 }).domain;
      for (let i = 0; i < 2000 && !/DONE/.test(m.out.get(d) ?? ""); i++) m.hv.run(m.hv.nowNs() + 1_000_000);
      const text = m.out.get(d) ?? "";
      assertGuestPassed(text);
      assert.match(text, new RegExp(`DONE passed=${CHECKS} failed=0`), text);
      // The handler's 16 runs went through the in-run bounce (the path that reads the TLB).
      assert.ok(m.hv.fastTrapsInRun - inRun0 >= 16, `${m.hv.fastTrapsInRun - inRun0} fast traps in the run`);
      assert.deepEqual(frameHashes(m.hv, victim.pages), before, "the victim's frames");
      assert.equal(victim.state, DomainState.Running, "the victim is alive");
      assert.equal((m.out.get(victim) ?? "").split("\n").length, 2, "the victim printed nothing more");
    });
});
