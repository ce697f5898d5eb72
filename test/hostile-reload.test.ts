/**
 * A compiled block's locals after a slow path's call (gen.ts Gen.reload, b560bfd) under attack,
 * beside a hashed victim (guests/hostile/reload.c). After a memory import's call on a slow
 * path that goes on, a wasm block reads the registers it caches, DONE and the flag record
 * again from the vcpu's state area and io words. The attacker's hot loops make every pass's
 * page-crossing reads and read-modify-writes take that path where the hypervisor acts in the
 * middle of them: the ACTIVE ptwr window opened and flushed from inside the block, a #PF to
 * the guest's own handler mid read-modify-write (which re-maps the page through the window),
 * push and pop on a 16-bit stack across a page end, and timer upcalls that re-map or unmap
 * the page under the loop. Its final registers, arithmetic flags and frames' sums, the
 * instructions retired and the virtual time must be the interpreter's, with JS and with wasm
 * blocks; the victim's frames hash the same.
 *
 * Mutations of Gen.reload (wasm only) fail it: EBX reloaded from EDX's word (all four loops'
 * registers, the 16-bit stack's push and pop among them), DONE reloaded one too high (the tick
 * loop's: retired count, time, ticks), the flag record's first operand from the second's word
 * (the sub and cmp loops' carries). Not reloading DONE at all fails nothing, nor can it: the
 * call leaves IO_DONE as it was stored.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { attackBeside, type RunKind, sameAsInterpreted } from "./support/attack.js";

/** The guest's CHECK lines: 5 of setup, 2 after pt, 4 after pf, 2 of s16, 1 binding, 4 after tick. */
const CHECKS = 18;

function attack(kind: RunKind) {
  const r = attackBeside(kind, "reload", CHECKS);
  return { ...r, lines: r.text.split("\n").filter((l) => /^(RES|CNT|SUM) /.test(l)) };
}

describe("a compiled block's reloaded locals under attack", () => {
  it("ptwr windows, #PF mid read-modify-write and upcalls re-mapping the page under hot loops: registers, flags, memory, retired count and time as interpreted; the victim untouched", () => {
    const a = sameAsInterpreted(attack, 100_000, (r) => r.lines);
    assert.equal(a.lines.length, 6, a.lines.join("\n"));
  });
});
