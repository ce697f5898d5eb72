/*
 * Conformance: mmu_update (hypercall 1, MAR: EBX reqs, ECX count, EDX pdone),
 * abi.md §2.3; semantics.md §1.3-§1.8, §13.
 */
#include "lib.h"

static u8 scratch[4096] BSS_PAGE;
static u8 page_a[4096] BSS_PAGE;
static u8 page_b[4096] BSS_PAGE;
static u8 two_pages[8192] BSS_PAGE;
static mmu_update_t big[1024];

#define LIN_SLOT 0x100u /* an L2 slot (VA 0x40000000) the guest does not use */

static u32 ma_l2, ma_l1, l2_mfn;
static const volatile u32 *l2; /* the current L2, mapped read-only at pt_base */

static long mmu1(u32 ptr, u32 val)
{
	mmu_update_t r = { ptr, val };
	return HYPERVISOR_mmu_update(&r, 1, 0);
}

static long ext(u32 ptr, u32 cmd)
{
	return mmu1(ptr | MMU_EXTENDED_COMMAND, cmd);
}

/* A frame of ours that nothing maps: counted from the top of the p2m. */
static u32 spare(u32 k)
{
	return ((const u32 *)start_info->mfn_list)[start_info->nr_pages - 1 - k];
}

/* Zero a frame by machine address (it must not be a page table in use). */
static long zero_frame(u32 mfn)
{
	u32 i, done = 0;
	for (i = 0; i < 1024; i++) {
		big[i].ptr = (mfn << PAGE_SHIFT) + i * 4;
		big[i].val = 0;
	}
	long rc = HYPERVISOR_mmu_update(big, 1024, &done);
	return rc ? rc : (long)(done != 1024);
}

static u32 rd(const void *va)
{
	return *(volatile const u32 *)va;
}

static long map_scratch(u32 pte)
{
	return HYPERVISOR_update_va_mapping((u32)scratch, pte, UVMF_INVLPG);
}

