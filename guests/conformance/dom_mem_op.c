/*
 * Conformance: dom_mem_op (hypercall 12: EBX op, ECX extent_list, EDX nr_extents,
 * ESI extent_order, EDI domid), abi.md §2.13.2; semantics.md §8.4, §13.20.
 */
#include "lib.h"

static u8 scratch[4096] BSS_PAGE;
static u8 linger[4096] BSS_PAGE;

static u32 spare(u32 k)
{
	return ((const u32 *)start_info->mfn_list)[start_info->nr_pages - 1 - k];
}

static long mmu1(u32 ptr, u32 val)
{
	mmu_update_t r = { ptr, val };
	return HYPERVISOR_mmu_update(&r, 1, 0);
}

static long map_scratch(u32 pte)
{
	return HYPERVISOR_update_va_mapping((u32)scratch, pte, UVMF_INVLPG);
}

#define INC MEMOP_increase_reservation
#define DEC MEMOP_decrease_reservation

void start_kernel(start_info_t *si)
{
	u32 list[8], got[8];
	u32 m2p_l1;
	long rc;

	conf_init(si, "dom_mem_op");
	m2p_l1 = ((const u32 *)si->pt_base)[1008] >> PAGE_SHIFT;

	/* Argument checks. */
	CHECK_EQ(HYPERVISOR_dom_mem_op(INC | (3 << 4), list, 2, 0, DOMID_SELF), -EINVAL,
		 "start_extent_beyond_nr_einval");
	CHECK_EQ_UNPRIV(HYPERVISOR_dom_mem_op(INC, list, 1, 0, 0), -EPERM, "other_domain_unpriv_eperm");
	CHECK_EQ(HYPERVISOR_dom_mem_op(2, list, 1, 0, DOMID_SELF), -ENOSYS, "unknown_op_enosys");
	CHECK_EQ(HYPERVISOR_dom_mem_op(15, list, 0, 0, DOMID_SELF), -ENOSYS, "op_15_enosys");

	/* At max_pages: nothing can be added (a count, not an error). */
	CHECK_EQ(HYPERVISOR_dom_mem_op(INC, got, 1, 0, DOMID_SELF), 0, "increase_at_max_pages_0");

	/* Give back two unmapped frames. */
	list[0] = spare(0);
	list[1] = spare(1);
	CHECK_EQ(HYPERVISOR_dom_mem_op(DEC, list, 2, 0, DOMID_SELF), 2, "decrease_2");
	CHECK_EQ(map_scratch((spare(0) << PAGE_SHIFT) | 0x21), -EINVAL, "freed_frame_not_ours");
	CHECK_EQ(mmu1((spare(1) << PAGE_SHIFT) | MMU_MACHPHYS_UPDATE, 0), -EINVAL,
		 "freed_frame_machphys_einval");
	CHECK_EQ(HYPERVISOR_dom_mem_op(DEC, list, 1, 0, DOMID_SELF), 0, "decrease_freed_again_0");

	/* Stops at the first bad extent: the count of extents done. */
	list[0] = spare(2);
	list[1] = m2p_l1;
	list[2] = spare(3);
	CHECK_EQ(HYPERVISOR_dom_mem_op(DEC, list, 3, 0, DOMID_SELF), 1, "decrease_stops_at_foreign");
	list[1] = 0x50; /* I/O frame */
	CHECK_EQ(HYPERVISOR_dom_mem_op(DEC, list + 1, 1, 0, DOMID_SELF), 0, "decrease_io_frame_0");
	list[1] = 0x7fffffff;
	CHECK_EQ(HYPERVISOR_dom_mem_op(DEC, list + 1, 1, 0, DOMID_SELF), 0, "decrease_out_of_range_0");
	/* shared_info is Xen's page, shared with us: not ours to free (docs/DEVIATIONS.md). */
	list[1] = si->shared_info >> PAGE_SHIFT;
	CHECK_EQ(HYPERVISOR_dom_mem_op(DEC, list + 1, 1, 0, DOMID_SELF), 0, "decrease_shared_info_0");
	CHECK_EQ(vcpu0()->evtchn_upcall_mask, 1, "shared_info_still_there");
	/* A list Xen may not read: start_extent returned. */
	CHECK_EQ(HYPERVISOR_dom_mem_op(DEC, (u32 *)HYPERVISOR_VIRT_START, 1, 0, DOMID_SELF), 0,
		 "decrease_bad_list_0");
	CHECK_EQ(HYPERVISOR_dom_mem_op(INC | (1 << 4), (u32 *)HYPERVISOR_VIRT_START, 2, 0, DOMID_SELF), 1,
		 "increase_bad_list_returns_start");

	/* A pinned page is unpinned and freed. */
	{
		u32 i, f = spare(4);
		mmu_update_t z[64];
		for (i = 0; i < 1024; i += 64) {
			u32 k;
			for (k = 0; k < 64; k++) {
				z[k].ptr = (f << PAGE_SHIFT) + (i + k) * 4;
				z[k].val = 0;
			}
			HYPERVISOR_mmu_update(z, 64, 0);
		}
		CHECK_EQ(mmu1(MMU_EXTENDED_COMMAND | (f << PAGE_SHIFT), MMUEXT_PIN_L1_TABLE), 0, "pin_l1");
		list[0] = f;
		CHECK_EQ(HYPERVISOR_dom_mem_op(DEC, list, 1, 0, DOMID_SELF), 1, "decrease_pinned_1");
		CHECK_EQ(mmu1(MMU_EXTENDED_COMMAND | (f << PAGE_SHIFT), MMUEXT_UNPIN_TABLE), -EINVAL,
			 "decreased_pinned_gone");
	}

	/* A mapped page lingers until it is unmapped. */
	memset(linger, 0x5A, sizeof(linger));
	list[0] = virt_to_mfn(linger);
	CHECK_EQ(HYPERVISOR_dom_mem_op(DEC, list, 1, 0, DOMID_SELF), 1, "decrease_mapped_1");
	CHECK_EQ(((volatile u32 *)linger)[7], 0x5A5A5A5A, "mapped_page_lingers");
	CHECK_EQ(HYPERVISOR_dom_mem_op(DEC, list, 1, 0, DOMID_SELF), 1, "decrease_lingering_again_ok");
	CHECK_EQ(HYPERVISOR_update_va_mapping((u32)linger, 0, UVMF_INVLPG), 0, "unmap_lingering");
	CHECK_EQ(map_scratch((list[0] << PAGE_SHIFT) | 0x21), -EINVAL, "unmapped_page_freed");

	/* Now 5 pages below max: take 3 back, then ask for 4 and get exactly 2. */
	got[0] = got[1] = got[2] = 0;
	rc = HYPERVISOR_dom_mem_op(INC, got, 3, 0, DOMID_SELF);
	CHECK_EQ(rc, 3, "increase_3");
	CHECK(got[0] && got[1] && got[2] && got[0] != got[1], "increase_wrote_mfns");
	CHECK_EQ(map_scratch((got[0] << PAGE_SHIFT) | 0x23), 0, "new_page_is_ours");
	((volatile u32 *)scratch)[0] = 0x600DF00D;
	CHECK_EQ(((volatile u32 *)scratch)[0], 0x600DF00D, "new_page_writable");
	CHECK_EQ(mmu1((got[0] << PAGE_SHIFT) | MMU_MACHPHYS_UPDATE, 1234), 0, "new_page_machphys");
	CHECK_EQ(map_scratch(0), 0, "unmap_new");
	/* Extents of order > 0 need an I/O-capable caller. */
	CHECK_EQ_UNPRIV(HYPERVISOR_dom_mem_op(INC, got + 3, 1, 1, DOMID_SELF), 0, "order_1_unpriv_0");
	/* start_extent: only extents [1, 4) are done; the count includes the skipped one. */
	got[3] = got[4] = got[5] = got[6] = 0xdead;
	rc = HYPERVISOR_dom_mem_op(INC | (1 << 4), got + 3, 4, 0, DOMID_SELF);
	CHECK_EQ(rc, 3, "increase_start_1_hits_max_after_2");
	CHECK_EQ(got[3], 0xdead, "start_extent_skips_first");
	CHECK(got[4] != 0xdead && got[5] != 0xdead, "increase_wrote_2");
	CHECK_EQ(got[6], 0xdead, "over_max_not_written");
	CHECK_EQ(HYPERVISOR_dom_mem_op(INC, got, 1, 0, DOMID_SELF), 0, "at_max_again_0");
	/* And they go back. */
	CHECK_EQ(HYPERVISOR_dom_mem_op(DEC, got, 3, 0, DOMID_SELF), 3, "decrease_new_3");
	CHECK_EQ(HYPERVISOR_dom_mem_op(DEC | (1 << 4), got + 3, 3, 0, DOMID_SELF), 3,
		 "decrease_start_1");

	checks_done();
}
