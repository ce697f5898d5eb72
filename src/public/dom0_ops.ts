/**
 * dom0_op (hypercall 7): the envelope, commands, flags and the layout of every command's
 * struct (Xen's public dom0_ops.h, MAR), plus full_execution_context_t. Offsets of union
 * members are relative to the union (DOM0_OP.u = 8). abi.md §2.11, semantics.md §8.
 */

/** The interface version every request must carry, MAR (else -EACCES). abi.md §2.11.1 */
export const DOM0_INTERFACE_VERSION = 0xaaaa1002;
/** The version of the Xen 2.0 interface (pre-12-Mar-2005), for reference. abi.md §2.11.4 */
export const DOM0_INTERFACE_VERSION_XEN20 = 0xaaaa1001;

/** dom0_op_t, MAR: cmd, interface_version, a 72-byte union. 80 bytes, copied back whole. */
export const Dom0Op = Object.freeze({ cmd: 0, interface_version: 4, u: 8, SIZE: 80 } as const);

/** DOM0_* command numbers, MAR. abi.md §2.11.2 */
export const Dom0Cmd = Object.freeze({
  GETMEMLIST: 2,
  SCHEDCTL: 6,
  ADJUSTDOM: 7,
  CREATEDOMAIN: 8,
  DESTROYDOMAIN: 9,
  PAUSEDOMAIN: 10,
  UNPAUSEDOMAIN: 11,
  GETDOMAININFO: 12,
  SETDOMAININFO: 13,
  MSR: 15,
  DEBUG: 16,
  SETTIME: 17,
  GETPAGEFRAMEINFO: 18,
  READCONSOLE: 19,
  PINCPUDOMAIN: 20,
  GETTBUFS: 21,
  PHYSINFO: 22,
  PCIDEV_ACCESS: 23,
  SCHED_ID: 24,
  SHADOW_CONTROL: 25,
  SETDOMAININITIALMEM: 27,
  SETDOMAINMAXMEM: 28,
  GETPAGEFRAMEINFO2: 29,
  ADD_MEMTYPE: 31,
  DEL_MEMTYPE: 32,
  READ_MEMTYPE: 33,
  PERFCCONTROL: 34,
  MICROCODE: 35,
  IOPORT_PERMISSION: 36,
} as const);

/**
 * Xen 2.0 commands March 2005 renamed or removed (abi.md §2.11.4): BUILDDOMAIN is 13 (the
 * same number and shape as SETDOMAININFO), IOPL 14, SETDOMAINVMASSIST 30.
 */
export const Dom0CmdXen20 = Object.freeze({ BUILDDOMAIN: 13, IOPL: 14, SETDOMAINVMASSIST: 30 } as const);

// ---------------------------------------------------------------------------------------------
// Union members (offsets inside the union). abi.md §2.11.3

