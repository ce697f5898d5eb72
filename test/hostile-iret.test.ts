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
 *
 * mode=1: after the warm irets, a ring-1 iret frame straddling into Xen's area (EIP, CS and
 * EFLAGS on the guest's last page below 0xFC000000, mapped read-only there; ESP and SS in the
 * M2P, which the flat ring-1 SS reaches). The full path reads SS 0x5555 from the M2P and faults;
 * the fault's bounce frame lands on that read-only page and Xen crashes the attacker. The next
 * machine frame holds a decoy ESP and SS: the inline path's page bound dropped reads them and
 * the iret goes through to ring 3 (no crash: this case fails).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { iretInlineCount } from "../src/cpu/segments.js";
import { DomainState } from "../src/xen/domain.js";
import { besideVictim } from "./support/attack.js";
import { assertGuestPassed } from "./support/console.js";

/** The guest's CHECK lines (its table of selectors included). */
const CHECKS = 60;
/** Mode 1's PASS lines before its crash point. */
const EDGE_CHECKS = 12;

/**
 * iret_frames beside a hashed victim, run until it stops (at most 4 s of virtual time): its
 * console, the last run's result, and the irets taken inline meanwhile; the victim is checked
 * untouched and alive.
 */
function attack(backend: "wasm" | "js", memoryMiB: number, cmdline: string) {
  const b = besideVictim(backend);
  const n0 = iretInlineCount();
  const d = b.launch({ guest: "hostile_iret_frames", name: "iret", memoryMiB, cmdline });
  const r = b.runUntil(
    (r) => r !== null && (d.state !== DomainState.Running || /DONE/.test(b.text(d))),
    4001,
  );
  assert.ok(r !== null);
  b.assertVictimIntact();
  return { d, r, text: b.text(d), inline: iretInlineCount() - n0 };
}

describe("the inline iret under attack", () => {
  for (const backend of ["wasm", "js"] as const)
    it(`${backend} blocks: frames naming Xen's and ring 1's descriptors, rewritten descriptors and a straddling frame fault as the full path does; the victim untouched`, () => {
      const { text, inline } = attack(backend, 4, "");
      assertGuestPassed(text);
      assert.match(text, new RegExp(`DONE passed=${CHECKS} failed=0`), text);
      assert.ok(inline >= 3000, `${inline} irets inline`);
    });

  for (const backend of ["wasm", "js"] as const)
    it(`${backend} blocks: a ring-1 iret frame straddling into Xen's area faults, its bounce frame lands on a read-only page: the attacker is crashed, the victim untouched`, () => {
      // 8 MiB: spare frames above the bootstrap mapping, for the L1 below Xen's area.
      const { d, r, text, inline } = attack(backend, 8, "mode=1");
      assert.equal(d.state, DomainState.Crashed, text);
      assert.ok(r.kind === "crashed" && r.domain === d, `the attacker crashed: ${r.kind}`);
      assert.match(r.why, /^fault while writing a bounce frame/);
      assert.match(
        text,
        new RegExp(
          `EXPECT crash: fault while writing a bounce frame\nCHECKPOINT passed=${EDGE_CHECKS} failed=0\n$`,
        ),
        text,
      );
      assert.equal(text.match(/^PASS /gm)?.length, EDGE_CHECKS, text);
      // The first of the 3,000 warm irets finds its GDT page cold in the TLB (2,999 inline).
      assert.ok(inline >= 2990, `${inline} irets inline`);
    });
});
