/**
 * Grant tables (semantics.md §6, abi.md §2.9): the per-domain tables, map and unmap with their
 * pins, in-use bits and frame references, implicit unmapping, page-transfer hooks, and the
 * guest pair that shares a page through a grant and transfers one (grant_a / grant_b), with
 * the memory invariants checked after every hypercall.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { M2P_INVALID_ENTRY, M2P_UNSET_ENTRY } from "../src/public/arch_x86_32.js";
import { GntMap, GntStMar, GrantEntry, Gtf } from "../src/public/grant_table.js";
import { launchDomain } from "../src/tools/launch.js";
import type { Domain } from "../src/xen/domain.js";
import { domainKill } from "../src/xen/domain_ctl.js";
import {
  NO_OWNER,
  PGT_count_mask,
  PGT_type_mask,
  PGT_validated,
  PGT_writable_page,
} from "../src/xen/frame_table.js";
import {
  destroyGrantTable,
  dumpTable,
  gnttabCheckUnmap,
  gnttabNotifyTransfer,
  gnttabPrepareForTransfer,
  grantTableOf,
  mapGrantRef,
  releaseDevMappings,
  setupTable,
  unmapGrantRef,
} from "../src/xen/grant_table.js";
import { Hypervisor } from "../src/xen/hypervisor.js";
import { checkInvariants } from "../src/xen/invariants.js";
import { assertGuestPassed, consoleMachine } from "./support/console.js";
import { guestPath } from "./support/guests.js";

const SELF = 0x7ff0;
const RO = GntMap.readonly;
const HOST = GntMap.host_map;
const DEV = GntMap.device_map;

function machine(): Hypervisor {
  return new Hypervisor({ memoryMiB: 16 });
}

/** Writes grant entry `ref` of d's shared table as the guest would. */
function grant(hv: Hypervisor, d: Domain, ref: number, flags: number, domid: number, frame: number): void {
  const gt = grantTableOf(d);
  assert.ok(gt);
  const base = gt.sharedMfn * 4096 + ref * GrantEntry.SIZE;
  hv.write32(base + GrantEntry.frame, frame);
  hv.write32(base + GrantEntry.flags, ((domid << 16) | flags) >>> 0);
}
function entryFlags(hv: Hypervisor, d: Domain, ref: number): number {
  const gt = grantTableOf(d);
  assert.ok(gt);
  return hv.read32(gt.sharedMfn * 4096 + ref * GrantEntry.SIZE) & 0xffff;
}
/** A frame of d's memory to grant. */
function pageOf(d: Domain, i = 0): number {
  return [...d.pages][i];
}
function clean(hv: Hypervisor): void {
  assert.deepEqual(checkInvariants(hv), []);
}
/** Domains a and b on a fresh machine. */
function twoDomains(): { hv: Hypervisor; a: Domain; b: Domain } {
  const hv = machine();
  return { hv, a: hv.createDomain("a", 4), b: hv.createDomain("b", 4) };
}
/** twoDomains with a's first page f granted to b as ref 1 and mapped by b for device access. */
function devMapped(): { hv: Hypervisor; a: Domain; b: Domain; f: number } {
  const { hv, a, b } = twoDomains();
  const f = pageOf(a);
  grant(hv, a, 1, Gtf.permit_access, b.id, f);
  mapGrantRef(hv, b.vcpus[0], { hostVirtAddr: 0, dom: a.id, ref: 1, flags: DEV });
  return { hv, a, b, f };
}

