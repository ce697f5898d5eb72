/**
 * Writable page tables (VMASST_TYPE_writable_pagetables, semantics.md §2): a guest store into
 * one of its own read-only-mapped L1 pages is let through by making the page writable for a
 * while (unhooking it from the current L2 when it is live there), and the table is checked
 * against a snapshot when the hypervisor next needs it consistent. Awkward cases get the single
 * store emulated and checked instead.
 */
import { CpuContext } from "../cpu/context.js";
import { Exit } from "../cpu/regs.js";
import { _PAGE_ACCESSED, _PAGE_DIRTY, _PAGE_PRESENT, _PAGE_RW, PAGE_OFFSET } from "../public/arch_x86_32.js";
import { VmAssistType } from "../public/xen.js";
import type { Domain, Vcpu } from "./domain.js";
import {
  PGT_count_mask,
  PGT_l1_page_table,
  PGT_type_mask,
  PGT_va_mask,
  PGT_va_shift,
  PGT_va_unknown,
} from "./frame_table.js";
import type { Hypervisor } from "./hypervisor.js";

const AD = _PAGE_ACCESSED | _PAGE_DIRTY;

export const PTWR_PT_ACTIVE = 0;
export const PTWR_PT_INACTIVE = 1;

/** One of the two per-CPU slots: an L1 page currently writable by the guest. */
export class PtwrSlot {
  /** The faulting VA with bit 0 set; 0 = slot empty. */
  l1va = 0;
  /** The L2 slot the L1 is hooked at. */
  l2Idx = 0;
  l1Mfn = 0;
  /** Machine address of the PTE that maps the L1 page at l1va (made RW while in the slot). */
  pteMa = 0;
  /** Machine address of the current L2's entry at l2Idx (PRESENT cleared while ACTIVE). */
  pdeMa = 0;
  vcpu: Vcpu | null = null;
  /** The L1's entries when it was made writable: they hold the references until the flush. */
  readonly snapshot = new Uint32Array(1024);
  /** The same words as int32, for the flush's scan against guest RAM's Int32Array. */
  readonly snap32 = new Int32Array(this.snapshot.buffer);
  /** Statistics of the last flush, for the livelock guard. */
  prevVcpu: Vcpu | null = null;
  prevNrUpdates = 0;
}

export class PtwrInfo {
  readonly slots: readonly [PtwrSlot, PtwrSlot] = [new PtwrSlot(), new PtwrSlot()];
}

/**
 * The L1 frame pfn's 1,024 entries as a view on guest RAM (the snapshot and the flush's
 * comparison read them all: a view instead of 1,024 physRead32 calls each), or null when the
 * frame is not wholly in RAM (then hv.read32 reads it, as it reads anything).
 */
function frameWords(hv: Hypervisor, pfn: number): Int32Array | null {
  const cpu = hv.cpu;
  return (pfn + 1) * 4096 <= cpu.memSize ? cpu.mem32.subarray(pfn * 1024, pfn * 1024 + 1024) : null;
}

/** A frame not wholly in RAM, read word by word as hv.read32 reads it (ptwrFlush's scan). */
const outsideRam = new Int32Array(1024);

function enabled(d: Domain): boolean {
  return (d.vmAssist & (1 << VmAssistType.writable_pagetables)) !== 0;
}

/**
 * The #PF hook (do_page_fault's first step), called before the fault is reflected: true when
 * the fault was a writable-page-table fault and has been fixed (the instruction restarts).
 */
export function ptwrPageFault(hv: Hypervisor, v: Vcpu): boolean {
  if (!enabled(v.domain)) return false;
  const addr = hv.cpu.exitCr2 >>> 0;
  // Any access into the 4 MiB window of the unhooked L1 reconnects it.
  if (inActiveWindow(hv, v, addr)) {
    ptwrFlush(hv, PTWR_PT_ACTIVE);
    return true;
  }
  if (addr < PAGE_OFFSET && (hv.cpu.exitErrorCode & 3) === 3) return ptwrDoPageFault(hv, v, addr);
  return false;
}

/** Whether ptwrPageFault may take the CPU's #PF (else it returns false, changing nothing). */
export function ptwrMayTakeFault(hv: Hypervisor, v: Vcpu): boolean {
  if (!enabled(v.domain)) return false;
  const addr = hv.cpu.exitCr2 >>> 0;
  return inActiveWindow(hv, v, addr) || (addr < PAGE_OFFSET && (hv.cpu.exitErrorCode & 3) === 3);
}

