/*
 * Conformance: set_callbacks (hypercall 4, abi.md §1.3, §3.3) and the event
 * upcall frame (abi.md §2.2.3), forced with xen_version(0) as Mini-OS does.
 */
#include "lib.h"

static void force_upcall(struct hc_regs *before, struct hc_regs *after)
{
	struct hc_regs in;
	memset(&in, 0, sizeof(in));
	memset(before, 0, sizeof(*before));
	memset(after, 0, sizeof(*after));
	in.eax = __HYPERVISOR_xen_version;
	in.ebx = 0;
	in.ecx = 0x12345678;
	in.eflags = 0x202 | 0x1; /* IF + CF */
	vcpu0()->evtchn_upcall_pending = 1;
	events_enable();
	hc_probe(&in, before, after);
	events_disable();
}

static void expect_eperm(u32 ecs, u32 fcs, const char *name)
{
	CHECK_EQ(HYPERVISOR_set_callbacks(ecs, (u32)hypervisor_callback, fcs,
					  (u32)failsafe_callback),
		 -EPERM, name);
}

void start_kernel(start_info_t *si)
{
	struct hc_regs before, after;
	u32 n;

	conf_init(si, "set_callbacks");

	CHECK_EQ(callbacks_init(), 0, "flat_kernel_cs_ok");

	expect_eperm(XEN_RING0_CS, FLAT_KERNEL_CS, "event_cs_ring0_eperm");
	expect_eperm(FLAT_KERNEL_CS, XEN_RING0_CS, "failsafe_cs_ring0_eperm");
	expect_eperm(FLAT_KERNEL_DS, FLAT_KERNEL_CS, "event_cs_0x0821_reserved_eperm");
	expect_eperm(FLAT_USER_CS, FLAT_KERNEL_CS, "event_cs_0x082b_rpl3_eperm");
	expect_eperm(0x0818, FLAT_KERNEL_CS, "event_cs_0x0818_rpl0_eperm");
	expect_eperm(FLAT_KERNEL_CS, (LAST_RESERVED_GDT_ENTRY << 3) | 1, "failsafe_cs_index_295_eperm");
	expect_eperm(FLAT_KERNEL_CS, 0x0823, "failsafe_cs_rpl3_eperm");

	/* Selectors outside the reserved range with RPL 1 pass (even if the descriptor is null). */
#ifndef XEN_ABI_JUL /* MAR-specific: abi.md §5 */
	CHECK_EQ(HYPERVISOR_set_callbacks((1 << 3) | 1, 0x1000, ((LAST_RESERVED_GDT_ENTRY + 1) << 3) | 1,
					  0x2000),
		 0, "gdt_index_1_and_296_rpl1_ok");
#endif
	CHECK_EQ(HYPERVISOR_set_callbacks((1 << 3) | 4 | 1, 0, FLAT_KERNEL_CS, 0), 0,
		 "ldt_selector_and_eip_0_ok");

	/* Restore, then make a rejected call: the good callbacks must stay in place. */
	CHECK_EQ(callbacks_init(), 0, "restore_callbacks");
	expect_eperm(XEN_RING0_CS, XEN_RING0_CS, "both_cs_bad_eperm");

	/* Forced upcall: pending=1, mask=0, any hypercall -> callback before returning. */
	n = upcall_count;
	force_upcall(&before, &after);
	CHECK_EQ(upcall_count - n, 1, "forced_upcall_delivered_once");
	CHECK_EQ(last_upcall.eip, (u32)hc_probe_ret, "upcall_frame_eip_after_int82");
	CHECK_EQ(last_upcall.cs & 0xFFFF, FLAT_KERNEL_CS, "upcall_frame_cs");
	CHECK_EQ(last_upcall.eflags, before.eflags, "upcall_frame_eflags");
	CHECK_EQ(last_upcall_entry_esp, before.esp - 12, "upcall_frame_3_words_on_ring1_stack");
	CHECK_EQ(last_upcall.eax, XEN_VERSION_VALUE, "upcall_after_hypercall_result_in_eax");
	CHECK_EQ(last_upcall.ecx, 0x12345678, "upcall_sees_interrupted_ecx");
	CHECK_EQ(last_upcall_mask_at_entry, 1, "upcall_sets_mask_1");
	CHECK_EQ(after.eax, XEN_VERSION_VALUE, "hypercall_result_survives_upcall");
	CHECK_EQ(vcpu0()->evtchn_upcall_pending, 0, "callback_cleared_pending");

	/* Masked: nothing is delivered. */
	n = upcall_count;
	vcpu0()->evtchn_upcall_pending = 1;
	events_disable();
	HYPERVISOR_xen_version(0);
	CHECK_EQ(upcall_count - n, 0, "masked_no_upcall");
	CHECK_EQ(vcpu0()->evtchn_upcall_mask, 1, "masked_mask_unchanged");
	vcpu0()->evtchn_upcall_pending = 0;

	/* Not pending: nothing is delivered. */
	n = upcall_count;
	events_enable();
	HYPERVISOR_xen_version(0);
	events_disable();
	CHECK_EQ(upcall_count - n, 0, "not_pending_no_upcall");

	/* Nothing in this suite makes Xen reload a bad segment. */
	CHECK_EQ(failsafe_count, 0, "no_failsafe_callbacks");

	checks_done();
}