static void test_batches(void)
{
	mmu_update_t r[4];
	u32 done, mfn = spare(0);
	long rc;

	CHECK_EQ(zero_frame(mfn), 0, "normal_update_plain_store_1024");
	CHECK_EQ(map_scratch((mfn << PAGE_SHIFT) | _PAGE_PRESENT), 0, "map_spare_readonly");
	CHECK_EQ(rd(scratch + 8), 0, "plain_store_zeroed");

	/* count >= 0x10000 without the resume bit: -EINVAL, *pdone = 0. */
	done = 0xdead;
	rc = HYPERVISOR_mmu_update(r, 0x10000, &done);
	CHECK_EQ(rc, -EINVAL, "count_0x10000_einval");
	CHECK_EQ(done, 0, "count_0x10000_pdone_0");
	/* A "resumed" call naming another FD (domain 0) as unprivileged: -EINVAL, done read back. */
	done = 5;
	CHECK_EQ_UNPRIV(HYPERVISOR_mmu_update(r, 0x80000000u, &done), -EINVAL, "resume_foreign_unpriv_einval");
#ifndef XEN_ABI_JUL /* JUL: the FD is an argument; the shim never resumes */
	CHECK_EQ(done, 5, "resume_pdone_carried");
#endif

	done = 0xdead;
	CHECK_EQ(HYPERVISOR_mmu_update((mmu_update_t *)HYPERVISOR_VIRT_START, 1, &done), -EFAULT,
		 "reqs_in_xen_area_efault");
	CHECK_EQ(done, 0, "reqs_efault_pdone_0");
	CHECK_EQ(HYPERVISOR_mmu_update(r, 0, &done), 0, "count_0_ok");
	CHECK_EQ(done, 0, "count_0_pdone_0");

	/* Command 1 is invalid (JUL: 2; 1 is MACHPHYS_UPDATE and 3 the library's shim marker). */
	done = 0xdead;
	r[0].ptr = (mfn << PAGE_SHIFT) | MMU_INVALID_CMD;
	r[0].val = 0;
	CHECK_EQ(HYPERVISOR_mmu_update(r, 1, &done), -EINVAL, "cmd_1_einval");
	CHECK_EQ(done, 0, "cmd_1_pdone_0");

	/* Stops at the first failure; earlier requests stay done; later ones are not run. */
	r[0].ptr = (mfn << PAGE_SHIFT) + 0;
	r[0].val = 0x11111111;
	r[1].ptr = (mfn << PAGE_SHIFT) + 4;
	r[1].val = 0x22222222;
	r[2].ptr = (mfn << PAGE_SHIFT) | MMU_INVALID_CMD;
	r[2].val = 0;
	r[3].ptr = (mfn << PAGE_SHIFT) + 8;
	r[3].val = 0x33333333;
	done = 0xdead;
	rc = HYPERVISOR_mmu_update(r, 4, &done);
	CHECK_EQ(rc, -EINVAL, "halfway_failure_einval");
	CHECK_EQ(done, 2, "halfway_failure_done_exact");
	CHECK(rd(scratch) == 0x11111111 && rd(scratch + 4) == 0x22222222, "halfway_no_rollback");
	CHECK_EQ(rd(scratch + 8), 0, "halfway_rest_not_run");

	/* Full success: *pdone = count; a NULL pdone is fine. */
	r[2].ptr = (mfn << PAGE_SHIFT) + 12;
	r[2].val = 0x44444444;
	done = 0;
	CHECK_EQ(HYPERVISOR_mmu_update(r, 4, &done), 0, "batch_ok");
	CHECK_EQ(done, 4, "batch_ok_done_4");
	CHECK_EQ(HYPERVISOR_mmu_update(r, 4, 0), 0, "batch_null_pdone_ok");
	CHECK_EQ(rd(scratch + 12), 0x44444444, "batch_visible");

	/* A request array running into an unmapped page: -EFAULT after the first. */
	{
		mmu_update_t *edge = (mmu_update_t *)(two_pages + 4096 - sizeof(mmu_update_t));
		CHECK_EQ(HYPERVISOR_update_va_mapping((u32)two_pages + 4096, 0, UVMF_INVLPG), 0,
			 "unmap_second_page");
		edge->ptr = (mfn << PAGE_SHIFT) + 16;
		edge->val = 0x55555555;
		done = 0xdead;
		CHECK_EQ(HYPERVISOR_mmu_update(edge, 2, &done), -EFAULT, "copy_fault_efault");
		CHECK_EQ(done, 1, "copy_fault_done_1");
		CHECK_EQ(rd(scratch + 16), 0x55555555, "copy_fault_first_applied");
		HYPERVISOR_update_va_mapping((u32)two_pages + 4096,
					     virt_to_mach(two_pages + 4096) | 0x23, UVMF_INVLPG);
	}
	CHECK_EQ(map_scratch(0), 0, "unmap_scratch");
}

