/**
 * x86_32 (non-PAE) architecture facts of the guest ABI (Xen's public arch-x86_32.h plus the
 * Xen-internal addresses a guest can observe): paging constants, PTE bits, the virtual address
 * map, the GDT reservation and flat selectors, trap_info flag bits. abi.md §3, semantics.md §0.
 */

// ---------------------------------------------------------------------------------------------
// Paging (abi.md §2.3.3)

export const PAGE_SHIFT = 12;
export const PAGE_SIZE = 4096;
/** Clears the offset bits of an address. */
export const PAGE_MASK = 0xfffff000;
export const L1_PAGETABLE_ENTRIES = 1024;
export const L2_PAGETABLE_ENTRIES = 1024;
/** A VA's L2 slot is va >>> L2_PAGETABLE_SHIFT (4 MiB per slot). */
export const L2_PAGETABLE_SHIFT = 22;
export const L1_PAGETABLE_SHIFT = 12;

/** PTE / PDE bits. abi.md §2.3.3 */
export const _PAGE_PRESENT = 0x001;
export const _PAGE_RW = 0x002;
export const _PAGE_USER = 0x004;
export const _PAGE_PWT = 0x008;
export const _PAGE_PCD = 0x010;
export const _PAGE_ACCESSED = 0x020;
export const _PAGE_DIRTY = 0x040;
/** PAT in an L1 entry, PSE in an L2 entry. */
export const _PAGE_PAT = 0x080;
export const _PAGE_PSE = 0x080;
export const _PAGE_GLOBAL = 0x100;
/** Present L1 entries must have these bits clear (PAT, GLOBAL). abi.md §2.3.3 */
export const L1_DISALLOW_MASK = 0x180;
/** Present L2 entries must have these bits clear (PSE, GLOBAL, bit 9): no guest superpages. */
export const L2_DISALLOW_MASK = 0x380;

/** Flags the domain builder puts in bootstrap L2 entries (P|RW|US|A|D). abi.md §4.3 */
export const BUILDER_L2_PROT = 0x067;
/** Flags the domain builder puts in bootstrap L1 entries (P|RW|A). abi.md §4.3 */
export const BUILDER_L1_PROT = 0x023;
/** Bootstrap L1 flags for the page-table pages themselves (P|A, read-only). abi.md §4.3 */
export const BUILDER_L1_PROT_RO = 0x021;

// ---------------------------------------------------------------------------------------------
// Virtual address map, MAR and JUL non-PAE (abi.md §3.1, semantics.md §0)

/** Start of Xen's 64 MiB; guest pointers must lie below it. */
export const HYPERVISOR_VIRT_START = 0xfc000000;
/** First Xen-owned L2 slot (HYPERVISOR_VIRT_START >>> 22); guest writes to 1008..1023 fail. */
export const ROOT_PAGETABLE_FIRST_XEN_SLOT = 1008;
/** The read-only machine-to-phys table (u32 PFN per MFN), readable from ring 1. */
export const RO_MPT_VIRT_START = 0xfc000000;
export const RO_MPT_VIRT_END = 0xfc400000;
/** Public header name for the M2P base (`machine_to_phys_mapping`). */
export const MACHINE_TO_PHYS_MAPPING = RO_MPT_VIRT_START;
/** M2P value of a frame that belongs to Xen (shared_info, grant table). */
export const M2P_INVALID_ENTRY = 0xffffffff;
/**
 * Xen's boot fill of the M2P (paging_init memsets it with 0x55): the entry of every frame Xen
 * never wrote one for, such as the March grant table's Xen-heap frames.
 */
