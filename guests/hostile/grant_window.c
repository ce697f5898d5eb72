/*
 * A grant mapping inside the writable window. dom0 (the test) grants the attacker one of its
 * pages (ref=<n> on the command line); the attacker host-maps it writable at a VA whose PTE
 * lives in an L1 of its own, opens that L1 as the ACTIVE window and, by mode=<n>:
 *   1 rewrites the grant PTE without RW (the flush's "only RW removed" path: the writable
 *     reference is the grant's pin, not the PTE's)
 *   2 clears the grant PTE (the flush releases it as a grant mapping)
 *   3 moves the grant PTE to another slot of the same L1 (a second mapping of a foreign
 *     frame, which no grant covers: refused)
 * then unmaps the grant by its handle (mode 2: already released by the flush, as Xen's
 * gnttab_check_unmap does). The counts of dom0's page must come out right; a crash at the
 * flush is allowed (mode 3 expects one: a foreign frame mapped outside any grant).
 */
#include "grant.h"
#include "hostile.h"

#define SLOT 0x100u
#define VA(i) ((SLOT << 22) + (i) * PAGE_SIZE)

static u8 scratch[4096] BSS_PAGE; /* maps l1a read-only */

void start_kernel(start_info_t *si)
{
	u32 mode, ref, l1a, pte;
	volatile u32 *l1;
	long h;
	hostile_init(si, "grant_window");
	mode = cmdline_u32(si, "mode", 0);
	ref = cmdline_u32(si, "ref", 0);
	l1a = spare_mfn(0);
	l1 = (volatile u32 *)scratch;
	CHECK_EQ(fill_frame(l1a, 0), 0, "zero_l1a");
	CHECK_EQ(mmu1(cur_l2_ma() + SLOT * 4, (l1a << PAGE_SHIFT) | PTE_RW), 0, "hook_l1a");
	CHECK_EQ(HYPERVISOR_update_va_mapping((u32)scratch, (l1a << PAGE_SHIFT) | PTE_RO, UVMF_INVLPG),
		 0, "map_l1a_readonly");
	h = gnt_map(VA(5), 0, ref, GNTMAP_host_map, 0);
	CHECK(h >= 0, "grant_mapped");
	CHECK_EQ(try_load(VA(5)), -1, "grant_readable");
	CHECK_EQ(hp_read, 0x600DF00D, "grant_shows_dom0_page");
	pte = l1[5];
	CHECK_EQ(pte & _PAGE_RW, _PAGE_RW, "grant_pte_writable");
	CHECK_EQ(HYPERVISOR_vm_assist(VMASST_CMD_enable, VMASST_TYPE_writable_pagetables), 0, "assist_on");
	expect_crash("writable page table");
	switch (mode) {
	case 1:
		CHECK_EQ(try_store((u32)&l1[5], pte & ~_PAGE_RW), -1, "window_rw_removed");
		break;
	case 2:
		CHECK_EQ(try_store((u32)&l1[5], 0), -1, "window_cleared");
		break;
	case 3:
		CHECK_EQ(try_store((u32)&l1[6], pte), -1, "window_second_mapping");
		break;
	default:
		check_fail("mode", "unknown mode %u", mode);
	}
	CHECK_EQ(HYPERVISOR_mmu_update(hp_big, 0, 0), 0, "flushed");
	CHECK_EQ(try_store(VA(6), 0xBAD), 14, "no_second_mapping");
	/* Unmapping by handle: the flush of mode 2 released the mapping already. */
	CHECK_EQ(gnt_unmap(VA(5), 0, (u32)h), mode == 2 ? GNTST_bad_handle : GNTST_okay,
		 "unmap_by_handle");
	checks_done();
}