static void test_l1_updates(void)
{
	u32 idx = ((u32)scratch >> PAGE_SHIFT) & 1023;
	u32 pte_ma = ma_l1 + idx * 4;
	u32 m2p_l1 = l2[1008] >> PAGE_SHIFT, perdomain = l2[1021] >> PAGE_SHIFT;

	memset(page_a, 0xAA, 4096);
	memset(page_b, 0xBB, 4096);
	CHECK_EQ(mmu1(pte_ma, virt_to_mach(page_a) | 0x23), 0, "l1_normal_update_ok");
	CHECK_EQ(ext((u32)scratch, MMUEXT_INVLPG), 0, "invlpg_ok");
	CHECK_EQ(rd(scratch), 0xAAAAAAAA, "l1_normal_update_visible");
	{
		mmu_update_t r[2] = { { pte_ma, virt_to_mach(page_b) | 0x23 },
				      { MMU_EXTENDED_COMMAND, MMUEXT_TLB_FLUSH } };
		CHECK_EQ(HYPERVISOR_mmu_update(r, 2, 0), 0, "tlb_flush_batch_ok");
		CHECK_EQ(rd(scratch), 0xBBBBBBBB, "tlb_flush_visible");
	}
	/* The classic attacks: writable mappings of page tables. */
	CHECK_EQ(mmu1(pte_ma, ma_l2 | 0x23), -EINVAL, "pte_rw_to_l2_einval");
	CHECK_EQ(mmu1(pte_ma, ma_l1 | 0x23), -EINVAL, "pte_rw_to_l1_einval");
	CHECK_EQ(mmu1(pte_ma, ma_l1 | 0x21), 0, "pte_ro_to_l1_ok");
	/* Frames of Xen / not ours: refused read-only and writable. */
	CHECK_EQ(mmu1(pte_ma, (m2p_l1 << PAGE_SHIFT) | 0x21), -EINVAL, "pte_xen_frame_ro_einval");
	CHECK_EQ(mmu1(pte_ma, (perdomain << PAGE_SHIFT) | 0x23), -EINVAL, "pte_perdomain_rw_einval");
	CHECK_EQ_UNPRIV(mmu1(pte_ma, (0xA0u << PAGE_SHIFT) | 0x23), -EINVAL, "pte_io_frame_unpriv_einval");
	/* shared_info is shared with us: writable is fine. */
	CHECK_EQ(mmu1(pte_ma, start_info->shared_info | 0x23), 0, "pte_shared_info_rw_ok");
	/* Disallowed bits. */
	CHECK_EQ(mmu1(pte_ma, virt_to_mach(page_a) | 0x23 | _PAGE_GLOBAL), -EINVAL, "pte_global_einval");
	CHECK_EQ(mmu1(pte_ma, virt_to_mach(page_a) | 0x23 | _PAGE_PAT), -EINVAL, "pte_pat_einval");
	/* Foreign domains: only DOMID_IO for an unprivileged caller, and it owns no RAM. */
	CHECK_EQ_UNPRIV(ext(0, MMUEXT_SET_FOREIGNDOM | (DOMID_XEN << 16)), -EINVAL, "set_fd_xen_unpriv_einval");
#ifndef XEN_ABI_JUL /* MAR-specific: abi.md §5 */
	CHECK_EQ(ext(0, MMUEXT_SET_FOREIGNDOM | (DOMID_SELF << 16)), -EINVAL, "set_fd_self_einval");
#endif
	CHECK_EQ_UNPRIV(ext(0, MMUEXT_SET_FOREIGNDOM | (0 << 16)), -EINVAL, "set_fd_dom0_unpriv_einval");
	{
		mmu_update_t r[4] = { { MMU_EXTENDED_COMMAND, MMUEXT_SET_FOREIGNDOM | (DOMID_IO << 16) },
				      { pte_ma, virt_to_mach(page_a) | 0x23 } };
		u32 done = 0;
		CHECK_EQ(HYPERVISOR_mmu_update(r, 2, &done), -EINVAL, "fd_io_own_ram_einval");
		CHECK_EQ(done, 1, "fd_io_set_counted");
		/* The FD lasts for one call only. */
		CHECK_EQ(mmu1(pte_ma, virt_to_mach(page_a) | 0x23), 0, "fd_dropped_after_call");
		r[1].ptr = MMU_EXTENDED_COMMAND;
		r[1].val = MMUEXT_CLEAR_FOREIGNDOM;
		r[2].ptr = pte_ma;
		r[2].val = virt_to_mach(page_b) | 0x23;
		CHECK_EQ(HYPERVISOR_mmu_update(r, 3, 0), 0, "clear_fd_then_map_ok");
	}
	CHECK_EQ(mmu1(pte_ma, virt_to_mach(scratch) | 0x23), 0, "restore_scratch_pte");
	ext((u32)scratch, MMUEXT_INVLPG);

	/* Extended commands not available to us. */
	CHECK_EQ_UNPRIV(ext(0, MMUEXT_FLUSH_CACHE), -EINVAL, "flush_cache_unpriv_einval");
	CHECK_EQ(ext(virt_to_mach(page_a), MMUEXT_REASSIGN_PAGE), -EINVAL, "reassign_unpriv_einval");
	CHECK_EQ(ext(0, 2), -EINVAL, "pin_l3_einval");
	CHECK_EQ(ext(0, 3), -EINVAL, "pin_l4_einval");
	CHECK_EQ(ext(0, 14), -EINVAL, "new_user_baseptr_einval");
	CHECK_EQ(ext(0, 15), -EINVAL, "tlb_flush_multi_einval");
	CHECK_EQ(ext(0, 16), -EINVAL, "invlpg_multi_einval");
	CHECK_EQ(ext(0, 200), -EINVAL, "unknown_ext_einval");
	/* TRANSFER_PAGE to a domain that does not exist: refused, the page stays ours. */
	CHECK_EQ(ext(spare(5) << PAGE_SHIFT, MMUEXT_TRANSFER_PAGE | (0x7000u << 16)), -EINVAL,
		 "transfer_no_domain_einval");
	CHECK_EQ(mmu1(spare(5) << PAGE_SHIFT, 0x1234), 0, "transfer_failed_page_still_ours");
	/* A page with a mapping cannot be transferred. */
	CHECK_EQ(ext(virt_to_mach(page_a), MMUEXT_TRANSFER_PAGE | (0x7000u << 16)), -EINVAL,
		 "transfer_mapped_page_einval");

	/* MACHPHYS_UPDATE: our frames only. */
	{
		u32 mfn = spare(5), old = machine_to_phys_mapping[spare(5)];
		CHECK_EQ(mmu1((mfn << PAGE_SHIFT) | MMU_MACHPHYS_UPDATE, 0x12345), 0, "machphys_ok");
		CHECK_EQ(machine_to_phys_mapping[mfn], 0x12345, "machphys_visible");
		CHECK_EQ(mmu1((mfn << PAGE_SHIFT) | MMU_MACHPHYS_UPDATE, old), 0, "machphys_restore");
		CHECK_EQ(mmu1((m2p_l1 << PAGE_SHIFT) | MMU_MACHPHYS_UPDATE, 0), -EINVAL,
			 "machphys_xen_frame_einval");
		CHECK_EQ(mmu1((0x50u << PAGE_SHIFT) | MMU_MACHPHYS_UPDATE, 0), -EINVAL,
			 "machphys_io_frame_einval");
	}
}

