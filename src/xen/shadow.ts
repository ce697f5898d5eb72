/**
 * Shadow mode and log-dirty (DOM0_SHADOW_CONTROL, semantics.md §11): the base of live
 * migration. Xen runs a log-dirty domain on shadow page tables whose entries start read-only,
 * so the first write to each frame faults into Xen, which marks the frame in a bitmap indexed
 * by pseudo-physical frame number (M2P[mfn]).
 *
 * tsxen takes the shortcut §11 allows (the same bitmap, stats and guest PTE A/D bits, no
 * shadow tables): the CPU's dirty-logging watch (cpu.writeWatch). Every frame of the domain is
 * watched; a watched frame gets no write permission in the software TLB, so its first write
 * walks the page tables and reports the frame here (one "fault"), which unwatches it. CLEAN
 * watches every frame again and flushes the TLB, as Xen drops its shadow L1s. Hypervisor
 * copies into guest memory (copy_to_guest) are reported the same way, as they are in Xen where
 * they run on the shadow tables. MACHPHYS_UPDATE and the PTE page of update_va_mapping are
 * marked explicitly (markDirty).
 */

import { ShadowOp } from "../public/dom0_ops.js";
import { EFAULT, EINVAL, ESRCH } from "../public/errno.js";
import type { Domain } from "./domain.js";
import type { Hypervisor } from "./hypervisor.js";

/** Bits copied out per chunk by CLEAN and PEEK (Xen's 8192-bit chunks). */
const CHUNK_BITS = 8192;

export class LogDirty {
  /** One bit per pseudo-physical frame, max_pages rounded up to 64, sized at enable. */
  readonly bitmap: Uint8Array;
  /** Bits in the bitmap (max_pages rounded up to 64). */
  readonly pages: number;
  /** max_pages when enabled: CLEAN/PEEK need a buffer this big and report it as `pages`. */
  readonly maxPages: number;
  faultCount = 0;
  dirtyCount = 0;
  dirtyNetCount = 0;
  dirtyBlockCount = 0;

  constructor(
    maxPages: number,
    /** ENABLE_TEST: full shadowing without a bitmap. */
    readonly test: boolean,
  ) {
    this.maxPages = maxPages;
    this.pages = test ? 0 : Math.ceil(maxPages / 64) * 64;
    this.bitmap = new Uint8Array(this.pages / 8);
  }

  zeroStats(): void {
    this.faultCount = this.dirtyCount = this.dirtyNetCount = this.dirtyBlockCount = 0;
  }
}

export interface ShadowResult {
  rc: number;
  /** `pages` written back (CLEAN/PEEK), else the input. */
  pages: number;
  stats: { fault: number; dirty: number; dirtyNet: number; dirtyBlock: number };
}

/** The CPU's watch array, created on first use and shared by every log-dirty domain. */
function watchArray(hv: Hypervisor): Uint8Array {
  if (hv.cpu.writeWatch === null) {
    hv.cpu.writeWatch = new Uint8Array(hv.frames.nrFrames);
    hv.cpu.onWatchedWrite = (mfn) => writeFault(hv, mfn);
  }
  return hv.cpu.writeWatch;
}

/** Watch every frame of d again (enable, CLEAN), so each next write is reported once. */
function watchDomain(hv: Hypervisor, d: Domain): void {
  const w = watchArray(hv);
  for (const mfn of d.pages) w[mfn] = 1;
  hv.cpu.flushTlb();
}

function unwatchDomain(hv: Hypervisor, d: Domain): void {
  const w = hv.cpu.writeWatch;
  if (w === null) return;
  for (const mfn of d.pages) w[mfn] = 0;
}

/** The shadow fault of a first write to mfn: counted, and the frame marked dirty. */
function writeFault(hv: Hypervisor, mfn: number): void {
  const d = hv.domains.get(hv.frames.owner[mfn]);
  if (d?.logDirty == null) return;
  d.logDirty.faultCount++;
  markDirty(hv, d, mfn);
}

