/**
 * The core guest ABI (Xen's public xen.h): hypercall numbers, sub-command numbers, flag bits,
 * domain ids and the layouts of start_info, shared_info, multicall and mmu_update.
 *
 * Layout tables give byte offsets of each field plus SIZE. Field keys are the C member names;
 * a union member's table is relative to the union. MAR = 2005-03 (packed structs, our primary
 * ABI), JUL = 2005-07 (natural i386 alignment). abi.md §0.
 */

// ---------------------------------------------------------------------------------------------
// Hypercalls (abi.md §1.3, §1.4)

/** Hypercall numbers, MAR. EAX is masked with NR_HYPERCALLS - 1 before lookup. abi.md §1.3 */
export const HypercallMar = Object.freeze({
  set_trap_table: 0,
  mmu_update: 1,
  set_gdt: 2,
  stack_switch: 3,
  set_callbacks: 4,
  fpu_taskswitch: 5,
  sched_op: 6,
  dom0_op: 7,
  set_debugreg: 8,
  get_debugreg: 9,
  update_descriptor: 10,
  set_fast_trap: 11,
  dom_mem_op: 12,
  multicall: 13,
  update_va_mapping: 14,
  set_timer_op: 15,
  event_channel_op: 16,
  xen_version: 17,
  console_io: 18,
  physdev_op: 19,
  grant_table_op: 20,
  vm_assist: 21,
  update_va_mapping_otherdomain: 22,
  switch_vm86: 23,
  boot_vcpu: 24,
  /** x86_64 only: -ENOSYS on x86_32. */
  set_segment_base: 25,
} as const);

/** Hypercall numbers, JUL: set_fast_trap (11) is gone; mmuext_op and policy_op added. abi.md §1.4 */
export const HypercallJul = Object.freeze({
  set_trap_table: 0,
  mmu_update: 1,
  set_gdt: 2,
  stack_switch: 3,
  set_callbacks: 4,
  fpu_taskswitch: 5,
  sched_op: 6,
  dom0_op: 7,
  set_debugreg: 8,
  get_debugreg: 9,
  update_descriptor: 10,
  dom_mem_op: 12,
  multicall: 13,
  update_va_mapping: 14,
  set_timer_op: 15,
  event_channel_op: 16,
  xen_version: 17,
  console_io: 18,
  physdev_op: 19,
  grant_table_op: 20,
  vm_assist: 21,
  update_va_mapping_otherdomain: 22,
  switch_vm86: 23,
  boot_vcpu: 24,
  set_segment_base: 25,
  mmuext_op: 26,
  /** ACM security; out of scope. */
  policy_op: 27,
} as const);

/** Size of the hypercall table; the number in EAX is masked with 31. abi.md §1.1 */
export const NR_HYPERCALLS = 32;
/** Words per multicall entry (MAR). abi.md §2.1 */
export const ARGS_PER_MULTICALL_ENTRY = 8;
/** A multicall sub-call receives exactly args[0..4]. abi.md §2.1 */
export const MULTICALL_ARGS_PASSED = 5;

// ---------------------------------------------------------------------------------------------
// mmu_update / mmuext_op (abi.md §2.3, §2.4)

/** mmu_update command in ptr bits 1:0, MAR. Value 1 is unused (-EINVAL). abi.md §2.3.1 */
export const MmuMar = Object.freeze({
  NORMAL_PT_UPDATE: 0,
  MACHPHYS_UPDATE: 2,
  EXTENDED_COMMAND: 3,
} as const);

/** mmu_update command in ptr bits 1:0, JUL (extended commands moved to mmuext_op). abi.md §2.4 */
export const MmuJul = Object.freeze({
  NORMAL_PT_UPDATE: 0,
  MACHPHYS_UPDATE: 1,
} as const);

/** Mask selecting the command from mmu_update_t.ptr. abi.md §2.3.1 */
export const MMU_UPDATE_CMD_MASK = 3;

