/*
 * Conformance: set_gdt (hypercall 2: EBX frame list VA, ECX entries), abi.md §3.2-§3.4,
 * semantics.md §3.1-§3.2. Every descriptor of a GDT frame is checked; frames must not be
 * mapped writable; Xen's entries 256..295 are written into frame 0; over-long segments are
 * truncated to end at 0xFC400000, which is what keeps the guest out of Xen's area.
 */
#include "desc.h"

static u8 gdt_a[4096] BSS_PAGE; /* frame 0 of the first GDT */
static u8 gdt_b[4096] BSS_PAGE; /* frame 1 of the first GDT */
static u8 gdt_c[4096] BSS_PAGE; /* the second GDT (one frame) */
static u8 bad_page[4096] BSS_PAGE;
static u8 kdata[4096] BSS_PAGE; /* a ring-1 data segment's 4 KiB */
static u8 udata[4096] __attribute__((section(".user.data"), aligned(4096)));
static u32 frames[16];

#define MAGIC_K 0x600DF00Du
#define MAGIC_U 0x05E3DA7Au
#define MAGIC_K2 0x1234ABCDu

/* Xen's reserved descriptors (abi.md §3.2). */
static const struct desc xen_flat[6] = {
	{0x0000FFFF, 0x00CF9A00}, /* 257 ring-0 CS */
	{0x0000FFFF, 0x00CF9200}, /* 258 ring-0 DS */
	{0x0000C3FF, 0x00CFBA00}, /* 259 FLAT_RING1_CS */
	{0x0000C3FF, 0x00CFB200}, /* 260 FLAT_RING1_DS */
	{0x0000C3FF, 0x00CFFA00}, /* 261 FLAT_RING3_CS */
	{0x0000C3FF, 0x00CFF200}, /* 262 FLAT_RING3_DS */
};

static int __attribute__((unused)) reserved_intact(const void *frame0)
{
	u32 i;
	for (i = 0; i < 6; i++) {
		struct desc d = desc_get(frame0, 257 + i);
		/* The CPU may have set the accessed bit (0x100) of a loaded descriptor. */
		if (d.lo != xen_flat[i].lo || (d.hi & ~0x100u) != xen_flat[i].hi)
			return 0;
	}
	return 1;
}

static int fs_read(u32 sel, u32 off)
{
	probe_sel = sel;
	probe_off = off;
	probe_val = 0xDEADBEEF;
	return trap_catch(probe_fs_read, 0);
}

static struct {
	u16 limit;
	u32 base;
} __attribute__((packed)) gdtr;

static void read_gdtr(void)
{
	__asm__ __volatile__("sgdt %0" : "=m"(gdtr));
}

/* bad_page holds one descriptor d at index 10 (rest zero), mapped read-only. */
static void make_bad(struct desc d)
{
	remap(bad_page, 3);
	memset(bad_page, 0, sizeof(bad_page));
	desc_put(bad_page, 10, d);
	remap(bad_page, 1);
}

static long try_bad_frame0(void)
{
	frames[0] = virt_to_mfn(bad_page);
	return HYPERVISOR_set_gdt(frames, 296);
}

