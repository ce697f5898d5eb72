/**
 * The #PF bounced at its fault site under attack, beside a hashed victim
 * (guests/hostile/pf_site.c). A fault a compiled block hands over (Cpu.held: a JS block's
 * catch, a wasm block's wrapper or chain entry) is offered to Xen's in-run bounce there
 * (Cpu.tookInPlace), and the block's caller goes on at the handler instead of the run loop's
 * next turn. Warm ring-1 loops fault in a read-modify-write (not present, read-only), at a
 * block's last instruction, with an event pending and unmasked at each fault (the upcall must
 * come first) and through a gate that masks events (none in the loop); each pass checked by
 * the guest's handler. The whole run is compared with the path off (faulted() on run()'s turn):
 * the guest's output, the retired count and the virtual time at its end. Then a warm stack loop
 * and one more fault with the ring-1 stack read-only or in Xen's space, or the trap table's #PF
 * selector null, in the LDT with none, or an empty GDT entry: the domain crashed for the
 * reason the exit path gives, the victim's frames unchanged.
 *
 * Mutations (dist copies, wasm case; each fails here): tookInPlace setting runEnd to runStop
 * over the hook's 0 (the upcall taken late: ev_upcalls 46 of 3,000, 2,961 out of order); the
 * wasm chain entering the chain again at the handler without that check (785 out of order);
 * tookInPlace without rolling EIP back (our handler sees a #PF it does not know).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Hypervisor } from "../src/xen/hypervisor.js";
import { besideVictim } from "./support/attack.js";

/** The guest's checks to its end (mode 0), and before the crash (modes 1-5). */
const CHECKS = 23;
const CRASH_CHECKS = [0, 23, 22, 23, 23, 23];
const WHY = [
  "",
  "fault while writing a bounce frame",
  "fault while writing a bounce frame",
  "bad handler code selector",
  "bad handler code selector",
  "bad handler code selector",
];

interface Outcome {
  text: string;
  crashed: string | null;
  retired: number;
  nowNs: number;
  inPlace: number;
  hv: Hypervisor;
}

function runGuest(backend: "wasm" | "js", mode: number, inPlace: boolean): Outcome {
  const b = besideVictim(backend);
  b.hv.cpu.faultInPlace = inPlace;
  const d = b.launch({ guest: "hostile_pf_site", name: "pfsite", cmdline: `mode=${mode}` });
  const p0 = b.hv.cpu.faultsInPlace;
  const r = b.runUntil((r) => r?.kind === "crashed" || /DONE/.test(b.text(d)), 3000);
  let crashed: string | null = null;
  if (r?.kind === "crashed") {
    assert.equal(r.domain, d, `only the attacker may crash: ${r.why}`);
    crashed = r.why;
  }
  b.assertVictimIntact();
  return {
    text: b.text(d),
    crashed,
    retired: b.hv.cpu.retiredTotal,
    nowNs: b.hv.nowNs(),
    inPlace: b.hv.cpu.faultsInPlace - p0,
    hv: b.hv,
  };
}

const fails = (text: string) => text.split("\n").filter((l) => l.startsWith("FAIL"));

describe("the #PF bounced at its fault site under attack", () => {
  for (const backend of ["wasm", "js"] as const) {
    it(`${backend} blocks: warm ring-1 faults (rmw, read-only, a block's last instruction, events pending, a masking gate) as with run()'s turn; the victim untouched`, () => {
      const on = runGuest(backend, 0, true);
      assert.deepEqual(fails(on.text), [], on.text);
      assert.match(on.text, new RegExp(`DONE passed=${CHECKS} failed=0`), on.text);
      // Most of the 5 x 3,000 + 3,000 faults went through the site (the rest: before the loops
      // were compiled, and those the hook declines: none here).
      assert.ok(on.inPlace > 12_000, `#PFs bounced at the site: ${on.inPlace}`);
      const off = runGuest(backend, 0, false);
      assert.equal(off.inPlace, 0);
      assert.equal(on.text, off.text, "the guest's output");
      assert.equal(on.retired, off.retired, "the retired count");
      assert.equal(on.nowNs, off.nowNs, "the virtual time");
    });
    for (let mode = 1; mode <= 5; mode++)
      it(`${backend} blocks: mode ${mode}, ${WHY[mode]}: the domain crashed at the first fault after the warm loop, nothing written`, () => {
        const o = runGuest(backend, mode, true);
        assert.deepEqual(fails(o.text), [], o.text);
        assert.ok(o.crashed !== null, `not crashed: ${o.text}`);
        assert.match(o.crashed, new RegExp(WHY[mode]), o.text);
        const cp = /^CHECKPOINT passed=(\d+) failed=0$/m.exec(o.text);
        assert.ok(cp, o.text);
        assert.equal(Number(cp[1]), CRASH_CHECKS[mode], o.text);
        assert.ok(o.inPlace > 2_000, `#PFs bounced at the site: ${o.inPlace}`);
        assert.doesNotMatch(o.text, /DONE/);
      });
  }
});
