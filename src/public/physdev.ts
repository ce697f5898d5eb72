/**
 * physdev_op (hypercall 19): commands, flags and layouts (Xen's public physdev.h), MAR.
 * abi.md §2.10, semantics.md §9.1.
 */

/** PHYSDEVOP_* commands, MAR. An unknown cmd is -EINVAL (not -ENOSYS). abi.md §2.10 */
export const PhysdevOp = Object.freeze({
  PCI_CFGREG_READ: 0,
  PCI_CFGREG_WRITE: 1,
  PCI_INITIALISE_DEVICE: 2,
  PCI_PROBE_ROOT_BUSES: 3,
  IRQ_UNMASK_NOTIFY: 4,
  IRQ_STATUS_QUERY: 5,
  SET_IOPL: 6,
  SET_IOBITMAP: 7,
} as const);

/** irq_status_query.flags: the guest must call IRQ_UNMASK_NOTIFY after servicing. abi.md §2.10 */
export const PHYSDEVOP_IRQ_NEEDS_UNMASK_NOTIFY = 1;

/** physdev_op_t, MAR: cmd, pad, union at 8. Xen copies all 40 bytes back, even on error. */
export const PhysdevOpMar = Object.freeze({ cmd: 0, __pad: 4, u: 8, SIZE: 40 } as const);

/** Union members, offsets relative to physdev_op_t.u (MAR). abi.md §2.10 */
export const PhysdevPciCfgreg = Object.freeze({
  bus: 0,
  dev: 4,
  func: 8,
  reg: 12,
  len: 16,
  value: 20,
  SIZE: 24,
} as const);
export const PhysdevPciInitialiseDevice = Object.freeze({ bus: 0, dev: 4, func: 8, SIZE: 12 } as const);
/** busmask: u32[8], one bit per bus 0..255. */
export const PhysdevPciProbeRootBuses = Object.freeze({ busmask: 0, SIZE: 32 } as const);
export const PhysdevIrqStatusQuery = Object.freeze({ irq: 0, flags: 4, SIZE: 8 } as const);
export const PhysdevSetIopl = Object.freeze({ iopl: 0, SIZE: 4 } as const);
export const PhysdevSetIobitmap = Object.freeze({ bitmap: 0, nr_ports: 8, SIZE: 16 } as const);

/** Xen's NR_IRQS on x86_32 (256 - FIRST_EXTERNAL_VECTOR 0x30): IRQ_STATUS_QUERY's bound. */
export const NR_IRQS_MAR = 208;
/** Bytes of an I/O bitmap (SET_IOBITMAP checks this much is readable). */
export const IOBMP_BYTES = 8192;
/** At most this many domains share one physical IRQ (IRQ_MAX_GUESTS). semantics.md §5.5 */
export const IRQ_MAX_GUESTS = 7;
/** PCI bounds checked by the physdev access check. semantics.md §9.1 */
export const PCI_BUSMAX = 255;
export const PCI_DEVMAX = 31;
export const PCI_FUNCMAX = 7;

/** physdev_op_t, JUL: cmd, union at 4 (16 bytes); the PCI ops (0..3) are gone. abi.md §2.10 */
export const PhysdevOpJul = Object.freeze({ cmd: 0, u: 4, SIZE: 16 } as const);
/** PHYSDEVOP_* commands added at JUL (local APIC access, vector assignment); dom0 only. */
export const PhysdevOpJulExtra = Object.freeze({ APIC_READ: 8, APIC_WRITE: 9, ASSIGN_VECTOR: 10 } as const);
/** JUL SET_IOBITMAP: bitmap @0, nr_ports @4 (8 bytes). abi.md §2.10 */
export const PhysdevSetIobitmapJul = Object.freeze({ bitmap: 0, nr_ports: 4, SIZE: 8 } as const);
