/*
 * The ACTIVE writable window against stale translations. An L1 hooked in the current L2
 * (l1a at slot 0x100, VA 0x40000000) is unhooked by a store into it; every translation of its
 * 4 MiB region must go with the hook (Xen flushes the whole TLB there, tsxen drops that
 * region's entries), so the next access there faults, the window is flushed and reconnected,
 * and the walk finds the entry as stored. A translation kept across the unhook would instead
 * read the frame the entry named before: after the frame has been given back to Xen, another
 * domain's memory.
 *
 * Frames A and B (ours, each filled with its own marker) are mapped at VA0 and VA1 through
 * l1a, read (their translations cached), then, round after round, each entry is retargeted,
 * cleared or restored with a plain store into l1a (opening the ACTIVE window) and VA0 / VA1
 * read with no invlpg in between: each read must see what was stored, never what was there.
 * A page outside the region is read between the stores (its translation may stay; its value
 * must be its own). Finally both entries are cleared through the window, A is given back
 * (decrease_reservation) and VA0 must fault.
 */
#include "hostile.h"

#define SLOT 0x100u
#define VA0 (SLOT << 22)
#define VA1 (VA0 + PAGE_SIZE)
#define MARK_A 0xA5A50001u
#define MARK_B 0xB5B50002u
#define ROUNDS 12

static u8 l1_view[4096] BSS_PAGE; /* maps l1a read-only: stores into it open the window */
static u8 outside[4096] BSS_PAGE;  /* a page of ours outside the window's region */

/* A load of va through the probe: its value, or 0xF000 | the trap vector. */
static u32 load(u32 va)
{
	int t = try_load(va);
	return t == -1 ? hp_read : 0xF000u | (u32)t;
}

/* A store of pte into entry i of l1a through its read-only view: must go through (ptwr). */
static void store_entry(u32 i, u32 pte, const char *name)
{
	volatile u32 *l1 = (volatile u32 *)l1_view;
	CHECK_EQ(try_store((u32)&l1[i], pte), -1, name);
}

void start_kernel(start_info_t *si)
{
	u32 a, b, l1a, r, pa, pb;
	u32 list[1];
	volatile u32 *out = (volatile u32 *)outside;
	hostile_init(si, "ptwr_tlb");
	a = spare_mfn(0);
	b = spare_mfn(1);
	l1a = spare_mfn(2);
	pa = (a << PAGE_SHIFT) | PTE_RW;
	pb = (b << PAGE_SHIFT) | PTE_RW;
	CHECK_EQ(HYPERVISOR_vm_assist(VMASST_CMD_enable, VMASST_TYPE_writable_pagetables), 0,
		 "vm_assist_writable_pagetables");
	CHECK_EQ(fill_frame(a, MARK_A), 0, "fill_a");
	CHECK_EQ(fill_frame(b, MARK_B), 0, "fill_b");
	CHECK_EQ(fill_frame(l1a, 0), 0, "zero_l1a");
	CHECK_EQ(mmu1(cur_l2_ma() + SLOT * 4, (l1a << PAGE_SHIFT) | PTE_RW), 0, "hook_l1a");
	CHECK_EQ(mmu1(l1a << PAGE_SHIFT, pa), 0, "map_a_at_va0");
	CHECK_EQ(mmu1((l1a << PAGE_SHIFT) + 4, pb), 0, "map_b_at_va1");
	CHECK_EQ(HYPERVISOR_update_va_mapping((u32)l1_view, (l1a << PAGE_SHIFT) | PTE_RO, UVMF_INVLPG),
		 0, "map_l1a_readonly");
	out[0] = 0x0D0D0D0Du;

	for (r = 0; r < ROUNDS; r++) {
		/* Both translations cached (a read through each), and the outside page's. */
		CHECK_EQ(load(VA0), MARK_A, "va0_reads_a");
		CHECK_EQ(load(VA1), MARK_B, "va1_reads_b");
		CHECK_EQ(load((u32)outside), 0x0D0D0D0Du, "outside_reads_its_own");
		/* VA0 -> B: the store unhooks l1a; the read faults, reconnects and walks. */
		store_entry(0, pb, "retarget_va0_to_b");
		if (r == 0)
			CHECK_EQ(cur_l2()[SLOT] & _PAGE_PRESENT, 0, "active_window_unhooked");
		CHECK_EQ(load(VA0), MARK_B, "va0_reads_b_after_retarget");
		/* VA1 -> A, with the outside page read in between. */
		CHECK_EQ(load(VA1), MARK_B, "va1_still_b");
		store_entry(1, pa, "retarget_va1_to_a");
		CHECK_EQ(load((u32)outside), 0x0D0D0D0Du, "outside_reads_its_own_in_window");
		CHECK_EQ(load(VA1), MARK_A, "va1_reads_a_after_retarget");
		/* Cleared: the read must fault, whatever was cached. */
		CHECK_EQ(load(VA0), MARK_B, "va0_b_cached");
		store_entry(0, 0, "clear_va0");
		CHECK_EQ(load(VA0), 0xF00Eu, "va0_faults_after_clear");
		/* Back as they were, through the window too. */
		store_entry(0, pa, "restore_va0");
		store_entry(1, pb, "restore_va1");
	}

	/* Both entries of A go; A is given back to Xen; VA0 must fault, not read the freed frame. */
	CHECK_EQ(load(VA0), MARK_A, "va0_reads_a_last");
	store_entry(0, 0, "clear_va0_last");
	store_entry(1, 0, "clear_va1_last");
	CHECK_EQ(HYPERVISOR_mmu_update(hp_big, 0, 0), 0, "window_flushed");
	list[0] = a;
	CHECK_EQ(HYPERVISOR_dom_mem_op(MEMOP_decrease_reservation, list, 1, 0, DOMID_SELF), 1,
		 "a_given_back");
	CHECK_EQ(load(VA0), 0xF00Eu, "va0_faults_after_a_freed");
	CHECK_EQ(load(VA1), 0xF00Eu, "va1_faults_after_clear");
	checks_done();
}
