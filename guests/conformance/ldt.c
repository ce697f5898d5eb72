/*
 * Conformance: the LDT (MMU_EXTENDED_COMMAND / MMUEXT_SET_LDT: ptr = base VA, val[31:8] =
 * entries), abi.md §2.3.2, §3.4; semantics.md §3.4. Xen writes the LDT descriptor into GDT
 * slot 265 and maps our LDT frames, page by page when the CPU first reads a descriptor, into
 * the shadow-LDT window at 0xFF410000; each frame takes an LDT type reference there (all its
 * descriptors checked), so it must be mapped read-only by us. A page that cannot be mapped
 * gives us a #PF at our own LDT address.
 */
#include "desc.h"

static u8 ldt_pages[3 * 4096] BSS_PAGE; /* entries 0..511 | 512..1023 | 1024..1535 */
static u8 gdt_a[4096] BSS_PAGE;
static u8 kdata[4096] BSS_PAGE;
static u8 udata[4096] __attribute__((section(".user.data"), aligned(4096)));
static u32 frames[16];

#define LDT_VA ((u32)ldt_pages)
#define PAGE(n) (ldt_pages + (n) * 4096)
#define MAGIC_K 0x1D7A0001u
#define MAGIC_K2 0x1D7A0002u
#define MAGIC_U 0x1D7A0003u
#define NENTS 1100

static volatile u32 int40_cs;

/* Runs in the handler: its CS is the one from the virtual IDT entry. */
static int int40_hook(struct trap_frame *f)
{
	u32 cs;
	__asm__ __volatile__("movl %%cs, %0" : "=r"(cs));
	int40_cs = cs & 0xFFFF;
	return 1;
}

static u32 sldt(void)
{
	u32 s;
	__asm__ __volatile__("sldt %0" : "=r"(s));
	return s;
}

static long upd(const void *va, struct desc d)
{
	return HYPERVISOR_update_descriptor(virt_to_mach(va), d.lo, d.hi);
}

