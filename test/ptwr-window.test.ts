/**
 * The writable-page-table window against the two attacks of issue 12, rebuilt at the level of
 * the frame table: an L1 hooked only into a second, pinned L2 is opened for writing (the real
 * ptwr fault path), the "guest" stores entries for a Xen frame, the pinned L2 itself and a
 * victim's frame, and then either loads that L2 as its base or has it torn down.
 *
 * Each attack runs twice: with the code of before the fix (the base loaded without a flush,
 * the devalidation hook switched off) the invariant checker must report it; with the fix the
 * attacker is crashed at the flush, the victim's frame keeps its counts and the checker is
 * clean.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { _PAGE_PRESENT, _PAGE_RW } from "../src/public/arch_x86_32.js";
import { VmAssistType } from "../src/public/xen.js";
import { PGT_l2_page_table, PGT_validated } from "../src/xen/frame_table.js";
import { Hypervisor } from "../src/xen/hypervisor.js";
import { checkInvariants } from "../src/xen/invariants.js";
import { PTWR_PT_INACTIVE, ptwrPageFault } from "../src/xen/ptwr.js";

const P = _PAGE_PRESENT;
const RW = _PAGE_RW;
/** The pinned L2's slot that hooks the attacked L1 (its va back-pointer). */
const HOOK = 5;

function setup(victimOnly = false) {
  const hv = new Hypervisor({ memoryMiB: 16 });
  const att = hv.createDomain("attacker", 16);
  const vic = hv.createDomain("victim", 8);
  for (const f of [...att.pages, ...vic.pages]) hv.mem.zeroFrame(f);
  const put = (table: number, i: number, e: number) => hv.mem.write32(table * 4096 + i * 4, e >>> 0);

  // The victim maps its data frame, so that frame holds a mapping reference as well.
  const [vl2, vl1, vdata] = vic.pages;
  put(vl1, 0, (vdata << 12) | P | RW);
  put(vl2, 0, (vl1 << 12) | P | RW);
  assert.ok(hv.mm.pin(vl2, vic.id, PGT_l2_page_table));

  // The attacker: L2a (its base) maps the L1 under attack read-only at va 0 through L1x;
  // L2b (pinned, not loaded) hooks that L1 at HOOK, giving it its L1 type and back-pointer.
  const [l2a, l1x, l1w, l2b] = att.pages;
  put(l1x, 0, (l1w << 12) | P);
  put(l2a, 0, (l1x << 12) | P | RW);
  put(l2b, HOOK, (l1w << 12) | P | RW);
  assert.ok(hv.mm.pin(l2a, att.id, PGT_l2_page_table));
  assert.ok(hv.mm.pin(l2b, att.id, PGT_l2_page_table));
  const v = att.vcpus[0];
  assert.ok(hv.newBasePointer(v, l2a));
  att.vmAssist |= 1 << VmAssistType.writable_pagetables;
  att.paused = false; // running, as far as the fault path is concerned

  // A store to va 0x8 (entry 2 of the L1, through its read-only mapping) faults into ptwr.
  hv.cpu.exitCr2 = 0x8;
  hv.cpu.exitErrorCode = 3;
  assert.ok(ptwrPageFault(hv, v), "the store opens a writable window");
  assert.equal(hv.ptwr.slots[PTWR_PT_INACTIVE].l1Mfn, l1w, "in the INACTIVE slot: L1 not in the current L2");
  assert.deepEqual(checkInvariants(hv), [], "an open window alone is consistent");

  // The guest's stores, unchecked while the window is open. (Before the fix, tearing down
  // the Xen-frame entry threw out of the hypervisor: the teardown case stores only the
  // victim's, so that the checker is what reports it.)
  if (!victimOnly) {
    put(l1w, 0, (hv.m2pL1Frame() << 12) | P | RW);
    put(l1w, 1, (l2b << 12) | P | RW);
  }
  put(l1w, 2, (vdata << 12) | P | RW);
  return { hv, att, vic, v, l2a, l2b, l1w, vdata, vdataCount: hv.frames.count[vdata] };
}

describe("writable window against base loads and teardown (issue 12)", () => {
  it("break 1, before the fix: loading the pinned L2 unflushed makes the window live, and the checker says so", () => {
    const { hv, v, l2a, l2b, l1w } = setup();
    // What the emulated mov to CR3 did: take the new base, drop the old, no flush.
    assert.ok(hv.mm.getPageAndType(l2b, v.domain.id, PGT_l2_page_table));
    v.baseMfn = l2b;
    hv.mm.putPageAndType(l2a);
    const bad = checkInvariants(hv);
    assert.ok(
      bad.some((l) => l.includes(`L1 ${l1w} in a writable window is live in vcpu 1.0's base`)),
      bad.join("\n"),
    );
  });

  it("break 1, fixed: the base load flushes first, the attacker is crashed and nothing of it goes live", () => {
    const { hv, att, v, l2b, l1w, vdata, vdataCount } = setup();
    hv.newBasePointer(v, l2b);
    assert.equal(att.runnable, false, "the flush found entries that do not validate");
    assert.equal(hv.ptwr.slots[PTWR_PT_INACTIVE].l1va, 0);
    for (let i = 0; i < 3; i++) assert.equal(hv.mem.read32(l1w * 4096 + i * 4), 0, `entry ${i} rolled back`);
    assert.equal(hv.frames.count[vdata], vdataCount, "the victim's frame keeps its counts");
    assert.deepEqual(checkInvariants(hv), []);
  });

  it("break 2, before the fix: tearing the pinned L2 down drops references never taken, and the checker says so", () => {
    const { hv, att, l2b, vdata, vdataCount } = setup(true);
    hv.beforeDevalidate = () => {};
    assert.ok(hv.mm.unpin(l2b, att.id), "decrease_reservation unpins the L2 first");
    assert.ok(hv.frames.count[vdata] < vdataCount, "the victim's frame lost a reference it never gave");
    const bad = checkInvariants(hv);
    assert.ok(
      bad.some((l) => l.startsWith(`frame ${vdata} (owner 2, writable): count`)),
      bad.join("\n"),
    );
  });

  it("break 2, fixed: the devalidation flushes the window first; the victim's frame keeps its counts", () => {
    const { hv, att, l2b, l1w, vdata, vdataCount } = setup();
    assert.ok(hv.mm.unpin(l2b, att.id));
    assert.equal(att.runnable, false);
    assert.equal(hv.frames.count[vdata], vdataCount);
    assert.equal(hv.frames.typeInfo[l2b] & PGT_validated, 0, "the L2 itself is gone as asked");
    assert.equal(hv.mem.read32(l1w * 4096 + 2 * 4), 0);
    assert.deepEqual(checkInvariants(hv), []);
  });
});