static void test_l2_updates(void)
{
	u32 slot_ma = ma_l2 + LIN_SLOT * 4;
	const volatile u32 *lin = (const volatile u32 *)((LIN_SLOT << 22) + (LIN_SLOT << 12));

	/* An L2 that maps itself writable is refused; read-only is the linear page table. */
	CHECK_EQ(mmu1(slot_ma, ma_l2 | 0x67), -EINVAL, "l2_self_map_rw_einval");
	CHECK_EQ(mmu1(slot_ma, ma_l2 | 0x65), 0, "l2_self_map_ro_ok");
	ext(0, MMUEXT_TLB_FLUSH);
	CHECK_EQ(lin[0xC0000000u >> 22], l2[0xC0000000u >> 22], "linear_map_reads_l2");
	/* XSA-182: turning the read-only linear entry writable is refused (docs/DEVIATIONS.md). */
	CHECK_EQ(mmu1(slot_ma, ma_l2 | 0x67), -EINVAL, "l2_linear_ro_to_rw_einval");
	CHECK_EQ(mmu1(slot_ma, 0), 0, "l2_linear_clear_ok");
	/* Xen's slots and the superpage bit. */
	CHECK_EQ(mmu1(ma_l2 + 1008 * 4, 0), -EINVAL, "l2_slot_1008_einval");
	CHECK_EQ(mmu1(ma_l2 + 1019 * 4, ma_l2 | 0x63), -EINVAL, "l2_slot_1019_einval");
	CHECK_EQ(mmu1(ma_l2 + 1023 * 4, 0), -EINVAL, "l2_slot_1023_einval");
	CHECK_EQ(mmu1(slot_ma, 0x00000083), -EINVAL, "l2_pse_einval");
	CHECK_EQ(mmu1(slot_ma, virt_to_mach(page_a) | 0x67 | 0x200), -EINVAL, "l2_avl9_einval");
	/* A PDE onto a writable-mapped page cannot make it an L1. */
	CHECK_EQ(mmu1(slot_ma, virt_to_mach(page_a) | 0x67), -EINVAL, "l2_rw_mapped_page_einval");
	/* An L1 holding a writable mapping of the L2 itself does not validate. */
	{
		u32 l1 = spare(1);
		zero_frame(l1);
		mmu1(l1 << PAGE_SHIFT, ma_l2 | 0x23);
		CHECK_EQ(mmu1(slot_ma, (l1 << PAGE_SHIFT) | 0x67), -EINVAL, "l1_mapping_l2_rw_einval");
		mmu1(l1 << PAGE_SHIFT, virt_to_mach(page_a) | 0x23);
		CHECK_EQ(mmu1(slot_ma, (l1 << PAGE_SHIFT) | 0x67), 0, "pde_to_new_l1_ok");
		ext(0, MMUEXT_TLB_FLUSH);
		CHECK_EQ(rd((void *)(LIN_SLOT << 22)), 0xAAAAAAAA, "new_l1_maps_page");
		CHECK_EQ(map_scratch((l1 << PAGE_SHIFT) | 0x23), -EINVAL, "hooked_l1_rw_einval");
		CHECK_EQ(mmu1(slot_ma, 0), 0, "pde_clear_ok");
		/* Unhooked and unpinned: the L1 lost its validation; it may be mapped writable now. */
		CHECK_EQ(map_scratch((l1 << PAGE_SHIFT) | 0x23), 0, "unhooked_l1_rw_ok");
		CHECK_EQ(map_scratch(0), 0, "unmap_scratch_after_unhook");
	}
}

