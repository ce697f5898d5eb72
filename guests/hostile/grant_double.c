/*
 * Two grant mappings of one frame by one domain, one writable and one read-only (dom0 grants
 * the page, ref=<n>). Tearing down the read-only PTE by update_va_mapping releases a grant
 * implicitly (semantics.md §6.3); it must be the read-only map's, not the writable one whose
 * PTE stays: otherwise the granter sees no writer while the attacker still writes its page.
 * Afterwards the test checks the grant entry still says "writing".
 */
#include "grant.h"
#include "hostile.h"

static u8 va_rw[4096] BSS_PAGE;
static u8 va_ro[4096] BSS_PAGE;
volatile u32 go;

void start_kernel(start_info_t *si)
{
	u32 ref;
	long h_rw, h_ro;
	hostile_init(si, "grant_double");
	ref = cmdline_u32(si, "ref", 0);
	h_rw = gnt_map((u32)va_rw, 0, ref, GNTMAP_host_map, 0);
	CHECK(h_rw >= 0, "writable_map");
	h_ro = gnt_map((u32)va_ro, 0, ref, GNTMAP_host_map | GNTMAP_readonly, 0);
	CHECK(h_ro >= 0 && h_ro != h_rw, "readonly_map");
	CHECK_EQ(*(volatile u32 *)va_ro, 0x600DF00D, "readonly_map_reads_dom0_page");
	/* The implicit release of the read-only mapping. */
	CHECK_EQ(HYPERVISOR_update_va_mapping((u32)va_ro, 0, UVMF_INVLPG), 0, "readonly_pte_cleared");
	CHECK_EQ(gnt_unmap((u32)va_ro, 0, (u32)h_ro), GNTST_bad_handle, "readonly_handle_was_released");
	printk("MAPPED writable go=%u\n", virt_to_mach((void *)&go));
	while (go == 0)
		HYPERVISOR_sched_op(SCHEDOP_yield);
	CHECK_EQ(try_store((u32)va_rw, 0x5EC0DE), -1, "writable_map_still_works");
	CHECK_EQ(gnt_unmap((u32)va_rw, 0, (u32)h_rw), GNTST_okay, "writable_handle_unmaps");
	CHECK_EQ(try_load((u32)va_rw), 14, "writable_map_gone");
	checks_done();
}
