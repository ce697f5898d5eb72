/**
 * copy_from_guest / copy_to_guest: reading and writing guest virtual memory the way Xen does,
 * through the guest's own page tables with supervisor rights and CR0.WP set. Hypercall
 * pointers must lie below HYPERVISOR_VIRT_START (semantics.md §0, access_ok); a range that is
 * out of bounds or not mapped (writable, for writes) is a failed copy, which callers turn
 * into -EFAULT. Nothing here throws for bad guest input.
 */
import type { Cpu } from "../cpu/cpu.js";
import {
  _PAGE_ACCESSED,
  _PAGE_DIRTY,
  _PAGE_PRESENT,
  _PAGE_RW,
  HYPERVISOR_VIRT_START,
} from "../public/arch_x86_32.js";

/** access_ok(va, n): the whole range lies below HYPERVISOR_VIRT_START (33-bit sum). */
export function accessOk(va: number, n: number): boolean {
  return (va >>> 0) + (n >>> 0) <= HYPERVISOR_VIRT_START;
}

/** array_access_ok(va, count, size). */
export function arrayAccessOk(va: number, count: number, size: number): boolean {
  return count >>> 0 < Math.floor(0xffffffff / size) && accessOk(va, (count >>> 0) * size);
}

/**
 * The walk the MMU does for a supervisor access with CR0.WP set, through the page tables the
 * CPU has loaded: the machine address of va, or -1 when not mapped (or not writable when
 * write is set). Sets accessed/dirty bits as the hardware walk would.
 */
export function walkPageTables(cpu: Cpu, va: number, write: boolean): number {
  const pdeMa = (cpu.cr3 & ~0xfff) | ((va >>> 20) & 0xffc);
  const pde = cpu.physRead32(pdeMa);
  if ((pde & _PAGE_PRESENT) === 0 || (write && (pde & _PAGE_RW) === 0)) return -1;
  const pteMa = (pde & ~0xfff) | ((va >>> 10) & 0xffc);
  const pte = cpu.physRead32(pteMa);
  if ((pte & _PAGE_PRESENT) === 0 || (write && (pte & _PAGE_RW) === 0)) return -1;
  const ma = (pte & ~0xfff) | (va & 0xfff);
  if (ma >>> 0 >= cpu.memSize) return -1;
  if ((pde & _PAGE_ACCESSED) === 0) cpu.physWrite32(pdeMa, pde | _PAGE_ACCESSED);
  const set = _PAGE_ACCESSED | (write ? _PAGE_DIRTY : 0);
  if ((pte & set) !== set) cpu.physWrite32(pteMa, pte | set);
  // Xen's copies to guest memory go through the (shadow) page tables: log-dirty sees them.
  if (write && cpu.writeWatch !== null) cpu.watchedWrite(ma >>> 12);
  return ma >>> 0;
}

/**
 * Guest virtual memory of the vcpu currently loaded on `cpu`, walked through its CR3. Sets
 * accessed/dirty bits as the hardware walk would.
 */
export class GuestMemory {
  /**
   * Called when an L2 entry on the way is not present; returns true if it repaired the entry
   * (the writable-page-table code reconnecting an unhooked L1), and the walk is retried.
   */
  pdeFixup: ((va: number) => boolean) | null = null;

  constructor(private readonly cpu: Cpu) {}

  /** Machine address of va, or -1 when not mapped (or not writable when write is set). */
  translate(va: number, write: boolean): number {
    const cpu = this.cpu;
    const pdeMa = (cpu.cr3 & ~0xfff) | ((va >>> 20) & 0xffc);
    if ((cpu.physRead32(pdeMa) & _PAGE_PRESENT) === 0) this.pdeFixup?.(va);
    return walkPageTables(cpu, va, write);
  }