/** MMUEXT_* sub-commands in val[7:0] of an MMU_EXTENDED_COMMAND, MAR. abi.md §2.3.2 */
export const MmuExtMar = Object.freeze({
  PIN_L1_TABLE: 0,
  PIN_L2_TABLE: 1,
  PIN_L3_TABLE: 2,
  PIN_L4_TABLE: 3,
  UNPIN_TABLE: 4,
  NEW_BASEPTR: 5,
  TLB_FLUSH_LOCAL: 6,
  /** Alias of TLB_FLUSH_LOCAL. */
  TLB_FLUSH: 6,
  INVLPG_LOCAL: 7,
  /** Alias of INVLPG_LOCAL. */
  INVLPG: 7,
  FLUSH_CACHE: 8,
  SET_LDT: 9,
  SET_FOREIGNDOM: 10,
  CLEAR_FOREIGNDOM: 11,
  TRANSFER_PAGE: 12,
  REASSIGN_PAGE: 13,
  NEW_USER_BASEPTR: 14,
  /** Declared but not implemented at MAR: -EINVAL (quirk Q6). */
  TLB_FLUSH_MULTI: 15,
  /** Declared but not implemented at MAR: -EINVAL (quirk Q6). */
  INVLPG_MULTI: 16,
} as const);

/** MAR: sub-command = val & MMUEXT_CMD_MASK; its argument is val >> MMUEXT_CMD_SHIFT. abi.md §2.3.1 */
export const MMUEXT_CMD_MASK = 255;
export const MMUEXT_CMD_SHIFT = 8;
/** MAR SET_FOREIGNDOM / TRANSFER_PAGE carry a domid in val[31:16]. abi.md §2.3.2 */
export const MMUEXT_DOMID_SHIFT = 16;

/** mmuext_op commands, JUL (hypercall 26; renumbered from MAR). abi.md §2.4 */
export const MmuExtJul = Object.freeze({
  PIN_L1_TABLE: 0,
  PIN_L2_TABLE: 1,
  PIN_L3_TABLE: 2,
  PIN_L4_TABLE: 3,
  UNPIN_TABLE: 4,
  NEW_BASEPTR: 5,
  TLB_FLUSH_LOCAL: 6,
  INVLPG_LOCAL: 7,
  TLB_FLUSH_MULTI: 8,
  INVLPG_MULTI: 9,
  TLB_FLUSH_ALL: 10,
  INVLPG_ALL: 11,
  FLUSH_CACHE: 12,
  SET_LDT: 13,
  REASSIGN_PAGE: 14,
  NEW_USER_BASEPTR: 15,
} as const);

/** mmu_update_t, MAR: two u32. abi.md §2.3.1 */
export const MmuUpdateMar = Object.freeze({ ptr: 0, val: 4, SIZE: 8 } as const);
/** mmu_update_t, JUL: two u64. abi.md §2.4 */
export const MmuUpdateJul = Object.freeze({ ptr: 0, val: 8, SIZE: 16 } as const);

/** struct mmuext_op, JUL; two 4-byte unions. abi.md §2.4 */
export const MmuExtOpJul = Object.freeze({
  cmd: 0,
  mfn: 4,
  linear_addr: 4,
  nr_ents: 8,
  vcpumask: 8,
  SIZE: 12,
} as const);

/** update_va_mapping flags, MAR (OR-able; 0 = no flush). abi.md §2.5 */
export const UvmfMar = Object.freeze({ FLUSH_TLB: 1, INVLPG: 2 } as const);

/** update_va_mapping flags, JUL: flush type in bits 1:0, target set in bits 31:2. abi.md §2.5 */
export const UvmfJul = Object.freeze({
  NONE: 0,
  TLB_FLUSH: 1,
  INVLPG: 2,
  FLUSHTYPE_MASK: 3,
  /** Flush the VCPUs in the bitmap that flags & ~3 points to. */
  MULTI: 0,
  LOCAL: 0,
  ALL: 4,
} as const);

// ---------------------------------------------------------------------------------------------
// multicall (abi.md §2.1)

/** multicall_entry_t, MAR: op, args[7]; the result is written over args[5]. abi.md §2.1 */
export const MulticallEntryMar = Object.freeze({ op: 0, args: 4, result: 24, SIZE: 32 } as const);
/** multicall_entry_t, JUL: op, result, args[6]. abi.md §2.1 */
export const MulticallEntryJul = Object.freeze({ op: 0, result: 4, args: 8, SIZE: 32 } as const);

// ---------------------------------------------------------------------------------------------
// Small hypercalls (abi.md §2.13)

