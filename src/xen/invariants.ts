/**
 * The memory invariants of semantics.md §1, recomputed from scratch: every frame's general and
 * type counts equal the references its holders account for, page tables are never writable,
 * domains map only their own frames, and every validated L2 carries Xen's slots. For tests
 * (after every hypercall) and debugging; returns one line per violation, empty when clean.
 */
import {
  _PAGE_ACCESSED,
  _PAGE_DIRTY,
  _PAGE_PRESENT,
  _PAGE_RW,
  L1_DISALLOW_MASK,
  L2_DISALLOW_MASK,
  ROOT_PAGETABLE_FIRST_XEN_SLOT,
} from "../public/arch_x86_32.js";
import { DomId } from "../public/xen.js";
import {
  NO_OWNER,
  PGT_count_mask,
  PGT_gdt_page,
  PGT_l1_page_table,
  PGT_l2_page_table,
  PGT_ldt_page,
  PGT_pinned,
  PGT_type_mask,
  PGT_validated,
  PGT_writable_page,
} from "./frame_table.js";
import { claimGrantHostMap, grantAccounting } from "./grant_table.js";
import type { Hypervisor } from "./hypervisor.js";
import { LINEAR_PT_SLOT, PERDOMAIN_SLOT } from "./mm.js";
import { PTWR_PT_ACTIVE } from "./ptwr.js";

/** Per-domain PTEs of one vcpu in the per-domain L1: 16 GDT frames then 16 shadow-LDT frames. */
const PERDOMAIN_PTES_PER_VCPU = 32;
const AD = _PAGE_ACCESSED | _PAGE_DIRTY;

const TYPE_NAMES: Record<number, string> = {
  0: "none",
  [PGT_l1_page_table >>> 29]: "L1",
  [PGT_l2_page_table >>> 29]: "L2",
  [PGT_gdt_page >>> 29]: "GDT",
  [PGT_ldt_page >>> 29]: "LDT",
  [PGT_writable_page >>> 29]: "writable",
};

/**
 * A broken frame-table invariant found after a guest hypercall (hv.checkInvariantsAfterHypercall):
 * a hypervisor bug, so the run loop rethrows it instead of crashing the domain.
 */
export class InvariantError extends Error {
  override name = "InvariantError";
}