function inActiveWindow(hv: Hypervisor, v: Vcpu, addr: number): boolean {
  const active = hv.ptwr.slots[PTWR_PT_ACTIVE];
  return active.l1va !== 0 && active.vcpu === v && addr >>> 22 === active.l2Idx;
}

/**
 * Flushes both slots if they hold state of domain d. Every path that loads a page-table base,
 * changes a page's type or count, or frees or moves a frame calls this first (the audit list is
 * in ARCHITECTURE.md): entries a guest stored into a writable window are unchecked until the
 * flush, so nothing may use or tear down that table before it.
 */
export function ptwrFlushAll(hv: Hypervisor, d: Domain): void {
  const [active, inactive] = hv.ptwr.slots;
  if (active.l1va !== 0 && active.vcpu?.domain === d) ptwrFlush(hv, PTWR_PT_ACTIVE);
  if (inactive.l1va !== 0 && inactive.vcpu?.domain === d) ptwrFlush(hv, PTWR_PT_INACTIVE);
}

/**
 * A page table is about to be devalidated (its entries drop their references): a slot whose L1
 * is that table, or whose RW alias PTE or unhooked PDE lives in it, is flushed first, so the
 * teardown sees checked entries and the flush never writes into a frame that has gone. This
 * is the last line of defence below the entry-point flushes of ptwrFlushAll.
 */
export function ptwrBeforeDevalidate(hv: Hypervisor, mfn: number): void {
  hv.ptwr.slots.forEach((s, which) => {
    if (s.l1va === 0) return;
    if (s.l1Mfn === mfn || s.pteMa >>> 12 === mfn || (which === PTWR_PT_ACTIVE && s.pdeMa >>> 12 === mfn))
      ptwrFlush(hv, which);
  });
}

/**
 * Before the hypervisor writes a bounce frame on the guest stack: a stack inside the unhooked
 * window would fault inside Xen, whose page-fault handler flushes ACTIVE and retries; we flush
 * first instead.
 */
export function ptwrBeforeGuestStackWrite(hv: Hypervisor, v: Vcpu, ...stackVas: number[]): void {
  for (const va of stackVas) {
    if (ptwrStackWriteFlushes(hv, v, va)) {
      ptwrFlush(hv, PTWR_PT_ACTIVE);
      return;
    }
  }
}

/** Whether a frame pushed below stack va flushes v's ACTIVE window (ptwrBeforeGuestStackWrite). */
export function ptwrStackWriteFlushes(hv: Hypervisor, v: Vcpu, va: number): boolean {
  const active = hv.ptwr.slots[PTWR_PT_ACTIVE];
  return (
    active.l1va !== 0 && active.vcpu === v && ((va - 1) >>> 22 === active.l2Idx || va >>> 22 === active.l2Idx)
  );
}

/**
 * A hypervisor access to guest va found its L2 entry not present: if that is the unhooked
 * ACTIVE window, reconnect it (Xen's fault-in-copy_from_user path) and say so.
 */
export function ptwrFixupAccess(hv: Hypervisor, va: number): boolean {
  const active = hv.ptwr.slots[PTWR_PT_ACTIVE];
  if (active.l1va === 0 || active.vcpu !== hv.current || va >>> 22 !== active.l2Idx) return false;
  ptwrFlush(hv, PTWR_PT_ACTIVE);
  return true;
}