/** sched_op commands in op bits 7:0 (MAR). abi.md §2.13.4 */
export const SchedOpMar = Object.freeze({ yield: 0, block: 1, shutdown: 2 } as const);
/** sched_op commands, JUL: adds vcpu_down/vcpu_up (VCPU id in op bits 15:8). abi.md §1.4 */
export const SchedOpJul = Object.freeze({
  yield: 0,
  block: 1,
  shutdown: 2,
  vcpu_down: 3,
  vcpu_up: 4,
} as const);
export const SCHEDOP_CMDMASK = 255;
/** Shutdown reason in op bits 15:8. abi.md §2.13.4 */
export const SCHEDOP_REASONSHIFT = 8;
/** JUL vcpu_down/up target in op bits 15:8. abi.md §1.4 */
export const SCHEDOP_VCPUSHIFT = 8;

/** Shutdown reasons (SCHEDOP_shutdown and getdomaininfo flags bits 23:16). abi.md §2.13.4 */
export const Shutdown = Object.freeze({ poweroff: 0, reboot: 1, suspend: 2, crash: 3 } as const);
/** The name of each shutdown reason, by number (as xm prints them). */
export const SHUTDOWN_NAMES: readonly string[] = Object.freeze(["poweroff", "reboot", "suspend", "crash"]);

/** console_io commands. abi.md §2.13.1 */
export const ConsoleIo = Object.freeze({ write: 0, read: 1 } as const);
/** MAR console_io write clamps count to this many bytes. abi.md §2.13.1 */
export const CONSOLEIO_WRITE_MAX_MAR = 4095;
/** JUL console_io write emits in chunks of this many bytes. abi.md §2.13.1 */
export const CONSOLEIO_WRITE_CHUNK_JUL = 127;

/** dom_mem_op commands in op bits 3:0. abi.md §2.13.2 */
export const MemOp = Object.freeze({ increase_reservation: 0, decrease_reservation: 1 } as const);
/** dom_mem_op: op bits 3:0 = command, bits 31:4 = start_extent (continuation). abi.md §2.13.2 */
export const MEMOP_CMD_MASK = 0xf;
export const MEMOP_EXTENT_SHIFT = 4;

/** vm_assist commands. abi.md §2.13.5 */
export const VmAssistCmd = Object.freeze({ enable: 0, disable: 1 } as const);
/** vm_assist types = bit numbers in the per-domain bitmap. abi.md §2.13.5 */
export const VmAssistType = Object.freeze({
  "4gb_segments": 0,
  "4gb_segments_notify": 1,
  writable_pagetables: 2,
} as const);
export const MAX_VMASST_TYPE = 2;

/** xen_version: major in bits 31:16, minor in bits 15:0. abi.md §2.13.3 */
export const XEN_VERSION_MAJOR = 3;
export const XEN_VERSION_MINOR = 0;
export const XEN_VERSION_VALUE = 0x00030000;
/** xen_version commands (MAR accepts only version). abi.md §1.4 */
export const XenVer = Object.freeze({ version: 0, extraversion: 1, compile_info: 2 } as const);
/** XENVER_extraversion copies a 16-byte string. abi.md §1.4 */
export const XEN_EXTRAVERSION_LEN = 16;
export const XEN_EXTRAVERSION = "-devel";
/** xen_compile_info_t, JUL (char arrays). abi.md §1.4 */
export const XenCompileInfoJul = Object.freeze({
  compiler: 0,
  compile_by: 64,
  compile_domain: 80,
  compile_date: 112,
  SIZE: 144,
} as const);

/** Debug-register rules of set_debugreg. abi.md §2.13.6 */
export const NR_DEBUGREGS = 8;
/** DR0..3 must be <= this (PAGE_OFFSET - 4), else -EPERM. */
export const DEBUGREG_ADDR_MAX = 0xfc3ffffc;
/** DR6: bits 4..11 and 16..31 forced to 1. */
export const DR6_FORCED_ONES = 0xffff0ff0;
/** DR6: bit 12 forced to 0. */
export const DR6_FORCED_ZEROS = 0x00001000;
/** DR7 (non-zero): bits 11, 12, 14, 15 forced to 0. */
export const DR7_FORCED_ZEROS = 0x0000d800;
/** DR7 (non-zero): bit 10 forced to 1. */
export const DR7_FORCED_ONES = 0x00000400;
/** DR7.GD (general detect): -EPERM. */
export const DR7_GD = 0x00002000;
/** DR7 R/W and LEN fields start at bit 16; any 2-bit field equal to binary 10 gives -EPERM. */
export const DR7_RW_LEN_SHIFT = 16;

