/**
 * Grant tables (hypercall 20): each domain's shared table of grant entries, Xen's private
 * active table with its pin counts, and the maptrack of the mappings a domain holds on other
 * domains' grants (semantics.md §6, abi.md §2.9). Also the grant side of implicit unmapping
 * (put_page_from_l1e on a foreign frame, §1.4 / §6.3) and of MMUEXT_TRANSFER_PAGE (§1.8).
 *
 * Each sub-op is an exported function on plain values (a handle or a GNTST status), so tests
 * use the same code as the hypercall, which only marshals the structs and flushes the TLB.
 */
import {
  _PAGE_ACCESSED,
  _PAGE_DIRTY,
  _PAGE_PRESENT,
  _PAGE_RW,
  HYPERVISOR_VIRT_START,
} from "../public/arch_x86_32.js";
import { EBUSY, EFAULT, EINVAL, ENOMEM, ENOSYS } from "../public/errno.js";
import {
  GNTTABOP_MAX_COUNT_MAR,
  GntMap,
  GntStMar,
  GnttabDumpTable,
  GnttabOp,
  GrantEntry,
  Gtf,
  NR_MAPTRACK_ENTRIES,
} from "../public/grant_table.js";
import { DomId } from "../public/xen.js";
import type { GuestAbi } from "./abi.js";
import type { Domain, Vcpu } from "./domain.js";
import { PGT_validated, PGT_writable_page } from "./frame_table.js";
import { arrayAccessOk } from "./guest_access.js";
import type { Hypervisor } from "./hypervisor.js";
import { linearPteMa } from "./mmu.js";
import { ptwrFlushAll } from "./ptwr.js";

// The pin word of an active entry: four 8-bit use counts (semantics.md §6.1).
const GNTPIN_hstw_inc = 1 << 0;
const GNTPIN_hstw_mask = 0xff << 0;
const GNTPIN_hstr_inc = 1 << 8;
const GNTPIN_hstr_mask = 0xff << 8;
const GNTPIN_devw_inc = 1 << 16;
const GNTPIN_devw_mask = 0xff << 16;
const GNTPIN_devr_inc = 1 << 24;
const GNTPIN_devr_mask = (0xff << 24) >>> 0;
const GNTPIN_writable = GNTPIN_hstw_mask | GNTPIN_devw_mask;
const GNTPIN_host = GNTPIN_hstw_mask | GNTPIN_hstr_mask;
/** A count with its top bit set is close to overflowing: further maps are refused. */
const GNTPIN_overflow = 0x80808080;

// A maptrack entry: ref_and_flags = ref << 3 | the GNTMAP flags of the map (bits 0-2).
const MAPTRACK_REF_SHIFT = 3;
const MAPTRACK_GNTMAP_MASK = GntMap.device_map | GntMap.host_map | GntMap.readonly;

/** Grant entries per shared page. */
const ENTRIES_PER_FRAME = 4096 / GrantEntry.SIZE;
/**
 * Internal status "inappropriate device address" (JUL's GNTST_bad_dev_addr; MAR has no such
 * code and never produces it). guestStatus translates it.
 */
const GNTST_BAD_DEV_ADDR = -100;

/** Held references of an active entry (Xen infers them from the pins; we record them). */
const ACT_PAGE_REF = 1;
const ACT_TYPE_REF = 2;

/**
 * The grant state of one domain. Its size follows the domain's interface revision: MAR one
 * shared page of 512 entries, JUL four pages of 2048 (abi.md §2.9.1).
 */
export class GrantTable {
  /** Number of grant entries (refs 0 .. entries-1). */
  readonly entries: number;
  /** Active table, per grant ref: the pins, the mapping domain and the granted frame. */
  readonly pin: Uint32Array;
  readonly actDomid: Uint16Array;
  readonly actFrame: Int32Array;
  readonly actRefs: Uint8Array;
  /** Maptrack: the mappings this domain holds; free entries link through ref_and_flags >> 3. */
  readonly maptrackRefAndFlags = new Uint16Array(NR_MAPTRACK_ENTRIES);
  readonly maptrackDomid = new Uint16Array(NR_MAPTRACK_ENTRIES);
  maptrackHead = 0;
  mapCount = 0;

  /** sharedMfns: the Xen-heap pages holding the grant entries, shared writable with the domain. */
  constructor(readonly sharedMfns: readonly number[]) {
    this.entries = sharedMfns.length * ENTRIES_PER_FRAME;
    this.pin = new Uint32Array(this.entries);
    this.actDomid = new Uint16Array(this.entries);
    this.actFrame = new Int32Array(this.entries);
    this.actRefs = new Uint8Array(this.entries);
    for (let i = 0; i < NR_MAPTRACK_ENTRIES; i++) this.maptrackRefAndFlags[i] = (i + 1) << MAPTRACK_REF_SHIFT;
  }

  /** The first shared page (the only one at MAR). */
  get sharedMfn(): number {
    return this.sharedMfns[0];
  }

  /** Machine address of entry `ref`'s byte `off`. */
  entryMa(ref: number, off: number): number {
    return (
      this.sharedMfns[Math.floor(ref / ENTRIES_PER_FRAME)] * 4096 +
      (ref % ENTRIES_PER_FRAME) * GrantEntry.SIZE +
      off
    );
  }
}

const tables = new WeakMap<Domain, GrantTable>();

/** The domain's grant table, or undefined for a domain created without one. */
export function grantTableOf(d: Domain): GrantTable | undefined {
  return tables.get(d);
}

