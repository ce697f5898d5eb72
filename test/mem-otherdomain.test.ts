/**
 * dom0's memory hypercalls on other domains: update_va_mapping_otherdomain (22, semantics.md
 * §2, abi.md §2.13) mapping another domain's frame into one of dom0's windows, and dom_mem_op
 * (12, semantics.md §8.4) with extents larger than one page for a physdev-capable caller.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { EINVAL, EPERM, ESRCH } from "../src/public/errno.js";
import { DomId, HypercallMar, MEMOP_EXTENT_SHIFT, MemOp, UvmfMar } from "../src/public/xen.js";
import { bootDom0, type Dom0 } from "../src/tools/dom0.js";
import { launchDomain } from "../src/tools/launch.js";
import { xcSetMaxMem } from "../src/tools/xc.js";
import type { Domain } from "../src/xen/domain.js";
import { Hypervisor } from "../src/xen/hypervisor.js";
import { checkInvariants, InvariantError } from "../src/xen/invariants.js";
import { writeElf32 } from "./helpers/elf32_writer.js";

const GUEST = "GUEST_OS=test,XEN_VER=3.0,LOADER=generic";
/** `inc eax; jmp .-1`. */
const spinner = writeElf32({
  entry: 0xc0000000,
  segments: [{ vaddr: 0xc0000000, data: Uint8Array.from([0x40, 0xeb, 0xfd]) }],
  xenGuest: GUEST,
});
const PTE_RW = 0x63; // P | RW | A | D

function machine(): { hv: Hypervisor; dom0: Dom0 } {
  const hv = new Hypervisor({ memoryMiB: 32, tscHz: 10_000_000 });
  return { hv, dom0: bootDom0(hv) };
}

function built(hv: Hypervisor, name = "guest"): Domain {
  return launchDomain(hv, { name, image: spinner, memoryMiB: 4, paused: true }).domain;
}

/** Reads 4 bytes at va through dom0's own page tables (as dom0's code would). */
function readThroughDom0(hv: Hypervisor, dom0: Dom0, va: number): number | null {
  const b = hv.onVcpu(dom0.vcpu, () => hv.guest.copyFrom(va, 4));
  return b === null ? null : new DataView(b.buffer, b.byteOffset).getUint32(0, true);
}

function uvmOther(dom0: Dom0, va: number, pte: number, domid: number): number {
  return dom0.hypercall(HypercallMar.update_va_mapping_otherdomain, va, pte >>> 0, UvmfMar.INVLPG, domid);
}

describe("update_va_mapping_otherdomain (22) from dom0", () => {
  it("maps a frame the named domain owns into a dom0 window; the bytes read through it match", () => {
    const { hv, dom0 } = machine();
    const x = built(hv);
    const mfn = [...x.pages][40];
    hv.write32(mfn * 4096 + 0x10, 0xfeedf00d);
    const w = dom0.takeWindow();
    const count = hv.frames.count[mfn];
    assert.equal(uvmOther(dom0, w.va, mfn * 4096 + PTE_RW, x.id), 0);
    assert.equal(hv.read32(w.pteMa), (mfn * 4096 + PTE_RW) >>> 0);
    assert.equal(hv.frames.count[mfn], count + 1, "the mapping holds a reference on the frame");
    assert.equal(readThroughDom0(hv, dom0, w.va + 0x10), 0xfeedf00d);
    assert.deepEqual(checkInvariants(hv), []);
    // Unmapping (PTE 0, any domain id that exists) drops the reference again.
    assert.equal(uvmOther(dom0, w.va, 0, x.id), 0);
    assert.equal(hv.frames.count[mfn], count);
    assert.equal(readThroughDom0(hv, dom0, w.va + 0x10), null);
    assert.deepEqual(checkInvariants(hv), []);
  });

  it("a frame the named domain does not own is -EINVAL; an unknown domain -ESRCH", () => {
    const { hv, dom0 } = machine();
    const x = built(hv, "x");
    const y = built(hv, "y");
    const w = dom0.takeWindow();
    const yFrame = [...y.pages][40];
    assert.equal(uvmOther(dom0, w.va, yFrame * 4096 + PTE_RW, x.id), -EINVAL);
    assert.equal(uvmOther(dom0, w.va, yFrame * 4096 + 1, x.id), -EINVAL);
    assert.equal(hv.read32(w.pteMa), 0, "nothing was mapped");
    assert.equal(uvmOther(dom0, w.va, yFrame * 4096 + PTE_RW, 999), -ESRCH);
    assert.deepEqual(checkInvariants(hv), []);
  });

  it("an unprivileged caller gets -EPERM before the domain id is looked at", () => {
    const { hv, dom0 } = machine();
    const x = built(hv);
    const mfn = [...x.pages][40];
    const nr = HypercallMar.update_va_mapping_otherdomain;
    const vx = x.vcpus[0];
    assert.equal(
      hv.hypercallAs(vx, nr, [0xc0100000, mfn * 4096 + 1, UvmfMar.INVLPG, dom0.domain.id]),
      -EPERM,
    );
    assert.equal(hv.hypercallAs(vx, nr, [0xc0100000, mfn * 4096 + 1, UvmfMar.INVLPG, 999]), -EPERM);
    assert.deepEqual(checkInvariants(hv), []);
  });
});

