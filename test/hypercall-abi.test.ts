/**
 * The hypercall table per interface revision (src/xen/hypercall.ts, hypercallHandler): its
 * last-revision cache must answer for the revision asked, whichever domain asked last.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ENOSYS } from "../src/public/errno.js";
import { HypercallJul, HypercallMar } from "../src/public/xen.js";
import { ABIS } from "../src/xen/abi.js";
import { HYPERCALLS, hypercallHandler } from "../src/xen/hypercall.js";
import { consoleMachine } from "./support/console.js";

describe("hypercall table per revision", () => {
  it("MAR and JUL callers in turn each get their own revision's numbers", () => {
    const { hv } = consoleMachine(16);
    const v = hv.createDomain("d", 16).vcpus[0];
    const MAR = ABIS["2005-03"];
    const JUL = ABIS["2005-07"];
    // mmuext_op exists at JUL only, set_fast_trap at MAR only; alternate the callers.
    for (let round = 0; round < 3; round++) {
      assert.equal(hypercallHandler(JUL, HypercallJul.mmuext_op), HYPERCALLS[HypercallJul.mmuext_op]);
      assert.equal(hypercallHandler(MAR, HypercallJul.mmuext_op)(hv, v, 0, 0, 0, 0, 0), -ENOSYS);
      assert.equal(hypercallHandler(MAR, HypercallMar.set_fast_trap), HYPERCALLS[HypercallMar.set_fast_trap]);
      assert.equal(hypercallHandler(JUL, HypercallMar.set_fast_trap)(hv, v, 0, 0, 0, 0, 0), -ENOSYS);
      assert.equal(hypercallHandler(MAR, HypercallMar.set_fast_trap), HYPERCALLS[HypercallMar.set_fast_trap]);
      assert.equal(hypercallHandler(JUL, HypercallJul.mmuext_op), HYPERCALLS[HypercallJul.mmuext_op]);
    }
    // The revisions are frozen: the cache, keyed by identity, cannot go stale under a caller.
    assert.ok(Object.isFrozen(MAR) && Object.isFrozen(MAR.hypercall));
    assert.ok(Object.isFrozen(JUL) && Object.isFrozen(JUL.hypercall));
  });
});