describe("grant table structures (semantics.md §6.1)", () => {
  it("each domain gets one zeroed Xen-heap page shared writable with it, M2P invalid", () => {
    const hv = machine();
    const d = hv.createDomain("d", 4);
    const gt = grantTableOf(d);
    assert.ok(gt);
    const f = gt.sharedMfn;
    assert.equal(hv.frames.owner[f], d.id);
    assert.equal(d.pages.has(f), false, "not on the domain's page list");
    assert.equal(hv.frames.count[f], 1);
    assert.equal(
      hv.frames.typeInfo[f] & (PGT_type_mask | PGT_validated | PGT_count_mask),
      PGT_writable_page | PGT_validated | 1,
    );
    // March Xen never writes the M2P entry of the table's Xen-heap frame: it keeps the boot fill.
    assert.equal(
      hv.getM2p(f) >>> 0,
      M2P_UNSET_ENTRY,
      "the M2P entry of a March grant frame is Xen's boot fill",
    );
    for (let i = 0; i < 4096; i += 4) assert.equal(hv.read32(f * 4096 + i), 0);
    clean(hv);
  });

  it("setup_table: one frame; other domains need privilege; 0 frames writes nothing", () => {
    const hv = machine();
    const a = hv.createDomain("a", 4);
    const p = hv.createDomain("p", 4, true);
    const v = a.vcpus[0];
    assert.deepEqual(setupTable(hv, v, SELF, 1), {
      status: GntStMar.okay,
      frame: grantTableOf(a)?.sharedMfn,
      frames: [grantTableOf(a)?.sharedMfn],
    });
    assert.equal(setupTable(hv, v, SELF, 2).status, GntStMar.general_error);
    assert.equal(setupTable(hv, v, a.id, 1).status, GntStMar.permission_denied);
    assert.equal(setupTable(hv, v, SELF, 0).status, undefined);
    assert.deepEqual(setupTable(hv, p.vcpus[0], a.id, 1), {
      status: 0,
      frame: grantTableOf(a)?.sharedMfn,
      frames: [grantTableOf(a)?.sharedMfn],
    });
    assert.equal(setupTable(hv, p.vcpus[0], 0x1234, 1).status, GntStMar.bad_domain);
  });

  it("July 2005 domains: four frames, 2048 entries; setup_table of 0..4 frames; refs bound per table", () => {
    const hv = machine();
    const j = hv.createDomain("j", 4, false, "2005-07");
    const m = hv.createDomain("m", 4);
    const gt = grantTableOf(j);
    assert.ok(gt);
    assert.equal(gt.sharedMfns.length, 4);
    assert.equal(gt.entries, 2048);
    assert.equal(new Set(gt.sharedMfns).size, 4);
    for (const f of gt.sharedMfns) {
      assert.equal(hv.frames.owner[f], j.id);
      assert.equal(hv.getM2p(f) >>> 0, M2P_INVALID_ENTRY >>> 0);
    }
    const v = j.vcpus[0];
    assert.deepEqual(setupTable(hv, v, SELF, 4), {
      status: 0,
      frame: gt.sharedMfns[0],
      frames: [...gt.sharedMfns],
    });
    assert.deepEqual(setupTable(hv, v, SELF, 0), { status: 0, frame: 0, frames: [] });
    assert.equal(setupTable(hv, v, SELF, 5).status, GntStMar.general_error);
    // Ref 2047 lives in the last frame; a MAR grantor's table ends at 511.
    grant(hv, j, 2047, Gtf.permit_access, m.id, pageOf(j));
    assert.equal(hv.read32(gt.sharedMfns[3] * 4096 + 511 * 8) & 0xffff, Gtf.permit_access);
    const r = mapGrantRef(hv, m.vcpus[0], { hostVirtAddr: 0, dom: j.id, ref: 2047, flags: DEV });
    assert.equal(r.handle, GntStMar.bad_gntref, "a MAR caller's bound is 512");
    const r2 = mapGrantRef(hv, v, { hostVirtAddr: 0, dom: m.id, ref: 600, flags: DEV });
    assert.equal(r2.handle, GntStMar.bad_gntref, "past the MAR grantor's one page");
    clean(hv);
    domainKill(hv, j);
    clean(hv);
  });

  it("a domain switched to July before it is built gets the four-frame table (and back)", async () => {
    const { setDomainAbi } = await import("../src/xen/domain_ctl.js");
    const { ABIS } = await import("../src/xen/abi.js");
    const hv = machine();
    const d = hv.createDomain("d", 4);
    const free = hv.mem.freeFrames;
    assert.equal(setDomainAbi(hv, d, ABIS["2005-07"]), 0);
    const four = grantTableOf(d)?.sharedMfns ?? [];
    assert.equal(four.length, 4);
    assert.equal(hv.mem.freeFrames, free - 3);
    for (const mfn of four) hv.write32(mfn * 4096 + 8, 0xfeedf00d);
    assert.equal(setDomainAbi(hv, d, ABIS["2005-03"]), 0);
    assert.deepEqual(grantTableOf(d)?.sharedMfns, four.slice(0, 1));
    assert.equal(hv.mem.freeFrames, free);
    // The released frames are free and scrubbed, and their M2P entries name no pseudo-physical
    // page (Xen leaves a freed Xen-heap page's entry as it was: here the July marker).
    for (const mfn of four.slice(1)) {
      assert.equal(hv.frames.count[mfn], 0);
      assert.equal(hv.frames.owner[mfn], NO_OWNER);
      assert.equal(hv.read32(mfn * 4096 + 8), 0);
      assert.equal(hv.getM2p(mfn), M2P_INVALID_ENTRY);
    }
    assert.equal(hv.getM2p(four[0]), M2P_UNSET_ENTRY);
    clean(hv);
  });

  it("dump_table needs no privilege; an unknown domain is bad_domain", () => {
    const { hv, a, b } = twoDomains();
    grant(hv, a, 3, Gtf.permit_access, b.id, pageOf(a));
    const r = dumpTable(hv, b.vcpus[0], a.id);
    assert.equal(r.status, 0);
    assert.match(r.text, /ref 3: shared flags 0x1/);
    assert.equal(dumpTable(hv, b.vcpus[0], 0x1234).status, GntStMar.bad_domain);
  });
});

