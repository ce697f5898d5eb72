/*
 * The writable window (VMASST_TYPE_writable_pagetables, semantics.md §2) crossed with every
 * path that relies on validated tables (issue 12, classes 1 and 2). The guest builds a second
 * L2 (l2b, pinned) whose slot 0x101 holds an L1 (l1b) that is hooked nowhere else, maps l1b
 * read-only and stores into it: l1b is now in the INACTIVE window, its new entries unchecked.
 * The entries point at Xen's M2P L1, at l2b itself and at the victim's data frame (all
 * writable). Then, by mode=<n>:
 *   1 mov %eax,%cr3 to l2b (emulated: Xen must flush and crash us)
 *   2 decrease_reservation of l2b, increase_reservation, map what comes back writable
 *   3 MMUEXT_NEW_BASEPTR to l2b          4 MMUEXT_UNPIN_TABLE of l2b
 *   5 grant map                           6 grant unmap
 *   7 MMUEXT_TRANSFER_PAGE of l1b         8 update_va_mapping
 *   9 multicall [NEW_BASEPTR l2b]         10 spin in the window: dom0 destroys us
 *  11 set_gdt of a frame the window maps writable (entry valid, so no crash: -EINVAL)
 *  12 an LDT page the window maps writable, then an LDT selector load (must fault)
 *  13 decrease_reservation of l1b itself    14 set_gdt with the hostile entries pending
 *  15 update_descriptor                      16 the ACTIVE window (l1a, hooked in the
 *     current L2 at slot 0x100 and unhooked by the store), then mov %cr3 reloading the
 *     current L2                             17 the ACTIVE window, then NEW_BASEPTR to l2b
 * Surviving the flush is allowed only if what was stored never took effect: every mode checks
 * that afterwards.
 */
#include "grant.h"
#include "desc.h"
#include "hostile.h"

#define WIN_SLOT 0x101u
#define WIN_VA (WIN_SLOT << 22)

static u8 scratch[4096] BSS_PAGE; /* maps l1b read-only */
static u8 scratch2[4096] BSS_PAGE; /* modes 16, 17: maps l1a read-only */
static u8 ldt_va[4096] BSS_PAGE;  /* mode 12: the LDT's page */
static u32 l1b, l2b, fpage, vmfn, m2pl1;

static volatile u32 *win_l1(void)
{
	return (volatile u32 *)scratch;
}

/* Opens the window; stores `n` entries at the start of the L1 mapped read-only at l1. */
static void open_window_at(volatile u32 *l1, const u32 *entries, u32 n)
{
	u32 i;
	CHECK_EQ(HYPERVISOR_vm_assist(VMASST_CMD_enable, VMASST_TYPE_writable_pagetables), 0,
		 "vm_assist_writable_pagetables");
	for (i = 0; i < n; i++)
		CHECK_EQ(try_store((u32)&l1[i], entries[i]), -1, "window_store");
}

static void open_window(const u32 *entries, u32 n)
{
	open_window_at(win_l1(), entries, n);
}

/* After a path that should have crashed us: none of the stored entries may be live in l2b. */
static void check_not_live(u32 n)
{
	u32 i;
	CHECK_EQ(mmuext(l2b << PAGE_SHIFT, MMUEXT_NEW_BASEPTR) == 0 ? 0 : 1, 1,
		 "new_baseptr_to_l2b_refused");
	for (i = 0; i < n; i++)
		CHECK(try_load(WIN_VA + i * PAGE_SIZE) != -1, "window_entry_not_readable");
}

