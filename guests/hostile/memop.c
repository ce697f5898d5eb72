/*
 * dom_mem_op bounds (issue 12, class 6; XSA-29/-212 style): huge nr_extents, extent_order 31,
 * extent lists in Xen's space, unmapped or read-only, extents that run from our last frame
 * into whatever follows it (another domain's or Xen's frames), and frames we do not own. Each
 * call must come back quickly with the count of extents done (0 here) or an errno, and free
 * only frames we own.
 */
#include "hostile.h"

#define INC MEMOP_increase_reservation
#define DEC MEMOP_decrease_reservation

static u32 list[16];
static u32 many[1024];

static long memop(u32 op, u32 *l, u32 n, u32 order, u32 dom)
{
	return HYPERVISOR_dom_mem_op(op, l, n, order, dom);
}

/* Is machine frame mfn still ours? A read-only mapping of it is refused otherwise. */
static int own(u32 mfn)
{
	static u8 probe[4096] BSS_PAGE;
	long rc = HYPERVISOR_update_va_mapping((u32)probe, (mfn << PAGE_SHIFT) | PTE_RO, UVMF_INVLPG);
	HYPERVISOR_update_va_mapping((u32)probe, virt_to_mach(probe) | 3, UVMF_INVLPG);
	return rc == 0;
}

void start_kernel(start_info_t *si)
{
	u32 victim, vmfn, i, last, first;
	hostile_init(si, "memop");
	victim = cmdline_u32(si, "victim", 0);
	vmfn = cmdline_u32(si, "vmfn", 0);
	for (i = 0; i < ARRAY_SIZE(many); i++)
		many[i] = vmfn;

	/* At max_pages nothing can be added, whatever the count or order. */
	CHECK_EQ(memop(INC, list, 16, 0, DOMID_SELF), 0, "increase_at_max");
	CHECK_EQ(memop(INC, list, 0xFFFFFFFFu, 0, DOMID_SELF), 0, "increase_nr_all_ones");
	CHECK_EQ(memop(INC, list, 0x3FFFFFFFu, 0, DOMID_SELF), 0, "increase_nr_huge");
	CHECK_EQ(memop(INC, list, 1, 31, DOMID_SELF), 0, "increase_order_31");
	CHECK_EQ(memop(INC, list, 1, 0xFFFFFFFFu, DOMID_SELF), 0, "increase_order_all_ones");
	CHECK_EQ(memop(INC, list, 1, 9, DOMID_SELF), 0, "increase_order_9_unprivileged");
	CHECK_EQ(memop(INC, list, 1, 0, victim), -EPERM, "increase_for_victim");
	CHECK_EQ(memop(INC, list, 1, 0, DOMID_XEN), -EPERM, "increase_for_xen");
	/* A continuation start beyond the count; a start just below a huge count. */
	CHECK_EQ(memop(INC | (5u << 4), list, 4, 0, DOMID_SELF), -EINVAL, "start_beyond_count");
	CHECK_EQ(memop(DEC | (0x0FFFFFFEu << 4), list, 0x0FFFFFFFu, 0, DOMID_SELF), 0x0FFFFFFE,
		 "start_near_huge_count");

	/* Decrease: lists where Xen lives, nowhere, or naming frames not ours. */
	CHECK_EQ(memop(DEC, (u32 *)HYPERVISOR_VIRT_START, 1, 0, DOMID_SELF), 0, "decrease_list_in_m2p");
	CHECK_EQ(memop(DEC, (u32 *)0xFC400000u, 1, 0, DOMID_SELF), 0, "decrease_list_in_xen");
	CHECK_EQ(memop(DEC, (u32 *)0xFFFFFFFCu, 2, 0, DOMID_SELF), 0, "decrease_list_wraps");
	CHECK_EQ(memop(DEC, (u32 *)0x1000, 1, 0, DOMID_SELF), 0, "decrease_list_unmapped");
	CHECK_EQ(memop(DEC, many, 0x00FFFFFFu, 0, DOMID_SELF), 0, "decrease_huge_list_of_victim_frames");
	CHECK_EQ(memop(DEC, many, 1, 31, DOMID_SELF), 0, "decrease_victim_order_31");
	CHECK_EQ(memop(DEC, many, 1, 0xFFFFFFFFu, DOMID_SELF), 0, "decrease_victim_order_all_ones");
	list[0] = m2p_l1_mfn();
	CHECK_EQ(memop(DEC, list, 1, 10, DOMID_SELF), 0, "decrease_xen_frames_order_10");
	list[0] = 0x100;
	CHECK_EQ(memop(DEC, list, 1, 20, DOMID_SELF), 0, "decrease_io_frames_order_20");
	list[0] = 0xFFFFFFFFu;
	CHECK_EQ(memop(DEC, list, 1, 0, DOMID_SELF), 0, "decrease_frame_all_ones");
	list[0] = 0xFFFFF000u;
	CHECK_EQ(memop(DEC, list, 1, 12, DOMID_SELF), 0, "decrease_extent_wraps");
	CHECK_EQ(memop(DEC, list, 1, 0, victim), -EPERM, "decrease_for_victim");

	/* Our last frame with extent order 31: it goes, and the run stops at the first frame
	 * that is not ours (if the next one is ours too, the extent takes it as well). */
	last = spare_mfn(0);
	list[0] = last;
	first = own(last + 1);
	CHECK_EQ(memop(DEC, list, 1, first ? 0 : 31, DOMID_SELF), first ? 1 : 0,
		 "decrease_run_from_last_frame");
	CHECK(!own(last), "last_frame_freed");
	/* Room for one page now: lists we cannot write get nothing back but a count of 0. */
	CHECK_EQ(memop(INC, (u32 *)start_info->pt_base, 1, 0, DOMID_SELF), 0,
		 "increase_into_readonly_list");
	CHECK_EQ(memop(INC, list, 1, 0, DOMID_SELF), 0, "increase_after_lost_extent_at_max");
	CHECK(list[0] != vmfn, "no_victim_frame_handed_out");
	checks_done();
}
