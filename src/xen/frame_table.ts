/**
 * The frame table: for every machine frame, its owner, general reference count and type
 * information, with Xen's encoding of type_info (semantics.md §1.1). Typed arrays, one entry
 * per frame; the rules that change them live in mm.ts.
 */

// type_info fields (Xen's PGT_*; internal to the hypervisor, not guest ABI).
export const PGT_none = 0;
export const PGT_l1_page_table = 1 << 29;
export const PGT_l2_page_table = 2 << 29;
export const PGT_gdt_page = 5 << 29;
export const PGT_ldt_page = 6 << 29;
export const PGT_writable_page = 7 << 29;
export const PGT_type_mask = 7 << 29;
export const PGT_validated = 1 << 28;
export const PGT_pinned = 1 << 27;
export const PGT_va_shift = 17;
export const PGT_va_mask = 1023 << 17;
export const PGT_va_mutable = 1023 << 17;
export const PGT_va_unknown = 1022 << 17;
export const PGT_count_mask = (1 << 17) - 1;

/** Owner value of a free frame. */
export const NO_OWNER = -1;
/** General counts are 31 bits in Xen. */
export const COUNT_MAX = 0x7fffffff;

export class FrameTable {
  readonly owner: Int32Array;
  /** General references, including the allocation reference while `allocated` is set. */
  readonly count: Int32Array;
  readonly allocated: Uint8Array;
  readonly typeInfo: Int32Array;

  /** ramEnd: frames from here up are the device window, not RAM (memory.ts DEVICE_WINDOW_FRAME). */
  constructor(
    readonly nrFrames: number,
    readonly ramEnd = nrFrames,
  ) {
    this.owner = new Int32Array(nrFrames).fill(NO_OWNER);
    this.count = new Int32Array(nrFrames);
    this.allocated = new Uint8Array(nrFrames);
    this.typeInfo = new Int32Array(nrFrames);
  }

  /** Xen's pfn_is_ram: frames 0..0x100 (the first MiB and one page) count as I/O. */
  isRam(mfn: number): boolean {
    return mfn > 0x100 && mfn < this.ramEnd;
  }

  type(mfn: number): number {
    return this.typeInfo[mfn] & PGT_type_mask;
  }

  typeCount(mfn: number): number {
    return this.typeInfo[mfn] & PGT_count_mask;
  }

  /** Marks a frame allocated to owner with the allocation reference (count_info = allocated|1). */
  assign(mfn: number, owner: number): void {
    this.owner[mfn] = owner;
    this.count[mfn] = 1;
    this.allocated[mfn] = 1;
    this.typeInfo[mfn] = 0;
  }

  release(mfn: number): void {
    this.owner[mfn] = NO_OWNER;
    this.count[mfn] = 0;
    this.allocated[mfn] = 0;
    this.typeInfo[mfn] = 0;
  }
}
