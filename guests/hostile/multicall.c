/*
 * Multicall and double fetch (issue 12, class 8; XSA-155 style): batches whose later entries
 * are rewritten by an earlier sub-call of the same batch (a plain store through mmu_update, and
 * an update_va_mapping that swaps the page holding the list for another frame), an mmu_update
 * batch whose first request rewrites the second, nested multicalls, lists that cross into
 * Xen's space or sit in read-only memory. Each entry must be checked as Xen reads it: what an
 * earlier entry swapped in is refused like anything else.
 */
#include "hostile.h"

static u8 listpage[4096] BSS_PAGE; /* holds the batches */
static u8 altpage[4096] BSS_PAGE;  /* the frame swapped in under listpage's VA */
static u8 scratch[4096] BSS_PAGE;
static u32 vmfn;

#define MC(p, i) (&((multicall_entry_t *)(p))[i])

void start_kernel(start_info_t *si)
{
	static mmu_update_t req[4];
	multicall_entry_t *m;
	hostile_init(si, "multicall");
	vmfn = cmdline_u32(si, "vmfn", 0);

	/* Entry 0 stores into entry 1 (by machine address): entry 1 becomes a map of the victim. */
	m = (multicall_entry_t *)listpage;
	req[0].ptr = virt_to_mach(&MC(m, 1)->args[1]);
	req[0].val = (vmfn << PAGE_SHIFT) | 0x67;
	memset(MC(m, 0), 0, sizeof(multicall_entry_t));
	MC(m, 0)->op = __HYPERVISOR_mmu_update;
	MC(m, 0)->args[0] = (u32)req;
	MC(m, 0)->args[1] = 1;
	set_uvm(MC(m, 1), scratch, virt_to_mach(scratch) | 3); /* harmless when first read */
	CHECK_EQ(HYPERVISOR_multicall(m, 2), 0, "rewrite_batch_ran");
	CHECK_EQ(MC_RES(MC(m, 0)), 0, "rewriting_store_done");
	CHECK_EQ(MC(m, 1)->args[1], (vmfn << PAGE_SHIFT) | 0x67, "entry_1_was_rewritten");
	CHECK_EQ(MC_RES(MC(m, 1)), -EINVAL, "rewritten_entry_refused");
	/* Entry 0 rewrites entry 1's op into a nested multicall. */
	req[0].ptr = virt_to_mach(&MC(m, 1)->op);
	req[0].val = __HYPERVISOR_multicall;
	MC(m, 1)->args[0] = (u32)m;
	MC(m, 1)->args[1] = 2;
	CHECK_EQ(HYPERVISOR_multicall(m, 2), 0, "nesting_batch_ran");
	CHECK_EQ(MC_RES(MC(m, 1)), -EINVAL, "nested_multicall_refused");

	/* Entry 0 swaps the list's page for altpage's frame, whose entry 1 maps the victim. */
	set_uvm(MC(m, 0), listpage, virt_to_mach(altpage) | 3);
	set_uvm(MC(m, 1), scratch, virt_to_mach(scratch) | 3);
	set_uvm(MC(altpage, 1), scratch, (vmfn << PAGE_SHIFT) | 0x67);
	CHECK_EQ(HYPERVISOR_multicall(m, 2), 0, "swap_batch_ran");
	/* listpage's VA now shows altpage's frame: entry 1 there was the one run. */
	CHECK_EQ(MC_RES(MC(altpage, 1)), -EINVAL, "swapped_in_entry_refused");
	CHECK_EQ(MC_RES(MC(altpage, 0)), 0, "swap_result_went_to_the_new_frame");
	CHECK_EQ(HYPERVISOR_update_va_mapping((u32)listpage, virt_to_mach(listpage) | 3, UVMF_INVLPG), 0,
		 "list_page_back");
	CHECK_EQ(MC_RES(MC(listpage, 0)) & MC_RES(MC(listpage, 1)), 0x5555, "original_entries_untouched");

	/* An mmu_update batch whose request 0 rewrites request 1 into a map of the victim. */
	req[0].ptr = virt_to_mach(&req[1].val);
	req[0].val = (vmfn << PAGE_SHIFT) | 0x67;
	req[1].ptr = pte_ma(scratch);
	req[1].val = virt_to_mach(scratch) | 3;
	{
		u32 done = 0xdead;
		CHECK_EQ(HYPERVISOR_mmu_update(req, 2, &done), -EINVAL, "rewritten_request_refused");
		CHECK_EQ(done, 1, "only_the_store_done");
	}
	/* pdone aimed at the request list: written at the end, after every request was read. */
	req[0].ptr = pte_ma(scratch);
	req[0].val = virt_to_mach(scratch) | 3;
	req[1].ptr = pte_ma(scratch);
	req[1].val = virt_to_mach(scratch) | 3;
	CHECK_EQ(HYPERVISOR_mmu_update(req, 2, &req[1].ptr), 0, "pdone_into_list");
	CHECK_EQ(req[1].ptr, 2, "pdone_written_last");

	/* Lists Xen must not read or write. */
	CHECK_EQ(HYPERVISOR_multicall((multicall_entry_t *)(HYPERVISOR_VIRT_START - 32), 2), -EFAULT,
		 "list_crossing_into_xen");
	CHECK_EQ(HYPERVISOR_multicall((multicall_entry_t *)HYPERVISOR_VIRT_START, 1), -EFAULT,
		 "list_in_m2p");
	CHECK_EQ(HYPERVISOR_multicall((multicall_entry_t *)0xFFFFFFE0u, 1), -EFAULT, "list_at_top");
	CHECK_EQ(HYPERVISOR_multicall(m, 0x08000000u), -EFAULT, "count_huge");
	CHECK_EQ(HYPERVISOR_multicall((multicall_entry_t *)si->pt_base, 1), -EFAULT,
		 "list_in_readonly_page_table");
	/* Unknown and wrapped op numbers. */
	memset(MC(m, 0), 0, sizeof(multicall_entry_t));
	MC(m, 0)->op = 0xFFFFFFFFu;
	CHECK_EQ(HYPERVISOR_multicall(m, 1), 0, "unknown_op_batch_ran");
	CHECK_EQ(MC_RES(MC(m, 0)), -ENOSYS, "unknown_op_enosys");
	checks_done();
}
