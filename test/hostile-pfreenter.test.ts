/**
 * The wasm chain entered again at a #PF handler after a fault bounced at its site
 * (src/cpu/wasm/backend.ts chainEntry's `again`, its regionBlocks++/--), under attack beside a
 * hashed victim (guests/hostile/pf_reenter.c). A warm ring-1 loop faults in a read-modify-write
 * on a not-present page, 1,024 times for each of three #PF handlers, each on a page of its own at
 * offset 0, where the faulting page holds the loop's head: the handler's page
 * compiled and warm in the TLB (the chain hops there), its TLB entry dropped before every fault
 * (the hop finds no translation), or its own code dropped at every fault by a store into its
 * page (the hop finds no map). Every 128th fault the handler rewrites the faulting block's
 * immediate (SMC on the chain's page) before returning past the fault. The guest's sums of the
 * immediates run, its fault counts and checks, the instructions retired and the virtual time
 * must be the interpreter's, with JS and with wasm blocks; the victim's frames hash the same.
 *
 * Mutation (a copy of dist): the re-entry taking the handler for a block of the page it
 * entered (its page check skipped: the page base passed as the handler's own) runs the loop's
 * head at the handler: the guest never gets to its end (no DONE in 3 s of guest time).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { attackBeside, type RunKind, sameAsInterpreted } from "./support/attack.js";

/** The guest's CHECK lines: 2 of setup, 5 for each of the 3 handlers, 1 after. */
const CHECKS = 18;
/** The faults taken: 1,024 for each handler. */
const FAULTS = 3 * 1024;

function attack(kind: RunKind) {
  let p0 = 0;
  const r = attackBeside(kind, "pf_reenter", CHECKS, 3000, {
    before: (b) => void (p0 = b.hv.cpu.faultsInPlace),
  });
  return {
    ...r,
    inPlace: r.hv.cpu.faultsInPlace - p0,
    lines: r.text.split("\n").filter((l) => l.startsWith("RES ")),
  };
}

describe("the wasm chain entered again at a #PF handler on another page", () => {
  it("handlers on a warm page, a page out of the TLB and a page whose code is dropped, rewriting the faulting block: sums, faults, retired count and time as interpreted; the victim untouched", () => {
    const a = sameAsInterpreted(attack, 5_000, undefined, (b, kind) =>
      assert.ok(b.inPlace > FAULTS / 2, `${kind}: ${b.inPlace} of ${FAULTS} faults bounced at their site`),
    );
    assert.equal(a.lines.length, 3, a.text);
  });
});