/** ptwr_do_page_fault: a write to a read-only mapping of one of the domain's own L1 pages. */
function ptwrDoPageFault(hv: Hypervisor, v: Vcpu, addr: number): boolean {
  const d = v.domain;
  const ft = hv.frames;
  const l2 = v.baseMfn * 4096;
  const pde = hv.read32(l2 + (addr >>> 22) * 4);
  if ((pde & _PAGE_PRESENT) === 0) return false;
  const pteMa = (pde & ~0xfff) + ((addr >>> 12) & 1023) * 4;
  if (pteMa >>> 12 >= ft.nrFrames) return false;
  const pte = hv.read32(pteMa);
  const pfn = pte >>> 12;
  if ((pte & (_PAGE_RW | _PAGE_PRESENT)) !== _PAGE_PRESENT || pfn >= ft.nrFrames) return false;
  const ti = ft.typeInfo[pfn];
  if ((ti & PGT_type_mask) !== PGT_l1_page_table || ft.owner[pfn] !== d.id) return false;
  // An L1 with type count 0 is not validated: its entries hold no references to check against
  // (Xen of the time let it through and miscounted; later Xen checks this too, DEVIATIONS.md).
  if ((ti & PGT_count_mask) === 0) return false;

  // Not SMP-safe in Xen; a table hooked at several slots (or not yet) has no single window;
  // a table whose own mapping lives in itself cannot be unhooked.
  if (d.vcpus.length > 1 || (ti & PGT_va_mask) >>> 0 >= PGT_va_unknown >>> 0)
    return emulate(hv, v, addr, pteMa, pte, pfn);
  const l2Idx = (ti & PGT_va_mask) >>> PGT_va_shift;
  if (l2Idx === addr >>> 22) return emulate(hv, v, addr, pteMa, pte, pfn);

  const slots = hv.ptwr.slots;
  const pdeMa = l2 + l2Idx * 4;
  const l2e = hv.read32(pdeMa);
  let which = PTWR_PT_INACTIVE;
  if (l2e >>> 12 === pfn) {
    const act = slots[PTWR_PT_ACTIVE];
    if (l2e & _PAGE_PRESENT || (act.l1va !== 0 && act.l2Idx === l2Idx)) which = PTWR_PT_ACTIVE;
  }
  // The two windows must not overlap: the other slot's RW alias is uncounted, so an L1 that
  // holds it (or one whose alias would live in the other window's L1) would let the guest
  // rewrite that alias and have the flush drop a writable reference nobody took. Flush the
  // other slot and restart the instruction; it faults again with one slot free.
  const other = slots[which ^ 1];
  if (other.l1va !== 0 && (other.pteMa >>> 12 === pfn || pteMa >>> 12 === other.l1Mfn)) {
    ptwrFlush(hv, which ^ 1);
    return true;
  }
  const slot = slots[which];
  if (slot.l1va !== 0) ptwrFlush(hv, which);
  if (!v.domain.runnable) return true; // the flush crashed the domain
  // Livelock guard: the last batch of this vcpu changed nothing; emulate this one store.
  if (slot.prevVcpu === v && slot.prevNrUpdates === 0) {
    slot.prevVcpu = null;
    return emulate(hv, v, addr, pteMa, hv.read32(pteMa), pfn);
  }
  slot.l1va = (addr | 1) >>> 0;
  slot.l2Idx = l2Idx;
  slot.l1Mfn = pfn;
  slot.pteMa = pteMa;
  slot.pdeMa = pdeMa;
  slot.vcpu = v;
  if (which === PTWR_PT_ACTIVE) {
    // Disconnect: visible to the guest, as in Xen. Xen flushes the whole TLB here; only the
    // region's translations go through this L1, so only they must go (a warm fork+exec opens
    // 16 such windows: keeping the rest of the TLB saves 19 % of its page walks).
    hv.write32(pdeMa, hv.read32(pdeMa) & ~_PAGE_PRESENT);
    hv.cpu.invalidateRegion(l2Idx);
  }
  const words = frameWords(hv, pfn);
  // The same words (snap32 is the snapshot's int32 view): a copy, not a conversion.
  if (words !== null) slot.snap32.set(words);
  else for (let i = 0; i < 1024; i++) slot.snapshot[i] = hv.read32(pfn * 4096 + i * 4);
  // The L1 keeps its type and counts; this RW alias is not counted as a writable reference.
  hv.write32(pteMa, hv.read32(pteMa) | _PAGE_RW);
  hv.cpu.invlpg(addr);
  hv.guest.pdeFixup ??= (va) => ptwrFixupAccess(hv, va);
  return true;
}