export const Dom0GetMemList = Object.freeze({
  domain: 0,
  max_pfns: 8,
  buffer: 16,
  num_pfns: 24,
  SIZE: 32,
} as const);
export const Dom0CreateDomain = Object.freeze({ memory_kb: 0, cpu: 8, domain: 16, SIZE: 20 } as const);
/** destroydomain / pausedomain / unpausedomain. */
export const Dom0DomainOnly = Object.freeze({ domain: 0, SIZE: 4 } as const);
export const Dom0GetDomainInfo = Object.freeze({
  domain: 0,
  exec_domain: 2,
  flags: 4,
  ctxt: 8,
  tot_pages: 16,
  max_pages: 24,
  shared_info_frame: 32,
  cpu_time: 40,
  SIZE: 48,
} as const);
export const Dom0SetDomainInfo = Object.freeze({ domain: 0, exec_domain: 2, ctxt: 8, SIZE: 16 } as const);
/** Xen 2.0 BUILDDOMAIN: SETDOMAININFO's shape with a pad where exec_domain is. abi.md §2.11.4 */
export const Dom0BuildDomainXen20 = Object.freeze({ domain: 0, ctxt: 8, SIZE: 16 } as const);
export const Dom0IoplXen20 = Object.freeze({ domain: 0, iopl: 4, SIZE: 8 } as const);
export const Dom0SetDomainVmAssistXen20 = Object.freeze({ domain: 0, cmd: 4, type: 8, SIZE: 12 } as const);
export const Dom0Msr = Object.freeze({
  write: 0,
  cpu_mask: 4,
  msr: 8,
  in1: 12,
  in2: 16,
  out1: 20,
  out2: 24,
  SIZE: 28,
} as const);
export const Dom0Debug = Object.freeze({
  domain: 0,
  opcode: 2,
  in1: 4,
  in2: 8,
  in3: 12,
  in4: 16,
  status: 20,
  out1: 24,
  out2: 28,
  SIZE: 32,
} as const);
export const Dom0SetTime = Object.freeze({ secs: 0, usecs: 4, system_time: 8, SIZE: 16 } as const);
export const Dom0GetPageFrameInfo = Object.freeze({ pfn: 0, domain: 8, type: 12, SIZE: 16 } as const);
export const Dom0ReadConsole = Object.freeze({ str: 0, count: 8, cmd: 12, SIZE: 16 } as const);
export const Dom0PinCpuDomain = Object.freeze({ domain: 0, exec_domain: 2, cpu: 4, SIZE: 8 } as const);
export const Dom0GetTbufs = Object.freeze({ mach_addr: 0, size: 8, SIZE: 12 } as const);
export const Dom0PhysInfo = Object.freeze({
  ht_per_core: 0,
  cores: 4,
  cpu_khz: 8,
  total_pages: 16,
  free_pages: 24,
  SIZE: 32,
} as const);
export const Dom0PcidevAccess = Object.freeze({
  domain: 0,
  bus: 4,
  dev: 8,
  func: 12,
  enable: 16,
  SIZE: 20,
} as const);
export const Dom0SchedId = Object.freeze({ sched_id: 0, SIZE: 4 } as const);
export const Dom0ShadowControl = Object.freeze({
  domain: 0,
  op: 4,
  dirty_bitmap: 8,
  pages: 16,
  fault_count: 24,
  dirty_count: 28,
  dirty_net_count: 32,
  dirty_block_count: 36,
  SIZE: 40,
} as const);
export const Dom0SetDomainInitialMem = Object.freeze({ domain: 0, initial_memkb: 8, SIZE: 16 } as const);
export const Dom0SetDomainMaxMem = Object.freeze({ domain: 0, max_memkb: 8, SIZE: 16 } as const);
export const Dom0GetPageFrameInfo2 = Object.freeze({ domain: 0, num: 8, array: 16, SIZE: 24 } as const);
export const Dom0AddMemtype = Object.freeze({
  pfn: 0,
  nr_pfns: 8,
  type: 16,
  handle: 24,
  reg: 28,
  SIZE: 32,
} as const);
export const Dom0DelMemtype = Object.freeze({ handle: 0, reg: 4, SIZE: 8 } as const);
export const Dom0ReadMemtype = Object.freeze({ reg: 0, pfn: 8, nr_pfns: 16, type: 24, SIZE: 32 } as const);
export const Dom0PerfcControl = Object.freeze({ op: 0, nr_counters: 4, desc: 8, SIZE: 16 } as const);
export const Dom0Microcode = Object.freeze({ data: 0, length: 8, SIZE: 16 } as const);
export const Dom0IoportPermission = Object.freeze({
  domain: 0,
  first_port: 2,
  nr_ports: 4,
  allow_access: 6,
  SIZE: 8,
} as const);

// ---------------------------------------------------------------------------------------------
// Flags and values

/** getdomaininfo.flags. abi.md §2.11.2 */
export const DomFlags = Object.freeze({
  DYING: 1 << 0,
  CRASHED: 1 << 1,
  SHUTDOWN: 1 << 2,
  PAUSED: 1 << 3,
  BLOCKED: 1 << 4,
  RUNNING: 1 << 5,
  CPUMASK: 255,
  CPUSHIFT: 8,
  SHUTDOWNMASK: 255,
  SHUTDOWNSHIFT: 16,
} as const);

/** getpageframeinfo(2) type values (n << 28, not Xen's internal n << 29). abi.md §2.11.2 */
export const PageFrameType = Object.freeze({
  NOTAB: 0,
  L1TAB: 1 << 28,
  L2TAB: 2 << 28,
  L3TAB: 3 << 28,
  L4TAB: 4 << 28,
  LPINTAB: 1 << 31,
  XTAB: 0xf << 28,
  LTAB_MASK: 0xf << 28,
  LTABTYPE_MASK: 0x7 << 28,
} as const);
/** getpageframeinfo2 accepts at most this many frames (else -E2BIG). */
export const GETPAGEFRAMEINFO2_MAX = 1024;

/** readconsole.cmd bit: reset the ring after reading. abi.md §2.11.2 */
export const CONSOLE_RING_CLEAR = 1;
/** Bytes of Xen's console "ring" (a linear buffer that stops when full). semantics.md §9.2 */
export const CONSOLE_RING_SIZE = 16392;

/** shadow_control ops. semantics.md §11 */
export const ShadowOp = Object.freeze({
  OFF: 0,
  ENABLE_TEST: 1,
  ENABLE_LOGDIRTY: 2,
  FLUSH: 10,
  CLEAN: 11,
  PEEK: 12,
} as const);

