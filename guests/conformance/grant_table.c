/*
 * Conformance: grant_table_op (hypercall 20: cmd, uop array, count), single domain —
 * semantics.md §6, abi.md §2.9. Every op's argument checks and GNTST_* codes that one domain
 * can reach on its own (self-grants, bad refs, bad domains, bad handles, the call-level
 * errors), the shared table page, and MMUEXT_TRANSFER_PAGE to itself (§1.8).
 * Mapping another domain's grant is covered by the grant_a / grant_b pair.
 * cmdline: self=<own domid> (default 1, the first domain created).
 * JUL builds: four table frames of 2048 entries, setup_table(0 frames) reports okay,
 * dump_table is -ENOSYS, GNTST_* renumbered, GNTUNMAP_DEV_FROM_VIRT; no MMUEXT_TRANSFER_PAGE.
 */
#include "probe.h"
#include "grant.h"
#include "evtchn_ops.h"

PROBE(p_read, "movl probe_addr, %eax", "movl (%eax), %ecx");

static u8 gt_page[NR_GRANT_FRAMES * 4096] BSS_PAGE; /* the grant table is mapped here */
static u8 scratch[4096] BSS_PAGE;    /* host-map target VA */
static u8 xfer_page[4096] BSS_PAGE;  /* transferred to ourselves */
static gnttab_map_grant_ref_t maps[4];
static gnttab_unmap_grant_ref_t unmaps[2];

static grant_entry_t *gt(void)
{
	return (grant_entry_t *)gt_page;
}

#ifndef XEN_ABI_JUL
static long transfer(void *va, u32 dom, u32 ref)
{
	mmu_update_t req;
	u32 done = 0;
	req.ptr = virt_to_mach(va) | ((ref & 0xFF) << 2) | MMU_EXTENDED_COMMAND;
	req.val = (dom << 16) | (ref & 0xFF00) | MMUEXT_TRANSFER_PAGE;
	return HYPERVISOR_mmu_update(&req, 1, &done);
}
#endif

static int readable(void *va)
{
	probe_addr = (u32)va;
	return trap_catch(p_read, 0) < 0;
}