/**
 * grant_table_create (domain creation): the domain's revision's number of zeroed Xen-heap
 * pages (MAR 1, JUL 4: `d.abi.grant.frames`) shared writable with the domain (count
 * allocated|1, type writable with one count, M2P invalid), as shared_info is (semantics.md
 * §1.11, §6.1). Returns false when machine memory is exhausted.
 */
export function createGrantTable(hv: Hypervisor, d: Domain): boolean {
  const mfns: number[] = [];
  for (let i = 0; i < d.abi.grant.frames; i++) {
    const mfn = hv.mem.allocFrame();
    if (mfn < 0) {
      for (const m of mfns) {
        hv.frames.release(m);
        hv.mem.freeFrame(m);
      }
      return false;
    }
    hv.scrubFrame(mfn);
    hv.frames.assign(mfn, d.id);
    hv.frames.typeInfo[mfn] = PGT_writable_page | PGT_validated | 1;
    hv.setM2p(mfn, d.abi.grant.frameM2p);
    mfns.push(mfn);
  }
  tables.set(d, new GrantTable(mfns));
  return true;
}

/**
 * A domain's revision is chosen after creation (setDomainAbi, before it is built): its table
 * grows or shrinks to that revision's frame count. Frames beyond the new count go back to the
 * heap, scrubbed; one still mapped elsewhere refuses the change. Returns 0 or -errno.
 */
export function resizeGrantTable(hv: Hypervisor, d: Domain, grant: GuestAbi["grant"]): number {
  const gt = tables.get(d);
  if (!gt) return 0;
  const frames = grant.frames;
  // The kept frames' M2P entries follow the revision too (frameM2p).
  if (gt.sharedMfns.length === frames) {
    for (const mfn of gt.sharedMfns) hv.setM2p(mfn, grant.frameM2p);
    return 0;
  }
  const ft = hv.frames;
  const mfns = gt.sharedMfns.slice(0, frames);
  const extra = gt.sharedMfns.slice(frames);
  if (gt.mapCount !== 0 || gt.pin.some((p) => p !== 0)) return -EBUSY;
  for (const mfn of extra) if (ft.count[mfn] !== 1) return -EBUSY;
  while (mfns.length < frames) {
    const mfn = hv.mem.allocFrame();
    if (mfn < 0) {
      for (const m of mfns.slice(gt.sharedMfns.length)) {
        ft.release(m);
        hv.mem.freeFrame(m);
      }
      return -ENOMEM;
    }
    hv.scrubFrame(mfn);
    ft.assign(mfn, d.id);
    ft.typeInfo[mfn] = PGT_writable_page | PGT_validated | 1;
    mfns.push(mfn);
  }
  for (const mfn of mfns) hv.setM2p(mfn, grant.frameM2p);
  for (const mfn of extra) {
    ft.release(mfn);
    hv.scrubFrame(mfn);
    hv.mem.freeFrame(mfn);
  }
  if (extra.length) hv.cpu.flushTlb();
  tables.set(d, new GrantTable(mfns));
  return 0;
}

/**
 * Domain teardown, first step (gnttab_release_dev_mappings): the device mappings the dying
 * domain holds on other domains' grants are released. Its host mappings go with its page
 * tables (put_page_from_l1e -> grantCheckUnmap).
 */
export function releaseDevMappings(hv: Hypervisor, d: Domain): void {
  const lgt = tables.get(d);
  if (!lgt) return;
  for (let h = 0; h < NR_MAPTRACK_ENTRIES; h++) {
    let mf = lgt.maptrackRefAndFlags[h];
    if ((mf & GntMap.device_map) === 0) continue;
    const ref = mf >>> MAPTRACK_REF_SHIFT;
    const rd = hv.domains.get(lgt.maptrackDomid[h]);
    const rgt = rd && tables.get(rd);
    if (rd && rgt && rgt.pin[ref] !== 0) {
      const ro = (mf & GntMap.readonly) !== 0;
      const inc = ro ? GNTPIN_devr_inc : GNTPIN_devw_inc;
      const mask = ro ? GNTPIN_devr_mask : GNTPIN_devw_mask;
      if ((rgt.pin[ref] & mask) !== 0) rgt.pin[ref] -= inc;
      dropActiveRefs(hv, rgt, ref);
    }
    mf &= ~GntMap.device_map;
    if ((mf & (GntMap.device_map | GntMap.host_map)) === 0) putMaptrackHandle(lgt, h);
    else lgt.maptrackRefAndFlags[h] = mf;
  }
}

/**
 * Domain teardown, last step (grant_table_destroy, when the domain structure is freed): the
 * shared page goes back to the heap, scrubbed, once nothing but its allocation holds it.
 */
export function destroyGrantTable(hv: Hypervisor, d: Domain): void {
  const gt = tables.get(d);
  if (!gt) return;
  tables.delete(d);
  const ft = hv.frames;
  for (const mfn of gt.sharedMfns) {
    if (ft.owner[mfn] !== d.id || ft.count[mfn] !== 1 || ft.allocated[mfn] !== 1) continue;
    ft.release(mfn);
    hv.scrubFrame(mfn);
    hv.mem.freeFrame(mfn);
  }
  hv.cpu.flushTlb();
}

// ------------------------------------------------------------------ the shared entries

/** The first word of a shared entry: flags (low 16 bits) and domid (high 16 bits). */
function sharedWordMa(gt: GrantTable, ref: number): number {
  return gt.entryMa(ref, GrantEntry.flags);
}