static void test_pins(void)
{
	u32 l1 = spare(2), l2n = spare(3), i, done;
	long rc;

	zero_frame(l1);
	CHECK_EQ(ext(l1 << PAGE_SHIFT, MMUEXT_PIN_L1_TABLE), 0, "pin_l1_ok");
	CHECK_EQ(ext(l1 << PAGE_SHIFT, MMUEXT_PIN_L1_TABLE), -EINVAL, "pin_twice_einval");
	CHECK_EQ(ext(l1 << PAGE_SHIFT, MMUEXT_PIN_L2_TABLE), -EINVAL, "pin_l1_as_l2_einval");
	CHECK_EQ(map_scratch((l1 << PAGE_SHIFT) | 0x23), -EINVAL, "pinned_l1_rw_einval");
	CHECK_EQ(map_scratch((l1 << PAGE_SHIFT) | 0x21), 0, "pinned_l1_ro_ok");
	/* Entries of a pinned L1 are checked. */
	CHECK_EQ(mmu1((l1 << PAGE_SHIFT) + 8, virt_to_mach(page_b) | 0x23), 0, "pinned_l1_entry_ok");
	CHECK_EQ(rd(scratch + 8), virt_to_mach(page_b) | 0x23, "pinned_l1_entry_visible");
	CHECK_EQ(mmu1((l1 << PAGE_SHIFT) + 12, ma_l2 | 0x23), -EINVAL, "pinned_l1_bad_entry_einval");
	CHECK_EQ(map_scratch(0), 0, "unmap_scratch_after_pinned_l1");
	CHECK_EQ(ext(l1 << PAGE_SHIFT, MMUEXT_UNPIN_TABLE), 0, "unpin_ok");
	CHECK_EQ(ext(l1 << PAGE_SHIFT, MMUEXT_UNPIN_TABLE), -EINVAL, "unpin_twice_einval");
	/* Unpinned at type count 0: an update validates the whole table again, then drops it. */
	CHECK_EQ(mmu1((l1 << PAGE_SHIFT) + 16, virt_to_mach(page_a) | 0x21), 0, "unpinned_l1_update_ok");
	CHECK_EQ(mmu1((l1 << PAGE_SHIFT) + 20, ma_l1 | 0x23), -EINVAL, "unpinned_l1_bad_update_einval");
	CHECK_EQ(map_scratch((l1 << PAGE_SHIFT) | 0x23), 0, "devalidated_l1_rw_ok");
	CHECK_EQ(rd(scratch + 16), virt_to_mach(page_a) | 0x21, "devalidated_l1_contents");
	CHECK_EQ(map_scratch(0), 0, "unmap_scratch2");
	/* Pinning a table with a bad entry fails and leaves it untyped. */
	mmu1((l1 << PAGE_SHIFT) + 24, virt_to_mach(page_a) | 0x21 | _PAGE_GLOBAL);
	CHECK_EQ(ext(l1 << PAGE_SHIFT, MMUEXT_PIN_L1_TABLE), -EINVAL, "pin_bad_l1_einval");
	CHECK_EQ(mmu1((l1 << PAGE_SHIFT) + 24, 0), 0, "failed_pin_left_page_writable");
	CHECK_EQ(ext(l1 << PAGE_SHIFT, MMUEXT_UNPIN_TABLE), -EINVAL, "unpin_unpinned_einval");
	CHECK_EQ(ext(0x50u << PAGE_SHIFT, MMUEXT_PIN_L1_TABLE), -EINVAL, "pin_io_frame_einval");
	CHECK_EQ(ext((l2[1008] >> PAGE_SHIFT) << PAGE_SHIFT, MMUEXT_PIN_L1_TABLE), -EINVAL,
		 "pin_xen_frame_einval");

	/* A new L2: the guest's slots copied raw, then pinned (validated, Xen slots written). */
	zero_frame(l2n);
	for (i = 0; i < 1008; i++) {
		big[i].ptr = (l2n << PAGE_SHIFT) + i * 4;
		big[i].val = l2[i];
	}
	/* Xen's slots in a raw page are overwritten at validation. */
	big[1008].ptr = (l2n << PAGE_SHIFT) + 1019 * 4;
	big[1008].val = 0xdeadb067;
	done = 0;
	rc = HYPERVISOR_mmu_update(big, 1009, &done);
	CHECK(rc == 0 && done == 1009, "new_l2_raw_copy_ok");
	CHECK_EQ(ext(l2n << PAGE_SHIFT, MMUEXT_PIN_L2_TABLE), 0, "pin_new_l2_ok");
	CHECK_EQ(map_scratch((l2n << PAGE_SHIFT) | 0x21), 0, "map_new_l2_ro");
	CHECK_EQ(((const u32 *)scratch)[1019], (l2n << PAGE_SHIFT) | 0x63, "new_l2_linear_slot");
	CHECK_EQ(((const u32 *)scratch)[1008], l2[1008], "new_l2_m2p_slot");
	CHECK_EQ(((const u32 *)scratch)[1021], l2[1021], "new_l2_perdomain_slot");
	CHECK_EQ(map_scratch(0), 0, "unmap_scratch3");

	/* Switch to it and back. */
	CHECK_EQ(ext(l2n << PAGE_SHIFT, MMUEXT_NEW_BASEPTR), 0, "new_baseptr_ok");
	CHECK_EQ(rd(page_a), 0xAAAAAAAA, "runs_on_new_l2");
	CHECK_EQ(ext(ma_l2, MMUEXT_NEW_BASEPTR), 0, "new_baseptr_back_ok");
	CHECK_EQ(ext(virt_to_mach(page_a), MMUEXT_NEW_BASEPTR), -EINVAL, "new_baseptr_rw_page_einval");
	CHECK_EQ(ext((l2[1021] >> PAGE_SHIFT) << PAGE_SHIFT, MMUEXT_NEW_BASEPTR), -EINVAL,
		 "new_baseptr_xen_frame_einval");

	/* Unpin while in use as the base pointer: allowed; the base pointer keeps it valid. */
	CHECK_EQ(ext(l2n << PAGE_SHIFT, MMUEXT_NEW_BASEPTR), 0, "new_baseptr_again_ok");
	CHECK_EQ(ext(l2n << PAGE_SHIFT, MMUEXT_UNPIN_TABLE), 0, "unpin_base_l2_ok");
	CHECK_EQ(rd(page_a), 0xAAAAAAAA, "unpinned_base_still_works");
	CHECK_EQ(mmu1((l2n << PAGE_SHIFT) + LIN_SLOT * 4, (l2n << PAGE_SHIFT) | 0x67), -EINVAL,
		 "unpinned_base_still_checked");
	CHECK_EQ(ext(ma_l2, MMUEXT_NEW_BASEPTR), 0, "leave_unpinned_l2");
	/* Nothing holds it now: it was devalidated and can be mapped writable. */
	CHECK_EQ(map_scratch((l2n << PAGE_SHIFT) | 0x23), 0, "devalidated_l2_rw_ok");
	CHECK_EQ(map_scratch(0), 0, "unmap_scratch4");
	/* The boot L2 stays pinned (builder) and in use. */
	CHECK_EQ(ext(ma_l2, MMUEXT_PIN_L2_TABLE), -EINVAL, "boot_l2_already_pinned");
}

void start_kernel(start_info_t *si)
{
	conf_init(si, "mmu_update");
	l2 = (const volatile u32 *)si->pt_base;
	ma_l2 = virt_to_mach((void *)si->pt_base);
	l2_mfn = ma_l2 >> PAGE_SHIFT;
	ma_l1 = l2[(u32)_text >> 22] & ~0xfffu;

	test_batches();
	test_l1_updates();
	test_l2_updates();
	test_pins();
	checks_done();
}
