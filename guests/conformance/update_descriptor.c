/*
 * Conformance: update_descriptor (hypercall 10: EBX machine address, ECX low word, EDX high
 * word), abi.md §3.4, semantics.md §3.1, §3.3. The address must be 8-aligned in a frame we
 * own; the descriptor must pass check_descriptor (and is stored truncated); GDT frames take a
 * GDT reference, LDT frames an LDT one, anything else a writable one (so page tables refuse);
 * Xen's entries 256..295 of a vcpu's current GDT frame 0 are not ours to change.
 */
#include "desc.h"

static u8 gdt_a[4096] BSS_PAGE; /* the GDT in use */
static u8 gdt_b[4096] BSS_PAGE; /* a second GDT, used to free gdt_a's reserved range */
static u8 plain[4096] BSS_PAGE; /* an ordinary writable page */
static u8 kdata[4096] BSS_PAGE;
static u32 frames[16];

#define MAGIC_K 0xC0DE1111u
#define MAGIC_K2 0xC0DE2222u

static long upd(u32 ma, struct desc d)
{
	return HYPERVISOR_update_descriptor(ma, d.lo, d.hi);
}

static int same(struct desc a, struct desc b)
{
	return a.lo == b.lo && (a.hi & ~0x100u) == (b.hi & ~0x100u);
}