  /**
   * The machine address of va when its n bytes (n <= 4096) lie in one page below
   * HYPERVISOR_VIRT_START and that page is mapped (writable, for write): one walk for a structure
   * peek32 would read word by word, each word's walk giving this page (only the first sets
   * accessed bits). Else -1, and the caller's word-by-word path walks again to the same failure.
   */
  within(va: number, n: number, write: boolean): number {
    va >>>= 0;
    if ((va & 0xfff) + n > 0x1000 || !accessOk(va, n)) return -1;
    return this.translate(va, write);
  }

  /** Copies n bytes from guest va into a new array, or null on a fault / bad range. */
  copyFrom(va: number, n: number): Uint8Array | null {
    if (!accessOk(va, n)) return null;
    const out = new Uint8Array(n);
    let done = 0;
    while (done < n) {
      const cur = (va + done) >>> 0;
      const ma = this.translate(cur, false);
      if (ma < 0) return null;
      const chunk = Math.min(n - done, 4096 - (cur & 0xfff));
      out.set(this.cpu.mem8.subarray(ma, ma + chunk), done);
      done += chunk;
    }
    return out;
  }

  /** Copies bytes to guest va; false on a fault / bad range (a prefix may have been written). */
  copyTo(va: number, data: Uint8Array): boolean {
    const n = data.length;
    if (!accessOk(va, n)) return false;
    let done = 0;
    while (done < n) {
      const cur = (va + done) >>> 0;
      const ma = this.translate(cur, true);
      if (ma < 0) return false;
      const chunk = Math.min(n - done, 4096 - (cur & 0xfff));
      this.cpu.mem8.set(data.subarray(done, done + chunk), ma);
      this.cpu.invalidateCode(ma, chunk);
      done += chunk;
    }
    return true;
  }

  /** Reads a u32 at va, or null. */
  read32(va: number): number | null {
    const v = this.peek32(va);
    return this.ok ? v >>> 0 : null;
  }

  /** Whether the last peek32 read its word. */
  ok = true;

  /**
   * Reads the u32 at va as an int32, allocating nothing (hypercall argument structures are
   * read word by word on the exit path); on a fault or bad range, returns 0 and sets ok false.
   */
  peek32(va: number): number {
    va >>>= 0;
    if ((va & 0xfff) > 0xffc) {
      // Straddles two pages: the general copy.
      const b = this.copyFrom(va, 4);
      this.ok = b !== null;
      return b === null ? 0 : b[0] | (b[1] << 8) | (b[2] << 16) | (b[3] << 24);
    }
    const ma = accessOk(va, 4) ? this.translate(va, false) : -1;
    this.ok = ma >= 0;
    return ma >= 0 ? this.cpu.physRead32(ma) : 0;
  }

  /** The byte at va, allocating nothing (the emulator's instruction fetch); as peek32 on a fault. */
  peek8(va: number): number {
    va >>>= 0;
    const ma = accessOk(va, 1) ? this.translate(va, false) : -1;
    this.ok = ma >= 0;
    return ma >= 0 ? this.cpu.physRead8(ma) : 0;
  }

  /**
   * Whether all n bytes (4 <= n <= 4096) at va are readable, as Xen's copy of a structure
   * read word by word: its first and last words cover the (at most two) pages it spans.
   */
  readable(va: number, n: number): boolean {
    this.peek32(va);
    if (!this.ok) return false;
    this.peek32(va + n - 4);
    return this.ok;
  }

  write32(va: number, value: number): boolean {
    va >>>= 0;
    if ((va & 0xfff) > 0xffc) {
      const b = new Uint8Array(4);
      new DataView(b.buffer).setUint32(0, value >>> 0, true);
      return this.copyTo(va, b);
    }
    if (!accessOk(va, 4)) return false;
    const ma = this.translate(va, true);
    if (ma < 0) return false;
    // physWrite32 drops decoded code in the frame, as copyTo's invalidateCode does.
    this.cpu.physWrite32(ma, value | 0);
    return true;
  }
}
