/*
 * Descriptors and gates (issue 12, class 7): descriptors that would give ring 1 (or ring 3)
 * a way into ring 0 or into Xen's address space, through update_descriptor, set_gdt (also
 * naming Xen's and the victim's frames), set_trap_table and set_callbacks with ring-0
 * selectors, and stack_switch to Xen's own selectors (0x811: Xen's ring-0 data segment with
 * RPL 1). All refused; over-long segments are truncated at Xen's boundary, never beyond.
 */
#include "desc.h"
#include "hostile.h"

static u8 page[4096] BSS_PAGE; /* an ordinary page of ours */
static u8 gdt[4096] BSS_PAGE;  /* becomes our GDT */
static u32 frames[16];

static long upd(u32 i, struct desc d)
{
	return HYPERVISOR_update_descriptor(virt_to_mach(page) + i * 8, d.lo, d.hi);
}

static struct desc raw(u32 lo, u32 hi)
{
	struct desc d;
	d.lo = lo;
	d.hi = hi;
	return d;
}

/* The byte limit a stored segment descriptor ends up with. */
static u32 end_of(u32 i)
{
	struct desc d = desc_get(page, i);
	u32 lim = desc_limit_field(d);
	if (d.hi & (1u << 23))
		lim = (lim << 12) | 0xFFF;
	return desc_base(d) + lim;
}

