/**
 * grant_table_op (hypercall 20) and the shared grant entries (Xen's public grant_table.h).
 * abi.md §2.9.
 */

/** grant_entry_t, 8 bytes at both revisions. abi.md §2.9.1 */
export const GrantEntry = Object.freeze({ flags: 0, domid: 2, frame: 4, SIZE: 8 } as const);

/** GTF_* bits of grant_entry_t.flags. abi.md §2.9.1 */
export const Gtf = Object.freeze({
  invalid: 0,
  permit_access: 1,
  accept_transfer: 2,
  type_mask: 3,
  /** permit_access: set by the guest. */
  readonly: 1 << 2,
  /** permit_access: set by Xen while mapped. */
  reading: 1 << 3,
  /** permit_access: set by Xen while mapped writable. */
  writing: 1 << 4,
  /** accept_transfer: set by Xen. */
  transfer_committed: 1 << 2,
  /** accept_transfer: set by Xen (from 2005-04-04; never at MAR, quirk Q15 — tsxen sets it). */
  transfer_completed: 1 << 3,
} as const);

/** GNTMAP_* flags of a map request. abi.md §2.9.1 */
export const GntMap = Object.freeze({
  device_map: 1 << 0,
  host_map: 1 << 1,
  readonly: 1 << 2,
  application_map: 1 << 3,
} as const);

/** GNTST_* status codes, MAR. abi.md §2.9.1 */
export const GntStMar = Object.freeze({
  okay: 0,
  general_error: -1,
  bad_domain: -2,
  bad_gntref: -3,
  bad_handle: -4,
  bad_virt_addr: -5,
  no_device_space: -6,
  permission_denied: -7,
} as const);

/** GNTST_* status codes, JUL (bad_dev_addr inserted at -6). abi.md §2.9.1 */
export const GntStJul = Object.freeze({
  okay: 0,
  general_error: -1,
  bad_domain: -2,
  bad_gntref: -3,
  bad_handle: -4,
  bad_virt_addr: -5,
  bad_dev_addr: -6,
  no_device_space: -7,
  permission_denied: -8,
} as const);

/** GNTTABOP_* commands. abi.md §2.9.2 */
export const GnttabOp = Object.freeze({
  map_grant_ref: 0,
  unmap_grant_ref: 1,
  setup_table: 2,
  dump_table: 3,
} as const);

/** Grant-table size: MAR one page of 512 entries; JUL 4 pages, 2048 entries. abi.md §2.9.1 */
export const NR_GRANT_FRAMES_MAR = 1;
export const NR_GRANT_ENTRIES_MAR = 512;
export const NR_GRANT_FRAMES_JUL = 4;
export const NR_GRANT_ENTRIES_JUL = 2048;
/** JUL unmap: dev_bus_addr meaning "release the device mapping with the host one". abi.md §2.9.2 */
export const GNTUNMAP_DEV_FROM_VIRT_JUL = 0xffffffff;
/** Mapping handles per domain. */
export const NR_MAPTRACK_ENTRIES = 1024;
/** MAR: grant_table_op count above this is -EINVAL. abi.md §2.9.2 */
export const GNTTABOP_MAX_COUNT_MAR = 512;

/** gnttab_map_grant_ref_t, MAR (packed). handle < 0 is a GNTST code. abi.md §2.9.2 */
export const GnttabMapGrantRefMar = Object.freeze({
  host_virt_addr: 0,
  dom: 8,
  ref: 10,
  flags: 12,
  handle: 14,
  dev_bus_addr: 16,
  SIZE: 24,
} as const);
/** gnttab_map_grant_ref_t, JUL. abi.md §2.9.2 */
export const GnttabMapGrantRefJul = Object.freeze({
  host_virt_addr: 0,
  dom: 4,
  ref: 6,
  flags: 8,
  handle: 10,
  dev_bus_addr: 12,
  SIZE: 16,
} as const);

/** gnttab_unmap_grant_ref_t, MAR (packed). abi.md §2.9.2 */
export const GnttabUnmapGrantRefMar = Object.freeze({
  host_virt_addr: 0,
  dev_bus_addr: 8,
  handle: 16,
  status: 18,
  SIZE: 24,
} as const);
/** gnttab_unmap_grant_ref_t, JUL. abi.md §2.9.2 */
export const GnttabUnmapGrantRefJul = Object.freeze({
  host_virt_addr: 0,
  dev_bus_addr: 4,
  handle: 8,
  status: 10,
  SIZE: 12,
} as const);

/** gnttab_setup_table_t, MAR (packed). abi.md §2.9.2 */
export const GnttabSetupTableMar = Object.freeze({
  dom: 0,
  nr_frames: 2,
  status: 6,
  frame_list: 8,
  SIZE: 16,
} as const);
/** gnttab_setup_table_t, JUL. abi.md §2.9.2 */
export const GnttabSetupTableJul = Object.freeze({
  dom: 0,
  nr_frames: 2,
  status: 4,
  frame_list: 8,
  SIZE: 12,
} as const);

/** gnttab_dump_table_t, both revisions. abi.md §2.9.2 */
export const GnttabDumpTable = Object.freeze({ dom: 0, status: 2, SIZE: 4 } as const);