/** pincpudomain.cpu value that only unpins. */
export const PINCPU_UNPIN = -1;
/** createdomain.cpu value asking for automatic placement. */
export const CREATEDOMAIN_ANY_CPU = 0xffffffff;
/** Explicit ids must be below DOMID_FIRST_RESERVED; the auto allocator starts below this. */
export const INITIAL_TOPDOM = 101;

/** perfccontrol ops (perf counters are not built: -ENOSYS). */
export const PerfcOp = Object.freeze({ RESET: 1, QUERY: 2 } as const);

// ---------------------------------------------------------------------------------------------
// full_execution_context_t, MAR (packed, 2520 bytes). abi.md §2.11.5, semantics.md §8.3

export const EcfFlags = Object.freeze({ I387_VALID: 1, VMX_GUEST: 2, IN_KERNEL: 4 } as const);

/** execution_context_t (68 bytes) inside the full context at cpu_ctxt = 4. abi.md §3.5 */
export const ExecutionContext = Object.freeze({
  ebx: 0,
  ecx: 4,
  edx: 8,
  esi: 12,
  edi: 16,
  ebp: 20,
  eax: 24,
  error_code: 28,
  entry_vector: 30,
  eip: 32,
  cs: 36,
  eflags: 40,
  esp: 44,
  ss: 48,
  es: 52,
  ds: 56,
  fs: 60,
  gs: 64,
  SIZE: 68,
} as const);

export const FullExecutionContext = Object.freeze({
  flags: 0,
  cpu_ctxt: 4,
  fpu_ctxt: 72,
  FPU_CTXT_SIZE: 256,
  trap_ctxt: 328,
  fast_trap_idx: 2376,
  ldt_base: 2380,
  ldt_ents: 2384,
  gdt_frames: 2388,
  GDT_FRAMES: 16,
  gdt_ents: 2452,
  kernel_ss: 2456,
  kernel_esp: 2460,
  pt_base: 2464,
  debugreg: 2468,
  event_callback_cs: 2500,
  event_callback_eip: 2504,
  failsafe_callback_cs: 2508,
  failsafe_callback_eip: 2512,
  vm_assist: 2516,
  SIZE: 2520,
} as const);

/** Most vcpus a domain may have (exec_domain >= this is -EINVAL). */
export const MAX_VIRT_CPUS_DOM0 = 32;

// ---------------------------------------------------------------------------------------------
// July 2005 (abi.md §2.11.1, §2.11.5 "JUL dom0 structs"): natural alignment, no dummy union.
// src/xen/dom0_compat.ts translates a JUL caller's op to and from the MAR form the core runs.

/** The interface version every JUL request must carry (else -EACCES). */
export const DOM0_INTERFACE_VERSION_JUL = 0xaaaa100c;
/** dom0_op_t, JUL: cmd, interface_version, union at 8 (largest member getdomaininfo, 420). */
export const Dom0OpJul = Object.freeze({ cmd: 0, interface_version: 4, u: 8, SIZE: 428 } as const);
/** JUL union members (offsets inside the union). */
export const Dom0GetMemListJul = Object.freeze({
  domain: 0,
  max_pfns: 4,
  buffer: 8,
  num_pfns: 12,
  SIZE: 16,
} as const);
export const Dom0CreateDomainJul = Object.freeze({ ssidref: 0, domain: 4, SIZE: 8 } as const);
export const Dom0DomainOnlyJul = Object.freeze({ domain: 0, SIZE: 2 } as const);
export const Dom0GetDomainInfoJul = Object.freeze({
  domain: 0,
  flags: 4,
  tot_pages: 8,
  max_pages: 12,
  shared_info_frame: 16,
  cpu_time: 20,
  n_vcpu: 28,
  vcpu_to_cpu: 32,
  cpumap: 160,
  ssidref: 416,
  SIZE: 420,
} as const);
export const Dom0SetDomainInfoJul = Object.freeze({ domain: 0, vcpu: 2, ctxt: 4, SIZE: 8 } as const);
export const Dom0ReadConsoleJul = Object.freeze({ clear: 0, buffer: 4, count: 8, SIZE: 12 } as const);
export const Dom0PhysInfoJul = Object.freeze({
  threads_per_core: 0,
  cores_per_socket: 4,
  sockets_per_node: 8,
  nr_nodes: 12,
  cpu_khz: 16,
  total_pages: 20,
  free_pages: 24,
  SIZE: 28,
} as const);
export const Dom0SetDomainMaxMemJul = Object.freeze({ domain: 0, max_memkb: 4, SIZE: 8 } as const);
export const Dom0GetPageFrameInfoJul = Object.freeze({ pfn: 0, domain: 4, type: 8, SIZE: 12 } as const);
export const Dom0GetPageFrameInfo2Jul = Object.freeze({ domain: 0, num: 4, array: 8, SIZE: 12 } as const);
export const Dom0GetVcpuContextJul = Object.freeze({
  domain: 0,
  vcpu: 2,
  ctxt: 4,
  cpu_time: 8,
  SIZE: 16,
} as const);
/** DOM0_GETVCPUCONTEXT is new at JUL; PCIDEV_ACCESS (23) and SETDOMAININITIALMEM (27) are gone. */
export const DOM0_GETVCPUCONTEXT_JUL = 37;
/** vcpu_guest_context_t, JUL (2800 bytes; replaces full_execution_context_t). abi.md §2.11.5 */
export const VcpuGuestContextJul = Object.freeze({
  fpu_ctxt: 0,
  flags: 512,
  user_regs: 516,
  trap_ctxt: 584,
  ldt_base: 2632,
  ldt_ents: 2636,
  gdt_frames: 2640,
  gdt_ents: 2704,
  kernel_ss: 2708,
  kernel_sp: 2712,
  ctrlreg: 2716,
  debugreg: 2748,
  event_callback_cs: 2780,
  event_callback_eip: 2784,
  failsafe_callback_cs: 2788,
  failsafe_callback_eip: 2792,
  vm_assist: 2796,
  SIZE: 2800,
} as const);