export function checkInvariants(hv: Hypervisor): string[] {
  const ft = hv.frames;
  const n = ft.nrFrames;
  const out: string[] = [];
  const general = new Int32Array(n);
  const typed = new Int32Array(n);
  const writableMapped = new Uint8Array(n);
  const read = (ma: number): number => hv.mem.read32(ma) >>> 0;
  const typeName = (f: number): string => TYPE_NAMES[(ft.typeInfo[f] & PGT_type_mask) >>> 29] ?? "?";
  const ref = (f: number, withType: boolean): void => {
    if (f < 0 || f >= n) return;
    general[f]++;
    if (withType) typed[f]++;
  };

  // Writable page-table state: an L1 in a ptwr slot is accounted by its snapshot, the PTE that
  // maps it writable counts as the read-only mapping it was, an unhooked L2 entry as present.
  const snapshotOf = new Map<number, Uint32Array>();
  const aliasPte = new Set<number>();
  const unhookedPde = new Set<number>();
  hv.ptwr.slots.forEach((s, which) => {
    if (s.l1va === 0) return;
    snapshotOf.set(s.l1Mfn, s.snapshot);
    aliasPte.add(s.pteMa);
    if (which === PTWR_PT_ACTIVE) unhookedPde.add(s.pdeMa);
  });

  windowChecks(hv, out);

  // Grant tables: active entries hold references; their host maps make foreign PTEs legitimate.
  const grants = grantAccounting(hv);
  for (const g of grants.references) ref(g.frame, g.withType);
  out.push(...grants.problems);

  for (let f = 0; f < n; f++) {
    const ti = ft.typeInfo[f];
    if (ft.count[f] === 0) continue;
    const type = ti & PGT_type_mask;
    if ((ti & PGT_validated) === 0 || (type !== PGT_l1_page_table && type !== PGT_l2_page_table)) continue;
    const owner = ft.owner[f];
    const ownerPriv = hv.domains.get(owner)?.privileged ?? false;
    if (type === PGT_l1_page_table) {
      const snap = snapshotOf.get(f);
      for (let i = 0; i < 1024; i++) {
        const ma = f * 4096 + i * 4;
        let e = snap ? snap[i] : read(ma);
        if ((e & _PAGE_PRESENT) === 0) continue;
        if (aliasPte.has(ma)) e &= ~_PAGE_RW;
        if (e & L1_DISALLOW_MASK) out.push(`L1 ${f}[${i}] = 0x${e.toString(16)} has disallowed bits`);
        const t = e >>> 12;
        if (!ft.isRam(t)) continue;
        const rw = (e & _PAGE_RW) !== 0;
        if (rw) writableMapped[t] = 1;
        // A grant host mapping holds no reference itself: the grant's pin does (§6.2).
        if (ft.owner[t] !== owner && claimGrantHostMap(grants, owner, t, rw)) continue;
        ref(t, rw);
        if (ft.owner[t] !== owner && !ownerPriv) {
          out.push(`L1 ${f} of domain ${owner} maps frame ${t} owned by ${ft.owner[t]} (entry ${i})`);
        }
      }
    } else {
      for (let i = 0; i < ROOT_PAGETABLE_FIRST_XEN_SLOT; i++) {
        const ma = f * 4096 + i * 4;
        let e = read(ma);
        if (unhookedPde.has(ma)) e |= _PAGE_PRESENT;
        if ((e & _PAGE_PRESENT) === 0) continue;
        if (e & L2_DISALLOW_MASK) out.push(`L2 ${f}[${i}] = 0x${e.toString(16)} has disallowed bits`);
        const t = e >>> 12;
        if (t === f) {
          if (e & _PAGE_RW) out.push(`L2 ${f} maps itself writable at slot ${i}`);
          continue;
        }
        ref(t, true);
        const tt = ft.typeInfo[t] & PGT_type_mask;
        if (tt !== PGT_l1_page_table && !(tt === PGT_l2_page_table && (e & _PAGE_RW) === 0)) {
          out.push(`L2 ${f}[${i}] maps frame ${t} of type ${typeName(t)}${e & _PAGE_RW ? " writable" : ""}`);
        }
        if (ft.owner[t] !== owner)
          out.push(`L2 ${f} of domain ${owner} maps frame ${t} owned by ${ft.owner[t]}`);
      }
      xenSlots(hv, f, owner, out);
    }
    if (ti & PGT_pinned) ref(f, true);
  }
  // Pinned frames that are not validated page tables (none should exist) still hold a pin.
  for (let f = 0; f < n; f++) {
    const ti = ft.typeInfo[f];
    const t = ti & PGT_type_mask;
    if (
      ti & PGT_pinned &&
      !((ti & PGT_validated) !== 0 && (t === PGT_l1_page_table || t === PGT_l2_page_table))
    ) {
      out.push(`frame ${f} is pinned but not a validated page table (type ${typeName(f)})`);
      ref(f, true);
    }
  }

  for (const d of hv.domains.values()) {
    for (const v of d.vcpus) {
      if (v.baseMfn === 0) continue;
      ref(v.baseMfn, true);
      if (
        (ft.typeInfo[v.baseMfn] & (PGT_type_mask | PGT_validated)) !==
        (PGT_l2_page_table | PGT_validated)
      ) {
        out.push(`vcpu ${d.id}.${v.id} base pointer ${v.baseMfn} is not a validated L2`);
      }
      // GDT frames and shadow-LDT pages in the per-domain area hold a reference each (the
      // default GDT is Xen's own frame and holds none).
      if (d.perdomainMfn < 0) continue;
      for (let i = 0; i < PERDOMAIN_PTES_PER_VCPU; i++) {
        const e = read(d.perdomainMfn * 4096 + (v.id * PERDOMAIN_PTES_PER_VCPU + i) * 4);
        if ((e & _PAGE_PRESENT) === 0) continue;
        const t = e >>> 12;
        if (t >= n || ft.owner[t] === DomId.XEN) continue;
        ref(t, true);
        const want = i < 16 ? PGT_gdt_page : PGT_ldt_page;
        if ((ft.typeInfo[t] & PGT_type_mask) !== want) {
          out.push(`vcpu ${d.id}.${v.id} per-domain entry ${i} maps frame ${t} of type ${typeName(t)}`);
        }
      }
    }
    for (const f of d.pages) {
      if (ft.owner[f] !== d.id || ft.count[f] === 0)
        out.push(`frame ${f} on domain ${d.id}'s list is owned by ${ft.owner[f]} with count ${ft.count[f]}`);
    }
    // tot_pages may exceed max_pages: lowering the limit (SETDOMAINMAXMEM) only stops
    // further allocations, as in Xen.
  }

  for (let f = 0; f < n; f++) {
    const owner = ft.owner[f];
    const ti = ft.typeInfo[f];
    if (ft.count[f] === 0) {
      if (owner !== NO_OWNER || ti !== 0 || general[f] !== 0) {
        out.push(
          `free frame ${f}: owner ${owner}, type_info 0x${(ti >>> 0).toString(16)}, ${general[f]} references held`,
        );
      }
      continue;
    }
    // Xen-heap frames (Xen's own, or shared with a domain) are created with their type count
    // already taken (shared_info writable, M2P frames GDT-typed) and that count is never put.
    const d = hv.domains.get(owner);
    const xenHeap = owner === DomId.XEN || (d !== undefined && !d.pages.has(f));
    const baseType = xenHeap && (ti & PGT_type_mask) !== 0 ? 1 : 0;
    const wantCount = ft.allocated[f] + general[f];
    if (ft.count[f] !== wantCount) {
      out.push(
        `frame ${f} (owner ${owner}, ${typeName(f)}): count ${ft.count[f]} but ${wantCount} references held`,
      );
    }
    const tc = ti & PGT_count_mask;
    if (tc !== typed[f] + baseType) {
      out.push(
        `frame ${f} (owner ${owner}, ${typeName(f)}): type count ${tc} but ${typed[f] + baseType} type references held`,
      );
    }
    const type = ti & PGT_type_mask;
    if (tc > 0 && (ti & PGT_validated) === 0)
      out.push(`frame ${f}: type ${typeName(f)} in use but not validated`);
    if (writableMapped[f] && type !== PGT_writable_page) {
      out.push(`frame ${f} is mapped writable but typed ${typeName(f)}`);
    }
    if (owner !== DomId.XEN && owner !== DomId.IO && d === undefined)
      out.push(`frame ${f} is owned by unknown domain ${owner}`);
  }
  return out;
}

