/**
 * Error numbers a hypercall returns, negated, in EAX (Linux/i386 values). abi.md §1.2.
 * A failing call returns `-EINVAL` etc.; the guest sees e.g. 0xFFFFFFEA for -EINVAL.
 */

/** Privilege failure. */
export const EPERM = 1;
/** Not used by hypercall paths; kept for completeness of the table. */
export const ENOENT = 2;
/** Domain id not found. */
export const ESRCH = 3;
export const EINTR = 4;
/** Microcode update only. */
export const EIO = 5;
/** MTRR dom0_ops only. */
export const ENXIO = 6;
/** DOM0_GETPAGEFRAMEINFO2 with num > 1024. */
export const E2BIG = 7;
/** Memory still being scrubbed (createdomain / setdomaininitialmem). */
export const EAGAIN = 11;
export const ENOMEM = 12;
/** dom0_op interface_version mismatch. */
export const EACCES = 13;
/** Bad guest pointer. */
export const EFAULT = 14;
/** EVTCHNOP_bind_pirq on an IRQ bound non-shareably. */
export const EBUSY = 16;
export const EEXIST = 17;
export const ENODEV = 19;
/** The general failure code. */
export const EINVAL = 22;
/** Event-channel port space exhausted. */
export const ENOSPC = 28;
/** Unimplemented hypercall or sub-command. */
export const ENOSYS = 38;

/** Name of each errno value, for logs and test messages. */
export const ErrnoName: Readonly<Record<number, string>> = Object.freeze({
  [EPERM]: "EPERM",
  [ENOENT]: "ENOENT",
  [ESRCH]: "ESRCH",
  [EINTR]: "EINTR",
  [EIO]: "EIO",
  [ENXIO]: "ENXIO",
  [E2BIG]: "E2BIG",
  [EAGAIN]: "EAGAIN",
  [ENOMEM]: "ENOMEM",
  [EACCES]: "EACCES",
  [EFAULT]: "EFAULT",
  [EBUSY]: "EBUSY",
  [EEXIST]: "EEXIST",
  [ENODEV]: "ENODEV",
  [EINVAL]: "EINVAL",
  [ENOSPC]: "ENOSPC",
  [ENOSYS]: "ENOSYS",
});