/** Xen timer tick rate: 100 Hz (10 ms). abi.md §3.6 */
export const HZ = 100;

// ---------------------------------------------------------------------------------------------
// Virtual IRQs, domain ids, limits (abi.md §2.8.1, §2.13.7, §3.6)

/** VIRQ numbers, MAR. abi.md §2.8.1 */
export const VirqMar = Object.freeze({
  TIMER: 0,
  DEBUG: 1,
  /** dom0 only */
  CONSOLE: 2,
  /** dom0 only */
  DOM_EXC: 3,
  /** dom0 only */
  PARITY_ERR: 4,
  /** dom0 only */
  IO_ERR: 5,
} as const);
/** VIRQ numbers, JUL: adds DEBUGGER. abi.md §2.8.1 */
export const VirqJul = Object.freeze({ ...VirqMar, DEBUGGER: 6 } as const);
/** bind_virq with virq >= NR_VIRQS is -EINVAL. abi.md §2.8.2 */
export const NR_VIRQS = 7;

/** Domain ids. Ids >= FIRST_RESERVED are never real domains. abi.md §2.13.7 */
export const DomId = Object.freeze({
  DOM0: 0,
  FIRST_RESERVED: 0x7ff0,
  SELF: 0x7ff0,
  IO: 0x7ff1,
  XEN: 0x7ff2,
  /** Xen-internal idle domain. */
  IDLE: 0x7fff,
} as const);

export const NR_EVENT_CHANNELS = 1024;
export const MAX_VIRT_CPUS = 32;

// ---------------------------------------------------------------------------------------------
// start_info (abi.md §2.6)

/** start_info_t.flags bits. abi.md §2.6.3 */
export const Sif = Object.freeze({
  PRIVILEGED: 1 << 0,
  INITDOMAIN: 1 << 1,
  BLK_BE_DOMAIN: 1 << 4,
  NET_BE_DOMAIN: 1 << 5,
  USB_BE_DOMAIN: 1 << 6,
} as const);

/** Command-line buffer length in start_info, MAR. abi.md §2.6.1 */
export const MAX_CMDLINE = 256;
/** Command-line buffer length in start_info, JUL. abi.md §2.6.2 */
export const MAX_GUEST_CMDLINE = 1024;

/** start_info_t, MAR (packed; a u32 pad follows each address-sized field). abi.md §2.6.1 */
export const StartInfoMar = Object.freeze({
  nr_pages: 0,
  shared_info: 8,
  flags: 16,
  domain_controller_evtchn: 20,
  pt_base: 24,
  nr_pt_frames: 32,
  mfn_list: 40,
  mod_start: 48,
  mod_len: 56,
  cmd_line: 64,
  SIZE: 320,
} as const);

/** start_info_t, JUL (natural alignment). abi.md §2.6.2 */
export const StartInfoJul = Object.freeze({
  nr_pages: 0,
  shared_info: 4,
  flags: 8,
  domain_controller_evtchn: 12,
  pt_base: 16,
  nr_pt_frames: 20,
  mfn_list: 24,
  mod_start: 28,
  mod_len: 32,
  cmd_line: 36,
  store_page: 1060,
  store_evtchn: 1064,
  SIZE: 1068,
} as const);

// ---------------------------------------------------------------------------------------------
// shared_info (abi.md §2.7; identical offsets at MAR and JUL)

/** vcpu_info_t; arch part is empty at both revisions. abi.md §2.7.1 */
export const VcpuInfo = Object.freeze({
  evtchn_upcall_pending: 0,
  evtchn_upcall_mask: 1,
  evtchn_pending_sel: 4,
  SIZE: 8,
} as const);

/**
 * shared_info_t (588 bytes; the page is 4096). The header's offset comments are stale; these are
 * the compiler's. `pfn_to_mfn_frame_list` is arch.pfn_to_mfn_frame_list. abi.md §2.7.2
 */