export const M2P_UNSET_ENTRY = 0x55555555;
/** Xen direct map start; bounds guest segments, LDT, debug registers. */
export const PAGE_OFFSET = 0xfc400000;
export const DIRECTMAP_VIRT_END = 0xfd000000;
/** Xen's writable M2P. */
export const RDWR_MPT_VIRT_START = 0xfd000000;
export const FRAMETABLE_VIRT_START = 0xfd400000;
/** Each L2 maps itself here (slot 1019). */
export const LINEAR_PT_VIRT_START = 0xfec00000;
/** Where the current L2 appears through the linear map. */
export const LINEAR_L2_TABLE = 0xfeffb000;
export const SH_LINEAR_PT_VIRT_START = 0xff000000;
/** Per-domain area (slot 1021): VCPU n's GDT at + (n << 17), its shadow LDT 64 KiB above. */
export const PERDOMAIN_VIRT_START = 0xff400000;
export const PERDOMAIN_VCPU_SHIFT = 17;
export const PERDOMAIN_LDT_OFFSET = 0x10000;
export const MAPCACHE_VIRT_START = 0xff800000;
export const IOREMAP_VIRT_START = 0xffc00000;

// ---------------------------------------------------------------------------------------------
// Hypercall entry (abi.md §1.1)

/** `int $0x82`: the hypercall vector; its IDT gate has DPL 1. */
export const HYPERCALL_VECTOR = 0x82;
/** Encoding of TRAP_INSTR ("int $0x82"). */
export const TRAP_INSTR_BYTES: readonly number[] = Object.freeze([0xcd, 0x82]);
/** #GP error code seen when ring 3 executes int $0x82 (vector << 3 | 2). */
export const HYPERCALL_FROM_RING3_GP_ERROR = 0x412;

// ---------------------------------------------------------------------------------------------
// trap_info flags (abi.md §2.2.1)

/** trap_info_t.flags bits 1:0: DPL needed to raise the vector with `int n`. */
export const TI_DPL_MASK = 3;
/** trap_info_t.flags bit 2: mask events (set upcall_mask) on delivery. */
export const TI_IF = 4;
/** set_fast_trap (MAR): the vectors that may become a fast trap gate. semantics.md §4.10 */
export const FAST_TRAP_VECTOR_INT80 = 0x80;
export const FAST_TRAP_VECTORS_FIRST = 0x20;
export const FAST_TRAP_VECTORS_LAST = 0x2f;

// ---------------------------------------------------------------------------------------------
// GDT and selectors (abi.md §3.2, §3.3)

export const GDT_ENTRY_SIZE = 8;
/** Descriptors per 4 KiB GDT/LDT frame. */
export const GDT_ENTRIES_PER_PAGE = 512;
/** Most GDT frames a guest may give set_gdt. */
export const MAX_GDT_FRAMES = 16;
/** Largest LDT (MMUEXT_SET_LDT entries). */
export const MAX_LDT_ENTRIES = 8192;

/** MAR: Xen reserves GDT entries 256..295 of the first frame. */
export const FIRST_RESERVED_GDT_ENTRY_MAR = 256;
export const NR_RESERVED_GDT_ENTRIES_MAR = 40;
export const LAST_RESERVED_GDT_ENTRY_MAR = 295;
/** MAR set_gdt: entries must exceed LAST_RESERVED and not exceed this. */
export const MAX_GDT_ENTRIES_MAR = 8192;
/** MAR: GDT entry holding CPU n's LDT descriptor is this + 2n (Xen writes it on LDT loads). */
export const LDT_GDT_ENTRY_MAR = 265;

/** JUL: Xen reserves GDT page 14 (entries 7168..7679); guests may have <= 7168 entries. */
export const FIRST_RESERVED_GDT_PAGE_JUL = 14;
export const FIRST_RESERVED_GDT_BYTE_JUL = 57344;
export const FIRST_RESERVED_GDT_ENTRY_JUL = 7168;
/** JUL: the reserved page holds 512 entries (7168..7679). */
export const NR_RESERVED_GDT_ENTRIES_JUL = 512;
/** JUL: the hardware GDT limit always covers the reserved page (LAST_RESERVED_GDT_BYTE). */
export const LAST_RESERVED_GDT_BYTE_JUL = 61439;
/** JUL set_gdt: entries must not exceed FIRST_RESERVED_GDT_ENTRY (no lower bound). */
export const MAX_GDT_ENTRIES_JUL = 7168;
/** JUL: GDT entry holding CPU n's LDT descriptor, in the reserved page (__FIRST_LDT_ENTRY + 2n). */
export const LDT_GDT_ENTRY_JUL = 7177;

