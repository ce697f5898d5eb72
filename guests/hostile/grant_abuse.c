/*
 * Grant-table abuse (issue 12, class 9). The attacker's own grant entries offer dom0 frames it
 * does not own (the victim's data frame, Xen's M2P L1) and its own L2 writable; the test, as
 * dom0, tries to map them. The attacker meanwhile maps refs the victim never granted, refs out
 * of range, grants of domains that do not exist or of itself, at Xen's addresses; then unmaps
 * a handle dom0 holds on its page (not its handle), and transfers pages that are pinned or
 * mapped elsewhere. When its entries are written it prints "GRANTS ready go=<MA>" and waits
 * until the test writes dom0's handle + 1 at that machine address.
 */
#include "grant.h"
#include "hostile.h"

static u8 gt[4096] BSS_PAGE;     /* our grant table, mapped */
static u8 shared[4096] BSS_PAGE; /* the page we really grant */
static u8 hostva[4096] BSS_PAGE; /* where we try host maps */
static volatile u32 go;

static void grant(u32 ref, u32 flags, u32 dom, u32 frame)
{
	volatile grant_entry_t *e = &((volatile grant_entry_t *)gt)[ref];
	e->domid = (domid_t)dom;
	e->frame = frame;
	barrier();
	e->flags = (u16)flags;
}

static long transfer(u32 mfn, u32 dom, u32 ref)
{
	return mmu1((mfn << PAGE_SHIFT) | ((ref & 0xFF) << 2) | MMU_EXTENDED_COMMAND,
		    MMUEXT_TRANSFER_PAGE | (ref & 0xFF00) | (dom << 16));
}

void start_kernel(start_info_t *si)
{
	u32 victim, vmfn, frame = 0, self, handle;
	s16 st = 0;
	hostile_init(si, "grant_abuse");
	victim = cmdline_u32(si, "victim", 0);
	vmfn = cmdline_u32(si, "vmfn", 0);
	self = cmdline_u32(si, "self", 0);

	CHECK_EQ(gnt_setup(DOMID_SELF, 1, &st, &frame), 0, "setup_table");
	CHECK_EQ(st, GNTST_okay, "setup_table_status");
	CHECK_EQ(gnt_map_table(gt, frame), 0, "map_grant_table");
	CHECK_EQ(gnt_setup(victim, 1, &st, &frame), 0, "setup_victim_table_call");
	CHECK_EQ(st, GNTST_permission_denied, "setup_victim_table_refused");
	grant(1, GTF_permit_access, 0, virt_to_mfn(shared));
	grant(2, GTF_permit_access, 0, vmfn);
	grant(3, GTF_permit_access, 0, m2p_l1_mfn());
	grant(4, GTF_permit_access, 0, cur_l2_ma() >> PAGE_SHIFT);
	grant(5, GTF_permit_access | GTF_readonly, 0, 0x7FFFFF);

	/* Maps we are not entitled to. */
	CHECK_EQ(gnt_map((u32)hostva, victim, 0, GNTMAP_host_map, 0), GNTST_general_error,
		 "map_victim_ungranted_ref");
	CHECK_EQ(gnt_map((u32)hostva, victim, NR_GRANT_ENTRIES, GNTMAP_host_map, 0), GNTST_bad_gntref,
		 "map_ref_out_of_range");
	CHECK_EQ(gnt_map((u32)hostva, victim, 0xFFFF, GNTMAP_host_map, 0), GNTST_bad_gntref,
		 "map_ref_ffff");
	CHECK_EQ(gnt_map((u32)hostva, 999, 1, GNTMAP_host_map, 0), GNTST_bad_domain, "map_no_domain");
	CHECK_EQ(gnt_map((u32)hostva, DOMID_XEN, 1, GNTMAP_host_map, 0), GNTST_bad_domain,
		 "map_domid_xen");
	CHECK_EQ(gnt_map((u32)hostva, self, 1, GNTMAP_host_map, 0), GNTST_bad_domain, "map_own_grant");
	CHECK_EQ(gnt_map(HYPERVISOR_VIRT_START, victim, 0, GNTMAP_host_map, 0), GNTST_bad_virt_addr,
		 "map_at_xen_address");
	CHECK_EQ(gnt_map((u32)hostva, victim, 0, 0, 0), GNTST_bad_gntref, "map_no_flags");
	CHECK_EQ(gnt_unmap((u32)hostva, 0, 0), GNTST_bad_handle, "unmap_unused_handle");
	CHECK_EQ(gnt_unmap((u32)hostva, 0, 0xFFFF), GNTST_bad_handle, "unmap_handle_ffff");
	CHECK_EQ(HYPERVISOR_grant_table_op(GNTTABOP_map_grant_ref, (void *)HYPERVISOR_VIRT_START, 1),
		 -EFAULT, "map_op_in_xen_space");
	CHECK_EQ(HYPERVISOR_grant_table_op(GNTTABOP_map_grant_ref, hostva, 0x7FFFFFFF), -EINVAL,
		 "map_op_count_huge");

	printk("GRANTS ready go=%u\n", virt_to_mach((void *)&go));
	while (go == 0)
		HYPERVISOR_sched_op(SCHEDOP_yield);
	handle = go - 1;
	/* dom0 holds a handle on our page: it is dom0's, not one of ours. */
	CHECK_EQ(gnt_unmap(0, virt_to_mach(shared), handle), GNTST_bad_handle, "unmap_dom0_handle");
	CHECK_EQ(gnt_unmap((u32)shared, 0, handle), GNTST_bad_handle, "unmap_dom0_handle_by_va");
	/* Transfers to the victim, whose refs 1..5 accept pages from us (the test set them): the
	 * page dom0 maps, our pinned L2, our grant-table and shared_info frames (Xen's pages)
	 * must stay; a plain page of ours may go (ref 5). The victim's frame is not ours to
	 * give, even to ourselves. */
	grant(6, GTF_accept_transfer, victim, 0);
	CHECK_EQ(transfer(virt_to_mfn(shared), victim, 1), -EINVAL, "transfer_page_mapped_by_dom0");
	CHECK_EQ(transfer(cur_l2_ma() >> PAGE_SHIFT, victim, 2), -EINVAL, "transfer_pinned_l2");
	CHECK_EQ(transfer(frame, victim, 3), -EINVAL, "transfer_grant_table_frame");
	CHECK_EQ(transfer(si->shared_info >> PAGE_SHIFT, victim, 4), -EINVAL, "transfer_shared_info");
	CHECK_EQ(transfer(vmfn, self, 6), -EINVAL, "transfer_victim_frame_to_us");
	CHECK_EQ(transfer(spare_mfn(0), victim, 5), 0, "transfer_plain_page");
	printk("GAVE %u\n", spare_mfn(0));
	/* Revoking what dom0 has mapped does not take the page back from dom0 (nor crash us). */
	grant(1, 0, 0, 0);
	CHECK_EQ(((volatile grant_entry_t *)gt)[1].flags, 0, "revoked_locally");
	checks_done();
}