export const SharedInfo = Object.freeze({
  vcpu_data: 0,
  n_vcpu: 256,
  evtchn_pending: 260,
  evtchn_mask: 388,
  cpu_freq: 516,
  time_version1: 524,
  time_version2: 528,
  tsc_timestamp: 532,
  system_time: 540,
  wc_sec: 548,
  wc_usec: 552,
  domain_time: 556,
  wall_timeout: 564,
  domain_timeout: 572,
  pfn_to_mfn_frame_list: 580,
  SIZE: 588,
} as const);

/** Words in evtchn_pending / evtchn_mask (1024 ports / 32). abi.md §2.7.2 */
export const EVTCHN_WORDS = 32;

// ---------------------------------------------------------------------------------------------
// trap_info (abi.md §2.2.1; flag bits are in arch_x86_32.ts)

/** trap_info_t, 8 bytes at both revisions. address 0 terminates set_trap_table. abi.md §2.2.1 */
export const TrapInfo = Object.freeze({ vector: 0, flags: 1, cs: 2, address: 4, SIZE: 8 } as const);
/** Entries in the virtual IDT. */
export const NR_TRAP_VECTORS = 256;

// ---------------------------------------------------------------------------------------------
// Guest boot protocol: the `__xen_guest` ELF note and the domU builder's layout (abi.md §4)

/** Name of the ELF section holding the guest's loader string. abi.md §4.1 */
export const XEN_GUEST_SECTION = "__xen_guest";
/** Keys of the comma-separated `__xen_guest` string. abi.md §4.1 */
export const XenGuestKey = Object.freeze({
  XEN_VER: "XEN_VER",
  LOADER: "LOADER",
  GUEST_OS: "GUEST_OS",
  GUEST_VER: "GUEST_VER",
  VIRT_BASE: "VIRT_BASE",
  BSD_SYMTAB: "BSD_SYMTAB",
  PT_MODE_WRITABLE: "PT_MODE_WRITABLE",
} as const);
/** The only XEN_VER the MAR loaders accept (quirk Q1). abi.md §4.1 */
export const XEN_GUEST_REQUIRED_XEN_VER = "3.0";
/** One of LOADER=generic or GUEST_OS=linux is required. abi.md §4.1 */
export const XEN_GUEST_LOADER_GENERIC = "generic";
export const XEN_GUEST_OS_LINUX = "linux";

/**
 * Bootstrap layout rules of the MAR domU builder (xc_linux_build.c). Regions from v_start:
 * kernel, module, mfn_list, page tables (L2 then L1s), start_info, stack; v_end = next
 * END_ALIGN boundary after the stack with at least MIN_END_PADDING of slack. abi.md §4.2, §4.5
 */
export const BootLayoutMar = Object.freeze({
  /** Pages between the start_info page and the stack page (JUL: 1, the xenstore page). */
  PAGES_BETWEEN_START_INFO_AND_STACK: 0,
  /** Pages of bootstrap stack. */
  STACK_PAGES: 1,
  /** Initial ESP (and kernel_esp) = start_info VA + STACK_TOP_OFFSET. */
  STACK_TOP_OFFSET: 2 * 4096,
  /** v_end is rounded up to this absolute boundary. */
  END_ALIGN: 1 << 22,
  /** If rounding leaves less than this after the stack, another END_ALIGN is added. */
  MIN_END_PADDING: 512 << 10,
  /** The page-table frame count search starts here (one L2 + at least one L1). */
  MIN_PT_FRAMES: 2,
  /** Bytes per mfn_list entry (unsigned long). */
  MFN_LIST_ENTRY_SIZE: 4,
  /** n_vcpu the domU builder writes for a one-VCPU domain. */
  DEFAULT_VCPUS: 1,
} as const);

/**
 * Bootstrap layout rules of the JUL domU builder: a xenstore page sits between start_info and
 * the stack, so ESP = start_info VA + 3 pages. abi.md §4.2, §4.5
 */
export const BootLayoutJul = Object.freeze({
  ...BootLayoutMar,
  PAGES_BETWEEN_START_INFO_AND_STACK: 1,
  STACK_TOP_OFFSET: 3 * 4096,
} as const);