describe("map and unmap (semantics.md §6.2)", () => {
  it("a writable device map sets reading|writing, takes a general and a writable type reference", () => {
    const { hv, a, b } = twoDomains();
    const f = pageOf(a);
    grant(hv, a, 1, Gtf.permit_access, b.id, f);
    const r = mapGrantRef(hv, b.vcpus[0], { hostVirtAddr: 0, dom: a.id, ref: 1, flags: DEV });
    assert.deepEqual(r, { handle: 0, frame: f });
    assert.equal(entryFlags(hv, a, 1), Gtf.permit_access | Gtf.reading | Gtf.writing);
    assert.equal(hv.frames.count[f], 2);
    assert.equal(hv.frames.typeInfo[f] & (PGT_type_mask | PGT_count_mask), PGT_writable_page | 1);
    assert.equal(grantTableOf(a)?.pin[1], 1 << 16);
    clean(hv);
    // A read-only host map (va 0: pin only) adds a pin, no reference.
    const r2 = mapGrantRef(hv, b.vcpus[0], { hostVirtAddr: 0, dom: a.id, ref: 1, flags: HOST | RO });
    assert.equal(r2.handle, 1);
    assert.equal(hv.frames.count[f], 2);
    clean(hv);
    // Device unmap: status 1 [QUIRK kept]; writable pins gone -> type ref and GTF_writing go.
    assert.deepEqual(unmapGrantRef(hv, b.vcpus[0], { hostVirtAddr: 0, devBusAddr: f, handle: 0 }), {
      status: 1,
      clearDevBusAddr: true,
    });
    assert.equal(entryFlags(hv, a, 1), Gtf.permit_access | Gtf.reading);
    assert.equal(hv.frames.typeInfo[f] & PGT_count_mask, 0);
    assert.equal(hv.frames.count[f], 2);
    clean(hv);
    // The host map with va 0 cannot be unmapped through a VA: it stays (status 1).
    assert.equal(unmapGrantRef(hv, b.vcpus[0], { hostVirtAddr: 0, devBusAddr: 0, handle: 1 }).status, 1);
    assert.equal(grantTableOf(b)?.mapCount, 1);
    // Implicit unmap through put_page_from_l1e's hook releases it.
    assert.equal(gnttabCheckUnmap(hv, a.id, b.id, f, true), true);
    assert.equal(entryFlags(hv, a, 1), Gtf.permit_access);
    assert.equal(hv.frames.count[f], 1);
    assert.equal(grantTableOf(b)?.mapCount, 0);
    assert.equal(gnttabCheckUnmap(hv, a.id, b.id, f, true), false, "nothing left to match");
    clean(hv);
  });

  it("a writable PTE only matches writable maps; a map of another grantor never matches", () => {
    const { hv, a, b } = twoDomains();
    const c = hv.createDomain("c", 4);
    const f = pageOf(a);
    grant(hv, a, 2, Gtf.permit_access, b.id, f);
    assert.equal(
      mapGrantRef(hv, b.vcpus[0], { hostVirtAddr: 0, dom: a.id, ref: 2, flags: HOST | RO }).handle,
      0,
    );
    assert.equal(gnttabCheckUnmap(hv, a.id, b.id, f, false), false);
    assert.equal(gnttabCheckUnmap(hv, c.id, b.id, f, true), false);
    assert.equal(gnttabCheckUnmap(hv, a.id, b.id, f, true), true);
    clean(hv);
  });

  it("checks in order: va, ref/flags, domain (self or unknown), then the entry", () => {
    const { hv, a, b } = twoDomains();
    const v = b.vcpus[0];
    const m = (hostVirtAddr: number, dom: number, ref: number, flags: number) =>
      mapGrantRef(hv, v, { hostVirtAddr, dom, ref, flags }).handle;
    assert.equal(m(0xfc000000, 0x1234, 999, 0), GntStMar.bad_virt_addr);
    assert.equal(m(0, 0x1234, 512, HOST), GntStMar.bad_gntref);
    assert.equal(m(0, a.id, 1, RO), GntStMar.bad_gntref);
    assert.equal(m(0, b.id, 1, HOST), GntStMar.bad_domain);
    assert.equal(m(0, SELF, 1, HOST), GntStMar.bad_domain);
    assert.equal(m(0, a.id, 1, HOST), GntStMar.general_error, "invalid entry");
    grant(hv, a, 1, Gtf.permit_access | Gtf.readonly, b.id, pageOf(a));
    assert.equal(m(0, a.id, 1, HOST), GntStMar.general_error, "writable map of a read-only grant");
    grant(hv, a, 4, Gtf.permit_access, 0x77, pageOf(a));
    assert.equal(m(0, a.id, 4, HOST), GntStMar.general_error, "granted to someone else");
    grant(hv, a, 5, Gtf.permit_access, b.id, 0x50);
    assert.equal(m(0, a.id, 5, DEV), GntStMar.general_error, "frame not RAM");
    grant(hv, a, 6, Gtf.permit_access, b.id, pageOf(b));
    assert.equal(m(0, a.id, 6, DEV), GntStMar.general_error, "frame not the grantor's");
    assert.equal(entryFlags(hv, a, 6), Gtf.permit_access, "failed activation clears the bits");
    assert.equal(grantTableOf(b)?.mapCount, 0, "failed maps free their handles");
    clean(hv);
  });

  it("an active grant maps again only for the domain that activated it ([QUIRK] fixed)", () => {
    const { hv, a, b } = twoDomains();
    const c = hv.createDomain("c", 4);
    grant(hv, a, 1, Gtf.permit_access, b.id, pageOf(a));
    assert.equal(
      mapGrantRef(hv, b.vcpus[0], { hostVirtAddr: 0, dom: a.id, ref: 1, flags: DEV | RO }).handle,
      0,
    );
    assert.equal(
      mapGrantRef(hv, c.vcpus[0], { hostVirtAddr: 0, dom: a.id, ref: 1, flags: DEV | RO }).handle,
      GntStMar.general_error,
    );
    clean(hv);
  });

  it("pins stop at 128 per kind with general_error, not +28 ([QUIRK] fixed); maptrack holds 1024", () => {
    const { hv, a, b } = twoDomains();
    for (let r = 0; r < 9; r++) grant(hv, a, r, Gtf.permit_access | Gtf.readonly, b.id, pageOf(a));
    const v = b.vcpus[0];
    let n = 0;
    for (let i = 0; i < 128; i++)
      if (mapGrantRef(hv, v, { hostVirtAddr: 0, dom: a.id, ref: 0, flags: DEV | RO }).handle >= 0) n++;
    assert.equal(n, 128);
    assert.equal(
      mapGrantRef(hv, v, { hostVirtAddr: 0, dom: a.id, ref: 0, flags: DEV | RO }).handle,
      GntStMar.general_error,
    );
    // Any count near overflow stops every kind of map on that entry.
    assert.equal(
      mapGrantRef(hv, v, { hostVirtAddr: 0, dom: a.id, ref: 0, flags: HOST | RO }).handle,
      GntStMar.general_error,
    );
    for (let i = 0; i < 128; i++)
      assert.ok(mapGrantRef(hv, v, { hostVirtAddr: 0, dom: a.id, ref: 7, flags: HOST | RO }).handle >= 0);
    for (let r = 1; r < 7; r++)
      for (let i = 0; i < 128; i++)
        assert.ok(mapGrantRef(hv, v, { hostVirtAddr: 0, dom: a.id, ref: r, flags: DEV | RO }).handle >= 0);
    assert.equal(grantTableOf(b)?.mapCount, 1024);
    assert.equal(
      mapGrantRef(hv, v, { hostVirtAddr: 0, dom: a.id, ref: 8, flags: DEV | RO }).handle,
      GntStMar.no_device_space,
    );
    clean(hv);
  });

  it("unmap: bad handles, unknown grantor, wrong device address; only one's own handles", () => {
    const { hv, a, b } = twoDomains();
    const f = pageOf(a);
    grant(hv, a, 1, Gtf.permit_access, b.id, f);
    const h = mapGrantRef(hv, b.vcpus[0], { hostVirtAddr: 0, dom: a.id, ref: 1, flags: DEV }).handle;
    const u = (who: Domain, handle: number, devBusAddr: number) =>
      unmapGrantRef(hv, who.vcpus[0], { hostVirtAddr: 0, devBusAddr, handle }).status;
    assert.equal(u(a, h, f), GntStMar.bad_handle, "the grantor cannot unmap the mapper's handle");
    assert.equal(u(b, 1024, f), GntStMar.bad_handle);
    assert.equal(u(b, h + 1, f), GntStMar.bad_handle);
    assert.equal(u(b, h, f + 1), GntStMar.general_error);
    assert.equal(u(b, h, f), 1);
    assert.equal(u(b, h, f), GntStMar.bad_handle);
    clean(hv);
  });
});

