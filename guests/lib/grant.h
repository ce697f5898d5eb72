/*
 * Grant tables (hypercall 20), MAR layouts, or JUL's under XEN_ABI_JUL (abi.md §2.9): the shared entries, the op structs,
 * and small wrappers for the grant guests. Each wrapper returns the hypercall's result; the
 * per-entry outcome is in the struct (handle / status).
 */
#ifndef TSXEN_GRANT_H
#define TSXEN_GRANT_H
#include "lib.h"

typedef u16 grant_ref_t;

typedef struct {
	u16 flags;
	domid_t domid;
	u32 frame;
} grant_entry_t; /* 8 bytes */

#ifdef XEN_ABI_JUL
#define NR_GRANT_FRAMES 4
#define NR_GRANT_ENTRIES 2048
#define GNTUNMAP_DEV_FROM_VIRT (~0U)
#define GRANT_FRAME_M2P 0xFFFFFFFFu /* July writes INVALID_M2P_ENTRY */
#else
#define NR_GRANT_FRAMES 1
#define NR_GRANT_ENTRIES 512
#define GRANT_FRAME_M2P 0x55555555u /* never written: Xen's boot fill of the M2P */
#endif
#define NR_MAPTRACK_ENTRIES 1024

#define GTF_invalid 0
#define GTF_permit_access 1
#define GTF_accept_transfer 2
#define GTF_type_mask 3
#define GTF_readonly (1 << 2)
#define GTF_reading (1 << 3)
#define GTF_writing (1 << 4)
#define GTF_transfer_committed (1 << 2)
#define GTF_transfer_completed (1 << 3)

#define GNTTABOP_map_grant_ref 0
#define GNTTABOP_unmap_grant_ref 1
#define GNTTABOP_setup_table 2
#define GNTTABOP_dump_table 3

#define GNTMAP_device_map (1 << 0)
#define GNTMAP_host_map (1 << 1)
#define GNTMAP_readonly (1 << 2)
#define GNTMAP_application_map (1 << 3)

#define GNTST_okay 0
#define GNTST_general_error (-1)
#define GNTST_bad_domain (-2)
#define GNTST_bad_gntref (-3)
#define GNTST_bad_handle (-4)
#define GNTST_bad_virt_addr (-5)
#ifdef XEN_ABI_JUL
#define GNTST_bad_dev_addr (-6)
#define GNTST_no_device_space (-7)
#define GNTST_permission_denied (-8)

/* JUL: natural alignment, no pads (abi.md §2.9.2). */
typedef struct {
	u32 host_virt_addr;
	domid_t dom;
	grant_ref_t ref;
	u16 flags;
	s16 handle; /* out: >= 0 handle, < 0 GNTST_* */
	u32 dev_bus_addr; /* out (device_map): the frame number */
} gnttab_map_grant_ref_t; /* 16 bytes */

typedef struct {
	u32 host_virt_addr;
	u32 dev_bus_addr;
	u16 handle;
	s16 status; /* out */
} gnttab_unmap_grant_ref_t; /* 12 bytes */

typedef struct {
	domid_t dom;
	u16 nr_frames;
	s16 status; /* out */
	u32 *frame_list;
} gnttab_setup_table_t; /* 12 bytes */

_Static_assert(sizeof(gnttab_map_grant_ref_t) == 16, "gnttab_map_grant_ref_t");
_Static_assert(sizeof(gnttab_unmap_grant_ref_t) == 12, "gnttab_unmap_grant_ref_t");
_Static_assert(sizeof(gnttab_setup_table_t) == 12, "gnttab_setup_table_t");
#else
#define GNTST_no_device_space (-6)
#define GNTST_permission_denied (-7)

typedef struct {
	u32 host_virt_addr;
	u32 __pad0;
	domid_t dom;
	grant_ref_t ref;
	u16 flags;
	s16 handle; /* out: >= 0 handle, < 0 GNTST_* */
	u32 dev_bus_addr; /* out (device_map): the frame number */
	u32 __pad1;
} __attribute__((packed)) gnttab_map_grant_ref_t; /* 24 bytes */

typedef struct {
	u32 host_virt_addr;
	u32 __pad0;
	u32 dev_bus_addr;
	u32 __pad1;
	u16 handle;
	s16 status; /* out */
	u32 __pad2;
} __attribute__((packed)) gnttab_unmap_grant_ref_t; /* 24 bytes */

typedef struct {
	domid_t dom;
	u16 nr_frames;
	u16 __pad0;
	s16 status; /* out */
	u32 *frame_list;
	u32 __pad1;
} __attribute__((packed)) gnttab_setup_table_t; /* 16 bytes */

_Static_assert(sizeof(gnttab_map_grant_ref_t) == 24, "gnttab_map_grant_ref_t");
_Static_assert(sizeof(gnttab_unmap_grant_ref_t) == 24, "gnttab_unmap_grant_ref_t");
_Static_assert(sizeof(gnttab_setup_table_t) == 16, "gnttab_setup_table_t");
#endif

typedef struct {
	domid_t dom;
	s16 status; /* out */
} __attribute__((packed)) gnttab_dump_table_t; /* 4 bytes */

_Static_assert(sizeof(grant_entry_t) == 8, "grant_entry_t");

/* setup_table for `dom` with nr_frames; status and frame out. */
static inline long gnt_setup(u32 dom, u32 nr_frames, s16 *status, u32 *frame)
{
	gnttab_setup_table_t op;
	long rc;
	memset(&op, 0, sizeof(op));
	op.dom = (domid_t)dom;
	op.nr_frames = (u16)nr_frames;
	op.status = 0x5555;
	op.frame_list = frame;
	rc = HYPERVISOR_grant_table_op(GNTTABOP_setup_table, &op, 1);
	if (status)
		*status = op.status;
	return rc;
}

/* One map; returns the handle (or GNTST_*), or the hypercall's error if it failed. */
static inline long gnt_map(u32 va, u32 dom, u32 ref, u32 flags, u32 *dev_bus_addr)
{
	gnttab_map_grant_ref_t op;
	long rc;
	memset(&op, 0, sizeof(op));
	op.host_virt_addr = va;
	op.dom = (domid_t)dom;
	op.ref = (grant_ref_t)ref;
	op.flags = (u16)flags;
	op.handle = 0x5555;
	op.dev_bus_addr = 0xDEADBEEF;
	rc = HYPERVISOR_grant_table_op(GNTTABOP_map_grant_ref, &op, 1);
	if (dev_bus_addr)
		*dev_bus_addr = op.dev_bus_addr;
	return rc ? rc : op.handle;
}

/* One unmap; returns the status, or the hypercall's error if it failed. */
static inline long gnt_unmap(u32 va, u32 dev_bus_addr, u32 handle)
{
	gnttab_unmap_grant_ref_t op;
	long rc;
	memset(&op, 0, sizeof(op));
	op.host_virt_addr = va;
	op.dev_bus_addr = dev_bus_addr;
	op.handle = (u16)handle;
	op.status = 0x5555;
	rc = HYPERVISOR_grant_table_op(GNTTABOP_unmap_grant_ref, &op, 1);
	return rc ? rc : op.status;
}

/* Maps the grant-table frame (an MFN from setup_table) at va, writable. */
static inline long gnt_map_table(void *va, u32 frame)
{
	return HYPERVISOR_update_va_mapping((u32)va, (frame << PAGE_SHIFT) | _PAGE_PRESENT | _PAGE_RW,
					    UVMF_INVLPG);
}

#endif