/** Xen's selectors, MAR (GDT indices 257..262). abi.md §3.2 */
export const SelectorsMar = Object.freeze({
  XEN_RING0_CS: 0x0808,
  XEN_RING0_DS: 0x0810,
  FLAT_RING1_CS: 0x0819,
  FLAT_RING1_DS: 0x0821,
  FLAT_RING1_SS: 0x0821,
  FLAT_RING3_CS: 0x082b,
  FLAT_RING3_DS: 0x0833,
  FLAT_RING3_SS: 0x0833,
  FLAT_KERNEL_CS: 0x0819,
  FLAT_KERNEL_DS: 0x0821,
  FLAT_KERNEL_SS: 0x0821,
  FLAT_USER_CS: 0x082b,
  FLAT_USER_DS: 0x0833,
  FLAT_USER_SS: 0x0833,
} as const);

/** Xen's selectors, JUL (GDT indices 7169..7174 in the reserved page). abi.md §3.2 */
export const SelectorsJul = Object.freeze({
  XEN_RING0_CS: 0xe008,
  XEN_RING0_DS: 0xe010,
  FLAT_RING1_CS: 0xe019,
  FLAT_RING1_DS: 0xe021,
  FLAT_RING1_SS: 0xe021,
  FLAT_RING3_CS: 0xe02b,
  FLAT_RING3_DS: 0xe033,
  FLAT_RING3_SS: 0xe033,
  FLAT_KERNEL_CS: 0xe019,
  FLAT_KERNEL_DS: 0xe021,
  FLAT_KERNEL_SS: 0xe021,
  FLAT_USER_CS: 0xe02b,
  FLAT_USER_DS: 0xe033,
  FLAT_USER_SS: 0xe033,
} as const);

/** An 8-byte descriptor as two little-endian words. */
export interface DescriptorWords {
  readonly lo: number;
  readonly hi: number;
}

/**
 * Xen's flat descriptors (both revisions): base 0; ring-1/3 segments have limit 0xFC3FF pages
 * (end at 0xFC3FFFFF), ring-0 segments are 4 GiB. abi.md §3.2
 */
export const FlatDescriptors: Readonly<Record<string, DescriptorWords>> = Object.freeze({
  RING0_CS: Object.freeze({ lo: 0x0000ffff, hi: 0x00cf9a00 }),
  RING0_DS: Object.freeze({ lo: 0x0000ffff, hi: 0x00cf9200 }),
  RING1_CS: Object.freeze({ lo: 0x0000c3ff, hi: 0x00cfba00 }),
  RING1_DS: Object.freeze({ lo: 0x0000c3ff, hi: 0x00cfb200 }),
  RING3_CS: Object.freeze({ lo: 0x0000c3ff, hi: 0x00cffa00 }),
  RING3_DS: Object.freeze({ lo: 0x0000c3ff, hi: 0x00cff200 }),
});

/** Selector fields. */
export const SELECTOR_RPL_MASK = 3;
/** Table indicator: 1 = LDT. */
export const SELECTOR_TI = 4;
export const SELECTOR_INDEX_SHIFT = 3;

/** Guest code/data descriptor bases must be below this (PAGE_OFFSET - 4096). abi.md §3.4 */
export const DESCRIPTOR_BASE_LIMIT = 0xfc3ff000;
/** Guest segments are truncated to end here (G=1 required). abi.md §3.4 */
export const GUEST_SEGMENT_END = 0xfc400000;
/** Descriptor type of a call gate (the only system descriptor a guest may install). abi.md §3.4 */
export const DESC_TYPE_CALL_GATE = 0xc;

// ---------------------------------------------------------------------------------------------
// Misc (abi.md §3.6, §4.5)

/** Bytes of a per-domain I/O bitmap. */
export const IO_BITMAP_BYTES = 8192;
/** EFLAGS the MAR tools write for a new domU (IF | bit 2, quirk Q9); the CPU shows 0x206. */
export const INITIAL_EFLAGS_MAR = 0x204;
/** EFLAGS the JUL tools write for a new domU (IF); observed 0x202. */
export const INITIAL_EFLAGS_JUL = 0x200;