void start_kernel(start_info_t *si)
{
	u32 mode, entries[3];
	long rc;
	hostile_init(si, "ptwr_window");
	mode = cmdline_u32(si, "mode", 0);
	vmfn = cmdline_u32(si, "vmfn", 0);
	l1b = spare_mfn(0);
	l2b = spare_mfn(1);
	fpage = spare_mfn(2);
	m2pl1 = m2p_l1_mfn();
	printk("mode %u: l1b=%u l2b=%u m2p_l1=%u victim=%u\n", mode, l1b, l2b, m2pl1, vmfn);

	CHECK_EQ(fill_frame(l1b, 0), 0, "zero_l1b");
	CHECK_EQ(build_l2_copy(l2b, WIN_SLOT, (l1b << PAGE_SHIFT) | PTE_RW, 0), 0, "build_l2b");
	CHECK_EQ(mmuext(l2b << PAGE_SHIFT, MMUEXT_PIN_L2_TABLE), 0, "pin_l2b");
	CHECK_EQ(HYPERVISOR_update_va_mapping((u32)scratch, (l1b << PAGE_SHIFT) | PTE_RO, UVMF_INVLPG),
		 0, "map_l1b_readonly");
	entries[0] = (m2pl1 << PAGE_SHIFT) | PTE_RW;
	entries[1] = (l2b << PAGE_SHIFT) | PTE_RW;
	entries[2] = (vmfn << PAGE_SHIFT) | PTE_RW;

	if (mode == 11 || mode == 12) {
		/* fpage: a frame of ours with one valid ring-1 data descriptor in slot 0. */
		CHECK_EQ(fill_frame(fpage, 0), 0, "zero_fpage");
		struct desc d = mkseg(0, 0xFFFFF, ACC_R1_DATA, FLG_G);
		CHECK_EQ(mmu1(fpage << PAGE_SHIFT, d.lo), 0, "fpage_desc_lo");
		CHECK_EQ(mmu1((fpage << PAGE_SHIFT) + 4, d.hi), 0, "fpage_desc_hi");
		if (mode == 12) {
			/* SET_LDT while the page is unmapped, so the batch's pre-map of LDT page 0
			 * fails; then map it: the first LDT selector load maps the shadow LDT. */
			CHECK_EQ(HYPERVISOR_update_va_mapping((u32)ldt_va, 0, UVMF_INVLPG), 0,
				 "unmap_ldt_page");
			CHECK_EQ(set_ldt((u32)ldt_va, 512), 0, "set_ldt");
			CHECK_EQ(HYPERVISOR_update_va_mapping((u32)ldt_va, (fpage << PAGE_SHIFT) | PTE_RO,
							      UVMF_INVLPG),
				 0, "map_ldt_page_readonly");
		}
		entries[0] = (fpage << PAGE_SHIFT) | PTE_RW; /* a valid entry: no crash at the flush */
		open_window(entries, 1);
		if (mode == 11) {
			u32 frames[1] = { fpage };
			CHECK_EQ(HYPERVISOR_set_gdt(frames, MIN_GDT_ENTRIES), -EINVAL,
				 "set_gdt_of_window_mapped_frame_refused");
		} else {
			probe_sel = SEL_LDT(0, 1);
			probe_off = (u32)&hp_read; /* a valid address: only the selector load may fault */
			CHECK(trap_catch(probe_fs_read, 0) != -1, "ldt_selector_of_window_mapped_page_faults");
			restore_data_segs();
		}
		/* The writable mapping in l1b is real once flushed: the frame is an ordinary page. */
		CHECK_EQ(HYPERVISOR_update_va_mapping((u32)scratch, virt_to_mach(scratch) | 3, UVMF_INVLPG),
			 0, "flush_and_unmap_l1b");
		checks_done();
	}

	if (mode == 16 || mode == 17) {
		/* ACTIVE: l1a hooked in the current L2 at slot 0x100 (VA 0x40000000). */
		u32 l1a = spare_mfn(3);
		CHECK_EQ(fill_frame(l1a, 0), 0, "zero_l1a");
		CHECK_EQ(mmu1(cur_l2_ma() + 0x100 * 4, (l1a << PAGE_SHIFT) | PTE_RW), 0, "hook_l1a");
		CHECK_EQ(HYPERVISOR_update_va_mapping((u32)scratch2, (l1a << PAGE_SHIFT) | PTE_RO,
						      UVMF_INVLPG),
			 0, "map_l1a_readonly");
		open_window_at((volatile u32 *)scratch2, entries, 3);
		CHECK_EQ(cur_l2()[0x100] & _PAGE_PRESENT, 0, "active_window_unhooked");
		expect_crash("writable page table");
		if (mode == 16) {
			load_cr3(cur_l2_ma());
		} else {
			CHECK(mmuext(l2b << PAGE_SHIFT, MMUEXT_NEW_BASEPTR) != 0, "new_baseptr_refused");
			load_cr3(cur_l2_ma());
		}
		CHECK_EQ(try_load(0x40000000u), 14, "active_m2p_l1_not_readable");
		CHECK_EQ(try_store(0x40000000u + 2 * PAGE_SIZE, 0xDEADBEEF), 14, "active_victim_not_writable");
		checks_done();
	}

	if (mode >= 18 && mode <= 20) {
		u32 l1c = spare_mfn(3), k = 5;
		volatile u32 *l1c_ro = (volatile u32 *)scratch2;
		CHECK_EQ(fill_frame(l1c, 0), 0, "zero_l1c");
		CHECK_EQ(mmu1((l1c << PAGE_SHIFT) + k * 4, (l1b << PAGE_SHIFT) | PTE_RO), 0,
			 "l1c_maps_l1b_readonly");
		CHECK_EQ(mmu1(cur_l2_ma() + 0x100 * 4, (l1c << PAGE_SHIFT) | PTE_RW), 0, "hook_l1c");
		CHECK_EQ(HYPERVISOR_update_va_mapping((u32)scratch2, (l1c << PAGE_SHIFT) | PTE_RO,
						      UVMF_INVLPG),
			 0, "map_l1c_readonly");
		entries[0] = 0;
		open_window_at((volatile u32 *)(0x40000000u + k * PAGE_SIZE), entries, 1);
		CHECK_EQ(try_store((u32)&l1c_ro[k + 1], 0), -1, "active_window_on_l1c");
		CHECK_EQ(l1c_ro[k] & ~0xFFFu, l1b << PAGE_SHIFT, "alias_is_l1b");
		/* Crashing us at the flush is a fine answer too. */
		expect_crash("writable page table");
		/* 18: a writable mapping of our own page; 19: the alias with only RW removed;
		 * 20: the alias cleared. Each is a change the ACTIVE flush would account. */
		CHECK_EQ(try_store((u32)&l1c_ro[k], mode == 18   ? virt_to_mach(ldt_va) | 0x67
						  : mode == 19 ? (l1b << PAGE_SHIFT) | PTE_RO
							       : 0),
			 -1, "alias_retargeted");
		/* Entry 0 of l1c is empty: touching it flushes l1c's window, then faults. */
		CHECK_EQ(try_load(0x40000000u), 14, "active_flushed_by_touching_its_region");
		CHECK_EQ(HYPERVISOR_mmu_update(hp_big, 0, 0), 0, "inactive_flushed");
		rc = HYPERVISOR_update_va_mapping((u32)scratch, (l1b << PAGE_SHIFT) | 3, UVMF_INVLPG);
		CHECK_EQ(rc, -EINVAL, "l1b_still_a_page_table");
		if (rc == 0) {
			/* l1b lost its type while l2b still hooks it: write it as plain memory. */
			win_l1()[2] = (vmfn << PAGE_SHIFT) | PTE_RW;
			mmuext(l2b << PAGE_SHIFT, MMUEXT_NEW_BASEPTR);
			try_store(WIN_VA + 2 * PAGE_SIZE, 0xDEADBEEF);
		}
		CHECK_EQ(mmuext(l2b << PAGE_SHIFT, MMUEXT_NEW_BASEPTR), 0, "l2b_still_usable");
		CHECK_EQ(try_load(WIN_VA + 2 * PAGE_SIZE), 14, "victim_not_reachable");
		load_cr3(cur_l2_ma());
		checks_done();
	}

	open_window(entries, 3);
	expect_crash("writable page table");
	switch (mode) {
	case 1:
		load_cr3(l2b << PAGE_SHIFT);
		CHECK_EQ(try_load(WIN_VA), 14, "m2p_l1_not_readable");
		CHECK_EQ(try_store(WIN_VA + PAGE_SIZE + 4092, 0xDEADBEEF), 14, "own_l2_not_writable");
		CHECK_EQ(try_store(WIN_VA + 2 * PAGE_SIZE, 0xDEADBEEF), 14, "victim_not_writable");
		load_cr3(cur_l2_ma());
		break;
	case 2: {
		u32 list[1] = { l2b };
		rc = HYPERVISOR_dom_mem_op(MEMOP_decrease_reservation, list, 1, 0, DOMID_SELF);
		printk("decrease_reservation(l2b) = %d\n", (int)rc);
		list[0] = 0;
		rc = HYPERVISOR_dom_mem_op(MEMOP_increase_reservation, list, 1, 0, DOMID_SELF);
		CHECK(list[0] != vmfn, "increase_does_not_hand_out_the_victim");
		if (rc == 1) {
			rc = HYPERVISOR_update_va_mapping((u32)scratch, (list[0] << PAGE_SHIFT) | 3, UVMF_INVLPG);
			if (rc == 0)
				try_store((u32)scratch, 0xDEADBEEF);
		}
		break;
	}
	case 3:
		CHECK(mmuext(l2b << PAGE_SHIFT, MMUEXT_NEW_BASEPTR) != 0, "new_baseptr_refused");
		break;
	case 4:
		rc = mmuext(l2b << PAGE_SHIFT, MMUEXT_UNPIN_TABLE);
		printk("unpin = %d\n", (int)rc);
		break;
	case 5:
		CHECK(gnt_map(0x40800000, cmdline_u32(si, "victim", 0), 0, GNTMAP_host_map, 0) < 0,
		      "grant_map_refused");
		break;
	case 6:
		CHECK(gnt_unmap((u32)scratch, 0, 7) != 0, "grant_unmap_refused");
		break;
	case 7:
		CHECK(mmu1((l1b << PAGE_SHIFT) | MMU_EXTENDED_COMMAND,
			   MMUEXT_TRANSFER_PAGE | (cmdline_u32(si, "victim", 0) << 16)) != 0,
		      "transfer_refused");
		break;
	case 8:
		CHECK_EQ(HYPERVISOR_update_va_mapping((u32)scratch, virt_to_mach(scratch) | 3, UVMF_INVLPG),
			 0, "update_va_mapping");
		break;
	case 9: {
		static mmu_update_t req;
		static multicall_entry_t mc[1];
		req.ptr = (l2b << PAGE_SHIFT) | MMU_EXTENDED_COMMAND;
		req.val = MMUEXT_NEW_BASEPTR;
		mc[0].op = __HYPERVISOR_mmu_update;
		mc[0].args[0] = (u32)&req;
		mc[0].args[1] = 1;
		mc[0].args[2] = 0;
		HYPERVISOR_multicall(mc, 1);
		CHECK(MC_RES(&mc[0]) != 0, "multicall_new_baseptr_refused");
		break;
	}
	case 13: {
		u32 list[1] = { l1b };
		rc = HYPERVISOR_dom_mem_op(MEMOP_decrease_reservation, list, 1, 0, DOMID_SELF);
		printk("decrease_reservation(l1b) = %d\n", (int)rc);
		rc = mmuext(l2b << PAGE_SHIFT, MMUEXT_UNPIN_TABLE);
		printk("unpin = %d\n", (int)rc);
		break;
	}
	case 14: {
		u32 frames[1] = { fpage };
		rc = HYPERVISOR_set_gdt(frames, MIN_GDT_ENTRIES);
		printk("set_gdt = %d\n", (int)rc);
		break;
	}
	case 15: {
		struct desc d = mkseg(0, 0xFFFFF, ACC_R1_DATA, FLG_G);
		CHECK_EQ(HYPERVISOR_update_descriptor(fpage << PAGE_SHIFT, d.lo, d.hi), 0, "update_descriptor");
		break;
	}
	case 10:
		printk("WINDOW open\n");
		for (;;)
			barrier();
	default:
		check_fail("mode", "unknown mode %u", mode);
	}
	check_not_live(3);
	checks_done();
}