function sharedFlags(hv: Hypervisor, gt: GrantTable, ref: number): number {
  return hv.read32(sharedWordMa(gt, ref)) & 0xffff;
}

function sharedDomid(hv: Hypervisor, gt: GrantTable, ref: number): number {
  return hv.read32(sharedWordMa(gt, ref)) >>> 16;
}

function sharedFrame(hv: Hypervisor, gt: GrantTable, ref: number): number {
  return hv.read32(gt.entryMa(ref, GrantEntry.frame));
}

/** Xen's set_bit/clear_bit on the flags: the domid half of the word is left alone. */
function setSharedFlags(hv: Hypervisor, gt: GrantTable, ref: number, set: number, clear: number): void {
  const ma = sharedWordMa(gt, ref);
  const w = hv.read32(ma);
  hv.write32(ma, (w & ~clear) | set);
}

// ------------------------------------------------------------------ maptrack

function getMaptrackHandle(t: GrantTable): number {
  const h = t.maptrackHead;
  if (h >= NR_MAPTRACK_ENTRIES) return -1;
  t.maptrackHead = t.maptrackRefAndFlags[h] >>> MAPTRACK_REF_SHIFT;
  t.mapCount++;
  return h;
}

function putMaptrackHandle(t: GrantTable, h: number): void {
  t.maptrackRefAndFlags[h] = t.maptrackHead << MAPTRACK_REF_SHIFT;
  t.maptrackHead = h;
  t.mapCount--;
}

/**
 * After pins went down: no writable pins left drops the writable type reference and clears
 * GTF_writing; no pins at all drop the general reference and clear GTF_reading.
 */
function dropActiveRefs(hv: Hypervisor, rgt: GrantTable, ref: number): void {
  const pin = rgt.pin[ref];
  const frame = rgt.actFrame[ref];
  if ((pin & GNTPIN_writable) === 0 && rgt.actRefs[ref] & ACT_TYPE_REF) {
    rgt.actRefs[ref] &= ~ACT_TYPE_REF;
    setSharedFlags(hv, rgt, ref, 0, Gtf.writing);
    hv.mm.putPageType(frame);
  }
  if (pin === 0 && rgt.actRefs[ref] & ACT_PAGE_REF) {
    rgt.actRefs[ref] &= ~ACT_PAGE_REF;
    setSharedFlags(hv, rgt, ref, 0, Gtf.reading);
    hv.mm.putPage(frame);
  }
}

// ------------------------------------------------------------------ GNTTABOP_map_grant_ref

export interface MapRequest {
  hostVirtAddr: number;
  dom: number;
  ref: number;
  flags: number;
}

/**
 * The outcome of one map: handle >= 0, or a GNTST_* status (or -EINVAL when the host PTE could
 * not be written, as Xen stores it). frame is the granted frame on success.
 */
export interface MapResult {
  handle: number;
  frame: number;
}

/** The PTE Xen writes for a host mapping: kernel-only, accessed and dirty (semantics.md §6.2). */
function grantPte(frame: number, readonly: boolean): number {
  return ((frame * 4096) | _PAGE_PRESENT | _PAGE_ACCESSED | _PAGE_DIRTY | (readonly ? 0 : _PAGE_RW)) >>> 0;
}

function pinIncrement(flags: number): number {
  const ro = (flags & GntMap.readonly) !== 0;
  let inc = 0;
  if (flags & GntMap.device_map) inc += ro ? GNTPIN_devr_inc : GNTPIN_devw_inc;
  if (flags & GntMap.host_map) inc += ro ? GNTPIN_hstr_inc : GNTPIN_hstw_inc;
  return inc;
}

/**
 * __gnttab_map_grant_ref (semantics.md §6.2), checks in Xen's order. Three [QUIRK]s are
 * fixed as later Xen fixed them (docs/DEVIATIONS.md): an active entry can be mapped again only
 * by the domain that activated it, a pin near overflow is GNTST_general_error rather than +28,
 * and a failed host mapping undoes its pin once (not twice).
 */
