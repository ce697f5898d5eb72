/**
 * The guest interface revisions tsxen speaks, one per domain: March 2005 ("2005-03", the
 * primary target) and July 2005 ("2005-07", what Xen's Mini-OS of that month was built
 * against). abi.md §5 lists every difference.
 *
 * The hypervisor core is revision-blind: it reads every per-revision number, selector, struct
 * layout and argument convention from the domain's `GuestAbi` (`v.domain.abi`), at the
 * boundary where guest bytes and registers are decoded — as later Xen's 32-on-64 "compat"
 * layer does. This file only gathers data from src/public; it has no behaviour.
 */
import {
  FIRST_RESERVED_GDT_ENTRY_JUL,
  FIRST_RESERVED_GDT_ENTRY_MAR,
  FIRST_RESERVED_GDT_PAGE_JUL,
  LAST_RESERVED_GDT_BYTE_JUL,
  LAST_RESERVED_GDT_ENTRY_MAR,
  LDT_GDT_ENTRY_JUL,
  LDT_GDT_ENTRY_MAR,
  M2P_INVALID_ENTRY,
  M2P_UNSET_ENTRY,
  MAX_GDT_ENTRIES_JUL,
  MAX_GDT_ENTRIES_MAR,
  MAX_GDT_FRAMES,
  NR_RESERVED_GDT_ENTRIES_MAR,
  SelectorsJul,
  SelectorsMar,
} from "../public/arch_x86_32.js";
import { DOM0_INTERFACE_VERSION, DOM0_INTERFACE_VERSION_JUL, Dom0Op, Dom0OpJul } from "../public/dom0_ops.js";
import { EvtchnOpJul, EvtchnOpMar } from "../public/event_channel.js";
import {
  GNTUNMAP_DEV_FROM_VIRT_JUL,
  GntStJul,
  GntStMar,
  GnttabMapGrantRefJul,
  GnttabMapGrantRefMar,
  GnttabSetupTableJul,
  GnttabSetupTableMar,
  GnttabUnmapGrantRefJul,
  GnttabUnmapGrantRefMar,
  NR_GRANT_ENTRIES_JUL,
  NR_GRANT_ENTRIES_MAR,
  NR_GRANT_FRAMES_JUL,
  NR_GRANT_FRAMES_MAR,
} from "../public/grant_table.js";
import { PhysdevOpJul, PhysdevOpMar, PhysdevSetIobitmap, PhysdevSetIobitmapJul } from "../public/physdev.js";
import {
  CONSOLEIO_WRITE_CHUNK_JUL,
  CONSOLEIO_WRITE_MAX_MAR,
  HypercallJul,
  HypercallMar,
  MmuJul,
  MmuMar,
  MmuUpdateJul,
  MmuUpdateMar,
  MulticallEntryJul,
  MulticallEntryMar,
  SchedOpJul,
  SchedOpMar,
  StartInfoJul,
  StartInfoMar,
} from "../public/xen.js";

/** The interface revisions, named by month. */
export type AbiName = "2005-03" | "2005-07";
export const ABI_NAMES: readonly AbiName[] = Object.freeze(["2005-03", "2005-07"]);
export const DEFAULT_ABI: AbiName = "2005-03";

/** Which guest register (0 = EBX .. 4 = EDI) carries an argument. */
type ArgIndex = 0 | 1 | 2 | 3 | 4;