void start_kernel(start_info_t *si)
{
	struct desc d __attribute__((unused));
	mmu_update_t u;
	u32 done;
	long rc;
	int v;

	conf_init(si, "ldt");
	CHECK_EQ(user_pages_init(), 0, "setup_user_pages");
	*(volatile u32 *)kdata = MAGIC_K;
	*(volatile u32 *)(kdata + 8) = MAGIC_K2;
	*(volatile u32 *)udata = MAGIC_U;
	/* Our own GDT, so that slot 265 can be read back. */
	CHECK_EQ(remap(gdt_a, 1), 0, "setup_gdt_readonly");
	frames[0] = virt_to_mfn(gdt_a);
	CHECK_EQ(HYPERVISOR_set_gdt(frames, 512), 0, "setup_set_gdt");
	CHECK_EQ(sldt(), 0, "no_ldt_at_start");

	/* ---- SET_LDT errors */
	CHECK_EQ(set_ldt(LDT_VA + 8, 16), -EINVAL, "base_unaligned_einval");
	CHECK_EQ(set_ldt(LDT_VA, 8193), -EINVAL, "entries_8193_einval");
	CHECK_EQ(set_ldt(0xFC3FF000, 513), -EINVAL, "end_beyond_fc400000_einval");
	CHECK_EQ(set_ldt(0xFFFFF000, 8192), -EINVAL, "end_wraps_einval");
	CHECK_EQ(set_ldt(0xFF410000, 16), -EINVAL, "base_in_shadow_window_einval");
	u.ptr = (LDT_VA + 8) | MMU_EXTENDED_COMMAND;
	u.val = MMUEXT_SET_LDT | (16 << MMUEXT_CMD_SHIFT);
	done = 99;
	CHECK_EQ(HYPERVISOR_mmu_update(&u, 1, &done), -EINVAL, "bad_set_ldt_batch_einval");
	CHECK_EQ(done, 0, "bad_set_ldt_not_counted");
	CHECK_EQ(sldt(), 0, "failed_set_ldt_leaves_no_ldt");


	/* ---- a three-page LDT */
	memset(ldt_pages, 0, sizeof(ldt_pages));
	desc_put(PAGE(0), 1, mkseg((u32)kdata, 0, ACC_R1_DATA, FLG_G));
	desc_put(PAGE(0), 2, mkseg(0, 0xFFFFF, ACC_R3_CODE, FLG_G));
	desc_put(PAGE(0), 3, mkseg((u32)udata, 0, ACC_R3_DATA, FLG_G));
	desc_put(PAGE(0), 4, mkseg(0xFB000000, 0xFFFFF, ACC_R1_DATA, FLG_G));
	desc_put(PAGE(0), 5, mkgate(FLAT_KERNEL_CS, 0x1000, 3));
	desc_put(PAGE(1), 600 - 512, mkseg((u32)kdata + 8, 0, ACC_R1_DATA, FLG_G));
	desc_put(PAGE(1), 601 - 512, mkseg(0, 0xFFFFF, ACC_R1_CODE, FLG_G));
	desc_put(PAGE(2), 1030 - 1024, mkseg(0, 0xFFFFF, ACC_R0_DATA, FLG_G)); /* DPL 0 */
	CHECK(remap(PAGE(0), 1) == 0 && remap(PAGE(1), 1) == 0 && remap(PAGE(2), 1) == 0,
	      "setup_ldt_pages_readonly");

	rc = set_ldt(LDT_VA, NENTS);
	CHECK_EQ(rc, 0, "set_ldt_ok");
	if (rc)
		checks_done();
#ifndef XEN_ABI_JUL /* MAR-specific: abi.md §5 */
	CHECK_EQ(sldt(), SEL_GDT(265, 0), "ldtr_is_gdt_slot_265");
#endif
	d = desc_get(gdt_a, 265);
#ifndef XEN_ABI_JUL /* MAR-specific: abi.md §5 */
	CHECK_EQ(desc_base(d), 0xFF410000, "slot_265_base_shadow_window");
#endif
#ifndef XEN_ABI_JUL /* MAR-specific: abi.md §5 */
	CHECK_EQ(desc_limit_field(d), NENTS * 8 - 1, "slot_265_limit_entries");
#endif
#ifndef XEN_ABI_JUL /* MAR-specific: abi.md §5 */
	CHECK_EQ((d.hi >> 8) & 0xFF, 0x82, "slot_265_type_ldt");
#endif

	/* ---- using it at ring 1 */
	CHECK_EQ(fs_load_read(SEL_LDT(1, 1), 0), -1, "ldt_segment_loads");
	CHECK_EQ(probe_val, MAGIC_K, "ldt_segment_base");
	/* QEMU blind spot: TCG does not enforce segment limits (docs/realxen-table.md). */
	CHECK_EQ(fs_load_read(SEL_LDT(1, 1), 0x1000), 13, "ldt_segment_limit_gp");
	CHECK_EQ(desc_limit_field(desc_get(PAGE(0), 2)), 0xFC3FF, "ldt_page_4gb_truncated_in_frame");
	CHECK_EQ(desc_limit_field(desc_get(PAGE(0), 4)), 0x013FF, "ldt_page_high_segment_truncated");
	CHECK_EQ(seg_limit(SEL_LDT(4, 1)), 0x013FFFFF, "ldt_high_segment_lsl");
	CHECK_EQ(fs_load_read(SEL_LDT(4, 1), 0x01000000), -1, "ldt_high_segment_reads_fc000000");
	/* QEMU blind spot: TCG does not enforce segment limits (docs/realxen-table.md). */
	CHECK_EQ(fs_load_read(SEL_LDT(4, 1), 0x01400000), 13, "ldt_high_segment_fc400000_gp");
	CHECK_EQ(fs_load_read(SEL_LDT(600, 1), 0), -1, "second_page_mapped_lazily");
	CHECK_EQ(probe_val, MAGIC_K2, "second_page_segment_base");
	CHECK_EQ(fs_load_read(SEL_LDT(NENTS, 1), 0), 13, "selector_beyond_ldt_limit_gp");
	CHECK_EQ(last_trap.error_code, SEL_LDT(NENTS, 0), "selector_beyond_ldt_limit_code");
	CHECK_EQ(fs_load_read(SEL_LDT(5, 1), 0), 13, "call_gate_not_a_data_segment");

	/* A page with a DPL-0 descriptor never becomes an LDT page: #PF at our address. */
	CHECK_EQ(fs_load_read(SEL_LDT(1030, 1), 0), 14, "dpl0_ldt_page_faults");
	CHECK_EQ(last_trap.cr2, LDT_VA + 1030 * 8, "dpl0_ldt_page_cr2_guest_address");
	CHECK_EQ(last_trap.error_code, 0, "dpl0_ldt_page_error_code");
	/* Fixed through update_descriptor (the page has no type now), it maps. */
	CHECK_EQ(upd(PAGE(2) + 6 * 8, mkseg((u32)kdata, 0, ACC_R1_DATA, FLG_G)), 0,
		 "fix_ldt_page_by_update_descriptor");
	CHECK_EQ(fs_load_read(SEL_LDT(1030, 1), 0), -1, "fixed_ldt_page_maps");
	CHECK_EQ(probe_val, MAGIC_K, "fixed_ldt_page_segment_base");

	/* ---- ring 3 with CS and SS from the LDT */
	v = run_user_sel(u_read_ss0, 0xFF0, SEL_LDT(2, 3), SEL_LDT(3, 3), 0);
	CHECK_EQ(v, 3, "ring3_ldt_selectors_run");
	CHECK_EQ(last_trap.cs & 0xFFFF, SEL_LDT(2, 3), "ring3_ldt_cs");
	CHECK_EQ(last_trap.ss & 0xFFFF, SEL_LDT(3, 3), "ring3_ldt_ss");
	CHECK_EQ(last_trap.eax, MAGIC_U, "ring3_ldt_data_base");
	v = run_user_sel(u_read_ss_limit, 0xFF0, SEL_LDT(2, 3), SEL_LDT(3, 3), 0);
	/* QEMU blind spot: TCG does not enforce segment limits (docs/realxen-table.md). */
	CHECK_EQ(v, 13, "ring3_ldt_limit_gp");
	v = run_user_sel(u_load_eax_ds, 0xFF0, SEL_LDT(2, 3), SEL_LDT(3, 3), SEL_LDT(1, 3));
	CHECK_EQ(v, 13, "ring3_cannot_load_ring1_ldt_segment");
	CHECK_EQ(last_trap.error_code, SEL_LDT(1, 0), "ring3_cannot_load_ring1_ldt_segment_code");

	/* ---- a trap handler whose CS is in an LDT page not shadowed yet: Xen faults it in
	 * while building the bounce frame. (Changing the entry count drops the shadow LDT;
	 * only page 0 comes back at the end of the call.) */
	CHECK_EQ(set_ldt(LDT_VA, NENTS - 1), 0, "setup_ldt_reset_shadow");
	CHECK_EQ(set_ldt(LDT_VA, NENTS), 0, "setup_ldt_again");
	{
		trap_info_t t[2];
		memset(t, 0, sizeof(t));
		t[0].vector = 0x40;
		t[0].flags = 1;
		t[0].cs = SEL_LDT(601, 1);
		t[0].address = trap_stub(0x40);
		CHECK_EQ(HYPERVISOR_set_trap_table(t), 0, "trap_cs_in_ldt_accepted");
		trap_hooks[0x40] = int40_hook;
		__asm__ __volatile__("int $0x40" ::: "memory");
		CHECK_EQ(int40_cs, SEL_LDT(601, 1), "trap_through_unshadowed_ldt_cs");
	}

	/* ---- the shadowed frames are LDT pages: no writable mapping, no raw write */
	CHECK_EQ(remap(PAGE(0), 3), -EINVAL, "ldt_page_map_writable_einval");
	CHECK_EQ(HYPERVISOR_update_va_mapping((u32)kdata, virt_to_mach(PAGE(1)) | 3, UVMF_INVLPG),
		 -EINVAL, "ldt_page_alias_writable_einval");
	u.ptr = virt_to_mach(PAGE(0)) + 8;
	u.val = 0;
	CHECK_EQ(HYPERVISOR_mmu_update(&u, 1, 0), -EINVAL, "ldt_page_mmu_update_write_einval");
	probe_sel = FLAT_KERNEL_DS;
	probe_off = (u32)PAGE(0) + 8;
	probe_val = 0;
	v = trap_catch(probe_fs_write, 0);
	restore_data_segs();
	CHECK(v == 14 && last_trap.error_code == 3, "ldt_page_write_faults");

	/* update_descriptor on an LDT page (LDT reference): checked, then visible. */
	CHECK_EQ(upd(PAGE(0) + 8, mkseg((u32)kdata + 8, 0, ACC_R1_DATA, FLG_G)), 0,
		 "ldt_update_descriptor_ok");
	CHECK_EQ(fs_load_read(SEL_LDT(1, 1), 0), -1, "ldt_updated_segment_loads");
	CHECK_EQ(probe_val, MAGIC_K2, "ldt_updated_segment_base");
	CHECK_EQ(upd(PAGE(0) + 8, mkseg(0, 0xFFFFF, ACC_R0_DATA, FLG_G)), -EINVAL,
		 "ldt_update_descriptor_dpl0_einval");
	CHECK_EQ(upd(PAGE(0) + 48, (struct desc){0x08191000, 0x0000EE00}), -EINVAL,
		 "ldt_update_descriptor_interrupt_gate_einval");

	/* ---- unmapping our read-only mapping of an LDT page drops the whole shadow LDT;
	 * page 0 is mapped again at the end of the call (Xen's deferred LDT reload). */
	CHECK_EQ(HYPERVISOR_update_va_mapping((u32)PAGE(1), 0, UVMF_INVLPG), 0, "unmap_ldt_page_ok");
	CHECK_EQ(remap(PAGE(1), 3), 0, "unmapped_ldt_page_may_be_writable");
	desc_put(PAGE(1), 600 - 512, mkseg((u32)kdata, 0, ACC_R1_DATA, FLG_G));
	CHECK_EQ(remap(PAGE(2), 3), 0, "whole_shadow_ldt_dropped");
	CHECK_EQ(remap(PAGE(0), 3), -EINVAL, "page0_premapped_after_invalidation");
	CHECK_EQ(remap(PAGE(2), 1), 0, "setup_page2_readonly_again");
	CHECK_EQ(remap(PAGE(1), 1), 0, "setup_page1_readonly_again");
	CHECK_EQ(fs_load_read(SEL_LDT(600, 1), 0), -1, "remapped_page_shadowed_again");
	CHECK_EQ(probe_val, MAGIC_K, "remapped_page_new_contents");
	CHECK_EQ(fs_load_read(SEL_LDT(1, 1), 0), -1, "page0_shadowed_again");

	/* The same LDT again: nothing changes. */
	CHECK_EQ(set_ldt(LDT_VA, NENTS), 0, "set_same_ldt_ok");
	CHECK_EQ(remap(PAGE(0), 3), -EINVAL, "same_ldt_keeps_shadow");

	/* ---- a writable LDT page cannot be shadowed */
	CHECK_EQ(set_ldt(0, 0), 0, "set_ldt_null_ok");
	CHECK_EQ(sldt(), 0, "null_ldt_ldtr_0");
	CHECK_EQ(fs_load_read(SEL_LDT(1, 1), 0), 13, "null_ldt_selector_gp");
	CHECK_EQ(remap(PAGE(0), 3), 0, "null_ldt_releases_pages");
	CHECK_EQ(set_ldt(LDT_VA, 16), 0, "set_ldt_writable_page_accepted");
	CHECK_EQ(fs_load_read(SEL_LDT(1, 1), 0), 14, "writable_ldt_page_faults");
	CHECK_EQ(last_trap.cr2, LDT_VA + 8, "writable_ldt_page_cr2_guest_address");
	CHECK_EQ(remap(PAGE(0), 1), 0, "setup_page0_readonly_last");
	CHECK_EQ(fs_load_read(SEL_LDT(1, 1), 0), -1, "readonly_again_maps");

	/* An LDT at an unmapped address: the fault names that address. */
	CHECK_EQ(set_ldt(0x10000000, 16), 0, "set_ldt_unmapped_accepted");
	CHECK_EQ(fs_load_read(SEL_LDT(1, 1), 0), 14, "unmapped_ldt_faults");
	CHECK_EQ(last_trap.cr2, 0x10000008, "unmapped_ldt_cr2");
	CHECK_EQ(remap(PAGE(0), 3), 0, "new_ldt_released_old_pages");

	CHECK_EQ(set_ldt(0, 0), 0, "set_ldt_null_at_end");

	/* Last, as it kills real Xen of March 2005 (DEVIATIONS.md, issue 17): an LDT over Xen's
	 * read-only M2P (ending exactly at 0xFC400000) is accepted, but Xen's frames never
	 * become our LDT: the fault comes back at our LDT address. */
	CHECK_EQ(set_ldt(0xFC3FF000, 512), 0, "ldt_ending_at_fc400000_ok");
	CHECK_EQ(fs_load_read(SEL_LDT(1, 1), 0), 14, "ldt_over_xen_area_faults");
	CHECK_EQ(last_trap.cr2, 0xFC3FF008, "ldt_over_xen_area_cr2_is_guest_address");
	CHECK_EQ(set_ldt(0, 0), 0, "set_ldt_null_after_xen_area");
	checks_done();
}
