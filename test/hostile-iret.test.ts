/**
 * The inline iret (src/cpu/segments.ts iretCommon) under attack, beside a hashed victim:
 * guests/hostile/iret_frames.c warms it with thousands of ring-1 -> ring-3 irets through
 * descriptors of its own, then irets through frames naming Xen's ring-0 CS and DS (RPL 0, 1
 * and 3), the kernel's ring-1 CS and DS at RPL 3, selectors beyond the GDT and in an absent
 * LDT, its own descriptors rewritten between two irets (not present, then of ring 1), and a
 * frame straddling into a page it made not present: each must fault as the full path does
 * (vector, error code, CR2), and an ordinary iret work after it. The inline path must have
 * taken the warm irets, or it was not tested; the victim's frames hash the same.
 *
 * Mutations (a copy of dist): the inline CS's DPL rule dropped lets Xen's ring-0 CS through at
 * ring 3 (xen_cs_rpl3 fails); its present bit dropped lets the rewritten CS through
 * (cs_not_present_seen fails).
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { iretInlineCount } from "../src/cpu/segments.js";
import { launchDomain } from "../src/tools/launch.js";
import { DomainState } from "../src/xen/domain.js";
import { assertGuestPassed, consoleMachine } from "./support/console.js";
import { guestPath } from "./support/guests.js";
import { frameHashes, launchVictim } from "./support/victim.js";

/** The guest's CHECK lines (its table of selectors included). */
const CHECKS = 60;

describe("the inline iret under attack", () => {
  for (const backend of ["wasm", "js"] as const)
    it(`${backend} blocks: frames naming Xen's and ring 1's descriptors, rewritten descriptors and a straddling frame fault as the full path does; the victim untouched`, () => {
      const m = consoleMachine(64);
      m.hv.cpu.backend = backend;
      const victim = launchVictim(m);
      const before = frameHashes(m.hv, victim.pages);
      const n0 = iretInlineCount();
      const d = launchDomain(m.hv, {
        name: "iret",
        image: readFileSync(guestPath("hostile_iret_frames")),
        memoryMiB: 4,
      }).domain;
      for (let i = 0; i < 4000 && !/DONE/.test(m.out.get(d) ?? ""); i++) m.hv.run(m.hv.nowNs() + 1_000_000);
      const text = m.out.get(d) ?? "";
      assertGuestPassed(text);
      assert.match(text, new RegExp(`DONE passed=${CHECKS} failed=0`), text);
      const inline = iretInlineCount() - n0;
      assert.ok(inline >= 3000, `${inline} irets inline`);
      assert.deepEqual(frameHashes(m.hv, victim.pages), before, "the victim's frames");
      assert.equal(victim.state, DomainState.Running, "the victim is alive");
    });
});