void start_kernel(start_info_t *si)
{
	u32 vmfn, m2pl1;
	trap_info_t t[2];
	hostile_init(si, "desc_gates");
	vmfn = cmdline_u32(si, "vmfn", 0);
	m2pl1 = m2p_l1_mfn();
	memset(page, 0, sizeof(page));

	/* update_descriptor: gates and segments into ring 0. */
	CHECK_EQ(upd(1, mkgate(XEN_RING0_CS, 0x1000, 3)), -EINVAL, "call_gate_to_xen_cs");
	CHECK_EQ(upd(1, mkgate(XEN_RING0_CS | 1, 0x1000, 3)), -EINVAL, "call_gate_to_reserved_rpl1");
	CHECK_EQ(upd(1, mkgate(SEL_GDT(1, 0), 0x1000, 3)), -EINVAL, "call_gate_to_rpl0_selector");
	CHECK_EQ(upd(1, mkgate(SEL_LDT(1, 0), 0x1000, 3)), -EINVAL, "call_gate_to_rpl0_ldt_selector");
	CHECK_EQ(upd(1, raw(0x08080000u, 0xEE00u)), -EINVAL, "interrupt_gate");
	CHECK_EQ(upd(1, raw(0x08080000u, 0xEF00u)), -EINVAL, "trap_gate");
	CHECK_EQ(upd(1, raw(0x08080000u, 0xE500u)), -EINVAL, "task_gate");
	CHECK_EQ(upd(1, mkseg(0, 0xFFFFF, 0xE9, FLG_G)), -EINVAL, "tss_descriptor");
	CHECK_EQ(upd(1, mkseg(0, 0xFFFFF, 0xE2, FLG_G)), -EINVAL, "ldt_descriptor");
	CHECK_EQ(upd(1, mkseg(0, 0xFFFFF, 0x9A, FLG_G)), -EINVAL, "dpl0_code");
	CHECK_EQ(upd(1, mkseg(0, 0xFFFFF, ACC_R0_DATA, FLG_G)), -EINVAL, "dpl0_data");
	CHECK_EQ(upd(1, mkseg(0, 0xFFFFF, 0x9E, FLG_G)), -EINVAL, "dpl0_conforming_code");
	CHECK_EQ(desc_get(page, 1).hi, 0, "nothing_stored");
	/* Segments reaching into Xen's space: base refused, or the limit cut at 0xFC400000. */
	CHECK_EQ(upd(2, mkseg(0xFC400000u, 0xFFF, ACC_R1_DATA, FLG_G)), -EINVAL, "base_in_xen");
	CHECK_EQ(upd(2, mkseg(0xFFFFF000u, 0xFFF, ACC_R3_DATA, FLG_G)), -EINVAL, "base_at_top");
	CHECK_EQ(upd(2, mkseg(0xFC3F0000u, 0xFFFFF, ACC_R1_DATA, FLG_BYTE)), -EINVAL,
		 "byte_granular_crossing_refused");
	CHECK_EQ(upd(2, mkseg(0, 0xFFFFF, ACC_R1_DATA, FLG_G)), 0, "flat_data_truncated");
	CHECK_EQ(end_of(2), 0xFC3FFFFF, "flat_data_ends_below_xen");
	CHECK_EQ(upd(3, mkseg(0x10000000u, 0xFFFFF, ACC_R3_CODE, FLG_G)), 0, "wrapping_code_truncated");
	CHECK_EQ(end_of(3), 0xFC3FFFFF, "wrapping_code_ends_below_xen");
	CHECK_EQ(upd(4, mkseg(0xFC000000u, 0xFFFFF, ACC_R1_DATA, FLG_G)), 0, "m2p_base_truncated");
	CHECK_EQ(end_of(4), 0xFC3FFFFF, "m2p_segment_ends_below_xen");
	CHECK_EQ(upd(5, mkseg(0x1000, 0, ACC_R1_DATA_DOWN, FLG_G)), 0, "expand_down_truncated");
	CHECK(desc_limit_field(desc_get(page, 5)) != 0, "expand_down_limit_rewritten");
	/* Where the descriptor is written: only our own, non-page-table frames. */
	struct desc ok = mkseg(0, 0xFFFFF, ACC_R1_DATA, FLG_G);
	CHECK_EQ(HYPERVISOR_update_descriptor(virt_to_mach(page) + 4, ok.lo, ok.hi), -EINVAL,
		 "misaligned");
	CHECK_EQ(HYPERVISOR_update_descriptor(vmfn << PAGE_SHIFT, ok.lo, ok.hi), -EINVAL,
		 "into_victim_frame");
	CHECK_EQ(HYPERVISOR_update_descriptor(m2pl1 << PAGE_SHIFT, ok.lo, ok.hi), -EINVAL,
		 "into_m2p_l1");
	CHECK_EQ(HYPERVISOR_update_descriptor(cur_l2_ma(), ok.lo, ok.hi), -EINVAL, "into_own_l2");
	CHECK_EQ(HYPERVISOR_update_descriptor(0xFFFFFFF8u, ok.lo, ok.hi), -EINVAL, "beyond_memory");

	/* set_gdt with frames that are not ours to use. */
	frames[0] = m2pl1;
	CHECK_EQ(HYPERVISOR_set_gdt(frames, MIN_GDT_ENTRIES), -EINVAL, "set_gdt_m2p_l1");
	frames[0] = vmfn;
	CHECK_EQ(HYPERVISOR_set_gdt(frames, MIN_GDT_ENTRIES), -EINVAL, "set_gdt_victim_frame");
	frames[0] = cmdline_u32(si, "vl2", 0);
	CHECK_EQ(HYPERVISOR_set_gdt(frames, MIN_GDT_ENTRIES), -EINVAL, "set_gdt_victim_l2");
	frames[0] = cur_l2_ma() >> PAGE_SHIFT;
	CHECK_EQ(HYPERVISOR_set_gdt(frames, MIN_GDT_ENTRIES), -EINVAL, "set_gdt_own_l2");
	frames[0] = 0xFFFFFFFFu;
	CHECK_EQ(HYPERVISOR_set_gdt(frames, MIN_GDT_ENTRIES), -EINVAL, "set_gdt_frame_all_ones");
	/* A GDT frame of ours holding a ring-0 gate: refused at validation. */
	memset(gdt, 0, sizeof(gdt));
	desc_put(gdt, 1, mkgate(XEN_RING0_CS, 0x1000, 3));
	CHECK_EQ(remap(gdt, 1), 0, "gdt_page_readonly");
	frames[0] = virt_to_mfn(gdt);
	CHECK_EQ(HYPERVISOR_set_gdt(frames, MIN_GDT_ENTRIES), -EINVAL, "set_gdt_with_ring0_gate");
	CHECK_EQ(remap(gdt, 3), 0, "gdt_page_writable_again");
	desc_put(gdt, 1, raw(0, 0));
	CHECK_EQ(remap(gdt, 1), 0, "gdt_page_readonly_clean");
	CHECK_EQ(HYPERVISOR_set_gdt(frames, MIN_GDT_ENTRIES), 0, "set_gdt_clean");
	/* Xen's reserved entries in it are Xen's; the frame cannot become writable. */
	CHECK_EQ(HYPERVISOR_update_descriptor(virt_to_mach(gdt) + FIRST_RESERVED_GDT_ENTRY * 8,
					      ok.lo, ok.hi),
		 -EINVAL, "reserved_entry_refused");
	CHECK_EQ(remap(gdt, 3), -EINVAL, "gdt_frame_not_writable");
	CHECK_EQ(HYPERVISOR_update_descriptor(virt_to_mach(gdt) + 8, mkgate(XEN_RING0_CS, 0, 3).lo,
					      mkgate(XEN_RING0_CS, 0, 3).hi),
		 -EINVAL, "gate_into_live_gdt_refused");
	/* Loading Xen's ring-0 selectors from ring 1: #GP. */
	probe_sel = XEN_RING0_DS;
	probe_off = (u32)page;
	CHECK_EQ(trap_catch(probe_fs_read, 0), 13, "load_xen_ds_faults");
	restore_data_segs();

	/* An LDT over the M2P (Xen's frames, mapped read-only for everyone): SET_LDT allows the
	 * range, but no frame there can become an LDT page of ours. */
	CHECK_EQ(set_ldt(HYPERVISOR_VIRT_START, 512), 0, "set_ldt_over_m2p");
	probe_sel = SEL_LDT(0, 1);
	probe_off = (u32)page;
	CHECK(trap_catch(probe_fs_read, 0) != -1, "ldt_selector_over_m2p_faults");
	restore_data_segs();
	CHECK_EQ(set_ldt(0, 0), 0, "ldt_off");
	CHECK_EQ(set_ldt(0xFC3FF000u, 513), -EINVAL, "set_ldt_crossing_into_xen");
	frames[0] = m2pl1 + 1;
	CHECK_EQ(HYPERVISOR_set_gdt(frames, MIN_GDT_ENTRIES), -EINVAL, "set_gdt_m2p_frame");
	CHECK_EQ(HYPERVISOR_update_descriptor((m2pl1 + 1) << PAGE_SHIFT, ok.lo, ok.hi), -EINVAL,
		 "into_m2p_frame");

	/* Trap table, callbacks and the ring-1 stack with ring-0 selectors. */
	memset(t, 0, sizeof(t));
	t[0].vector = 0x80;
	t[0].flags = 3;
	t[0].address = (u32)start_kernel;
	t[0].cs = XEN_RING0_CS;
	CHECK_EQ(HYPERVISOR_set_trap_table(t), -EPERM, "trap_cs_xen_ring0");
	t[0].cs = FLAT_KERNEL_CS & ~3u;
	CHECK_EQ(HYPERVISOR_set_trap_table(t), -EPERM, "trap_cs_rpl0");
	t[0].cs = XEN_RING0_CS | 1;
	CHECK_EQ(HYPERVISOR_set_trap_table(t), -EPERM, "trap_cs_reserved_rpl1");
	CHECK_EQ(HYPERVISOR_set_callbacks(XEN_RING0_CS, (u32)start_kernel, FLAT_KERNEL_CS,
					  (u32)start_kernel),
		 -EPERM, "event_callback_ring0");
	CHECK_EQ(HYPERVISOR_set_callbacks(FLAT_KERNEL_CS, (u32)start_kernel, XEN_RING0_CS | 1,
					  (u32)start_kernel),
		 -EPERM, "failsafe_callback_reserved");
	CHECK_EQ(HYPERVISOR_stack_switch(XEN_RING0_DS | 1, 0x1000), -EPERM, "stack_switch_0x811");
	CHECK_EQ(HYPERVISOR_stack_switch(XEN_RING0_CS | 1, 0x1000), -EPERM, "stack_switch_xen_cs_rpl1");
	CHECK_EQ(HYPERVISOR_stack_switch(XEN_RING0_DS, 0x1000), -EPERM, "stack_switch_rpl0");
	/* After the refusals ring 3 still enters ring 1 on our own stack. */
	CHECK_EQ(user_pages_init(), 0, "user_pages");
	CHECK_EQ(run_user((u32)u_load_eax_ds, USER_STACK_TOP, FLAT_USER_DS), 3, "ring3_trap_comes_back");
	checks_done();
}
