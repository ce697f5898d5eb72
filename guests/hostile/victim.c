/*
 * The victim beside every hostile guest (test/hostile.test.ts): fills every page of its memory
 * that it does not run from with a known pattern, names one of them, then blocks for good with
 * nothing bound that could wake it. The test hashes all of its frames before and after an
 * attack; nothing the victim does itself changes them meanwhile.
 */
#include "hostile.h"

/* One page we remap onto each pattern frame in turn. */
static u8 window[4096] BSS_PAGE;
/* Pattern pages inside the image too (bss), so the named frame is one the victim maps itself. */
static u8 data[4][4096] BSS_PAGE;

/* Word i of pfn's pattern: distinct per page and offset, never zero. */
static inline u32 pattern(u32 pfn, u32 i)
{
	return 0x5A000000u ^ (pfn << 10) ^ i ^ 0x00A5A5A5u;
}

static void fill(volatile u32 *p, u32 pfn)
{
	u32 i;
	for (i = 0; i < 1024; i++)
		p[i] = pattern(pfn, i);
}

void start_kernel(start_info_t *si)
{
	u32 first_free, pfn, n = 0, k;
	/* The L1 mapping our first 4 MiB: the page after the L2 (abi.md §4.2). */
	const volatile u32 *kl1 = (const volatile u32 *)(si->pt_base + PAGE_SIZE);
	lib_init(si);
	/* Everything above the bootstrap stack is free memory (abi.md §4.2 layout). */
	first_free = (boot_regs.esp + PAGE_SIZE - 1 - (u32)_text) >> PAGE_SHIFT;
	for (pfn = first_free; pfn < si->nr_pages; pfn++) {
		/* Pages the bootstrap L1 maps are filled in place (no hypercall each). */
		if (pfn < 1024 && (kl1[pfn] & _PAGE_PRESENT)) {
			fill((volatile u32 *)((u32)_text + pfn * PAGE_SIZE), pfn);
			n++;
			continue;
		}
		if (HYPERVISOR_update_va_mapping((u32)window, (p2m(pfn) << PAGE_SHIFT) | 3,
						 UVMF_INVLPG)) {
			printk("victim: cannot map pfn %u\n", pfn);
			guest_halt(SHUTDOWN_crash);
		}
		fill((volatile u32 *)window, pfn);
		n++;
	}
	HYPERVISOR_update_va_mapping((u32)window, virt_to_mach(window) | 3, UVMF_INVLPG);
	for (k = 0; k < 4; k++)
		fill((volatile u32 *)data[k], virt_to_pfn(data[k]));
	printk("VICTIM ready pages=%u filled=%u mfn=%u\n", si->nr_pages, n + 4, virt_to_mfn(data[0]));
	/* Events are masked and no port is bound: nothing wakes us. */
	for (;;)
		HYPERVISOR_sched_op(SCHEDOP_block);
}