/** DOM0_* command numbers, JUL: MAR's minus PCIDEV_ACCESS / SETDOMAININITIALMEM, 21 is TBUFCONTROL, plus 37. */
export const Dom0CmdJul = Object.freeze({
  GETMEMLIST: 2,
  SCHEDCTL: 6,
  ADJUSTDOM: 7,
  CREATEDOMAIN: 8,
  DESTROYDOMAIN: 9,
  PAUSEDOMAIN: 10,
  UNPAUSEDOMAIN: 11,
  GETDOMAININFO: 12,
  SETDOMAININFO: 13,
  MSR: 15,
  DEBUG: 16,
  SETTIME: 17,
  GETPAGEFRAMEINFO: 18,
  READCONSOLE: 19,
  PINCPUDOMAIN: 20,
  TBUFCONTROL: 21,
  PHYSINFO: 22,
  SCHED_ID: 24,
  SHADOW_CONTROL: 25,
  SETDOMAINMAXMEM: 28,
  GETPAGEFRAMEINFO2: 29,
  ADD_MEMTYPE: 31,
  DEL_MEMTYPE: 32,
  READ_MEMTYPE: 33,
  PERFCCONTROL: 34,
  MICROCODE: 35,
  IOPORT_PERMISSION: 36,
  GETVCPUCONTEXT: 37,
} as const);
/** pincpudomain, JUL: a pointer to a u64 cpumap instead of a CPU number. */
export const Dom0PinCpuDomainJul = Object.freeze({ domain: 0, vcpu: 2, cpumap: 4, SIZE: 8 } as const);
/** cpumap value meaning "run anywhere" (unpins). */
export const CPUMAP_RUNANYWHERE = 0xffffffffffffffffn;
export const Dom0TbufControlJul = Object.freeze({
  op: 0,
  cpu_mask: 4,
  evt_mask: 8,
  mach_addr: 12,
  size: 16,
  SIZE: 20,
} as const);
export const DOM0_TBUF_GET_INFO = 0;
export const Dom0ShadowControlJul = Object.freeze({
  domain: 0,
  op: 4,
  dirty_bitmap: 8,
  pages: 12,
  fault_count: 16,
  dirty_count: 20,
  dirty_net_count: 24,
  dirty_block_count: 28,
  SIZE: 32,
} as const);
export const Dom0AddMemtypeJul = Object.freeze({
  pfn: 0,
  nr_pfns: 4,
  type: 8,
  handle: 12,
  reg: 16,
  SIZE: 20,
} as const);
export const Dom0ReadMemtypeJul = Object.freeze({ reg: 0, pfn: 4, nr_pfns: 8, type: 12, SIZE: 16 } as const);
export const Dom0PerfcControlJul = Object.freeze({ op: 0, nr_counters: 4, desc: 8, SIZE: 12 } as const);
export const Dom0MicrocodeJul = Object.freeze({ data: 0, length: 4, SIZE: 8 } as const);
/** getdomaininfo.ssidref when no ACM policy is loaded (ACM_DEFAULT_SSID). */
export const ACM_DEFAULT_SSID_JUL = 0;