describe("invariant checker (checkInvariants learns grants)", () => {
  it("counts an active entry's references and flags a pin that no handle accounts for", () => {
    const { hv, a } = devMapped();
    clean(hv);
    const gt = grantTableOf(a);
    assert.ok(gt);
    gt.pin[1] += 1 << 8;
    assert.match(
      checkInvariants(hv).join("\n"),
      /grant ref 1: pin 0x10100 but maptrack accounts for 0x10000/,
    );
  });
});

describe("teardown and transfer", () => {
  it("a mapped grant keeps its frame alive after the grantor drops it; the unmap frees it", () => {
    const { hv, a, b, f } = devMapped();
    // The grantor's allocation reference goes (decrease_reservation's effect).
    hv.frames.allocated[f] = 0;
    hv.mm.putPage(f);
    assert.equal(hv.frames.count[f], 1);
    assert.equal(hv.frames.owner[f], a.id);
    clean(hv);
    const free = hv.mem.freeFrames;
    assert.equal(unmapGrantRef(hv, b.vcpus[0], { hostVirtAddr: 0, devBusAddr: f, handle: 0 }).status, 1);
    assert.equal(hv.frames.count[f], 0);
    assert.equal(hv.mem.freeFrames, free + 1);
    assert.equal(a.pages.has(f), false);
    clean(hv);
  });

  it("release of a dying domain's device maps, then its table frame", () => {
    const { hv, a, b, f } = devMapped();
    mapGrantRef(hv, b.vcpus[0], { hostVirtAddr: 0, dom: a.id, ref: 1, flags: DEV | RO });
    releaseDevMappings(hv, b);
    assert.equal(grantTableOf(b)?.mapCount, 0);
    assert.equal(entryFlags(hv, a, 1), Gtf.permit_access);
    assert.equal(hv.frames.count[f], 1);
    clean(hv);
    const gtFrame = grantTableOf(b)?.sharedMfn ?? -1;
    const free = hv.mem.freeFrames;
    destroyGrantTable(hv, b);
    assert.equal(grantTableOf(b), undefined);
    assert.equal(hv.frames.count[gtFrame], 0);
    assert.equal(hv.mem.freeFrames, free + 1);
  });

  it("a killed grantor lingers while its grant is mapped and is freed by the mapper's unmap", () => {
    const { hv, a, b, f } = devMapped();
    domainKill(hv, a);
    assert.equal(hv.domains.get(a.id), a, "zombie while mapped");
    assert.deepEqual([...a.pages], [f]);
    clean(hv);
    assert.equal(unmapGrantRef(hv, b.vcpus[0], { hostVirtAddr: 0, devBusAddr: f, handle: 0 }).status, 1);
    assert.equal(hv.domains.has(a.id), false, "freed with its last page");
    assert.equal(grantTableOf(a), undefined);
    clean(hv);
  });

  it("a killed mapper's device maps are released (gnttab_release_dev_mappings)", () => {
    const { hv, a, b, f } = devMapped();
    const free = hv.mem.freeFrames;
    domainKill(hv, b);
    assert.equal(hv.domains.has(b.id), false);
    assert.equal(entryFlags(hv, a, 1), Gtf.permit_access);
    assert.equal(hv.frames.count[f], 1);
    assert.ok(hv.mem.freeFrames >= free + 5, "b's pages and Xen frames, grant page included, are free");
    clean(hv);
  });

  it("transfer: the entry must be exactly accept_transfer for the sender; then committed, frame, completed", () => {
    const { hv, a, b } = twoDomains();
    assert.equal(gnttabPrepareForTransfer(hv, b.id, a.id, 3), false);
    grant(hv, b, 3, Gtf.accept_transfer, 0x77, 0);
    assert.equal(gnttabPrepareForTransfer(hv, b.id, a.id, 3), false);
    grant(hv, b, 3, Gtf.accept_transfer | Gtf.transfer_committed, a.id, 0);
    assert.equal(gnttabPrepareForTransfer(hv, b.id, a.id, 3), false);
    grant(hv, b, 3, Gtf.accept_transfer, a.id, 0);
    assert.equal(gnttabPrepareForTransfer(hv, b.id, a.id, 512), false);
    assert.equal(gnttabPrepareForTransfer(hv, b.id, a.id, 3), true);
    assert.equal(entryFlags(hv, b, 3), Gtf.accept_transfer | Gtf.transfer_committed);
    gnttabNotifyTransfer(hv, b.id, 3, 0x1234);
    assert.equal(entryFlags(hv, b, 3), Gtf.accept_transfer | Gtf.transfer_committed | Gtf.transfer_completed);
    const gt = grantTableOf(b);
    assert.equal(hv.read32((gt?.sharedMfn ?? 0) * 4096 + 3 * 8 + GrantEntry.frame), 0x1234);
  });
});