void start_kernel(start_info_t *si)
{
	u32 ma_plain, ma_gdt, ma_l2, ma_l1;
	struct desc good, d __attribute__((unused));
	long rc;
	int ok __attribute__((unused));

	conf_init(si, "update_descriptor");
	ma_plain = virt_to_mach(plain);
	ma_l2 = virt_to_mach((void *)si->pt_base);
	ma_l1 = virt_to_mach((void *)(si->pt_base + PAGE_SIZE));
	*(volatile u32 *)kdata = MAGIC_K;
	*(volatile u32 *)(kdata + 8) = MAGIC_K2;
	good = mkseg((u32)kdata, 0, ACC_R1_DATA, FLG_G);

	/* ---- an ordinary page: the descriptor is stored (checked) */
	memset(plain, 0x5A, sizeof(plain));
	CHECK_EQ(upd(ma_plain + 8, good), 0, "plain_page_ok");
	CHECK(same(desc_get(plain, 1), good), "plain_page_stored");
	CHECK_EQ(desc_get(plain, 2).lo, 0x5A5A5A5A, "plain_page_neighbour_untouched");
	CHECK_EQ(upd(ma_plain + 16, mkseg(0, 0xFFFFF, ACC_R1_DATA, FLG_G)), 0, "flat_4gb_ok");
	CHECK_EQ(desc_limit_field(desc_get(plain, 2)), 0xFC3FF, "flat_4gb_stored_truncated");
	CHECK_EQ(upd(ma_plain + 24, mkseg(0xFB000000, 0xFFFFF, ACC_R3_DATA, FLG_G)), 0,
		 "segment_reaching_fc000000_ok");
	CHECK_EQ(desc_limit_field(desc_get(plain, 3)), 0x013FF, "segment_reaching_fc000000_truncated");
	CHECK_EQ(upd(ma_plain + 32, mkseg(0x10000000, 0x10, ACC_R1_DATA_DOWN, FLG_G)), 0,
		 "expand_down_ok");
	CHECK_EQ(desc_limit_field(desc_get(plain, 4)), 0xEFFFF, "expand_down_truncated_to_wrap");
	CHECK_EQ(upd(ma_plain + 40, (struct desc){0x12345678, 0xFFFF7FFF}), 0, "not_present_ok");
	CHECK(desc_get(plain, 5).lo == 0x12345678 && desc_get(plain, 5).hi == 0xFFFF7FFF,
	      "not_present_stored_verbatim");
	CHECK_EQ(upd(ma_plain + 48, mkgate(FLAT_KERNEL_CS, 0x12345678, 3)), 0, "call_gate_ok");
	CHECK_EQ(upd(ma_plain + 56, mkgate(SEL_LDT(3, 1), 0x1000, 1)), 0, "call_gate_ldt_target_ok");

	/* ---- errors: nothing is written */
	memset(plain, 0x5A, sizeof(plain));
	CHECK_EQ(upd(ma_plain + 4, good), -EINVAL, "unaligned_4_einval");
	CHECK_EQ(upd(ma_plain + 1, good), -EINVAL, "unaligned_1_einval");
	CHECK_EQ(upd(0xFFFFFFF8u, good), -EINVAL, "beyond_memory_einval");
	CHECK_EQ(upd(0x50000, good), -EINVAL, "frame_not_owned_einval");
	CHECK_EQ(upd(si->shared_info + 4088, mkseg(0, 0, ACC_R1_DATA, 0)), 0,
		 "shared_info_frame_is_ours_ok");
	CHECK_EQ(upd(ma_plain, mkseg(0, 0xFFF, ACC_R0_DATA, FLG_G)), -EINVAL, "dpl0_data_einval");
	CHECK_EQ(upd(ma_plain, mkseg(0, 0xFFF, 0x9A, FLG_G)), -EINVAL, "dpl0_code_einval");
	CHECK_EQ(upd(ma_plain, mkgate(FLAT_KERNEL_CS, 0x1000, 0)), -EINVAL, "dpl0_call_gate_einval");
	CHECK_EQ(upd(ma_plain, mkgate(XEN_RING0_CS, 0x1000, 3)), -EINVAL,
		 "call_gate_to_xen_ring0_cs_einval");
	CHECK_EQ(upd(ma_plain, mkgate(SEL_GDT(1, 0), 0x1000, 3)), -EINVAL, "call_gate_rpl0_einval");
#ifndef XEN_ABI_JUL /* MAR-specific: abi.md §5 */
	CHECK_EQ(upd(ma_plain, mkgate(SEL_GDT(260, 1), 0x1000, 3)), -EINVAL,
		 "call_gate_reserved_selector_einval");
#endif
	{
		struct desc g = mkgate(FLAT_KERNEL_CS, 0x1000, 3);
		g.hi |= 0x20;
		CHECK_EQ(upd(ma_plain, g), -EINVAL, "call_gate_reserved_bits_einval");
	}
	CHECK_EQ(upd(ma_plain, (struct desc){0x08191000, 0x0000EE00}), -EINVAL,
		 "interrupt_gate_einval");
	CHECK_EQ(upd(ma_plain, (struct desc){0x08191000, 0x0000EF00}), -EINVAL, "trap_gate_einval");
	CHECK_EQ(upd(ma_plain, (struct desc){0x08190000, 0x0000E500}), -EINVAL, "task_gate_einval");
	CHECK_EQ(upd(ma_plain, (struct desc){0x00000067, 0x0000A900}), -EINVAL, "tss_einval");
	CHECK_EQ(upd(ma_plain, (struct desc){0x0000FFFF, 0x0000A200}), -EINVAL, "ldt_descriptor_einval");
	CHECK_EQ(upd(ma_plain, mkseg(0xFC3FF000, 0, ACC_R1_DATA, FLG_G)), -EINVAL, "base_fc3ff000_einval");
	CHECK_EQ(upd(ma_plain, mkseg(0xFF400000, 0, ACC_R1_DATA, FLG_G)), -EINVAL,
		 "base_perdomain_area_einval");
	CHECK_EQ(upd(ma_plain, mkseg(0xFC3F0000, 0xFFFFF, ACC_R1_DATA, FLG_BYTE)), -EINVAL,
		 "bytegranular_overlong_einval");
	CHECK_EQ(upd(ma_plain, mkseg(0x10000000, 0x10, ACC_R1_DATA_DOWN, FLG_BYTE)), -EINVAL,
		 "bytegranular_expand_down_einval");
	CHECK_EQ(upd(ma_l2, good), -EINVAL, "page_directory_einval");
	CHECK_EQ(upd(ma_l1, good), -EINVAL, "page_table_einval");
	ok = 1;
	for (u32 i = 0; i < 1024; i++)
		if (((volatile u32 *)plain)[i] != 0x5A5A5A5A)
			ok = 0;
#ifndef XEN_ABI_JUL /* MAR-specific: abi.md §5 */
	CHECK(ok, "failed_updates_write_nothing");
#endif

	/* ---- a GDT frame: updates go in (GDT reference), except Xen's reserved range */
	memset(gdt_a, 0, sizeof(gdt_a));
	memset(gdt_b, 0, sizeof(gdt_b));
	ma_gdt = virt_to_mach(gdt_a);
	CHECK_EQ(remap(gdt_a, 1), 0, "setup_gdt_readonly");
	CHECK_EQ(remap(gdt_b, 1), 0, "setup_gdt_b_readonly");
	frames[0] = virt_to_mfn(gdt_a);
	rc = HYPERVISOR_set_gdt(frames, 512);
	CHECK_EQ(rc, 0, "setup_set_gdt");
	if (rc)
		checks_done();
	CHECK_EQ(upd(ma_gdt + 8, good), 0, "gdt_entry_ok");
	CHECK(same(desc_get(gdt_a, 1), good), "gdt_entry_stored");
	CHECK_EQ(fs_load_read(SEL_GDT(1, 1), 0), -1, "gdt_entry_loads");
	CHECK_EQ(probe_val, MAGIC_K, "gdt_entry_base");
	CHECK_EQ(upd(ma_gdt + 8, mkseg((u32)kdata + 8, 0, ACC_R1_DATA, FLG_G)), 0, "gdt_entry_rewrite_ok");
	CHECK_EQ(fs_load_read(SEL_GDT(1, 1), 0), -1, "gdt_entry_reloads");
	CHECK_EQ(probe_val, MAGIC_K2, "gdt_entry_new_base");

	/* Hostile: a descriptor reaching into Xen's area is cut at 0xFC400000. */
	CHECK_EQ(upd(ma_gdt + 16, mkseg(0xFB000000, 0xFFFFF, ACC_R1_DATA, FLG_G)), 0,
		 "gdt_high_segment_ok");
	CHECK_EQ(seg_limit(SEL_GDT(2, 1)), 0x013FFFFF, "gdt_high_segment_lsl");
	CHECK_EQ(fs_load_read(SEL_GDT(2, 1), 0x01000000), -1, "gdt_high_segment_reads_fc000000");
	/* QEMU blind spot: TCG does not enforce segment limits (docs/realxen-table.md). */
	CHECK_EQ(fs_load_read(SEL_GDT(2, 1), 0x01400000), 13, "gdt_high_segment_fc400000_gp");
	/* QEMU blind spot: TCG does not enforce segment limits (docs/realxen-table.md). */
	CHECK_EQ(fs_load_read(SEL_GDT(2, 1), 0x02400000), 13, "gdt_high_segment_perdomain_gp");
	/* Hostile: DPL 0 into the live GDT. */
	CHECK_EQ(upd(ma_gdt + 24, mkseg(0, 0xFFFFF, ACC_R0_DATA, FLG_G)), -EINVAL, "gdt_dpl0_einval");
	CHECK_EQ(desc_get(gdt_a, 3).hi, 0, "gdt_dpl0_not_written");

	/* Xen's reserved entries of the current GDT. */
	d = desc_get(gdt_a, 259);
#ifndef XEN_ABI_JUL /* MAR-specific: abi.md §5 */
	CHECK_EQ(upd(ma_gdt + 256 * 8, good), -EINVAL, "gdt_reserved_256_einval");
#endif
#ifndef XEN_ABI_JUL /* MAR-specific: abi.md §5 */
	CHECK_EQ(upd(ma_gdt + 259 * 8, good), -EINVAL, "gdt_reserved_259_einval");
#endif
#ifndef XEN_ABI_JUL /* MAR-specific: abi.md §5 */
	CHECK_EQ(upd(ma_gdt + 295 * 8, good), -EINVAL, "gdt_reserved_295_einval");
#endif
#ifndef XEN_ABI_JUL /* MAR-specific: abi.md §5 */
	CHECK(same(desc_get(gdt_a, 259), d) && d.lo == 0x0000C3FF, "gdt_reserved_intact");
#endif
	CHECK_EQ(upd(ma_gdt + 255 * 8, good), 0, "gdt_entry_255_ok");
	CHECK_EQ(upd(ma_gdt + 296 * 8, good), 0, "gdt_entry_296_ok");
	CHECK_EQ(fs_load_read(SEL_GDT(296, 1), 0), -1, "gdt_entry_296_loads");

	/* The frame stays read-only to us. */
	CHECK_EQ(remap(gdt_a, 3), -EINVAL, "gdt_frame_map_writable_einval");

	/* Once gdt_a is not the current GDT its reserved range is ordinary. */
	frames[0] = virt_to_mfn(gdt_b);
	CHECK_EQ(HYPERVISOR_set_gdt(frames, 512), 0, "setup_switch_gdt");
	CHECK_EQ(upd(ma_gdt + 259 * 8, good), 0, "old_gdt_reserved_entry_ok");
	CHECK(same(desc_get(gdt_a, 259), good), "old_gdt_reserved_entry_stored");
#ifndef XEN_ABI_JUL /* MAR-specific: abi.md §5 */
	CHECK_EQ(upd(virt_to_mach(gdt_b) + 259 * 8, good), -EINVAL, "new_gdt_reserved_entry_einval");
#endif
	CHECK_EQ(upd(virt_to_mach(gdt_b) + 8, good), 0, "new_gdt_entry_ok");
	CHECK_EQ(fs_load_read(SEL_GDT(1, 1), 0), -1, "new_gdt_entry_loads");
	/* The old frame holds no GDT reference any more: it may be mapped writable. */
	CHECK_EQ(remap(gdt_a, 3), 0, "old_gdt_frame_map_writable_ok");
	CHECK_EQ(upd(ma_gdt + 8, mkseg(0, 0xFFF, ACC_R0_DATA, FLG_G)), -EINVAL,
		 "writable_page_dpl0_still_einval");

	checks_done();
}