/**
 * mark_dirty(d, mfn): sets the bit of the frame's pseudo-physical number. M2P entries with
 * bit 31 set (Xen's own frames, unset entries) and frames beyond the bitmap are ignored.
 * Returns true when the bit was newly set.
 */
export function markDirty(hv: Hypervisor, d: Domain, mfn: number): boolean {
  const ld = d.logDirty;
  if (ld === null || ld.test) return false;
  const pfn = hv.getM2p(mfn);
  if (pfn & 0x80000000 || pfn >= ld.pages) return false;
  const bit = 1 << (pfn & 7);
  if (ld.bitmap[pfn >>> 3] & bit) return false;
  ld.bitmap[pfn >>> 3] |= bit;
  ld.dirtyCount++;
  return true;
}

/** MMU_MACHPHYS_UPDATE in log-dirty mode: the frame is dirty and counted as a block write. */
export function markDirtyMachphys(hv: Hypervisor, mfn: number): void {
  const d = hv.domains.get(hv.frames.owner[mfn]);
  if (d?.logDirty == null) return;
  markDirty(hv, d, mfn);
  d.logDirty.dirtyBlockCount++;
}

/** Leave shadow mode (OFF, and on destroy). */
export function shadowModeOff(hv: Hypervisor, d: Domain): void {
  if (d.logDirty === null) return;
  unwatchDomain(hv, d);
  d.logDirty = null;
}

/**
 * DOM0_SHADOW_CONTROL on domain d (not the caller: the dispatcher checked). `copyOut` writes a
 * chunk of the bitmap at a byte offset of the caller's buffer (false on a fault).
 */
export function shadowControl(
  hv: Hypervisor,
  d: Domain | undefined,
  op: number,
  bitmapVa: number,
  pages: number,
  copyOut: (va: number, bytes: Uint8Array) => boolean,
): ShadowResult {
  const none = { fault: 0, dirty: 0, dirtyNet: 0, dirtyBlock: 0 };
  if (d === undefined) return { rc: -ESRCH, pages, stats: none };
  const ld = d.logDirty;
  const statsOf = (l: LogDirty) => ({
    fault: l.faultCount,
    dirty: l.dirtyCount,
    dirtyNet: l.dirtyNetCount,
    dirtyBlock: l.dirtyBlockCount,
  });
  switch (op) {
    case ShadowOp.OFF:
      shadowModeOff(hv, d);
      return { rc: 0, pages, stats: none };
    case ShadowOp.ENABLE_TEST:
    case ShadowOp.ENABLE_LOGDIRTY:
      // Enabling leaves any previous mode first (Xen: shadow_mode_disable then enable).
      shadowModeOff(hv, d);
      d.logDirty = new LogDirty(d.maxPages, op === ShadowOp.ENABLE_TEST);
      watchDomain(hv, d);
      return { rc: 0, pages, stats: none };
  }
  if (ld === null) return { rc: -EINVAL, pages, stats: none };
  switch (op) {
    case ShadowOp.FLUSH:
      ld.zeroStats();
      watchDomain(hv, d);
      return { rc: 0, pages, stats: none };
    case ShadowOp.CLEAN:
    case ShadowOp.PEEK: {
      const stats = statsOf(ld);
      const clean = op === ShadowOp.CLEAN;
      if (clean) {
        ld.zeroStats();
        watchDomain(hv, d);
      }
      if (ld.test || bitmapVa === 0 || pages >>> 0 < ld.maxPages) return { rc: -EINVAL, pages, stats };
      let rc = 0;
      const total = Math.ceil(ld.maxPages / 8) * 8;
      for (let bit = 0; bit < total; bit += CHUNK_BITS) {
        const bytes = Math.min(CHUNK_BITS, total - bit) / 8;
        const chunk = ld.bitmap.slice(bit / 8, bit / 8 + bytes);
        if (!copyOut((bitmapVa + bit / 8) >>> 0, chunk)) {
          rc = -EFAULT;
          break;
        }
        if (clean) ld.bitmap.fill(0, bit / 8, bit / 8 + bytes);
      }
      return { rc, pages: ld.maxPages, stats };
    }
    default:
      return { rc: -EINVAL, pages, stats: none };
  }
}
