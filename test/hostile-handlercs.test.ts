/**
 * The bounce's handler-CS memo under attack, beside a hashed victim
 * (guests/hostile/handler_cs.c). Each bounce checks its handler's code descriptor, read through
 * the CPU's TLB; descriptors.ts checkBounceSegment keeps the last passed check keyed by the
 * selector and the descriptor's two words as read now, and gives its answer when both match.
 * The attacker makes descriptor 1 of its own GDT frame the handler's CS and rewrites it with
 * update_descriptor between bounces: every bounce after a change sees the new descriptor.
 *
 * mode=0, the fast trap's bounce inside the run (traps.ts bounceInRun): after warm traps through
 * the good descriptor, each of not present, data, DPL 3 and a limit before the handler makes
 * the int fault (#NP(X), #GP(X), #GP(X), #GP(0)) without running the handler, 16 times.
 * mode=1, the event upcall (bounce()), and mode=2, the page fault bounced inside the run: after
 * 64 bounces through the good descriptor, the descriptor made not present, the next one crashes
 * the attacker ("bad handler code selector"). mode=3: fast traps from ring 3 with the kernel
 * stack's SS a descriptor of the attacker's, then that descriptor made not present; mode=4: the
 * kernel SS the gate's own code selector, after ring-1 traps passed its CS check: the trap from
 * ring 3 crashes the attacker ("bad kernel stack selector").
 *
 * Mutations (a copy of dist), each failing this test: checkBounceSegment's memo compared by
 * selector only (the words' comparison dropped): all three modes (the handler runs / no crash);
 * by the selector and the low word only (the present bit and the type are in the high word);
 * one slot for both roles (a CS check's answer given to the SS check of the same words): mode 4.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { DomainState } from "../src/xen/domain.js";
import { besideVictim } from "./support/attack.js";
import { assertGuestPassed } from "./support/console.js";

/** The guest's PASS lines to its end (mode 0). */
const CHECKS = 8;

/** The crashing modes: the crash's reason, PASS lines before it, bounces inside the run. */
const CRASHES = [
  {
    mode: 1,
    what: "the event upcall after its CS was made not present",
    why: "bad handler code selector",
    checks: 6,
    inRun: 0,
  },
  {
    mode: 2,
    what: "the page fault after its CS was made not present",
    why: "bad handler code selector",
    checks: 6,
    inRun: 64,
  },
  {
    mode: 3,
    what: "the fast trap from ring 3 after the kernel SS was made not present",
    why: "bad kernel stack selector",
    checks: 10,
    inRun: 32,
  },
  {
    mode: 4,
    what: "the fast trap from ring 3 with the gate's code selector as the kernel SS",
    why: "bad kernel stack selector",
    checks: 7,
    inRun: 16,
  },
];

function attack(backend: "wasm" | "js", mode: number) {
  const b = besideVictim(backend);
  const ft0 = b.hv.fastTrapsInRun;
  const pf0 = b.hv.pageFaultsInRun;
  const d = b.launch({ guest: "hostile_handler_cs", name: "hcs", cmdline: `mode=${mode}` });
  const r = b.runUntil(() => d.state !== DomainState.Running, 2000);
  b.assertVictimIntact();
  return {
    d,
    r,
    text: b.text(d),
    fastTraps: b.hv.fastTrapsInRun - ft0,
    pageFaults: b.hv.pageFaultsInRun - pf0,
  };
}

const passes = (text: string) => text.split("\n").filter((l) => l.startsWith("PASS ")).length;

describe("the bounce's handler-CS memo under attack", () => {
  for (const backend of ["wasm", "js"] as const) {
    it(`${backend} blocks: the fast trap after update_descriptor on its CS faults as the new descriptor says; the victim untouched`, () => {
      const { d, text, fastTraps } = attack(backend, 0);
      assertGuestPassed(text);
      assert.match(text, new RegExp(`DONE passed=${CHECKS} failed=0`), text);
      assert.equal(d.state, DomainState.Shutdown, text);
      // The 49 runs of the handler, every one a bounce inside the run (the memo's path).
      assert.equal(fastTraps, 49, text);
    });

    for (const c of CRASHES)
      it(`${backend} blocks: ${c.what} crashes the attacker; the victim untouched`, () => {
        const { d, r, text, pageFaults, fastTraps } = attack(backend, c.mode);
        assert.deepEqual(
          text.split("\n").filter((l) => l.startsWith("FAIL")),
          [],
          text,
        );
        assert.equal(d.state, DomainState.Crashed, text);
        assert.ok(r !== null && r.kind === "crashed", `${r?.kind}\n${text}`);
        assert.match(r.why, new RegExp(c.why), text);
        assert.match(
          text,
          new RegExp(`EXPECT crash: ${c.why}\nCHECKPOINT passed=${c.checks} failed=0\n$`),
          text,
        );
        assert.equal(passes(text), c.checks, text);
        // The bounces before the change went through the in-run path (the memo's), as counted.
        assert.equal(c.mode === 2 ? pageFaults : fastTraps, c.inRun, text);
      });
  }
});
