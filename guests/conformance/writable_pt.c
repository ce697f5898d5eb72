/*
 * Conformance: writable page tables (vm_assist VMASST_TYPE_writable_pagetables),
 * abi.md §2.3.3; semantics.md §2. Plain stores into our own read-only-mapped L1 pages
 * succeed and take effect once the table is re-validated; a hostile store is caught.
 * Ends on purpose with a hostile store into an unhooked L1: Xen crashes the domain.
 */
#include "probe.h"

volatile u32 probe_val;
PROBE(p_store, "movl probe_addr, %eax; movl probe_val, %ecx", "movl %ecx, (%eax)");

static u8 scratch[4096] BSS_PAGE;
static u8 scratch2[4096] BSS_PAGE;
static u8 page_a[4096] BSS_PAGE;
static u8 page_b[4096] BSS_PAGE;
static mmu_update_t big[1024];

#define ACT_SLOT 0x100u /* VA 0x40000000 */
#define INACT_SLOT 0x101u

static u32 ma_l2, ma_l1;
static const volatile u32 *l2;

static long mmu1(u32 ptr, u32 val)
{
	mmu_update_t r = { ptr, val };
	return HYPERVISOR_mmu_update(&r, 1, 0);
}

static u32 spare(u32 k)
{
	return ((const u32 *)start_info->mfn_list)[start_info->nr_pages - 1 - k];
}

static long zero_frame(u32 mfn)
{
	u32 i;
	for (i = 0; i < 1024; i++) {
		big[i].ptr = (mfn << PAGE_SHIFT) + i * 4;
		big[i].val = 0;
	}
	return HYPERVISOR_mmu_update(big, 1024, 0);
}

static u32 rd(u32 va)
{
	return *(volatile const u32 *)va;
}

/* A store through p_store: returns the trap vector, or -1 when it went through. */
static int store(volatile u32 *va, u32 val)
{
	probe_addr = (u32)va;
	probe_val = val;
	return trap_catch(p_store, 0);
}

static long flush_all(void)
{
	return HYPERVISOR_mmu_update(big, 0, 0); /* mmu_update flushes writable page tables first */
}