export function mapGrantRef(hv: Hypervisor, v: Vcpu, op: MapRequest): MapResult {
  const fail = (handle: number): MapResult => ({ handle, frame: 0 });
  const ld = v.domain;
  const va = op.hostVirtAddr >>> 0;
  const { dom, ref, flags } = op;
  const lgt = tables.get(ld);
  if (((flags & GntMap.host_map) !== 0 || va !== 0) && va >= HYPERVISOR_VIRT_START)
    return fail(GntStMar.bad_virt_addr);
  // The bound is the caller's revision's (Xen's NR_GRANT_ENTRIES) ...
  if (ref >= ld.abi.grant.entries || (flags & (GntMap.device_map | GntMap.host_map)) === 0)
    return fail(GntStMar.bad_gntref);
  const rd = hv.domains.get(dom);
  const rgt = rd && tables.get(rd);
  if (rd === undefined || rd === ld || rgt === undefined) return fail(GntStMar.bad_domain);
  // ... and a JUL caller naming a MAR grantor's ref beyond its one page is refused too.
  if (ref >= rgt.entries) return fail(GntStMar.bad_gntref);
  if (lgt === undefined) return fail(GntStMar.no_device_space);
  const handle = getMaptrackHandle(lgt);
  if (handle < 0) return fail(GntStMar.no_device_space);

  const ro = (flags & GntMap.readonly) !== 0;
  const inc = pinIncrement(flags);
  const pin = rgt.pin[ref];
  let frame: number;
  if (pin === 0) {
    // First activation: the grantor's entry must permit access to us.
    const sflags = sharedFlags(hv, rgt, ref);
    if (
      (sflags & Gtf.type_mask) !== Gtf.permit_access ||
      sharedDomid(hv, rgt, ref) !== ld.id ||
      (!ro && sflags & Gtf.readonly)
    ) {
      putMaptrackHandle(lgt, handle);
      return fail(GntStMar.general_error);
    }
    setSharedFlags(hv, rgt, ref, Gtf.reading | (ro ? 0 : Gtf.writing), 0);
    frame = sharedFrame(hv, rgt, ref);
    const ok =
      hv.frames.isRam(frame) &&
      (ro ? hv.mm.getPage(frame, rd.id) : hv.mm.getPageAndType(frame, rd.id, PGT_writable_page));
    if (!ok) {
      setSharedFlags(hv, rgt, ref, 0, Gtf.reading | Gtf.writing);
      putMaptrackHandle(lgt, handle);
      return fail(GntStMar.general_error);
    }
    rgt.actRefs[ref] = ACT_PAGE_REF | (ro ? 0 : ACT_TYPE_REF);
    rgt.actDomid[ref] = ld.id;
    rgt.actFrame[ref] = frame;
  } else {
    frame = rgt.actFrame[ref];
    if (rgt.actDomid[ref] !== ld.id || (pin & GNTPIN_overflow) !== 0) {
      putMaptrackHandle(lgt, handle);
      return fail(GntStMar.general_error);
    }
    if (!ro && (pin & GNTPIN_writable) === 0) {
      // Upgrade to writable: the entry must still grant us write access.
      const sflags = sharedFlags(hv, rgt, ref);
      if (
        (sflags & Gtf.type_mask) !== Gtf.permit_access ||
        sharedDomid(hv, rgt, ref) !== ld.id ||
        sflags & Gtf.readonly
      ) {
        putMaptrackHandle(lgt, handle);
        return fail(GntStMar.general_error);
      }
      setSharedFlags(hv, rgt, ref, Gtf.writing, 0);
      if (!hv.mm.getPageType(frame, PGT_writable_page)) {
        setSharedFlags(hv, rgt, ref, 0, Gtf.writing);
        putMaptrackHandle(lgt, handle);
        return fail(GntStMar.general_error);
      }
      rgt.actRefs[ref] |= ACT_TYPE_REF;
    }
  }
  rgt.pin[ref] = (rgt.pin[ref] + inc) >>> 0;

  if (flags & GntMap.host_map && va !== 0) {
    // The PTE goes into the caller's current page tables, reached like Xen's linear table.
    ptwrFlushAll(hv, ld);
    const ma = linearPteMa(hv, v, va);
    if (ma < 0) {
      rgt.pin[ref] = (rgt.pin[ref] - inc) >>> 0;
      dropActiveRefs(hv, rgt, ref);
      putMaptrackHandle(lgt, handle);
      return fail(-EINVAL);
    }
    const old = hv.read32(ma);
    hv.write32(ma, grantPte(frame, ro));
    // No get_page_from_l1e for the new entry: the pin holds the frame.
    hv.mm.putPageFromL1e(old, ld.id);
  }
  lgt.maptrackDomid[handle] = dom;
  lgt.maptrackRefAndFlags[handle] = (ref << MAPTRACK_REF_SHIFT) | (flags & MAPTRACK_GNTMAP_MASK);
  return { handle, frame };
}

// ------------------------------------------------------------------ GNTTABOP_unmap_grant_ref

export interface UnmapRequest {
  hostVirtAddr: number;
  devBusAddr: number;
  handle: number;
}

/** The status of one unmap, and whether dev_bus_addr is written back as 0. */
export interface UnmapResult {
  status: number;
  clearDevBusAddr: boolean;
}

/**
 * __gnttab_unmap_grant_ref (semantics.md §6.2). A domain can only unmap through its own
 * handles. The status starts at 1, so a device-only unmap reports 1 [QUIRK, kept].
 */