void start_kernel(start_info_t *si)
{
	u32 ma_l2;
	mmu_update_t u;
	long rc;
	int v;
	u32 i;

	conf_init(si, "set_gdt");
	ma_l2 = virt_to_mach((void *)si->pt_base);
	CHECK_EQ(user_pages_init(), 0, "setup_user_pages");
	*(volatile u32 *)kdata = MAGIC_K;
	*(volatile u32 *)udata = MAGIC_U;

	/* ---- entries and frame-list errors */
	frames[0] = virt_to_mfn(gdt_a);
#ifndef XEN_ABI_JUL /* MAR-specific: abi.md §5 */
	CHECK_EQ(HYPERVISOR_set_gdt(frames, 0), -EINVAL, "entries_0_einval");
#endif
	CHECK_EQ(HYPERVISOR_set_gdt(frames, 295), -EINVAL, "entries_295_einval");
	CHECK_EQ(HYPERVISOR_set_gdt(frames, 8193), -EINVAL, "entries_8193_einval");
	CHECK_EQ(HYPERVISOR_set_gdt(frames, 0xFFFFFFFFu), -EINVAL, "entries_huge_einval");
	CHECK_EQ(HYPERVISOR_set_gdt((u32 *)HYPERVISOR_VIRT_START, 296), -EFAULT,
		 "frame_list_in_xen_area_efault");
	CHECK_EQ(HYPERVISOR_set_gdt((u32 *)0x10000000, 296), -EFAULT, "frame_list_unmapped_efault");
	CHECK_EQ(HYPERVISOR_set_gdt((u32 *)(HYPERVISOR_VIRT_START - 4), 1024), -EFAULT,
		 "frame_list_crossing_xen_area_efault");

	/* ---- frame errors */
	frames[0] = 0xFFFFF;
	CHECK_EQ(HYPERVISOR_set_gdt(frames, 296), -EINVAL, "frame_beyond_memory_einval");
	frames[0] = 0x50;
	CHECK_EQ(HYPERVISOR_set_gdt(frames, 296), -EINVAL, "frame_not_owned_einval");
	frames[0] = ma_l2 >> PAGE_SHIFT;
	CHECK_EQ(HYPERVISOR_set_gdt(frames, 296), -EINVAL, "frame_page_directory_einval");

	/* A frame mapped writable cannot become a GDT page. Xen zaps entries 256..295 of it
	 * on the way (its fall-back for stale reserved entries) and still fails. */
	memset(gdt_a, 0xAA, sizeof(gdt_a));
	for (i = 0; i < 256; i++)
		desc_put(gdt_a, i, (struct desc){0, 0});
	frames[0] = virt_to_mfn(gdt_a);
	CHECK_EQ(HYPERVISOR_set_gdt(frames, 296), -EINVAL, "frame_mapped_writable_einval");
	{
		int zapped __attribute__((unused)) = 1, kept = 1;
		for (i = 256; i <= 295; i++)
			if (desc_get(gdt_a, i).lo || desc_get(gdt_a, i).hi)
				zapped = 0;
		for (i = 296; i < 512; i++)
			if (desc_get(gdt_a, i).lo != 0xAAAAAAAA)
				kept = 0;
#ifndef XEN_ABI_JUL /* MAR-specific: abi.md §5 */
		CHECK(zapped, "frame_mapped_writable_reserved_range_zapped");
#endif
		CHECK(kept, "frame_mapped_writable_other_entries_kept");
	}

	/* Descriptors Xen refuses, each alone in a read-only frame. */
	make_bad(mkseg(0, 0xFFF, ACC_R0_DATA, FLG_G));
	CHECK_EQ(try_bad_frame0(), -EINVAL, "descriptor_dpl0_einval");
	make_bad(mkseg(0xFF400000, 0, ACC_R1_DATA, FLG_G));
	CHECK_EQ(try_bad_frame0(), -EINVAL, "descriptor_base_perdomain_area_einval");
	make_bad(mkseg(0xFC3FF000, 0, ACC_R1_DATA, FLG_G));
	CHECK_EQ(try_bad_frame0(), -EINVAL, "descriptor_base_fc3ff000_einval");
	make_bad(mkseg(0xFC3F0000, 0xFFFFF, ACC_R1_DATA, FLG_BYTE));
	CHECK_EQ(try_bad_frame0(), -EINVAL, "descriptor_bytegranular_overlong_einval");
	make_bad((struct desc){0x08190000, 0x0000EE00}); /* interrupt gate, DPL 3 */
	CHECK_EQ(try_bad_frame0(), -EINVAL, "descriptor_interrupt_gate_einval");
	make_bad((struct desc){0x00000067, 0x0000A900}); /* TSS, DPL 1 */
	CHECK_EQ(try_bad_frame0(), -EINVAL, "descriptor_tss_einval");
	make_bad(mkgate(XEN_RING0_CS, 0x1000, 3));
	CHECK_EQ(try_bad_frame0(), -EINVAL, "descriptor_call_gate_to_ring0_cs_einval");
	make_bad(mkgate(FLAT_KERNEL_CS, 0x1000, 3));
	CHECK_EQ(try_bad_frame0(), 0, "descriptor_call_gate_to_kernel_cs_ok");
	/* (bad_page is our GDT now; the next successful set_gdt releases it.) */

	/* ---- build the real GDT: two frames, 1024 entries */
	memset(gdt_a, 0, sizeof(gdt_a));
	memset(gdt_b, 0, sizeof(gdt_b));
	desc_put(gdt_a, 1, mkseg((u32)kdata, 0, ACC_R1_DATA, FLG_G));
	desc_put(gdt_a, 2, mkseg(0, 0xFFFFF, ACC_R1_CODE, FLG_G));
	desc_put(gdt_a, 3, mkseg((u32)udata, 0, ACC_R3_DATA, FLG_G));
	desc_put(gdt_a, 4, mkseg(0, 0xFFFFF, ACC_R3_CODE, FLG_G));
	desc_put(gdt_a, 5, mkseg(0xFB000000, 0xFFFFF, ACC_R1_DATA, FLG_G));
	desc_put(gdt_a, 6, mkgate(FLAT_KERNEL_CS, 0x1000, 3));
	desc_put(gdt_a, 7, (struct desc){0xFFFFFFFF, 0xFFFF7FFF}); /* not present: anything goes */
	desc_put(gdt_b, 600 - 512, mkseg((u32)kdata, 0, ACC_R1_DATA, FLG_G));
	CHECK_EQ(remap(gdt_a, 1), 0, "setup_gdt_a_readonly");
	CHECK_EQ(remap(gdt_b, 1), 0, "setup_gdt_b_readonly");

	/* A bad second frame (our page directory): the first frame's references are dropped. */
	frames[0] = virt_to_mfn(gdt_a);
	frames[1] = ma_l2 >> PAGE_SHIFT;
	CHECK_EQ(HYPERVISOR_set_gdt(frames, 1024), -EINVAL, "second_frame_bad_einval");
	CHECK_EQ(remap(gdt_a, 3), 0, "second_frame_bad_releases_first_frame");
	CHECK_EQ(remap(gdt_a, 1), 0, "setup_gdt_a_readonly_again");

	frames[1] = virt_to_mfn(gdt_b);
	rc = HYPERVISOR_set_gdt(frames, 1024);
	CHECK_EQ(rc, 0, "set_gdt_two_frames_ok");
	if (rc)
		checks_done();
	CHECK_EQ(remap(bad_page, 3), 0, "previous_gdt_frame_released");

	read_gdtr();
	CHECK_EQ(gdtr.base, 0xFF400000u, "gdtr_base_perdomain_area");
#ifndef XEN_ABI_JUL /* MAR-specific: abi.md §5 */
	CHECK_EQ(gdtr.limit, 1024 * 8 - 1, "gdtr_limit_entries");
#endif
#ifndef XEN_ABI_JUL /* MAR-specific: abi.md §5 */
	CHECK(reserved_intact(gdt_a), "reserved_entries_written_into_frame0");
#endif
	CHECK_EQ(desc_limit_field(desc_get(gdt_a, 2)), 0xFC3FF, "code_4gb_truncated_in_frame");
	CHECK_EQ(desc_limit_field(desc_get(gdt_a, 4)), 0xFC3FF, "ring3_code_4gb_truncated_in_frame");
	CHECK_EQ(desc_limit_field(desc_get(gdt_a, 5)), 0x013FF, "segment_reaching_fc000000_truncated");
	CHECK_EQ(desc_get(gdt_a, 1).lo, mkseg((u32)kdata, 0, ACC_R1_DATA, FLG_G).lo,
		 "fitting_descriptor_unchanged");
	CHECK(desc_get(gdt_a, 7).lo == 0xFFFFFFFF && desc_get(gdt_a, 7).hi == 0xFFFF7FFF,
	      "not_present_descriptor_unchanged");

	/* ---- using the new GDT at ring 1 */
	restore_data_segs();
	CHECK_EQ(fs_read(FLAT_KERNEL_DS, (u32)kdata), -1, "flat_kernel_ds_reloads");
	CHECK_EQ(probe_val, MAGIC_K, "flat_kernel_ds_reads");
	CHECK_EQ(fs_read(SEL_GDT(1, 1), 0), -1, "own_data_segment_loads");
	CHECK_EQ(probe_val, MAGIC_K, "own_data_segment_base");
	CHECK_EQ(fs_read(SEL_GDT(1, 1), 0xFFC), -1, "own_data_segment_last_word");
	/* QEMU blind spot: TCG does not enforce segment limits (docs/realxen-table.md). */
	CHECK_EQ(fs_read(SEL_GDT(1, 1), 0x1000), 13, "own_data_segment_beyond_limit_gp");
	CHECK_EQ(last_trap.error_code, 0, "own_data_segment_beyond_limit_gp_code");
	CHECK_EQ(fs_read(SEL_GDT(600, 1), 0), -1, "second_frame_segment_loads");
	CHECK_EQ(probe_val, MAGIC_K, "second_frame_segment_base");
	CHECK_EQ(seg_limit(SEL_GDT(2, 1)), 0xFC3FFFFF, "lsl_truncated_code");
	CHECK_EQ(seg_limit(SEL_GDT(5, 1)), 0x013FFFFF, "lsl_truncated_high_segment");
	CHECK_EQ(fs_read(SEL_GDT(5, 1), 0x01000000), -1, "high_segment_reads_m2p_at_fc000000");
	CHECK_EQ(probe_val, machine_to_phys_mapping[0], "high_segment_m2p_value");
	/* QEMU blind spot: TCG does not enforce segment limits (docs/realxen-table.md). */
	CHECK_EQ(fs_read(SEL_GDT(5, 1), 0x01400000), 13, "high_segment_stops_at_fc400000_gp");
	CHECK_EQ(fs_read(SEL_GDT(258, 1), 0), 13, "xen_ring0_data_not_loadable");
	CHECK_EQ(last_trap.error_code, SEL_GDT(258, 0), "xen_ring0_data_gp_selector");
	CHECK_EQ(fs_read(SEL_GDT(7, 1), 0), 11, "not_present_descriptor_np");
	CHECK_EQ(fs_read(SEL_GDT(1024, 1), 0), 13, "selector_beyond_gdt_limit_gp");
	CHECK_EQ(last_trap.error_code, SEL_GDT(1024, 0), "selector_beyond_gdt_limit_code");
	restore_data_segs();

	/* ---- ring 3 with CS/SS from the new GDT (entered by iret) */
	v = run_user_sel(u_read_ss0, 0xFF0, SEL_GDT(4, 3), SEL_GDT(3, 3), 0);
	CHECK_EQ(v, 3, "ring3_own_selectors_run");
	CHECK_EQ(last_trap.cs & 0xFFFF, SEL_GDT(4, 3), "ring3_own_cs");
	CHECK_EQ(last_trap.ss & 0xFFFF, SEL_GDT(3, 3), "ring3_own_ss");
	CHECK_EQ(last_trap.eax, MAGIC_U, "ring3_own_data_segment_base");
	v = run_user_sel(u_read_ss_limit, 0xFF0, SEL_GDT(4, 3), SEL_GDT(3, 3), 0);
	/* QEMU blind spot: TCG does not enforce segment limits (docs/realxen-table.md). */
	CHECK_EQ(v, 13, "ring3_beyond_own_limit_gp");
	v = run_user_sel(u_load_eax_ds, 0xFF0, SEL_GDT(4, 3), SEL_GDT(3, 3), SEL_GDT(1, 3));
	CHECK_EQ(v, 13, "ring3_cannot_load_ring1_segment");
	CHECK_EQ(last_trap.error_code, SEL_GDT(1, 0), "ring3_cannot_load_ring1_segment_code");
	v = run_user_sel(u_read_ss0, 0xFF0, FLAT_USER_CS, SEL_GDT(3, 3), 0);
	CHECK_EQ(v, 3, "ring3_flat_cs_own_ss");

	/* ---- the frames are GDT pages now: no writable mapping, no raw write */
	probe_sel = FLAT_KERNEL_DS;
	probe_off = (u32)gdt_a + 8;
	probe_val = 0;
	v = trap_catch(probe_fs_write, 0);
	restore_data_segs();
	CHECK(v == 14 && last_trap.error_code == 3 && last_trap.cr2 == (u32)gdt_a + 8,
	      "gdt_frame_write_faults");
	CHECK_EQ(remap(gdt_a, 3), -EINVAL, "gdt_frame0_map_writable_einval");
	CHECK_EQ(remap(gdt_b, 3), -EINVAL, "gdt_frame1_map_writable_einval");
	CHECK_EQ(HYPERVISOR_update_va_mapping((u32)kdata, virt_to_mach(gdt_b) | 3, UVMF_INVLPG),
		 -EINVAL, "gdt_frame_alias_writable_einval");
	u.ptr = virt_to_mach(gdt_a) + 8 * 2;
	u.val = 0xFFFFFFFF;
	CHECK_EQ(HYPERVISOR_mmu_update(&u, 1, 0), -EINVAL, "gdt_frame_mmu_update_write_einval");
	CHECK_EQ(desc_limit_field(desc_get(gdt_a, 2)), 0xFC3FF, "gdt_frame_unchanged");

	/* The same frames again: fine (the references are counted). */
	CHECK_EQ(HYPERVISOR_set_gdt(frames, 1024), 0, "set_gdt_same_frames_again_ok");
	CHECK_EQ(fs_read(SEL_GDT(600, 1), 0), -1, "same_frames_again_usable");

	/* ---- switch to a one-frame GDT: the old frames are free to map writable */
	memset(gdt_c, 0, sizeof(gdt_c));
	desc_put(gdt_c, 1, mkseg((u32)kdata + 4, 0, ACC_R1_DATA, FLG_G));
	*(volatile u32 *)(kdata + 4) = MAGIC_K2;
	CHECK_EQ(remap(gdt_c, 1), 0, "setup_gdt_c_readonly");
	frames[0] = virt_to_mfn(gdt_c);
	CHECK_EQ(HYPERVISOR_set_gdt(frames, 512), 0, "set_gdt_switch_ok");
	read_gdtr();
#ifndef XEN_ABI_JUL /* MAR-specific: abi.md §5 */
	CHECK_EQ(gdtr.limit, 512 * 8 - 1, "gdtr_limit_after_switch");
#endif
#ifndef XEN_ABI_JUL /* MAR-specific: abi.md §5 */
	CHECK(reserved_intact(gdt_c), "reserved_entries_in_new_frame0");
#endif
	CHECK_EQ(remap(gdt_a, 3), 0, "old_frame0_released");
	CHECK_EQ(remap(gdt_b, 3), 0, "old_frame1_released");
	CHECK_EQ(fs_read(SEL_GDT(1, 1), 0), -1, "new_gdt_segment_loads");
	CHECK_EQ(probe_val, MAGIC_K2, "new_gdt_segment_base");
	CHECK_EQ(fs_read(SEL_GDT(600, 1), 0), 13, "old_gdt_entry_beyond_new_limit_gp");
#ifndef XEN_ABI_JUL /* JUL: the GDT limit covers page 14; the page of entry 600 is unmapped */
	CHECK_EQ(seg_limit(SEL_GDT(600, 1)), 0xFFFFFFFF, "lsl_beyond_new_limit_refused");
#endif

	/* A used frame 0 still holds Xen's DPL-0 entries: set_gdt zaps and re-copies them. */
#ifndef XEN_ABI_JUL /* MAR-specific: abi.md §5 */
	CHECK(reserved_intact(gdt_a), "old_frame0_keeps_xen_entries");
#endif
	CHECK_EQ(remap(gdt_a, 1), 0, "setup_old_frame0_readonly");
	frames[0] = virt_to_mfn(gdt_a);
	CHECK_EQ(HYPERVISOR_set_gdt(frames, 296), 0, "reuse_frame0_with_xen_entries_ok");
#ifndef XEN_ABI_JUL /* MAR-specific: abi.md §5 */
	CHECK(reserved_intact(gdt_a), "reuse_frame0_reserved_entries");
#endif
	CHECK_EQ(fs_read(SEL_GDT(1, 1), 0), -1, "reuse_frame0_segment_loads");
	CHECK_EQ(probe_val, MAGIC_K, "reuse_frame0_segment_base");
	CHECK_EQ(fs_read(SEL_GDT(296, 1), 0), 13, "selector_296_beyond_296_entries_gp");
	restore_data_segs();

	/* Events and traps still work through the new GDT (CS 0x0819 from frame 0). */
	CHECK_EQ(HYPERVISOR_xen_version(0) >> 16, 3, "hypercalls_after_switch");
	checks_done();
}