void start_kernel(start_info_t *si)
{
	volatile u32 *s1 = (volatile u32 *)scratch;
	u32 l1a, l1b, l2b, i;
	volatile u32 *kl1;
	u32 idx2;

	conf_init(si, "writable_pt");
	l1a = spare(0);
	l1b = spare(1);
	l2b = spare(2);
	l2 = (const volatile u32 *)si->pt_base;
	ma_l2 = virt_to_mach((void *)si->pt_base);
	ma_l1 = l2[(u32)_text >> 22] & ~0xfffu;
	kl1 = (volatile u32 *)(si->pt_base + PAGE_SIZE);
	memset(page_a, 0xAA, 4096);
	memset(page_b, 0xBB, 4096);

	/* Without the assist a store into a read-only L1 is an ordinary #PF. */
	CHECK_EQ(zero_frame(l1a), 0, "zero_l1a");
	CHECK_EQ(mmu1(ma_l2 + ACT_SLOT * 4, (l1a << PAGE_SHIFT) | 0x67), 0, "hook_l1a");
	CHECK_EQ(HYPERVISOR_update_va_mapping((u32)scratch, (l1a << PAGE_SHIFT) | 0x21, UVMF_INVLPG),
		 0, "map_l1a_readonly");
	CHECK_EQ(store(&s1[0], virt_to_mach(page_a) | 0x23), 14, "no_assist_store_faults");
	CHECK_EQ(HYPERVISOR_vm_assist(VMASST_CMD_enable, VMASST_TYPE_writable_pagetables), 0,
		 "vm_assist_enable");

	/* ACTIVE: the L1 is hooked in the current L2 (slot 0x100); Xen unhooks it. */
	CHECK_EQ(store(&s1[0], virt_to_mach(page_a) | 0x23), -1, "active_store_succeeds");
	CHECK_EQ(s1[0], virt_to_mach(page_a) | 0x23, "active_store_readable");
	CHECK_EQ(l2[ACT_SLOT] & _PAGE_PRESENT, 0, "active_l2_entry_unhooked");
	CHECK_EQ(store(&s1[1], virt_to_mach(page_b) | 0x23), -1, "active_second_store");
	/* Touching the window re-validates and reconnects. */
	CHECK_EQ(rd(ACT_SLOT << 22), 0xAAAAAAAA, "active_entry_0_in_effect");
	CHECK_EQ(rd((ACT_SLOT << 22) + 4096), 0xBBBBBBBB, "active_entry_1_in_effect");
	CHECK_EQ(l2[ACT_SLOT] & _PAGE_PRESENT, _PAGE_PRESENT, "active_l2_entry_reconnected");
	/* Again, this time flushed by mmu_update; removing RW only is the cheap path. */
	CHECK_EQ(store(&s1[0], virt_to_mach(page_a) | 0x21), -1, "active_rw_removal_store");
	CHECK_EQ(store(&s1[1], 0), -1, "active_unmap_store");
	CHECK_EQ(flush_all(), 0, "mmu_update_flushes");
	CHECK_EQ(l2[ACT_SLOT] & _PAGE_PRESENT, _PAGE_PRESENT, "mmu_update_reconnected");
	CHECK_EQ(rd(ACT_SLOT << 22), 0xAAAAAAAA, "readonly_entry_in_effect");
	/* page_a is no longer mapped writable through l1a: it may become a page table. */
	CHECK_EQ(store(&s1[0], 0), -1, "active_clear_store");
	flush_all();

	/* EMULATED: the kernel's own L1 maps itself, so it cannot be unhooked. */
	CHECK_EQ(virt_to_mach((void *)kl1), ma_l1, "kernel_l1_at_pt_base_plus_1");
	idx2 = ((u32)scratch2 >> PAGE_SHIFT) & 1023;
	CHECK_EQ(store(&kl1[idx2], virt_to_mach(page_b) | 0x23), -1, "emulated_store_succeeds");
	CHECK_EQ(l2[(u32)_text >> 22] & _PAGE_PRESENT, _PAGE_PRESENT, "emulated_not_unhooked");
	mmu1(MMU_EXTENDED_COMMAND | (u32)scratch2, MMUEXT_INVLPG);
	CHECK_EQ(rd((u32)scratch2), 0xBBBBBBBB, "emulated_store_in_effect");
	/* A hostile emulated store (writable mapping of a page table) is refused: #PF. */
	CHECK_EQ(store(&kl1[idx2], ma_l2 | 0x23), 14, "emulated_hostile_store_faults");
	CHECK_EQ(last_trap.cr2, (u32)&kl1[idx2], "emulated_hostile_cr2");
	CHECK_EQ(kl1[idx2], virt_to_mach(page_b) | 0x23, "emulated_hostile_not_applied");
	CHECK_EQ(store(&kl1[idx2], virt_to_mach(scratch2) | 0x23), -1, "emulated_restore");
	mmu1(MMU_EXTENDED_COMMAND | (u32)scratch2, MMUEXT_INVLPG);

	/* INACTIVE: an L1 hooked (slot 0x101) only in another, pinned L2. */
	CHECK_EQ(zero_frame(l1b), 0, "zero_l1b");
	for (i = 0; i < 1008; i++) {
		big[i].ptr = (l2b << PAGE_SHIFT) + i * 4;
		big[i].val = l2[i];
	}
	big[INACT_SLOT].val = (l1b << PAGE_SHIFT) | 0x67;
	big[ACT_SLOT].val = 0;
	CHECK_EQ(HYPERVISOR_mmu_update(big, 1008, 0), 0, "build_l2b");
	CHECK_EQ(mmu1(MMU_EXTENDED_COMMAND | (l2b << PAGE_SHIFT), MMUEXT_PIN_L2_TABLE), 0, "pin_l2b");
	CHECK_EQ(HYPERVISOR_update_va_mapping((u32)scratch, (l1b << PAGE_SHIFT) | 0x21, UVMF_INVLPG),
		 0, "map_l1b_readonly");
	CHECK_EQ(store(&s1[3], virt_to_mach(page_a) | 0x23), -1, "inactive_store_succeeds");
	CHECK_EQ(flush_all(), 0, "inactive_flushed");
	CHECK_EQ(HYPERVISOR_update_va_mapping((u32)scratch, (l1b << PAGE_SHIFT) | 0x23, UVMF_INVLPG),
		 -EINVAL, "inactive_l1_still_a_page_table");
	CHECK_EQ(mmu1(MMU_EXTENDED_COMMAND | (l2b << PAGE_SHIFT), MMUEXT_NEW_BASEPTR), 0,
		 "switch_to_l2b");
	CHECK_EQ(rd((INACT_SLOT << 22) + 3 * 4096), 0xAAAAAAAA, "inactive_entry_in_effect");
	CHECK_EQ(mmu1(MMU_EXTENDED_COMMAND | ma_l2, MMUEXT_NEW_BASEPTR), 0, "switch_back");

	/* The hostile store into the unhooked L1: caught when the table is checked again. */
	CHECK_EQ(HYPERVISOR_update_va_mapping((u32)scratch, (l1a << PAGE_SHIFT) | 0x21, UVMF_INVLPG),
		 0, "map_l1a_again");
	printk("EXPECT crash: writable page table\n");
	printk("DONE passed=%u failed=%u\n", checks_passed, checks_failed);
	s1[5] = ma_l1 | 0x23; /* a writable mapping of our own L1: accepted for now... */
	(void)rd(ACT_SLOT << 22); /* ...and refused here: Xen crashes the domain */
	printk("FAIL hostile_store_not_caught\n");
	checks_done();
}
