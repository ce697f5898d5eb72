/*
 * A grant unmap naming the wrong one of two mappings of one frame (dom0 grants the page,
 * ref=<n>): the writable handle with the read-only mapping's address, and the read-only handle
 * with the writable one's. Xen of March 2005 checked only that the PTE held the frame, so the
 * first cleared the read-only PTE and dropped the writable pin while the writable PTE stayed
 * (the granter saw no writer of a page still written). tsxen wants the PTE writable exactly
 * when the mapping is (DEVIATIONS.md): both are -EINVAL, both mappings stay, and the right
 * unmaps then release everything (the test checks the grant entry and the frame's counts).
 */
#include "grant.h"
#include "hostile.h"

static u8 va_rw[4096] BSS_PAGE;
static u8 va_ro[4096] BSS_PAGE;

void start_kernel(start_info_t *si)
{
	u32 ref;
	long h_rw, h_ro;
	hostile_init(si, "grant_rwro");
	ref = cmdline_u32(si, "ref", 0);
	h_rw = gnt_map((u32)va_rw, 0, ref, GNTMAP_host_map, 0);
	CHECK(h_rw >= 0, "writable_map");
	h_ro = gnt_map((u32)va_ro, 0, ref, GNTMAP_host_map | GNTMAP_readonly, 0);
	CHECK(h_ro >= 0 && h_ro != h_rw, "readonly_map");
	CHECK_EQ(gnt_unmap((u32)va_ro, 0, (u32)h_rw), -EINVAL, "writable_handle_at_readonly_pte_refused");
	CHECK_EQ(gnt_unmap((u32)va_rw, 0, (u32)h_ro), -EINVAL, "readonly_handle_at_writable_pte_refused");
	CHECK_EQ(try_load((u32)va_ro), -1, "readonly_map_kept");
	CHECK_EQ(hp_read, 0x600DF00D, "readonly_map_reads_dom0_page");
	CHECK_EQ(try_store((u32)va_rw, 0x0DDBA11), -1, "writable_map_kept");
	CHECK_EQ(gnt_unmap((u32)va_ro, 0, (u32)h_ro), GNTST_okay, "readonly_handle_unmaps");
	CHECK_EQ(gnt_unmap((u32)va_rw, 0, (u32)h_rw), GNTST_okay, "writable_handle_unmaps");
	CHECK_EQ(try_load((u32)va_ro), 14, "readonly_map_gone");
	CHECK_EQ(try_load((u32)va_rw), 14, "writable_map_gone");
	checks_done();
}