/** Slots 1008..1023 of a validated L2: the M2P, the L2 itself at 1019, the per-domain L1. */
function xenSlots(hv: Hypervisor, f: number, owner: number, out: string[]): void {
  const want = (slot: number): number => {
    switch (slot) {
      case ROOT_PAGETABLE_FIRST_XEN_SLOT:
        return (hv.m2pL1Frame() * 4096) | _PAGE_PRESENT | AD;
      case LINEAR_PT_SLOT:
        return (f * 4096) | _PAGE_PRESENT | _PAGE_RW | AD;
      case PERDOMAIN_SLOT:
        return (hv.perdomainFrame(owner) * 4096) | _PAGE_PRESENT | _PAGE_RW | AD;
      default:
        return 0;
    }
  };
  for (let i = ROOT_PAGETABLE_FIRST_XEN_SLOT; i < 1024; i++) {
    const got = hv.mem.read32(f * 4096 + i * 4) >>> 0;
    if ((got | AD) >>> 0 !== (want(i) | AD) >>> 0 && !(got === 0 && want(i) === 0)) {
      out.push(`L2 ${f}: Xen slot ${i} is 0x${got.toString(16)}, want 0x${(want(i) >>> 0).toString(16)}`);
    }
  }
}

/**
 * A writable window's entries are unchecked until its flush, so the snapshot may stand in for
 * them only while no hardware walk can reach them: no loaded base pointer (the CPU's CR3, any
 * vcpu's base) may hook the L1 present. The slot's own frames must still be what it recorded:
 * the L1, the L1 holding its RW alias and (ACTIVE) the L2 holding the unhooked entry, all
 * validated tables of the slot's domain.
 */
function windowChecks(hv: Hypervisor, out: string[]): void {
  const ft = hv.frames;
  const bases = new Map<number, string>();
  const cr3 = hv.cpu.cr3 >>> 12;
  if (hv.current && cr3 !== 0)
    bases.set(cr3, `the CPU's CR3 (vcpu ${hv.current.domain.id}.${hv.current.id})`);
  for (const d of hv.domains.values())
    for (const v of d.vcpus) if (v.baseMfn !== 0) bases.set(v.baseMfn, `vcpu ${d.id}.${v.id}'s base`);
  hv.ptwr.slots.forEach((s, which) => {
    if (s.l1va === 0 || s.vcpu === null) return;
    const dom = s.vcpu.domain.id;
    const table = (mfn: number, type: number, what: string): void => {
      const ti = ft.typeInfo[mfn];
      if (
        mfn >= ft.nrFrames ||
        ft.owner[mfn] !== dom ||
        (ti & (PGT_type_mask | PGT_validated)) !== (type | PGT_validated) ||
        (ti & PGT_count_mask) === 0
      )
        out.push(`writable window ${which}: ${what} ${mfn} is not a validated table of domain ${dom}`);
    };
    table(s.l1Mfn, PGT_l1_page_table, "L1");
    table(s.pteMa >>> 12, PGT_l1_page_table, "the L1 holding its alias PTE,");
    if (which === PTWR_PT_ACTIVE)
      table(s.pdeMa >>> 12, PGT_l2_page_table, "the L2 holding its unhooked entry,");
    for (const [l2, who] of bases) {
      for (let i = 0; i < ROOT_PAGETABLE_FIRST_XEN_SLOT; i++) {
        const e = hv.mem.read32(l2 * 4096 + i * 4) >>> 0;
        if ((e & _PAGE_PRESENT) === 0 || e >>> 12 !== s.l1Mfn) continue;
        for (let k = 0; k < 1024; k++) {
          const cur = hv.mem.read32(s.l1Mfn * 4096 + k * 4) >>> 0;
          if (((cur ^ s.snapshot[k]) & ~AD) === 0) continue;
          out.push(
            `L1 ${s.l1Mfn} in a writable window is live in ${who} (L2 ${l2} slot ${i}) with unchecked entry ${k} = 0x${cur.toString(16)}`,
          );
          return;
        }
      }
    }
  });
}