export interface GuestAbi {
  readonly name: AbiName;
  /** Hypercall numbers of this revision (absent ones are -ENOSYS). */
  readonly hypercall: Readonly<
    Partial<Record<keyof typeof HypercallJul | keyof typeof HypercallMar, number>>
  >;
  /** Xen's flat selectors. abi.md §3.2 */
  readonly selectors: typeof SelectorsMar | typeof SelectorsJul;
  /** Reserved-GDT geometry and set_gdt bounds. abi.md §3.2, §1.3 (#2), §1.4 (#2) */
  readonly gdt: {
    /** Index of the first Xen-reserved entry (VALID_SEL refuses GDT selectors from here on). */
    readonly firstReservedEntry: number;
    /** Reserved entries refused by VALID_SEL: [first, first + this). */
    readonly nrReservedEntries: number;
    /** GDT page (per-domain PTE) holding Xen's entries: MAR the guest's frame 0, JUL page 14. */
    readonly reservedPage: number;
    /** MAR: Xen writes its entries into the guest's first GDT frame (and protects them there). */
    readonly reservedInGuestFrame: boolean;
    /** set_gdt: entries must be >= this ... */
    readonly minEntries: number;
    /** ... and <= this. */
    readonly maxEntries: number;
    /** Per-domain GDT PTEs guest frames may occupy (and set_gdt tears down). */
    readonly guestPages: number;
    /** GDT entry Xen writes the LDT descriptor into (vcpu 0). */
    readonly ldtEntry: number;
    /** GDTR limit: null = entries*8-1 of the guest GDT; else fixed (JUL). */
    readonly fixedLimit: number | null;
    /** GDTR limit of a domain that never called set_gdt. */
    readonly defaultLimit: number;
  };
  /** multicall_entry_t. abi.md §2.1 */
  readonly multicallEntry: {
    readonly op: number;
    readonly result: number;
    readonly args: number;
    readonly SIZE: number;
  };
  /** mmu_update_t and its commands (EXTENDED_COMMAND -1 when absent). abi.md §2.3, §2.4 */
  readonly mmuUpdate: { readonly ptr: number; readonly val: number; readonly SIZE: number };
  /** Whether ptr/val are u64 (JUL) rather than u32. */
  readonly mmuUpdateWide: boolean;
  readonly mmu: {
    readonly NORMAL_PT_UPDATE: number;
    readonly MACHPHYS_UPDATE: number;
    readonly EXTENDED_COMMAND: number;
  };
  /** Argument carrying mmu_update's foreign domain (JUL ESI), or null (MAR: SET_FOREIGNDOM). */
  readonly mmuUpdateForeignDomArg: ArgIndex | null;
  /** update_va_mapping(_otherdomain): where flags and domid are, and whether EDX is the PTE high word. */
  readonly uvm: {
    readonly flagsArg: ArgIndex;
    readonly domidArg: ArgIndex;
    readonly pteHighArg: ArgIndex | null;
  };
  /** set_timer_op: which argument holds the high 32 bits (the other has the low). */
  readonly timerHighArg: ArgIndex;
  /** evtchn_op_t envelope. abi.md §2.8.1 */
  readonly evtchnOp: { readonly cmd: number; readonly u: number; readonly SIZE: number };
  /**
   * Event-channel semantics that moved (abi.md §2.8.1): alloc_unbound's port is in/out (JUL:
   * 0 allocates, else that port is made or kept UNBOUND for dom) rather than out only (MAR);
   * bind_ipi names a VCPU of the caller that must exist (JUL ipi_vcpu) rather than any id < 32.
   */
  readonly evtchn: { readonly allocUnboundPortIn: boolean; readonly ipiVcpuMustExist: boolean };
  /** physdev_op_t envelope, and whether the PCI ops (0..3) exist. abi.md §2.10 */
  readonly physdevOp: { readonly cmd: number; readonly u: number; readonly SIZE: number };
  readonly physdevPci: boolean;
  readonly physdevSetIobitmap: { readonly bitmap: number; readonly nr_ports: number; readonly SIZE: number };
  /** console_io write: MAR clamps and returns the count; JUL writes in chunks and returns 0. */
  readonly consoleWrite: {
    readonly maxBytes: number | null;
    readonly chunk: number | null;
    readonly returnsCount: boolean;
  };
  /** xen_version: only cmd 0 (MAR) or also extraversion/compile_info (JUL). */
  readonly xenVersionInfo: boolean;
  /** sched_op commands. */
  readonly schedOp: {
    readonly yield: number;
    readonly block: number;
    readonly shutdown: number;
    /** JUL only: VCPU id in op bits 15:8. */
    readonly vcpu_down?: number;
    readonly vcpu_up?: number;
  };
  /** Bounce frames: CS slot bits 16..23 carry the saved upcall mask; EIP 0 crashes (JUL). */
  readonly bounceSavesUpcallMask: boolean;
  readonly bounceToZeroCrashes: boolean;
  /** start_info_t. abi.md §2.6 */
  readonly startInfo: typeof StartInfoMar | typeof StartInfoJul;
  /** dom0_op_t envelope and the interface version it must carry. abi.md §2.11.1 */
  readonly dom0Op: typeof Dom0Op | typeof Dom0OpJul;
  readonly dom0InterfaceVersion: number;
  /** Grant-table layouts and sizes. abi.md §2.9 */
  readonly grant: {
    readonly mapGrantRef: typeof GnttabMapGrantRefMar | typeof GnttabMapGrantRefJul;
    readonly unmapGrantRef: typeof GnttabUnmapGrantRefMar | typeof GnttabUnmapGrantRefJul;
    readonly setupTable: typeof GnttabSetupTableMar | typeof GnttabSetupTableJul;
    readonly status: typeof GntStMar | typeof GntStJul;
    readonly frames: number;
    readonly entries: number;
    /** setup_table with nr_frames 0 still reports GNTST_okay (JUL); MAR writes nothing. */
    readonly setupZeroFramesOkay: boolean;
    /** GNTTABOP_dump_table exists (MAR); JUL built it only with GRANT_DEBUG: -ENOSYS. */
    readonly dumpTable: boolean;
    /** unmap's dev_bus_addr value for "device mapping too" (JUL), or null (MAR). */
    readonly devFromVirt: number | null;
    /**
     * The M2P entry of the table's Xen-heap frames: MAR never writes one, so they keep Xen's
     * boot fill (M2P_UNSET_ENTRY, seen on real Xen: issue 17); JUL writes M2P_INVALID_ENTRY.
     */
    readonly frameM2p: number;
  };
}