/** ptwr_flush: write-protect the L1 again and check every entry changed since the snapshot. */
export function ptwrFlush(hv: Hypervisor, which: number): void {
  const slot = hv.ptwr.slots[which];
  const v = slot.vcpu;
  if (slot.l1va === 0 || v === null) return;
  const d = v.domain;
  const mm = hv.mm;
  // 1. Write-protect the page so no more stores can happen.
  hv.write32(slot.pteMa, hv.read32(slot.pteMa) & ~_PAGE_RW);
  if (hv.current === v) hv.cpu.invlpg(slot.l1va & ~1);
  // 2. Validate the modified entries against the snapshot.
  const base = slot.l1Mfn * 4096;
  let words = frameWords(hv, slot.l1Mfn);
  if (words === null) {
    words = outsideRam;
    for (let i = 0; i < 1024; i++) words[i] = hv.read32(base + i * 4);
  }
  // A fork's window changes a few of its 1,024 entries: the scan is one int32 compare each.
  const s32 = slot.snap32;
  let modified = 0;
  for (let i = 0; i < 1024; i++) {
    if (s32[i] === words[i]) continue;
    const o = slot.snapshot[i];
    const n = words[i] >>> 0;
    modified++;
    if (o === (n | _PAGE_RW) >>> 0 && hv.frames.owner[n >>> 12] === d.id) {
      // Only RW was removed from a mapping of the domain's own frame: a strict reduction, drop
      // the writable type reference the entry held. (A foreign frame's entry may be a grant
      // mapping, whose references the grant's pin holds, not the entry: it takes the full
      // path below, where putPageFromL1e knows grants.)
      if (n & _PAGE_PRESENT && hv.frames.isRam(n >>> 12)) mm.putPageType(n >>> 12);
      continue;
    }
    if (!mm.getPageFromL1e(n, d.id, d.id)) {
      // Keep the counts consistent before crashing: the rest of the table goes back as it was.
      for (let k = i; k < 1024; k++) hv.write32(base + k * 4, slot.snapshot[k]);
      hv.crashDomain(
        d,
        `writable page table: entry ${i} of L1 frame ${slot.l1Mfn} (0x${n.toString(16)}) does not validate`,
      );
      break;
    }
    mm.putPageFromL1e(o, d.id);
  }
  slot.prevVcpu = v;
  slot.prevNrUpdates = modified;
  // 3. Reconnect the L1 to the address space it was unhooked from.
  if (which === PTWR_PT_ACTIVE) hv.write32(slot.pdeMa, hv.read32(slot.pdeMa) | _PAGE_PRESENT);
  // 4. Tidy up.
  slot.l1va = 0;
  slot.vcpu = null;
}

/**
 * ptwr_emulated_update for the awkward cases: the faulting store is executed alone with the L1
 * made writable for that one instruction, then every changed entry is checked as Xen's emulator
 * checks its single write. A store that does not validate (or touches more than one entry, or
 * faults) is undone, registers included, and the #PF goes to the guest.
 */
function emulate(hv: Hypervisor, v: Vcpu, addr: number, pteMa: number, pte: number, pfn: number): boolean {
  // A store into an L1 that holds an open window's RW alias could replace that uncounted
  // entry and have its "old" reference put: flush the window first (the alias goes back to
  // the counted read-only entry) and restart the instruction.
  let flushed = false;
  hv.ptwr.slots.forEach((s, which) => {
    if (s.l1va === 0 || s.pteMa >>> 12 !== pfn) return;
    ptwrFlush(hv, which);
    flushed = true;
  });
  if (flushed) return true;
  const cpu = hv.cpu;
  const d = v.domain;
  const base = pfn * 4096;
  const before = new Uint32Array(1024);
  for (let i = 0; i < 1024; i++) before[i] = hv.read32(base + i * 4);
  const saved = new CpuContext();
  saved.save(cpu);
  const fault = { vector: cpu.exitVector, error: cpu.exitErrorCode, cr2: cpu.exitCr2, soft: cpu.exitSoft };
  const retired = cpu.retiredTotal;

  const rwPte = (pte | _PAGE_RW) >>> 0;
  hv.write32(pteMa, rwPte);
  cpu.invlpg(addr);
  const exit = cpu.run(1);
  // The alias goes back to read-only (keeping the accessed/dirty bits the CPU set), unless
  // the store itself rewrote it (it lives in this L1).
  const cur = hv.read32(pteMa);
  if (((cur ^ rwPte) & ~AD) === 0) hv.write32(pteMa, (cur & ~_PAGE_RW) >>> 0);
  cpu.invlpg(addr);

  // Changes of the accessed/dirty bits alone are the CPU's own walk, not the guest's store.
  let changed = -1;
  let ok = exit === Exit.Budget;
  for (let i = 0; ok && i < 1024; i++) {
    if (((hv.read32(base + i * 4) ^ before[i]) & ~AD) === 0) continue;
    if (changed >= 0) ok = false;
    else changed = i;
  }
  if (ok && changed >= 0) {
    const n = hv.read32(base + changed * 4);
    if (hv.mm.getPageFromL1e(n, d.id, d.id)) hv.mm.putPageFromL1e(before[changed], d.id);
    else ok = false;
  }
  if (ok) return true;
  // Not handled: undo the instruction and let the original #PF reach the guest.
  for (let i = 0; i < 1024; i++) {
    const now = hv.read32(base + i * 4);
    if (((now ^ before[i]) & ~AD) !== 0) hv.write32(base + i * 4, before[i]);
  }
  saved.restore(cpu);
  cpu.retiredTotal = retired;
  cpu.exitVector = fault.vector;
  cpu.exitErrorCode = fault.error;
  cpu.exitCr2 = fault.cr2;
  cpu.exitSoft = fault.soft;
  return false;
}