export function unmapGrantRef(hv: Hypervisor, v: Vcpu, op: UnmapRequest): UnmapResult {
  const ld = v.domain;
  const lgt = tables.get(ld);
  const handle = op.handle;
  let clearDevBusAddr = false;
  const done = (status: number): UnmapResult => ({ status, clearDevBusAddr });
  if (
    lgt === undefined ||
    handle >= NR_MAPTRACK_ENTRIES ||
    (lgt.maptrackRefAndFlags[handle] & MAPTRACK_GNTMAP_MASK) === 0
  )
    return done(GntStMar.bad_handle);
  const refAndFlags = lgt.maptrackRefAndFlags[handle];
  const ref = refAndFlags >>> MAPTRACK_REF_SHIFT;
  let mf = refAndFlags & MAPTRACK_GNTMAP_MASK;
  const ro = (mf & GntMap.readonly) !== 0;
  const rd = hv.domains.get(lgt.maptrackDomid[handle]);
  const rgt = rd && tables.get(rd);
  if (rd === undefined || rd === ld || rgt === undefined) return done(GntStMar.bad_domain);
  const frame = rgt.actFrame[ref];
  let status = 1;

  let devBusAddr = op.devBusAddr >>> 0;
  if (devBusAddr !== 0 && devBusAddr === ld.abi.grant.devFromVirt) {
    // JUL GNTUNMAP_DEV_FROM_VIRT: needs a device mapping, else GNTST_bad_dev_addr. Xen of July
    // 2005 then replaced the value by the frame before testing it again [QUIRK], so the device
    // mapping was never released here: it stays, as there.
    if ((mf & GntMap.device_map) === 0) return done(GNTST_BAD_DEV_ADDR);
    devBusAddr = 0;
  }
  if (devBusAddr !== 0) {
    // dev_bus_addr carries the frame number (abi.md Q7).
    if (devBusAddr !== frame) return done(GntStMar.general_error);
    if (mf & GntMap.device_map) {
      rgt.pin[ref] = (rgt.pin[ref] - (ro ? GNTPIN_devr_inc : GNTPIN_devw_inc)) >>> 0;
      mf &= ~GntMap.device_map;
      lgt.maptrackRefAndFlags[handle] = (ref << MAPTRACK_REF_SHIFT) | mf;
    }
    clearDevBusAddr = true;
  }

  const va = op.hostVirtAddr >>> 0;
  if (va !== 0 && mf & GntMap.host_map && (rgt.pin[ref] & GNTPIN_host) !== 0) {
    ptwrFlushAll(hv, ld);
    const ma = linearPteMa(hv, v, va);
    // The entry must be this mapping: present, on the frame, writable exactly when the
    // mapping is. Xen of the time compared the frame alone, so a guest could name a
    // non-present entry it had written with that frame number and leave the real mapping in
    // place without the pin that pays for it (the page-table fuzzer's find; DEVIATIONS.md).
    const pte = ma < 0 ? 0 : hv.read32(ma);
    if (ma < 0 || (pte & _PAGE_PRESENT) === 0 || pte >>> 12 !== frame || ((pte & _PAGE_RW) === 0) !== ro)
      return done(-EINVAL);
    // Cleared directly: the entry held no reference of its own, the pin did.
    hv.write32(ma, 0);
    mf &= ~GntMap.host_map;
    rgt.pin[ref] = (rgt.pin[ref] - (ro ? GNTPIN_hstr_inc : GNTPIN_hstw_inc)) >>> 0;
    status = GntStMar.okay;
  }

  if ((mf & (GntMap.device_map | GntMap.host_map)) === 0) putMaptrackHandle(lgt, handle);
  else lgt.maptrackRefAndFlags[handle] = (ref << MAPTRACK_REF_SHIFT) | mf;
  dropActiveRefs(hv, rgt, ref);
  return done(status);
}

// ------------------------------------------------------------------ implicit unmapping

/**
 * gnttab_check_unmap (semantics.md §6.3): a PTE of `mapper` onto `owner`'s frame is going
 * away. If one of mapper's host maps of owner's grants covers it (a read-only PTE matches any
 * map, a writable PTE only writable ones), that map's host pin is dropped and true returned.
 * Unlike Xen we also require the map to be a host map of `owner` (Xen matched a device-only
 * map, or another grantor's, and then released the wrong pin), and a read-only PTE takes a
 * read-only map first: Xen took the first match, so tearing down the read-only one of two
 * mappings of a frame could drop the writable map's pin while its writable PTE stayed
 * (docs/DEVIATIONS.md).
 */
export function gnttabCheckUnmap(
  hv: Hypervisor,
  owner: number,
  mapper: number,
  mfn: number,
  readonly: boolean,
): boolean {
  const ld = hv.domains.get(mapper);
  const lgt = ld && tables.get(ld);
  if (lgt === undefined || lgt.mapCount === 0) return false;
  const rd = hv.domains.get(owner);
  const rgt = rd && tables.get(rd);
  if (rd === undefined || rgt === undefined) return false;
  // A map of the PTE's own kind first; a read-only PTE then takes a writable map.
  for (const wantRo of readonly ? [true, false] : [false])
    for (let h = 0; h < NR_MAPTRACK_ENTRIES; h++) {
      const rf = lgt.maptrackRefAndFlags[h];
      let mf = rf & MAPTRACK_GNTMAP_MASK;
      if ((mf & GntMap.host_map) === 0 || lgt.maptrackDomid[h] !== owner) continue;
      const ro = (mf & GntMap.readonly) !== 0;
      if (ro !== wantRo) continue;
      const ref = rf >>> MAPTRACK_REF_SHIFT;
      if (rgt.pin[ref] === 0 || rgt.actFrame[ref] !== mfn) continue;
      if ((rgt.pin[ref] & (ro ? GNTPIN_hstr_mask : GNTPIN_hstw_mask)) === 0) continue;
      rgt.pin[ref] = (rgt.pin[ref] - (ro ? GNTPIN_hstr_inc : GNTPIN_hstw_inc)) >>> 0;
      mf &= ~GntMap.host_map;
      if ((mf & GntMap.device_map) === 0) putMaptrackHandle(lgt, h);
      else lgt.maptrackRefAndFlags[h] = (ref << MAPTRACK_REF_SHIFT) | mf;
      dropActiveRefs(hv, rgt, ref);
      return true;
    }
  return false;
}

// ------------------------------------------------------------------ page transfer

/**
 * gnttab_prepare_for_transfer (MMUEXT_TRANSFER_PAGE, semantics.md §1.8): the receiver's entry
 * `ref` must be exactly GTF_accept_transfer for the sender; Xen then sets
 * GTF_transfer_committed.
 */