void start_kernel(start_info_t *si)
{
	u32 self, frame = 0, frame2 = 0, mfn, dev;
	u32 frames[NR_GRANT_FRAMES + 1];
	s16 st = 0;
	long rc;
	int i;

	conf_init(si, "grant_table");
	self = cmdline_u32(si, "self", 1);

	/* ---- call-level errors ---- */
	CHECK_EQ(HYPERVISOR_grant_table_op(GNTTABOP_map_grant_ref, maps, 513), -EINVAL, "count_513_einval");
	CHECK_EQ(HYPERVISOR_grant_table_op(GNTTABOP_dump_table, maps, 513), -EINVAL, "count_checked_before_cmd");
	CHECK_EQ(HYPERVISOR_grant_table_op(4, maps, 1), -ENOSYS, "unknown_cmd_enosys");
	CHECK_EQ(HYPERVISOR_grant_table_op(0xFFFFFFFF, maps, 1), -ENOSYS, "cmd_minus1_enosys");
	CHECK_EQ(HYPERVISOR_grant_table_op(GNTTABOP_map_grant_ref, (void *)HYPERVISOR_VIRT_START, 1), -EFAULT,
		 "map_array_in_xen_area_efault");
	CHECK_EQ(HYPERVISOR_grant_table_op(GNTTABOP_unmap_grant_ref, (void *)0xFFFFFFF0u, 1), -EFAULT,
		 "unmap_array_wraps_efault");
	CHECK_EQ(HYPERVISOR_grant_table_op(GNTTABOP_map_grant_ref, (void *)HYPERVISOR_VIRT_START, 0), 0,
		 "map_count_0_ok");
	CHECK_EQ(HYPERVISOR_grant_table_op(GNTTABOP_unmap_grant_ref, maps, 0), 0, "unmap_count_0_ok");
	/* The domain is not left holding a lock after the -EFAULT (Xen's [QUIRK], fixed). */
	CHECK_EQ(HYPERVISOR_update_va_mapping((u32)scratch, virt_to_mach(scratch) | 3, UVMF_INVLPG), 0,
		 "mmu_ops_work_after_efault");

	/* ---- setup_table ---- */
	CHECK_EQ(HYPERVISOR_grant_table_op(GNTTABOP_setup_table, maps, 0), -EINVAL, "setup_count_0_einval");
	CHECK_EQ(HYPERVISOR_grant_table_op(GNTTABOP_setup_table, maps, 2), -EINVAL, "setup_count_2_einval");
	CHECK_EQ(HYPERVISOR_grant_table_op(GNTTABOP_setup_table, (void *)HYPERVISOR_VIRT_START, 1), -EFAULT,
		 "setup_bad_pointer_efault");
	CHECK(gnt_setup(DOMID_SELF, NR_GRANT_FRAMES + 1, &st, frames) == 0 && st == GNTST_general_error,
	      "setup_too_many_frames_general_error");
	CHECK_UNPRIV(gnt_setup(self, 1, &st, &frame) == 0 && st == GNTST_permission_denied, "setup_own_id_needs_privilege");
	CHECK_UNPRIV(gnt_setup(0x1234, 1, &st, &frame) == 0 && st == GNTST_permission_denied,
	      "setup_privilege_checked_before_domain");
	st = 0x5555;
	rc = gnt_setup(DOMID_SELF, 0, &st, &frame);
#ifdef XEN_ABI_JUL
	CHECK(rc == 0 && st == GNTST_okay, "setup_0_frames_okay");
#else
	CHECK(rc == 0 && (u16)st == 0x5555, "setup_0_frames_writes_nothing");
#endif
	frame = 0;
	CHECK(gnt_setup(DOMID_SELF, 1, &st, &frame) == 0 && st == GNTST_okay && frame != 0, "setup_self_1_frame_ok");
	CHECK(gnt_setup(DOMID_SELF, 1, &st, &frame2) == 0 && frame2 == frame, "setup_same_frame_again");
	CHECK_EQ(machine_to_phys_mapping[frame], GRANT_FRAME_M2P, "table_frame_m2p");
	memset(frames, 0, sizeof(frames));
	CHECK(gnt_setup(DOMID_SELF, NR_GRANT_FRAMES, &st, frames) == 0 && st == GNTST_okay && frames[0] == frame &&
	      frames[NR_GRANT_FRAMES] == 0, "setup_all_frames_ok");
	for (i = 1; i < NR_GRANT_FRAMES; i++)
		if (frames[i] == 0 || frames[i] == frame || machine_to_phys_mapping[frames[i]] != GRANT_FRAME_M2P)
			break;
	CHECK_EQ(i, NR_GRANT_FRAMES, "table_frames_distinct_m2p");
	{
		/* A bad frame_list pointer is ignored: status still okay, hypercall 0. */
		gnttab_setup_table_t op;
		memset(&op, 0, sizeof(op));
		op.dom = DOMID_SELF;
		op.nr_frames = 1;
		op.frame_list = (u32 *)HYPERVISOR_VIRT_START;
		CHECK(HYPERVISOR_grant_table_op(GNTTABOP_setup_table, &op, 1) == 0 && op.status == 0,
		      "setup_bad_frame_list_ignored");
	}
	for (i = 0; i < NR_GRANT_FRAMES; i++)
		if (gnt_map_table(gt_page + i * 4096, frames[i]) != 0)
			break;
	CHECK_EQ(i, NR_GRANT_FRAMES, "table_frames_map_writable");
	for (i = 0; i < NR_GRANT_ENTRIES; i++)
		if (gt()[i].flags || gt()[i].domid || gt()[i].frame)
			break;
	CHECK_EQ(i, NR_GRANT_ENTRIES, "table_starts_zeroed");
	gt()[3].frame = 0x12345678;
	CHECK_EQ(((volatile grant_entry_t *)gt_page)[3].frame, 0x12345678, "table_writable_by_guest");
	gt()[3].frame = 0;

	/* ---- map_grant_ref: checks in order ---- */
	mfn = virt_to_mfn(scratch);
	gt()[1].domid = (domid_t)self;
	gt()[1].frame = mfn;
	gt()[1].flags = GTF_permit_access;
	CHECK_EQ(gnt_map(HYPERVISOR_VIRT_START, self, 1, GNTMAP_host_map, 0), GNTST_bad_virt_addr,
		 "map_va_fc000000_bad_virt_addr");
	CHECK_EQ(gnt_map(0xFFFFF000u, 0x1234, 600, GNTMAP_device_map, 0), GNTST_bad_virt_addr,
		 "map_nonzero_high_va_device_only_bad_virt_addr_first");
	CHECK_EQ(gnt_map(0, self, NR_GRANT_ENTRIES, GNTMAP_host_map, 0), GNTST_bad_gntref, "map_ref_nr_entries_bad_gntref");
	CHECK_EQ(gnt_map(0, self, NR_GRANT_ENTRIES - 1, GNTMAP_host_map, 0), GNTST_bad_domain,
		 "map_last_ref_passes_ref_check");
	CHECK_EQ(gnt_map(0, self, 0xFFFF, GNTMAP_device_map, 0), GNTST_bad_gntref, "map_ref_ffff_bad_gntref");
	CHECK_EQ(gnt_map(0, self, 1, 0, 0), GNTST_bad_gntref, "map_no_flags_bad_gntref");
	CHECK_EQ(gnt_map(0, self, 1, GNTMAP_readonly | GNTMAP_application_map, 0), GNTST_bad_gntref,
		 "map_neither_device_nor_host_bad_gntref");
	CHECK_EQ(gnt_map(0, 0x1234, NR_GRANT_ENTRIES + 188, GNTMAP_host_map, 0), GNTST_bad_gntref,
		 "map_ref_checked_before_domain");
	CHECK_EQ(gnt_map((u32)scratch, self, 1, GNTMAP_host_map, 0), GNTST_bad_domain, "map_self_grant_bad_domain");
	CHECK_EQ(gnt_map(0, DOMID_SELF, 1, GNTMAP_device_map, 0), GNTST_bad_domain, "map_domid_self_bad_domain");
	CHECK_EQ(gnt_map(0, 0x1234, 1, GNTMAP_host_map | GNTMAP_readonly, 0), GNTST_bad_domain,
		 "map_unknown_domain_bad_domain");
	CHECK_EQ(gnt_map(0, DOMID_XEN, 1, GNTMAP_host_map, 0), GNTST_bad_domain, "map_domid_xen_bad_domain");
	dev = 0;
	gnt_map(0, self, 1, GNTMAP_device_map, &dev);
	CHECK_EQ(dev, 0xDEADBEEF, "failed_map_leaves_dev_bus_addr");
	CHECK_EQ(gt()[1].flags, GTF_permit_access, "failed_self_map_sets_no_in_use_bits");
	CHECK_EQ(*(volatile u32 *)scratch, *(volatile u32 *)scratch, "scratch_still_mapped");
	CHECK(readable(scratch), "self_map_left_scratch_mapping");

	/* A batch: every entry gets its own status; the call returns 0. */
	memset(maps, 0, sizeof(maps));
	maps[0].dom = 0x1234; maps[0].ref = 1; maps[0].flags = GNTMAP_host_map;
	maps[1].dom = (domid_t)self; maps[1].ref = NR_GRANT_ENTRIES + 1; maps[1].flags = GNTMAP_host_map;
	maps[2].dom = (domid_t)self; maps[2].ref = 1; maps[2].flags = GNTMAP_host_map;
	maps[2].host_virt_addr = 0xFC001000u;
	maps[3].dom = (domid_t)self; maps[3].ref = 2; maps[3].flags = 0;
	CHECK_EQ(HYPERVISOR_grant_table_op(GNTTABOP_map_grant_ref, maps, 4), 0, "map_batch_returns_0");
	CHECK(maps[0].handle == GNTST_bad_domain && maps[1].handle == GNTST_bad_gntref &&
	      maps[2].handle == GNTST_bad_virt_addr && maps[3].handle == GNTST_bad_gntref,
	      "map_batch_per_entry_status");

	/* ---- unmap_grant_ref: we hold no maps, so every handle is bad ---- */
	CHECK_EQ(gnt_unmap(0, 0, 0), GNTST_bad_handle, "unmap_unused_handle_0_bad_handle");
	CHECK_EQ(gnt_unmap((u32)scratch, mfn, 5), GNTST_bad_handle, "unmap_unused_handle_5_bad_handle");
	CHECK_EQ(gnt_unmap(0, 0, 1023), GNTST_bad_handle, "unmap_handle_1023_unused");
	CHECK_EQ(gnt_unmap(0, 0, 1024), GNTST_bad_handle, "unmap_handle_1024_bad_handle");
	CHECK_EQ(gnt_unmap(0, 0, 0xFFFF), GNTST_bad_handle, "unmap_handle_ffff_bad_handle");
	CHECK(readable(scratch), "bad_unmap_left_scratch_mapping");
	memset(unmaps, 0, sizeof(unmaps));
	unmaps[0].handle = 7;
	unmaps[0].dev_bus_addr = 0x1234;
	unmaps[1].handle = 2000;
	CHECK_EQ(HYPERVISOR_grant_table_op(GNTTABOP_unmap_grant_ref, unmaps, 2), 0, "unmap_batch_returns_0");
	CHECK(unmaps[0].status == GNTST_bad_handle && unmaps[1].status == GNTST_bad_handle &&
	      unmaps[0].dev_bus_addr == 0x1234, "unmap_batch_per_entry_status");
#ifdef XEN_ABI_JUL
	CHECK_EQ(gnt_unmap(0, GNTUNMAP_DEV_FROM_VIRT, 3), GNTST_bad_handle, "unmap_dev_from_virt_bad_handle_first");
#endif

	/* ---- dump_table ---- */
#ifdef XEN_ABI_JUL
	{
		/* Built only with GRANT_DEBUG in July 2005. */
		gnttab_dump_table_t d;
		d.dom = DOMID_SELF; d.status = 0x5555;
		CHECK(HYPERVISOR_grant_table_op(GNTTABOP_dump_table, &d, 1) == -ENOSYS && (u16)d.status == 0x5555,
		      "dump_table_enosys");
	}
	/* The last entry of the last frame is ours to write. */
	gt()[NR_GRANT_ENTRIES - 1].frame = 0x87654321;
	CHECK_EQ(((volatile grant_entry_t *)gt_page)[NR_GRANT_ENTRIES - 1].frame, 0x87654321, "last_entry_writable");
	gt()[NR_GRANT_ENTRIES - 1].frame = 0;
	(void)xfer_page;
#else
	{
		gnttab_dump_table_t d;
		d.dom = DOMID_SELF; d.status = 0x5555;
		CHECK(HYPERVISOR_grant_table_op(GNTTABOP_dump_table, &d, 1) == 0 && d.status == GNTST_okay,
		      "dump_self_okay");
		d.dom = (domid_t)self; d.status = 0x5555;
		CHECK(HYPERVISOR_grant_table_op(GNTTABOP_dump_table, &d, 0) == 0 && d.status == GNTST_okay,
		      "dump_own_id_okay_count_ignored");
		d.dom = 0x1234; d.status = 0x5555;
		CHECK(HYPERVISOR_grant_table_op(GNTTABOP_dump_table, &d, 1) == 0 && d.status == GNTST_bad_domain,
		      "dump_unknown_domain_bad_domain");
		CHECK_EQ(HYPERVISOR_grant_table_op(GNTTABOP_dump_table, (void *)HYPERVISOR_VIRT_START, 1), -EFAULT,
			 "dump_bad_pointer_efault");
	}

	/* ---- MMUEXT_TRANSFER_PAGE to ourselves through our own grant entry ---- */
	memset(xfer_page, 0x5A, sizeof(xfer_page));
	mfn = virt_to_mfn(xfer_page);
	gt()[300].domid = (domid_t)self;
	gt()[300].frame = 0;
	gt()[300].flags = GTF_accept_transfer;
	CHECK_EQ(transfer(xfer_page, self, 300), -EINVAL, "transfer_of_mapped_page_fails");
	CHECK_EQ(HYPERVISOR_update_va_mapping((u32)xfer_page, 0, UVMF_INVLPG), 0, "unmap_page_to_transfer");
	CHECK_EQ(gt()[300].flags, GTF_accept_transfer, "failed_transfer_leaves_entry");
	CHECK_EQ(transfer(xfer_page, 0x1234, 300), -EINVAL, "transfer_to_unknown_domain_fails");
	CHECK_EQ(transfer(xfer_page, self, 301), -EINVAL, "transfer_to_invalid_entry_fails");
	gt()[301].domid = 0x77;
	gt()[301].flags = GTF_accept_transfer;
	CHECK_EQ(transfer(xfer_page, self, 301), -EINVAL, "transfer_entry_for_other_sender_fails");
	gt()[301].domid = (domid_t)self;
	gt()[301].flags = GTF_accept_transfer | GTF_transfer_committed;
	CHECK_EQ(transfer(xfer_page, self, 301), -EINVAL, "transfer_entry_not_exactly_accept_fails");
	gt()[301].flags = GTF_permit_access;
	CHECK_EQ(transfer(xfer_page, self, 301), -EINVAL, "transfer_to_permit_access_entry_fails");
	/* Refused transfers left the page with us ([QUIRK] leak fixed): it maps again. */
	CHECK_EQ(HYPERVISOR_update_va_mapping((u32)xfer_page, (mfn << 12) | 3, UVMF_INVLPG), 0,
		 "page_still_ours_after_refused_transfers");
	CHECK_EQ(*(volatile u32 *)xfer_page, 0x5A5A5A5A, "page_contents_intact");
	CHECK_EQ(HYPERVISOR_update_va_mapping((u32)xfer_page, 0, UVMF_INVLPG), 0, "unmap_page_again");
	CHECK_EQ(transfer(xfer_page, self, 300), 0, "transfer_to_self_ok");
	CHECK_EQ(gt()[300].flags, GTF_accept_transfer | GTF_transfer_committed | GTF_transfer_completed,
		 "transfer_sets_committed_and_completed");
	CHECK_EQ(gt()[300].frame, mfn, "transfer_writes_mfn_into_entry");
	CHECK_EQ(gt()[300].domid, self, "transfer_leaves_domid");
	CHECK_EQ(transfer(xfer_page, self, 300), -EINVAL, "second_transfer_to_used_entry_fails");
	CHECK_EQ(HYPERVISOR_update_va_mapping((u32)xfer_page, (mfn << 12) | 3, UVMF_INVLPG), 0,
		 "received_page_maps");
	CHECK_EQ(*(volatile u32 *)xfer_page, 0x5A5A5A5A, "received_page_contents");
	/* A grant-table frame is a Xen-heap page: it cannot be transferred. */
	gt()[302].domid = (domid_t)self;
	gt()[302].flags = GTF_accept_transfer;
	CHECK_EQ(HYPERVISOR_update_va_mapping((u32)gt_page, 0, UVMF_INVLPG), 0, "unmap_table_frame");
	{
		mmu_update_t req;
		u32 done = 0;
		req.ptr = (frame << 12) | ((302 & 0xFF) << 2) | MMU_EXTENDED_COMMAND;
		req.val = (self << 16) | (302 & 0xFF00) | MMUEXT_TRANSFER_PAGE;
		CHECK_EQ(HYPERVISOR_mmu_update(&req, 1, &done), -EINVAL, "transfer_of_table_frame_fails");
	}
	CHECK_EQ(gnt_map_table(gt_page, frame), 0, "table_frame_maps_again");
	CHECK_EQ(gt()[302].flags, GTF_accept_transfer, "table_frame_transfer_left_entry");
#endif

	checks_done();
}