describe("dom_mem_op (12) with order > 0 from a physdev-capable caller", () => {
  function setup(): { hv: Hypervisor; dom0: Dom0; x: Domain; list: number } {
    const { hv, dom0 } = machine();
    const x = built(hv);
    assert.ok(dom0.domain.physdevCapable);
    xcSetMaxMem(dom0, x.id, 4 * 1024 + 64);
    const list = dom0.scratch().alloc(16);
    return { hv, dom0, x, list };
  }
  const memOp = (dom0: Dom0, op: number, list: number, n: number, order: number, domid: number): number =>
    dom0.hypercall(HypercallMar.dom_mem_op, op, list, n, order, domid);
  const extent = (dom0: Dom0, list: number, i = 0): number =>
    new DataView(dom0.read(list + 4 * i, 4).buffer).getUint32(0, true);

  it("increase with order 2: one extent of 4 contiguous frames the domain owns; decrease frees them", () => {
    const { hv, dom0, x, list } = setup();
    const free = hv.mem.freeFrames;
    const tot = x.totPages;
    assert.equal(memOp(dom0, MemOp.increase_reservation, list, 1, 2, x.id), 1);
    const first = extent(dom0, list);
    for (let k = 0; k < 4; k++) {
      assert.equal(hv.frames.owner[first + k], x.id);
      assert.ok(x.pages.has(first + k));
    }
    assert.equal(x.totPages, tot + 4);
    assert.equal(hv.mem.freeFrames, free - 4);
    assert.deepEqual(checkInvariants(hv), []);
    assert.equal(memOp(dom0, MemOp.decrease_reservation, list, 1, 2, x.id), 1);
    for (let k = 0; k < 4; k++) assert.ok(!x.pages.has(first + k));
    assert.equal(x.totPages, tot);
    assert.equal(hv.mem.freeFrames, free);
    assert.deepEqual(checkInvariants(hv), []);
  });

  it("a multi-page extent can be given back in parts (order 0, order 1), and DOMID_SELF works", () => {
    const { hv, dom0, x, list } = setup();
    const free = hv.mem.freeFrames;
    const tot = x.totPages;
    assert.equal(memOp(dom0, MemOp.increase_reservation, list, 1, 2, x.id), 1);
    const first = extent(dom0, list);
    const put = (i: number, mfn: number): void => {
      const b = new Uint8Array(4);
      new DataView(b.buffer).setUint32(0, mfn, true);
      dom0.write(list + 4 * i, b);
    };
    put(0, first + 3);
    assert.equal(memOp(dom0, MemOp.decrease_reservation, list, 1, 0, x.id), 1);
    assert.ok(!x.pages.has(first + 3));
    assert.ok(x.pages.has(first) && x.pages.has(first + 1) && x.pages.has(first + 2));
    assert.equal(x.totPages, tot + 3);
    assert.deepEqual(checkInvariants(hv), []);
    put(0, first);
    assert.equal(memOp(dom0, MemOp.decrease_reservation, list, 1, 1, x.id), 1);
    assert.ok(!x.pages.has(first) && !x.pages.has(first + 1) && x.pages.has(first + 2));
    put(0, first + 2);
    assert.equal(memOp(dom0, MemOp.decrease_reservation, list, 1, 0, x.id), 1);
    assert.equal(x.totPages, tot);
    assert.equal(hv.mem.freeFrames, free);
    assert.deepEqual(checkInvariants(hv), []);

    // dom0 for itself (DOMID_SELF), two extents of order 1, with a continuation start of 1.
    const d0 = dom0.domain;
    xcSetMaxMem(dom0, d0.id, (d0.totPages + 8) * 4);
    const tot0 = d0.totPages;
    assert.equal(
      memOp(dom0, MemOp.increase_reservation | (1 << MEMOP_EXTENT_SHIFT), list, 2, 1, DomId.SELF),
      2,
    );
    const e = extent(dom0, list, 1);
    assert.equal(hv.frames.owner[e], d0.id);
    assert.equal(hv.frames.owner[e + 1], d0.id);
    assert.equal(d0.totPages, tot0 + 2);
    assert.equal(
      memOp(dom0, MemOp.decrease_reservation | (1 << MEMOP_EXTENT_SHIFT), list, 2, 1, DomId.SELF),
      2,
    );
    assert.equal(d0.totPages, tot0);
    assert.equal(hv.mem.freeFrames, free);
    assert.deepEqual(checkInvariants(hv), []);
  });

  it("an unprivileged (not physdev-capable) caller gets 0 extents for order > 0", () => {
    const { hv, x } = setup();
    const tot = x.totPages;
    const rc = hv.hypercallAs(x.vcpus[0], HypercallMar.dom_mem_op, [
      MemOp.increase_reservation,
      0xc0001000,
      1,
      2,
      DomId.SELF,
    ]);
    assert.equal(rc, 0);
    assert.equal(x.totPages, tot);
  });
});

describe("invariant checking after guest hypercalls", () => {
  it("a broken invariant found after a guest's hypercall fails run() with an InvariantError", () => {
    const hv = new Hypervisor({ memoryMiB: 32, tscHz: 10_000_000, checkInvariants: true });
    // mov eax, 17 (xen_version); int $0x82; jmp $
    const image = writeElf32({
      entry: 0xc0000000,
      segments: [{ vaddr: 0xc0000000, data: Uint8Array.from([0xb8, 17, 0, 0, 0, 0xcd, 0x82, 0xeb, 0xfe]) }],
      xenGuest: GUEST,
    });
    const d = launchDomain(hv, { name: "g", image, memoryMiB: 4 }).domain;
    assert.deepEqual(checkInvariants(hv), []);
    const mfn = [...d.pages][40];
    hv.frames.count[mfn] += 1; // a reference nobody holds
    assert.throws(() => hv.run(1e8), InvariantError);
    hv.frames.count[mfn] -= 1;
  });
});