export function gnttabPrepareForTransfer(
  hv: Hypervisor,
  receiver: number,
  sender: number,
  ref: number,
): boolean {
  const rd = hv.domains.get(receiver);
  const rgt = rd && tables.get(rd);
  if (rgt === undefined || ref >= rgt.entries) return false;
  if (sharedFlags(hv, rgt, ref) !== Gtf.accept_transfer || sharedDomid(hv, rgt, ref) !== sender) return false;
  setSharedFlags(hv, rgt, ref, Gtf.transfer_committed, 0);
  return true;
}

/**
 * gnttab_notify_transfer: the received frame's number (the MFN: guests are not translated)
 * goes into the entry, then GTF_transfer_completed is set. Xen of March 2005 never set that
 * flag although its header promised it [QUIRK]; Xen set it from 2005-04-04 on, and so do we
 * (docs/DEVIATIONS.md).
 */
export function gnttabNotifyTransfer(hv: Hypervisor, receiver: number, ref: number, mfn: number): void {
  const rd = hv.domains.get(receiver);
  const rgt = rd && tables.get(rd);
  if (rgt === undefined || ref >= rgt.entries) return;
  hv.write32(rgt.entryMa(ref, GrantEntry.frame), mfn);
  setSharedFlags(hv, rgt, ref, Gtf.transfer_completed, 0);
}

// ------------------------------------------------------------------ setup and dump

export interface SetupResult {
  /** undefined: nothing is written (nr_frames == 0 on a valid domain, MAR). */
  status: number | undefined;
  /** The first frame (0 unless okay). */
  frame: number;
  /** The nr_frames frames for frame_list (empty unless okay). */
  frames?: number[];
}

/**
 * gnttab_setup_table (semantics.md §6.2): up to the caller's revision's table size (MAR one
 * frame, JUL four); another domain needs privilege. A JUL caller asking for more frames than
 * a MAR domain's table has gets GNTST_general_error.
 */
export function setupTable(hv: Hypervisor, v: Vcpu, dom: number, nrFrames: number): SetupResult {
  const fail = (status: number | undefined): SetupResult => ({ status, frame: 0 });
  const g = v.domain.abi.grant;
  if (nrFrames > g.frames) return fail(GntStMar.general_error);
  let id = dom;
  if (dom === DomId.SELF) id = v.domain.id;
  else if (!v.domain.privileged) return fail(GntStMar.permission_denied);
  const d = hv.domains.get(id);
  const gt = d && tables.get(d);
  if (gt === undefined) return fail(GntStMar.bad_domain);
  if (nrFrames > gt.sharedMfns.length) return fail(GntStMar.general_error);
  if (nrFrames === 0)
    return g.setupZeroFramesOkay ? { status: GntStMar.okay, frame: 0, frames: [] } : fail(undefined);
  const frames = gt.sharedMfns.slice(0, nrFrames);
  return { status: GntStMar.okay, frame: frames[0], frames };
}

/**
 * gnttab_dump_table: the active, shared and maptrack tables of any domain (no privilege check
 * at MAR) as text for the hypervisor log; GNTST_bad_domain for an unknown domain.
 */
export function dumpTable(hv: Hypervisor, v: Vcpu, dom: number): { status: number; text: string } {
  const id = dom === DomId.SELF ? v.domain.id : dom;
  const d = hv.domains.get(id);
  const gt = d && tables.get(d);
  if (gt === undefined) return { status: GntStMar.bad_domain, text: "" };
  const lines = [`grant table for dom ${id}: shared frame ${gt.sharedMfn}, map_count ${gt.mapCount}`];
  for (let ref = 0; ref < gt.entries; ref++) {
    const f = sharedFlags(hv, gt, ref);
    const p = gt.pin[ref];
    if (f === 0 && p === 0) continue;
    lines.push(
      `  ref ${ref}: shared flags 0x${f.toString(16)} domid ${sharedDomid(hv, gt, ref)} frame 0x${sharedFrame(hv, gt, ref).toString(16)}` +
        (p
          ? `; active pin 0x${p.toString(16)} domid ${gt.actDomid[ref]} frame 0x${gt.actFrame[ref].toString(16)}`
          : ""),
    );
  }
  for (let h = 0; h < NR_MAPTRACK_ENTRIES; h++) {
    const rf = gt.maptrackRefAndFlags[h];
    if ((rf & MAPTRACK_GNTMAP_MASK) === 0) continue;
    lines.push(
      `  handle ${h}: dom ${gt.maptrackDomid[h]} ref ${rf >>> MAPTRACK_REF_SHIFT} flags ${rf & MAPTRACK_GNTMAP_MASK}`,
    );
  }
  return { status: GntStMar.okay, text: lines.join("\n") };
}

// ------------------------------------------------------------------ the hypercall

/**
 * grant_table_op(cmd, uop, count) (hypercall 20, semantics.md §6.2): map and unmap report per
 * entry in the structs and return 0; afterwards one successful entry invalidates its VA, more
 * flush the TLB. Xen's -EFAULT for a bad map/unmap array returned with the domain's big lock
 * held [QUIRK]; there is no such lock here, so the domain carries on (docs/DEVIATIONS.md).
 * Struct layouts and GNTST_* numbering follow the domain's interface revision
 * (`v.domain.abi.grant`), and so do the table's size (MAR one page of 512 entries, JUL four
 * pages of 2048), setup_table's frame count, unmap's GNTUNMAP_DEV_FROM_VIRT and whether
 * dump_table exists (JUL: -ENOSYS, Xen built it only with GRANT_DEBUG).
 */