describe("guests", () => {
  it("two domains share a page through a grant, exchange data with events, transfer a page (grant_a / grant_b)", () => {
    const { hv, out } = consoleMachine();
    let invariants: string | null = null;
    hv.afterHypercall = (_v, nr) => {
      if (invariants !== null) return;
      const bad = checkInvariants(hv);
      if (bad.length > 0) invariants = `after hypercall ${nr}: ${bad.slice(0, 5).join("; ")}`;
    };
    const a = launchDomain(hv, {
      name: "a",
      image: readFileSync(guestPath("ev_grant_a")),
      memoryMiB: 8,
      cmdline: "peer=2 port=1 self=1 rounds=20",
    }).domain;
    const b = launchDomain(hv, {
      name: "b",
      image: readFileSync(guestPath("ev_grant_b")),
      memoryMiB: 8,
      cmdline: `peer=${a.id} rounds=20`,
    }).domain;
    assert.equal(a.id, 1);
    assert.equal(b.id, 2);
    for (let guard = 0; guard < 100; guard++) {
      if (a.state !== 0 && b.state !== 0) break;
      const r = hv.run(30e9);
      if (r.kind === "time-limit" || r.kind === "idle") break;
      if (r.kind === "crashed") assert.fail(`${r.domain.name} crashed: ${r.why}\n${out.get(r.domain)}`);
    }
    for (const d of [a, b]) {
      const text = out.get(d) ?? "";
      assertGuestPassed(text);
    }
    assert.equal(invariants, null);
  });
});