export const ABIS: Readonly<Record<AbiName, GuestAbi>> = Object.freeze({
  "2005-03": Object.freeze<GuestAbi>({
    name: "2005-03",
    hypercall: HypercallMar,
    selectors: SelectorsMar,
    gdt: Object.freeze({
      firstReservedEntry: FIRST_RESERVED_GDT_ENTRY_MAR,
      nrReservedEntries: NR_RESERVED_GDT_ENTRIES_MAR,
      reservedPage: 0,
      reservedInGuestFrame: true,
      minEntries: LAST_RESERVED_GDT_ENTRY_MAR + 1,
      maxEntries: MAX_GDT_ENTRIES_MAR,
      guestPages: MAX_GDT_FRAMES,
      ldtEntry: LDT_GDT_ENTRY_MAR,
      fixedLimit: null,
      defaultLimit: (FIRST_RESERVED_GDT_ENTRY_MAR + NR_RESERVED_GDT_ENTRIES_MAR) * 8 - 1,
    }),
    multicallEntry: MulticallEntryMar,
    mmuUpdate: MmuUpdateMar,
    mmuUpdateWide: false,
    mmu: Object.freeze({ ...MmuMar }),
    mmuUpdateForeignDomArg: null,
    uvm: Object.freeze({ flagsArg: 2, domidArg: 3, pteHighArg: null }),
    timerHighArg: 0,
    evtchnOp: EvtchnOpMar,
    evtchn: Object.freeze({ allocUnboundPortIn: false, ipiVcpuMustExist: false }),
    physdevOp: PhysdevOpMar,
    physdevPci: true,
    physdevSetIobitmap: PhysdevSetIobitmap,
    consoleWrite: Object.freeze({ maxBytes: CONSOLEIO_WRITE_MAX_MAR, chunk: null, returnsCount: true }),
    xenVersionInfo: false,
    schedOp: SchedOpMar,
    bounceSavesUpcallMask: false,
    bounceToZeroCrashes: false,
    startInfo: StartInfoMar,
    dom0Op: Dom0Op,
    dom0InterfaceVersion: DOM0_INTERFACE_VERSION,
    grant: Object.freeze({
      mapGrantRef: GnttabMapGrantRefMar,
      unmapGrantRef: GnttabUnmapGrantRefMar,
      setupTable: GnttabSetupTableMar,
      status: GntStMar,
      frames: NR_GRANT_FRAMES_MAR,
      entries: NR_GRANT_ENTRIES_MAR,
      setupZeroFramesOkay: false,
      dumpTable: true,
      devFromVirt: null,
      frameM2p: M2P_UNSET_ENTRY,
    }),
  }),
  "2005-07": Object.freeze<GuestAbi>({
    name: "2005-07",
    hypercall: HypercallJul,
    selectors: SelectorsJul,
    gdt: Object.freeze({
      firstReservedEntry: FIRST_RESERVED_GDT_ENTRY_JUL,
      // VALID_SEL refuses every GDT index from 7168 up ("no guest entries beyond").
      nrReservedEntries: 0x2000 - FIRST_RESERVED_GDT_ENTRY_JUL,
      reservedPage: FIRST_RESERVED_GDT_PAGE_JUL,
      reservedInGuestFrame: false,
      minEntries: 0,
      maxEntries: MAX_GDT_ENTRIES_JUL,
      guestPages: FIRST_RESERVED_GDT_PAGE_JUL,
      ldtEntry: LDT_GDT_ENTRY_JUL,
      fixedLimit: LAST_RESERVED_GDT_BYTE_JUL,
      defaultLimit: LAST_RESERVED_GDT_BYTE_JUL,
    }),
    multicallEntry: MulticallEntryJul,
    mmuUpdate: MmuUpdateJul,
    mmuUpdateWide: true,
    mmu: Object.freeze({ ...MmuJul, EXTENDED_COMMAND: -1 }),
    mmuUpdateForeignDomArg: 3,
    uvm: Object.freeze({ flagsArg: 3, domidArg: 4, pteHighArg: 2 }),
    timerHighArg: 1,
    evtchnOp: EvtchnOpJul,
    evtchn: Object.freeze({ allocUnboundPortIn: true, ipiVcpuMustExist: true }),
    physdevOp: PhysdevOpJul,
    physdevPci: false,
    physdevSetIobitmap: PhysdevSetIobitmapJul,
    consoleWrite: Object.freeze({ maxBytes: null, chunk: CONSOLEIO_WRITE_CHUNK_JUL, returnsCount: false }),
    xenVersionInfo: true,
    schedOp: SchedOpJul,
    bounceSavesUpcallMask: true,
    bounceToZeroCrashes: true,
    startInfo: StartInfoJul,
    dom0Op: Dom0OpJul,
    dom0InterfaceVersion: DOM0_INTERFACE_VERSION_JUL,
    grant: Object.freeze({
      mapGrantRef: GnttabMapGrantRefJul,
      unmapGrantRef: GnttabUnmapGrantRefJul,
      setupTable: GnttabSetupTableJul,
      status: GntStJul,
      frames: NR_GRANT_FRAMES_JUL,
      entries: NR_GRANT_ENTRIES_JUL,
      setupZeroFramesOkay: true,
      dumpTable: false,
      devFromVirt: GNTUNMAP_DEV_FROM_VIRT_JUL,
      frameM2p: M2P_INVALID_ENTRY,
    }),
  }),
});

/** The revision called `name`, or null when there is no such revision. */
export function abiByName(name: string): GuestAbi | null {
  return Object.hasOwn(ABIS, name) ? ABIS[name as AbiName] : null;
}