export function doGrantTableOp(hv: Hypervisor, v: Vcpu, cmd: number, uop: number, count: number): number {
  if (count >>> 0 > GNTTABOP_MAX_COUNT_MAR) return -EINVAL;
  switch (cmd >>> 0) {
    case GnttabOp.map_grant_ref:
      if (!arrayAccessOk(uop, count, v.domain.abi.grant.mapGrantRef.SIZE)) return -EFAULT;
      return mapBatch(hv, v, uop, count);
    case GnttabOp.unmap_grant_ref:
      if (!arrayAccessOk(uop, count, v.domain.abi.grant.unmapGrantRef.SIZE)) return -EFAULT;
      return unmapBatch(hv, v, uop, count);
    case GnttabOp.setup_table:
      return setupTableOp(hv, v, uop, count);
    case GnttabOp.dump_table:
      if (!v.domain.abi.grant.dumpTable) return -ENOSYS;
      return dumpTableOp(hv, v, uop);
    default:
      return -ENOSYS;
  }
}

function flushAfterBatch(hv: Hypervisor, succeeded: number, va: number): void {
  if (succeeded === 1) hv.cpu.invlpg(va);
  else if (succeeded > 1) hv.cpu.flushTlb();
}

function mapBatch(hv: Hypervisor, v: Vcpu, uop: number, count: number): number {
  const S = v.domain.abi.grant.mapGrantRef;
  let succeeded = 0;
  let lastVa = 0;
  for (let i = 0; i < count; i++) {
    const at = (uop + i * S.SIZE) >>> 0;
    const raw = hv.guest.copyFrom(at, S.SIZE);
    if (raw === null) continue; // Xen: fault reading the entry, nothing written back
    const dv = new DataView(raw.buffer);
    const hostVirtAddr = dv.getUint32(S.host_virt_addr, true);
    const r = mapGrantRef(hv, v, {
      hostVirtAddr,
      dom: dv.getUint16(S.dom, true),
      ref: dv.getUint16(S.ref, true),
      flags: dv.getUint16(S.flags, true),
    });
    const flags = dv.getUint16(S.flags, true);
    if (r.handle >= 0) {
      succeeded++;
      lastVa = hostVirtAddr;
      if (flags & GntMap.device_map) hv.guest.write32((at + S.dev_bus_addr) >>> 0, r.frame);
    }
    writeS16(hv, (at + S.handle) >>> 0, guestStatus(v, r.handle));
  }
  flushAfterBatch(hv, succeeded, lastVa);
  return 0;
}

function unmapBatch(hv: Hypervisor, v: Vcpu, uop: number, count: number): number {
  const S = v.domain.abi.grant.unmapGrantRef;
  let succeeded = 0;
  let lastVa = 0;
  for (let i = 0; i < count; i++) {
    const at = (uop + i * S.SIZE) >>> 0;
    const raw = hv.guest.copyFrom(at, S.SIZE);
    if (raw === null) continue;
    const dv = new DataView(raw.buffer);
    const hostVirtAddr = dv.getUint32(S.host_virt_addr, true);
    const r = unmapGrantRef(hv, v, {
      hostVirtAddr,
      devBusAddr: dv.getUint32(S.dev_bus_addr, true),
      handle: dv.getUint16(S.handle, true),
    });
    if (r.clearDevBusAddr) hv.guest.write32((at + S.dev_bus_addr) >>> 0, 0);
    if (r.status === GntStMar.okay) {
      succeeded++;
      lastVa = hostVirtAddr;
    }
    writeS16(hv, (at + S.status) >>> 0, guestStatus(v, r.status));
  }
  flushAfterBatch(hv, succeeded, lastVa);
  return 0;
}

function setupTableOp(hv: Hypervisor, v: Vcpu, uop: number, count: number): number {
  const S = v.domain.abi.grant.setupTable;
  if (count !== 1) return -EINVAL;
  const raw = hv.guest.copyFrom(uop, S.SIZE);
  if (raw === null) return -EFAULT;
  const dv = new DataView(raw.buffer);
  const r = setupTable(hv, v, dv.getUint16(S.dom, true), dv.getUint16(S.nr_frames, true));
  // Xen's put_user results are ignored: a bad status or frame_list pointer is not an error.
  if (r.status !== undefined) writeS16(hv, (uop + S.status) >>> 0, guestStatus(v, r.status));
  if (r.status === GntStMar.okay) {
    const list = dv.getUint32(S.frame_list, true);
    const frames = r.frames ?? [r.frame];
    for (let i = 0; i < frames.length; i++) hv.guest.write32((list + i * 4) >>> 0, frames[i]);
  }
  return 0;
}

function dumpTableOp(hv: Hypervisor, v: Vcpu, uop: number): number {
  const S = GnttabDumpTable;
  const raw = hv.guest.copyFrom(uop, S.SIZE);
  if (raw === null) return -EFAULT;
  const r = dumpTable(hv, v, new DataView(raw.buffer).getUint16(S.dom, true));
  if (r.text) hv.log(r.text);
  writeS16(hv, (uop + S.status) >>> 0, guestStatus(v, r.status));
  return 0;
}

/**
 * The sub-ops speak MAR's GNTST_* codes; a July 2005 guest sees its renumbered set (abi.md
 * §2.9.1: bad_dev_addr inserted at -6). Handles, 1 and -EINVAL pass through.
 */
function guestStatus(v: Vcpu, status: number): number {
  const codes = v.domain.abi.grant.status;
  if (status === GntStMar.no_device_space) return codes.no_device_space;
  if (status === GntStMar.permission_denied) return codes.permission_denied;
  if (status === GNTST_BAD_DEV_ADDR)
    return "bad_dev_addr" in codes ? codes.bad_dev_addr : GntStMar.general_error;
  return status;
}

function writeS16(hv: Hypervisor, va: number, value: number): void {
  hv.guest.copyTo(va, new Uint8Array([value & 0xff, (value >>> 8) & 0xff]));
}

// ------------------------------------------------------------------ invariants

/**
 * What the grant tables hold, for the invariant checker: per active entry its general (and,
 * while writable pins exist, writable type) reference on the frame; per mapping domain the
 * host maps it may have PTEs for; and any internal inconsistency as a message.
 */
export interface GrantAccounting {
  /** Calls ref(frame, withType) for every reference the active entries hold. */
  references: Array<{ frame: number; withType: boolean }>;
  /** mapper domid -> frame -> host maps (rw: writable ones, all: any mode). */
  hostMaps: Map<number, Map<number, { rw: number; all: number }>>;
  problems: string[];
}

export function grantAccounting(hv: Hypervisor): GrantAccounting {
  const out: GrantAccounting = { references: [], hostMaps: new Map(), problems: [] };
  // Pins each mapper's maptrack accounts for, per (grantor, ref).
  const expected = new Map<string, number>();
  for (const ld of hv.domains.values()) {
    const lgt = tables.get(ld);
    if (!lgt) continue;
    let inUse = 0;
    for (let h = 0; h < NR_MAPTRACK_ENTRIES; h++) {
      const rf = lgt.maptrackRefAndFlags[h];
      const mf = rf & MAPTRACK_GNTMAP_MASK;
      if (mf === 0) continue;
      inUse++;
      if ((mf & (GntMap.device_map | GntMap.host_map)) === 0) {
        out.problems.push(`dom ${ld.id} maptrack handle ${h} in use with neither device nor host map`);
        continue;
      }
      const ref = rf >>> MAPTRACK_REF_SHIFT;
      const dom = lgt.maptrackDomid[h];
      const key = `${dom}:${ref}`;
      expected.set(key, ((expected.get(key) ?? 0) + pinIncrement(mf)) >>> 0);
      const rd = hv.domains.get(dom);
      const rgt = rd && tables.get(rd);
      if (!rgt) {
        out.problems.push(`dom ${ld.id} maptrack handle ${h} maps a grant of unknown domain ${dom}`);
        continue;
      }
      if (mf & GntMap.host_map) {
        const frame = rgt.actFrame[ref];
        let perFrame = out.hostMaps.get(ld.id);
        if (!perFrame) out.hostMaps.set(ld.id, (perFrame = new Map()));
        const c = perFrame.get(frame) ?? { rw: 0, all: 0 };
        c.all++;
        if ((mf & GntMap.readonly) === 0) c.rw++;
        perFrame.set(frame, c);
      }
    }
    if (inUse !== lgt.mapCount)
      out.problems.push(`dom ${ld.id} map_count ${lgt.mapCount} but ${inUse} handles in use`);
  }
  for (const rd of hv.domains.values()) {
    const rgt = tables.get(rd);
    if (!rgt) continue;
    for (let ref = 0; ref < rgt.entries; ref++) {
      const pin = rgt.pin[ref];
      const want = expected.get(`${rd.id}:${ref}`) ?? 0;
      if (pin !== want)
        out.problems.push(
          `dom ${rd.id} grant ref ${ref}: pin 0x${pin.toString(16)} but maptrack accounts for 0x${want.toString(16)}`,
        );
      const refs = rgt.actRefs[ref];
      if ((pin !== 0) !== ((refs & ACT_PAGE_REF) !== 0))
        out.problems.push(
          `dom ${rd.id} grant ref ${ref}: pin 0x${pin.toString(16)} with general reference ${refs & ACT_PAGE_REF ? "held" : "not held"}`,
        );
      if (((pin & GNTPIN_writable) !== 0) !== ((refs & ACT_TYPE_REF) !== 0))
        out.problems.push(
          `dom ${rd.id} grant ref ${ref}: pin 0x${pin.toString(16)} with writable type reference ${refs & ACT_TYPE_REF ? "held" : "not held"}`,
        );
      if (refs & ACT_PAGE_REF) {
        out.references.push({ frame: rgt.actFrame[ref], withType: (refs & ACT_TYPE_REF) !== 0 });
        if (hv.frames.owner[rgt.actFrame[ref]] !== rd.id)
          out.problems.push(
            `dom ${rd.id} grant ref ${ref}: active frame ${rgt.actFrame[ref]} owned by ${hv.frames.owner[rgt.actFrame[ref]]}`,
          );
      }
    }
  }
  return out;
}

/**
 * For the invariant checker: a PTE of `mapper` onto foreign `frame` is a grant host mapping if
 * one of mapper's host maps of that frame is still unclaimed (a writable PTE needs a writable
 * map); claims it and returns true.
 */
export function claimGrantHostMap(g: GrantAccounting, mapper: number, frame: number, rw: boolean): boolean {
  const c = g.hostMaps.get(mapper)?.get(frame);
  if (c === undefined || c.all === 0) return false;
  if (rw) {
    if (c.rw === 0) return false;
    c.rw--;
  } else if (c.all === c.rw) {
    c.rw--;
  }
  c.all--;
  return true;
}
